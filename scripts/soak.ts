/**
 * Soak run (issue 19): a real `courier` process under mixed load for a bounded time, its memory
 * sampled, and nothing lost. Not part of `npm test`.
 *
 *   npm run soak -- [--minutes 30] [--workers N] [--rate 50] [--publishers 3] [--persistent 6]
 *                   [--clean 4] [--cut 0.5] [--warmup M] [--sample 10] [--out samples.json] [--max-queued 100000]
 *                   [--log broker.jsonl] [--courier-args='--workers-balance rr']
 *
 * The broker is `node bin/courier.js` (dist/: run `npm run build` first; a dist/ older than src/ is
 * refused) on 127.0.0.1 with a fresh data dir (LMDB; with
 * --workers N its workers and private redis-server), logging at info, with
 * sessions.maxQueuedMessages = --max-queued (a small value makes offline queues overflow: the run
 * must then report lost messages, which is how the loss check itself is checked), and
 * --courier-args added to its command line (one string, split at spaces; with `=`, since it
 * starts with `--`).
 * Load (MQTT.js clients, MQTT 3.1.1 and 5.0 mixed; scripts/soak/load.ts):
 *   publishers   --publishers each at QoS 0, 1 and 2 (persistent sessions), --rate msg/s each, on
 *                soak/<qos>/p<i>/<seq % 10>, payload "<i>:<seq>"
 *   stable       "all" (soak/# QoS 2, persistent) and "three" (soak/+/+/3 QoS 1, persistent)
 *   persistent   --persistent sessions subscribed to soak/1/# and soak/2/# (QoS 2 or 1) that go
 *                offline for 0.5–4 s every 4–15 s, half with DISCONNECT, half by cutting the socket
 *                (--cut: the share that cut the socket)
 *   clean        --clean clean sessions (soak/0/# QoS 0, soakret/+ QoS 1) that live 3–10 s; half
 *                carry a will on soakwill/<id> and end by cutting the socket
 *   retained     one publisher setting (1 in 10: clearing) soakret/<k>, k < 500, at --rate msg/s
 * Memory: the summed RSS of the broker's processes every --sample seconds; after --warmup
 * minutes (default: a fifth of the run, at least 1) a least-squares line through the samples.
 * At the end: the load stops, the persistent sessions come back, in-flight publishes complete, and
 * the checks run:
 *   lost         every QoS 1/2 publish that was acknowledged reached every persistent subscriber
 *                whose filters match it at QoS ≥ 1 (sequence numbers per publisher per subscriber)
 *   duplicates   no QoS 2 message reached a QoS 2 subscription twice (a receiver that drops a
 *                re-sent PUBLISH with a packet id still awaiting PUBREL, as the spec's method B)
 *   retained     a fresh subscriber to soakret/+ gets exactly the last value of every key
 *   wills        every will of a cut clean session was published once
 *   growth       the fitted RSS line rises by more than max(8 MiB, 10 % of the mean) over the
 *                window, the last third of the samples sits above the first, and the second half
 *                of the window alone still rises (track.ts; a one-time step is reported only)
 * The last line is `RESULT: PASS ...` or `RESULT: FAIL ...`; exit code 0 on PASS, 1 on FAIL, 2 when
 * the hard time limit (minutes + 6) ends it. Only processes it started are signalled (by PID).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cpuMicros } from '../bench/proc.js';
import { ProcessGroup } from '../test/helpers/processes.js';
import { resolveEntry, startCourier } from '../test/helpers/courier-process.js';
import { Load, type LoadOptions } from './soak/load.js';
import { processTree, treeRss } from './soak/procs.js';
import { clearGrowth, trend, type Sample } from './soak/track.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    workers: { type: 'string' },
    rate: { type: 'string', default: '50' },
    publishers: { type: 'string', default: '3' },
    persistent: { type: 'string', default: '6' },
    clean: { type: 'string', default: '4' },
    cut: { type: 'string', default: '0.5' },
    warmup: { type: 'string' },
    sample: { type: 'string', default: '10' },
    out: { type: 'string' },
    'max-queued': { type: 'string', default: '100000' },
    log: { type: 'string' },
    'courier-args': { type: 'string' },
  },
});
const MINUTES = Number(values.minutes);
const WARMUP_MIN = values.warmup !== undefined ? Number(values.warmup) : Math.max(1, MINUTES / 5);
const SAMPLE_S = Number(values.sample);
const t0 = Date.now();
const since = (): number => (Date.now() - t0) / 1000;
const log = (msg: string): void => console.log(`[${since().toFixed(0).padStart(5)} s] ${msg}`);
const mib = (b: number): string => (b / 1048576).toFixed(1);

const hardStop = setTimeout(
  () => {
    console.log('RESULT: FAIL hard time limit reached');
    process.exit(2);
  },
  (MINUTES + 6) * 60_000,
);
hardStop.unref();

async function main(): Promise<number> {
  if (resolveEntry() !== 'dist') throw new Error('dist/ is older than src/ (or missing): run npm run build first');
  const group = new ProcessGroup();
  const args = [...(values.workers !== undefined ? ['--workers', values.workers] : []), ...(values['courier-args'] ?? '').split(/\s+/).filter((a) => a !== '')];
  const broker = await startCourier(group, {
    // What users run (npm run build first: a dist/ older than src/ is refused below).
    entry: 'dist',
    wsPort: 'off',
    args,
    // Offline windows of a few seconds at the default rates stay far below this; a queue that
    // fills drops messages by design, which the run would report as lost.
    env: { COURIER_SESSIONS__MAX_QUEUED_MESSAGES: values['max-queued'] },
    readyTimeoutMs: 60_000,
  });
  log(`courier pid ${broker.pid} (${broker.entry}) on ${broker.url}${args.length > 0 ? ` ${args.join(' ')}` : ''}`);

  const opts: LoadOptions = {
    url: broker.url,
    rate: Number(values.rate),
    publishersPerQos: Number(values.publishers),
    persistent: Number(values.persistent),
    clean: Number(values.clean),
    cut: Number(values.cut),
    log,
  };
  const load = new Load(opts);
  await load.start();
  log(`load running: ${load.describe()}`);

  const samples: Sample[] = [];
  let lastT = since();
  const cpuNow = (): number => processTree(broker.pid).reduce((s, p) => s + safeCpu(p), 0);
  let lastCpu = cpuNow();
  const endAt = t0 + MINUTES * 60_000;
  let lastCounts = load.counts();
  while (Date.now() < endAt) {
    await sleep(Math.min(SAMPLE_S * 1000, Math.max(0, endAt - Date.now())));
    if (broker.exit() !== undefined) {
      log(`broker exited: ${JSON.stringify(broker.exit())}`);
      break;
    }
    const { rss, anon, processes } = treeRss(broker.pid);
    const t = since();
    const cpu = cpuNow();
    const counts = load.counts();
    const dt = t - lastT;
    samples.push({ t, rss, anon, self: process.memoryUsage().rss });
    log(
      `rss ${mib(rss)} MiB (anon ${mib(anon)}, ${processes} processes), cpu ${(((cpu - lastCpu) / 1e6 / dt) * 100).toFixed(0)} %, ` +
        `in ${((counts.published - lastCounts.published) / dt).toFixed(0)}/s, out ${((counts.received - lastCounts.received) / dt).toFixed(0)}/s, ` +
        `sessions offline/online cycles ${counts.cycles}, clean ${counts.cleanSessions}`,
    );
    lastCpu = cpu;
    lastT = t;
    lastCounts = counts;
  }

  log('stopping the load and draining');
  const brokerAlive = broker.exit() === undefined;
  const report = brokerAlive ? await load.finish() : undefined;
  const tr = trend(samples, WARMUP_MIN * 60);
  const growth = clearGrowth(samples, WARMUP_MIN * 60);
  if (values.out !== undefined) writeFileSync(values.out, JSON.stringify({ samples, trend: tr, report }, null, 2));
  // SIGTERM first: with --workers the primary stops its private redis-server, which runs in a
  // process group of its own and would outlive a SIGKILLed primary.
  await broker.sigterm(30_000).catch(() => undefined);
  await group.killAll();
  // The broker's warnings and errors, counted by message (every line in --log FILE, JSON lines).
  const logs = broker.logs();
  if (values.log !== undefined) writeFileSync(values.log, logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const notable = new Map<string, number>();
  for (const l of logs)
    if (l.level === 'warn' || l.level === 'error' || l.level === 'fatal') notable.set(`${l.level}: ${l.msg}`, (notable.get(`${l.level}: ${l.msg}`) ?? 0) + 1);
  console.log(`broker warnings and errors: ${notable.size === 0 ? 'none' : [...notable].map(([m, n]) => `${n} × ${m}`).join('; ')}`);

  const failures: string[] = [];
  if (!brokerAlive) failures.push('broker exited');
  if (report !== undefined) {
    console.log(report.lines.join('\n'));
    failures.push(...report.failures);
  }
  console.log(
    `memory after ${WARMUP_MIN} min warm-up: ${tr.n} samples over ${tr.minutes.toFixed(1)} min, mean ${mib(tr.meanRss)} MiB, ` +
      `slope ${tr.slopeKiBPerMin.toFixed(1)} KiB/min (r² ${tr.r2.toFixed(2)}), fitted change ${mib(growth.fittedBytes)} MiB ` +
      `(limit ${mib(growth.limitBytes)}), second half alone ${mib(growth.secondHalfBytes)} MiB, first/last third median ${mib(tr.firstThird)} / ${mib(tr.lastThird)} MiB` +
      (growth.step ? ' — a step, not a continuing rise (see the samples)' : ''),
  );
  const anon = trend(samples, WARMUP_MIN * 60, (s) => s.anon);
  console.log(
    `anonymous part (heaps): mean ${mib(anon.meanRss)} MiB, slope ${anon.slopeKiBPerMin.toFixed(1)} KiB/min (r² ${anon.r2.toFixed(2)}), ` +
      `first/last third median ${mib(anon.firstThird)} / ${mib(anon.lastThird)} MiB`,
  );
  if (growth.growing) failures.push(`RSS grows ${tr.slopeKiBPerMin.toFixed(0)} KiB/min`);
  const summary =
    `${MINUTES} min${values.workers !== undefined ? `, --workers ${values.workers}` : ''}, ` +
    `${report?.published ?? 0} published, ${report?.delivered ?? 0} delivered, lost ${report?.lost ?? '?'}, ` +
    `QoS 2 duplicates ${report?.qos2Duplicates ?? '?'}, RSS slope ${tr.slopeKiBPerMin.toFixed(1)} KiB/min`;
  console.log(failures.length === 0 ? `RESULT: PASS ${summary}` : `RESULT: FAIL ${summary}: ${failures.join('; ')}`);
  return failures.length === 0 ? 0 : 1;
}

function safeCpu(pid: number): number {
  try {
    return cpuMicros(pid);
  } catch {
    return 0;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    console.log(`RESULT: FAIL ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
