/** The generator's main thread side of its workers: requests, events and shared counters. */
import { Worker } from 'node:worker_threads';
import type { Version } from './mqtt.js';
import {
  FLAGS,
  FLAG_MEASURING,
  SLOTS,
  SLOT_ACKED,
  SLOT_GAPS,
  SLOT_LOST_CONNECTIONS,
  SLOT_RECEIVED,
  SLOT_SENT,
  SLOT_STALLS,
  type FromWorker,
  type ToWorker,
  type WorkerConfig,
} from './protocol.js';

export interface Totals {
  received: number;
  sent: number;
  acked: number;
  lostConnections: number;
  gaps: number;
  stalls: number;
}

/** Publisher streams × subscriber columns of the progress table (QoS 0 windows, loss). */
export interface Shape {
  streams: number;
  columns: number;
}

// Workers do not inherit `--import tsx`: register tsx's loader in the worker, then load the TS entry.
const BOOT = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
  .then((m) => { m.register(); return import(${JSON.stringify(new URL('./worker.ts', import.meta.url).href)}); })
  .catch((err) => { console.error(err); process.exit(1); });`;

type DoneEvent = Extract<FromWorker, { op: 'done' }>;

export class Pool {
  private readonly workers: Worker[] = [];
  private readonly pending: ((msg: FromWorker) => void)[][] = [];
  private readonly counters: BigInt64Array;
  private readonly flags: Int32Array;
  private readonly progress: Int32Array;
  private doneListeners: ((ev: DoneEvent) => void)[] = [];

  constructor(size: number, host: string, port: number, version: Version, shape: Shape) {
    const countersBuf = new SharedArrayBuffer(size * SLOTS * 8);
    const flagsBuf = new SharedArrayBuffer(FLAGS * 4);
    const progress = new SharedArrayBuffer(Math.max(1, shape.streams * shape.columns) * 4);
    this.counters = new BigInt64Array(countersBuf);
    this.flags = new Int32Array(flagsBuf);
    this.progress = new Int32Array(progress);
    for (let index = 0; index < size; index++) {
      const workerData: WorkerConfig = {
        index,
        host,
        port,
        version,
        counters: countersBuf,
        flags: flagsBuf,
        progress,
        streams: shape.streams,
        columns: shape.columns,
      };
      const w = new Worker(BOOT, { eval: true, workerData });
      const queue: ((msg: FromWorker) => void)[] = [];
      w.on('message', (msg: FromWorker) => {
        if (msg.op === 'done') {
          for (const l of this.doneListeners) l(msg);
          return;
        }
        const resolve = queue.shift();
        if (resolve !== undefined) resolve(msg);
      });
      w.on('error', (err) => {
        process.stderr.write(`loadgen worker ${index} crashed: ${String(err)}\n`);
        for (const resolve of queue.splice(0)) resolve({ op: 'error', message: String(err) });
      });
      this.workers.push(w);
      this.pending.push(queue);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  request(index: number, msg: ToWorker): Promise<FromWorker> {
    return new Promise((resolve) => {
      this.pending[index]!.push(resolve);
      this.workers[index]!.postMessage(msg);
    });
  }

  all(msg: ToWorker): Promise<FromWorker[]> {
    return Promise.all(this.workers.map((_, i) => this.request(i, msg)));
  }

  onDone(listener: (ev: DoneEvent) => void): () => void {
    this.doneListeners.push(listener);
    return () => {
      this.doneListeners = this.doneListeners.filter((l) => l !== listener);
    };
  }

  setMeasuring(on: boolean): void {
    Atomics.store(this.flags, FLAG_MEASURING, on ? 1 : 0);
  }

  /**
   * Forget every subscriber's progress, so the pool can run another set of connections (whose
   * sequence numbers start again at 1). Only while no connection is open.
   */
  resetProgress(): void {
    for (let i = 0; i < this.progress.length; i++) Atomics.store(this.progress, i, 0);
  }

  totals(): Totals {
    const t: Totals = { received: 0, sent: 0, acked: 0, lostConnections: 0, gaps: 0, stalls: 0 };
    for (let i = 0; i < this.workers.length; i++) {
      const b = i * SLOTS;
      t.received += Number(Atomics.load(this.counters, b + SLOT_RECEIVED));
      t.sent += Number(Atomics.load(this.counters, b + SLOT_SENT));
      t.acked += Number(Atomics.load(this.counters, b + SLOT_ACKED));
      t.lostConnections += Number(Atomics.load(this.counters, b + SLOT_LOST_CONNECTIONS));
      t.gaps += Number(Atomics.load(this.counters, b + SLOT_GAPS));
      t.stalls += Number(Atomics.load(this.counters, b + SLOT_STALLS));
    }
    return t;
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
