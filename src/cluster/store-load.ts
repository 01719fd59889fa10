/**
 * RedisStore.load(): the whole snapshot under a prefix, read with SCAN and pipelined reads (for
 * a single node that keeps its store in Redis, and the Store contract suite). Not atomic
 * across keys: meant for a start, before anything writes.
 */
import type { Redis } from 'ioredis';
import { decodeOutbound } from '../store/outbound-codec.js';
import type { StoredOutbound, StoreSnapshot } from '../store/types.js';
import { decodeMessage, decodeSession } from './store-codec.js';
import { parseKey } from './store-scripts.js';

export async function scanSnapshot(redis: Redis, prefix: string): Promise<StoreSnapshot> {
  const r = redis;
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  const snap: StoreSnapshot = { retained: [], sessions: [], messages: new Map(), outbound: new Map(), inbound: new Map() };
  // SCAN may return a key more than once.
  const seen = new Set<string>();
  let cursor = '0';
  do {
    const [next, found] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    const parsed = found.filter((key) => !seen.has(key) && seen.add(key)).map((key) => ({ key, p: parseKey(prefix, key) }));
    const pipe = r.pipeline();
    const readers: Array<(reply: unknown) => void> = [];
    for (const { key, p } of parsed) {
      switch (p.kind) {
        case 'meta':
          pipe.hgetBuffer(key, 'rec');
          readers.push((v) => {
            if (v !== null) snap.sessions.push(decodeSession((v as Buffer).toString()));
          });
          break;
        case 'out':
          pipe.hgetallBuffer(key);
          readers.push((v) => {
            const list: Array<[number, StoredOutbound]> = Object.entries(v as Record<string, Buffer>).map(([seq, b]) => [Number(seq), decodeOutbound(b)]);
            if (list.length > 0)
              snap.outbound.set(
                p.clientId,
                list.sort((a, b) => a[0] - b[0]),
              );
          });
          break;
        case 'in':
          pipe.smembers(key);
          readers.push((v) => {
            const ids = (v as string[]).map(Number).sort((a, b) => a - b);
            if (ids.length > 0) snap.inbound.set(p.clientId, ids);
          });
          break;
        case 'message':
          pipe.getBuffer(key);
          readers.push((v) => {
            if (v !== null) snap.messages.set(p.id, decodeMessage(v as Buffer));
          });
          break;
        case 'retained':
          pipe.hgetallBuffer(key);
          readers.push((v) => {
            for (const [topic, b] of Object.entries(v as Record<string, Buffer>)) snap.retained.push([topic, decodeMessage(b)]);
          });
          break;
        default:
          break;
      }
    }
    if (readers.length === 0) continue;
    const replies = (await pipe.exec()) ?? [];
    replies.forEach(([err, v], i) => {
      if (err !== null) throw err;
      readers[i]!(v);
    });
  } while (cursor !== '0');
  return snap;
}
