/**
 * `courier passwd FILE USER [--password P] [--delete]`: add a user to a password file, change a
 * user's password, or delete a user (src/security/passwords.ts has the format).
 *
 * Without --password the password comes from stdin: on a terminal it is asked for twice without
 * echo; otherwise the first line of stdin is the password.
 *
 * Exit codes: 0 done; 1 failure (passwords differ, unknown user, unreadable or bad file, ...);
 * 2 usage error.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { StringDecoder } from 'node:string_decoder';
import { checkUserName, deletePassword, setPassword } from '../security/passwords.js';
import { deleteAdminUser, ROLES, setAdminUser, type Role } from '../admin/users.js';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

export const PASSWD_USAGE = `Usage: courier passwd FILE USER [--password P] [--delete]
       courier passwd --admin FILE USER [--role admin|viewer] [--password P] [--delete]

Adds USER to the password file FILE (created, mode 0600, when missing) or changes USER's
password; with --delete, removes USER. Without --password the password is read from stdin:
asked for twice without echo on a terminal, else the first line of stdin.

With --admin, FILE is the admin users file of the dashboard and API (config admin.usersFile):
lines user:role:hash; the role is admin (everything) or viewer (read only).

Options:
  --password P   the password (visible to other local users in the process list; prefer stdin)
  --delete       delete USER instead of setting a password
  --admin        edit the admin users file (dashboard, API) instead of the MQTT password file
  --role ROLE    with --admin: admin (default) or viewer
  -h, --help     show this help and exit

Exit codes: 0 done, 1 failure, 2 usage error.
`;

/** What the password prompt needs of stdin. */
export interface PasswdInput extends NodeJS.EventEmitter {
  isTTY?: boolean;
  setRawMode?: (raw: boolean) => unknown;
  resume(): unknown;
  pause(): unknown;
}

export interface PasswdIO {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Relative FILE paths resolve against this; default process.cwd(). */
  cwd: string;
  /** Default process.stdin. */
  stdin: PasswdInput;
}

