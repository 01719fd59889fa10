/**
 * `courier passwd FILE USER [--password P] [--delete]`, run in process through main() with a
 * temporary password file: add, change, delete, the password from stdin (a pipe, and a terminal
 * without echo), bad usage and exit codes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { main, USAGE } from '../../src/cli/main.js';
import { PASSWD_USAGE, type PasswdInput } from '../../src/cli/passwd.js';
import { PasswordFile } from '../../src/security/passwords.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'courier-passwd-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[], stdin: PasswdInput = new PassThrough()): Promise<Run> {
  let out = '';
  let err = '';
  const io = {
    stdout: { write: (t: string) => (out += t) },
    stderr: { write: (t: string) => (err += t) },
    cwd: dir,
    stdin,
  };
  const code = await main(['passwd', ...args], io);
  return { code, out, err };
}

/** A stand-in terminal: isTTY, and setRawMode calls recorded. */
function fakeTerminal(input: string): { stdin: PasswdInput; modes: boolean[] } {
  const modes: boolean[] = [];
  const stream = new PassThrough();
  const stdin = Object.assign(stream, {
    isTTY: true,
    setRawMode: (raw: boolean) => {
      modes.push(raw);
      return stream;
    },
  });
  stream.write(input);
  return { stdin, modes };
}

function pipe(input: string): PasswdInput {
  const s = new PassThrough();
  s.end(input);
  return s;
}

async function authenticates(file: string, user: string, password: string): Promise<boolean> {
  const pf = await PasswordFile.load(join(dir, file));
  const res = await pf.authenticator()({
    clientId: 'c',
    username: user,
    password: Buffer.from(password),
    protocolVersion: 4,
    transport: 'tcp',
    listener: 'default',
    remoteAddress: undefined,
  });
  return res?.ok === true;
}

