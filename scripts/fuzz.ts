/**
 * Fuzzer for the MQTT decoder (src/protocol).
 *
 *   npm run fuzz -- [--iterations N] [--seed S] [--max-input-ms MS] [--hang-ms MS]
 *   npm run fuzz -- --replay <iteration> --seed S     re-run one generated input, verbosely
 *
 * Inputs: random bytes, and mutations (bit flips, byte sets, inserts, deletes, Remaining Length
 * and inner length tweaks, truncation, duplication, splicing) of valid packets drawn from the
 * fast-check generators in test/helpers/arbitraries.ts, for protocol levels 4 and 5. Each input
 * is fed to a fresh Decoder in random chunk splits (sometimes one byte at a time), with its
 * version preset, the other version, or left for the CONNECT to set; sometimes with a small
 * maxPacketSize.
 *
 * Asserted for every input (a failure is a "violation"; the run prints the hex reproducer and
 * exits 1):
 * - nothing but an MqttError (src/protocol/errors.ts) is thrown;
 * - no hang: each input finishes within --max-input-ms; a watchdog (the fuzzing runs in a worker
 *   thread) stops an input that never returns after --hang-ms;
 * - bounded memory: no Buffer the decoder allocates is larger than maxPacketSize (observed by
 *   wrapping the Buffer factories while decoding), and process memory stays under a ceiling;
 *   inputs for which the decoder allocates far more than it was given are counted and shown;
 * - stability: the packets decoded re-encode, the re-encoded bytes decode to the same packets,
 *   and re-encoding those gives the same bytes;
 * - valid packets fed unmodified decode to exactly themselves.
 *
 * Every input is derived from (seed, iteration) alone, so any input can be regenerated.
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import { Decoder, MqttError, encode } from '../src/protocol/index.js';
import type { DecoderOptions, Packet, ProtocolVersion } from '../src/protocol/index.js';
import { canonicalPacket, packetArb, type Version } from '../test/helpers/arbitraries.js';

// =============================================================================================
// Deterministic randomness
// =============================================================================================

/** splitmix32-style mixer: one 32-bit seed per (seed, iteration). */
function mix(a: number, b: number): number {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(b, 0xc2b2ae35)) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

/** mulberry32. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

// =============================================================================================
// Corpus of valid packets
// =============================================================================================

export interface CorpusEntry {
  version: Version;
  packet: Packet;
  bytes: Buffer;
}

export interface Corpus {
  v4: CorpusEntry[];
  v5: CorpusEntry[];
  connects: { 4: CorpusEntry[]; 5: CorpusEntry[] };
}

/**
 * Valid packets from the generators, encoded by our encoder. An encoder failure on a valid
 * packet is itself a finding, so it throws here.
 */
export function buildCorpus(seed: number, perVersion: number): Corpus {
  const make = (version: Version): CorpusEntry[] =>
    fc.sample(packetArb(version), { seed: mix(seed, version), numRuns: perVersion }).map((packet) => {
      try {
        return { version, packet, bytes: encode(packet, version) };
      } catch (err) {
        throw new Error(`encode() rejected a valid v${version} packet ${JSON.stringify(packet)}: ${String(err)}`, { cause: err });
      }
    });
  const v4 = make(4);
  const v5 = make(5);
  return {
    v4,
    v5,
    connects: { 4: v4.filter((e) => e.packet.type === 'connect'), 5: v5.filter((e) => e.packet.type === 'connect') },
  };
}

// =============================================================================================
// Inputs
// =============================================================================================

export interface FuzzInput {
  iteration: number;
  kind: 'random' | 'valid' | 'mutated' | 'spliced';
  bytes: Buffer;
  /** Decoder options: version preset (or undefined = learn it from CONNECT), size limit. */
  options: DecoderOptions;
  /** Ascending cut offsets for chunking; [] = one chunk. */
  cuts: number[];
  /** For kind 'valid': the packets the bytes encode. */
  expected?: Packet[];
  mutations: string[];
}

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** Bytes of the Remaining Length field at `at` (1..4, or up to 4 if malformed). */
function varintSize(buf: Buffer, at: number): number {
  let i = 0;
  while (i < 4 && at + i < buf.length && (buf[at + i]! & 0x80) !== 0) i++;
  return Math.min(i + 1, 4);
}

