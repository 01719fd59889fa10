/**
 * The soak run's clients (scripts/soak.ts describes the mix) and the checks at the end.
 * MQTT.js; every received PUBLISH is recorded from the `packetreceive` event, so QoS 2 is checked
 * on the wire: a PUBLISH whose packet id still awaits PUBREL is the same message re-sent and is
 * not delivered again, anything else that repeats a sequence number is a duplicate.
 */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient, type Packet } from 'mqtt';
import { filterMatches } from '../../src/topics/match.js';
import { SeqSet } from './track.js';

type QoS = 0 | 1 | 2;

export interface LoadOptions {
  url: string;
  /** Messages per second of each publisher (and of the retained publisher). */
  rate: number;
  publishersPerQos: number;
  persistent: number;
  clean: number;
  /** Share of the persistent sessions' departures that cut the socket (the rest send DISCONNECT). */
  cut: number;
  log(msg: string): void;
}

interface Pub {
  idx: number;
  qos: QoS;
  c: MqttClient;
  next: number;
  acked: SeqSet;
  inflight: number;
  errors: number;
  skipped: number;
}

interface Sub {
  name: string;
  c: MqttClient;
  filters: ReadonlyArray<readonly [string, QoS]>;
  got: Map<number, SeqSet>;
  /** QoS 2 packet ids received and not yet released (PUBREL). */
  awaitingRel: Set<number>;
  connects: number;
  lostSessions: number;
  qos1Dups: number;
  qos2Dups: number;
  offline: boolean;
}

export interface Report {
  published: number;
  delivered: number;
  lost: number;
  qos2Duplicates: number;
  lines: string[];
  failures: string[];
}

const RET_KEYS = 500;
const MAX_INFLIGHT = 400;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const between = (lo: number, hi: number): number => lo + Math.random() * (hi - lo);
const topicOf = (p: Pub, seq: number): string => `soak/${p.qos}/p${p.idx}/${seq % 10}`;

function connected(c: MqttClient, timeoutMs = 20_000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
    c.once('connect', (ack) => {
      clearTimeout(timer);
      resolve(ack.sessionPresent);
    });
  });
}

export class Load {
  private readonly pubs: Pub[] = [];
  private readonly subs: Sub[] = [];
  private readonly ticks: NodeJS.Timeout[] = [];
  private running = true;
  private readonly loops: Array<Promise<void>> = [];
  private received = 0;
  private cycles = 0;
  private cleanSessions = 0;
  private willsExpected = 0;
  private willsGot = 0;
  private retPublished = 0;
  private retInflight = 0;
  private readonly retLast = new Map<string, string>();
  private retClient: MqttClient | undefined;
  private witness: MqttClient | undefined;
  private idSeq = 0;
  private readonly dupNotes: string[] = [];

  constructor(private readonly o: LoadOptions) {}

  describe(): string {
    const n = this.o.publishersPerQos;
    return `${3 * n} publishers (${n} per QoS) at ${this.o.rate} msg/s each, ${this.o.persistent} churning persistent sessions, ${this.o.clean} clean churners, retained at ${this.o.rate} msg/s`;
  }

  counts(): { published: number; received: number; cycles: number; cleanSessions: number } {
    return {
      published: this.pubs.reduce((s, p) => s + p.next, 0) + this.retPublished,
      received: this.received,
      cycles: this.cycles,
      cleanSessions: this.cleanSessions,
    };
  }

  private client(options: IClientOptions): MqttClient {
    return mqtt.connect(this.o.url, { reconnectPeriod: 1000, connectTimeout: 20_000, keepalive: 30, ...options });
  }

  private async subscriber(name: string, version: 4 | 5, filters: ReadonlyArray<readonly [string, QoS]>, reconnect: boolean): Promise<Sub> {
    const options: IClientOptions = { clientId: `soak-${name}`, clean: false, protocolVersion: version, reconnectPeriod: reconnect ? 1000 : 0 };
    if (version === 5) options.properties = { sessionExpiryInterval: 3600 };
    const c = this.client(options);
    const sub: Sub = { name, c, filters, got: new Map(), awaitingRel: new Set(), connects: 0, lostSessions: 0, qos1Dups: 0, qos2Dups: 0, offline: false };
    c.on('connect', (ack) => {
      sub.connects++;
      if (sub.connects > 1 && !ack.sessionPresent) {
        sub.lostSessions++;
        sub.awaitingRel.clear();
        this.o.log(`${name}: reconnected with Session Present 0`);
      }
    });
    c.on('packetreceive', (packet: Packet) => this.onPacket(sub, packet));
    c.on('error', () => undefined);
    await connected(c);
    await c.subscribeAsync(filters.map(([f, qos]) => ({ [f]: { qos } })).reduce((a, b) => ({ ...a, ...b }), {}));
    this.subs.push(sub);
    return sub;
  }

