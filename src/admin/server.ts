/**
 * The admin listener: Prometheus `/metrics`, `/healthz`, `/readyz`, the JSON API under
 * `/api/v1/`, and the dashboard's static files (served from the package's `dashboard/`
 * directory; nothing from the internet). Safe by default: loopback only, no default password,
 * Host header checked (DNS rebinding), Origin checked and JSON required on changes (CSRF), strict
 * CSP, HttpOnly SameSite=Strict session cookie. It runs on the broker's event loop: every list
 * is paged and every handler short.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync, readdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { isLoopbackHost } from '../security/index.js';
import { AdminAuth, type Principal } from './auth.js';
import { handleApi, HttpError, type ApiContext } from './api.js';
import type { AdminBackend, AdminOptions } from './types.js';

import { DEFAULT_ADMIN_PORT } from './defaults.js';

export { DEFAULT_ADMIN_PORT };
const COOKIE = 'courier_admin';

const CSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** The dashboard's files, read once (from src/admin or dist/admin: both are two levels below the package root). */
function loadDashboard(): Map<string, { type: string; body: Buffer }> {
  const dir = fileURLToPath(new URL('../../dashboard/', import.meta.url));
  const files = new Map<string, { type: string; body: Buffer }>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type !== undefined) files.set(`/${name}`, { type, body: readFileSync(join(dir, name)) });
  }
  return files;
}

export class AdminServer {
  readonly #backend: AdminBackend;
  readonly #options: AdminOptions;
  readonly #server: Server;
  readonly auth: AdminAuth;
  readonly #files: Map<string, { type: string; body: Buffer }>;
  readonly #loopback: boolean;
  readonly #publicMetrics: boolean;
  readonly #secure: boolean;
  #allowedHosts = new Set<string>();
  #origins = new Set<string>();
  #address: AddressInfo | undefined = undefined;
  readonly #streams = new Set<ServerResponse>();

