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
 */

export interface Keys {
  readonly prefix: string;
  readonly seq: string;
  readonly nodes: string;
  readonly rlog: string;
  readonly ret: string;
  readonly retVer: string;
  readonly retLog: string;
  node(nid: number): string;
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
    node: (nid) => `${prefix}node:${nid}`,
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
 * Heartbeat. KEYS: node:<nid>, nodes, dead:<nid>, stats:<nid>. ARGV: nid, leaseMs, info, stats.
 * Returns -1 when the incarnation was declared dead (the node must rejoin as a new one), else
 * 1 when the lease was held, 0 when it had lapsed and was taken again (its routes may be gone).
 */
export const HEARTBEAT = `
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
${NOW}
local had = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[2])
return had`;

/**
 * Declares an incarnation dead and removes what it announced. KEYS: node:<X>, nodes, dead:<X>,
 * r:<X>, r:log, in:<X>, stats:<X>. ARGV: X, leaseMs, force ('1' = without the liveness checks:
 * the same name restarted), maxlen of r:log. Without force it succeeds only when the lease is
 * gone and the last heartbeat is older than the lease by Redis time. Returns 1 when it did.
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
redis.call('DEL', KEYS[1], KEYS[4], KEYS[6], KEYS[7])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*', 'n', ARGV[1], 'drop', '')
return 1`;

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
 * A retained change, in cluster order. KEYS: ret, ret:ver, ret:log. ARGV: topic, message ('' =
 * delete), maxlen. Returns the change's version.
 */
export const RETAIN = `
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