const OPTIONS = {
  password: { type: 'string' },
  delete: { type: 'boolean' },
  admin: { type: 'boolean' },
  role: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

class Aborted extends Error {}

/**
 * Reads lines from a stream, keeping what follows a line for the next read. In raw (terminal)
 * mode it also handles backspace, Ctrl-C and Ctrl-D, since the terminal no longer does.
 */
class LineReader {
  readonly #input: PasswdInput;
  readonly #raw: boolean;
  readonly #decoder = new StringDecoder('utf8');
  #buffer = '';
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #onData = (chunk: Buffer | string): void => {
    this.#buffer += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    this.#wake?.();
  };
  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#wake?.();
  };
  readonly #onError = (err: Error): void => {
    this.#error = err;
    this.#wake?.();
  };

  constructor(input: PasswdInput, raw: boolean) {
    this.#input = input;
    this.#raw = raw;
    input.on('data', this.#onData);
    input.on('end', this.#onEnd);
    input.on('error', this.#onError);
    input.resume();
  }

  /** The next line without its line break; null at end of input with nothing read. */
  async line(): Promise<string | null> {
    for (;;) {
      const got = this.#take();
      if (got !== undefined) return got;
      if (this.#error) throw this.#error;
      if (this.#ended) {
        const rest = this.#buffer;
        this.#buffer = '';
        return rest === '' ? null : rest;
      }
      await new Promise<void>((wake) => (this.#wake = wake));
      this.#wake = undefined;
    }
  }

  #take(): string | undefined {
    if (!this.#raw) {
      const nl = this.#buffer.indexOf('\n');
      if (nl < 0) return undefined;
      const line = this.#buffer.slice(0, nl);
      this.#buffer = this.#buffer.slice(nl + 1);
      return line.endsWith('\r') ? line.slice(0, -1) : line;
    }
    let line = '';
    for (let i = 0; i < this.#buffer.length; i++) {
      const c = this.#buffer[i]!;
      if (c === '\r' || c === '\n') {
        this.#buffer = this.#buffer.slice(i + 1);
        return line;
      }
      if (c === '\u0003') throw new Aborted('aborted');
      if (c === '\u0004') {
        if (line === '') throw new Aborted('aborted (end of input)');
        continue;
      }
      if (c === '\u007f' || c === '\b') {
        line = [...line].slice(0, -1).join('');
        continue;
      }
      line += c;
    }
    return undefined;
  }

  close(): void {
    this.#input.off('data', this.#onData);
    this.#input.off('end', this.#onEnd);
    this.#input.off('error', this.#onError);
    this.#input.pause();
  }
}

async function readPassword(io: PasswdIO): Promise<string> {
  const tty = io.stdin.isTTY === true && typeof io.stdin.setRawMode === 'function';
  if (tty) io.stdin.setRawMode!(true);
  const reader = new LineReader(io.stdin, tty);
  try {
    if (!tty) {
      const line = await reader.line();
      if (line === null) throw new Aborted('no password on stdin');
      return line;
    }
    io.stderr.write('Password: ');
    const first = await reader.line();
    io.stderr.write('\n');
    io.stderr.write('Confirm password: ');
    const second = await reader.line();
    io.stderr.write('\n');
    if (first === null || second === null) throw new Aborted('aborted (end of input)');
    if (first !== second) throw new Aborted('passwords do not match');
    return first;
  } finally {
    reader.close();
    if (tty) io.stdin.setRawMode!(false);
  }
}

export async function passwdMain(argv: string[], overrides: Partial<PasswdIO> = {}): Promise<number> {
  const io: PasswdIO = { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), stdin: process.stdin, ...overrides };
  const fail = (message: string, code: number): number => {
    io.stderr.write(`courier passwd: ${message}\n`);
    return code;
  };

  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    return fail(`${err instanceof Error ? err.message.split('. ')[0] : String(err)} (try --help)`, EXIT_USAGE);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout.write(PASSWD_USAGE);
    return EXIT_OK;
  }
  if (positionals.length !== 2) {
    return fail(`expected FILE and USER, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'} (try --help)`, EXIT_USAGE);
  }
  if (values.delete && values.password !== undefined) return fail('--delete and --password do not go together', EXIT_USAGE);
  const [fileArg, user] = positionals as [string, string];
  const file = resolve(io.cwd, fileArg);
  const badUser = checkUserName(user);
  if (badUser) return fail(badUser, EXIT_USAGE);
  if (values.role !== undefined && !values.admin) return fail('--role goes with --admin', EXIT_USAGE);
  const role = (values.role ?? 'admin') as Role;
  if (!ROLES.includes(role)) return fail(`--role must be ${ROLES.join(' or ')}`, EXIT_USAGE);
  if (values.admin) {
    try {
      if (values.delete) {
        if (!(await deleteAdminUser(file, user))) return fail(`${fileArg}: no user "${user}"`, EXIT_FAILURE);
        io.stdout.write(`deleted admin user "${user}" from ${fileArg}\n`);
        return EXIT_OK;
      }
      const password = values.password ?? (await readPassword(io));
      if (password === '') return fail('empty password', EXIT_FAILURE);
      const what = await setAdminUser(file, user, role, password);
      io.stdout.write(what === 'added' ? `added ${role} "${user}" to ${fileArg}\n` : `changed ${role} "${user}" in ${fileArg}\n`);
      return EXIT_OK;
    } catch (err) {
      return fail(err instanceof Error ? err.message : String(err), EXIT_FAILURE);
    }
  }

  try {
    if (values.delete) {
      if (!(await deletePassword(file, user))) return fail(`${fileArg}: no user "${user}"`, EXIT_FAILURE);
      io.stdout.write(`deleted user "${user}" from ${fileArg}\n`);
      return EXIT_OK;
    }
    const password = values.password ?? (await readPassword(io));
    if (password === '') return fail('empty password', EXIT_FAILURE);
    const what = await setPassword(file, user, password);
    io.stdout.write(what === 'added' ? `added user "${user}" to ${fileArg}\n` : `changed the password of "${user}" in ${fileArg}\n`);
    return EXIT_OK;
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err), EXIT_FAILURE);
  }
}
