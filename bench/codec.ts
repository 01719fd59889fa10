/**
 * Codec micro-benchmark: our decoder/encoder against mqtt-packet 9 (parser + generate), in one
 * run, on the same inputs.
 *
 *   npm run bench:codec [-- --rounds N --round-ms MS --warmup-ms MS --json]
 *
 * Cases: PUBLISH QoS 1 with 16 B, 1 KiB and 64 KiB payloads, as MQTT 3.1.1 and as MQTT 5.0 with
 * properties (Message Expiry Interval, Content Type, one User Property); CONNECT as 3.1.1 and
 * 5.0 (user name, password, will, v5 properties).
 *
 * Method: each side decodes with one long-lived streaming decoder (ours: `Decoder.push`,
 * mqtt-packet: `parser.parse`), one whole packet per call, as a socket with one packet per
 * chunk would; CONNECT is decoded by a fresh decoder per op on both sides (one CONNECT per
 * connection). Encoding is `encode()` vs `generate()` to one Buffer. After a warm-up, the
 * sides alternate in timed rounds; each side's result is the median ops/s over the rounds, and
 * the ratio is ours / mqtt-packet. "PUBLISH decode+encode" divides the time of one decode plus
 * one encode (1/ops + 1/ops) of mqtt-packet by ours. Absolute numbers depend on the machine and
 * its load; ratios from one run are what we report.
 */
import { performance } from 'node:perf_hooks';
import mqttPacket from 'mqtt-packet';
import type * as MP from 'mqtt-packet';
import { Decoder, encode } from '../src/protocol/index.js';
import type { Packet } from '../src/protocol/index.js';
import { median } from './stats.js';

type Version = 4 | 5;

interface Side {
  /** Runs the operation once; returns a number to keep the work observable. */
  run: () => number;
}

interface Case {
  name: string;
  group: 'publish' | 'connect';
  op: 'decode' | 'encode';
  ours: Side;
  theirs: Side;
}

// ---------------------------------------------------------------------------------------------
// Inputs

const TOPIC = 'sensors/building-7/floor-3/device-42/temperature';

function publishPair(size: number, version: Version): { ours: Packet; theirs: MP.IPublishPacket } {
  const payload = Buffer.alloc(size, 0x61);
  if (version === 4) {
    return {
      ours: { type: 'publish', topic: TOPIC, payload, qos: 1, retain: false, dup: false, packetId: 4242 },
      theirs: { cmd: 'publish', topic: TOPIC, payload, qos: 1, retain: false, dup: false, messageId: 4242 },
    };
  }
  return {
    ours: {
      type: 'publish',
      topic: TOPIC,
      payload,
      qos: 1,
      retain: false,
      dup: false,
      packetId: 4242,
      properties: { messageExpiryInterval: 3600, contentType: 'application/json', userProperties: [['trace-id', '4bf92f3577b34da6']] },
    },
    theirs: {
      cmd: 'publish',
      topic: TOPIC,
      payload,
      qos: 1,
      retain: false,
      dup: false,
      messageId: 4242,
      properties: { messageExpiryInterval: 3600, contentType: 'application/json', userProperties: { 'trace-id': '4bf92f3577b34da6' } },
    },
  };
}

