/** A session as RedisStore's CLAIM, ADOPT and LOAD_SESSION scripts return it, decoded. */
import type { StoredMessage, StoredOutbound } from '../store/types.js';
import { decodeOutbound } from '../store/outbound-codec.js';
import { decodeMessage, decodeSession } from './store-codec.js';
import type { Flat } from './store-connection.js';
import type { LoadedSession } from './store-types.js';

/** A session as read by a script: meta fields, outbound fields and inbound ids (flat). */
export function parseSession(meta: Flat, out: Flat, inb: Flat, messages: Map<number, StoredMessage>): LoadedSession {
  const fields = new Map<string, Buffer>();
  for (let i = 0; i + 1 < meta.length; i += 2) fields.set(meta[i]!.toString(), meta[i + 1]!);
  const rec = fields.get('rec');
  const outbound: Array<[number, StoredOutbound]> = [];
  for (let i = 0; i + 1 < out.length; i += 2) outbound.push([Number(out[i]!.toString()), decodeOutbound(out[i + 1]!)]);
  outbound.sort((a, b) => a[0] - b[0]);
  return {
    session: rec === undefined ? undefined : decodeSession(rec.toString()),
    outbound,
    inbound: inb.map((b) => Number(b.toString())).sort((a, b) => a - b),
    messages,
    fence: fields.get('fence')?.toString(),
    owner: fields.get('owner')?.toString(),
  };
}

/** Messages as read by a script: id/value pairs (flat). */
export function parseMessages(msgs: Flat): Map<number, StoredMessage> {
  const messages = new Map<number, StoredMessage>();
  for (let i = 0; i + 1 < msgs.length; i += 2) messages.set(Number(msgs[i]!.toString()), decodeMessage(msgs[i + 1]!));
  return messages;
}
