/**
 * Read (and a few write) operations over the broker's state for operators: clients and their
 * sessions, subscriptions, topics, retained messages, kicking a client. Everything here runs on
 * the broker's event loop when an operator asks (admin API), never on the message path; every
 * list is filtered and paged (at most MAX_LIMIT rows).
 */
import { ReasonCode, type QoS } from '../protocol/constants.js';
import type { BrokerCore } from '../core/broker-core.js';
import type { Connection } from '../core/connection.js';
import { createMessage, type Message } from '../core/message.js';
import type { Session } from '../core/session.js';
import { checkTopicFilter, checkTopicName } from '../topics/index.js';

export const MAX_LIMIT = 1000;
export const DEFAULT_LIMIT = 100;

export interface Page<T> {
  items: T[];
  /** Matching rows in all (before paging). */
  total: number;
  /** Pass as `cursor` for the next page; absent on the last page. */
  next?: string;
}

export interface ClientQuery {
  /** Client id contains (case-sensitive). */
  search?: string;
  username?: string;
  ip?: string;
  state?: 'online' | 'offline';
  cursor?: string;
  limit?: number;
}

export interface ClientSummary {
  clientId: string;
  state: 'online' | 'offline';
  username: string | null;
  ip: string | null;
  port: number | null;
  listener: string | null;
  transport: string | null;
  protocolVersion: number | null;
  keepAlive: number | null;
  connectedAt: string | null;
  disconnectedAt: string | null;
  subscriptions: number;
  queued: number;
  inflight: number;
}

export interface ClientDetail extends ClientSummary {
  sessionExpiryInterval: number;
  queuedBytes: number;
  outboundBufferBytes: number;
  will: { topic: string; qos: QoS; retain: boolean; delaySeconds: number } | null;
  subscriptionList: SubscriptionRow[];
}

export interface SubscriptionRow {
  clientId: string;
  filter: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: number;
  subscriptionId: number | null;
  /** Shared group name when the filter is `$share/{group}/...`. */
  share: string | null;
}

export interface TopicRow {
  filter: string;
  subscribers: number;
}

export interface RetainedRow {
  topic: string;
  qos: QoS;
  bytes: number;
  /** Message expiry (ISO), or null. */
  expiresAt: string | null;
  /** First 256 bytes as UTF-8 when they decode, else null. */
  preview: string | null;
}

export interface RetainedMessage extends RetainedRow {
  payload: string;
  encoding: 'utf8' | 'base64';
  contentType: string | null;
}

/** What the inspector needs of the broker around the core. */
export interface InspectorSource {
  readonly core: BrokerCore;
  /** The connection holding a client id, if connected. */
  connection(clientId: string): Connection | undefined;
  connectedAt(clientId: string): number | undefined;
}

export class InputError extends Error {}

function limitOf(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new InputError(`limit must be an integer between 1 and ${MAX_LIMIT}`);
  return limit;
}