function connectPair(version: Version): { ours: Packet; theirs: MP.IConnectPacket } {
  const will = { topic: 'clients/device-42/status', payload: Buffer.from('offline'), qos: 1 as const, retain: true };
  if (version === 4) {
    return {
      ours: {
        type: 'connect',
        protocolName: 'MQTT',
        protocolVersion: 4,
        clean: true,
        keepAlive: 60,
        clientId: 'device-42-7f3a',
        username: 'device-42',
        password: Buffer.from('s3cr3t-t0ken'),
        will,
      },
      theirs: {
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        keepalive: 60,
        clientId: 'device-42-7f3a',
        username: 'device-42',
        password: Buffer.from('s3cr3t-t0ken'),
        will,
      },
    };
  }
  return {
    ours: {
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepAlive: 60,
      clientId: 'device-42-7f3a',
      username: 'device-42',
      password: Buffer.from('s3cr3t-t0ken'),
      will: { ...will, properties: { willDelayInterval: 30, contentType: 'text/plain' } },
      properties: { sessionExpiryInterval: 3600, receiveMaximum: 100, topicAliasMaximum: 10, userProperties: [['region', 'eu-west']] },
    },
    theirs: {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepalive: 60,
      clientId: 'device-42-7f3a',
      username: 'device-42',
      password: Buffer.from('s3cr3t-t0ken'),
      will: { ...will, properties: { willDelayInterval: 30, contentType: 'text/plain' } },
      properties: { sessionExpiryInterval: 3600, receiveMaximum: 100, topicAliasMaximum: 10, userProperties: { region: 'eu-west' } },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Cases

function decodeCases(name: string, group: Case['group'], version: Version, ours: Packet, theirs: MP.Packet): Case[] {
  const bytes = encode(ours, version);
  const theirBytes = mqttPacket.generate(theirs, { protocolVersion: version });
  if (!bytes.equals(theirBytes)) {
    // Not fatal (encodings may legitimately differ in property order), but both must decode.
    process.stderr.write(`note: ${name}: the two encoders produce different bytes (${bytes.length} vs ${theirBytes.length}); each side decodes ours\n`);
  }
  let sink = 0;
  let oursSide: Side;
  let theirsSide: Side;
  if (group === 'connect') {
    oursSide = {
      run: () => {
        new Decoder((p) => {
          sink += p.type.length;
        }).push(bytes);
        return sink;
      },
    };
    theirsSide = {
      run: () => {
        const parser = mqttPacket.parser({ protocolVersion: version });
        parser.on('packet', (p) => {
          sink += p.cmd.length;
        });
        parser.parse(bytes);
        return sink;
      },
    };
  } else {
    const decoder = new Decoder(
      (p) => {
        sink += (p as { payload: Buffer }).payload.length;
      },
      { protocolVersion: version },
    );
    const parser = mqttPacket.parser({ protocolVersion: version });
    parser.on('packet', (p) => {
      sink += ((p as MP.IPublishPacket).payload as Buffer).length;
    });
    parser.on('error', (e) => {
      throw e;
    });
    oursSide = {
      run: () => {
        decoder.push(bytes);
        return sink;
      },
    };
    theirsSide = {
      run: () => {
        parser.parse(bytes);
        return sink;
      },
    };
  }
  // Sanity: both sides really decode a packet per op.
  const s0 = sink;
  oursSide.run();
  if (sink === s0) throw new Error(`${name}: our decoder produced nothing`);
  const s1 = sink;
  theirsSide.run();
  if (sink === s1) throw new Error(`${name}: mqtt-packet produced nothing`);
  return [{ name, group, op: 'decode', ours: oursSide, theirs: theirsSide }];
}

function encodeCases(name: string, group: Case['group'], version: Version, ours: Packet, theirs: MP.Packet): Case[] {
  return [
    {
      name,
      group,
      op: 'encode',
      ours: { run: () => encode(ours, version).length },
      theirs: { run: () => mqttPacket.generate(theirs, { protocolVersion: version }).length },
    },
  ];
}

function buildCases(): Case[] {
  const cases: Case[] = [];
  for (const version of [4, 5] as const) {
    for (const [size, label] of [
      [16, '16 B'],
      [1024, '1 KiB'],
      [65536, '64 KiB'],
    ] as const) {
      const { ours, theirs } = publishPair(size, version);
      const name = `PUBLISH ${label} ${version === 4 ? 'v3.1.1' : 'v5 +props'}`;
      cases.push(...decodeCases(name, 'publish', version, ours, theirs), ...encodeCases(name, 'publish', version, ours, theirs));
    }
  }
  for (const version of [4, 5] as const) {
    const { ours, theirs } = connectPair(version);
    const name = `CONNECT ${version === 4 ? 'v3.1.1' : 'v5 +props'}`;
    cases.push(...decodeCases(name, 'connect', version, ours, theirs), ...encodeCases(name, 'connect', version, ours, theirs));
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// Timing

function opsPerSecond(side: Side, ms: number): number {
  let ops = 0;
  let keep = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 32; i++) keep += side.run();
    ops += 32;
    t = performance.now();
  }
  if (keep === -1) console.log(keep);
  return (ops * 1000) / (t - t0);
}

interface Result {
  name: string;
  op: 'decode' | 'encode';
  group: Case['group'];
  oursOps: number;
  theirsOps: number;
  ratio: number;
}

function measure(c: Case, rounds: number, roundMs: number, warmupMs: number): Result {
  opsPerSecond(c.ours, warmupMs);
  opsPerSecond(c.theirs, warmupMs);
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    // Alternate which side goes first, so drift in machine load hits both alike.
    if (r % 2 === 0) {
      ours.push(opsPerSecond(c.ours, roundMs));
      theirs.push(opsPerSecond(c.theirs, roundMs));
    } else {
      theirs.push(opsPerSecond(c.theirs, roundMs));
      ours.push(opsPerSecond(c.ours, roundMs));
    }
  }
  const oursOps = median(ours);
  const theirsOps = median(theirs);
  return { name: c.name, op: c.op, group: c.group, oursOps, theirsOps, ratio: oursOps / theirsOps };
}

// ---------------------------------------------------------------------------------------------
// Report

interface Combined {
  name: string;
  ratio: number;
}

function combine(results: Result[]): { perCase: Combined[]; geomean: number } {
  const perCase: Combined[] = [];
  for (const dec of results.filter((r) => r.group === 'publish' && r.op === 'decode')) {
    const enc = results.find((r) => r.name === dec.name && r.op === 'encode')!;
    const oursTime = 1 / dec.oursOps + 1 / enc.oursOps;
    const theirsTime = 1 / dec.theirsOps + 1 / enc.theirsOps;
    perCase.push({ name: dec.name, ratio: theirsTime / oursTime });
  }
  const geomean = Math.exp(perCase.reduce((s, c) => s + Math.log(c.ratio), 0) / perCase.length);
  return { perCase, geomean };
}

const fmtOps = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0));

