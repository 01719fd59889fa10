/** The process registry: distinct free ports, line capture and waits, signals by PID, no leaks. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { ProcessGroup, freePorts, removeTempDir, tempDir } from '../../helpers/processes.js';
import { pollUntil } from '../../helpers/wait.js';

const group = new ProcessGroup();
after(() => group.killAll());

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

void describe('processes helper', () => {
  void it('freePorts(n) gives n distinct ports that can be bound on 127.0.0.1', async () => {
    const ports = await freePorts(5);
    assert.equal(new Set(ports).size, 5);
    for (const port of ports) {
      const s = createServer();
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, '127.0.0.1', () => resolve());
      });
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  void it('captures lines from both streams and waits for one', async () => {
    const p = group.spawn(process.execPath, ['-e', 'console.log("one"); console.error("two"); process.stdout.write("three")']);
    assert.equal(await p.waitForLine((l, s) => s === 'stderr' && l === 'two', 5000), 'two');
    const exit = await p.exited(5000);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.deepEqual(p.lines('stdout'), ['one', 'three']);
    assert.deepEqual(p.lines('stderr'), ['two']);
  });

  void it('waitForLine rejects when the process exits without the line, and on timeout', async () => {
    const quick = group.spawn(process.execPath, ['-e', 'console.log("bye")']);
    await assert.rejects(
      quick.waitForLine((l) => l === 'never', 5000),
      /exited with 0 first/,
    );
    const slow = group.spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    await assert.rejects(
      slow.waitForLine((l) => l === 'never', 100),
      /timed out after 100 ms/,
    );
    assert.equal(slow.signal('SIGTERM'), true);
    assert.equal((await slow.exited(5000)).signal, 'SIGTERM');
    assert.equal(slow.signal('SIGTERM'), false, 'no signal to an exited process');
  });

  void it('killAll() SIGKILLs only its own group, stopped processes included', async () => {
    const mine = new ProcessGroup();
    const a = mine.spawn(process.execPath, ['-e', 'console.log("up"); setInterval(() => {}, 1000)']);
    const b = group.spawn(process.execPath, ['-e', 'console.log("up"); setInterval(() => {}, 1000)']);
    await a.waitForLine((l) => l === 'up');
    await b.waitForLine((l) => l === 'up');
    a.signal('SIGSTOP');
    await mine.killAll(5000);
    assert.equal(a.exit()?.signal, 'SIGKILL');
    assert.equal(b.exit(), undefined);
    assert.equal(alive(b.pid), true);
    b.signal('SIGKILL');
    await b.exited(5000);
  });

  void it("a test process that dies without cleanup still kills its children and removes temp dirs ('exit' hook)", { timeout: 20_000 }, async () => {
    const helpers = fileURLToPath(new URL('../../helpers/processes.ts', import.meta.url));
    const script = `
      const { ProcessGroup, tempDir } = await import(${JSON.stringify(helpers)});
      const g = new ProcessGroup();
      const child = g.spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
      console.log(JSON.stringify({ pid: child.pid, dir: tempDir('courier-leak-test') }));
      process.exit(3);
    `;
    const parent = group.spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
    const exit = await parent.exited(15_000);
    assert.equal(exit.code, 3, parent.describe());
    const { pid, dir } = JSON.parse(parent.lines()[0]!) as { pid: number; dir: string };
    await pollUntil(() => !alive(pid), { timeoutMs: 5000, what: `orphan ${pid} to be gone` });
    assert.equal(existsSync(dir), false);
  });

  void it('tempDir() and removeTempDir()', () => {
    const dir = tempDir('courier-test');
    assert.ok(existsSync(dir));
    removeTempDir(dir);
    assert.equal(existsSync(dir), false);
  });
});
