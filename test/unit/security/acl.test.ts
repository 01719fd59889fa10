/**
 * ACL file: sections, patterns, deny-overrides, default deny, subscription coverage, injection
 * through user names and client ids, parse errors, the authorizer hook and reloading. The filter
 * algebra (covers / overlaps) is checked exhaustively against a matcher written from §4.7.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AclFile, AclFileError, filterCovers, filtersOverlap, type AclRequest } from '../../../src/security/acl.js';
import type { AuthorizationRequest } from '../../../src/security/types.js';

const ACL = `# Global rules
topic read public/#
topic deny public/secret/#
pattern readwrite devices/%c/#
pattern read users/%u/inbox/#
pattern write users/%u/outbox
pattern read %u/feed

user alice
topic readwrite alice/#
topic deny alice/private
topic read $SYS/broker/uptime

user bob
topic write sensors/+/temp
topic read sensors/#

user carol
topic read sensors/+/temp

client dash-1
topic read dash/#
pattern deny dash/%u/#

# a second "user alice" section adds to the first
user alice
topic write shared/alice-notes
`;

type Case = [title: string, action: AclRequest['action'], username: string | undefined, clientId: string, topic: string, allowed: boolean];

const CASES: Case[] = [
  // Global rules apply to everyone, with and without a user name.
  ['global read rule lets anyone subscribe', 'subscribe', undefined, 'anon', 'public/news', true],
  ['global read rule gives no write', 'publish', 'alice', 'c', 'public/news', false],
  ['global deny wins over global read', 'subscribe', 'alice', 'c', 'public/secret/plans', false],
  ['deny public/secret/# matches its parent level too', 'subscribe', 'alice', 'c', 'public/secret', false],
  ['subscription overlapping a deny is refused (public/#)', 'subscribe', 'bob', 'c', 'public/#', false],
  ['subscription overlapping a deny is refused (public/+)', 'subscribe', 'bob', 'c', 'public/+', false],
  ['subscription beside a deny is allowed', 'subscribe', 'bob', 'c', 'public/news/+', true],
  ['a deny overlapping through + refuses the subscription', 'subscribe', 'bob', 'c', 'public/+/x', false],
  // user sections
  ['user section grants its user', 'publish', 'alice', 'c', 'alice/x/y', true],
  ['user section does not grant other users', 'publish', 'bob', 'c', 'alice/x', false],
  ['user section does not grant clients without a user name', 'publish', undefined, 'alice', 'alice/x', false],
  ['deny overrides readwrite in the same section (publish)', 'publish', 'alice', 'c', 'alice/private', false],
  ['deny overrides readwrite in the same section (subscribe)', 'subscribe', 'alice', 'c', 'alice/+', false],
  ['filter not overlapping the deny is allowed', 'subscribe', 'alice', 'c', 'alice/+/x', true],
  ['sections with the same name add up', 'publish', 'alice', 'c', 'shared/alice-notes', true],
  ['write with + matches one level', 'publish', 'bob', 'c', 'sensors/k/temp', true],
  ['write with + does not match other levels', 'publish', 'bob', 'c', 'sensors/k/hum', false],
  ['write with + does not match two levels', 'publish', 'bob', 'c', 'sensors/k/j/temp', false],
  // Subscription coverage
  ['read sensors/# covers sensors/+/temp', 'subscribe', 'bob', 'c', 'sensors/+/temp', true],
  ['read sensors/# covers sensors/#', 'subscribe', 'bob', 'c', 'sensors/#', true],
  ['read sensors/# covers sensors (parent level)', 'subscribe', 'bob', 'c', 'sensors', true],
  ['read sensors/+/temp covers sensors/a/temp', 'subscribe', 'carol', 'c', 'sensors/a/temp', true],
  ['read sensors/+/temp covers sensors/+/temp', 'subscribe', 'carol', 'c', 'sensors/+/temp', true],
  ['read sensors/+/temp does not cover sensors/#', 'subscribe', 'carol', 'c', 'sensors/#', false],
  ['read sensors/+/temp does not cover sensors/a/#', 'subscribe', 'carol', 'c', 'sensors/a/#', false],
  ['read sensors/+/temp does not cover sensors/+/+', 'subscribe', 'carol', 'c', 'sensors/+/+', false],
  ['read-only rule gives no write', 'publish', 'carol', 'c', 'sensors/a/temp', false],
  // client sections
  ['client section grants that client id', 'subscribe', undefined, 'dash-1', 'dash/a/b', true],
  ['client section does not grant other client ids', 'subscribe', undefined, 'dash-2', 'dash/a/b', false],
  ['client and user sections both apply', 'subscribe', 'alice', 'dash-1', 'alice/x', true],
  ['deny pattern in a client section applies with the user name filled in', 'subscribe', 'alice', 'dash-1', 'dash/alice/x', false],
  ['deny pattern in a client section overlaps dash/#', 'subscribe', 'alice', 'dash-1', 'dash/#', false],
  ['deny pattern leaves other topics alone', 'subscribe', 'alice', 'dash-1', 'dash/bob/x', true],
  ['%u deny pattern never applies without a user name', 'subscribe', undefined, 'dash-1', 'dash/#', true],
  // Patterns
  ['%c pattern grants the own client id', 'publish', undefined, 'c1', 'devices/c1/temp', true],
  ['%c pattern grants the own subtree to subscribe', 'subscribe', undefined, 'c1', 'devices/c1/#', true],
  ["%c pattern does not grant another client's id", 'publish', undefined, 'c2', 'devices/c1/temp', false],
  ['%u pattern grants the own user name', 'subscribe', 'alice', 'c', 'users/alice/inbox/#', true],
  ["%u pattern does not grant another user's topics", 'subscribe', 'alice', 'c', 'users/bob/inbox/#', false],
  ['%u pattern does not cover users/+/inbox/#', 'subscribe', 'alice', 'c', 'users/+/inbox/#', false],
  ['%u pattern never applies without a user name', 'publish', undefined, 'c', 'users//outbox', false],
  ['%u write pattern', 'publish', 'dave', 'c', 'users/dave/outbox', true],
  ['write-only pattern gives no read', 'subscribe', 'dave', 'c', 'users/dave/outbox', false],
  ['%u at the start of a pattern', 'subscribe', 'dave', 'c', 'dave/feed', true],
  // Injection through names
  ['user name "+" cannot widen users/%u/inbox/#', 'subscribe', '+', 'c', 'users/+/inbox/#', false],
  ['user name "#" cannot widen %u/feed', 'subscribe', '#', 'c', '#', false],
  ['user name "#" cannot widen users/%u/inbox/#', 'subscribe', '#', 'c', 'users/#', false],
  ['user name "a/#" cannot add levels', 'subscribe', 'a/#', 'c', 'users/a/#', false],
  ['user name "x/y" cannot add levels', 'publish', 'x/y', 'c', 'users/x/y/outbox', false],
  ['user name "$SYS" cannot move a pattern into $SYS', 'subscribe', '$SYS', 'c', '$SYS/feed', false],
  ['empty user name fills in nothing', 'publish', '', 'c', 'users//outbox', false],
  ['client id "+" cannot widen devices/%c/#', 'subscribe', undefined, '+', 'devices/+/#', false],
  ['client id "#" cannot widen devices/%c/#', 'subscribe', undefined, '#', 'devices/#', false],
  ['client id "a/b" cannot add levels', 'publish', undefined, 'a/b', 'devices/a/b/x', false],
  ['user name "+" makes a deny pattern deny everything', 'subscribe', '+', 'dash-1', 'dash/x', false],
  ['user name "+" makes a deny pattern deny even global rules', 'subscribe', '+', 'dash-1', 'public/news', false],
  // $ topics [MQTT-4.7.2-1]
  ['an explicit $SYS rule grants $SYS', 'subscribe', 'alice', 'c', '$SYS/broker/uptime', true],
  ['$SYS/# is not covered by a narrower $SYS rule', 'subscribe', 'alice', 'c', '$SYS/#', false],
  // Shared subscriptions are checked against their filter
  ['$share/GROUP/FILTER is checked as FILTER (allowed)', 'subscribe', 'bob', 'c', '$share/g/sensors/+/temp', true],
  ['$share/GROUP/FILTER is checked as FILTER (denied)', 'subscribe', 'bob', 'c', '$share/g/alice/x', false],
  ['$share/GROUP/FILTER is checked as FILTER (deny overlap)', 'subscribe', 'bob', 'c', '$share/g/public/#', false],
  ['a malformed $share filter is denied', 'subscribe', 'bob', 'c', '$share/sensors', false],
  // Default deny
  ['nothing matches: denied', 'publish', 'alice', 'c', 'elsewhere', false],
];

void describe('ACL decisions', () => {
  const acl = AclFile.parse(ACL, 'test.acl');
  for (const [title, action, username, clientId, topic, allowed] of CASES) {
    void it(`${title}: ${action} ${topic} as user ${JSON.stringify(username)} client ${JSON.stringify(clientId)} → ${allowed ? 'allowed' : 'denied'}`, () => {
      assert.equal(acl.check({ action, username, clientId, topic }), allowed);
    });
  }

  void it('counts topic and pattern rules', () => {
    assert.equal(acl.ruleCount, 15);
  });

  void it('an ACL file without rules denies everything (deny by default)', () => {
    const empty = AclFile.parse('# nothing here\n\nuser alice\n', 'empty.acl');
    assert.equal(empty.ruleCount, 0);
    assert.equal(empty.check({ action: 'publish', username: 'alice', clientId: 'c', topic: 'a' }), false);
    assert.equal(empty.check({ action: 'subscribe', username: undefined, clientId: 'c', topic: '#' }), false);
  });

  void it('a deny in a user section overrides a global readwrite #', () => {
    const acl2 = AclFile.parse('topic readwrite #\nuser eve\ntopic deny x/#\n', 'deny.acl');
    assert.equal(acl2.check({ action: 'publish', username: 'eve', clientId: 'c', topic: 'x/1' }), false);
    assert.equal(acl2.check({ action: 'publish', username: 'eve', clientId: 'c', topic: 'y/1' }), true);
    assert.equal(acl2.check({ action: 'publish', username: 'frank', clientId: 'c', topic: 'x/1' }), true);
    assert.equal(acl2.check({ action: 'subscribe', username: 'eve', clientId: 'c', topic: '#' }), false);
    assert.equal(acl2.check({ action: 'subscribe', username: 'frank', clientId: 'c', topic: '#' }), true);
  });

  void it('[MQTT-4.7.2-1] readwrite # does not reach topics starting with $', () => {
    const all = AclFile.parse('topic readwrite #\n', 'all.acl');
    assert.equal(all.check({ action: 'subscribe', username: undefined, clientId: 'c', topic: '$SYS/#' }), false);
    assert.equal(all.check({ action: 'subscribe', username: undefined, clientId: 'c', topic: '$SYS/uptime' }), false);
    assert.equal(all.check({ action: 'publish', username: undefined, clientId: 'c', topic: '$app/x' }), false);
    assert.equal(all.check({ action: 'subscribe', username: undefined, clientId: 'c', topic: '+/x' }), true);
    // '+/#' covers '#': every topic has a first level.
    const plus = AclFile.parse('topic read +/#\n', 'plus.acl');
    assert.equal(plus.check({ action: 'subscribe', username: undefined, clientId: 'c', topic: '#' }), true);
    assert.equal(plus.check({ action: 'subscribe', username: undefined, clientId: 'c', topic: '$SYS/#' }), false);
    // And a deny of # does not take away $ topics granted by name.
    const sys = AclFile.parse('topic read $SYS/#\ntopic deny #\n', 'sys.acl');
    assert.equal(sys.check({ action: 'subscribe', username: undefined, clientId: 'c', topic: '$SYS/#' }), true);
    assert.equal(sys.check({ action: 'subscribe', username: undefined, clientId: 'c', topic: 'a' }), false);
  });

  void it('the authorizer answers true or { allow: false, reasonCode: 0x87 }, never undefined', async () => {
    const authorize = acl.authorizer();
    const req = (topic: string): AuthorizationRequest => ({ action: 'publish', clientId: 'c', username: 'alice', topic, qos: 1, retain: false });
    assert.equal(await authorize(req('alice/x')), true);
    assert.deepEqual(await authorize(req('bob/x')), { allow: false, reasonCode: 0x87 });
  });
});

void describe('ACL parse errors', () => {
  const cases: Array<[text: string, line: number, reason: RegExp]> = [
    ['topic read\n', 1, /missing topic filter/],
    ['# c\n\ntopic rw a/b\n', 3, /unknown access "rw"/],
    ['topic a/b\n', 1, /unknown access "a\/b"/],
    ['user alice\ntopics read a\n', 2, /unknown statement "topics"/],
    ['user\n', 1, /"user" needs a user name/],
    ['client   \n', 1, /"client" needs a client identifier/],
    ['topic read a/#/b\n', 1, /invalid topic filter "a\/#\/b"/],
    ['topic write a+/b\n', 1, /invalid topic filter/],
    ['pattern read a/%u+\n', 1, /invalid topic filter "a\/%u\+"/],
    ['topic read $share/g/a\n', 1, /\$share/],
    ['pattern', 1, /expected "pattern <read\|write\|readwrite\|deny> <filter>"/],
  ];
  for (const [text, line, reason] of cases) {
    void it(`${JSON.stringify(text)} → line ${line}: ${reason.source}`, () => {
      assert.throws(
        () => AclFile.parse(text, 'bad.acl'),
        (err: unknown) => {
          assert.ok(err instanceof AclFileError);
          assert.equal(err.file, 'bad.acl');
          assert.equal(err.line, line);
          assert.ok(err.message.startsWith(`bad.acl:${line}: `), err.message);
          assert.match(err.message, reason);
          return true;
        },
      );
    });
  }

  void it('accepts filters with spaces, empty levels and CRLF line ends', () => {
    const acl = AclFile.parse('topic read a b/c\r\ntopic write /x//y\r\n', 'ok.acl');
    assert.equal(acl.check({ action: 'subscribe', username: undefined, clientId: 'c', topic: 'a b/c' }), true);
    assert.equal(acl.check({ action: 'publish', username: undefined, clientId: 'c', topic: '/x//y' }), true);
  });
});

/** Reference matcher written straight from §4.7. */
function naiveMatch(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function sequences(alphabet: string[], maxLength: number): string[][] {
  const out: string[][] = [];
  let layer: string[][] = [[]];
  for (let n = 1; n <= maxLength; n++) {
    layer = layer.flatMap((s) => alphabet.map((a) => [...s, a]));
    out.push(...layer);
  }
  return out;
}

void describe('filter algebra', () => {
  // Every topic of up to 4 levels over {a, c, $x}: longer than any filter below by one level, with
  // a literal ('c') no filter names, so each difference between two filters has a witness here.
  const topics = sequences(['a', 'c', '$x'], 4).map((l) => l.join('/'));
  const filters = [...sequences(['a', '$x', '+'], 3).flatMap((l) => [l.join('/'), [...l, '#'].join('/')]), '#'];
  const matching = new Map(filters.map((f) => [f, new Set(topics.filter((t) => naiveMatch(f, t)))]));

  void it('filterCovers(filter, topic) is MQTT topic matching', () => {
    for (const f of filters) {
      for (const t of topics) assert.equal(filterCovers(f.split('/'), t.split('/')), naiveMatch(f, t), `${f} vs ${t}`);
    }
  });

  void it('filterCovers(r, f) holds exactly when every topic f matches, r matches too', () => {
    for (const r of filters) {
      const rSet = matching.get(r)!;
      for (const f of filters) {
        const expected = [...matching.get(f)!].every((t) => rSet.has(t));
        assert.equal(filterCovers(r.split('/'), f.split('/')), expected, `${r} covers ${f}`);
      }
    }
  });

  void it('filtersOverlap(a, b) holds exactly when some topic matches both', () => {
    for (const a of filters) {
      const aSet = matching.get(a)!;
      for (const b of filters) {
        const expected = [...matching.get(b)!].some((t) => aSet.has(t));
        assert.equal(filtersOverlap(a.split('/'), b.split('/')), expected, `${a} overlaps ${b}`);
      }
    }
  });
});

void describe('AclFile.watch', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'courier-acl-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  void it('reloads on change, and keeps the old rules when the new file does not parse', { timeout: 20_000 }, async () => {
    const path = join(dir, 'live.acl');
    await writeFile(path, 'topic read a/#\n');
    const acl = await AclFile.load(path);
    const queued: Array<'reload' | Error> = [];
    let wake: (() => void) | undefined;
    const next = async (): Promise<'reload' | Error> => {
      while (queued.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return queued.shift()!;
    };
    acl.watch(
      () => {
        queued.push('reload');
        wake?.();
      },
      (err) => {
        queued.push(err);
        wake?.();
      },
    );
    const sub = (topic: string): boolean => acl.check({ action: 'subscribe', username: undefined, clientId: 'c', topic });
    try {
      assert.equal(sub('a/1'), true);
      await writeFile(path, 'topic read b/#\n');
      assert.equal(await next(), 'reload');
      assert.equal(sub('a/1'), false);
      assert.equal(sub('b/1'), true);

      await writeFile(path, 'topic read c/#\n# ok\ntopic maybe d\n');
      const err = await next();
      assert.ok(err instanceof AclFileError, String(err));
      assert.equal(err.message, `${path}:3: unknown access "maybe": expected "topic <read|write|readwrite|deny> <filter>"`);
      assert.equal(sub('b/1'), true);
      assert.equal(sub('c/1'), false);
    } finally {
      acl.close();
    }
  });

  void it('load() names the file and line of a parse error', async () => {
    const path = join(dir, 'bad.acl');
    await writeFile(path, 'topic read a\nbogus\n');
    await assert.rejects(AclFile.load(path), (err: unknown) => err instanceof AclFileError && err.message.startsWith(`${path}:2: `));
  });
});
