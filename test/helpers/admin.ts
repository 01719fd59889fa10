/**
 * A Courier broker with its admin listener on a free port (127.0.0.1), for the observability
 * tests, and a small HTTP client that can set any header (Host included, which fetch cannot).
 */
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { setAdminUser, type Role } from '../../src/admin/users.js';
import type { BrokerOptions } from '../../src/index.js';
import { startBroker, type TestBroker } from './broker.js';
import { removeTempDir, tempDir } from './processes.js';

export interface AdminBroker extends TestBroker {
  adminPort: number;
  /** http://127.0.0.1:<adminPort> */
  origin: string;
  /** The one-time token (undefined once used, or when users exist). */
  token: string | undefined;
  usersFile: string | undefined;
}

export interface AdminBrokerOptions extends Partial<BrokerOptions> {
  /** Admin users to create first: [user, role, password]. */
  users?: Array<[string, Role, string]>;
}

export async function startAdminBroker(options: AdminBrokerOptions = {}): Promise<AdminBroker> {
  const { users, ...rest } = options;
  let usersFile: string | undefined;
  let dir: string | undefined;
  if (users !== undefined) {
    dir = tempDir('courier-admin');
    usersFile = join(dir, 'admin-users');
    for (const [u, role, pw] of users) await setAdminUser(usersFile, u, role, pw);
  }
  const b = await startBroker({
    sys: { interval: 1 },
    ...rest,
    admin: { host: '127.0.0.1', port: 0, ...(usersFile === undefined ? {} : { usersFile }), ...(rest.admin ?? {}) },
  });
  const admin = b.broker.admin!;
  return {
    ...b,
    adminPort: admin.port,
    origin: `http://127.0.0.1:${admin.port}`,
    token: admin.token,
    usersFile,
    close: async () => {
      await b.close();
      if (dir !== undefined) removeTempDir(dir);
    },
  };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = unknown>(): T;
}

/** One HTTP request to 127.0.0.1:port; `Host` defaults to 127.0.0.1:port. */
export function http(
  port: number,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { host: `127.0.0.1:${port}`, ...options.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Headers of a JSON change from the dashboard's own origin. */
export function jsonFrom(origin: string, extra: Record<string, string> = {}): Record<string, string> {
  return { 'content-type': 'application/json', origin, ...extra };
}

export function basic(user: string, password: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

/** Logs in with the one-time token; returns the session cookie header. */
export async function loginWithToken(b: AdminBroker): Promise<Record<string, string>> {
  const r = await http(b.adminPort, 'POST', '/api/v1/login', { headers: jsonFrom(b.origin), body: JSON.stringify({ token: b.token }) });
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${r.text}`);
  const set = r.headers['set-cookie'];
  const cookie = (Array.isArray(set) ? set[0] : set)!.split(';')[0]!;
  return { cookie };
}
