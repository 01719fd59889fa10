/**
 * parse-requests.ts for a client-only build (the browser build of @courier/client): a client
 * never decodes CONNECT, SUBSCRIBE or UNSUBSCRIBE, which only clients send; a server that sends
 * one breaks the protocol, and the decoder's error ends the connection.
 */
import { ProtocolError } from './errors.js';
import type { ConnectPacket, SubscribePacket, UnsubscribePacket } from './packets.js';

function refuse(name: string): never {
  throw new ProtocolError(`${name} from the server`);
}

export const parseConnect = (): ConnectPacket => refuse('CONNECT');
export const parseSubscribe = (): SubscribePacket => refuse('SUBSCRIBE');
export const parseUnsubscribe = (): UnsubscribePacket => refuse('UNSUBSCRIBE');
