/** Markdown tables, ratios and target checks for the broker benchmark. */
import type { ScenarioName, ScenarioParams, ScenarioResult } from './types.js';

interface MetricInfo {
  label: string;
  better?: 'higher' | 'lower';
}

const METRICS: Record<string, MetricInfo> = {
  delivered_per_s: { label: 'delivered msg/s', better: 'higher' },
  sent_per_s: { label: 'published msg/s (accepted by socket)' },
  acked_per_s: { label: 'PUBACKs to publishers /s', better: 'higher' },
  memory_store_delivered_per_s: { label: 'Courier, same sessions on its in-memory store: delivered msg/s' },
  memory_store_cpu_us_per_msg: { label: 'Courier, same sessions on its in-memory store: broker CPU µs per msg' },
  durable_vs_memory_pct: { label: 'Courier durable throughput per core / in-memory store, % (by CPU µs per msg)' },
  loss_pct: { label: 'lost % (sequence gaps at subscribers)', better: 'lower' },
  window_stalls: { label: 'QoS 0 windows forgiven (2 s with nothing delivered)' },
  cpu_us_per_msg: { label: 'broker CPU µs per delivered msg', better: 'lower' },
  broker_cpu_pct: { label: 'broker CPU % (of its one core)' },
  broker_rss_mib: { label: 'broker RSS MiB (end)', better: 'lower' },
  p50_us: { label: 'latency p50 µs', better: 'lower' },
  p90_us: { label: 'latency p90 µs', better: 'lower' },
  p99_us: { label: 'latency p99 µs', better: 'lower' },
  p999_us: { label: 'latency p99.9 µs', better: 'lower' },
  max_us: { label: 'latency max µs', better: 'lower' },
  samples: { label: 'latency samples' },
  connections: { label: 'connections' },
  connect_per_s: { label: 'CONNECT→CONNACK /s', better: 'higher' },
  connect_cpu_us: { label: 'broker CPU µs per connection', better: 'lower' },
  rss_before_mib: { label: 'broker RSS before MiB' },
  rss_after_mib: { label: 'broker RSS after MiB' },
  rss_per_conn_kib: { label: 'RSS per idle connection KiB, 2 s after the burst', better: 'lower' },
  rss_base_steady_mib: { label: 'broker RSS before, steady MiB' },
  rss_steady_mib: { label: 'broker RSS after, steady MiB' },
  rss_steady_per_conn_kib: { label: 'RSS per idle connection KiB, steady (Node brokers: after a forced GC)', better: 'lower' },
  heap_per_conn_kib: { label: 'V8 heap in use + external per idle connection KiB, after a forced GC (Node brokers)', better: 'lower' },
  pingresp_pct: { label: 'connections answering PINGREQ at the end, %', better: 'higher' },
  ping_ms: { label: 'PINGREQ to all → last PINGRESP, ms', better: 'lower' },
  topics: { label: 'retained topics' },
  seed_per_s: { label: 'retained PUBLISH QoS 1 (seeding) /s', better: 'higher' },
  retained_ms: { label: 'SUBSCRIBE → last retained msg, ms', better: 'lower' },
  retained_per_s: { label: 'retained msgs delivered /s', better: 'higher' },
  received: { label: 'messages received' },
  gen_cpu_pct: { label: 'generator CPU % (of its one core)' },
  lost_connections: { label: 'connections dropped by broker', better: 'lower' },
};

