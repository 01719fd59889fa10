/**
 * encode-responses.ts for a client-only build (the browser build of @courier/client): a client
 * never sends CONNACK, SUBACK or UNSUBACK, which only servers send.
 */
import { InvalidPacketError } from './errors.js';

function refuse(name: string): never {
  throw new InvalidPacketError(`${name} is sent by servers only`);
}

export const encodeConnack = (): Buffer => refuse('CONNACK');
export const encodeSuback = (): Buffer => refuse('SUBACK');
export const encodeUnsuback = (): Buffer => refuse('UNSUBACK');
