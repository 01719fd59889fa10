/**
 * The JSON API under `/api/v1/`: one table of routes, each with the role it needs (`viewer`
 * reads, `admin` changes). Errors are `{code, message}` with a 4xx status; nothing changes on a
 * refused request.
 */
import { InputError } from '../observability/inspector.js';
import { SERIES } from '../observability/sampler.js';
import type { AdminAuth, Principal } from './auth.js';
import type { AdminBackend } from './types.js';
import { channels } from '../observability/channels.js';

/** Logs an operator's change (and tells `courier:admin:action` subscribers). */
function audit(ctx: ApiContext, action: string, target: Record<string, unknown>, msg: string): void {
  ctx.backend.log.info({ event: 'admin.action', user: ctx.principal?.user, action, ...target }, msg);
  if (channels.adminAction.hasSubscribers) channels.adminAction.publish({ user: ctx.principal?.user, action, target });
}

export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export interface ApiContext {
  backend: AdminBackend;
  auth: AdminAuth;
  principal: Principal | undefined;
  sessionId: string | undefined;
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  secure: boolean;
  /** The client's address (failed logins are counted per address). */
  ip: string;
  setCookie(value: string, maxAge?: number): void;
  stream(fn: (send: (event: string, data: unknown) => void) => () => void): void;
}

type Need = 'none' | 'viewer' | 'admin';
type Result = { status: number; body: unknown } | undefined;
type Handler = (ctx: ApiContext, params: string[]) => Result | Promise<Result>;

interface Route {
  method: string;
  pattern: RegExp;
  need: Need;
  handler: Handler;
}

const ok = (body: unknown, status = 200): Result => ({ status, body });

function str(q: URLSearchParams, name: string): string | undefined {
  const v = q.get(name);
  return v === null ? undefined : v;
}

function int(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new HttpError(400, 'bad_request', `${name} must be an integer`);
  return n;
}

function obj(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'bad_request', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, 'bad_request', 'malformed percent-encoding in the path');
  }
}

