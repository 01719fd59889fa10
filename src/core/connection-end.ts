/**
 * How a connection ends: the one place that maps an error to the wire (protocol violations,
 * internal errors, a packet too large for the client), the server's DISCONNECT (takeover,
 * shutdown, redirection, kicks), the end itself (sweeper, live connections, the session and its
 * will, the observers), and the graceful close of the stream.
 *
 * Plain functions of the connection's internal interface (connection-internals.ts), like the
 * packet handlers; Connection's methods of the same names call them.
 */
import type { Duplex } from 'node:stream';
import { ConnackReturnCode, PACKET_NAMES, ReasonCode } from '../protocol/constants.js';
import { encode } from '../protocol/encoder.js';
import { UnsupportedProtocolVersionError, type MqttError } from '../protocol/errors.js';
import { noopLogger } from '../options.js';
import { Phase, type ConnectionInternals } from './connection-internals.js';
import type { Connection } from './connection.js';

/** How long a connection being closed by the server may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;
/** What a closing connection reads and drops before it stops reading (closeGracefully). */
const DISCARD_LIMIT = 64 * 1024;

/** The peer broke the protocol: log one line, tell a v5 client why, close; the will goes out. */
export function protocolViolation(c: ConnectionInternals, err: MqttError): void {
  const connected = c.phase === Phase.Connected;
  c.log.warn(
    { clientId: c.client?.clientId, remote: c.remote(), code: err.code, reasonCode: err.reasonCode, statement: err.statement },
    `protocol violation, closing connection: ${err.message}`,
  );
  c.closeReason = `protocol violation: ${err.message}`;
  if (!connected) {
    // [MQTT-3.1.2-2] an unsupported protocol level is answered with a CONNACK the client can
    // read: "MQIsdp" at any level but 3 with the 3.1 return code 0x01; "MQTT" above 5 (a later
    // version, which reads the 5.0 CONNACK) with 5.0's 0x84, below 4 with 3.1.1's 0x01.
    if (err instanceof UnsupportedProtocolVersionError && (err.protocolName === 'MQTT' || err.protocolName === 'MQIsdp')) {
      if (err.protocolName === 'MQTT' && err.protocolLevel > 5) {
        c.output.write(encode({ type: 'connack', sessionPresent: false, reasonCode: ReasonCode.UnsupportedProtocolVersion }, 5));
      } else {
        const v3 = err.protocolName === 'MQIsdp' ? 3 : 4;
        c.output.write(encode({ type: 'connack', sessionPresent: false, reasonCode: ConnackReturnCode.UnacceptableProtocolVersion }, v3));
      }
      // end() (not just the state) so the broker stops counting this connection.
      c.end();
      c.closeGracefully();
      return;
    }
    destroy(c);
    return;
  }
  c.serverDisconnect(err.reasonCode, err.message, true);
}

/** Anything but a protocol violation thrown while handling a packet. */
export function internalError(c: ConnectionInternals, err: unknown): void {
  c.log.error({ err, clientId: c.client?.clientId, remote: c.remote() }, 'internal error while handling a packet; closing the connection');
  c.closeReason = 'internal error';
  if (c.phase === Phase.Connected) c.serverDisconnect(ReasonCode.ImplementationSpecificError, 'internal error', true);
  else destroy(c);
}

/** Server-initiated close of a connected client (5.0: DISCONNECT with a reason code first [MQTT-4.13.1-1]). */
export function disconnectByServer(c: ConnectionInternals, code: number, reason: string, abnormal: boolean): void {
  if (c.phase !== Phase.Connected) return;
  // [MQTT-3.14.2-3] the Reason String only when it fits the client's Maximum Packet Size.
  if (c.version === 5) writeFitting(c, encode({ type: 'disconnect', reasonCode: code, properties: { reasonString: reason } }, 5), code);
  c.closeReason = reason;
  if (!abnormal && c.session !== undefined) c.session.will = undefined;
  c.end();
  c.closeGracefully();
}