void describe('courier passwd', () => {
  void it('adds a user to a new file (mode 0600), relative to the working directory, exit 0', async () => {
    const r = await run(['users.pw', 'alice', '--password', 'pw-1']);
    assert.deepEqual(r, { code: 0, out: 'added user "alice" to users.pw\n', err: '' });
    assert.equal((await stat(join(dir, 'users.pw'))).mode & 0o777, 0o600);
    assert.equal(await authenticates('users.pw', 'alice', 'pw-1'), true);
  });

  void it('changes the password of an existing user, keeping the other lines', async () => {
    await run(['change.pw', 'alice', '--password', 'old']);
    await run(['change.pw', 'bob', '--password', 'bob-pw']);
    const before = (await readFile(join(dir, 'change.pw'), 'utf8')).split('\n');
    const r = await run(['change.pw', 'alice', '--password', 'new']);
    assert.deepEqual(r, { code: 0, out: 'changed the password of "alice" in change.pw\n', err: '' });
    const lines = (await readFile(join(dir, 'change.pw'), 'utf8')).split('\n');
    assert.notEqual(lines[0], before[0]);
    assert.equal(lines[1], before[1]);
    assert.equal(await authenticates('change.pw', 'alice', 'new'), true);
    assert.equal(await authenticates('change.pw', 'alice', 'old'), false);
    assert.equal(await authenticates('change.pw', 'bob', 'bob-pw'), true);
  });

  void it('deletes a user (exit 0), and fails with exit 1 for a user that is not there', async () => {
    await run(['del.pw', 'alice', '--password', 'a']);
    await run(['del.pw', 'bob', '--password', 'b']);
    assert.deepEqual(await run(['del.pw', 'alice', '--delete']), { code: 0, out: 'deleted user "alice" from del.pw\n', err: '' });
    assert.deepEqual((await PasswordFile.load(join(dir, 'del.pw'))).users(), ['bob']);
    const again = await run(['del.pw', 'alice', '--delete']);
    assert.equal(again.code, 1);
    assert.equal(again.err, 'courier passwd: del.pw: no user "alice"\n');
    const missing = await run(['nowhere.pw', 'alice', '--delete']);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /ENOENT.*nowhere\.pw/);
  });

  void it('reads the password from the first line of stdin when stdin is not a terminal', async () => {
    const r = await run(['stdin.pw', 'carol'], pipe('from-pipe\nignored second line\n'));
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    assert.equal(await authenticates('stdin.pw', 'carol', 'from-pipe'), true);
    const noNewline = await run(['stdin.pw', 'dave'], pipe('last-line-without-newline'));
    assert.equal(noNewline.code, 0, noNewline.err);
    assert.equal(await authenticates('stdin.pw', 'dave', 'last-line-without-newline'), true);
  });

  void it('fails with exit 1 on empty stdin or an empty password', async () => {
    const none = await run(['empty.pw', 'carol'], pipe(''));
    assert.deepEqual(none, { code: 1, out: '', err: 'courier passwd: no password on stdin\n' });
    const empty = await run(['empty.pw', 'carol'], pipe('\n'));
    assert.deepEqual(empty, { code: 1, out: '', err: 'courier passwd: empty password\n' });
    await assert.rejects(stat(join(dir, 'empty.pw')), { code: 'ENOENT' });
  });

  void it('on a terminal asks twice without echo (raw mode, backspace handled) and restores the terminal', async () => {
    const { stdin, modes } = fakeTerminal('sekrit\u007f\u007fet\rsekret\r');
    const r = await run(['tty.pw', 'erin'], stdin);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, 'Password: \nConfirm password: \n');
    assert.ok(!r.out.includes('sekr'), 'password not echoed');
    assert.deepEqual(modes, [true, false]);
    assert.equal(await authenticates('tty.pw', 'erin', 'sekret'), true);
  });

  void it('on a terminal fails with exit 1 when the two passwords differ, or on Ctrl-C, leaving the file alone', async () => {
    const differ = fakeTerminal('one\rtwo\r');
    const r = await run(['tty2.pw', 'erin'], differ.stdin);
    assert.equal(r.code, 1);
    assert.match(r.err, /courier passwd: passwords do not match\n$/);
    assert.deepEqual(differ.modes, [true, false]);
    const ctrlC = fakeTerminal('abc\u0003');
    const c = await run(['tty2.pw', 'erin'], ctrlC.stdin);
    assert.equal(c.code, 1);
    assert.match(c.err, /courier passwd: aborted\n$/);
    assert.deepEqual(ctrlC.modes, [true, false]);
    await assert.rejects(stat(join(dir, 'tty2.pw')), { code: 'ENOENT' });
  });

  void it('fails with exit 1 and file:line when the file has a bad line', async () => {
    await writeFile(join(dir, 'broken.pw'), '# ok\nno-colon\n');
    const r = await run(['broken.pw', 'alice', '--password', 'x']);
    assert.equal(r.code, 1);
    assert.equal(r.err, `courier passwd: ${join(dir, 'broken.pw')}:2: expected user:hash (no ':' on the line)\n`);
  });

  void it('exits 2 on bad usage, before touching any file', async () => {
    const usage: Array<[string[], RegExp]> = [
      [[], /expected FILE and USER, got 0 arguments/],
      [['only-file.pw'], /expected FILE and USER, got 1 argument \(/],
      [['a.pw', 'alice', 'extra'], /got 3 arguments/],
      [['a.pw', 'alice', '--delete', '--password', 'x'], /--delete and --password do not go together/],
      [['a.pw', 'alice', '--bogus'], /Unknown option '--bogus'/],
      [['a.pw', 'alice', '--password'], /argument missing/],
      [['a.pw', 'a:b', '--password', 'x'], /user name "a:b" contains ':'/],
      [['a.pw', '', '--password', 'x'], /user name is empty/],
    ];
    for (const [args, message] of usage) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.err, /^courier passwd: /);
      assert.match(r.err, message, args.join(' '));
    }
    await assert.rejects(stat(join(dir, 'a.pw')), { code: 'ENOENT' });
  });

  void it('--help prints the subcommand usage (exit 0); the main usage mentions it', async () => {
    assert.deepEqual(await run(['--help']), { code: 0, out: PASSWD_USAGE, err: '' });
    assert.ok(USAGE.includes('courier passwd FILE USER [--password P] [--delete]'));
  });
});

void describe('courier passwd --admin', () => {
  void it('adds admins and viewers to the admin users file, changes and deletes them', async () => {
    const file = 'admin-users';
    let r = await run(['--admin', file, 'alice'], pipe('s3cret\n'));
    assert.deepEqual([r.code, r.out, r.err], [0, `added admin "alice" to ${file}\n`, '']);
    r = await run(['--admin', file, 'grafana', '--role', 'viewer', '--password', 'scrape']);
    assert.deepEqual([r.code, r.out], [0, `added viewer "grafana" to ${file}\n`]);
    const text = await readFile(join(dir, file), 'utf8');
    assert.match(text, /^alice:admin:\$scrypt\$/m);
    assert.match(text, /^grafana:viewer:\$scrypt\$/m);
    assert.equal((await stat(join(dir, file))).mode & 0o777, 0o600);
    r = await run(['--admin', file, 'grafana', '--delete']);
    assert.deepEqual([r.code, r.out], [0, `deleted admin user "grafana" from ${file}\n`]);
    r = await run(['--admin', file, 'grafana', '--delete']);
    assert.equal(r.code, 1);
  });

  void it('refuses a bad role, and --role without --admin', async () => {
    let r = await run(['--admin', 'admin-users', 'x', '--role', 'root', '--password', 'p']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--role must be admin or viewer/);
    r = await run(['pw-file', 'x', '--role', 'viewer', '--password', 'p']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--role goes with --admin/);
  });
});
