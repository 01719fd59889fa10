/**
 * Redis key layout and the Lua scripts of the cluster. Every write that must not come from a
 * node that lost its lease (route changes) checks the lease in the same script, atomically;
 * liveness is decided by Redis's own clock (TIME), never by comparing node clocks.
 *
 * Keys (all under the configured prefix, default `courier:`):
 *   node:seq        INCR → node incarnation id (nid), never reused
 *   node:<nid>      lease (PX), value = JSON {name, host, pid, started}
 *   nodes           ZSET nid → Redis time (ms) of the last heartbeat
 *   dead:<nid>      marker that the incarnation was declared dead (PX 1 day); it never returns
 *   name:<name>     → nid of the node's current incarnation
 *   stats:<nid>     JSON counters of the node (PX lease), summed for cluster totals
 *   r:<nid>         SET of the filters the node has interest in (`$share/g/f` for groups)
 *   r:log           STREAM of route changes: n <nid>, then pairs `+ filter` / `- filter`,
 *                   or `drop ''` (node gone) / `reset ''` (reread r:<nid>)
 *   in:<nid>        STREAM, the node's inbox: f <from nid>, b <forward batch (wire.ts)>
 *   ret             HASH topic → retained message (wire.ts encoding)
 *   ret:ver         INCR per retained change; ret:log entries carry it (read-your-writes)
 *   ret:log         STREAM of retained changes: v <ver>, t <topic>, m <message or '' = deleted>
 *   epoch           a random id set by the first node to join an empty Redis; a node that finds
 *                   it changed or gone knows Redis lost its data (it resets, see membership.ts)
 *   orphans         SET of dead incarnations whose sessions and inbox are not recovered yet
 *   recover:<nid>   lock (PX lease) of the node recovering the dead incarnation <nid>
 *   moved:<nid>     → nid of the node that adopted the dead <nid>'s sessions: forwards that still
 *                   name <nid> go to that node's inbox, tagged `x <nid>` (PX 1 day)
 *   rec:<nid>       the dead <nid>'s inbox, renamed when its sessions were adopted, replayed by the adopter
 *   pipe:<nid>      HASH, the calls of incarnation <nid>'s pipeline (outbox.ts) applied so far: `h` the
 *                   number of the last one, `a<n % 1024>` the first answer of a recent call whose
 *                   answer said something (JSON [n, answer]); a call sent again after a reconnect is
 *                   not applied twice (see GUARD). Deleted with the incarnation (DEAD), else it
 *                   expires a day after its last call
 *
 * Inbox entries (in:<nid>): `f <from> d <destinations of that turn, comma-separated> b <batch>`
 * (forwards), `x <dead nid> f <from> b <batch>` (forwards meant for a dead node whose sessions
 * this node adopted), `k <cid> t <token> c <clean>` (a kick: another node claimed the session),
 * `r <cid> e <entry>...` (outbound entries of a session taken over, written by its previous
 * owner after the claim: see store-scripts.ts), `o <cid> f <from> b <batch>` (messages handed
 * over to a session that moved to this node), `b <cid> n <from> s <seq>` (a barrier from the node
 * a session moved to) and `a <cid> n <from> s <seq>` (the answer to a barrier or, with seq 0, to
 * a kick): see move-order.ts.
 */
import type { Redis } from 'ioredis';

export interface Keys {
  readonly prefix: string;
  readonly seq: string;
  readonly nodes: string;
  readonly rlog: string;
  readonly ret: string;
  readonly retVer: string;
  readonly retLog: string;
  readonly epoch: string;
  readonly orphans: string;
  readonly inboxPrefix: string;
  readonly movedPrefix: string;
  node(nid: number): string;
  recover(nid: number): string;
  moved(nid: number): string;
  recovered(nid: number): string;
  own(nid: number): string;
  dead(nid: number): string;
  name(name: string): string;
  stats(nid: number): string;
  routes(nid: number): string;
  inbox(nid: number): string;
  pipe(nid: number): string;
}

