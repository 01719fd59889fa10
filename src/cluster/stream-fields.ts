/**
 * Reading Redis stream replies and entries (pure): XREAD's reply as [key, entries] pairs, an
 * entry's fields by name, stream ids compared, and the parts of the inbox entries other modules
 * read too (hand-over entries, barrier marks).
 */

export type Entry = [id: Buffer, fields: Buffer[]];
export type XReadReply = Array<[key: Buffer, entries: Entry[]]> | null;

/** XREAD's reply as [key, entries] pairs (ioredis may hand the map over flattened: key, entries, key, ...). */
export function streamsOf(reply: unknown): XReadReply {
  if (!Array.isArray(reply) || reply.length === 0) return null;
  if (Array.isArray(reply[0])) return reply as Array<[Buffer, Entry[]]>;
  const out: Array<[Buffer, Entry[]]> = [];
  for (let i = 0; i + 1 < reply.length; i += 2) out.push([reply[i] as Buffer, reply[i + 1] as Entry[]]);
  return out;
}

/** The outbound entries of an `r` inbox entry (`r <cid> e <entry> e <entry>...`). */
export function handedOverEntries(fields: Buffer[]): Buffer[] {
  const entries: Buffer[] = [];
  for (let i = 2; i + 1 < fields.length; i += 2) if (fields[i]!.toString() === 'e') entries.push(fields[i + 1]!);
  return entries;
}

/** The node and sequence number of a barrier (`b`) or answer (`a`) entry; undefined when unreadable. */
export function markOf(fields: Buffer[]): { from: number; seq: number } | undefined {
  const from = Number(field(fields, 'n')?.toString());
  const seq = Number(field(fields, 's')?.toString());
  return Number.isInteger(from) && Number.isInteger(seq) ? { from, seq } : undefined;
}

/** The value of a stream entry's field. */
export function field(fields: Buffer[], name: string): Buffer | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]!.toString() === name) return fields[i + 1];
  return undefined;
}

/** Compares two stream ids ("ms-seq"). */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(Number) as [number, number];
  const [bm, bs] = b.split('-').map(Number) as [number, number];
  return am !== bm ? am - bm : (as ?? 0) - (bs ?? 0);
}
