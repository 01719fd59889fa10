/**
 * What one idle connection keeps on the V8 heap, by constructor: heap snapshots of a server
 * before and after N idle connections (two forced GCs before each), the difference of self
 * sizes per (node type, name), divided by N. Run with --expose-gc; the native opener
 * (loadgen/connect.c) opens the connections from another CPU.
 *
 *   node --expose-gc --import tsx bench/heap-per-connection.ts [ROOT|floor] [N] [TOP]
 *
 * ROOT: a built checkout whose dist/ to load (default this one); `floor`: a bare node:net server
 * that answers CONNACK (the Node floor's per-connection work, in this process). N default 5000.
 * Snapshots are written to a temporary directory and removed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';
import { buildNativeConnect } from './loadgen/native.js';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const target = process.argv[2] ?? root;
const count = Number(process.argv[3] ?? 5000);
const top = Number(process.argv[4] ?? 30);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

const native = buildNativeConnect(path.join(tmpdir(), 'courier-bench-native'));
if ('error' in native) throw new Error(`connect.c: ${native.error}`);

async function serve(): Promise<number> {
  if (target === 'floor') {
    const connack = Buffer.from([0x20, 2, 0, 0]);
    const srv = net.createServer((s) => {
      s.setNoDelay(true);
      s.on('data', (c: Buffer) => {
        if (c[0]! >> 4 === 1) s.write(connack);
      });
      s.on('error', () => s.destroy());
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    return (srv.address() as net.AddressInfo).port;
  }
  const mod = (await import(pathToFileURL(path.join(path.resolve(target), 'dist/index.js')).href)) as {
    createBroker(o: Record<string, unknown>): Promise<{ listen(): Promise<{ transport: string; port: number }[]> }>;
  };
  const broker = await mod.createBroker({ host: '127.0.0.1', port: 0, wsPort: null, persistence: { engine: 'memory' } });
  const tcp = (await broker.listen()).find((a) => a.transport === 'tcp');
  if (tcp === undefined) throw new Error('no TCP listener');
  return tcp.port;
}

function summarize(file: string): Map<string, { count: number; size: number }> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [iType, iName, iSize, width] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size'), fields.length];
  const out = new Map<string, { count: number; size: number }>();
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + iType]!]!;
    let name = snap.strings[snap.nodes[i + iName]!]!;
    if (type.endsWith('string')) name = '(string)';
    else if (type === 'code') name = '(code)';
    else if (type === 'number') name = '(heap number)';
    const key = `${type}\t${name.slice(0, 60)}`;
    const e = out.get(key) ?? { count: 0, size: 0 };
    e.count++;
    e.size += snap.nodes[i + iSize]!;
    out.set(key, e);
  }
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(path.join(tmpdir(), 'courier-heap-'));
try {
  const port = await serve();
  await sleep(500);
  gc();
  gc();
  const before = writeHeapSnapshot(path.join(dir, 'before.heapsnapshot'));
  const opener = spawn('taskset', ['-c', '1', native.bin, '127.0.0.1', String(port), String(count), '100', 'heap-', '4', '60', '1', '120'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve) => opener.stdout.on('data', (b: Buffer) => b.toString().includes('"connected"') && resolve()));
  await sleep(2000);
  gc();
  gc();
  const after = writeHeapSnapshot(path.join(dir, 'after.heapsnapshot'));
  opener.stdin.end('close\n');
  const a = summarize(before);
  const b = summarize(after);
  const rows = [...b].map(([k, e]) => {
    const p = a.get(k) ?? { count: 0, size: 0 };
    return { key: k, count: (e.count - p.count) / count, bytes: (e.size - p.size) / count };
  });
  rows.sort((x, y) => y.bytes - x.bytes);
  const total = rows.reduce((s, r) => s + r.bytes, 0);
  process.stdout.write(`${target === 'floor' ? 'Node floor' : target}: ${count} connections, self size per connection ${total.toFixed(0)} B\n`);
  process.stdout.write('| bytes | objects | type | name |\n|---:|---:|---|---|\n');
  for (const r of rows.slice(0, top)) {
    const [type, name] = r.key.split('\t');
    process.stdout.write(`| ${r.bytes.toFixed(1)} | ${r.count.toFixed(2)} | ${type} | ${name} |\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