export function keys(prefix: string): Keys {
  return {
    prefix,
    seq: `${prefix}node:seq`,
    nodes: `${prefix}nodes`,
    rlog: `${prefix}r:log`,
    ret: `${prefix}ret`,
    retVer: `${prefix}ret:ver`,
    retLog: `${prefix}ret:log`,
    epoch: `${prefix}epoch`,
    orphans: `${prefix}orphans`,
    inboxPrefix: `${prefix}in:`,
    movedPrefix: `${prefix}moved:`,
    node: (nid) => `${prefix}node:${nid}`,
    recover: (nid) => `${prefix}recover:${nid}`,
    moved: (nid) => `${prefix}moved:${nid}`,
    recovered: (nid) => `${prefix}rec:${nid}`,
    own: (nid) => `${prefix}own:${nid}`,
    dead: (nid) => `${prefix}dead:${nid}`,
    name: (name) => `${prefix}name:${name}`,
    stats: (nid) => `${prefix}stats:${nid}`,
    routes: (nid) => `${prefix}r:${nid}`,
    inbox: (nid) => `${prefix}in:${nid}`,
    pipe: (nid) => `${prefix}pipe:${nid}`,
  };
}

/**
 * The call-number guard of the node's pipeline scripts (FORWARD, ROUTES, RETAIN, MARKS). The
 * node's Redis client sends a command again after a reconnect when its answer was lost; if Redis
 * had applied it before the connection broke, its appends would be applied twice (a QoS 2
 * forward delivered twice, a retained message of this node written again over a later one of
 * another node). Every call carries its incarnation's `pipe:<nid>` key and a number that grows by
 * one per call (outbox.ts); the calls of one node go over one connection, in order, and a resend
 * keeps that order, so Redis sees each number after every smaller one it will ever see: a call
 * whose number is not above the last one applied (`h`) was applied already. It is answered as the
 * first time (`seen`; `first` is the stored answer when the script kept one with `keep`) and
 * changes nothing. The calls are single commands, not an ioredis pipeline, because ioredis fails
 * the rest of a partly answered pipeline instead of sending it again (calls.ts). The
 * one way ioredis sends a call out of order is its NOSCRIPT retry (a script cache flushed under a
 * live connection: SCRIPT FLUSH), after which that call would be skipped; docs/clustering.md
 * asks operators not to flush scripts under a running cluster.
 * `gk`/`gn`: the positions of the key and of the number.
 */
function guard(gk: string, gn: string): string {
  return `local gk, gn = ${gk}, tonumber(${gn})
local seen, first = false, nil
if tonumber(redis.call('HGET', gk, 'h') or '0') >= gn then
  seen = true
  local a = redis.call('HGET', gk, 'a' .. (gn % 1024))
  if a then
    local t = cjson.decode(a)
    if t[1] == gn then first = t[2] end
  end
else
  redis.call('HSET', gk, 'h', gn)
  redis.call('PEXPIRE', gk, 86400000)
end
local function keep(answer)
  redis.call('HSET', gk, 'a' .. (gn % 1024), cjson.encode({gn, answer}))
end`;
}

/** Redis time in ms, inside a script. */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Heartbeat. KEYS: node:<nid>, nodes, dead:<nid>, stats:<nid>, epoch. ARGV: nid, leaseMs, info,
 * stats, epoch. Returns -2 when Redis lost its data (the epoch is gone or another), -1 when the
 * incarnation was declared dead (the node must rejoin as a new one), else 1 when the lease was
 * held, 0 when it had lapsed and was taken again (its routes may be gone).
 */
export const HEARTBEAT = `
if redis.call('GET', KEYS[5]) ~= ARGV[5] then return -2 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
${NOW}
local had = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[2])
return had`;

/**
 * Declares an incarnation dead. KEYS: node:<X>, nodes, dead:<X>, r:<X>, r:log, in:<X>,
 * stats:<X>, orphans, own:<X>, pipe:<X>. ARGV: X, leaseMs, force ('1' = without the liveness checks: the
 * same name restarted, or a graceful leave), maxlen of r:log. Without force it succeeds only
 * when the lease is gone and the last heartbeat is older than the lease by Redis time. When X
 * owned sessions, its routes and inbox stay until a survivor has adopted them (X goes to
 * `orphans`, see membership.ts); otherwise they go now. X's pipeline guard goes too: every pipeline
 * script refuses a dead incarnation's calls from now on. Returns 1 when it declared X dead.
 */
