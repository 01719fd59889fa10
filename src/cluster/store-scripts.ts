/**
 * Key layout and Lua scripts of RedisStore (redis-store.ts): persistent-session state in Redis,
 * written by one atomic commit call per event-loop turn, every session write checked against
 * the session's fencing token inside that call.
 *
 * Keys (under the prefix, default `courier:`; `{cid}` is a Redis Cluster hash tag, so the three
 * keys of one session live in one slot):
 *   s:{cid}:meta    HASH  rec → session record (JSON, see store-codec.ts),
 *                         fence → fencing token "<seq>:<nid>", owner → nid of the claimant
 *   s:{cid}:out     HASH  seq (decimal) → outbound entry (outbound-codec.ts)
 *   s:{cid}:in      SET   inbound QoS 2 packet ids not yet released
 *   m:<id>          STRING a message stored once and referenced by outbound entries (the core
 *                         counts the references and deletes it with the last one)
 *   retained        HASH  topic → retained message (single-node use only: in a cluster the
 *                         retained messages live in `ret`/`ret:log`, see scripts.ts)
 *   fence:seq       INCR → fencing token sequence (never reused)
 */

export interface StoreKeys {
  readonly prefix: string;
  readonly retained: string;
  readonly fenceSeq: string;
  meta(clientId: string): string;
  out(clientId: string): string;
  in(clientId: string): string;
  message(id: number): string;
}

export function storeKeys(prefix: string): StoreKeys {
  return {
    prefix,
    retained: `${prefix}retained`,
    fenceSeq: `${prefix}fence:seq`,
    meta: (cid) => `${prefix}s:{${cid}}:meta`,
    out: (cid) => `${prefix}s:{${cid}}:out`,
    in: (cid) => `${prefix}s:{${cid}}:in`,
    message: (id) => `${prefix}m:${id}`,
  };
}

/** What a key under the prefix is, for load(): a session key (with its client id), a message, the retained hash, or something else. */
export type ParsedKey = { kind: 'meta' | 'out' | 'in'; clientId: string } | { kind: 'message'; id: number } | { kind: 'retained' } | { kind: 'other' };

export function parseKey(prefix: string, key: string): ParsedKey {
  if (!key.startsWith(prefix)) return { kind: 'other' };
  const rest = key.slice(prefix.length);
  if (rest === 'retained') return { kind: 'retained' };
  if (rest.startsWith('m:')) {
    const id = Number(rest.slice(2));
    return Number.isSafeInteger(id) && id > 0 ? { kind: 'message', id } : { kind: 'other' };
  }
  if (rest.startsWith('s:{')) {
    for (const kind of ['meta', 'out', 'in'] as const) {
      const suffix = `}:${kind}`;
      if (rest.endsWith(suffix) && rest.length >= 3 + suffix.length) return { kind, clientId: rest.slice(3, rest.length - suffix.length) };
    }
  }
  return { kind: 'other' };
}

/**
 * The commit of one batch of writes, atomically, netted per key (store-batch.ts builds the
 * arguments and says their layout). A client whose token is not '' (unfenced) and differs from
 * its meta's `fence` has all its writes in this call dropped. Deleting a fenced session keeps
 * its fence and owner (the holder may write it again); an unfenced one goes whole.
 * Returns the (1-based) indexes of the fenced clients.
 */
export const COMMIT = `
local n = tonumber(ARGV[1])
local i = 2
local fenced = {}
for c = 1, n do
  local t, d, rec = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local np, nd, na, nr = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6])
  i = i + 7
  local meta, out, inb = KEYS[3 * c - 1], KEYS[3 * c], KEYS[3 * c + 1]
  if t == '' or redis.call('HGET', meta, 'fence') == t then
    if d == 'D' then
      if t == '' then redis.call('DEL', meta) else redis.call('HDEL', meta, 'rec') end
      redis.call('DEL', out, inb)
    end
    if rec ~= '' then redis.call('HSET', meta, 'rec', rec) end
    if np > 0 then redis.call('HSET', out, unpack(ARGV, i, i + 2 * np - 1)) end
    i = i + 2 * np
    if nd > 0 then redis.call('HDEL', out, unpack(ARGV, i, i + nd - 1)) end
    i = i + nd
    if na > 0 then redis.call('SADD', inb, unpack(ARGV, i, i + na - 1)) end
    i = i + na
    if nr > 0 then redis.call('SREM', inb, unpack(ARGV, i, i + nr - 1)) end
    i = i + nr
  else
    fenced[#fenced + 1] = c
    i = i + 2 * np + nd + na + nr
  end
end
local ms, md = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
i = i + 2
local k = 3 * n + 2
for j = 1, ms do
  redis.call('SET', KEYS[k], ARGV[i])
  k = k + 1
  i = i + 1
end
if md > 0 then redis.call('DEL', unpack(KEYS, k, k + md - 1)) end
local rs, rd = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
i = i + 2
if rs > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, i, i + 2 * rs - 1)) end
i = i + 2 * rs
if rd > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, i, i + rd - 1)) end
return fenced`;

/**
 * Takes a session over. KEYS: s:{cid}:meta, fence:seq. ARGV: nid. A new token "<INCR
 * fence:seq>:<nid>" replaces the fence, so every later write carrying an older token is dropped.
 * Returns {token, previous owner or '', 1 when a session record is present else 0}.
 */
export const CLAIM = `
local prev = redis.call('HGET', KEYS[1], 'owner')
local present = redis.call('HEXISTS', KEYS[1], 'rec')
local token = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
redis.call('HSET', KEYS[1], 'fence', token, 'owner', ARGV[1])
return {token, prev or '', present}`;

/**
 * Forgets a session's ownership once it has no record left. KEYS: s:{cid}:meta. ARGV: token.
 * Deletes the meta hash when its fence is `token` (or `token` is '') and it holds no record.
 * Returns 1 when deleted.
 */
export const RELEASE = `
local f = redis.call('HGET', KEYS[1], 'fence')
if ARGV[1] ~= '' and f ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'rec') == 1 then return 0 end
return redis.call('DEL', KEYS[1])`;

/**
 * One session, read atomically with the messages its entries reference. KEYS: s:{cid}:meta,
 * s:{cid}:out, s:{cid}:in. ARGV: the message key prefix (`<prefix>m:`).
 * Returns {meta fields (flat), out fields (flat), inbound ids, referenced ids and messages (flat)}.
 */
export const LOAD_SESSION = `
local meta = redis.call('HGETALL', KEYS[1])
local out = redis.call('HGETALL', KEYS[2])
local inb = redis.call('SMEMBERS', KEYS[3])
local msgs = {}
local seen = {}
for j = 2, #out, 2 do
  local v = out[j]
  -- outbound-codec.ts: flags bit 4 = message inline; else a u32 LE message id at offset 3.
  if #v >= 7 and bit.band(string.byte(v, 1), 16) == 0 then
    local id = struct.unpack('<I4', v, 4)
    if not seen[id] then
      seen[id] = true
      local m = redis.call('GET', ARGV[1] .. id)
      if m then
        msgs[#msgs + 1] = tostring(id)
        msgs[#msgs + 1] = m
      end
    end
  end
end
return {meta, out, inb, msgs}`;