function lengthTweak(rng: Rng, buf: Buffer, start: number): { buf: Buffer; what: string } {
  const at = start + 1;
  if (at >= buf.length) return { buf, what: 'len:none' };
  const size = varintSize(buf, at);
  let current = 0;
  for (let i = size - 1; i >= 0; i--) current = current * 128 + (buf[at + i]! & 0x7f);
  let field: number[];
  let what: string;
  switch (rng.int(7)) {
    case 0: {
      const d = rng.range(-4, 4) || 1;
      field = varint(Math.max(0, current + d));
      what = `len${d > 0 ? '+' : ''}${d}`;
      break;
    }
    case 1:
      field = varint(0);
      what = 'len=0';
      break;
    case 2: {
      const v = rng.pick([127, 128, 16383, 16384, 2097151, 2097152, 268435455]);
      field = varint(v);
      what = `len=${v}`;
      break;
    }
    case 3: {
      const v = rng.int(1 << rng.range(1, 28));
      field = varint(v);
      what = `len=${v}`;
      break;
    }
    case 4:
      field = [...varint(current).map((b) => b | 0x80), 0x00];
      what = 'len:non-minimal';
      break;
    case 5:
      field = [0xff, 0xff, 0xff, 0xff, rng.int(256)];
      what = 'len:5-byte';
      break;
    default:
      field = [0x80 | rng.int(128)];
      what = 'len:cont-at-end';
      break;
  }
  return { buf: Buffer.concat([buf.subarray(0, at), Buffer.from(field), buf.subarray(at + size)]), what };
}

function mutate(rng: Rng, input: Buffer, starts: number[]): { buf: Buffer; what: string[] } {
  let buf = input;
  const what: string[] = [];
  // Length-field tweaks first, while the packet start offsets are still right.
  if (rng.chance(0.35)) {
    const r = lengthTweak(rng, buf, rng.pick(starts));
    buf = r.buf;
    what.push(r.what);
  }
  const n = rng.range(what.length > 0 ? 0 : 1, 4);
  for (let m = 0; m < n; m++) {
    const len = buf.length;
    switch (rng.int(9)) {
      case 0: {
        if (len === 0) break;
        const i = rng.int(len);
        const b = Buffer.from(buf);
        b[i] = b[i]! ^ (1 << rng.int(8));
        buf = b;
        what.push(`flip@${i}`);
        break;
      }
      case 1: {
        if (len === 0) break;
        const i = rng.int(len);
        const b = Buffer.from(buf);
        b[i] = rng.pick([0x00, 0xff, 0x7f, 0x80, 0x01, rng.int(256)]);
        buf = b;
        what.push(`set@${i}`);
        break;
      }
      case 2: {
        const i = rng.int(len + 1);
        const k = rng.range(1, 8);
        buf = Buffer.concat([buf.subarray(0, i), rng.bytes(k), buf.subarray(i)]);
        what.push(`ins${k}@${i}`);
        break;
      }
      case 3: {
        if (len === 0) break;
        const i = rng.int(len);
        const k = Math.min(rng.range(1, 8), len - i);
        buf = Buffer.concat([buf.subarray(0, i), buf.subarray(i + k)]);
        what.push(`del${k}@${i}`);
        break;
      }
      case 4: {
        const k = rng.int(len + 1);
        buf = buf.subarray(0, k);
        what.push(`trunc${k}`);
        break;
      }
      case 5: {
        // An inner two-byte length (string, binary, packet id) set to an interesting value.
        if (len < 4) break;
        const i = rng.range(2, len - 2);
        const cur = buf.readUInt16BE(i);
        const v = rng.pick([0, 1, 0xffff, 0x8000, (cur + 1) & 0xffff, (cur - 1) & 0xffff, rng.int(0x10000)]);
        const b = Buffer.from(buf);
        b.writeUInt16BE(v, i);
        buf = b;
        what.push(`u16=${v}@${i}`);
        break;
      }
      case 6: {
        if (len === 0) break;
        const i = rng.int(len);
        const k = rng.range(1, Math.min(32, len - i));
        const j = rng.int(len + 1);
        buf = Buffer.concat([buf.subarray(0, j), buf.subarray(i, i + k), buf.subarray(j)]);
        what.push(`dup${k}:${i}->${j}`);
        break;
      }
      case 7: {
        // First byte: another type, or other flag bits.
        if (len === 0) break;
        const b = Buffer.from(buf);
        b[0] = rng.chance(0.5) ? (b[0]! & 0x0f) | (rng.int(16) << 4) : (b[0]! & 0xf0) | rng.int(16);
        buf = b;
        what.push(`hdr=${b[0]!.toString(16)}`);
        break;
      }
      default: {
        // A v5 property identifier or variable byte integer somewhere: write a byte above 0x7f.
        if (len === 0) break;
        const i = rng.int(len);
        const b = Buffer.from(buf);
        b[i] = 0x80 | rng.int(128);
        buf = b;
        what.push(`hi@${i}`);
      }
    }
  }
  return { buf, what };
}