export const DEAD = `
if ARGV[3] ~= '1' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
  local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if not score then return 0 end
  ${NOW}
  if now - tonumber(score) < tonumber(ARGV[2]) then return 0 end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], '1', 'PX', 86400000)
redis.call('DEL', KEYS[1], KEYS[7], KEYS[10])
if redis.call('SCARD', KEYS[9]) > 0 or redis.call('XLEN', KEYS[6]) > 0 then
  redis.call('SADD', KEYS[8], ARGV[1])
else
  redis.call('DEL', KEYS[4], KEYS[6])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'n', ARGV[1], 'drop', '')
end
return 1`;

/**
 * The switch of a dead node's interest to its adopter, in one step every node applies at once.
 * KEYS: node:<me>, r:<me>, r:log, r:<X>, in:<X>, rec:<X>, moved:<X>. ARGV: me, maxlen, X, then
 * the filters the adopted sessions add to the adopter's interest. Refused (FENCED) without a
 * lease. One r:log entry drops X's routes and adds the filters; X's inbox becomes rec:<X> (to be
 * replayed by the adopter) and forwards that still name X go to the adopter (moved:<X>).
 */
export const SWITCH = `
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('FENCED lease lost') end
local entry = {'MAXLEN', '~', ARGV[2], '*', 'n', ARGV[1], 'drop', ARGV[3]}
for i = 4, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
  entry[#entry + 1] = '+'
  entry[#entry + 1] = ARGV[i]
end
redis.call('DEL', KEYS[4])
redis.call('SET', KEYS[7], ARGV[1], 'PX', 86400000)
if redis.call('EXISTS', KEYS[5]) == 1 then
  if redis.call('EXISTS', KEYS[6]) == 1 then
    -- A recovery before this one was cut short: what it left is replayed with the rest.
    for _, e in ipairs(redis.call('XRANGE', KEYS[5], '-', '+')) do
      local f = e[2]
      redis.call('XADD', KEYS[6], '*', unpack(f))
    end
    redis.call('DEL', KEYS[5])
  else
    redis.call('RENAME', KEYS[5], KEYS[6])
  end
end
return redis.call('XADD', KEYS[3], unpack(entry))`;

/**
 * Forward batches of one turn, atomically. KEYS: dead:<me>, pipe:<me>. ARGV: from, destinations
 * (comma-separated), inbox prefix, moved prefix, call number (see guard), then per destination:
 * nid, batch. Refused (FENCED) from an incarnation declared dead. A destination whose inbox is
 * gone but whose sessions were adopted gets its batch through the adopter's inbox (tagged x).
 * Returns per destination 1 (written), 2 (sent to the adopter) or 0 (gone).
 */
export const FORWARD = `
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('FENCED declared dead') end
${guard('KEYS[2]', 'ARGV[5]')}
local out = {}
if seen then
  if first then return first end
  for i = 6, #ARGV, 2 do out[#out + 1] = 1 end
  return out
end
local said = false
for i = 6, #ARGV, 2 do
  local nid = ARGV[i]
  local ok = redis.call('XADD', ARGV[3] .. nid, 'NOMKSTREAM', '*', 'f', ARGV[1], 'd', ARGV[2], 'b', ARGV[i + 1])
  if ok then
    out[#out + 1] = 1
  else
    said = true
    local to = redis.call('GET', ARGV[4] .. nid)
    if to and redis.call('XADD', ARGV[3] .. to, 'NOMKSTREAM', '*', 'x', nid, 'f', ARGV[1], 'b', ARGV[i + 1]) then
      out[#out + 1] = 2
    else
      out[#out + 1] = 0
    end
  end
end
if said then keep(out) end
return out`;