  constructor(backend: AdminBackend, options: AdminOptions) {
    this.#backend = backend;
    this.#options = options;
    const host = options.host ?? '127.0.0.1';
    this.#loopback = isLoopbackHost(host);
    this.#secure = options.tls !== undefined;
    if (!this.#loopback && !this.#secure && options.allowInsecure !== true) {
      throw new Error(
        `admin: refusing plain HTTP on ${host}, which other machines can reach: set admin.tls (cert and key), or admin.allowInsecure: true behind a TLS proxy`,
      );
    }
    this.#publicMetrics = options.publicMetrics ?? this.#loopback;
    this.auth = new AdminAuth(options.usersFile);
    this.#files = loadDashboard();
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.#handle(req, res).catch((err: unknown) => {
        if (err instanceof HttpError && !res.headersSent) {
          this.#json(res, err.status, { code: err.code, message: err.message });
          return;
        }
        backend.log.error({ err }, 'admin: request failed');
        if (!res.headersSent) this.#json(res, 500, { code: 'internal', message: 'internal error' });
        else res.destroy();
      });
    };
    this.#server =
      options.tls !== undefined
        ? createHttpsServer({ cert: readFileSync(options.tls.cert), key: readFileSync(options.tls.key) }, handler)
        : createHttpServer(handler);
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 30_000;
  }

  async listen(): Promise<AddressInfo> {
    await this.auth.init();
    const host = this.#options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port ?? DEFAULT_ADMIN_PORT, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const a = this.#server.address() as AddressInfo;
    this.#address = a;
    const port = a.port;
    const names = this.#options.allowedHosts ?? [host, 'localhost', '127.0.0.1', '[::1]', ...(this.#loopback ? [] : [hostname()])];
    for (const n of names) {
      const h = n.includes(':') && !n.startsWith('[') ? `[${n}]` : n;
      const withPort = /:\d+$/.test(h) && !h.endsWith(']') ? h : `${h}:${port}`;
      this.#allowedHosts.add(withPort.toLowerCase());
      this.#origins.add(`${this.#secure ? 'https' : 'http'}://${withPort.toLowerCase()}`);
    }
    return a;
  }

  /** The dashboard URL. */
  get url(): string {
    const a = this.#address;
    if (a === undefined) return '';
    const host = this.#options.host ?? '127.0.0.1';
    const shown = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
    return `${this.#secure ? 'https' : 'http'}://${shown}:${a.port}/`;
  }

  get address(): AddressInfo | undefined {
    return this.#address;
  }

  async close(): Promise<void> {
    for (const r of this.#streams) r.end();
    this.#streams.clear();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #headers(res: ServerResponse): void {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
  }

  #json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...extra });
    res.end(text);
  }

  async #principal(req: IncomingMessage): Promise<{ principal: Principal | undefined; viaCookie: boolean; sessionId: string | undefined }> {
    const sessionId = cookie(req.headers.cookie, COOKIE);
    const fromCookie = this.auth.session(sessionId);
    if (fromCookie !== undefined) return { principal: fromCookie, viaCookie: true, sessionId };
    const h = req.headers.authorization;
    if (h !== undefined) {
      const ip = req.socket.remoteAddress ?? '';
      if (this.auth.limited(ip)) throw new HttpError(429, 'too_many_attempts', 'too many failed logins from this address; wait a minute');
      const principal = await this.auth.basic(h);
      if (principal === undefined) this.auth.failed(ip);
      return { principal, viaCookie: false, sessionId: undefined };
    }
    return { principal: undefined, viaCookie: false, sessionId: undefined };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#headers(res);
    // DNS rebinding: a page on another name that resolves here must not read the API.
    const host = (req.headers.host ?? '').toLowerCase();
    if (!this.#allowedHosts.has(host)) {
      this.#json(res, 403, { code: 'bad_host', message: `Host "${req.headers.host ?? ''}" is not allowed (admin.allowedHosts)` });
      return;
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const origin = req.headers.origin;
    // Cross-site requests: an Origin, when sent, must be this listener's own (also on GET: SSE, fetch).
    if (origin !== undefined && !this.#origins.has(origin.toLowerCase())) {
      this.#json(res, 403, { code: 'bad_origin', message: 'cross-origin requests are refused' });
      return;
    }
    if (path === '/healthz' || path === '/readyz' || path === '/metrics') {
      if (method !== 'GET' && method !== 'HEAD') {
        this.#json(res, 405, { code: 'method_not_allowed', message: `${method} not allowed` }, { allow: 'GET' });
        return;
      }
      if (!this.#publicMetrics) {
        const { principal } = await this.#principal(req);
        if (principal === undefined) {
          this.#json(res, 401, { code: 'unauthorized', message: 'credentials required' }, { 'www-authenticate': 'Basic realm="courier", charset="UTF-8"' });
          return;
        }
      }
      if (path === '/metrics') {
        const text = await this.#backend.metrics.render();
        res.writeHead(200, { 'content-type': this.#backend.metrics.contentType, 'cache-control': 'no-store' });
        res.end(text);
        return;
      }
      const ok = path === '/healthz' || this.#backend.ready();
      this.#json(res, ok ? 200 : 503, { status: ok ? 'ok' : 'not ready' });
      return;
    }
    if (path.startsWith('/api/')) {
      await this.#api(req, res, url, method);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      this.#json(res, 405, { code: 'method_not_allowed', message: `${method} not allowed` });
      return;
    }
    const file = this.#files.get(path === '/' ? '/index.html' : path);
    if (file === undefined) {
      this.#json(res, 404, { code: 'not_found', message: `no such page: ${path}` });
      return;
    }
    res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' });
    res.end(method === 'HEAD' ? undefined : file.body);
  }

  async #api(req: IncomingMessage, res: ServerResponse, url: URL, method: string): Promise<void> {
    const mutating = method !== 'GET' && method !== 'HEAD';
    const { principal, viaCookie, sessionId } = await this.#principal(req);
    // A cookie is sent by the browser on its own: changes made with it need our Origin.
    if (mutating && viaCookie && req.headers.origin === undefined) {
      this.#json(res, 403, { code: 'bad_origin', message: 'changes need an Origin header' });
      return;
    }
    let body: unknown = undefined;
    if (mutating && method !== 'DELETE') {
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'application/json') {
        this.#json(res, 415, { code: 'unsupported_media_type', message: 'send Content-Type: application/json' });
        return;
      }
      try {
        body = await readJson(req, 64 * 1024);
      } catch (err) {
        if (err instanceof HttpError) {
          this.#json(res, err.status, { code: err.code, message: err.message }, err.status === 413 ? { connection: 'close' } : {});
          if (err.status === 413) req.destroy();
          return;
        }
        throw err;
      }
    }
    const ctx: ApiContext = {
      backend: this.#backend,
      auth: this.auth,
      principal,
      sessionId,
      method,
      path: url.pathname,
      query: url.searchParams,
      body,
      secure: this.#secure,
      ip: req.socket.remoteAddress ?? '',
      setCookie: (value, maxAge) => {
        res.setHeader(
          'set-cookie',
          `${COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict${this.#secure ? '; Secure' : ''}${maxAge !== undefined ? `; Max-Age=${maxAge}` : ''}`,
        );
      },
      stream: (fn) => this.#stream(req, res, fn),
    };
    try {
      const out = await handleApi(ctx);
      if (out === undefined) return; // streaming
      this.#json(res, out.status, out.body);
    } catch (err) {
      if (err instanceof HttpError) {
        this.#json(res, err.status, { code: err.code, message: err.message });
        return;
      }
      throw err;
    }
  }

  /** Server-sent events: `fn` gets a send function and returns the cleanup. */
  #stream(req: IncomingMessage, res: ServerResponse, fn: (send: (event: string, data: unknown) => void) => () => void): void {
    if (this.#streams.size >= 20) throw new HttpError(503, 'too_many_streams', 'too many live viewers (20)');
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    this.#streams.add(res);
    const stop = fn((event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
    const end = (): void => {
      stop();
      this.#streams.delete(res);
    };
    req.on('close', end);
  }
}

function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > max) throw new HttpError(413, 'too_large', `body over ${max} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new HttpError(413, 'too_large', `body over ${max} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HttpError(400, 'bad_json', 'the body is not valid JSON');
  }
}
