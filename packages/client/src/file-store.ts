/**
 * A SessionStore in one append-only journal file (Node). One line per change, written with a
 * synchronous `write` before the packet it describes leaves, so `kill -9` loses nothing that went
 * out; `fsync: true` also survives a machine crash, at the cost of one fsync per change. `load()`
 * replays the journal and rewrites it with only the live records (temp file + rename).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import type { SessionStore, StoredPublish, StoredSession, StoredSubscription } from './store.js';

type Record = Omit<StoredPublish, 'payload'> & { payload: string };
type Line =
  | ['add', Record]
  | ['sent', number, number]
  | ['rel', number]
  | ['del', number]
  | ['in', number, boolean]
  | ['inclear']
  | ['sub', StoredSubscription]
  | ['unsub', string];

export function fileStore(path: string, options: { fsync?: boolean } = {}): SessionStore {
  let fd: number | undefined;
  const fsync = options.fsync === true;
  const append = (line: Line): void => {
    if (fd === undefined) return;
    writeSync(fd, `${JSON.stringify(line)}\n`);
    if (fsync) fsyncSync(fd);
  };
  return {
    async load(): Promise<StoredSession> {
      const pubs = new Map<number, StoredPublish>();
      const inbound = new Set<number>();
      const subs = new Map<string, StoredSubscription>();
      if (existsSync(path)) {
        for (const text of readFileSync(path, 'utf8').split('\n')) {
          if (text === '') continue;
          let line: Line;
          try {
            line = JSON.parse(text) as Line;
          } catch {
            break; // a torn last line (killed mid-write): what came before is whole
          }
          switch (line[0]) {
            case 'add':
              pubs.set(line[1].key, { ...line[1], payload: Buffer.from(line[1].payload, 'base64') });
              break;
            case 'sent': {
              const p = pubs.get(line[1]);
              if (p !== undefined) {
                p.packetId = line[2];
                p.state = 'publish';
              }
              break;
            }
            case 'rel': {
              const p = pubs.get(line[1]);
              if (p !== undefined) p.state = 'pubrel';
              break;
            }
            case 'del':
              pubs.delete(line[1]);
              break;
            case 'in':
              if (line[2]) inbound.add(line[1]);
              else inbound.delete(line[1]);
              break;
            case 'inclear':
              inbound.clear();
              break;
            case 'sub':
              subs.set(line[1].topicFilter, line[1]);
              break;
            case 'unsub':
              subs.delete(line[1]);
              break;
          }
        }
      }
      const session: StoredSession = {
        publishes: [...pubs.values()].sort((a, b) => a.key - b.key),
        inboundQos2: [...inbound],
        subscriptions: [...subs.values()],
      };
      // Compact: only live records, written aside and renamed over the journal.
      const lines: string[] = [];
      for (const p of session.publishes) {
        lines.push(JSON.stringify(['add', { ...p, payload: Buffer.from(p.payload).toString('base64') }]));
        if (p.packetId !== undefined) lines.push(JSON.stringify(['sent', p.key, p.packetId]));
        if (p.state === 'pubrel') lines.push(JSON.stringify(['rel', p.key]));
      }
      for (const id of session.inboundQos2) lines.push(JSON.stringify(['in', id, true]));
      for (const sub of subs.values()) lines.push(JSON.stringify(['sub', sub]));
      writeFileSync(`${path}.tmp`, lines.length ? `${lines.join('\n')}\n` : '');
      renameSync(`${path}.tmp`, path);
      fd = openSync(path, 'a');
      return session;
    },
    added: (p) => append(['add', { ...p, payload: Buffer.from(p.payload).toString('base64') }]),
    sent: (key, id) => append(['sent', key, id]),
    released: (key) => append(['rel', key]),
    removed: (key) => append(['del', key]),
    inbound: (id, awaiting) => append(['in', id, awaiting]),
    clearInbound: () => append(['inclear']),
    subscribed: (sub) => append(['sub', sub]),
    unsubscribed: (topicFilter) => append(['unsub', topicFilter]),
    async close(): Promise<void> {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}