/** 1-3 valid packets of one version; a CONNECT only in first place (a second one is a Protocol Error, [MQTT-3.1.0-2]). */
function pickPackets(rng: Rng, corpus: Corpus, version: Version): CorpusEntry[] {
  const pool = version === 4 ? corpus.v4 : corpus.v5;
  const n = rng.chance(0.7) ? 1 : rng.range(2, 3);
  const out: CorpusEntry[] = [];
  while (out.length < n) {
    const e = rng.pick(pool);
    if (out.length === 0 || e.packet.type !== 'connect') out.push(e);
  }
  return out;
}

function chooseCuts(rng: Rng, length: number): number[] {
  const r = rng.next();
  if (r < 0.4 || length < 2) return [];
  if (r < 0.5) return Array.from({ length: length - 1 }, (_, i) => i + 1); // one byte at a time
  const n = r < 0.9 ? rng.range(1, 6) : rng.range(7, 40);
  const cuts = new Set<number>();
  for (let i = 0; i < n; i++) cuts.add(rng.range(1, length - 1));
  return [...cuts].sort((a, b) => a - b);
}

/** The input for one iteration; a pure function of (corpus, seed, iteration). */
export function makeInput(corpus: Corpus, seed: number, iteration: number): FuzzInput {
  const rng = new Rng(mix(seed, iteration));
  const version: Version = rng.chance(0.5) ? 4 : 5;
  const options: DecoderOptions = {};
  const r = rng.next();
  let kind: FuzzInput['kind'];
  let bytes: Buffer;
  let expected: Packet[] | undefined;
  let mutations: string[] = [];
  let withConnect = false;

  if (r < 0.15) {
    kind = 'random';
    const len = rng.chance(0.9) ? rng.int(48) : rng.int(1024);
    bytes = rng.bytes(len);
    if (len > 0 && rng.chance(0.6)) bytes[0] = (rng.range(1, 15) << 4) | rng.pick([0, 0, 2, rng.int(16)]);
  } else if (r < 0.22) {
    kind = 'valid';
    const entries = pickPackets(rng, corpus, version);
    bytes = Buffer.concat(entries.map((e) => e.bytes));
    expected = entries.map((e) => e.packet);
  } else if (r < 0.9) {
    kind = 'mutated';
    const entries = pickPackets(rng, corpus, version);
    const starts: number[] = [];
    let at = 0;
    for (const e of entries) {
      starts.push(at);
      at += e.bytes.length;
    }
    const m = mutate(rng, Buffer.concat(entries.map((e) => e.bytes)), starts);
    bytes = m.buf;
    mutations = m.what;
  } else {
    kind = 'spliced';
    const a = rng.pick(rng.chance(0.5) ? corpus.v4 : corpus.v5).bytes;
    const b = rng.pick(rng.chance(0.5) ? corpus.v4 : corpus.v5).bytes;
    const i = rng.int(a.length + 1);
    const j = rng.int(b.length + 1);
    bytes = Buffer.concat([a.subarray(0, i), b.subarray(j)]);
    mutations = [`splice${i}|${j}`];
    if (rng.chance(0.3)) {
      const m = mutate(rng, bytes, [0]);
      bytes = m.buf;
      mutations.push(...m.what);
    }
  }

  // Version: usually preset to the packets' own; sometimes the other one; sometimes left for a
  // CONNECT to set (server side), with a valid CONNECT put in front.
  const v = rng.next();
  if (v < 0.8) options.protocolVersion = version;
  else if (v < 0.87) options.protocolVersion = version === 4 ? 5 : 4;
  else {
    const connects = corpus.connects[version];
    if (connects.length > 0 && (kind !== 'valid' || expected![0]!.type !== 'connect')) {
      const c = rng.pick(connects);
      bytes = Buffer.concat([c.bytes, bytes]);
      expected = expected === undefined ? undefined : [c.packet, ...expected];
      withConnect = true;
    }
  }
  if (kind === 'valid' && options.protocolVersion !== undefined && options.protocolVersion !== version) options.protocolVersion = version;
  // A small maxPacketSize now and then (never for 'valid', which must decode whole).
  if (kind !== 'valid' && rng.chance(0.25)) options.maxPacketSize = rng.chance(0.5) ? rng.range(2, 64) : rng.range(65, 4096);
  if (withConnect) mutations.unshift('connect-prefix');

  const input: FuzzInput = { iteration, kind, bytes, options, cuts: chooseCuts(rng, bytes.length), mutations };
  if (expected !== undefined) input.expected = expected;
  return input;
}

