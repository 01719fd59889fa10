/** The courier process helper: start on free ports, parsed logs, signals, restart on the same port and data dir. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import mqtt from 'mqtt';
import { parseLogLine, resolveEntry, startCourier } from '../../helpers/courier-process.js';
import { withTimeout } from '../../helpers/peers.js';
import { ProcessGroup } from '../../helpers/processes.js';

const group = ProcessGroup.scoped();

/** Connects and disconnects an MQTT client; resolves with whether CONNACK came within `timeoutMs`. */
async function connects(url: string, timeoutMs = 20_000): Promise<boolean> {
  const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: timeoutMs });
  const ok = await new Promise<boolean>((resolve) => {
    c.once('connect', () => resolve(true));
    c.once('error', () => resolve(false));
    c.once('close', () => resolve(false));
  });
  c.end(true);
  return ok;
}

void describe(`courier process helper (entry: ${resolveEntry()})`, () => {
  void it('starts on free ports, logs JSON lines, and stops gracefully on SIGTERM', { timeout: 90_000 }, async () => {
    const node = await startCourier(group);
    assert.ok(node.port > 0);
    assert.ok(node.wsPort !== undefined && node.wsPort > 0 && node.wsPort !== node.port);
    assert.equal(node.url, `mqtt://127.0.0.1:${node.port}`);
    const listening = node.logs().find((l) => l.msg.startsWith('listening on'));
    assert.equal(listening?.pid, node.pid);
    assert.equal(listening?.level, 'info');
    assert.equal(await connects(node.url), true);
    const shuttingDown = node.waitForLog((l) => l.msg === 'shutting down', 10_000);
    const exit = await node.sigterm();
    assert.equal((await shuttingDown).signal, 'SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(node.logs().some((l) => l.msg === 'stopped'));
    await assert.rejects(
      node.waitForLog((l) => l.msg === 'never', 1000),
      /exited with 0 first/,
    );
  });

  void it('sigstop() freezes it (no CONNACK), sigcont() thaws it; sigterm() works on a stopped process', { timeout: 90_000 }, async () => {
    const node = await startCourier(group, { wsPort: 'off' });
    assert.equal(node.wsPort, undefined);
    node.sigstop();
    assert.equal(await connects(node.url, 300), false);
    node.sigcont();
    assert.equal(await connects(node.url), true);
    node.sigstop();
    assert.equal((await node.sigterm()).code, 0);
  });

  void it('sigkill() and restart() keep the port and the data dir (a retained message survives)', { timeout: 90_000 }, async () => {
    const node = await startCourier(group);
    const pub = await mqtt.connectAsync(node.url, { reconnectPeriod: 0, connectTimeout: 20_000 });
    await pub.publishAsync('helper/retained', 'kept', { qos: 1, retain: true });
    pub.end(true);
    const exit = await node.sigkill();
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(node.exit()?.signal, 'SIGKILL');
    const again = await node.restart();
    assert.notEqual(again.pid, node.pid);
    assert.equal(again.port, node.port);
    assert.equal(again.wsPort, node.wsPort);
    assert.equal(again.dataDir, node.dataDir);
    const sub = await mqtt.connectAsync(again.url, { reconnectPeriod: 0, connectTimeout: 20_000 });
    const got = new Promise<string>((resolve) => sub.on('message', (_t, p) => resolve(p.toString())));
    await sub.subscribeAsync('helper/retained', { qos: 1 });
    assert.equal(await withTimeout(got, 20_000, 'the retained message'), 'kept');
    sub.end(true);
  });

  void it('bad flags: readiness fails with the exit code and the message', { timeout: 90_000 }, async () => {
    await assert.rejects(startCourier(group, { args: ['--no-such-flag'] }), /exited with 2 first[\s\S]*unknown option --no-such-flag/);
    const node = await startCourier(group, { args: ['--no-such-flag'], waitReady: false });
    assert.equal((await node.exited()).code, 2);
    assert.ok(node.otherOutput().some((l) => l.includes('unknown option --no-such-flag')));
  });

  void it('passes env, never the parent COURIER_* variables', { timeout: 90_000 }, async () => {
    process.env.COURIER_SOMETHING_UNKNOWN = '1';
    try {
      const node = await startCourier(group, { env: { COURIER_WS_PATH: '/elsewhere' } });
      const listening = await node.waitForLog((l) => l.msg.startsWith('listening on'));
      assert.match(listening.msg, new RegExp(`ws://127\\.0\\.0\\.1:${node.wsPort}/elsewhere`));
      // An unknown COURIER_* variable would be logged as a warning.
      assert.ok(!node.logs().some((l) => JSON.stringify(l).includes('COURIER_SOMETHING_UNKNOWN')));
      await node.sigterm();
    } finally {
      delete process.env.COURIER_SOMETHING_UNKNOWN;
    }
  });

  void it('a log level above info needs waitReady: false', async () => {
    await assert.rejects(startCourier(group, { logLevel: 'warn' }), /waitReady: false/);
  });

  void it('parseLogLine() accepts pino lines only', () => {
    assert.deepEqual(parseLogLine('{"level":"info","msg":"hi","x":1}'), { level: 'info', msg: 'hi', x: 1 });
    assert.equal(parseLogLine('{"level":30,"msg":"hi"}'), undefined);
    assert.equal(parseLogLine('{not json'), undefined);
    assert.equal(parseLogLine('plain text'), undefined);
  });
});
