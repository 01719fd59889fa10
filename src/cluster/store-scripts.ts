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
 *   own:<nid>       SET   client ids whose session node <nid> claimed (in a cluster: what the
 *                         survivors adopt when <nid> dies)
 *
 * In a cluster the fence hash also holds `top`: the highest outbound seq present when the
 * session was claimed. A commit of a fenced client hands its new outbound entries (seq above
 * `top`: written after the claim, so the claimant never saw them) to the new owner's inbox
 * (`in:<owner>`, an `r` entry) instead of dropping them: nothing in flight during a takeover is
 * lost. The scripts that name keys of other nodes (inboxes, leases, own sets) build them from a
 * prefix given in ARGV: Courier's cluster runs on one Redis primary (or Sentinel), not Redis Cluster.
 */

export interface StoreKeys {
  readonly prefix: string;
  readonly retained: string;
  readonly fenceSeq: string;
  meta(clientId: string): string;
  out(clientId: string): string;
  in(clientId: string): string;
  message(id: number): string;
  own(nid: string | number): string;
  /** One RedisStore's record of its last commit call (`s`) and of the answers of recent ones that reported something (`r<n>`); expires 5 min after its last call. */
  done(storeId: string): string;
  /** Prefixes of other nodes' keys, for the scripts (see above). */
  readonly ownPrefix: string;
  readonly inboxPrefix: string;
  readonly leasePrefix: string;
  readonly movedPrefix: string;
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
    own: (nid) => `${prefix}own:${nid}`,
    done: (id) => `${prefix}done:${id}`,
    ownPrefix: `${prefix}own:`,
    inboxPrefix: `${prefix}in:`,
    leasePrefix: `${prefix}node:`,
    movedPrefix: `${prefix}moved:`,
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
 * Returns {fenced, gone}: for each fenced client, its (1-based) index, the token that fenced it
 * (the session's fence now, '' when its meta is gone) and '1' when that claim was a Clean Start
 * (nothing of the session goes on there), else '0', as flat triples; and the (1-based) indexes
 * of the appends whose stream no longer exists.
 */
export const COMMIT = `
-- One command per key, in chunks (Lua's unpack has a stack limit).
local function each(cmd, key, from, to)
  for a = from, to, 2000 do
    local b = a + 1999
    if b > to then b = to end
    redis.call(cmd, key, unpack(ARGV, a, b))
  end
end
-- The call's id (last KEY: this store's done hash; last ARGV: the call's number, growing by one
-- per call): a call that the client sends again after a broken connection, which Redis had
-- applied already, is not applied twice (its appends are not idempotent) and answers as then.
-- The hash lives a day after its last call (a cluster store's commands wait out a Redis outage
-- and are sent again after it, however long) and is deleted when its store closes.
local dk, dseq = KEYS[#KEYS], tonumber(ARGV[#ARGV])
if tonumber(redis.call('HGET', dk, 's') or '0') >= dseq then
  local r = redis.call('HGET', dk, 'r' .. dseq)
  if r then return cjson.decode(r) end
  return {{}, {}}
end
local n = tonumber(ARGV[2])
-- Which clients of the call are fenced, first: an entry put inside another client's atomic unit
-- (a QoS 2 PUBLISH it queued) goes nowhere when that client is fenced (see below).
local fences, isf = {}, {}
do
  local j = 3
  for c = 1, n do
    local fence = redis.call('HGET', KEYS[3 * c - 1], 'fence')
    fences[c] = fence
    isf[c] = not (ARGV[j] == '' or fence == ARGV[j])
    j = j + 9 + 2 * tonumber(ARGV[j + 4]) + tonumber(ARGV[j + 5]) + tonumber(ARGV[j + 6]) + tonumber(ARGV[j + 7]) + 2 * tonumber(ARGV[j + 8])
  end
end
local i = 3
local fenced = {}
for c = 1, n do
  local t, cid, d, rec = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local np, nd, na, nr, ns = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]), tonumber(ARGV[i + 7]), tonumber(ARGV[i + 8])
  i = i + 9
  local meta, out, inb = KEYS[3 * c - 1], KEYS[3 * c], KEYS[3 * c + 1]
  local fence = fences[c]
  if not isf[c] then
    if d == 'D' then
      if t == '' then redis.call('DEL', meta) else redis.call('HDEL', meta, 'rec') end
      redis.call('DEL', out, inb)
    end
    if rec ~= '' then redis.call('HSET', meta, 'rec', rec) end
    if np > 0 then each('HSET', out, i, i + 2 * np - 1) end
    i = i + 2 * np
    if nd > 0 then each('HDEL', out, i, i + nd - 1) end
    i = i + nd
    if na > 0 then each('SADD', inb, i, i + na - 1) end
    i = i + na
    if nr > 0 then each('SREM', inb, i, i + nr - 1) end
    i = i + nr + 2 * ns
  else
    -- Entries written after the claim (seq above top) go to the new owner's inbox (see above),
    -- except those of a QoS 2 PUBLISH whose publisher is fenced too: its packet id is refused
    -- with them, so it sends the message again where it reconnects, and that is routed there.
    local top = tonumber(redis.call('HGET', meta, 'top') or '-1')
    local void = {}
    local sp = i + 2 * np + nd + na + nr
    for j = sp, sp + 2 * ns - 1, 2 do
      if isf[tonumber(ARGV[j + 1])] then void[ARGV[j]] = true end
    end
    fenced[#fenced + 1] = c
    fenced[#fenced + 1] = fence or ''
    fenced[#fenced + 1] = top >= 0 and '0' or '1'
    local owner = redis.call('HGET', meta, 'owner')
    if np > 0 and top >= 0 and owner and ARGV[1] ~= '' then
      local entry = {'NOMKSTREAM', '*', 'r', cid}
      local any = false
      for j = i, i + 2 * np - 1, 2 do
        if tonumber(ARGV[j]) > top and not void[ARGV[j]] then
          entry[#entry + 1] = 'e'
          entry[#entry + 1] = ARGV[j + 1]
          any = true
        end
      end
      if any then redis.call('XADD', ARGV[1] .. owner, unpack(entry)) end
    end
    i = i + 2 * np + nd + na + nr + 2 * ns
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
if rs > 0 then each('HSET', KEYS[1], i, i + 2 * rs - 1) end
i = i + 2 * rs
if rd > 0 then each('HDEL', KEYS[1], i, i + rd - 1) end
i = i + rd
-- What a node's inbox reader has handled, trimmed with the writes it caused (a node that dies
-- leaves exactly the entries whose effects are not committed).
if ARGV[i] ~= '' then redis.call('XTRIM', ARGV[i], 'MINID', ARGV[i + 1]) end
i = i + 2
-- Entries for other nodes' inboxes caused by the same handling (hand-overs, answers): with it.
-- A client's appends (its QoS 2 forwards) go only with its own writes: not when it is fenced.
local gone = {}
local nx, moved = tonumber(ARGV[i]), ARGV[i + 1]
i = i + 2
local skip = {}
for f = 1, #fenced, 3 do skip[fenced[f]] = true end
for x = 1, nx do
  local key, scope, nid, nf = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
  local f1 = i + 4
  if not skip[scope] then
    if not redis.call('XADD', key, 'NOMKSTREAM', '*', unpack(ARGV, f1, f1 + nf - 1)) then
      -- A forward (f <from> d <dests> b <batch>) to a gone inbox: to the adopter of that node's
      -- sessions, tagged with it (as the cluster's FORWARD script does).
      -- Its batch is found by name: the entry's fields are not in fixed places.
      local batch
      for j = f1 + 2, f1 + nf - 2, 2 do
        if ARGV[j] == 'b' then batch = ARGV[j + 1] end
      end
      local to = batch and nid ~= '' and redis.call('GET', moved .. nid)
      if not (to and redis.call('XADD', ARGV[1] .. to, 'NOMKSTREAM', '*', 'x', nid, 'f', ARGV[f1 + 1], 'b', batch)) then
        gone[#gone + 1] = x
      end
    end
  end
  i = f1 + nf
end
redis.call('HSET', dk, 's', dseq)
redis.call('HDEL', dk, 'r' .. (dseq - 1000))
if #fenced > 0 or #gone > 0 then redis.call('HSET', dk, 'r' .. dseq, cjson.encode({fenced, gone})) end
redis.call('PEXPIRE', dk, 86400000)
return {fenced, gone}`;

/**
 * Takes a session over. KEYS: s:{cid}:meta, s:{cid}:out, s:{cid}:in, fence:seq. ARGV: nid,
 * clean ('1' = Clean Start: the stored session is discarded), cid, own prefix, lease prefix,
 * inbox prefix ('' = no cluster: no own sets, no kick). A new token "<INCR fence:seq>:<nid>"
 * replaces the fence, so every later write carrying an older token is dropped (a claim by the
 * owner itself without Clean Start keeps its token). In a cluster the
 * previous owner (another node) loses the client id from its own set and gets a kick in its
 * inbox (while the inbox exists) (`k` cid, `t` token, `c` clean) to close the client's
 * connection and drop its copy. Returns {token, previous owner or '', 1 when a session record
 * was present, 1 when the previous owner held a lease, then (when the previous owner is another
 * node) the meta fields, outbound fields and inbound ids read before a Clean Start discards them}.
 */
export const CLAIM = `
local prev = redis.call('HGET', KEYS[1], 'owner') or ''
local present = redis.call('HEXISTS', KEYS[1], 'rec')
local fence = redis.call('HGET', KEYS[1], 'fence')
local token
if prev == ARGV[1] and ARGV[2] ~= '1' and fence then
  -- Claimed again by its owner (a reconnect to the same node) without Clean Start: the session
  -- there goes on, and so do its commits in flight (a new token would refuse them and hand their
  -- entries back to that node, which has them already: each would be delivered twice).
  token = fence
else
  token = redis.call('INCR', KEYS[4]) .. ':' .. ARGV[1]
end
local cid = ARGV[3]
local alive = 0
local meta, out, inb = {}, {}, {}
if prev ~= ARGV[1] then
  meta = redis.call('HGETALL', KEYS[1])
  out = redis.call('HGETALL', KEYS[2])
  inb = redis.call('SMEMBERS', KEYS[3])
end
local top = 0
for _, s in ipairs(redis.call('HKEYS', KEYS[2])) do
  local v = tonumber(s)
  if v > top then top = v end
end
redis.call('HSET', KEYS[1], 'fence', token, 'owner', ARGV[1], 'top', top)
if ARGV[6] ~= '' then
  if prev ~= '' and prev ~= ARGV[1] then
    redis.call('SREM', ARGV[4] .. prev, cid)
    if redis.call('EXISTS', ARGV[5] .. prev) == 1 then alive = 1 end
    -- Also to a node without a lease whose inbox is still there (dead, not yet recovered): its
    -- recovery learns from the kick where the session went, and hands that node what is waiting.
    redis.call('XADD', ARGV[6] .. prev, 'NOMKSTREAM', '*', 'k', cid, 't', token, 'c', ARGV[2])
  end
  redis.call('SADD', ARGV[4] .. ARGV[1], cid)
end
if ARGV[2] == '1' then
  redis.call('HDEL', KEYS[1], 'rec')
  redis.call('DEL', KEYS[2], KEYS[3])
  -- Nothing of the discarded session is handed over.
  redis.call('HSET', KEYS[1], 'top', -1)
end
return {token, prev, present, alive, meta, out, inb}`;

/**
 * Adopts a session of a dead node. KEYS: s:{cid}:meta, s:{cid}:out, s:{cid}:in, fence:seq.
 * ARGV: dead nid, nid, cid, own prefix. Only while the dead node still owns it (a client that
 * reconnected elsewhere has moved it): claims it for nid and moves the client id between the
 * own sets. Returns {} when not adopted, else {token, meta fields, outbound fields, inbound ids}.
 */
export const ADOPT = `
redis.call('SREM', ARGV[4] .. ARGV[1], ARGV[3])
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return {} end
local token = redis.call('INCR', KEYS[4]) .. ':' .. ARGV[2]
local top = 0
for _, s in ipairs(redis.call('HKEYS', KEYS[2])) do
  local v = tonumber(s)
  if v > top then top = v end
end
redis.call('HSET', KEYS[1], 'fence', token, 'owner', ARGV[2], 'top', top)
redis.call('SADD', ARGV[4] .. ARGV[2], ARGV[3])
return {token, redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('SMEMBERS', KEYS[3])}`;

/**
 * Forgets sessions' ownership once they have no record left: the releases a node asks for in
 * one turn, in one call, in their order. KEYS: s:{cid}:meta of each. ARGV: own prefix ('' =
 * none), then token and cid of each. Deletes a meta hash when its fence is the token (or the
 * token is '') and it holds no record, and takes the client id out of its owner's own set.
 * Returns per release 1 when deleted, else 0.
 */
export const RELEASE = `
local replies = {}
for i = 1, #KEYS do
  local token, cid = ARGV[2 * i], ARGV[2 * i + 1]
  local f = redis.call('HGET', KEYS[i], 'fence')
  if (token ~= '' and f ~= token) or redis.call('HEXISTS', KEYS[i], 'rec') == 1 then
    replies[i] = 0
  else
    local owner = redis.call('HGET', KEYS[i], 'owner')
    if owner and ARGV[1] ~= '' then redis.call('SREM', ARGV[1] .. owner, cid) end
    replies[i] = redis.call('DEL', KEYS[i])
  end
end
return replies`;

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