// =============================================================================================
// Running one input
// =============================================================================================

export type ViolationKind = 'non-mqtt-error' | 'slow' | 'hang' | 'memory' | 'encode-rejects-decoded' | 'unstable' | 'valid-rejected';

export interface Violation {
  kind: ViolationKind;
  message: string;
  input: FuzzInput;
}

export interface Outcome {
  /** 'decoded', 'incomplete' (waiting for more bytes) or the MqttError code. */
  outcome: string;
  packets: number;
  /** The decoder allocated much more than it was given (claimed sizes allocated up front). */
  amplified: boolean;
  violation?: Violation;
}

/**
 * Buffer allocations made while decoding, observed by wrapping the Buffer factories: the decoder
 * holds bytes only in Buffers it allocates (or in slices of the chunks it was given), so the
 * largest allocation bounds what it buffers for one packet.
 */
const allocStats = { largest: 0, total: 0 };
const factories = { allocUnsafe: Buffer.allocUnsafe, allocUnsafeSlow: Buffer.allocUnsafeSlow, alloc: Buffer.alloc };
function watchAllocations(on: boolean): void {
  if (!on) {
    Buffer.allocUnsafe = factories.allocUnsafe;
    Buffer.allocUnsafeSlow = factories.allocUnsafeSlow;
    Buffer.alloc = factories.alloc;
    return;
  }
  allocStats.largest = 0;
  allocStats.total = 0;
  const note = (n: number): void => {
    if (n > allocStats.largest) allocStats.largest = n;
    allocStats.total += n;
  };
  Buffer.allocUnsafe = (n: number) => (note(n), factories.allocUnsafe(n));
  Buffer.allocUnsafeSlow = (n: number) => (note(n), factories.allocUnsafeSlow(n));
  Buffer.alloc = ((n: number, fill?: string | Uint8Array | number, enc?: BufferEncoding) => (note(n), factories.alloc(n, fill, enc))) as typeof Buffer.alloc;
}

interface DecodeResult {
  packets: Array<{ packet: Packet; version: ProtocolVersion | undefined }>;
  error?: unknown;
  /** Largest single Buffer allocation, and the sum of all, while decoding. */
  largestAlloc: number;
  totalAlloc: number;
}

function decodeAll(bytes: Buffer, options: DecoderOptions, cuts: number[]): DecodeResult {
  const res: DecodeResult = { packets: [], largestAlloc: 0, totalAlloc: 0 };
  const decoder = new Decoder((packet) => {
    const version = packet.type === 'connect' ? packet.protocolVersion : decoder.protocolVersion;
    res.packets.push({ packet, version });
  }, options);
  let at = 0;
  watchAllocations(true);
  try {
    for (const cut of [...cuts, bytes.length]) {
      if (cut <= at) continue;
      decoder.push(bytes.subarray(at, cut));
      at = cut;
    }
  } catch (err) {
    res.error = err;
  } finally {
    watchAllocations(false);
    res.largestAlloc = allocStats.largest;
    res.totalAlloc = allocStats.total;
  }
  return res;
}

const hex = (b: Buffer): string => b.toString('hex');

function describePackets(ps: Packet[]): string {
  return JSON.stringify(ps, (_k, v: unknown) =>
    v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? `<${hex(Buffer.from((v as { data: number[] }).data))}>` : v,
  );
}

