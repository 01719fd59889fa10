/** The delivery recorder: payload encoding, and lost / duplicated / reordered / unexpected counts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DeliveryRecorder, decodePayload, encodePayload } from '../../helpers/recorder.js';

const A_TO_X: Array<[string, string]> = [['a', 'x']];

void describe('recorder payloads', () => {
  void it('round-trips publisher id and seq, with optional padding', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), fc.nat({ max: 0xffffffff }), fc.nat({ max: 300 }), (id, seq, size) => {
        const p = encodePayload(id, seq, size);
        assert.ok(p.length >= size);
        assert.deepEqual(decodePayload(p), { publisherId: id, seq });
        // Also from a view into a larger buffer (as MQTT clients hand payloads over).
        const big = Buffer.concat([Buffer.from('xyz'), p]);
        assert.deepEqual(decodePayload(big.subarray(3)), { publisherId: id, seq });
      }),
    );
  });

  void it('rejects what it cannot encode and decodes foreign payloads as undefined', () => {
    assert.throws(() => encodePayload('a'.repeat(256), 1), RangeError);
    assert.throws(() => encodePayload('a', -1), RangeError);
    assert.throws(() => encodePayload('a', 2 ** 32), RangeError);
    assert.throws(() => encodePayload('a', 1.5), RangeError);
    assert.equal(decodePayload(Buffer.from('hello world')), undefined);
    assert.equal(decodePayload(encodePayload('abc', 1).subarray(0, 6)), undefined);
    assert.equal(decodePayload(new Uint8Array()), undefined);
  });
});

void describe('DeliveryRecorder', () => {
  void it('a perfect run is clean', () => {
    const r = new DeliveryRecorder();
    for (let i = 0; i < 5; i++) {
      r.published('a', i, true);
      r.delivered('x', encodePayload('a', i));
    }
    const rep = r.report(A_TO_X);
    assert.equal(rep.clean, true, rep.summary());
    assert.deepEqual(rep.totals, { expected: 5, delivered: 5, lost: 0, duplicated: 0, reordered: 0, unexpected: 0 });
    assert.equal(rep.published, 5);
    assert.equal(rep.acked, 5);
  });

  void it('counts lost (acked only), duplicated and reordered per subscriber', () => {
    const r = new DeliveryRecorder();
    for (let i = 0; i < 6; i++) r.published('a', i, i !== 5);
    // x: 0, 2, 1, 1, 4 → 3 lost, 5 unacked (not lost), 1 reordered, 1 duplicated
    for (const seq of [0, 2, 1, 1, 4]) r.delivered('x', encodePayload('a', seq));
    // y: everything, in order, plus the unacked one (allowed)
    for (const seq of [0, 1, 2, 3, 4, 5]) r.delivered('y', { publisherId: 'a', seq });
    const rep = r.report([
      ['a', 'x'],
      ['a', 'y'],
    ]);
    const [x, y] = rep.subscribers;
    assert.equal(x?.subscriber, 'x');
    assert.equal(x.expected, 5);
    assert.equal(x.delivered, 5);
    assert.equal(x.lost, 1);
    assert.deepEqual(x.samples.lost, [{ publisherId: 'a', seq: 3 }]);
    assert.equal(x.duplicated, 1);
    assert.deepEqual(x.samples.duplicated, [{ publisherId: 'a', seq: 1 }]);
    assert.equal(x.reordered, 1);
    assert.deepEqual(x.samples.reordered, [{ publisherId: 'a', seq: 1 }]);
    assert.equal(x.unexpected, 0);
    assert.equal(y?.lost, 0);
    assert.equal(y.duplicated + y.reordered + y.unexpected, 0);
    assert.equal(rep.clean, false);
    assert.match(rep.summary(), /x: .*"lost":1/);
  });

  void it('order is per publisher: interleaved publishers are not reordered', () => {
    const r = new DeliveryRecorder();
    for (const p of ['a', 'b']) for (let i = 0; i < 3; i++) r.published(p, i);
    for (const [p, i] of [
      ['b', 0],
      ['a', 0],
      ['b', 1],
      ['a', 1],
      ['a', 2],
      ['b', 2],
    ] as const)
      r.delivered('x', { publisherId: p, seq: i });
    const rep = r.report([
      ['a', 'x'],
      ['b', 'x'],
    ]);
    assert.equal(rep.clean, true, rep.summary());
  });

  void it('unexpected: an unpaired publisher, a seq never published, a foreign payload', () => {
    const r = new DeliveryRecorder();
    r.published('a', 0);
    r.published('b', 0);
    r.delivered('x', encodePayload('a', 0));
    r.delivered('x', encodePayload('b', 0));
    r.delivered('x', encodePayload('a', 99));
    r.delivered('x', Buffer.from('not ours'));
    const x = r.report(A_TO_X).subscribers[0]!;
    assert.equal(x.unexpected, 3);
    assert.equal(x.delivered, 4);
    assert.equal(x.lost, 0);
    assert.deepEqual(x.samples.unexpected, ['undecodable', { publisherId: 'a', seq: 99 }, { publisherId: 'b', seq: 0 }]);
  });

  void it('a subscriber that got nothing appears with everything lost; a later ack turns an unacked publish into expected', () => {
    const r = new DeliveryRecorder();
    r.published('a', 0, false);
    assert.equal(r.report(A_TO_X).totals.lost, 0);
    r.published('a', 0, true);
    r.published('a', 0, false); // never downgrades
    const rep = r.report(A_TO_X);
    assert.equal(rep.subscribers[0]?.subscriber, 'x');
    assert.equal(rep.totals.lost, 1);
    assert.equal(rep.published, 1);
  });

  void it('until() resolves when the condition comes true and rejects on timeout; untilComplete() reports', async () => {
    const r = new DeliveryRecorder();
    r.published('a', 0);
    r.published('a', 1);
    const complete = r.untilComplete(A_TO_X, 5000);
    setImmediate(() => {
      r.delivered('x', encodePayload('a', 1));
      setImmediate(() => r.delivered('x', encodePayload('a', 0)));
    });
    const rep = await complete;
    assert.equal(rep.totals.lost, 0);
    assert.equal(rep.totals.reordered, 1);
    await assert.rejects(
      r.until(() => false, 50, 'never'),
      /timed out after 50 ms waiting for never/,
    );
    r.published('a', 2);
    await assert.rejects(r.untilComplete(A_TO_X, 50), /"lost":1/);
  });

  void it('matches a simple model on random delivery traces', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 30 }), fc.array(fc.nat({ max: 29 }), { maxLength: 60 }), (acks, trace) => {
        const r = new DeliveryRecorder();
        acks.forEach((acked, seq) => r.published('p', seq, acked));
        const seqs = trace.filter((s) => s < acks.length);
        for (const seq of seqs) r.delivered('s', { publisherId: 'p', seq });
        const s = r.report([['p', 's']]).subscribers[0]!;
        const distinct = new Set(seqs);
        assert.equal(s.lost, acks.filter((a, seq) => a && !distinct.has(seq)).length);
        assert.equal(s.duplicated, seqs.length - distinct.size);
        let max = -1;
        let reordered = 0;
        const seen = new Set<number>();
        for (const seq of seqs) {
          if (seen.has(seq)) continue;
          seen.add(seq);
          if (seq < max) reordered++;
          else max = seq;
        }
        assert.equal(s.reordered, reordered);
        assert.equal(s.unexpected, 0);
      }),
    );
  });
});
