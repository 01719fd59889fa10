/**
 * bench/tail-sources.ts: the higher-priority processes and DAMON threads printed beside latency
 * results, read from a fake /proc and /sys.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { damon, priorityProcesses, tailSources } from '../../bench/tail-sources.js';

/** A /proc/PID/stat line with the given nice (field 19) and policy (field 41). */
function stat(pid: number, name: string, nice: number, policy: number): string {
  const rest = Array.from({ length: 50 }, () => '0');
  rest[0] = 'S';
  rest[16] = String(nice);
  rest[38] = String(policy);
  return `${pid} (${name}) ${rest.join(' ')}\n`;
}

let root = '';
before(() => {
  root = mkdtempSync(path.join(tmpdir(), 'courier-tail-sources-'));
  const proc = (pid: number, name: string, nice: number, policy: number, cmdline: string): void => {
    mkdirSync(path.join(root, 'proc', String(pid)), { recursive: true });
    writeFileSync(path.join(root, 'proc', String(pid), 'stat'), stat(pid, name, nice, policy));
    writeFileSync(path.join(root, 'proc', String(pid), 'cmdline'), cmdline);
  };
  proc(1, 'process_api', -10, 0, '/process_api\0--x\0');
  proc(12, 'kworker/R (a b)', -20, 0, ''); // a kernel thread: skipped
  proc(300, 'node', 0, 0, 'node\0broker.js\0');
  proc(301, 'probe', 0, 1, 'probe\0');
  proc(40, 'nice5', 5, 0, 'x\0');
  mkdirSync(path.join(root, 'proc', 'self'), { recursive: true });
  const k = path.join(root, 'sys/kernel/mm/damon/admin/kdamonds');
  const on = path.join(k, '0');
  mkdirSync(path.join(on, 'contexts/0/monitoring_attrs/intervals'), { recursive: true });
  mkdirSync(path.join(on, 'contexts/0/schemes/0'), { recursive: true });
  writeFileSync(path.join(on, 'state'), 'on\n');
  writeFileSync(path.join(on, 'pid'), '84\n');
  writeFileSync(path.join(on, 'contexts/0/operations'), 'paddr\n');
  writeFileSync(path.join(on, 'contexts/0/monitoring_attrs/intervals/sample_us'), '500000\n');
  writeFileSync(path.join(on, 'contexts/0/schemes/0/action'), 'pageout\n');
  mkdirSync(path.join(k, '1'), { recursive: true });
  writeFileSync(path.join(k, '1', 'state'), 'off\n');
});
after(() => rmSync(root, { recursive: true, force: true }));

void describe('tail sources', () => {
  void it('lists user-space processes at a negative nice or a real-time policy, not kernel threads', () => {
    assert.deepEqual(priorityProcesses(path.join(root, 'proc')), ['process_api (pid 1) at nice -10', 'probe (pid 301) runs SCHED_FIFO']);
  });

  void it('lists running DAMON contexts with their sampling interval and scheme', () => {
    assert.deepEqual(damon(path.join(root, 'sys')), ['DAMON on: kdamond pid 84 (paddr, samples every 500 ms, scheme pageout)']);
  });

  void it('is empty where /proc and /sys are missing', () => {
    assert.deepEqual(tailSources(path.join(root, 'nope'), path.join(root, 'nope')), []);
  });
});
