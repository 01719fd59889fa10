/** Pure parts of the client: backoff, packet ids and the offline queue, named wildcards, -F formatting, the codec's two byte seams. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Backoff } from '../../packages/client/src/backoff.js';
import { Outgoing, type PendingPublish } from '../../packages/client/src/outgoing.js';
import { compileFilter, paramsOf } from '../../packages/client/src/params.js';
import { formatMessage } from '../../packages/client/src/cli/format.js';
import { parseFlags, UsageError } from '../../packages/client/src/cli/args.js';
import { QueueFullError } from '../../packages/client/src/errors.js';
import type { Message } from '../../packages/client/src/types.js';
import * as nodeBytes from '../../src/protocol/bytes.js';
import * as webBytes from '../../src/protocol/bytes-web.js';

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