export function runOne(input: FuzzInput, maxInputMs: number): Outcome {
  const t0 = performance.now();
  const res = decodeAll(input.bytes, input.options, input.cuts);
  const elapsed = performance.now() - t0;
  const amplified = res.totalAlloc > 2 * input.bytes.length + 65536;
  const violation = (kind: ViolationKind, message: string): Outcome => ({
    outcome: kind,
    packets: res.packets.length,
    amplified,
    violation: { kind, message, input },
  });

  if (res.error !== undefined && !(res.error instanceof MqttError)) {
    const e = res.error as Error;
    return violation('non-mqtt-error', `${e?.name ?? typeof e}: ${e?.message ?? String(e)}\n${e?.stack ?? ''}`);
  }
  if (elapsed > maxInputMs) return violation('slow', `took ${elapsed.toFixed(1)} ms (bound ${maxInputMs} ms) for ${input.bytes.length} bytes`);
  const limit = input.options.maxPacketSize;
  if (limit !== undefined && res.largestAlloc > limit)
    return violation('memory', `decoder allocated a ${res.largestAlloc}-byte buffer with maxPacketSize ${limit}`);

  if (input.kind === 'valid') {
    const got = res.packets.map((p) => canonicalPacket(p.packet));
    const want = input.expected!.map((p) => canonicalPacket(p));
    if (res.error !== undefined) return violation('valid-rejected', `valid packets rejected: ${String(res.error)}`);
    try {
      assertDeepEqual(got, want);
    } catch {
      return violation(
        'valid-rejected',
        `valid packets decoded differently:\n got  ${describePackets(res.packets.map((p) => p.packet))}\n want ${describePackets(input.expected!)}`,
      );
    }
  }

  // Stability: decoded → encode → decode gives the same packets; encode again gives the same bytes.
  if (res.packets.length > 0) {
    let again: Buffer;
    try {
      again = Buffer.concat(res.packets.map(({ packet, version }) => encode(packet, version ?? 4)));
    } catch (err) {
      return violation('encode-rejects-decoded', `encode() threw ${String(err)} for decoded ${describePackets(res.packets.map((p) => p.packet))}`);
    }
    const options: DecoderOptions = {};
    if (input.options.protocolVersion !== undefined) options.protocolVersion = input.options.protocolVersion;
    const res2 = decodeAll(again, options, []);
    if (res2.error !== undefined) return violation('unstable', `re-encoded packets ${hex(again)} do not decode: ${String(res2.error)}`);
    try {
      assertDeepEqual(
        res2.packets.map((p) => canonicalPacket(p.packet)),
        res.packets.map((p) => canonicalPacket(p.packet)),
      );
    } catch {
      return violation(
        'unstable',
        `re-decoded packets differ:\n first  ${describePackets(res.packets.map((p) => p.packet))}\n second ${describePackets(res2.packets.map((p) => p.packet))}`,
      );
    }
    let third: Buffer;
    try {
      third = Buffer.concat(res2.packets.map(({ packet, version }) => encode(packet, version ?? 4)));
    } catch (err) {
      return violation('unstable', `second encode threw ${String(err)}`);
    }
    if (!third.equals(again)) return violation('unstable', `encoding is not idempotent:\n ${hex(again)}\n ${hex(third)}`);
  }

  const outcome = res.error !== undefined ? (res.error as MqttError).code : res.packets.length > 0 ? 'decoded' : 'incomplete';
  return { outcome, packets: res.packets.length, amplified };
}

/** Deep equality on canonical packets (plain data and Buffers), without node:assert's cost. */
function assertDeepEqual(a: unknown, b: unknown): void {
  if (!deepEqual(a, b)) throw new Error('not equal');
}
function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) if (!deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}

// =============================================================================================
// The loop
// =============================================================================================

export interface FuzzOptions {
  iterations: number;
  seed: number;
  /** Valid packets per version in the corpus. */
  corpusSize?: number;
  maxInputMs?: number;
  /** Process memory ceiling (RSS), checked every 4096 inputs. */
  maxRssBytes?: number;
  /** Stop at the first violation (default true). */
  stopOnViolation?: boolean;
  /** Written with the current iteration before each input (watchdog). */
  progressCounter?: Int32Array;
  onProgress?: (done: number, elapsedMs: number) => void;
}

