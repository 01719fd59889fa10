/**
 * Password file: scrypt hashes, the authenticator hook, parse errors with line numbers, editing
 * that keeps other lines, and reloading when the file changes (waiting for the watcher's reload,
 * never a fixed sleep).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkUserName, deletePassword, hashPassword, PasswordFile, PasswordFileError, setPassword, verifyPassword } from '../../../src/security/passwords.js';
import type { AuthenticationRequest } from '../../../src/security/types.js';

const HASH_RE = /^\$scrypt\$N=16384,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/;

function request(username: string | undefined, password: string | undefined): AuthenticationRequest {
  return {
    clientId: 'c1',
    username,
    password: password === undefined ? undefined : Buffer.from(password),
    protocolVersion: 5,
    transport: 'tcp',
    listener: 'default',
    remoteAddress: '127.0.0.1',
  };
}

/** Callbacks for `watch` that queue their events, and a way to await the next one. */
function watchEvents(): { onReload: () => void; onError: (err: Error) => void; next: () => Promise<'reload' | Error> } {
  const queued: Array<'reload' | Error> = [];
  const waiting: Array<(e: 'reload' | Error) => void> = [];
  const push = (e: 'reload' | Error): void => {
    const w = waiting.shift();
    if (w) w(e);
    else queued.push(e);
  };
  return {
    onReload: () => push('reload'),
    onError: (err) => push(err),
    next: () => (queued.length > 0 ? Promise.resolve(queued.shift()!) : new Promise((resolve) => waiting.push(resolve))),
  };
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'courier-passwd-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('hashPassword / verifyPassword', () => {
  void it('hashes to $scrypt$N=16384,r=8,p=1$<16-byte salt>$<32-byte key> with a fresh salt each time', async () => {
    const a = await hashPassword('s3cret');
    const b = await hashPassword('s3cret');
    assert.match(a, HASH_RE);
    assert.match(b, HASH_RE);
    assert.notEqual(a, b);
  });

  void it('verifies the right password (string or bytes) and refuses a wrong one', async () => {
    const hash = await hashPassword('s3cret');
    assert.equal(await verifyPassword(hash, 's3cret'), true);
    assert.equal(await verifyPassword(hash, Buffer.from('s3cret')), true);
    assert.equal(await verifyPassword(hash, 's3creT'), false);
    assert.equal(await verifyPassword(hash, ''), false);
  });

  void it('treats the password as UTF-8 bytes', async () => {
    const hash = await hashPassword('pässwörd');
    assert.equal(await verifyPassword(hash, Buffer.from('pässwörd', 'utf8')), true);
    assert.equal(await verifyPassword(hash, Buffer.from('pässwörd', 'latin1')), false);
  });

  void it('rejects hashes it does not read, saying why', async () => {
    await assert.rejects(verifyPassword('$6$salt$abcdef', 'x'), /unsupported password hash scheme "\$6\$"/);
    await assert.rejects(verifyPassword('$7$101$abc', 'x'), /unsupported password hash scheme "\$7\$"/);
    await assert.rejects(verifyPassword('plaintext', 'x'), /malformed password hash/);
    await assert.rejects(verifyPassword('$scrypt$N=16384,r=8,p=1$c2FsdA==', 'x'), /malformed password hash/);
    const salt = Buffer.alloc(16, 1).toString('base64');
    const key = Buffer.alloc(32, 2).toString('base64');
    await assert.rejects(verifyPassword(`$scrypt$N=1000,r=8,p=1$${salt}$${key}`, 'x'), /N=1000 is not a power of two/);
    await assert.rejects(verifyPassword(`$scrypt$N=16384,r=99,p=1$${salt}$${key}`, 'x'), /r=99/);
    await assert.rejects(verifyPassword(`$scrypt$N=16384,r=8,p=1$${salt}$${key.slice(0, 20)}`, 'x'), /key is not base64/);
  });

  void it('verifies hashes made with other scrypt parameters', async () => {
    const salt = Buffer.alloc(16, 7);
    const { scryptSync } = await import('node:crypto');
    const key = scryptSync('pw', salt, 32, { N: 1024, r: 4, p: 2 });
    const hash = `$scrypt$N=1024,r=4,p=2$${salt.toString('base64')}$${key.toString('base64')}`;
    assert.equal(await verifyPassword(hash, 'pw'), true);
    assert.equal(await verifyPassword(hash, 'pW'), false);
  });

  void it('does not block the event loop while hashing and verifying', async () => {
    const hash = await hashPassword('pw');
    let ticks = 0;
    let done = false;
    const spin = (): void => {
      if (done) return;
      ticks++;
      setImmediate(spin);
    };
    setImmediate(spin);
    await verifyPassword(hash, 'pw');
    done = true;
    // A synchronous scrypt would finish before the first setImmediate callback ran.
    assert.ok(ticks > 1, `event loop turned ${ticks} times during verification`);
  });
});

