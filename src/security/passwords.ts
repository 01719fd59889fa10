/**
 * Password file, in the spirit of Mosquitto's: one `user:hash` per line; blank lines and lines
 * whose first non-blank character is `#` are comments. The hash is
 *
 *     $scrypt$N=16384,r=8,p=1$<salt, base64>$<key, base64>
 *
 * made with scrypt (node:crypto) from a random 16-byte salt into a 32-byte key. The user name is
 * everything before the last `:` (hashes contain none), so a name can never contain `:` and a
 * line with an empty name or a `:` in the name is an error. Every error names the file and line.
 *
 * `courier passwd FILE USER` (src/cli/passwd.ts) edits the file through `setPassword` and
 * `deletePassword`, which keep comments and order and replace the file atomically (mode 0600).
 */
import { createHash, createHmac, pbkdf2, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { chmod, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Authenticator, AuthenticationResult } from './types.js';
import { FileReloader, type FileWatchOptions } from './file-watch.js';

const SCHEME = 'scrypt';
const DEFAULT_N = 16384;
const DEFAULT_R = 8;
const DEFAULT_P = 1;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** v5 CONNACK Bad User Name or Password. */
const BAD_CREDENTIALS = 0x86;

/** A file error with its location; the message reads `file:line: reason`. */
export class PasswordFileError extends Error {
  readonly file: string;
  readonly line: number;
  readonly reason: string;
  constructor(file: string, line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'PasswordFileError';
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

interface ScryptHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

const HASH_RE = /^\$scrypt\$N=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

function strictBase64(text: string): Buffer | undefined {
  const buf = Buffer.from(text, 'base64');
  return buf.toString('base64') === text ? buf : undefined;
}

/** SCRAM-SHA-256 credential (RFC 5802 / 7677) stored beside the scrypt hash, for enhanced authentication. */
export interface ScramCredential {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

const SCRAM_RE = /^\$scram-sha-256\$i=(\d{1,7})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;
const SCRAM_ITERATIONS = 4096;

function parseScram(text: string): ScramCredential | string {
  const m = SCRAM_RE.exec(text);
  if (!m) return 'malformed SCRAM credential (expected $scram-sha-256$i=<n>$<salt>$<stored key>$<server key>)';
  const iterations = Number(m[1]);
  if (iterations < 4096 || iterations > 1_000_000) return `SCRAM iteration count ${iterations} is outside 4096..1000000`;
  const salt = strictBase64(m[2]!);
  const storedKey = strictBase64(m[3]!);
  const serverKey = strictBase64(m[4]!);
  if (!salt || salt.length < 8) return 'SCRAM salt is not base64 of at least 8 bytes';
  if (storedKey?.length !== 32 || serverKey?.length !== 32) return 'SCRAM keys are not base64 of 32 bytes';
  return { iterations, salt, storedKey, serverKey };
}

/** Derives the SCRAM-SHA-256 credential of a password (PBKDF2 on the thread pool). */
export async function scramCredential(password: string | Buffer, salt = randomBytes(SALT_BYTES), iterations = SCRAM_ITERATIONS): Promise<ScramCredential> {
  const salted = await new Promise<Buffer>((resolve, reject) =>
    pbkdf2(password, salt, iterations, 32, 'sha256', (err, key) => (err ? reject(err) : resolve(key))),
  );
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return { iterations, salt, storedKey, serverKey };
}

function formatScram(c: ScramCredential): string {
  return `$scram-sha-256$i=${c.iterations}$${c.salt.toString('base64')}$${c.storedKey.toString('base64')}$${c.serverKey.toString('base64')}`;
}

/**
 * A line's credential field: the scrypt hash, optionally followed by one space and a SCRAM
 * credential (written by `courier passwd`, read by the SCRAM-SHA-256 method).
 */
function parseField(field: string): { scrypt: ScryptHash; scram: ScramCredential | undefined } | string {
  const space = field.indexOf(' ');
  const h = parseHash(space < 0 ? field : field.slice(0, space));
  if (typeof h === 'string') return h;
  if (space < 0) return { scrypt: h, scram: undefined };
  const scram = parseScram(field.slice(space + 1));
  return typeof scram === 'string' ? scram : { scrypt: h, scram };
}

/** The parsed hash, or a reason it is not one Courier reads. */
function parseHash(hash: string): ScryptHash | string {
  const m = HASH_RE.exec(hash);
  if (!m) {
    const scheme = /^\$([^$]*)\$/.exec(hash)?.[1];
    if (scheme !== undefined && scheme !== SCHEME) {
      return `unsupported password hash scheme "$${scheme}$" (Courier reads $scrypt$ hashes; set the password again with "courier passwd")`;
    }
    return 'malformed password hash (expected $scrypt$N=<n>,r=<r>,p=<p>$<salt base64>$<key base64>)';
  }
  const N = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  // Bounds keep a hostile or mistyped file from making one check take seconds or gigabytes.
  if (N < 2 || N > 1 << 20 || (N & (N - 1)) !== 0) return `scrypt N=${N} is not a power of two between 2 and 1048576`;
  if (r < 1 || r > 32) return `scrypt r=${r} is outside 1..32`;
  if (p < 1 || p > 16) return `scrypt p=${p} is outside 1..16`;
  const salt = strictBase64(m[4]!);
  const key = strictBase64(m[5]!);
  if (!salt || salt.length < 8) return 'scrypt salt is not base64 of at least 8 bytes';
  if (!key || key.length < 16 || key.length > 64) return 'scrypt key is not base64 of 16 to 64 bytes';
  return { N, r, p, salt, key };
}

function formatHash(h: ScryptHash): string {
  return `$${SCHEME}$N=${h.N},r=${h.r},p=${h.p}$${h.salt.toString('base64')}$${h.key.toString('base64')}`;
}

function derive(password: string | Buffer, h: Omit<ScryptHash, 'key'>, keylen: number): Promise<Buffer> {
  // scrypt needs about 128·N·r bytes; leave headroom above Node's 32 MiB default limit.
  const options: ScryptOptions = { N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password, h.salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Hashes a password with scrypt and a fresh random salt (runs on the libuv thread pool). */
export async function hashPassword(password: string | Buffer): Promise<string> {
  const params = { N: DEFAULT_N, r: DEFAULT_R, p: DEFAULT_P, salt: randomBytes(SALT_BYTES) };
  const key = await derive(password, params, KEY_BYTES);
  return formatHash({ ...params, key });
}

/**
 * True when `password` matches `hash` (constant-time comparison). Rejects with a clear error
 * when `hash` is not a `$scrypt$` hash Courier reads.
 */
export async function verifyPassword(hash: string, password: string | Buffer): Promise<boolean> {
  const f = parseField(hash);
  if (typeof f === 'string') throw new Error(f);
  const h = f.scrypt;
  const key = await derive(password, h, h.key.length);
  return timingSafeEqual(key, h.key);
}

/** Checked against when the user is unknown, so unknown users cost as much time as known ones. */
const DUMMY_HASH = formatHash({ N: DEFAULT_N, r: DEFAULT_R, p: DEFAULT_P, salt: randomBytes(SALT_BYTES), key: randomBytes(KEY_BYTES) });

/** Why `user` cannot be written to a password file, or null when it can. */
export function checkUserName(user: string): string | null {
  if (user.length === 0) return 'user name is empty';
  if (user.includes(':')) return `user name "${user}" contains ':'`;
  if (user.includes('\r') || user.includes('\n') || user.includes('\u0000')) return 'user name contains a line break or U+0000';
  if (/^\s*#/.test(user)) return `user name "${user}" would read as a comment ('#' first)`;
  if (/^\s/.test(user)) return `user name "${user}" starts with white space`;
  return null;
}

interface Line {
  text: string;
  /** Set on user lines. */
  user?: string;
  hash?: string;
}

/** Splits and checks a password file; throws PasswordFileError at the first bad line. */
function scan(text: string, name: string): Line[] {
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  const raw = text.split('\n');
  if (raw.length > 0 && raw[raw.length - 1] === '') raw.pop();
  const lines: Line[] = [];
  const seen = new Map<string, number>();
  raw.forEach((rawLine, i) => {
    const lineNo = i + 1;
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) {
      lines.push({ text: line });
      return;
    }
    const colon = line.lastIndexOf(':');
    if (colon < 0) throw new PasswordFileError(name, lineNo, "expected user:hash (no ':' on the line)");
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1).trim();
    if (user.length === 0) throw new PasswordFileError(name, lineNo, 'empty user name');
    if (user.includes(':')) throw new PasswordFileError(name, lineNo, `user name "${user}" contains ':'`);
    const reason = parseField(hash);
    if (typeof reason === 'string') throw new PasswordFileError(name, lineNo, `user "${user}": ${reason}`);
    const first = seen.get(user);
    if (first !== undefined) throw new PasswordFileError(name, lineNo, `user "${user}" is already defined on line ${first}`);
    seen.set(user, lineNo);
    lines.push({ text: line, user, hash });
  });
  return lines;
}

function usersOf(lines: Line[]): Map<string, string> {
  const users = new Map<string, string>();
  for (const l of lines) if (l.user !== undefined && l.hash !== undefined) users.set(l.user, l.hash);
  return users;
}

export class PasswordFile {
  /** The file path (or the name given to `parse`). */
  readonly path: string;
  readonly #fromFile: boolean;
  #users: Map<string, string>;
  #reloader: FileReloader | undefined;

  private constructor(path: string, users: Map<string, string>, fromFile: boolean) {
    this.path = path;
    this.#users = users;
    this.#fromFile = fromFile;
  }

  /** Reads and checks the file; rejects with PasswordFileError (file:line: reason) or the fs error. */
  static async load(path: string): Promise<PasswordFile> {
    return new PasswordFile(path, usersOf(scan(await readFile(path, 'utf8'), path)), true);
  }

  /** Parses password file text; `name` appears in error messages. The result cannot `watch`. */
  static parse(text: string, name: string): PasswordFile {
    return new PasswordFile(name, usersOf(scan(text, name)), false);
  }

  has(user: string): boolean {
    return this.#users.has(user);
  }

  /** The user's SCRAM-SHA-256 credential, when the file holds one (passwords set with `courier passwd` do). */
  scram(user: string): ScramCredential | undefined {
    const field = this.#users.get(user);
    if (field === undefined) return undefined;
    const f = parseField(field);
    return typeof f === 'string' ? undefined : f.scram;
  }

  /** User names in file order. */
  users(): string[] {
    return [...this.#users.keys()];
  }

  /**
   * The hook for the broker: no user name → undefined (another authenticator decides); unknown
   * user, missing or wrong password → `{ ok: false, reasonCode: 0x86 }`; else `{ ok: true }`.
   * Unknown users are checked against a dummy hash so they take as long as known ones. The
   * undefined answer is synchronous; the others come as a promise.
   */
  authenticator(): Authenticator {
    const check = async (username: string, password: Buffer | undefined): Promise<AuthenticationResult> => {
      const hash = this.#users.get(username);
      const matches = await verifyPassword(hash ?? DUMMY_HASH, password ?? Buffer.alloc(0));
      if (hash !== undefined && password !== undefined && matches) return { ok: true };
      return { ok: false, reasonCode: BAD_CREDENTIALS };
    };
    // Synchronous when there is nothing to check, so the connection need not wait.
    return (req) => (req.username === undefined ? undefined : check(req.username, req.password));
  }

  /**
   * Reloads the file whenever it changes. A file that fails to load keeps the previous users and
   * is reported to `onError` (default: a process warning); `onReload` runs after each successful
   * reload. Calling `watch` again replaces the previous watch.
   */
  watch(onReload?: () => void, onError?: (err: Error) => void, options?: FileWatchOptions): void {
    if (!this.#fromFile) throw new Error(`${this.path}: not loaded from a file, nothing to watch`);
    this.#reloader?.close();
    const reload = async (): Promise<void> => {
      this.#users = usersOf(scan(await readFile(this.path, 'utf8'), this.path));
    };
    this.#reloader = new FileReloader(this.path, reload, onReload, onError, options);
  }

  /** Stops watching. */
  close(): void {
    this.#reloader?.close();
    this.#reloader = undefined;
  }
}

async function readLines(path: string): Promise<Line[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return scan(text, path);
}

/** Replaces `path` with `text`: write a temporary file (mode 0600) in the same directory, then rename. */
export async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, 0o600);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

function render(lines: Line[]): string {
  return lines.map((l) => `${l.text}\n`).join('');
}

/**
 * Sets `user`'s password in the file at `path`, creating the file when missing. An existing user
 * keeps its line; a new one is appended. Comments and order are kept. Resolves to whether the user
 * was added or updated; rejects when the user name cannot be stored or the file has errors.
 */
export async function setPassword(path: string, user: string, password: string | Buffer): Promise<'added' | 'updated'> {
  const bad = checkUserName(user);
  if (bad) throw new Error(bad);
  const hash = `${await hashPassword(password)} ${formatScram(await scramCredential(password))}`;
  const lines = await readLines(path);
  const text = `${user}:${hash}`;
  const existing = lines.find((l) => l.user === user);
  if (existing) {
    existing.text = text;
    existing.hash = hash;
  } else {
    lines.push({ text, user, hash });
  }
  await writeAtomically(path, render(lines));
  return existing ? 'updated' : 'added';
}

/** Removes `user` from the file; resolves to false (and leaves the file alone) when it is not there. */
export async function deletePassword(path: string, user: string): Promise<boolean> {
  const lines = scan(await readFile(path, 'utf8'), path);
  const kept = lines.filter((l) => l.user !== user);
  if (kept.length === lines.length) return false;
  await writeAtomically(path, render(kept));
  return true;
}