export function scenarioTitle(s: ScenarioName, p: ScenarioParams): string {
  const payload = `${p.payloadSize} B payload`;
  switch (s) {
    case 'fanin':
      return `Fan-in QoS 0: ${p.faninPublishers} publishers → 1 subscriber on a wildcard, ${payload}, ≤ ${p.faninWindow} in flight per publisher`;
    case 'fanout':
      return `Fan-out QoS 0: 1 publisher → ${p.fanoutSubscribers} subscribers, ${payload}, ≤ ${p.fanoutWindow} in flight`;
    case 'qos1':
      return `QoS 1 pairs: ${p.qos1Pairs} publisher→subscriber pairs, window ${p.qos1Window} unacked per publisher, ${payload}`;
    case 'latency':
      return `Latency: 1 publisher → 1 subscriber, QoS 0, fixed ${p.latencyRate} msg/s, ${p.payloadSize} B payload, window after ${p.latencyWarmupMs / 1000} s warm-up`;
    case 'idle':
      return `Idle connections: ${p.idleConnections} clients, ${p.connectWindow} handshakes in flight`;
    case 'retained':
      return `Retained fan-out: ${p.retainedTopics} retained topics, then one wildcard SUBSCRIBE`;
    case 'durable':
      return `Durable QoS 1: the QoS 1 pairs with persistent subscriber sessions; Courier on LMDB (durability "commit": acks after the commit), Mosquitto with \`persistence true\` (in memory, snapshot every 30 min)`;
  }
}

function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return String(v);
}

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || Number.isNaN(a) || Number.isNaN(b) || b === 0) return '–';
  const r = a / b;
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

