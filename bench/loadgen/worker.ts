/**
 * Load generator worker thread: owns a set of raw MQTT connections over net sockets.
 * Counters go to shared memory once per socket read (not per message), so the main thread
 * can sample them at window boundaries without asking.
 */
import { appendFileSync } from 'node:fs';
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import {
  DISCONNECT,
  PT_CONNACK,
  PT_PUBACK,
  PT_PUBLISH,
  PT_SUBACK,
  PacketReader,
  encodeConnect,
  encodeSubscribe,
  publishBatch,
  publishPacketId,
  publishPayloadOffset,
  publishTemplate,
  writePuback,
  type PublishTemplate,
} from './mqtt.js';
import {
  FLAG_MEASURING,
  SLOTS,
  SLOT_ACKED,
  SLOT_GAPS,
  SLOT_LOST_CONNECTIONS,
  SLOT_RECEIVED,
  SLOT_SENT,
  SLOT_STALLS,
  type ConnSpec,
  type FromWorker,
  type ToWorker,
  type WorkerConfig,
} from './protocol.js';

const cfg = workerData as WorkerConfig;
const port = parentPort!;
const counters = new BigInt64Array(cfg.counters);
const flags = new Int32Array(cfg.flags);
const progress = new Int32Array(cfg.progress);
const base = cfg.index * SLOTS;
/**
 * How long blocked QoS 0 publishers wait while no subscriber receives anything at all before
 * forgiving their windows (the broker dropped what they were waiting for).
 */
const STALL_MS = 2000;

/** Messages received by all workers' subscribers so far. */
function receivedEverywhere(): bigint {
  let n = 0n;
  for (let i = SLOT_RECEIVED; i < counters.length; i += SLOTS) n += Atomics.load(counters, i);
  return n;
}

function post(msg: FromWorker): void {
  port.postMessage(msg);
}

function count(slot: number, n: number): void {
  Atomics.add(counters, base + slot, BigInt(n));
}

let latencies = new Float64Array(1 << 16);
let latencyCount = 0;
/**
 * BENCH_LATENCY_DUMP=FILE: every sample's send time is kept as well (CLOCK_MONOTONIC ns, the
 * clock of `perf record -k CLOCK_MONOTONIC`), and each round's samples are appended to FILE as
 * "send_ns latency_us" lines: to line the tail up with a scheduler trace of the broker's CPU.
 */
const dumpFile = process.env.BENCH_LATENCY_DUMP;
let sentAt = dumpFile === undefined ? null : new Float64Array(1 << 16);
function recordLatency(us: number, sentNs: bigint): void {
  if (latencyCount === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
    if (sentAt !== null) {
      const more = new Float64Array(bigger.length);
      more.set(sentAt);
      sentAt = more;
    }
  }
  if (sentAt !== null) sentAt[latencyCount] = Number(sentNs);
  latencies[latencyCount++] = us;
}

let publishing = false;

/** QoS 0 publishers waiting for their window: one timer retries them all. */
const blocked = new Set<{ resume: () => void }>();
let blockedTimer: NodeJS.Timeout | null = null;
function retryBlocked(): void {
  blockedTimer = null;
  const list = [...blocked];
  blocked.clear();
  for (const b of list) b.resume();
}
function block(b: { resume: () => void }): void {
  blocked.add(b);
  blockedTimer ??= setTimeout(retryBlocked, 1);
}

let nextLocal = 0;

class Conn {
  readonly socket: net.Socket;
  private readonly reader: PacketReader;
  private handshakeDone: ((err?: Error) => void) | null = null;
  private waitingFor: 'connack' | 'suback' | 'ready' = 'connack';
  private closing = false;
  closed = false;
  // per-read accumulators
  private rx = 0;
  private acks: number[] = [];
  private pubacks = 0;
  private totalRx = 0;
  private gaps = 0;
  private readonly last: Int32Array | null;
  private readonly dirty: number[] = [];
  // publisher state
  private tpl: PublishTemplate | null = null;
  private batchBuf: Buffer | null = null;
  private inflight = 0;
  private nextId = 1;
  private seedNext = 0;
  private seedAcked = 0;
  private seedDone: (() => void) | null = null;
  rateSent = 0;
  private rateStart = 0n;
  private seq = 0;
  private forgiven = 0;
  private blockedReceived = -1n;
  private blockedSince = 0;
  private waiting = false;
  readonly resume = (): void => this.pump();

