/**
 * The `courier` command and its admin listener, as a real process: start-up logs where the
 * dashboard is and the one-time token (JSON lines when stdout is not a terminal), the token logs
 * in, `--admin-port off` switches the listener off, `COURIER_ADMIN__PORT` sets it.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { http } from '../helpers/admin.js';
import { ProcessGroup, removeTempDir, tempDir } from '../helpers/processes.js';

const CLI = fileURLToPath(new URL('../fixtures/courier-cli.ts', import.meta.url));

void describe('courier command: admin listener', () => {
  const group = new ProcessGroup();
  const dirs: string[] = [];
  after(async () => {
    await group.killAll();
    for (const d of dirs) removeTempDir(d);
  });

  function start(args: string[], env: Record<string, string> = {}) {
    const dir = tempDir('courier-admin-cli');
    dirs.push(dir);
    return group.spawn(process.execPath, ['--import', 'tsx', CLI, '--port', '0', '--ws-port', 'off', '--data-dir', dir, ...args], {
      env: { ...process.env, ...env },
    });
  }

  void it('logs the dashboard URL and a one-time token that logs in once', async () => {
    const p = start(['--admin-port', '0']);
    const line = JSON.parse(await p.waitForLine((l) => l.includes('dashboard: '), 30_000, 'dashboard line')) as {
      msg: string;
      admin: { port: number; url: string };
    };
    const token = /one-time token: (\S+)/.exec(line.msg)?.[1];
    assert.ok(token !== undefined, line.msg);
    assert.equal(line.admin.url, `http://127.0.0.1:${line.admin.port}/`);
    await p.waitForLine((l) => l.includes('listening on'), 30_000, 'listening');
    const port = line.admin.port;
    assert.equal((await http(port, 'GET', '/healthz')).status, 200);
    const origin = `http://127.0.0.1:${port}`;
    const login = (): Promise<number> =>
      http(port, 'POST', '/api/v1/login', { headers: { 'content-type': 'application/json', origin }, body: JSON.stringify({ token }) }).then((r) => r.status);
    assert.equal(await login(), 200);
    assert.equal(await login(), 401);
    p.signal('SIGTERM');
    assert.equal((await p.exited(15_000)).code, 0);
  });

  void it('--admin-port off: no admin listener, no dashboard line; COURIER_ADMIN__PORT sets the port', async () => {
    const off = start(['--admin-port', 'off']);
    await off.waitForLine((l) => l.includes('listening on'), 30_000, 'listening');
    assert.ok(!off.stdout().includes('dashboard'));
    off.signal('SIGTERM');
    await off.exited(15_000);
    const env = start([], { COURIER_ADMIN__PORT: '0' });
    const line = await env.waitForLine((l) => l.includes('dashboard: '), 30_000, 'dashboard line');
    assert.ok((JSON.parse(line) as { admin: { port: number } }).admin.port > 0);
    env.signal('SIGTERM');
    await env.exited(15_000);
  });
});
