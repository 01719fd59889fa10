/**
 * The `--workers` primary's life: `auto` starts one worker per core; SIGTERM closes every worker
 * gracefully and stops the private redis-server (its socket gone); a worker that keeps dying
 * makes the primary give up with a non-zero exit instead of a crash loop; a worker that cannot
 * listen fails the start; a second primary on the same data dir is refused; the two ways of
 * sharing a port (workersBalance); config errors are one line each, before anything starts.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { startCourier } from '../helpers/courier-process.js';
import { ProcessGroup, tempDir } from '../helpers/processes.js';
import { REDIS_SERVER, redisServerGate } from '../helpers/redis-server.js';
import { pollUntil } from '../helpers/wait.js';
import { connectOn, connectPlaced, listeningLine, startWorkers, waitForRoutes } from './workers-helpers.js';

const BIN = fileURLToPath(new URL('../../bin/courier.js', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

void describe('--workers: the primary', redisServerGate(), () => {
  const group = new ProcessGroup();
  void after(() => group.killAll());

  void test('--workers auto starts one worker per core; SIGTERM stops the workers gracefully, then the private Redis', async () => {
    const broker = await startWorkers(group, 'auto');
    const line = listeningLine(broker);
    const cores = availableParallelism();
    assert.equal(line.workers, cores);
    const pids = line.pids as number[];
    assert.equal(new Set(pids).size, cores);
    const joined = broker.logs().filter((l) => l.msg === 'cluster: joined');
    assert.deepEqual(new Set(joined.map((l) => l.worker)).size, cores, 'each worker is a cluster node');
    assert.equal(new Set(joined.map((l) => l.node)).size, cores, 'with its own node name');
    const started = broker.logs().find((l) => l.msg === 'private Redis started');
    assert.ok(started, 'the primary started a private Redis');
    const redisPid = started.redisPid as number;
    const socket = started.socket as string;
    assert.equal(socket, join(broker.dataDir, 'redis', 'redis.sock'));
    assert.ok(alive(redisPid) && existsSync(socket));

    const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const exit = await broker.sigterm();
    assert.deepEqual(exit, { code: 0, signal: null }, broker.process.describe());
    await closed;
    for (const pid of pids) assert.equal(alive(pid), false, `worker ${pid} is gone`);
    assert.equal(alive(redisPid), false, 'the private redis-server is gone');
    assert.equal(existsSync(socket), false, 'its socket is removed');
    const stoppedWorkers = broker.logs().filter((l) => l.msg === 'stopped' && typeof l.worker === 'number' && l.worker > 0);
    assert.equal(stoppedWorkers.length, cores, 'every worker logged its graceful stop');
    assert.ok(broker.logs().some((l) => l.msg === 'stopped' && l.worker === 0));
    assert.ok(!existsSync(join(broker.dataDir, 'courier.lock')), 'the data dir is unlocked');
  });

  void test('workersBalance: "rr" hands connections to the workers in turn; "shared" spreads a burst over both', async () => {
    const rr = await startWorkers(group, 2, { args: ['--workers-balance', 'rr'] });
    assert.equal(listeningLine(rr).balance, 'rr');
    const turns: number[] = [];
    for (let i = 0; i < 6; i++) {
      const placed = await connectPlaced(rr, `turn-${i}`);
      turns.push(placed.worker);
      await placed.client.endAsync(true);
    }
    assert.ok(
      turns.every((w, i) => i === 0 || w !== turns[i - 1]),
      `alternating: ${turns.join(',')}`,
    );
    assert.deepEqual(await rr.sigterm(), { code: 0, signal: null });

    const shared = await startWorkers(group, 2, { args: ['--workers-balance', 'shared'] });
    assert.equal(listeningLine(shared).balance, 'shared');
    // 100 connections at once: the workers accept from the socket themselves, both take some.
    const from = shared.logs().length;
    const burst = await Promise.all(Array.from({ length: 100 }, (_, i) => mqtt.connectAsync(shared.url, { clientId: `burst-${i}`, reconnectPeriod: 0 })));
    await pollUntil(() => shared.logs().filter((l, k) => k >= from && l.msg === 'client connected').length >= 100 || undefined, {
      what: '100 "client connected"',
    });
    const per = new Map<number, number>();
    for (const l of shared.logs().slice(from)) if (l.msg === 'client connected') per.set(l.worker as number, (per.get(l.worker as number) ?? 0) + 1);
    assert.equal(per.size, 2, `connections per worker: ${JSON.stringify([...per])}`);
    await Promise.all(burst.map((c) => c.endAsync(true)));
    assert.deepEqual(await shared.sigterm(), { code: 0, signal: null });
  });

  void test('the private redis-server killed with SIGKILL is restarted on its AOF; the workers reconnect and serve on', async () => {
    const broker = await startWorkers(group, 2);
    const started = broker.logs().find((l) => l.msg === 'private Redis started')!;
    const from = broker.logs().length;
    process.kill(started.redisPid as number, 'SIGKILL');
    const again = await broker.waitForLog((l) => l.msg === 'private Redis restarted' && broker.logs().indexOf(l) >= from, 20_000);
    assert.notEqual(again.redisPid, started.redisPid);
    assert.ok(alive(again.redisPid as number));
    // Clients on both workers exchange messages again (a CONNECT is refused while a worker is
    // still reconnecting to Redis: retried).
    const sub = await pollUntil(() => connectOn(broker, 1, `after-redis-sub`).catch(() => undefined), { timeoutMs: 30_000, what: 'a CONNECT on worker 1' });
    const pub = await pollUntil(() => connectOn(broker, 2, `after-redis-pub`).catch(() => undefined), { timeoutMs: 30_000, what: 'a CONNECT on worker 2' });
    await sub.client.subscribeAsync('again/#', { qos: 1 });
    await waitForRoutes(pub.client, 'again/probe', [sub.client]);
    const got = new Promise<string>((resolve) => sub.client.on('message', (t, p) => t === 'again/x' && resolve(p.toString())));
    await pub.client.publishAsync('again/x', 'back', { qos: 1 });
    assert.equal(await got, 'back');
    await Promise.all([sub.client.endAsync(), pub.client.endAsync()]);
    assert.deepEqual(await broker.sigterm(), { code: 0, signal: null });
    assert.equal(alive(again.redisPid as number), false);
  });

  void test('a worker that keeps dying right after its restart makes the primary stop everything and exit non-zero', async () => {
    const broker = await startWorkers(group, 2);
    const redisPid = broker.logs().find((l) => l.msg === 'private Redis started')!.redisPid as number;
    // Kill worker 2 each time it is ready: the sixth failure in a row within the stable time is one too many.
    let pid = (listeningLine(broker).pids as number[])[1]!;
    for (let kill = 1; kill <= 6; kill++) {
      const from = broker.logs().length;
      process.kill(pid, 'SIGKILL');
      if (kill === 6) break;
      const ready = await broker.waitForLog((l) => l.msg === 'worker 2 ready' && broker.logs().indexOf(l) >= from, 20_000, `restart ${kill}`);
      pid = ready.workerPid as number;
    }
    const exit = await broker.exited(30_000);
    assert.equal(exit.code, 1);
    assert.match(broker.otherOutput().join('\n'), /courier: worker 2 keeps failing \(6 times in a row/);
    const delays = broker
      .logs()
      .filter((l) => l.msg.startsWith('worker 2 exited'))
      .map((l) => l.restartInMs as number);
    assert.deepEqual(delays, [100, 200, 400, 800, 1600], 'restarts back off');
    assert.equal(alive(redisPid), false, 'the private redis-server stopped with it');
  });

  void test('a worker that cannot listen fails the start with exit code 1', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    try {
      const port = (holder.address() as AddressInfo).port;
      const broker = await startWorkers(group, 2, { port, waitReady: false });
      const exit = await broker.exited(30_000);
      assert.equal(exit.code, 1);
      const text = broker.otherOutput().join('\n');
      assert.match(text, /address already in use/);
      assert.match(text, /courier: worker \d exited while starting/);
    } finally {
      holder.close();
    }
  });

  void test('a second primary on the same data dir is refused', async () => {
    const first = await startWorkers(group, 1);
    const second = await startWorkers(group, 1, { dataDir: first.dataDir, waitReady: false });
    const exit = await second.exited(15_000);
    assert.equal(exit.code, 1);
    assert.match(second.otherOutput().join('\n'), new RegExp(`courier: data directory .* is in use by another broker \\(pid ${first.pid}`));
    assert.deepEqual(await first.sigterm(), { code: 0, signal: null });
  });
});

void describe('--workers: configuration', () => {
  const group = new ProcessGroup();
  void after(() => group.killAll());

  async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
    const dir = tempDir('courier-workers-cfg');
    const p = group.spawn(process.execPath, [BIN, '--port', '0', '--ws-port', 'off', '--admin-port', 'off', '--data-dir', dir, ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    const exit = await p.exited(20_000);
    return { code: exit.code, stderr: p.stderr() };
  }

  for (const [args, message] of [
    [['--workers', '0'], /workers: must be an integer between 1 and 256 \(got 0, from --workers\)/],
    [['--workers', 'many'], /workers: must be a number of worker processes \(1 to 256\) or "auto"/],
    [['--workers', '2.5'], /workers: must be a number of worker processes/],
    [['--workers', '2', '--workers-balance', 'none'], /workersBalance: must be "shared" .* or "rr" .* \(got "none", from --workers-balance\)/],
  ] as const) {
    void test(`${args.join(' ')}: exit 2 with "${message.source.slice(0, 40)}…"`, async () => {
      const r = await run([...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    });
  }

  void test('cluster settings without cluster.redis are accepted with --workers (for the private Redis), refused without', async () => {
    const ok = await run(['--check-config', '/dev/null', '--workers', '2'], { COURIER_CLUSTER__LEASE_MS: '8000' });
    assert.equal(ok.code, 0, ok.stderr);
    const bad = await run(['--check-config', '/dev/null'], { COURIER_CLUSTER__LEASE_MS: '8000' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /cluster\.redis: is required/);
  });

  void test('no redis-server on PATH and no cluster.redis: one clear line, exit 1', async () => {
    const r = await run(['--workers', '2'], { PATH: '/nonexistent' });
    assert.equal(r.code, 1);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^courier: --workers needs Redis: no redis-server on PATH/);
  });

  void test('--redis-server naming a file that is not executable: one clear line, exit 1', async () => {
    const file = join(tempDir('courier-workers-noexec'), 'redis-server');
    writeFileSync(file, 'not a program\n', { mode: 0o644 });
    const r = await run(['--workers', '1', '--redis-server', file]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `courier: redisServer ${file} is not an executable file\n`);
  });

  void test('a redis-server that exits at start: its reason in one line, exit 1', async () => {
    const file = join(tempDir('courier-workers-badredis'), 'redis-server');
    writeFileSync(file, '#!/bin/sh\necho "# Fatal: cannot start for a test reason" >&2\nexit 3\n', { mode: 0o755 });
    const r = await run(['--workers', '1', '--redis-server', file]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'courier: redis-server exited at start (3): # Fatal: cannot start for a test reason\n');
  });

  void test('a data dir too deep for the private Redis socket: one clear line, exit 1', { skip: !existsSync(REDIS_SERVER) && 'no redis-server' }, async () => {
    // A data dir path too long for a unix socket is caught before Redis runs.
    const deep = join(tempDir('courier-workers-long'), 'x'.repeat(120));
    const r = await run(['--workers', '1', '--redis-server', REDIS_SERVER, '--data-dir', deep]);
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), /^courier: the private Redis socket .* is longer than 107 bytes/);
  });
});

void describe('--workers with startCourier', redisServerGate(), () => {
  const group = new ProcessGroup();
  void after(() => group.killAll());
  void test('--workers 1 serves clients like one broker (one supervised worker)', async () => {
    const broker = await startCourier(group, { args: ['--workers', '1', '--redis-server', REDIS_SERVER] });
    const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    const got = new Promise<string>((resolve) => c.once('message', (_t, p) => resolve(p.toString())));
    await c.subscribeAsync('one/+');
    await c.publishAsync('one/x', 'hello', { qos: 1 });
    assert.equal(await got, 'hello');
    await c.endAsync();
    assert.deepEqual(await broker.sigterm(), { code: 0, signal: null });
  });
});
