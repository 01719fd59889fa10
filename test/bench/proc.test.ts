/**
 * bench/proc.ts: which processes a latency round moves to the generator's CPU besides the
 * orchestrator itself (the launchers that started it: npm, its `sh -c`, tsx's `node`).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { launchers } from '../../bench/proc.js';

void describe('launchers', () => {
  void it('walks up through sh and node, and stops at the first other process', async () => {
    // sleep (not a launcher) <- sh <- this node test process <- ...
    const sh = spawn('/bin/sh', ['-c', 'sleep 30; :'], { stdio: 'ignore' });
    let sleepPid = 0;
    try {
      await once(sh, 'spawn');
      sleepPid = await waitForChild(sh.pid!);
      assert.deepEqual(launchers(sleepPid), [], 'a process that is not a launcher starts no chain');
      const chain = launchers(sh.pid!);
      assert.equal(chain[0], sh.pid);
      assert.equal(chain[1], process.pid, 'the node that spawned sh is a launcher too');
      assert.ok(chain.length <= 5);
    } finally {
      if (sleepPid !== 0) process.kill(sleepPid, 'SIGKILL');
      sh.kill('SIGKILL');
    }
  });

  void it('gives nothing for a process that is gone', () => {
    assert.deepEqual(launchers(2 ** 22 + 12345), []);
  });
});

/** The PID of `parent`'s child, once sh has forked it. */
async function waitForChild(parent: number): Promise<number> {
  const { readFileSync } = await import('node:fs');
  for (;;) {
    try {
      const kids = readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim();
      if (kids !== '') return Number(kids.split(' ')[0]);
    } catch {
      // not there yet
    }
    await new Promise((r) => setImmediate(r));
  }
}