  constructor(readonly spec: ConnSpec) {
    this.reader = new PacketReader(this.onPacket);
    this.last = spec.column === undefined ? null : new Int32Array(cfg.streams);
    // Spread loopback clients over 127.0.0.1–8 so more than the ~28k ephemeral ports of one
    // source address can connect (the 100k idle connections run).
    const localAddress = cfg.host === '127.0.0.1' ? `127.0.0.${1 + (nextLocal++ % 8)}` : undefined;
    this.socket = net.connect({ host: cfg.host, port: spec.port ?? cfg.port, noDelay: true, ...(localAddress === undefined ? {} : { localAddress }) });
    this.socket.on('connect', () => {
      this.socket.write(encodeConnect(spec.clientId, cfg.version, 600, spec.clean ?? true));
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => {
      this.closed = true;
      if (!this.closing) count(SLOT_LOST_CONNECTIONS, 1);
      this.fail(new Error('connection closed by the broker'));
      if (this.seedDone !== null) this.seedDone();
    });
    const pub = spec.publish;
    if (pub !== undefined && pub.mode !== 'seed') {
      this.tpl = publishTemplate(pub.topic, pub.payloadSize, pub.qos, cfg.version, pub.retain === true);
      this.tpl.buf.writeUInt32BE(pub.stream, this.tpl.payloadOffset);
      if (pub.stamp === true) this.tpl.buf.fill(0, this.tpl.payloadOffset + 8, this.tpl.payloadOffset + 16);
      if (pub.qos === 0 && pub.mode === 'flood') this.batchBuf = publishBatch(this.tpl, pub.batch ?? 64);
    }
  }

  handshake(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.handshakeDone = (err) => (err === undefined ? resolve() : reject(err));
    });
  }

  private fail(err: Error): void {
    const done = this.handshakeDone;
    this.handshakeDone = null;
    if (done !== null) done(err);
  }

  private finishHandshake(): void {
    this.waitingFor = 'ready';
    const done = this.handshakeDone;
    this.handshakeDone = null;
    if (done !== null) done();
  }

  subscribe(): void {
    this.waitingFor = 'suback';
    this.socket.write(encodeSubscribe(1, this.spec.subscribe ?? [], cfg.version));
  }

  private readonly onPacket = (type: number, fl: number, buf: Buffer, start: number, end: number): void => {
    if (type === PT_PUBLISH) {
      this.rx++;
      if ((fl & 0x06) !== 0) this.acks.push(publishPacketId(buf, start));
      const last = this.last;
      if (last === null) return;
      const at = publishPayloadOffset(buf, start, fl, cfg.version);
      if (at + 16 > end) return;
      const stream = buf.readUInt32BE(at);
      const seq = buf.readUInt32BE(at + 4);
      const prev = last[stream];
      if (prev === undefined) return;
      if (seq > prev) {
        if (seq !== prev + 1) this.gaps += seq - prev - 1;
        if (this.dirty.indexOf(stream) < 0) this.dirty.push(stream);
        last[stream] = seq;
      }
      // A zero high word: no stamp in this message (flood publishers stamp one per write).
      if (this.spec.latency === true && flags[FLAG_MEASURING] === 1 && buf.readUInt32BE(at + 8) !== 0) {
        const sent = buf.readBigUInt64BE(at + 8);
        recordLatency(Number(process.hrtime.bigint() - sent) / 1000, sent);
      }
      return;
    }
    if (type === PT_PUBACK) {
      this.pubacks++;
      return;
    }
    if (type === PT_CONNACK && this.waitingFor === 'connack') {
      const code = buf[start + 1] ?? 255;
      if (code !== 0) {
        this.fail(new Error(`CONNACK refused with code ${code}`));
        return;
      }
      if (this.spec.subscribe !== undefined && this.spec.deferSubscribe !== true) this.subscribe();
      else this.finishHandshake();
      return;
    }
    if (type === PT_SUBACK && this.waitingFor === 'suback') {
      let p = start + 2;
      if (cfg.version === 5) p += 1 + (buf[p] ?? 0); // properties (short in practice)
      for (; p < end; p++) {
        if ((buf[p] ?? 0x80) >= 0x80) {
          this.fail(new Error(`SUBACK refused a filter (code ${buf[p]})`));
          return;
        }
      }
      this.finishHandshake();
    }
  };

  private onData(chunk: Buffer): void {
    this.reader.push(chunk);
    if (this.rx > 0) {
      count(SLOT_RECEIVED, this.rx);
      const before = this.totalRx;
      this.totalRx += this.rx;
      this.rx = 0;
      if (this.gaps > 0) {
        count(SLOT_GAPS, this.gaps);
        this.gaps = 0;
      }
      if (this.dirty.length > 0) {
        const col = this.spec.column!;
        for (const stream of this.dirty) Atomics.store(progress, stream * cfg.columns + col, this.last![stream]!);
        this.dirty.length = 0;
      }
      const expect = this.spec.expect;
      if (expect !== undefined && before < expect && this.totalRx >= expect) {
        post({ op: 'done', atNs: process.hrtime.bigint().toString(), received: this.totalRx });
      }
    }
    if (this.acks.length > 0) {
      const out = Buffer.allocUnsafe(this.acks.length * 4);
      let pos = 0;
      for (const id of this.acks) pos = writePuback(out, pos, id);
      this.acks.length = 0;
      this.socket.write(out);
    }
    if (this.pubacks > 0) {
      const n = this.pubacks;
      this.pubacks = 0;
      this.inflight -= n;
      count(SLOT_ACKED, n);
      if (this.spec.publish?.mode === 'seed') {
        this.seedAcked += n;
        this.seedPump();
      } else if (publishing) {
        this.topUp();
      }
    }
  }

  /** QoS 1: fill the window in one write. */
  private topUp(): void {
    const tpl = this.tpl!;
    const window = this.spec.publish?.window ?? 32;
    const n = window - this.inflight;
    if (n <= 0 || this.closed) return;
    const out = Buffer.allocUnsafe(n * tpl.length);
    for (let i = 0; i < n; i++) {
      const at = i * tpl.length;
      tpl.buf.copy(out, at);
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      out[at + tpl.idOffset] = id >> 8;
      out[at + tpl.idOffset + 1] = id & 0xff;
      out.writeUInt32BE(++this.seq, at + tpl.payloadOffset + 4);
    }
    if (this.spec.publish?.stamp === true) out.writeBigUInt64BE(process.hrtime.bigint(), tpl.payloadOffset + 8);
    this.inflight += n;
    count(SLOT_SENT, n);
    this.socket.write(out);
  }

  /** Lowest sequence number every watched subscriber has seen from this publisher. */
  private floor(): number {
    const pub = this.spec.publish!;
    let min = Infinity;
    for (const col of pub.watch ?? []) {
      const v = Atomics.load(progress, pub.stream * cfg.columns + col);
      if (v < min) min = v;
    }
    return min === Infinity ? this.seq : min;
  }

  /**
   * QoS 0 flood: write batches (fresh buffers: a queued write must not see its bytes change)
   * while the socket takes them and the end-to-end window allows; yield every few batches.
   * The window is what keeps a broker from being fed faster than it delivers: we measure
   * delivered messages, and a QoS 0 message dropped inside the broker still frees its slot
   * once a later one arrives. If nothing arrives anywhere for STALL_MS, the window is forgiven.
   */
  private readonly pump = (): void => {
    if (!publishing || this.closed) return;
    const pub = this.spec.publish!;
    const tpl = this.tpl!;
    const template = this.batchBuf!;
    const per = pub.batch ?? 64;
    const window = pub.e2eWindow ?? 0;
    for (let i = 0; i < 4; i++) {
      if (window > 0) {
        const floor = Math.max(this.floor(), this.forgiven);
        const inFlight = this.seq - floor;
        // Once full, wait until half the window has drained: fewer, larger wake-ups.
        if (this.waiting ? inFlight > window / 2 : inFlight + per > window) {
          this.waiting = true;
          const now = Date.now();
          const received = receivedEverywhere();
          if (received !== this.blockedReceived) {
            this.blockedReceived = received;
            this.blockedSince = now;
          } else if (now - this.blockedSince > STALL_MS) {
            this.forgiven = this.seq;
            this.blockedReceived = -1n;
            count(SLOT_STALLS, 1);
          }
          block(this);
          return;
        }
        this.waiting = false;
      }
      const out = Buffer.allocUnsafe(template.length);
      template.copy(out);
      for (let k = 0, at = tpl.payloadOffset + 4; k < per; k++, at += tpl.length) out.writeUInt32BE(++this.seq, at);
      if (pub.stamp === true) out.writeBigUInt64BE(process.hrtime.bigint(), tpl.payloadOffset + 8);
      count(SLOT_SENT, per);
      if (!this.socket.write(out)) {
        this.socket.once('drain', this.pump);
        return;
      }
    }
    setImmediate(this.pump);
  };

  start(): void {
    const pub = this.spec.publish;
    if (pub === undefined) return;
    if (pub.mode === 'flood') {
      if (pub.qos === 0) this.pump();
      else this.topUp();
    } else if (pub.mode === 'rate') {
      this.rateStart = process.hrtime.bigint();
      this.rateSent = 0;
    }
  }

  /** rate mode: send whatever is due now, each message stamped with the send time. */
  rateTick(now: bigint): void {
    const pub = this.spec.publish!;
    const tpl = this.tpl!;
    const due = Math.floor((Number(now - this.rateStart) / 1e9) * (pub.rate ?? 1000)) - this.rateSent;
    if (due <= 0 || this.closed) return;
    const n = Math.min(due, 1000);
    const out = Buffer.allocUnsafe(n * tpl.length);
    const stamp = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const at = i * tpl.length;
      tpl.buf.copy(out, at);
      out.writeUInt32BE(++this.seq, at + tpl.payloadOffset + 4);
      out.writeBigUInt64BE(stamp, at + tpl.payloadOffset + 8);
      if (tpl.idOffset >= 0) {
        const id = this.nextId;
        this.nextId = id === 65535 ? 1 : id + 1;
        out[at + tpl.idOffset] = id >> 8;
        out[at + tpl.idOffset + 1] = id & 0xff;
      }
    }
    this.rateSent += due; // skip what could not be sent rather than bursting later
    count(SLOT_SENT, n);
    this.socket.write(out);
  }

  seed(): Promise<number> {
    return new Promise((resolve) => {
      this.seedDone = () => {
        this.seedDone = null;
        resolve(this.seedAcked);
      };
      this.seedPump();
    });
  }

  private seedPump(): void {
    const pub = this.spec.publish!;
    const total = pub.count ?? 0;
    const window = pub.window ?? 100;
    if (this.seedAcked >= total) {
      this.seedDone?.();
      return;
    }
    const parts: Buffer[] = [];
    while (this.seedNext < total && this.inflight < window) {
      const tpl = publishTemplate(`${pub.topic}${this.seedNext}`, pub.payloadSize, 1, cfg.version, pub.retain === true);
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      tpl.buf.writeUInt16BE(id, tpl.idOffset);
      parts.push(tpl.buf);
      this.seedNext++;
      this.inflight++;
    }
    if (parts.length > 0) {
      count(SLOT_SENT, parts.length);
      this.socket.write(Buffer.concat(parts));
    }
  }

  close(): Promise<void> {
    this.closing = true;
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.socket.destroy(), 2000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (this.socket.writable) this.socket.end(DISCONNECT);
      else this.socket.destroy();
    });
  }
}