void describe('PasswordFile parsing', () => {
  let aliceHash: string;
  let bobHash: string;
  before(async () => {
    aliceHash = await hashPassword('alice-pw');
    bobHash = await hashPassword('bob-pw');
  });

  void it('reads user:hash lines, skipping comments and blank lines, tolerating CRLF', () => {
    const pf = PasswordFile.parse(`# users\r\n\r\nalice:${aliceHash}\r\n  # indented comment\nbob:${bobHash}\n`, 'pw.txt');
    assert.deepEqual(pf.users(), ['alice', 'bob']);
    assert.equal(pf.has('alice'), true);
    assert.equal(pf.has('carol'), false);
  });

  void it('reports each kind of bad line with the file name and line number', () => {
    const cases: Array<[string, number, RegExp]> = [
      [`# c\nalice-without-colon\n`, 2, /expected user:hash/],
      [`# c\n\n:${aliceHash}\n`, 3, /empty user name/],
      [`a:b:${aliceHash}\n`, 1, /user name "a:b" contains ':'/],
      [`alice:${aliceHash}\nbob:$6$abc$def\n`, 2, /user "bob": unsupported password hash scheme/],
      [`alice:${aliceHash}\nbob:not-a-hash\n`, 2, /malformed password hash/],
      [`alice:${aliceHash}\n#\nalice:${bobHash}\n`, 3, /user "alice" is already defined on line 1/],
    ];
    for (const [text, line, reason] of cases) {
      assert.throws(
        () => PasswordFile.parse(text, 'users.pw'),
        (err: unknown) => {
          assert.ok(err instanceof PasswordFileError);
          assert.equal(err.file, 'users.pw');
          assert.equal(err.line, line);
          assert.ok(err.message.startsWith(`users.pw:${line}: `), err.message);
          assert.match(err.message, reason);
          return true;
        },
        text,
      );
    }
  });

  void it('load() names the path in its errors', async () => {
    const path = join(dir, 'bad-load.pw');
    await writeFile(path, `alice:${aliceHash}\nnonsense\n`);
    await assert.rejects(PasswordFile.load(path), (err: unknown) => err instanceof PasswordFileError && err.message.startsWith(`${path}:2: `));
    await assert.rejects(PasswordFile.load(join(dir, 'missing.pw')), /ENOENT.*missing\.pw/);
  });
});

