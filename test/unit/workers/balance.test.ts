import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../../src/config/index.js';
import { workersBalance } from '../../../src/workers/balance.js';

void describe('workersBalance', () => {
  void it('is the config value when set, whatever NODE_CLUSTER_SCHED_POLICY says', () => {
    assert.equal(workersBalance('rr', { NODE_CLUSTER_SCHED_POLICY: 'none' }, 'linux'), 'rr');
    assert.equal(workersBalance('shared', { NODE_CLUSTER_SCHED_POLICY: 'rr' }, 'darwin'), 'shared');
  });
  void it("else Node's own NODE_CLUSTER_SCHED_POLICY (rr | none)", () => {
    assert.equal(workersBalance(undefined, { NODE_CLUSTER_SCHED_POLICY: 'rr' }, 'linux'), 'rr');
    assert.equal(workersBalance(undefined, { NODE_CLUSTER_SCHED_POLICY: 'none' }, 'darwin'), 'shared');
  });
  void it('else shared on Linux (about half the CPU per connection), rr where the kernel piles connections on a few processes', () => {
    assert.equal(workersBalance(undefined, {}, 'linux'), 'shared');
    assert.equal(workersBalance(undefined, {}, 'darwin'), 'rr');
    assert.equal(workersBalance(undefined, {}, 'win32'), 'rr');
  });
  void it('comes from --workers-balance, COURIER_WORKERS_BALANCE or the file', async () => {
    assert.equal((await loadConfig({ env: {}, flags: { workers: '2', workersBalance: 'rr' } })).workers?.balance, 'rr');
    assert.equal((await loadConfig({ env: { COURIER_WORKERS_BALANCE: 'shared' }, flags: { workers: '2' } })).workers?.balance, 'shared');
    assert.equal((await loadConfig({ env: {}, flags: { workers: '2' } })).workers?.balance, undefined);
  });
  void it('names the flag and the two values when the flag is wrong', async () => {
    await assert.rejects(
      loadConfig({ env: {}, flags: { workers: '2', workersBalance: 'none' } }),
      (e: unknown) => e instanceof Error && e.message.includes('workersBalance: must be "shared"') && e.message.includes('--workers-balance'),
    );
  });
});
