/**
 * Who is asking the admin listener: a session cookie (from POST /api/v1/login), HTTP Basic
 * credentials of the admin users file (for scripts and Prometheus), or nobody. With no admin
 * user configured, a random one-time token is made at start (and logged, as Jupyter does): it
 * logs in once, as admin. Sessions live in memory, 60 minutes sliding.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { verifyPassword } from '../security/passwords.js';
import { loadAdminUsers, type Role } from './users.js';

export interface Principal {
  user: string;
  role: Role;
}

const SESSION_MS = 60 * 60 * 1000;
const BASIC_CACHE_MS = 5 * 60 * 1000;
/** A hash checked when the user is unknown, so that unknown users take as long as known ones. */
let dummyHash: Promise<string> | undefined;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

export class AdminAuth {
  readonly #usersFile: string | undefined;
  readonly #sessions = new Map<string, Principal & { expires: number }>();
  /** Verified Basic credentials (hash of user:password → principal), so a scrape costs no scrypt. */
  readonly #basic = new Map<string, Principal & { expires: number }>();
  #token: Buffer | undefined = undefined;
  /** Failed logins per client address in the current minute (brute-force brake). */
  readonly #failures = new Map<string, { window: number; count: number }>();
  /** The one-time token in clear, until it is used (only for the start-up log line). */
  token: string | undefined = undefined;

  constructor(usersFile: string | undefined) {
    this.#usersFile = usersFile;
  }

  /** Makes the one-time token when no admin user exists. */
  async init(): Promise<void> {
    const users = this.#usersFile === undefined ? new Map() : await loadAdminUsers(this.#usersFile);
    if (users.size === 0) {
      this.token = randomBytes(24).toString('base64url');
      this.#token = sha256(this.token);
    }
  }

  /** Uses the one-time token: true once. */
  useToken(token: string): boolean {
    const want = this.#token;
    if (want === undefined) return false;
    if (!timingSafeEqual(sha256(token), want)) return false;
    this.#token = undefined;
    this.token = undefined;
    return true;
  }

  get tokenPending(): boolean {
    return this.#token !== undefined;
  }

  async checkPassword(user: string, password: string): Promise<Principal | undefined> {
    const users = this.#usersFile === undefined ? new Map() : await loadAdminUsers(this.#usersFile);
    const u = users.get(user);
    dummyHash ??= import('../security/passwords.js').then((m) => m.hashPassword(randomBytes(16)));
    const ok = await verifyPassword(u?.hash ?? (await dummyHash), password);
    return ok && u !== undefined ? { user, role: u.role } : undefined;
  }

  createSession(p: Principal): string {
    const id = randomBytes(32).toString('base64url');
    this.#sessions.set(id, { ...p, expires: Date.now() + SESSION_MS });
    if (this.#sessions.size > 10_000) this.#prune();
    return id;
  }

  session(id: string | undefined): Principal | undefined {
    if (id === undefined) return undefined;
    const s = this.#sessions.get(id);
    if (s === undefined) return undefined;
    const now = Date.now();
    if (s.expires < now) {
      this.#sessions.delete(id);
      return undefined;
    }
    s.expires = now + SESSION_MS;
    return { user: s.user, role: s.role };
  }

  endSession(id: string | undefined): void {
    if (id !== undefined) this.#sessions.delete(id);
  }

  /** `Authorization: Basic ...` → principal (cached for 5 minutes once verified). */
  async basic(header: string): Promise<Principal | undefined> {
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header.trim());
    if (m === null) return undefined;
    const text = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon <= 0) return undefined;
    const key = sha256(text).toString('base64');
    const now = Date.now();
    const hit = this.#basic.get(key);
    if (hit !== undefined && hit.expires > now) return { user: hit.user, role: hit.role };
    const p = await this.checkPassword(text.slice(0, colon), text.slice(colon + 1));
    if (p === undefined) return undefined;
    if (this.#basic.size > 1000) this.#basic.clear();
    this.#basic.set(key, { ...p, expires: now + BASIC_CACHE_MS });
    return p;
  }

  /** True when `ip` failed to log in too often in the last minute (10 failures). */
  limited(ip: string): boolean {
    const f = this.#failures.get(ip);
    return f !== undefined && Date.now() - f.window < 60_000 && f.count >= 10;
  }

  failed(ip: string): void {
    const now = Date.now();
    let f = this.#failures.get(ip);
    if (f === undefined || now - f.window >= 60_000) {
      if (this.#failures.size > 10_000) this.#failures.clear();
      f = { window: now, count: 0 };
      this.#failures.set(ip, f);
    }
    f.count++;
  }

  #prune(): void {
    const now = Date.now();
    for (const [id, s] of this.#sessions) if (s.expires < now) this.#sessions.delete(id);
  }
}