void describe('PasswordFile authenticator', () => {
  let pf: PasswordFile;
  before(async () => {
    pf = PasswordFile.parse(`alice:${await hashPassword('alice-pw')}\n`, 'auth.pw');
  });

  void it('accepts a listed user with the right password', async () => {
    assert.deepEqual(await pf.authenticator()(request('alice', 'alice-pw')), { ok: true });
  });

  void it('refuses a wrong or missing password with 0x86 Bad User Name or Password', async () => {
    assert.deepEqual(await pf.authenticator()(request('alice', 'wrong')), { ok: false, reasonCode: 0x86 });
    assert.deepEqual(await pf.authenticator()(request('alice', undefined)), { ok: false, reasonCode: 0x86 });
  });

  void it('refuses a user not in the file with 0x86', async () => {
    assert.deepEqual(await pf.authenticator()(request('mallory', 'alice-pw')), { ok: false, reasonCode: 0x86 });
    assert.deepEqual(await pf.authenticator()(request('', '')), { ok: false, reasonCode: 0x86 });
  });

  void it('leaves clients without a user name to other authenticators (undefined, synchronously)', () => {
    assert.equal(pf.authenticator()(request(undefined, undefined)), undefined);
    assert.equal(pf.authenticator()(request(undefined, 'pw')), undefined);
  });

  void it('spends a full scrypt on unknown users, as on known ones (no timing shortcut)', async () => {
    const auth = pf.authenticator();
    const time = async (username: string): Promise<number> => {
      const start = process.hrtime.bigint();
      await auth(request(username, 'wrong'));
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 3; i++) {
      known.push(await time('alice'));
      unknown.push(await time(`nobody-${i}`));
    }
    const k = Math.min(...known);
    const u = Math.min(...unknown);
    // Without the dummy hash an unknown user would return in microseconds, not milliseconds.
    assert.ok(u > k / 3, `unknown user took ${u.toFixed(1)} ms, known user ${k.toFixed(1)} ms`);
  });
});

void describe('setPassword / deletePassword', () => {
  void it('creates a missing file with mode 0600 and the user in it', async () => {
    const path = join(dir, 'new.pw');
    assert.equal(await setPassword(path, 'alice', 'pw1'), 'added');
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const pf = await PasswordFile.load(path);
    assert.deepEqual(pf.users(), ['alice']);
    assert.deepEqual(await pf.authenticator()(request('alice', 'pw1')), { ok: true });
  });

  void it('changes a password in place and adds new users at the end, keeping comments and order', async () => {
    const path = join(dir, 'edit.pw');
    const bob = await hashPassword('bob-pw');
    const carol = await hashPassword('carol-pw');
    await writeFile(path, `# team\nbob:${bob}\n\n# ops\ncarol:${carol}\n`, { mode: 0o644 });
    assert.equal(await setPassword(path, 'bob', 'bob-new'), 'updated');
    assert.equal(await setPassword(path, 'dave', 'dave-pw'), 'added');
    const lines = (await readFile(path, 'utf8')).split('\n');
    assert.equal(lines[0], '# team');
    assert.match(lines[1]!, /^bob:\$scrypt\$/);
    assert.notEqual(lines[1], `bob:${bob}`);
    assert.deepEqual(lines.slice(2, 5), ['', '# ops', `carol:${carol}`]);
    assert.match(lines[5]!, /^dave:\$scrypt\$/);
    assert.equal(lines[6], '');
    assert.equal(lines.length, 7);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const pf = await PasswordFile.load(path);
    assert.deepEqual(await pf.authenticator()(request('bob', 'bob-new')), { ok: true });
    assert.deepEqual(await pf.authenticator()(request('bob', 'bob-pw')), { ok: false, reasonCode: 0x86 });
    assert.deepEqual(await pf.authenticator()(request('carol', 'carol-pw')), { ok: true });
  });

  void it('deletes only the named user and reports a user that is not there', async () => {
    const path = join(dir, 'delete.pw');
    const a = await hashPassword('a');
    const b = await hashPassword('b');
    const before = `# keep me\na:${a}\nb:${b}\n`;
    await writeFile(path, before);
    assert.equal(await deletePassword(path, 'nobody'), false);
    assert.equal(await readFile(path, 'utf8'), before);
    assert.equal(await deletePassword(path, 'a'), true);
    assert.equal(await readFile(path, 'utf8'), `# keep me\nb:${b}\n`);
  });

  void it('leaves no temporary files behind', async () => {
    const sub = await mkdtemp(join(dir, 'atomic-'));
    const path = join(sub, 'p.pw');
    await setPassword(path, 'a', 'x');
    await setPassword(path, 'b', 'y');
    await deletePassword(path, 'a');
    assert.deepEqual(await readdir(sub), ['p.pw']);
  });

  void it('refuses user names that cannot be stored, and files with errors, without touching the file', async () => {
    const path = join(dir, 'refuse.pw');
    for (const bad of ['', 'a:b', '#x', ' lead', 'a\nb']) {
      assert.notEqual(checkUserName(bad), null, JSON.stringify(bad));
      await assert.rejects(setPassword(path, bad, 'pw'), Error, JSON.stringify(bad));
    }
    await assert.rejects(stat(path), { code: 'ENOENT' });
    await writeFile(path, 'broken line\n');
    await assert.rejects(setPassword(path, 'alice', 'pw'), (err: unknown) => err instanceof PasswordFileError && err.line === 1);
    await assert.rejects(deletePassword(path, 'alice'), PasswordFileError);
    assert.equal(await readFile(path, 'utf8'), 'broken line\n');
  });
});

