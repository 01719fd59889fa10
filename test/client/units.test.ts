/** Pure parts of the client: backoff, packet ids and the offline queue, named wildcards, -F formatting, `courier bench`'s percentiles, the codec's two byte seams. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Backoff } from '../../packages/client/src/backoff.js';
import { IdTable } from '../../packages/client/src/id-table.js';
import { Outgoing, type PendingPublish } from '../../packages/client/src/outgoing.js';
import { compileFilter, paramsOf } from '../../packages/client/src/params.js';
import { formatMessage } from '../../packages/client/src/cli/format.js';
import { CONNECTION_FLAGS, closeOptions, propertiesFor } from '../../packages/client/src/cli/common.js';
import { parseFlags, UsageError } from '../../packages/client/src/cli/args.js';
import { percentile } from '../../packages/client/src/cli/bench.js';
import { QueueFullError } from '../../packages/client/src/errors.js';
import type { Message } from '../../packages/client/src/types.js';
import * as nodeBytes from '../../src/protocol/bytes.js';
import * as webBytes from '../../src/protocol/bytes-web.js';
import { percentile as nearestRank } from '../../bench/stats.js';

void describe('Backoff', () => {
  void it('doubles from the initial delay up to the cap; full jitter stays within [0, delay]', () => {
    const none = new Backoff({ initialDelay: 100, maxDelay: 1000, jitter: 'none' });
    assert.deepEqual(
      Array.from({ length: 6 }, () => none.next()),
      [100, 200, 400, 800, 1000, 1000],
    );
    let x = 0;
    const seq = [0, 0.5, 0.999];
    const full = new Backoff({ initialDelay: 100, maxDelay: 1000 }, () => seq[x++ % 3]!);
    const d = Array.from({ length: 3 }, () => full.next());
    assert.deepEqual(d, [0, 100, 399.6]);
  });

  void it('spreads 500 clients dropped at once: about 10% retry in the first 100 ms of a 1 s initial delay, none at once', () => {
    let seed = 42; // a fixed linear congruential sequence: the test is deterministic
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const first = Array.from({ length: 500 }, () => new Backoff({ initialDelay: 1000 }, random).next());
    const early = first.filter((t) => t < 100).length;
    assert.ok(early <= 60, `${early} of 500 in the first 100 ms`);
    assert.ok(Math.max(...first) <= 1000 && Math.max(...first) - Math.min(...first) > 900);
  });

  void it('resets only after a stable connection', () => {
    const b = new Backoff({ initialDelay: 10, stableAfter: 5000, jitter: 'none' });
    b.next();
    b.next();
    b.connectionEnded(100); // kicked at once: keep backing off
    assert.equal(b.next(), 40);
    b.connectionEnded(6000);
    assert.equal(b.next(), 10);
  });
});

void describe('Outgoing', () => {
  const pending = (size: number): PendingPublish => ({
    key: 1,
    packet: { type: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 1, retain: false, dup: false },
    size,
    state: 'queued',
    settled: false,
    resolve: () => undefined,
    reject: () => undefined,
    unlink: undefined,
  });

  void it('never hands out a packet identifier in use, wrapping past 65535', () => {
    const o = new Outgoing();
    const held = new Set<number>();
    for (let i = 0; i < 70_000; i++) {
      const id = o.allocate()!;
      assert.ok(!held.has(id) && id >= 1 && id <= 0xffff);
      held.add(id);
      if (held.size > 1000) {
        const first = held.values().next().value!;
        held.delete(first);
        o.release(first);
      }
    }
  });

  void it('returns undefined when all 65535 are in use', () => {
    const o = new Outgoing();
    for (let i = 0; i < 0xffff; i++) assert.notEqual(o.allocate(), undefined);
    assert.equal(o.allocate(), undefined);
  });

  void it('bounds the queue by count and by bytes, refusing the newcomer', () => {
    const o = new Outgoing(2, 100);
    o.enqueue(pending(10));
    o.enqueue(pending(10));
    assert.throws(() => o.enqueue(pending(1)), QueueFullError);
    const p = new Outgoing(10, 100);
    p.enqueue(pending(90));
    assert.throws(() => p.enqueue(pending(11)), QueueFullError);
    p.enqueue(pending(10));
    assert.equal(p.queuedBytes, 100);
  });
});

void describe('IdTable', () => {
  void it('holds what a Map would under any sequence of set / delete / clear, identifiers 1..65535', () => {
    const id = fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 0xffff }));
    const op = fc.oneof(
      fc.record({ op: fc.constant('set' as const), id, v: fc.integer() }),
      fc.record({ op: fc.constant('delete' as const), id }),
      fc.record({ op: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const t = new IdTable<number>();
        const m = new Map<number, number>();
        for (const o of ops) {
          if (o.op === 'set') {
            t.set(o.id, o.v);
            m.set(o.id, o.v);
          } else if (o.op === 'delete') assert.equal(t.delete(o.id), m.delete(o.id));
          else {
            t.clear();
            m.clear();
          }
          assert.equal(t.size, m.size);
        }
        for (const [k, v] of m) {
          assert.equal(t.get(k), v);
          assert.ok(t.has(k));
        }
        assert.deepEqual(
          t.entries().sort((a, b) => a[0] - b[0]),
          [...m].sort((a, b) => a[0] - b[0]),
        );
      }),
    );
  });

  void it('keeps a window of sequential identifiers apart as they wrap past 65535, and one stuck identifier among them', () => {
    const t = new IdTable<number>();
    t.set(7, -1); // stays while 70,000 others come and go
    const live: number[] = [];
    for (let i = 0, id = 8; i < 70_000; i++, id = id === 0xffff ? 8 : id + 1) {
      t.set(id, i);
      live.push(id);
      if (live.length > 100) assert.ok(t.delete(live.shift()!));
      assert.equal(t.get(id), i);
    }
    assert.equal(t.get(7), -1);
    assert.equal(t.size, 101);
  });
});

void describe('Outgoing in flight', () => {
  void it('lists the publishes in flight in the order they were first sent, across the identifier wrap', () => {
    const o = new Outgoing();
    for (let i = 0; i < 0xfff0; i++) o.release(o.allocate()!); // the next identifiers are near 65535
    const sent: number[] = [];
    for (let key = 1; key <= 40; key++) {
      const id = o.allocate()!;
      o.inflight.set(id, { ...pendingOf(key), key });
      sent.push(id);
    }
    assert.ok(sent.includes(0xffff) && sent.includes(1), 'the identifiers wrapped');
    assert.deepEqual(
      o.inflightInOrder().map(([id]) => id),
      sent,
    );
    assert.deepEqual(
      o.drainAll().map((p) => p.key),
      sent.map((_, i) => i + 1),
    );
    assert.equal(o.inflight.size, 0);
  });
});

const pendingOf = (key: number): PendingPublish => ({
  key,
  packet: { type: 'publish', topic: 't', payload: Buffer.alloc(0), qos: 1, retain: false, dup: false },
  size: 0,
  state: 'publish',
  settled: false,
  resolve: () => undefined,
  reject: () => undefined,
  unlink: undefined,
});

void describe('named wildcards', () => {
  void it('strip names for SUBSCRIBE and give the matched levels', () => {
    const c = compileFilter('sensors/+site/+id/#rest');
    assert.equal(c.filter, 'sensors/+/+/#');
    assert.deepEqual(paramsOf(c, 'sensors/a/7/x/y'), { site: 'a', id: '7', rest: ['x', 'y'] });
    const s = compileFilter('$share/g/a/+x');
    assert.equal(s.filter, '$share/g/a/+');
    assert.equal(s.match, 'a/+');
    assert.deepEqual(paramsOf(s, 'a/b'), { x: 'b' });
    assert.deepEqual(compileFilter('plain/+/#').names, undefined);
  });
});

void describe('courier sub -F and flags', () => {
  const m = (over: Partial<Message> = {}): Message =>
    ({
      topic: 'a/b',
      payload: new TextEncoder().encode('hé'),
      qos: 1,
      retain: true,
      dup: false,
      properties: { contentType: 'text/plain' },
      params: {},
      text: () => 'hé',
      json: () => null,
      ...over,
    }) as Message;
  void it('formats like mosquitto_sub -F', () => {
    assert.equal(formatMessage('%t %p %q %r %l %C %%\\t%x', m()), 'a/b hé 1 1 3 text/plain %\t68c3a9');
    assert.match(formatMessage('%j', m()), /^\{"tst":"[^"]+","topic":"a\/b","qos":1,"retain":1,"payloadlen":3,"payload":"hé"\}$/);
  });
  void it('applies widths and precision as mosquitto_sub does (its output for these, 2.0.11)', () => {
    const long = m({ topic: 'fmt/1082', payload: new TextEncoder().encode('hello world'), properties: { contentType: 'ab', messageExpiryInterval: 60 } });
    assert.equal(
      formatMessage(
        '[%20t][%-20t][%10.10t][%.5t][%8p][%20p][%-20p][%3l][%-3l][%5C][%05E][%.2C][%-5q][%.3p][%10.3p][%03r][%.4X][%7x][%-7x][%08x][%.3l][%-05l]',
        long,
      ),
      '[            fmt/1082][fmt/1082            ][  fmt/1082][fmt/1][hello wo][         hello world][hello world         ][ 11][11 ]' +
        '[   ab][00060][ab][1][hello world][hello worl][1][68656C6C6F20776F726C64][ 68656c][68656c ][68656c6c][11][11   ]',
    );
  });
  void it('%x with a width prints half the payload at most, as mosquitto_sub 2.0 does', () => {
    const out = ['a', 'ab', 'abc', 'abcd', 'abcdef', 'abcdefgh'].map((x) =>
      formatMessage('[%6x][%8x][%-6x][%2x]', m({ payload: new TextEncoder().encode(x) })),
    );
    assert.deepEqual(out, [
      '[      ][        ][      ][  ]',
      '[    61][      61][61    ][61]',
      '[    61][      61][61    ][61]',
      '[  6162][    6162][6162  ][61]',
      '[616263][  616263][616263][61]',
      '[616263][61626364][616263][61]',
    ]);
  });
  void it('@ strftime codes and %I in local time, %U with nanoseconds', () => {
    const at = new Date(2026, 0, 2, 15, 4, 5, 678).getTime();
    assert.equal(formatMessage('@Y-@m-@d @H:@M:@S.@N @@ @a @b @j @I@p @Q', m(), at), '2026-01-02 15:04:05.678000000 @ Fri Jan 002 03PM %Q');
    assert.match(formatMessage('%I', m(), at), /^2026-01-02T15:04:05[+-]\d{4}$/);
    assert.equal(formatMessage('%U', m(), at), `${Math.floor(at / 1000)}.678000000`);
  });
  void it('-D subscribe and -D disconnect properties', () => {
    const p = parseFlags(
      ['-D', 'subscribe', 'user-property', 'a=b', '-D', 'disconnect', 'session-expiry-interval', '30', '-D', 'disconnect', 'user-property', 'x=y'],
      CONNECTION_FLAGS,
    );
    assert.deepEqual(propertiesFor(p, 'subscribe').userProperties, [['a', 'b']]);
    assert.deepEqual(closeOptions(p), { userProperties: [['x', 'y']], sessionExpiry: 30 });
  });
  void it("-D user-property in mosquitto's four-value form (NAME VALUE), next to NAME=VALUE", () => {
    const p = parseFlags(
      ['-D', 'connect', 'user-property', 'a', 'b=c', '-D', 'connect', 'user-property', 'k=v', '-D', 'unsubscribe', 'user-property', 'why', 'x y', '-q', '1'],
      CONNECTION_FLAGS,
    );
    assert.deepEqual(propertiesFor(p, 'connect').userProperties, [
      ['a', 'b=c'],
      ['k', 'v'],
    ]);
    assert.deepEqual(propertiesFor(p, 'unsubscribe').userProperties, [['why', 'x y']]);
    assert.deepEqual(p.get('qos'), ['1']);
  });
  void it('parses mosquitto-style flags, -D with three values, and rejects unknown ones', () => {
    const p = parseFlags(
      ['-t', 'a', '-t', 'b', '-D', 'publish', 'user-property', 'k=v', '--qos=1'],
      [
        { short: 't', long: 'topic', values: 1, repeat: true },
        { short: 'D', long: 'property', values: 3, repeat: true },
        { short: 'q', long: 'qos', values: 1 },
      ],
    );
    assert.deepEqual(p.get('topic'), ['a', 'b']);
    assert.deepEqual(p.get('property'), ['publish', 'user-property', 'k=v']);
    assert.deepEqual(p.get('qos'), ['1']);
    assert.throws(() => parseFlags(['-z'], []), UsageError);
  });
});

void describe('courier bench percentiles', () => {
  void it('sample floor(q·n) of the sorted latencies, clamped to the last; none gives 0', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.deepEqual(
      [0, 0.5, 0.95, 0.99, 1].map((q) => percentile(hundred, q)),
      [1, 51, 96, 100, 100],
    );
    assert.equal(percentile([1, 2, 3, 4], 0.5), 3, 'an even count: the upper middle');
    assert.equal(percentile([7], 0.99), 7);
    assert.equal(percentile([], 0.5), 0);
  });

  void it("differs from bench/stats.ts's nearest rank only where q·n is whole: one sample higher", () => {
    for (let n = 1; n <= 50; n++) {
      const xs = Array.from({ length: n }, (_, i) => i);
      for (const q of [0.5, 0.9, 0.95, 0.99]) {
        const whole = Number.isInteger(q * n);
        assert.equal(percentile(xs, q), Math.min(n - 1, nearestRank(xs, q) + (whole ? 1 : 0)), `n=${n} q=${q}`);
      }
    }
  });
});

void describe('codec byte seam: bytes.ts (Node) and bytes-web.ts agree', () => {
  void it('UTF-8 length, write and read, Latin-1 read and write, concat, copy', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (s) => {
        const n = nodeBytes.utf8ByteLength(s);
        assert.equal(webBytes.utf8ByteLength(s), n);
        const a = nodeBytes.alloc(n + 2).fill(0);
        const b = webBytes.alloc(n + 2);
        nodeBytes.utf8Write(a, s, 1, n);
        webBytes.utf8Write(b, s, 1, n);
        assert.deepEqual([...a], [...b]);
        assert.equal(webBytes.utf8Slice(b, 1, n + 1), nodeBytes.utf8Slice(a, 1, n + 1));
      }),
    );
    const ascii = 'sensors/building-7/floor-3';
    const x = webBytes.alloc(ascii.length);
    webBytes.latin1Write(x, ascii, 0, ascii.length);
    assert.equal(webBytes.latin1Slice(x, 0, x.length), ascii);
    assert.equal(nodeBytes.latin1Slice(Buffer.from(x), 0, x.length), ascii);
    assert.deepEqual([...webBytes.concat([Uint8Array.of(1, 2), Uint8Array.of(3)], 3)], [1, 2, 3]);
    assert.deepEqual([...webBytes.of(0xe0, 0)], [...nodeBytes.of(0xe0, 0)]);
    const src = Uint8Array.of(9, 8);
    const c = webBytes.copy(src);
    src[0] = 0;
    assert.equal(c[0], 9);
    assert.ok(!(webBytes.alloc(1) instanceof Buffer));
  });
});
