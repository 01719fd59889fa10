/**
 * Outgoing application messages: publish() with its checks (topic, Maximum QoS, Retain
 * Available, Maximum Packet Size), the send quota (the server's Receive Maximum), the QoS 1/2
 * exchanges (PUBACK; PUBREC → PUBREL → PUBCOMP), resume after a reconnect, the offline queue,
 * and the session store's records of all of it. Writes through its host (the client).
 */
import { encode } from '../../../src/protocol/encoder.js';
import type { Packet, PublishPacket } from '../../../src/protocol/packets.js';
import { checkTopicName } from '../../../src/topics/validate.js';
import { TopicAliases } from './aliases.js';
import { ClientError, LimitError, RefusedError, abortReason } from './errors.js';
import type { Outgoing, PendingPublish } from './outgoing.js';
import { encodePayload, toProperties } from './packets.js';
import type { SessionStore, StoredPublish } from './store.js';
import { restoredPacket, toStored } from './stored.js';
import type { Payload, PublishOptions, PublishResult, ServerLimits } from './types.js';

export interface PublishHost {
  write(packet: Packet): void;
  /** A short acknowledgement (see Lifecycle.writeAck). */
  writeAck(first: 0x62, packetId: number): void;
  connected(): boolean;
  server(): ServerLimits;
  readonly version: 3 | 4 | 5;
}

/** The results of most acknowledgements (shared, frozen: one object less per message). */
const SUCCESS: PublishResult = Object.freeze({ reasonCode: 0 });
const NO_SUBSCRIBERS: PublishResult = Object.freeze({ reasonCode: 0x10 });
const resultOf = (code: number): PublishResult => (code === 0 ? SUCCESS : code === 0x10 ? NO_SUBSCRIBERS : { reasonCode: code });

export class Publisher {
  readonly #out: Outgoing;
  readonly #store: SessionStore | undefined;
  readonly #host: PublishHost;
  #quota = 0;
  #nextKey = 1;
  readonly #aliases = new TopicAliases();
  /** The last topic that passed the checks (a stream of publishes mostly repeats its topic). */
  #validTopic = '';

  constructor(out: Outgoing, store: SessionStore | undefined, host: PublishHost) {
    this.#out = out;
    this.#store = store;
    this.#host = host;
  }

  /** Takes over the publishes a store kept: in flight with their identifiers, or queued. Nobody awaits them. */
  restore(publishes: readonly StoredPublish[]): void {
    for (const sp of publishes) {
      const p: PendingPublish = {
        key: sp.key,
        packet: restoredPacket(sp),
        size: sp.payload.length + sp.topic.length,
        state: sp.state,
        settled: true,
        resolve: () => undefined,
        reject: () => undefined,
        unlink: undefined,
      };
      if (sp.packetId !== undefined && sp.state !== 'queued') {
        p.packet.packetId = sp.packetId;
        this.#out.reserve(sp.packetId);
        this.#out.inflight.set(sp.packetId, p);
      } else this.#out.queue.push(p);
      this.#nextKey = Math.max(this.#nextKey, sp.key + 1);
    }
  }

  /**
   * A new connection: with the session kept, unacknowledged PUBLISH again with DUP and PUBREL
   * again, in the original order [MQTT-4.4.0-1] [MQTT-4.6.0-1]; without, the publishes go again
   * as new messages, and a QoS 2 message that had reached PUBREC is complete (the old session
   * received it). Then the queue drains into the new send window.
   */
  resume(sessionPresent: boolean, window: number, aliases: number): void {
    this.#aliases.reset(aliases);
    const out = this.#out;
    this.#quota = window - out.inflight.size;
    for (const [id, p] of out.inflightInOrder()) {
      if (sessionPresent) {
        if (p.state === 'publish') this.#host.write(this.#aliases.apply({ ...p.packet, dup: true }));
        else this.#host.write({ type: 'pubrel', packetId: id });
      } else if (p.state === 'pubrel') {
        out.inflight.delete(id);
        out.release(id);
        this.#quota++;
        this.#store?.removed(p.key);
        this.#settle(p, undefined, SUCCESS);
      } else this.#host.write(this.#aliases.apply({ ...p.packet, dup: false }));
    }
    this.#drain();
  }

