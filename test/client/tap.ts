/** A tap on the client's transport: every packet it writes, decoded, per connection. */
import { openNodeTransport } from '../../packages/client/src/transport-node.js';
import type { OpenTransport } from '../../packages/client/src/transport.js';
import { Decoder } from '../../src/protocol/decoder.js';
import type { Packet, PublishPacket } from '../../src/protocol/packets.js';

/** The packets a client wrote, and those it received, per connection (index 0: the first connection). */
export class Tap {
  readonly connections: Packet[][] = [];
  readonly received: Packet[][] = [];
  readonly open: OpenTransport = async (url, options, handlers, signal) => {
    const sent: Packet[] = [];
    const got: Packet[] = [];
    const version = options.protocolVersion ?? 5;
    const decoder = new Decoder((p) => sent.push(p), { protocolVersion: version });
    const inbound = new Decoder((p) => got.push(p), { protocolVersion: version });
    const data = (c: Uint8Array) => {
      try {
        inbound.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      } catch {
        // a packet the client is meant to refuse: its decoder reports it
      }
      handlers.data(c);
    };
    const t = await openNodeTransport(url, options, { data, close: handlers.close }, signal);
    this.connections.push(sent);
    this.received.push(got);
    return {
      write: (chunks) => {
        for (const c of chunks) decoder.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
        t.write(chunks);
      },
      end: () => t.end(),
      destroy: () => t.destroy(),
    };
  };

  /** The topic filters of the SUBSCRIBE packets written on connection `i`. */
  subscribes(i: number): string[] {
    const out: string[] = [];
    for (const p of this.connections[i] ?? []) if (p.type === 'subscribe') for (const s of p.subscriptions) out.push(s.topicFilter);
    return out.sort();
  }

  /** The PUBLISH packets written on connection `i`. */
  publishes(i: number): PublishPacket[] {
    return (this.connections[i] ?? []).filter((p): p is PublishPacket => p.type === 'publish');
  }
}