void describe('PasswordFile.watch', () => {
  void it('reloads after the file is replaced and after it is rewritten in place', { timeout: 20_000 }, async () => {
    const path = join(dir, 'watched.pw');
    await setPassword(path, 'alice', 'pw1');
    const pf = await PasswordFile.load(path);
    const events = watchEvents();
    pf.watch(events.onReload, events.onError);
    try {
      const auth = pf.authenticator();
      assert.deepEqual(await auth(request('bob', 'pw2')), { ok: false, reasonCode: 0x86 });

      await setPassword(path, 'bob', 'pw2'); // temp file + rename
      assert.equal(await events.next(), 'reload');
      assert.deepEqual(pf.users(), ['alice', 'bob']);
      assert.deepEqual(await auth(request('bob', 'pw2')), { ok: true });

      const text = await readFile(path, 'utf8');
      await writeFile(
        path,
        text
          .split('\n')
          .filter((l) => !l.startsWith('alice:'))
          .join('\n'),
      ); // in place
      assert.equal(await events.next(), 'reload');
      assert.deepEqual(pf.users(), ['bob']);
      assert.deepEqual(await auth(request('alice', 'pw1')), { ok: false, reasonCode: 0x86 });
    } finally {
      pf.close();
    }
  });

  void it('keeps the previous users when the new file is bad, reports file and line, and recovers', { timeout: 20_000 }, async () => {
    const path = join(dir, 'watched-bad.pw');
    await setPassword(path, 'alice', 'pw1');
    const good = await readFile(path, 'utf8');
    const pf = await PasswordFile.load(path);
    const events = watchEvents();
    pf.watch(events.onReload, events.onError);
    try {
      await writeFile(path, `${good}# fine\nno colon here\n`);
      const err = await events.next();
      assert.ok(err instanceof PasswordFileError, String(err));
      assert.equal(err.message, `${path}:3: expected user:hash (no ':' on the line)`);
      assert.deepEqual(pf.users(), ['alice']);
      assert.deepEqual(await pf.authenticator()(request('alice', 'pw1')), { ok: true });

      await rm(path);
      const gone = await events.next();
      assert.ok(gone instanceof Error && /ENOENT/.test(gone.message), String(gone));
      assert.deepEqual(pf.users(), ['alice']);

      await setPassword(path, 'carol', 'pw3');
      assert.equal(await events.next(), 'reload');
      assert.deepEqual(pf.users(), ['carol']);
    } finally {
      pf.close();
    }
  });

  void it('refuses to watch a PasswordFile that was parsed from text', () => {
    const pf = PasswordFile.parse('', 'inline');
    assert.throws(() => pf.watch(), /inline: not loaded from a file/);
  });
});
