/**
 * RedisStore micro-benchmark: Redis CPU per persistent QoS 1 delivery (one putOutbound with the
 * message inline, one deleteOutbound), measured as the `INFO cpu` delta (used_cpu_user +
 * used_cpu_sys of redis-server) over N deliveries, in turns of T: each turn puts T new entries
 * and deletes the T of the turn before (steady state), across C client ids, then waits for its
 * commit point. The same writes are also sent as MULTI/EXEC (HSET/HDEL, no fence check possible)
 * and as a plain pipeline (not atomic), for comparison.
 *
 *   npx tsx bench/redis-store.ts [--deliveries 20000] [--turn 100] [--clients 10] [--payload 64] [--aof no|always]
 */
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { RedisStore } from '../src/cluster/redis-store.js';
import { encodeOutbound } from '../src/store/outbound-codec.js';
import type { StoredOutbound } from '../src/store/types.js';
import { startRedisServer } from '../test/helpers/redis-server.js';

const { values } = parseArgs({
  options: {
    deliveries: { type: 'string', default: '20000' },
    turn: { type: 'string', default: '100' },
    clients: { type: 'string', default: '10' },
    payload: { type: 'string', default: '64' },
    aof: { type: 'string', default: 'no' },
  },
});
const N = Number(values.deliveries);
const T = Number(values.turn);
const C = Number(values.clients);
const payload = Buffer.alloc(Number(values.payload), 0x61);
const aof = values.aof === 'always';

const entry = (n: number): StoredOutbound => ({
  messageId: 0,
  qos: 1,
  retain: false,
  packetId: (n % 65535) + 1,
  message: { topic: `bench/t/${n % 100}`, payload, qos: 1, retain: false, expiresAt: 0, origin: 'publisher-1' },
});

async function cpuMs(r: Redis): Promise<number> {
  const info = await r.info('cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)![1]);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
  return (user + sys) * 1000;
}

type Turn = (puts: Array<[string, number]>, dels: Array<[string, number]>) => Promise<void>;

async function measure(name: string, probe: Redis, run: Turn): Promise<void> {
  const turns = Math.ceil(N / T);
  const once = async (count: number): Promise<void> => {
    let prev: Array<[string, number]> = [];
    let n = 0;
    for (let t = 0; t < count; t++) {
      const puts: Array<[string, number]> = [];
      for (let i = 0; i < T; i++, n++) puts.push([`client-${n % C}`, n + 1]);
      await run(puts, prev);
      prev = puts;
    }
    await run([], prev);
  };
  await once(Math.max(1, Math.floor(turns / 10))); // warm-up (scripts loaded, hashes allocated)
  const cpu0 = await cpuMs(probe);
  const t0 = performance.now();
  await once(turns);
  const wall = performance.now() - t0;
  const cpu = (await cpuMs(probe)) - cpu0;
  const perDelivery = (cpu * 1000) / (turns * T);
  console.log(
    `${name.padEnd(34)} ${perDelivery.toFixed(2).padStart(6)} µs Redis CPU per delivery   (${(turns * T).toLocaleString('en')} deliveries, ${(wall / 1000).toFixed(2)} s wall)`,
  );
}

const redis = await startRedisServer(aof ? { appendonly: true, appendfsync: 'always' } : {});
try {
  const probe = redis.client();
  console.log(`RedisStore: ${N} QoS 1 deliveries (put + delete), turns of ${T}, ${C} client ids, ${payload.length} B payload, AOF ${aof ? 'always' : 'off'}`);

  const store = new RedisStore({ redis: redis.url, prefix: 'bench:' });
  await store.open();
  await measure('RedisStore (Lua commit, unfenced)', probe, async (puts, dels) => {
    for (const [c, seq] of puts) store.putOutbound(c, seq, entry(seq));
    for (const [c, seq] of dels) store.deleteOutbound(c, seq);
    await store.commitPoint();
  });
  for (let c = 0; c < C; c++) await store.claim(`client-${c}`, 'bench-node');
  await measure('RedisStore (Lua commit, fenced)', probe, async (puts, dels) => {
    for (const [c, seq] of puts) store.putOutbound(c, seq, entry(seq));
    for (const [c, seq] of dels) store.deleteOutbound(c, seq);
    await store.commitPoint();
  });
  await store.close();

  const r = redis.client();
  const out = (c: string): string => `bench2:s:{${c}}:out`;
  /** The same writes netted per key, as RedisStore does: one HSET and one HDEL per client id. */
  const perKey = (puts: Array<[string, number]>, dels: Array<[string, number]>): Map<string, { puts: Array<string | Buffer>; dels: string[] }> => {
    const m = new Map<string, { puts: Array<string | Buffer>; dels: string[] }>();
    const get = (c: string): { puts: Array<string | Buffer>; dels: string[] } => {
      let e = m.get(c);
      if (e === undefined) m.set(c, (e = { puts: [], dels: [] }));
      return e;
    };
    for (const [c, seq] of puts) get(c).puts.push(String(seq), encodeOutbound(entry(seq)));
    for (const [c, seq] of dels) get(c).dels.push(String(seq));
    return m;
  };
  for (const kind of ['MULTI/EXEC', 'pipeline'] as const) {
    await measure(`${kind} (per key, ${kind === 'MULTI/EXEC' ? 'no fence' : 'not atomic'})`, probe, async (puts, dels) => {
      const m = kind === 'MULTI/EXEC' ? r.multi() : r.pipeline();
      for (const [c, w] of perKey(puts, dels)) {
        if (w.puts.length > 0) m.hset(out(c), ...w.puts);
        if (w.dels.length > 0) m.hdel(out(c), ...w.dels);
      }
      await m.exec();
    });
  }
} finally {
  await redis.close();
}
