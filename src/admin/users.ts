/**
 * The admin users file: one `user:role:hash` per line (role `admin` or `viewer`; the hash is the
 * same scrypt hash as in the MQTT password file, src/security/passwords.ts); blank lines and
 * lines starting with `#` are comments. `courier passwd --admin FILE USER [--role viewer]` edits
 * it (atomically, mode 0600).
 */
import { readFile } from 'node:fs/promises';
import { checkUserName, hashPassword, writeAtomically } from '../security/passwords.js';

export type Role = 'admin' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'viewer'];

export interface AdminUser {
  role: Role;
  hash: string;
}

interface Line {
  text: string;
  user?: string;
}

function scan(text: string, name: string): { lines: Line[]; users: Map<string, AdminUser> } {
  const lines: Line[] = [];
  const users = new Map<string, AdminUser>();
  const raw = text.replace(/^\uFEFF/, '').split('\n');
  if (raw[raw.length - 1] === '') raw.pop();
  raw.forEach((r, i) => {
    const line = r.endsWith('\r') ? r.slice(0, -1) : r;
    const t = line.trim();
    if (t === '' || t.startsWith('#')) {
      lines.push({ text: line });
      return;
    }
    const m = /^([^:]+):(admin|viewer):(\$scrypt\$\S+)(?:\s.*)?$/.exec(line);
    if (m === null) throw new Error(`${name}:${i + 1}: expected user:role:hash with role "admin" or "viewer"`);
    if (users.has(m[1]!)) throw new Error(`${name}:${i + 1}: user "${m[1]}" is defined twice`);
    users.set(m[1]!, { role: m[2] as Role, hash: m[3]! });
    lines.push({ text: line, user: m[1]! });
  });
  return { lines, users };
}

/** Users of the file; an absent file has none. Throws on a malformed line (file:line: reason). */
export async function loadAdminUsers(path: string): Promise<Map<string, AdminUser>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  return scan(text, path).users;
}

async function readLines(path: string): Promise<Line[]> {
  try {
    return scan(await readFile(path, 'utf8'), path).lines;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Adds or updates a user; resolves to what happened. */
export async function setAdminUser(path: string, user: string, role: Role, password: string): Promise<'added' | 'updated'> {
  const bad = checkUserName(user);
  if (bad !== null) throw new Error(bad);
  const text = `${user}:${role}:${await hashPassword(password)}`;
  const lines = await readLines(path);
  const existing = lines.find((l) => l.user === user);
  if (existing !== undefined) existing.text = text;
  else lines.push({ text, user });
  await writeAtomically(path, lines.map((l) => `${l.text}\n`).join(''));
  return existing !== undefined ? 'updated' : 'added';
}

export async function deleteAdminUser(path: string, user: string): Promise<boolean> {
  const lines = await readLines(path);
  const kept = lines.filter((l) => l.user !== user);
  if (kept.length === lines.length) return false;
  await writeAtomically(path, kept.map((l) => `${l.text}\n`).join(''));
  return true;
}