  /** The client stops: every pending publish is rejected with `err` (the store keeps them for the next process). */
  closeAll(err: Error): void {
    for (const p of this.#out.drainAll()) this.#settle(p, err);
  }

  acked(id: number, type: 'puback' | 'pubcomp', code: number, reasonString: string | undefined): void {
    const p = this.#out.inflight.get(id);
    if (p === undefined || (type === 'puback') !== (p.packet.qos === 1)) return;
    this.#out.inflight.delete(id);
    this.#out.release(id);
    this.#quota++;
    this.#store?.removed(p.key);
    if (code >= 0x80) this.#settle(p, new RefusedError('PUBLISH', code, reasonString));
    else this.#settle(p, undefined, reasonString === undefined ? resultOf(code) : { reasonCode: code, reasonString });
    this.#drain();
  }

  pubrec(id: number, code: number, reasonString: string | undefined): void {
    const p = this.#out.inflight.get(id);
    if (p === undefined || p.packet.qos !== 2) {
      this.#host.write(this.#host.version === 5 ? { type: 'pubrel', packetId: id, reasonCode: 0x92 } : { type: 'pubrel', packetId: id });
      return;
    }
    if (code >= 0x80) {
      this.#out.inflight.delete(id);
      this.#out.release(id);
      this.#quota++;
      this.#store?.removed(p.key);
      this.#settle(p, new RefusedError('PUBLISH', code, reasonString));
      this.#drain();
      return;
    }
    p.state = 'pubrel';
    this.#store?.released(p.key);
    this.#host.writeAck(0x62, id);
  }

  publish(topic: string, payload: Payload, options: PublishOptions = {}): Promise<PublishResult> {
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    if (topic !== this.#validTopic) {
      const bad = checkTopicName(topic);
      if (bad !== null) return Promise.reject(new ClientError('INVALID', bad));
      this.#validTopic = topic;
    }
    const qos = options.qos ?? 0;
    if (qos > this.#host.server().maximumQoS)
      return Promise.reject(new LimitError(`QoS ${qos} is above the server's Maximum QoS ${this.#host.server().maximumQoS}`));
    if (options.retain === true && !this.#host.server().retainAvailable) return Promise.reject(new LimitError('the server does not support retained messages'));
    const bytes = encodePayload(payload);
    const packet: PublishPacket = { type: 'publish', topic, payload: bytes, qos, retain: options.retain ?? false, dup: false };
    if (options.properties !== undefined && this.#host.version === 5) packet.properties = toProperties(options.properties);
    if (qos === 0) {
      if (!this.#host.connected()) return Promise.reject(new ClientError('OFFLINE', 'not connected: QoS 0 messages are not queued'));
      try {
        this.#checkSize(packet);
        this.#host.write(this.#aliases.apply(packet));
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
      return Promise.resolve(SUCCESS);
    }
    return new Promise<PublishResult>((resolve, reject) => {
      const p: PendingPublish = {
        key: this.#nextKey++,
        packet,
        size: bytes.length + topic.length,
        state: 'queued',
        settled: false,
        resolve,
        reject,
        unlink: undefined,
      };
      try {
        this.#checkSize(packet);
        if (this.#host.connected() && this.#quota > 0 && this.#out.queue.length === 0) {
          this.#store?.added(toStored(p));
          this.#send(p);
        } else {
          this.#out.enqueue(p);
          this.#store?.added(toStored(p));
        }
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      if (signal !== undefined && !p.settled) {
        // Aborting drops a message not yet sent; one in flight still completes on the wire, only the promise is released.
        const onAbort = () => {
          if (p.state === 'queued' && this.#out.remove(p)) this.#store?.removed(p.key);
          this.#settle(p, abortReason(signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        p.unlink = () => signal.removeEventListener('abort', onAbort);
      }
    });
  }

  #checkSize(packet: PublishPacket): void {
    const max = this.#host.server().maximumPacketSize;
    if (max >= 268_435_460) return;
    // Without properties the size has a cheap upper bound: fixed header 5, topic 2 + 3 per UTF-16 unit, id 2, properties 1 + a topic alias 3.
    if (packet.properties === undefined && 14 + packet.topic.length * 3 + packet.payload.length <= max) return;
    const size = encode({ ...packet, packetId: 1 }, this.#host.version).length;
    if (size > max) throw new LimitError(`the PUBLISH is ${size} bytes; the server's Maximum Packet Size is ${max}`);
  }

  #send(p: PendingPublish): boolean {
    const id = this.#out.allocate();
    if (id === undefined) return false;
    p.packet.packetId = id;
    p.state = 'publish';
    this.#store?.sent(p.key, id);
    this.#out.inflight.set(id, p);
    this.#quota--;
    this.#host.write(this.#aliases.apply(p.packet));
    return true;
  }

  #drain(): void {
    while (this.#host.connected() && this.#quota > 0) {
      const p = this.#out.dequeue();
      if (p === undefined) return;
      if (!this.#send(p)) {
        this.#out.requeue(p);
        return;
      }
    }
  }

  #settle(p: PendingPublish, err: Error | undefined, result?: PublishResult): void {
    if (p.settled) return;
    p.settled = true;
    p.unlink?.();
    if (err !== undefined) p.reject(err);
    else p.resolve(result ?? SUCCESS);
  }
}