export function scenarioTable(s: ScenarioName, p: ScenarioParams, results: ScenarioResult[], brokers: string[]): string {
  const byBroker = new Map(results.map((r) => [r.broker, r]));
  const lines: string[] = [`### ${scenarioTitle(s, p)}`, ''];
  const skipped = results.filter((r) => r.skipped !== undefined);
  if (skipped.length === results.length && skipped.length > 0) {
    lines.push(`Skipped: ${skipped[0]!.skipped}`, '');
    return lines.join('\n');
  }
  // A broker skipped in this scenario, or not run in it, gets no column (a skip is noted below).
  const shown = brokers.filter((b) => byBroker.has(b) && byBroker.get(b)!.skipped === undefined);
  const compare = shown.includes('courier') ? shown.filter((b) => b !== 'courier') : [];
  const header = ['metric', ...shown, ...compare.map((b) => `courier/${b}`)];
  lines.push(`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
  const keys: string[] = [];
  for (const r of results) for (const k of Object.keys(r.metrics)) if (!keys.includes(k)) keys.push(k);
  for (const k of keys) {
    const info = METRICS[k] ?? { label: k };
    const label = info.better === undefined ? info.label : `${info.label} (${info.better} better)`;
    const vals = shown.map((b) => byBroker.get(b)?.metrics[k]);
    const courier = byBroker.get('courier')?.metrics[k];
    const ratios = info.better === undefined ? compare.map(() => '') : compare.map((b) => ratio(courier, byBroker.get(b)?.metrics[k]));
    lines.push(`| ${[label, ...vals.map(fmt), ...ratios].join(' | ')} |`);
  }
  lines.push('');
  for (const b of brokers) {
    const r = byBroker.get(b);
    if (r === undefined) continue;
    if (r.error !== undefined) lines.push(`- ${b}: ERROR ${r.error}`);
    if (r.skipped !== undefined) lines.push(`- ${b}: skipped (${r.skipped})`);
    for (const n of r.notes) lines.push(`- ${b}: ${n}`);
  }
  lines.push('');
  return lines.join('\n');
}

export interface TargetCheck {
  target: string;
  value: string;
  met: boolean | null;
}

export function targetChecks(results: ScenarioResult[]): TargetCheck[] {
  const get = (s: ScenarioName, b: string, k: string): number | null => {
    const v = results.find((r) => r.scenario === s && r.broker === b)?.metrics[k];
    return v === undefined || v === null || Number.isNaN(v) ? null : v;
  };
  const checks: TargetCheck[] = [];
  const ratioCheck = (target: string, s: ScenarioName, other: string, k: string, min: number, invert = false): void => {
    const c = get(s, 'courier', k);
    const o = get(s, other, k);
    if (c === null || o === null || (invert ? c : o) === 0) {
      checks.push({ target, value: 'not measured', met: null });
      return;
    }
    const r = invert ? o / c : c / o;
    checks.push({ target, value: `${r.toFixed(2)}×`, met: r >= min });
  };
  ratioCheck('fan-in QoS 0 throughput ≥ 2× Aedes', 'fanin', 'aedes', 'delivered_per_s', 2);
  ratioCheck('fan-in QoS 0 CPU/msg ≤ ½ Aedes', 'fanin', 'aedes', 'cpu_us_per_msg', 2, true);
  ratioCheck('QoS 1 pairs throughput ≥ 2× Aedes', 'qos1', 'aedes', 'delivered_per_s', 2);
  ratioCheck('QoS 1 pairs CPU/msg ≤ ½ Aedes', 'qos1', 'aedes', 'cpu_us_per_msg', 2, true);
  ratioCheck('fan-out QoS 0 throughput ≥ 3× Aedes', 'fanout', 'aedes', 'delivered_per_s', 3);
  ratioCheck('fan-out QoS 0 CPU/msg ≤ ⅓ Aedes', 'fanout', 'aedes', 'cpu_us_per_msg', 3, true);
  ratioCheck('connections/s ≥ Mosquitto', 'idle', 'mosquitto', 'connect_per_s', 1);
  const rss = get('idle', 'courier', 'rss_steady_per_conn_kib');
  const burst = get('idle', 'courier', 'rss_per_conn_kib');
  checks.push({
    target: 'RSS per idle connection ≤ 2.5 KiB (steady, after a forced GC; issue 19)',
    value: rss === null ? 'not measured' : `${rss} KiB (${burst ?? '?'} KiB 2 s after the burst)`,
    met: rss === null ? null : rss <= 2.5,
  });
  const cpuConn = get('idle', 'courier', 'connect_cpu_us');
  const floorConn = get('idle', 'node-floor', 'connect_cpu_us');
  checks.push({
    target: 'broker CPU per connection ≤ 1.2× the Node floor (issue 19)',
    value: cpuConn === null || floorConn === null || floorConn === 0 ? 'not measured' : `${(cpuConn / floorConn).toFixed(2)}× (${cpuConn} vs ${floorConn} µs)`,
    met: cpuConn === null || floorConn === null || floorConn === 0 ? null : cpuConn <= 1.2 * floorConn,
  });
  const pinged = get('idle', 'courier', 'pingresp_pct');
  if (pinged !== null) checks.push({ target: 'every idle connection answers PINGREQ at the end', value: `${pinged}%`, met: pinged === 100 });
  const pct = get('durable', 'courier', 'durable_vs_memory_pct');
  checks.push({
    target: 'durable QoS 1 ≥ 50% of in-memory store QoS 1 (same persistent sessions)',
    value: pct === null ? 'not measured' : `${pct}%`,
    met: pct === null ? null : pct >= 50,
  });
  const dur = get('durable', 'courier', 'delivered_per_s');
  const clean = get('qos1', 'courier', 'delivered_per_s');
  if (dur !== null && clean !== null) {
    checks.push({
      target: 'durable QoS 1 vs clean-session QoS 1 pairs (no persistence at all; for information)',
      value: `${Math.round((dur / clean) * 100)}%`,
      met: null,
    });
  }
  const c50 = get('latency', 'courier', 'p50_us');
  const m50 = get('latency', 'mosquitto', 'p50_us');
  checks.push({
    target: 'latency p50 ≤ Mosquitto',
    value: c50 === null || m50 === null ? 'not measured' : `${Math.round(c50)} µs vs ${Math.round(m50)} µs`,
    met: c50 === null || m50 === null ? null : c50 <= m50,
  });
  for (const [k, label] of [
    ['p99_us', 'p99'],
    ['p999_us', 'p99.9'],
  ] as const) {
    const c = get('latency', 'courier', k);
    const m = get('latency', 'mosquitto', k);
    checks.push({
      target: `latency ${label} ≤ Mosquitto (issue 19)`,
      value: c === null || m === null ? 'not measured' : `${Math.round(c)} µs vs ${Math.round(m)} µs`,
      met: c === null || m === null ? null : c <= m,
    });
  }
  return checks;
}

export function targetsTable(checks: TargetCheck[]): string {
  const lines = ['### Courier targets', '', '| target | measured | met |', '|---|---:|:---:|'];
  for (const c of checks) lines.push(`| ${c.target} | ${c.value} | ${c.met === null ? '–' : c.met ? 'yes' : 'NO'} |`);
  lines.push('');
  return lines.join('\n');
}