/** Server redirection for a connected client: 5.0 DISCONNECT 0x9C/0x9D with Server Reference. */
export function redirect(c: ConnectionInternals, serverReference: string, permanent: boolean): void {
  if (c.phase !== Phase.Connected) return;
  if (c.version === 5) {
    const code = permanent ? ReasonCode.ServerMoved : ReasonCode.UseAnotherServer;
    writeFitting(c, encode({ type: 'disconnect', reasonCode: code, properties: { serverReference } }, 5), code);
  }
  c.closeReason = `redirected to ${serverReference}`;
  c.end();
  c.closeGracefully();
}

/** A packet other than PUBLISH does not fit the client's Maximum Packet Size (see Connection.write). */
export function cannotSend(c: ConnectionInternals, buf: Buffer): void {
  const reason = `${PACKET_NAMES[buf[0]! >> 4]} of ${buf.length} bytes exceeds the client's Maximum Packet Size of ${c.clientMaxPacket}`;
  c.log.warn({ clientId: c.client?.clientId, remote: c.remote() }, `closing connection: ${reason}`);
  if (c.phase === Phase.Connected) {
    c.serverDisconnect(ReasonCode.PacketTooLarge, reason, true);
    return;
  }
  c.closeReason = reason;
  c.end();
  c.closeGracefully();
}

/** A 5.0 DISCONNECT, without its properties if they would not fit the client's Maximum Packet Size, or nothing if even that would not. */
function writeFitting(c: ConnectionInternals, buf: Buffer, code: number): void {
  if (buf.length > c.clientMaxPacket) buf = encode({ type: 'disconnect', reasonCode: code }, 5);
  if (buf.length <= c.clientMaxPacket) c.output.write(buf);
}

/**
 * Runs once, when the connection ends for whatever reason; the will still set (if any) goes out.
 * Takes the Connection itself: the observers are told which one ended.
 */
export function endConnection(c: Connection): void {
  if (c.phase === Phase.Closed) return;
  const wasConnected = c.phase === Phase.Connected;
  c.phase = Phase.Closed;
  c.ctx.sweeper.remove(c);
  c.observer.closed(c);
  if (!wasConnected) return;
  const session = c.session!;
  const client = c.client!;
  const core = c.core;
  if (core.live.get(client.clientId) === c) core.live.delete(client.clientId);
  if (session.outlet === c) {
    core.connectionEnded(session, session.will, Date.now());
  }
  if (c.log !== noopLogger) c.log.info({ clientId: client.clientId, remote: c.remote(), reason: c.closeReason }, 'client disconnected');
  c.observer.disconnected(client, c.closeReason);
}

/** Ends the connection and destroys its stream at once. */
export function destroy(c: ConnectionInternals): void {
  c.end();
  c.destroyStream();
}

/**
 * The broker has decided to close (violation, refusal, takeover, kick): process nothing more
 * [MQTT-4.13.1-1], send what is owed, end the stream, destroy it after a grace period. What the
 * peer sends after the decision is read and dropped up to DISCARD_LIMIT bytes, then the stream
 * is paused (it stops pulling from the kernel): so it costs a few reads, not the grace period's
 * bandwidth, and a peer that closes at once is seen closing (its end is read, and the socket
 * closes without waiting for the grace timer, which ends a peer that does not close).
 * `stream` is the connection's, its own 'data' listener removed already.
 */
export function closeGracefully(c: ConnectionInternals, stream: Duplex): void {
  let dropped = 0;
  const drop = (chunk: Buffer): void => {
    dropped += chunk.length;
    if (dropped < DISCARD_LIMIT) return;
    stream.removeListener('data', drop);
    stream.pause();
  };
  stream.on('data', drop);
  c.output.whenDrained(() => {
    c.flush();
    stream.end();
    setTimeout(() => stream.destroy(), CLOSE_GRACE_MS).unref();
  });
}