export interface FuzzReport {
  seed: number;
  iterations: number;
  elapsedMs: number;
  outcomes: Record<string, number>;
  kinds: Record<string, number>;
  packetsDecoded: number;
  /** Inputs for which the decoder allocated far more than the bytes it was given. */
  amplified: number;
  amplifiedExample?: FuzzInput;
  maxRssBytes: number;
  violations: Violation[];
}

export function runFuzz(opts: FuzzOptions): FuzzReport {
  const maxInputMs = opts.maxInputMs ?? 1000;
  const maxRss = opts.maxRssBytes ?? 1.5 * 1024 ** 3;
  const corpus = buildCorpus(opts.seed, opts.corpusSize ?? 1500);
  const report: FuzzReport = {
    seed: opts.seed,
    iterations: 0,
    elapsedMs: 0,
    outcomes: {},
    kinds: {},
    packetsDecoded: 0,
    amplified: 0,
    maxRssBytes: 0,
    violations: [],
  };
  const t0 = performance.now();
  let lastProgress = t0;
  for (let i = 0; i < opts.iterations; i++) {
    if (opts.progressCounter) Atomics.store(opts.progressCounter, 0, i);
    const input = makeInput(corpus, opts.seed, i);
    const r = runOne(input, maxInputMs);
    report.iterations++;
    report.outcomes[r.outcome] = (report.outcomes[r.outcome] ?? 0) + 1;
    report.kinds[input.kind] = (report.kinds[input.kind] ?? 0) + 1;
    report.packetsDecoded += r.packets;
    if (r.amplified) {
      report.amplified++;
      report.amplifiedExample ??= input;
    }
    if (r.violation) {
      report.violations.push(r.violation);
      if (opts.stopOnViolation ?? true) break;
    }
    if ((i & 4095) === 4095) {
      const rss = process.memoryUsage.rss();
      if (rss > report.maxRssBytes) report.maxRssBytes = rss;
      if (rss > maxRss) {
        report.violations.push({ kind: 'memory', message: `process RSS ${rss} bytes exceeds ${maxRss}`, input });
        break;
      }
      const now = performance.now();
      if (opts.onProgress && now - lastProgress > 5000) {
        lastProgress = now;
        opts.onProgress(i + 1, now - t0);
      }
    }
  }
  report.elapsedMs = performance.now() - t0;
  return report;
}

// =============================================================================================
// Output
// =============================================================================================

export function formatInput(input: FuzzInput): string {
  const opts = JSON.stringify(input.options);
  const cuts = input.cuts.length > 40 ? `${input.cuts.length} cuts (1 byte each)` : JSON.stringify(input.cuts);
  return [
    `  iteration: ${input.iteration}   kind: ${input.kind}   mutations: ${input.mutations.join(' ') || '-'}`,
    `  decoder options: ${opts}   chunk cuts: ${cuts}`,
    `  hex (${input.bytes.length} bytes): ${hex(input.bytes)}`,
  ].join('\n');
}

