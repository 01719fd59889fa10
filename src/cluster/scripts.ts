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
 *                   it changed or gone knows Redis lost its data (it resets, see node.ts)
 *   orphans         SET of dead incarnations whose sessions and inbox are not recovered yet
 *   recover:<nid>   lock (PX lease) of the node recovering the dead incarnation <nid>
 *   moved:<nid>     → nid of the node that adopted the dead <nid>'s sessions: forwards that still
 *                   name <nid> go to that node's inbox, tagged `x <nid>` (PX 1 day)
 *   rec:<nid>       the dead <nid>'s inbox, renamed when its sessions were adopted, replayed by the adopter
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
  };
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
 * stats:<X>, orphans, own:<X>. ARGV: X, leaseMs, force ('1' = without the liveness checks: the
 * same name restarted, or a graceful leave), maxlen of r:log. Without force it succeeds only
 * when the lease is gone and the last heartbeat is older than the lease by Redis time. When X
 * owned sessions, its routes and inbox stay until a survivor has adopted them (X goes to
 * `orphans`, see node.ts); otherwise they go now. Returns 1 when it declared X dead.
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
redis.call('DEL', KEYS[1], KEYS[7])
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
 * Forward batches of one turn, atomically. KEYS: dead:<me>. ARGV: from, destinations (comma-
 * separated), inbox prefix, moved prefix, then per destination: nid, batch. Refused (FENCED)
 * from an incarnation declared dead. A destination whose inbox is gone but whose sessions were
 * adopted gets its batch through the adopter's inbox (tagged x). Returns per destination 1
 * (written), 2 (sent to the adopter) or 0 (gone).
 */
export const FORWARD = `
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.error_reply('FENCED declared dead') end
local out = {}
for i = 5, #ARGV, 2 do
  local nid = ARGV[i]
  local ok = redis.call('XADD', ARGV[3] .. nid, 'NOMKSTREAM', '*', 'f', ARGV[1], 'd', ARGV[2], 'b', ARGV[i + 1])
  if ok then
    out[#out + 1] = 1
  else
    local to = redis.call('GET', ARGV[4] .. nid)
    if to and redis.call('XADD', ARGV[3] .. to, 'NOMKSTREAM', '*', 'x', nid, 'f', ARGV[1], 'b', ARGV[i + 1]) then
      out[#out + 1] = 2
    else
      out[#out + 1] = 0
    end
  end
end
return out`;

/**
 * Route changes of one node, as one log entry. KEYS: node:<nid>, r:<nid>, r:log. ARGV: nid,
 * maxlen, reset ('1' = replace the whole set), then pairs (op, filter) with op '+' or '-'.
 * Refused (error FENCED) when the node holds no lease: a node declared dead cannot bring its
 * routes back.
 */
export const ROUTES = `
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('FENCED lease lost') end
local entry = {'MAXLEN', '~', ARGV[2], '*', 'n', ARGV[1]}
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[2])
  entry[#entry + 1] = 'reset'
  entry[#entry + 1] = ''
end
for i = 4, #ARGV, 2 do
  if ARGV[i] == '+' then redis.call('SADD', KEYS[2], ARGV[i + 1]) else redis.call('SREM', KEYS[2], ARGV[i + 1]) end
  entry[#entry + 1] = ARGV[i]
  entry[#entry + 1] = ARGV[i + 1]
end
return redis.call('XADD', KEYS[3], unpack(entry))`;

/**
 * A retained change, in cluster order. KEYS: ret, ret:ver, ret:log, dead:<me>. ARGV: topic,
 * message ('' = delete), maxlen. Refused (FENCED) from an incarnation declared dead. Returns the
 * change's version.
 */
export const RETAIN = `
if redis.call('EXISTS', KEYS[4]) == 1 then return redis.error_reply('FENCED declared dead') end
local v = redis.call('INCR', KEYS[2])
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'v', v, 't', ARGV[1], 'm', ARGV[2])
return v`;

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