/**
 * Route changes of one node, as one log entry. KEYS: node:<nid>, r:<nid>, r:log, pipe:<nid>.
 * ARGV: nid, maxlen, reset ('1' = replace the whole set), call number (see guard), then pairs
 * (op, filter) with op '+' or '-'. Refused (error FENCED) when the node holds no lease: a node
 * declared dead cannot bring its routes back. Returns the log entry's id ('' for a call applied
 * before).
 */
export const ROUTES = `
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('FENCED lease lost') end
${guard('KEYS[4]', 'ARGV[4]')}
if seen then return '' end
local entry = {'MAXLEN', '~', ARGV[2], '*', 'n', ARGV[1]}
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[2])
  entry[#entry + 1] = 'reset'
  entry[#entry + 1] = ''
end
for i = 5, #ARGV, 2 do
  if ARGV[i] == '+' then redis.call('SADD', KEYS[2], ARGV[i + 1]) else redis.call('SREM', KEYS[2], ARGV[i + 1]) end
  entry[#entry + 1] = ARGV[i]
  entry[#entry + 1] = ARGV[i + 1]
end
return redis.call('XADD', KEYS[3], unpack(entry))`;

/**
 * A retained change, in cluster order. KEYS: ret, ret:ver, ret:log, dead:<me>, pipe:<me>. ARGV:
 * topic, message ('' = delete), maxlen, call number (see guard). Refused (FENCED) from an
 * incarnation declared dead. Returns the change's version (0 for a call applied before: applied
 * again, it would write this node's message over a later one of another node).
 */
export const RETAIN = `
if redis.call('EXISTS', KEYS[4]) == 1 then return redis.error_reply('FENCED declared dead') end
${guard('KEYS[5]', 'ARGV[4]')}
if seen then return 0 end
local v = redis.call('INCR', KEYS[2])
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'v', v, 't', ARGV[1], 'm', ARGV[2])
return v`;

/**
 * Barriers and cuts of one turn (move-order.ts), behind its forwards. KEYS: dead:<me>,
 * pipe:<me>. ARGV: call number (see guard), then per mark: inbox key, kind ('b' or 'c'), client
 * id, the node it speaks for, seq. Refused (FENCED) from an incarnation declared dead. An inbox
 * that no longer exists gets nothing (NOMKSTREAM). Returns per mark 1 (written) or 0 (no inbox).
 */
export const MARKS = `
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('FENCED declared dead') end
${guard('KEYS[2]', 'ARGV[1]')}
local out = {}
if seen then
  if first then return first end
  for i = 2, #ARGV, 5 do out[#out + 1] = 1 end
  return out
end
local said = false
for i = 2, #ARGV, 5 do
  if redis.call('XADD', ARGV[i], 'NOMKSTREAM', '*', ARGV[i + 1], ARGV[i + 2], 'n', ARGV[i + 3], 's', ARGV[i + 4]) then
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
    said = true
  end
end
if said then keep(out) end
return out`;

/** The scripts' command names on the node's Redis client (numbers of KEYS as documented above). */
export function defineScripts(redis: Redis): void {
  redis.defineCommand('courierHeartbeat', { numberOfKeys: 5, lua: HEARTBEAT });
  redis.defineCommand('courierDead', { numberOfKeys: 10, lua: DEAD });
  redis.defineCommand('courierRoutes', { numberOfKeys: 4, lua: ROUTES });
  redis.defineCommand('courierRetain', { numberOfKeys: 5, lua: RETAIN });
  redis.defineCommand('courierForward', { numberOfKeys: 2, lua: FORWARD });
  redis.defineCommand('courierMarks', { numberOfKeys: 2, lua: MARKS });
}

/** The next stream id after `id` ("ms-seq"), for XTRIM MINID of what has been read. */
export function nextId(id: string): string {
  const dash = id.indexOf('-');
  const ms = id.slice(0, dash);
  const seq = BigInt(id.slice(dash + 1)) + 1n;
  return `${ms}-${seq}`;
}

/** Route changes per script call (Lua's unpack has a stack limit). */
export const MAX_ROUTE_OPS = 1000;
/** Approximate caps of the logs (the route log is resynchronised from r:<nid> sets after a gap). */
export const ROUTE_LOG_MAXLEN = 100_000;
export const RETAINED_LOG_MAXLEN = 100_000;