function printTable(results: Result[], combined: ReturnType<typeof combine>): void {
  const rows = results.map((r) => [r.name, r.op, `${fmtOps(r.oursOps)}/s`, `${fmtOps(r.theirsOps)}/s`, `${r.ratio.toFixed(2)}×`]);
  const head = ['case', 'op', 'ours', 'mqtt-packet', 'ours/mqtt-packet'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log('');
  for (const c of combined.perCase) console.log(`PUBLISH decode+encode  ${c.name.padEnd(28)} ${c.ratio.toFixed(2)}×`);
  console.log(`PUBLISH decode+encode  geometric mean of ${combined.perCase.length} cases: ${combined.geomean.toFixed(2)}× (target ≥ 3×)`);
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i === -1) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name} needs a positive number`);
  return v;
}

function main(): void {
  const json = process.argv.includes('--json');
  const rounds = arg('rounds', 7);
  const roundMs = arg('round-ms', 200);
  const warmupMs = arg('warmup-ms', 300);
  const cases = buildCases();
  const results: Result[] = [];
  for (const c of cases) {
    const r = measure(c, rounds, roundMs, warmupMs);
    results.push(r);
    if (!json) process.stderr.write(`  ${r.name} ${r.op}: ${r.ratio.toFixed(2)}×\n`);
  }
  const combined = combine(results);
  if (json) {
    console.log(
      JSON.stringify(
        {
          date: new Date().toISOString(),
          node: process.version,
          method: { rounds, roundMs, warmupMs, statistic: 'median ops/s per side; ratio = ours / mqtt-packet' },
          results,
          publishDecodeEncode: combined,
        },
        null,
        2,
      ),
    );
  } else {
    console.log(`\ncodec benchmark, ${new Date().toISOString()}, node ${process.version}, ${rounds} rounds × ${roundMs} ms after ${warmupMs} ms warm-up\n`);
    printTable(results, combined);
  }
}

main();