/** Pages rows sorted by key: the cursor is the last key seen, so pages stay stable while rows come and go. */
function page<T>(rows: T[], key: (t: T) => string, cursor: string | undefined, limit: number | undefined): Page<T> {
  const n = limitOf(limit);
  rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  let start = 0;
  if (cursor !== undefined && cursor !== '') {
    start = rows.findIndex((r) => key(r) > cursor);
    if (start < 0) start = rows.length;
  }
  const items = rows.slice(start, start + n);
  const out: Page<T> = { items, total: rows.length };
  if (start + n < rows.length && items.length > 0) out.next = key(items[items.length - 1]!);
  return out;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

function preview(payload: Buffer): string | null {
  const head = payload.subarray(0, 256);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(head);
  return text.includes('\uFFFD') ? null : text;
}

export class Inspector {
  readonly #src: InspectorSource;

  constructor(source: InspectorSource) {
    this.#src = source;
  }

  #summary(s: Session): ClientSummary {
    const c = this.#src.connection(s.clientId);
    const info = c?.client;
    return {
      clientId: s.clientId,
      state: s.outlet !== undefined ? 'online' : 'offline',
      username: c?.username ?? s.owner ?? null,
      ip: info?.remoteAddress ?? null,
      port: info?.remotePort ?? null,
      listener: c?.info.listener ?? null,
      transport: info?.transport ?? null,
      protocolVersion: info?.protocolVersion ?? null,
      keepAlive: c === undefined ? null : c.keepAliveMs / 1000,
      connectedAt: iso(this.#src.connectedAt(s.clientId)),
      disconnectedAt: s.outlet === undefined ? iso(s.disconnectedAt) : null,
      subscriptions: s.subscriptions.size,
      queued: s.queued,
      inflight: s.inflight.size,
    };
  }

  clients(q: ClientQuery): Page<ClientSummary> {
    const rows: ClientSummary[] = [];
    for (const s of this.#src.core.sessions.values()) {
      if (q.search !== undefined && q.search !== '' && !s.clientId.includes(q.search)) continue;
      if (q.state !== undefined && (s.outlet !== undefined ? 'online' : 'offline') !== q.state) continue;
      const row = this.#summary(s);
      if (q.username !== undefined && q.username !== '' && row.username !== q.username) continue;
      if (q.ip !== undefined && q.ip !== '' && row.ip !== q.ip) continue;
      rows.push(row);
    }
    return page(rows, (r) => r.clientId, q.cursor, q.limit);
  }

  client(clientId: string): ClientDetail | undefined {
    const s = this.#src.core.sessions.get(clientId);
    if (s === undefined) return undefined;
    const c = this.#src.connection(clientId);
    const will = s.will ?? s.pendingWill;
    return {
      ...this.#summary(s),
      sessionExpiryInterval: s.expiryInterval,
      queuedBytes: s.queuedBytes,
      outboundBufferBytes: c?.outputBytes() ?? 0,
      will: will === undefined ? null : { topic: will.message.topic, qos: will.message.qos, retain: will.message.retain, delaySeconds: will.delaySeconds },
      subscriptionList: [...s.subscriptions.values()].map((sub) => subscriptionRow(s.clientId, sub)),
    };
  }

  /**
   * Disconnects a client (5.0: DISCONNECT 0x98 Administrative action) and, with `discard`, ends
   * its session (subscriptions and queue go; a pending will is published). False when unknown.
   */
  kick(clientId: string, discard: boolean): { disconnected: boolean; discarded: boolean } | undefined {
    const core = this.#src.core;
    const c = this.#src.connection(clientId);
    if (c === undefined && !core.sessions.has(clientId)) return undefined;
    if (c !== undefined) c.disconnect(ReasonCode.AdministrativeAction, 'administrative action: disconnected by an operator');
    let discarded = false;
    if (discard) {
      const s = core.sessions.get(clientId);
      if (s !== undefined && s.outlet === undefined) {
        core.endSession(s);
        discarded = true;
      }
    }
    return { disconnected: c !== undefined, discarded };
  }

  subscriptions(q: { filter?: string; clientId?: string; cursor?: string; limit?: number }): Page<SubscriptionRow> {
    const rows: SubscriptionRow[] = [];
    const sessions = this.#src.core.sessions;
    const only = q.clientId !== undefined && q.clientId !== '' ? sessions.get(q.clientId) : undefined;
    if (q.clientId !== undefined && q.clientId !== '' && only === undefined) return { items: [], total: 0 };
    for (const s of only !== undefined ? [only] : sessions.values()) {
      for (const sub of s.subscriptions.values()) {
        if (q.filter !== undefined && q.filter !== '' && !sub.filter.includes(q.filter)) continue;
        rows.push(subscriptionRow(s.clientId, sub));
      }
    }
    return page(rows, (r) => `${r.filter}\u0000${r.clientId}`, q.cursor, q.limit);
  }

  topics(q: { search?: string; cursor?: string; limit?: number }): Page<TopicRow> {
    const counts = new Map<string, number>();
    for (const s of this.#src.core.sessions.values()) {
      for (const f of s.subscriptions.keys()) {
        if (q.search !== undefined && q.search !== '' && !f.includes(q.search)) continue;
        counts.set(f, (counts.get(f) ?? 0) + 1);
      }
    }
    const rows = [...counts].map(([filter, subscribers]) => ({ filter, subscribers }));
    return page(rows, (r) => r.filter, q.cursor, q.limit);
  }

  retained(q: { match?: string; cursor?: string; limit?: number }): Page<RetainedRow> {
    const filter = q.match === undefined || q.match === '' ? '#' : q.match;
    if (checkTopicFilter(filter) !== null) throw new InputError(`"${filter}" is not a valid topic filter`);
    const rows: RetainedRow[] = [];
    for (const m of this.#src.core.retainedMatching(filter, Date.now())) rows.push(retainedRow(m));
    return page(rows, (r) => r.topic, q.cursor, q.limit);
  }

  retainedMessage(topic: string): RetainedMessage | undefined {
    if (checkTopicName(topic) !== null) throw new InputError(`"${topic}" is not a valid topic name`);
    const m = this.#src.core.retained.get(topic);
    if (m === undefined) return undefined;
    const text = preview(m.payload) !== null && new TextDecoder('utf-8', { fatal: false }).decode(m.payload).includes('\uFFFD') === false;
    return {
      ...retainedRow(m),
      payload: text ? m.payload.toString('utf8') : m.payload.toString('base64'),
      encoding: text ? 'utf8' : 'base64',
      contentType: m.properties?.contentType ?? null,
    };
  }

  /** Clears a retained message (through the store and the cluster, as an empty retained PUBLISH would). */
  deleteRetained(topic: string): boolean {
    if (checkTopicName(topic) !== null) throw new InputError(`"${topic}" is not a valid topic name`);
    const core = this.#src.core;
    if (core.retained.get(topic) === undefined) return false;
    core.setRetained(createMessage(topic, Buffer.alloc(0), 0, true, undefined, '', Date.now()));
    return true;
  }
}

function subscriptionRow(clientId: string, sub: Session['subscriptions'] extends ReadonlyMap<string, infer S> ? S : never): SubscriptionRow {
  const share = sub.filter.startsWith('$share/') ? (sub.filter.split('/')[1] ?? null) : null;
  return {
    clientId,
    filter: sub.filter,
    qos: sub.qos,
    noLocal: sub.noLocal,
    retainAsPublished: sub.retainAsPublished,
    retainHandling: sub.retainHandling,
    subscriptionId: sub.subscriptionId ?? null,
    share,
  };
}

function retainedRow(m: Message): RetainedRow {
  return { topic: m.topic, qos: m.qos, bytes: m.payload.length, expiresAt: m.expiresAt > 0 ? iso(m.expiresAt) : null, preview: preview(m.payload) };
}