const ROUTES: Route[] = [
  {
    method: 'POST',
    pattern: /^\/api\/v1\/login$/,
    need: 'none',
    handler: async (ctx) => {
      const b = obj(ctx.body);
      if (ctx.auth.limited(ctx.ip)) throw new HttpError(429, 'too_many_attempts', 'too many failed logins from this address; wait a minute');
      let principal: Principal | undefined;
      if (typeof b.token === 'string') {
        if (ctx.auth.useToken(b.token)) principal = { user: 'token', role: 'admin' };
      } else if (typeof b.user === 'string' && typeof b.password === 'string') {
        principal = await ctx.auth.checkPassword(b.user, b.password);
      } else {
        throw new HttpError(400, 'bad_request', 'send {"user", "password"} or {"token"}');
      }
      if (principal === undefined) {
        ctx.auth.failed(ctx.ip);
        throw new HttpError(401, 'unauthorized', 'wrong credentials (or the one-time token was used already)');
      }
      ctx.setCookie(ctx.auth.createSession(principal));
      ctx.backend.log.info({ event: 'admin.login', user: principal.user, role: principal.role }, 'admin: login');
      return ok(principal);
    },
  },
  {
    method: 'POST',
    pattern: /^\/api\/v1\/logout$/,
    need: 'none',
    handler: (ctx) => {
      ctx.auth.endSession(ctx.sessionId);
      ctx.setCookie('', 0);
      return ok({ ok: true });
    },
  },
  // Open, so that the dashboard can ask whether it is logged in without a failed request (null = no).
  { method: 'GET', pattern: /^\/api\/v1\/whoami$/, need: 'none', handler: (ctx) => ok(ctx.principal ?? null) },
  { method: 'GET', pattern: /^\/api\/v1\/broker$/, need: 'viewer', handler: (ctx) => ok(ctx.backend.info()) },
  { method: 'GET', pattern: /^\/api\/v1\/stats$/, need: 'viewer', handler: (ctx) => ok(ctx.backend.snapshot()) },
  { method: 'GET', pattern: /^\/api\/v1\/sys$/, need: 'viewer', handler: (ctx) => ok(Object.fromEntries(ctx.backend.sys())) },
  { method: 'GET', pattern: /^\/api\/v1\/bridges$/, need: 'viewer', handler: (ctx) => ok(ctx.backend.snapshot().bridges ?? []) },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/metrics\/history$/,
    need: 'viewer',
    handler: (ctx) => ok({ series: SERIES, samples: ctx.backend.sampler.samples() }),
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/stream$/,
    need: 'viewer',
    handler: (ctx) => {
      const sampler = ctx.backend.sampler;
      ctx.stream((send) => {
        const offSample = sampler.onSample((s) => send('sample', s));
        const offAlarm = sampler.onAlarm((a) => send('alarm', a));
        return () => {
          offSample();
          offAlarm();
        };
      });
      return undefined;
    },
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/clients$/,
    need: 'viewer',
    handler: (ctx) => {
      const q = ctx.query;
      const state = str(q, 'state');
      if (state !== undefined && state !== '' && state !== 'online' && state !== 'offline')
        throw new HttpError(400, 'bad_request', 'state must be online or offline');
      return ok(
        ctx.backend.inspector.clients({
          search: str(q, 'search'),
          username: str(q, 'username'),
          ip: str(q, 'ip'),
          state: state === '' ? undefined : (state as 'online' | 'offline' | undefined),
          cursor: str(q, 'cursor'),
          limit: int(q, 'limit'),
        }),
      );
    },
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/clients\/([^/]+)$/,
    need: 'viewer',
    handler: (ctx, [id]) => {
      const c = ctx.backend.inspector.client(decodeSegment(id!));
      if (c === undefined) throw new HttpError(404, 'not_found', 'no such client');
      return ok(c);
    },
  },
  {
    method: 'DELETE',
    pattern: /^\/api\/v1\/clients\/([^/]+)$/,
    need: 'admin',
    handler: (ctx, [id]) => {
      const clientId = decodeSegment(id!);
      const session = str(ctx.query, 'session');
      if (session !== undefined && session !== 'discard' && session !== 'keep') throw new HttpError(400, 'bad_request', 'session must be discard or keep');
      const r = ctx.backend.inspector.kick(clientId, session === 'discard');
      if (r === undefined) throw new HttpError(404, 'not_found', 'no such client');
      audit(ctx, 'kick', { clientId, ...r }, 'admin: client kicked');
      return ok(r);
    },
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/subscriptions$/,
    need: 'viewer',
    handler: (ctx) =>
      ok(
        ctx.backend.inspector.subscriptions({
          filter: str(ctx.query, 'filter'),
          clientId: str(ctx.query, 'clientId'),
          cursor: str(ctx.query, 'cursor'),
          limit: int(ctx.query, 'limit'),
        }),
      ),
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/topics$/,
    need: 'viewer',
    handler: (ctx) => ok(ctx.backend.inspector.topics({ search: str(ctx.query, 'search'), cursor: str(ctx.query, 'cursor'), limit: int(ctx.query, 'limit') })),
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/retained$/,
    need: 'viewer',
    handler: (ctx) => ok(ctx.backend.inspector.retained({ match: str(ctx.query, 'match'), cursor: str(ctx.query, 'cursor'), limit: int(ctx.query, 'limit') })),
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/retained\/(.+)$/,
    need: 'viewer',
    handler: (ctx, [t]) => {
      const m = ctx.backend.inspector.retainedMessage(decodeSegment(t!));
      if (m === undefined) throw new HttpError(404, 'not_found', 'no retained message on this topic');
      return ok(m);
    },
  },
  {
    method: 'DELETE',
    pattern: /^\/api\/v1\/retained\/(.+)$/,
    need: 'admin',
    handler: (ctx, [t]) => {
      const topic = decodeSegment(t!);
      if (!ctx.backend.inspector.deleteRetained(topic)) throw new HttpError(404, 'not_found', 'no retained message on this topic');
      audit(ctx, 'retained.delete', { topic }, 'admin: retained message deleted');
      return ok({ deleted: topic });
    },
  },
  {
    method: 'POST',
    pattern: /^\/api\/v1\/publish$/,
    need: 'admin',
    handler: (ctx) => {
      const b = obj(ctx.body);
      const topic = b.topic;
      if (typeof topic !== 'string' || topic === '' || topic.includes('+') || topic.includes('#') || topic.startsWith('$SYS'))
        throw new HttpError(400, 'bad_request', 'topic must be a topic name (no wildcards, not $SYS)');
      const encoding = b.encoding ?? 'utf8';
      if (encoding !== 'utf8' && encoding !== 'base64') throw new HttpError(400, 'bad_request', 'encoding must be utf8 or base64');
      if (typeof b.payload !== 'string' && b.payload !== undefined) throw new HttpError(400, 'bad_request', 'payload must be a string');
      const qos = b.qos ?? 0;
      if (qos !== 0 && qos !== 1 && qos !== 2) throw new HttpError(400, 'bad_request', 'qos must be 0, 1 or 2');
      if (b.retain !== undefined && typeof b.retain !== 'boolean') throw new HttpError(400, 'bad_request', 'retain must be true or false');
      const payload = Buffer.from((b.payload as string | undefined) ?? '', encoding);
      ctx.backend.publish({ topic, payload, qos, retain: b.retain === true });
      audit(ctx, 'publish', { topic, bytes: payload.length }, 'admin: message published');
      return ok({ published: topic, bytes: payload.length });
    },
  },
  {
    method: 'GET',
    pattern: /^\/api\/v1\/alarms$/,
    need: 'viewer',
    handler: (ctx) => ok({ active: [...ctx.backend.sampler.active.values()], history: ctx.backend.sampler.history }),
  },
  {
    method: 'DELETE',
    pattern: /^\/api\/v1\/alarms$/,
    need: 'admin',
    handler: (ctx) => {
      ctx.backend.sampler.clearHistory();
      audit(ctx, 'alarms.clear', {}, 'admin: alarm history cleared');
      return ok({ cleared: true });
    },
  },
];

/** Every route (method and path pattern) with its role, for the docs and the permission test. */
export function routeTable(): Array<{ method: string; path: string; need: Need }> {
  return ROUTES.map((r) => ({ method: r.method, path: r.pattern.source, need: r.need }));
}

export async function handleApi(ctx: ApiContext): Promise<Result> {
  let pathMatched = false;
  for (const r of ROUTES) {
    const m = r.pattern.exec(ctx.path);
    if (m === null) continue;
    pathMatched = true;
    if (r.method !== ctx.method && !(r.method === 'GET' && ctx.method === 'HEAD')) continue;
    if (r.need !== 'none') {
      if (ctx.principal === undefined) throw new HttpError(401, 'unauthorized', 'log in first (POST /api/v1/login) or send Basic credentials');
      if (r.need === 'admin' && ctx.principal.role !== 'admin') throw new HttpError(403, 'forbidden', 'this needs the admin role');
    }
    try {
      return await r.handler(ctx, m.slice(1));
    } catch (err) {
      if (err instanceof InputError) throw new HttpError(400, 'bad_request', err.message);
      throw err;
    }
  }
  if (pathMatched) throw new HttpError(405, 'method_not_allowed', `${ctx.method} not allowed here`);
  throw new HttpError(404, 'not_found', `no such endpoint: ${ctx.path}`);
}