  private onPacket(sub: Sub, packet: Packet): void {
    if (packet.cmd === 'pubrel') {
      sub.awaitingRel.delete(packet.messageId!);
      return;
    }
    if (packet.cmd !== 'publish') return;
    const p = packet as IPublishPacket;
    if (p.qos === 2) {
      if (sub.awaitingRel.has(p.messageId!)) return; // the same message again [MQTT-4.3.3-9]
      sub.awaitingRel.add(p.messageId!);
    }
    this.received++;
    const text = p.payload.toString();
    const colon = text.indexOf(':');
    if (colon < 0 || !p.topic.startsWith('soak/')) return;
    const pub = Number(text.slice(0, colon));
    const seq = Number(text.slice(colon + 1));
    let set = sub.got.get(pub);
    if (set === undefined) sub.got.set(pub, (set = new SeqSet()));
    if (!set.add(seq)) {
      if (p.qos === 2) {
        sub.qos2Dups++;
        if (this.dupNotes.length < 10)
          this.dupNotes.push(`${sub.name}: pub${pub} seq ${seq} again as packet id ${p.messageId} (dup flag ${p.dup}) on connection ${sub.connects}`);
      } else if (p.qos === 1) sub.qos1Dups++;
    }
  }

  async start(): Promise<void> {
    // Subscribers first: every publish after this is expected at every matching one.
    await this.subscriber('all', 5, [['soak/#', 2]], true);
    await this.subscriber('three', 4, [['soak/+/+/3', 1]], true);
    const churners: Sub[] = [];
    for (let i = 0; i < this.o.persistent; i++) {
      const qos: QoS = i % 2 === 0 ? 2 : 1;
      const filters: Array<readonly [string, QoS]> = [
        ['soak/1/#', qos],
        ['soak/2/#', qos],
      ];
      churners.push(await this.subscriber(`churn${i}`, i % 3 === 0 ? 4 : 5, filters, false));
    }
    this.witness = this.client({ clientId: 'soak-witness', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } });
    this.witness.on('message', (topic) => {
      if (topic.startsWith('soakwill/')) this.willsGot++;
    });
    await connected(this.witness);
    await this.witness.subscribeAsync('soakwill/#', { qos: 1 });

    for (let q = 0; q < 3; q++) {
      for (let i = 0; i < this.o.publishersPerQos; i++) {
        const idx = this.pubs.length;
        const options: IClientOptions = { clientId: `soak-pub${idx}`, clean: q === 0, protocolVersion: idx % 2 === 0 ? 5 : 4 };
        if (q > 0 && idx % 2 === 0) options.properties = { sessionExpiryInterval: 3600 };
        const c = this.client(options);
        c.on('error', () => undefined);
        await connected(c);
        this.pubs.push({ idx, qos: q as QoS, c, next: 0, acked: new SeqSet(), inflight: 0, errors: 0, skipped: 0 });
      }
    }
    this.retClient = this.client({ clientId: 'soak-retained', clean: true, protocolVersion: 5 });
    this.retClient.on('error', () => undefined);
    await connected(this.retClient);

