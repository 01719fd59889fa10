/**
 * A decoded packet to its handler: while connecting only CONNECT (then AUTH during an enhanced
 * authentication exchange), once connected by type. The Connection calls it for each packet it
 * is not holding; a handler that finds a violation throws, and the Connection answers it.
 */
import { ProtocolError } from '../protocol/errors.js';
import type { Packet } from '../protocol/packets.js';
import { onAuth, onConnect, onDisconnect } from './connect.js';
import { Phase, type ConnectionInternals } from './connection-internals.js';
import { onPublish, onPubrec, onPubrel } from './publish.js';
import { onSubscribe, onUnsubscribe } from './subscribe.js';

export function dispatch(c: ConnectionInternals, p: Packet): void {
  if (c.phase === Phase.Connecting) {
    // The decoder only lets a CONNECT through first [MQTT-3.1.0-1].
    if (p.type === 'connect' && c.auth === undefined) onConnect(c, p);
    else if (p.type === 'auth' && c.auth !== undefined) onAuth(c, p);
    // 5.0 §4.12: during an authentication exchange only AUTH may come from the client.
    else throw new ProtocolError(`${p.type.toUpperCase()} while authentication is in progress`, '[MQTT-3.1.0-2]');
    return;
  }
  switch (p.type) {
    case 'publish':
      onPublish(c, p);
      break;
    case 'puback':
      c.session!.complete(p.packetId, Date.now());
      break;
    case 'pubrec':
      onPubrec(c, p.packetId, p.reasonCode ?? 0);
      break;
    case 'pubrel':
      onPubrel(c, p.packetId);
      break;
    case 'pubcomp':
      c.session!.complete(p.packetId, Date.now());
      break;
    case 'subscribe':
      onSubscribe(c, p);
      break;
    case 'unsubscribe':
      onUnsubscribe(c, p);
      break;
    case 'pingreq':
      c.write(Buffer.from([0xd0, 0]));
      break;
    case 'disconnect':
      onDisconnect(c, p);
      break;
    case 'connect':
      throw new ProtocolError('a second CONNECT on the same connection', '[MQTT-3.1.0-2]');
    case 'auth':
      onAuth(c, p);
      break;
    default:
      throw new ProtocolError(`a client must not send ${p.type.toUpperCase()}`);
  }
}
