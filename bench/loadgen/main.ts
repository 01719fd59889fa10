/**
 * Load generator process: runs one scenario against one broker and prints one line
 * `RESULT {json}` on stdout. Started by bench/run.ts under `taskset -c 1`; the worker
 * threads inherit the CPU affinity.
 */
import { fstatSync } from 'node:fs';
import { allowedCpus } from '../proc.js';
import type { GeneratorJob, ScenarioResult } from '../types.js';
import { Pool } from './pool.js';
import { runScenario, shapeOf } from './scenarios.js';

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? '') as GeneratorJob;
  // Die with the orchestrator: it holds our stdin (a pipe) open.
  if (fstatSync(0).isFIFO()) {
    process.stdin.on('end', () => process.exit(3));
    process.stdin.resume();
  }

  const pool = new Pool(Math.max(1, job.params.workers), job.host, job.port, job.params.version, shapeOf(job));
  let result: ScenarioResult;
  try {
    result = await runScenario(pool, job);
    result.notes.push(`generator CPUs: ${allowedCpus(process.pid)}`);
  } catch (err) {
    result = { scenario: job.scenario, broker: job.broker, metrics: {}, notes: [], error: (err as Error).message };
  }
  try {
    await Promise.race([pool.all({ op: 'close' }), new Promise((r) => setTimeout(r, 5000))]);
  } finally {
    await pool.terminate();
  }
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`loadgen: ${String(err)}\n`);
  process.exit(1);
});