    const perTick = this.o.rate / 10;
    for (const p of this.pubs) {
      let budget = 0;
      this.ticks.push(
        setInterval(() => {
          budget += perTick;
          for (; budget >= 1; budget--) this.publish(p);
        }, 100),
      );
    }
    let retBudget = 0;
    this.ticks.push(
      setInterval(() => {
        retBudget += perTick;
        for (; retBudget >= 1; retBudget--) this.publishRetained();
      }, 100),
    );
    for (const s of churners) this.loops.push(this.churn(s));
    for (let i = 0; i < this.o.clean; i++) this.loops.push(this.cleanLoop(i));
  }

  private publish(p: Pub): void {
    if (p.inflight >= MAX_INFLIGHT || !p.c.connected) {
      p.skipped++;
      return;
    }
    const seq = p.next++;
    p.inflight++;
    p.c.publish(topicOf(p, seq), `${p.idx}:${seq}`, { qos: p.qos }, (err) => {
      p.inflight--;
      if (err) p.errors++;
      else p.acked.add(seq);
    });
  }

  private publishRetained(): void {
    const c = this.retClient!;
    if (!c.connected) return;
    const key = `soakret/${Math.floor(Math.random() * RET_KEYS)}`;
    const value = Math.random() < 0.1 ? '' : `v${this.retPublished}`;
    this.retPublished++;
    this.retLast.set(key, value);
    this.retInflight++;
    c.publish(key, value, { qos: 1, retain: true }, () => this.retInflight--);
  }

  /** A persistent session that goes away and comes back, until the load stops; ends online. */
  private async churn(s: Sub): Promise<void> {
    while (this.running) {
      await sleep(between(4000, 15_000));
      if (!this.running) break;
      s.offline = true;
      if (Math.random() >= this.o.cut) await s.c.endAsync(false);
      else {
        const closed = new Promise<void>((resolve) => s.c.once('close', () => resolve()));
        s.c.stream.destroy();
        await closed;
      }
      await sleep(between(500, 4000));
      s.c.reconnect();
      await connected(s.c);
      s.offline = false;
      this.cycles++;
    }
  }

  /** Clean sessions that subscribe, read a while and go; half of them leave a will. */
  private async cleanLoop(i: number): Promise<void> {
    while (this.running) {
      const will = Math.random() < 0.5;
      const id = `soak-clean${i}-${this.idSeq++}`;
      const options: IClientOptions = { clientId: id, clean: true, protocolVersion: i % 2 === 0 ? 5 : 4, reconnectPeriod: 0 };
      if (will) options.will = { topic: `soakwill/${id}`, payload: Buffer.from('gone'), qos: 1, retain: false };
      const c = this.client(options);
      c.on('error', () => undefined);
      c.on('packetreceive', (packet: Packet) => {
        if (packet.cmd === 'publish') this.received++;
      });
      try {
        await connected(c);
        this.cleanSessions++;
        await c.subscribeAsync({ 'soak/0/#': { qos: 0 }, 'soakret/+': { qos: 1 } });
        await sleep(between(3000, 10_000));
      } catch (err) {
        this.o.log(`${id}: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (will) {
        this.willsExpected++;
        c.stream.destroy();
        c.end(true);
      } else await c.endAsync(false);
    }
  }

  /** Stops the load, brings every session back, waits for the deliveries and runs the checks. */
  async finish(): Promise<Report> {
    this.running = false;
    for (const t of this.ticks) clearInterval(t);
    await Promise.all(this.loops);
    const lines: string[] = [];
    const failures: string[] = [];
    const settle = async (what: string, done: () => boolean, quietMs: number, maxMs: number): Promise<void> => {
      const start = Date.now();
      let last = this.received;
      let lastChange = Date.now();
      while (!done()) {
        if (this.received !== last) {
          last = this.received;
          lastChange = Date.now();
        }
        if (Date.now() - lastChange > quietMs || Date.now() - start > maxMs) {
          this.o.log(`${what}: gave up waiting after ${Date.now() - start} ms`);
          return;
        }
        await sleep(250);
      }
    };
    await settle('in-flight publishes', () => this.pubs.every((p) => p.inflight === 0) && this.retInflight === 0, 30_000, 120_000);
    await settle('deliveries', () => this.missing().lost === 0 && this.willsGot >= this.willsExpected, 20_000, 180_000);

    const m = this.missing();
    const published = this.pubs.reduce((s, p) => s + p.next, 0);
    const acked = this.pubs.reduce((s, p) => s + (p.qos > 0 ? p.acked.count : 0), 0);
    const errors = this.pubs.reduce((s, p) => s + p.errors, 0);
    const skipped = this.pubs.reduce((s, p) => s + p.skipped, 0);
    const qos2Dups = this.subs.reduce((s, x) => s + x.qos2Dups, 0);
    const qos1Dups = this.subs.reduce((s, x) => s + x.qos1Dups, 0);
    const lostSessions = this.subs.reduce((s, x) => s + x.lostSessions, 0);
    const reconnects = this.subs.reduce((s, x) => s + x.connects - 1, 0);
    lines.push(
      `published ${published} (QoS 1/2 acknowledged ${acked}, publish errors ${errors}, ticks skipped for back-pressure ${skipped}), retained sets ${this.retPublished}`,
      `received ${this.received} PUBLISH packets; checked deliveries ${m.checked}, lost ${m.lost}, QoS 2 duplicates ${qos2Dups}, QoS 1 duplicates ${qos1Dups} (allowed)`,
      `persistent sessions: ${this.cycles} offline/online cycles, ${reconnects} reconnects, Session Present 0 on ${lostSessions}; clean sessions ${this.cleanSessions}; wills ${this.willsGot}/${this.willsExpected}`,
    );
    const perSub = (f: (x: Sub) => number): string =>
      this.subs
        .filter((x) => f(x) > 0)
        .map((x) => `${x.name} ${f(x)}`)
        .join(', ') || 'none';
    lines.push(`  lost per subscriber: ${perSub((x) => m.bySub.get(x.name) ?? 0)}; QoS 2 duplicates per subscriber: ${perSub((x) => x.qos2Dups)}`);
    for (const d of m.detail.slice(0, 10)) lines.push(`  lost: ${d}`);
    for (const d of this.dupNotes) lines.push(`  QoS 2 duplicate: ${d}`);
    if (m.lost > 0) failures.push(`${m.lost} QoS 1/2 deliveries lost`);
    if (qos2Dups > 0) failures.push(`${qos2Dups} QoS 2 duplicates`);
    if (lostSessions > 0) failures.push(`${lostSessions} persistent sessions lost`);
    if (this.willsGot !== this.willsExpected) failures.push(`wills ${this.willsGot} of ${this.willsExpected}`);
    const ret = await this.checkRetained();
    lines.push(`retained: ${ret.line}`);
    if (!ret.ok) failures.push('retained state differs');
    for (const c of [...this.pubs.map((p) => p.c), ...this.subs.map((s) => s.c), this.retClient!, this.witness!]) c.end(true);
    return { published: published + this.retPublished, delivered: this.received, lost: m.lost, qos2Duplicates: qos2Dups, lines, failures };
  }

  /** Acknowledged QoS 1/2 publishes that a matching QoS ≥ 1 subscription has not received. */
  private missing(): { lost: number; checked: number; detail: string[]; bySub: Map<string, number> } {
    const bySub = new Map<string, number>();
    let lost = 0;
    let checked = 0;
    const detail: string[] = [];
    for (const s of this.subs) {
      for (const p of this.pubs) {
        if (p.qos === 0) continue;
        const got = s.got.get(p.idx);
        // The topic, and so the matching subscription, depends on seq % 10 only.
        const qosByRest = Array.from({ length: 10 }, (_, k) => s.filters.find(([f]) => filterMatches(f, topicOf(p, k)))?.[1] ?? 0);
        let first = -1;
        let n = 0;
        for (let seq = 0; seq < p.next; seq++) {
          if (qosByRest[seq % 10] === 0 || !p.acked.has(seq)) continue;
          checked++;
          if (got?.has(seq) !== true) {
            n++;
            if (first < 0) first = seq;
          }
        }
        if (n > 0) detail.push(`${s.name} from pub${p.idx} (QoS ${p.qos}): ${n}, first seq ${first}`);
        if (n > 0) bySub.set(s.name, (bySub.get(s.name) ?? 0) + n);
        lost += n;
      }
    }
    return { lost, checked, detail, bySub };
  }

  private async checkRetained(): Promise<{ ok: boolean; line: string }> {
    const want = new Map([...this.retLast].filter(([, v]) => v !== ''));
    const got = new Map<string, string>();
    const c = this.client({ clientId: 'soak-retcheck', clean: true, protocolVersion: 5, reconnectPeriod: 0 });
    c.on('error', () => undefined);
    c.on('message', (topic, payload, packet) => {
      if (packet.retain) got.set(topic, payload.toString());
    });
    await connected(c);
    await c.subscribeAsync('soakret/+', { qos: 1 });
    const start = Date.now();
    while (got.size < want.size && Date.now() - start < 15_000) await sleep(100);
    await sleep(500);
    c.end(true);
    let wrong = 0;
    for (const [k, v] of want) if (got.get(k) !== v) wrong++;
    for (const k of got.keys()) if (!want.has(k)) wrong++;
    return { ok: wrong === 0, line: `${want.size} keys set, ${got.size} received, ${wrong} differ` };
  }
}
