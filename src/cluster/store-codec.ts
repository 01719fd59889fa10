/**
 * Encodings of RedisStore's values. Messages (stored, retained, a session's will) use the
 * outbound entry codec with the message inline (src/store/outbound-codec.ts: binary, payload
 * last, properties as JSON); the session record is JSON, its will message as base64 of that.
 */
import { decodeOutbound, encodeOutbound } from '../store/outbound-codec.js';
import type { StoredMessage, StoredSession } from '../store/types.js';

export function encodeMessage(m: StoredMessage): Buffer {
  return encodeOutbound({ messageId: 0, qos: m.qos, retain: m.retain, message: m });
}

export function decodeMessage(b: Buffer): StoredMessage {
  const m = decodeOutbound(b).message;
  if (m === undefined) throw new Error('RedisStore: a stored message value without its message');
  return m;
}

interface SessionJson extends Omit<StoredSession, 'will'> {
  will?: { message: string; delaySeconds: number };
}

export function encodeSession(s: StoredSession): string {
  const j: SessionJson = {
    ...s,
    will: s.will === undefined ? undefined : { message: encodeMessage(s.will.message).toString('base64'), delaySeconds: s.will.delaySeconds },
  };
  return JSON.stringify(j);
}

export function decodeSession(text: string): StoredSession {
  const j = JSON.parse(text) as SessionJson;
  const { will, ...rest } = j;
  const s: StoredSession = rest;
  if (will !== undefined) s.will = { message: decodeMessage(Buffer.from(will.message, 'base64')), delaySeconds: will.delaySeconds };
  return s;
}