let conns: Conn[] = [];
let rateTimer: NodeJS.Timeout | null = null;

async function connectAll(specs: ConnSpec[], window: number, timeoutMs: number): Promise<FromWorker> {
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  const deadline = Date.now() + timeoutMs;
  const lane = async (): Promise<void> => {
    while (next < specs.length && Date.now() < deadline) {
      const conn = new Conn(specs[next++]!);
      conns.push(conn);
      try {
        await conn.handshake();
        ok++;
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(window, specs.length)) }, lane));
  failed += specs.length - ok - failed;
  return firstError === undefined ? { op: 'connected', ok, failed } : { op: 'connected', ok, failed, firstError };
}

async function handle(msg: ToWorker): Promise<FromWorker> {
  switch (msg.op) {
    case 'connect':
      return connectAll(msg.conns, msg.window, msg.timeoutMs);
    case 'start': {
      publishing = true;
      for (const c of conns) c.start();
      const rated = conns.filter((c) => c.spec.publish?.mode === 'rate');
      if (rated.length > 0) {
        rateTimer = setInterval(() => {
          const now = process.hrtime.bigint();
          for (const c of rated) c.rateTick(now);
        }, 1);
      }
      return { op: 'ack' };
    }
    case 'seed': {
      const seeders = conns.filter((c) => c.spec.publish?.mode === 'seed');
      const timeout = new Promise<number>((resolve) => setTimeout(() => resolve(-1), msg.timeoutMs).unref());
      const results = await Promise.all(seeders.map((c) => Promise.race([c.seed(), timeout])));
      const want = seeders.reduce((n, c) => n + (c.spec.publish?.count ?? 0), 0);
      const acked = results.reduce((n, r) => n + Math.max(0, r), 0);
      return { op: 'seeded', ok: acked >= want, acked };
    }
    case 'subscribe-now': {
      const atNs = process.hrtime.bigint().toString();
      for (const c of conns) if (c.spec.deferSubscribe === true) c.subscribe();
      return { op: 'subscribed', atNs };
    }
    case 'stop':
      publishing = false;
      if (rateTimer !== null) clearInterval(rateTimer);
      rateTimer = null;
      return { op: 'ack' };
    case 'latencies': {
      const samplesUs = latencies.slice(0, latencyCount);
      if (dumpFile !== undefined && sentAt !== null) {
        const lines: string[] = [];
        for (let i = 0; i < latencyCount; i++) lines.push(`${sentAt[i]} ${samplesUs[i]!.toFixed(1)}`);
        appendFileSync(dumpFile, `${lines.join('\n')}\n`);
      }
      latencyCount = 0;
      return { op: 'latencies', samplesUs };
    }
    case 'close':
      publishing = false;
      await Promise.all(conns.map((c) => c.close()));
      conns = [];
      return { op: 'closed' };
  }
}

port.on('message', (msg: ToWorker) => {
  handle(msg).then(post, (err: unknown) => post({ op: 'error', message: String(err) }));
});