export function formatReport(r: FuzzReport): string {
  const secs = r.elapsedMs / 1000;
  const lines = [
    `seed ${r.seed}: ${r.iterations} inputs in ${secs.toFixed(1)} s (${Math.round(r.iterations / secs)} inputs/s), ${r.packetsDecoded} packets decoded, max RSS ${(r.maxRssBytes / 1024 ** 2).toFixed(0)} MiB`,
    `inputs by kind: ${Object.entries(r.kinds)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    'outcomes:',
    ...Object.entries(r.outcomes)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `  ${k.padEnd(40)} ${String(v).padStart(9)}  ${((100 * v) / r.iterations).toFixed(2)}%`),
  ];
  if (r.amplified > 0) {
    lines.push(
      `note: on ${r.amplified} inputs the decoder allocated more than twice the bytes it was given (+64 KiB): a claimed Remaining Length is allocated before the bytes arrive; first such input:`,
    );
    lines.push(formatInput(r.amplifiedExample!));
  }
  for (const v of r.violations) lines.push(`VIOLATION ${v.kind}: ${v.message}`, formatInput(v.input));
  return lines.join('\n');
}

// =============================================================================================
// CLI: the fuzzing runs in a worker; the main thread is the hang watchdog.
// =============================================================================================

interface WorkerJob {
  iterations: number;
  seed: number;
  maxInputMs: number;
  counter: SharedArrayBuffer;
}

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, v] = a.includes('=') ? a.slice(2).split('=', 2) : [a.slice(2), argv[++i]];
    if (v === undefined) throw new Error(`missing value for ${a}`);
    out[k!] = v;
  }
  return out;
}

const num = (s: string): number => {
  const n = Number(s.replace(/_/g, ''));
  if (!Number.isFinite(n)) throw new Error(`not a number: ${s}`);
  return n;
};

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const seed = args.seed !== undefined ? num(args.seed) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
  const iterations = args.iterations !== undefined ? num(args.iterations) : 1_000_000;
  const maxInputMs = args['max-input-ms'] !== undefined ? num(args['max-input-ms']) : 1000;
  const hangMs = args['hang-ms'] !== undefined ? num(args['hang-ms']) : 10_000;

  if (args.replay !== undefined) {
    const corpus = buildCorpus(seed, 1500);
    const input = makeInput(corpus, seed, num(args.replay));
    console.log(formatInput(input));
    const r = runOne(input, maxInputMs);
    console.log(`outcome: ${r.outcome}, packets: ${r.packets}`);
    if (r.violation) {
      console.log(`VIOLATION ${r.violation.kind}: ${r.violation.message}`);
      process.exitCode = 1;
    }
    return;
  }

  console.log(`fuzzing the decoder: ${iterations} inputs, seed ${seed} (replay one with: npm run fuzz -- --seed ${seed} --replay <iteration>)`);
  if (args['in-process'] !== undefined) {
    // No watchdog: for profiling (node --cpu-prof --import tsx scripts/fuzz.ts --in-process 1).
    const report = runFuzz({
      iterations,
      seed,
      maxInputMs,
      onProgress: (done, ms) => console.log(`  ${done} inputs, ${Math.round(done / (ms / 1000))} inputs/s`),
    });
    console.log(formatReport(report));
    if (report.violations.length > 0) process.exitCode = 1;
    return;
  }
  const counter = new SharedArrayBuffer(4);
  const view = new Int32Array(counter);
  Atomics.store(view, 0, -1); // -1 until the worker has built its corpus and starts fuzzing
  const job: WorkerJob = { iterations, seed, maxInputMs, counter };
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); }).catch((e) => { console.error(e); process.exit(2); });`;
  const worker = new Worker(code, { eval: true, workerData: job });
  let last = -1;
  let since = Date.now();
  const watchdog = setInterval(() => {
    const now = Atomics.load(view, 0);
    if (now !== last || now === -1) {
      last = now;
      since = Date.now();
      return;
    }
    if (Date.now() - since > hangMs) {
      clearInterval(watchdog);
      void worker.terminate();
      const input = makeInput(buildCorpus(seed, 1500), seed, now);
      console.log(`VIOLATION hang: input ${now} did not finish within ${hangMs} ms`);
      console.log(formatInput(input));
      process.exitCode = 1;
    }
  }, 500);
  worker.on('message', (m: { type: 'progress'; done: number; elapsedMs: number } | { type: 'report'; text: string; violations: number }) => {
    if (m.type === 'progress') {
      console.log(`  ${m.done} inputs, ${Math.round(m.done / (m.elapsedMs / 1000))} inputs/s`);
    } else {
      clearInterval(watchdog);
      console.log(m.text);
      if (m.violations > 0) process.exitCode = 1;
    }
  });
  worker.on('error', (err) => {
    clearInterval(watchdog);
    console.error('fuzz worker failed:', err);
    process.exitCode = 1;
  });
  worker.on('exit', () => clearInterval(watchdog));
}

function workerMain(job: WorkerJob): void {
  const report = runFuzz({
    iterations: job.iterations,
    seed: job.seed,
    maxInputMs: job.maxInputMs,
    progressCounter: new Int32Array(job.counter),
    onProgress: (done, elapsedMs) => parentPort!.postMessage({ type: 'progress', done, elapsedMs }),
  });
  parentPort!.postMessage({ type: 'report', text: formatReport(report), violations: report.violations.length });
}

if (!isMainThread && (workerData as WorkerJob | undefined)?.counter instanceof SharedArrayBuffer) {
  workerMain(workerData as WorkerJob);
} else if (isMainThread && process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main();
}
