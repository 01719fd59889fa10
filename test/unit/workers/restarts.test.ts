/** The worker restart policy (pure) and the worker spec passed to each worker. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RestartPolicy } from '../../../src/workers/restarts.js';
import { decodeSpec, encodeSpec, workerConfig, workerCount } from '../../../src/workers/spec.js';
import { parseConfig } from '../../../src/config/index.js';

const policy = () => new RestartPolicy({ baseMs: 100, maxDelayMs: 1000, stableMs: 10_000, maxFailures: 5 });

void test('restarts back off while a worker keeps failing, then give up after maxFailures', () => {
  const p = policy();
  const delays: number[] = [];
  let t = 0;
  for (let i = 0; i < 5; i++) {
    p.ready(1, t);
    const d = p.exited(1, (t += 500));
    assert.ok(d.restart);
    delays.push(d.delayMs);
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1000], 'doubling, capped');
  p.ready(1, t);
  assert.deepEqual(p.exited(1, t + 1), { restart: false, failures: 6 });
});

void test('a worker that ran longer than stableMs starts a new run of failures; a worker that never got ready counts as failing', () => {
  const p = policy();
  p.ready(1, 0);
  p.exited(1, 100);
  p.exited(1, 200); // died again before it was ready
  p.ready(1, 300);
  const d = p.exited(1, 300 + 10_000);
  assert.deepEqual(d, { restart: true, failures: 1, delayMs: 100 });
  assert.deepEqual(p.exited(2, 0), { restart: true, failures: 1, delayMs: 100 }, 'slots are independent');
});

void test('the worker spec survives the environment and makes each worker a cluster node of its own name', () => {
  const spec = { slot: 2, count: 3, redis: '/data/redis/redis.sock', nodeName: 'h-w2', admin: false };
  assert.deepEqual(decodeSpec(encodeSpec(spec)), spec);
  assert.equal(decodeSpec('{"slot":"x"}'), undefined);
  assert.equal(decodeSpec('not json'), undefined);
  const config = parseConfig({ workers: 3, cluster: { leaseMs: 4000, heartbeatMs: 1000 }, admin: { port: 9999 } });
  const w = workerConfig(config, spec);
  assert.deepEqual(w.options.cluster, { leaseMs: 4000, heartbeatMs: 1000, redis: '/data/redis/redis.sock', nodeName: 'h-w2' });
  assert.equal(w.options.admin, null, 'only worker 1 serves the admin listener');
  assert.deepEqual(workerConfig(config, { ...spec, slot: 1, admin: true }).options.admin, { port: 9999 });
  assert.equal(workerCount(4), 4);
  assert.ok(workerCount('auto') >= 1);
});
