/**
 * Forwarding a QoS 0 PUBLISH as it arrived: the decoder offers the exact bytes of a packet that
 * came in one chunk, and a message reuses them as its encoding only when they are exactly what
 * the encoder would write for a subscriber of the same version (no DUP [MQTT-3.3.1-2], no
 * RETAIN, no properties, minimal Remaining Length / Property Length [MQTT-1.5.5-1]).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMessage, detach, encodeDelivery, seedEncoding } from '../../../src/core/message.js';
import { Decoder } from '../../../src/protocol/decoder.js';
import { encode } from '../../../src/protocol/encoder.js';
import type { Packet } from '../../../src/protocol/packets.js';

function bytesSeen(chunks: Buffer[], version: 4 | 5): Array<Buffer | undefined> {
  const seen: Array<Buffer | undefined> = [];
  const d = new Decoder<undefined>(
    function (this: undefined, _p: Packet) {
      seen.push(d.packetBytes());
    },
    { protocolVersion: version },
  );
  for (const c of chunks) d.push(c);
  return seen;
}

void describe('raw PUBLISH forwarding', () => {
  const v4 = encode({ type: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false }, 4);
  const v5 = encode({ type: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false }, 5);

  void it('the decoder offers the exact bytes of packets that arrived whole, not of one split across chunks', () => {
    const two = Buffer.concat([v4, v4]);
    const seen = bytesSeen([two, v4.subarray(0, 3), v4.subarray(3)], 4);
    assert.equal(seen.length, 3);
    assert.deepEqual(seen[0], v4);
    assert.deepEqual(seen[1], v4);
    assert.equal(seen[2], undefined, 'split packet: no contiguous bytes');
  });

  void it('a padded Remaining Length (accepted from a 3.1.1 client) is not offered', () => {
    const body = v4.subarray(2);
    const padded = Buffer.concat([Buffer.from([0x30, 0x80 | body.length, 0x00]), body]);
    assert.deepEqual(bytesSeen([padded], 4), [undefined]);
  });

  void it('a message reuses bytes identical to its own encoding, per version', () => {
    for (const [version, raw] of [
      [4, v4],
      [5, v5],
    ] as const) {
      const m = createMessage('a/b', Buffer.from('hello'), 0, false, undefined, 'pub', 0);
      seedEncoding(m, version, raw);
      const out = encodeDelivery(m, version, 0, false, 0, false, undefined, undefined, 0);
      assert.equal(out, raw, `v${version}: the very buffer is reused`);
    }
  });

  void it('[MQTT-3.3.1-2] [MQTT-1.5.5-1] bytes that differ from the encoding are not reused', () => {
    const cases: Array<[string, 4 | 5, Buffer]> = [
      ['DUP set on QoS 0', 4, Buffer.concat([Buffer.from([0x38]), v4.subarray(1)])],
      ['RETAIN set', 4, Buffer.concat([Buffer.from([0x31]), v4.subarray(1)])],
      ['padded Property Length', 5, Buffer.concat([Buffer.from([0x30, v5[1]! + 1]), v5.subarray(2, 7), Buffer.from([0x80, 0x00]), v5.subarray(8)])],
    ];
    for (const [what, version, raw] of cases) {
      const m = createMessage('a/b', Buffer.from('hello'), 0, false, undefined, 'pub', 0);
      seedEncoding(m, version, raw);
      const out = encodeDelivery(m, version, 0, false, 0, false, undefined, undefined, 0);
      assert.notEqual(out, raw, what);
      assert.deepEqual(out, version === 4 ? v4 : v5, `${what}: encoded afresh`);
    }
  });

  void it('a retained or v5 message with properties or an expiry is never seeded', () => {
    const retained = createMessage('a/b', Buffer.from('hello'), 0, true, undefined, 'pub', 0);
    seedEncoding(retained, 4, v4);
    assert.equal(retained.encoded, undefined);
    const withProps = createMessage('a/b', Buffer.from('hello'), 0, false, { contentType: 'x' }, 'pub', 0);
    seedEncoding(withProps, 5, v5);
    assert.equal(withProps.encoded, undefined);
    const expiring = createMessage('a/b', Buffer.from('hello'), 0, false, { messageExpiryInterval: 10 }, 'pub', 0);
    seedEncoding(expiring, 5, v5);
    assert.equal(expiring.encoded, undefined);
  });
});

void describe('encodings kept on a message', () => {
  void it('the first encoding is kept in a field and any other by its key; each is made once', () => {
    const m = createMessage('a/b', Buffer.from('hello'), 1, false, undefined, 'pub', 0);
    const a = encodeDelivery(m, 4, 0, false, 0, false, undefined, undefined, 0);
    assert.equal(m.encodedKey, 6, 'v3.1.1, QoS 0, no retain: key (4 - 3) * 6 + 0');
    assert.equal(m.moreEncoded, undefined, 'one encoding needs no array');
    const b = encodeDelivery(m, 5, 0, true, 0, false, undefined, undefined, 0);
    assert.equal(m.moreEncoded?.[13], b, 'v5, QoS 0, retain: key 12 + 1');
    assert.equal(encodeDelivery(m, 4, 0, false, 0, false, undefined, undefined, 0), a, 'cached');
    assert.equal(encodeDelivery(m, 5, 0, true, 0, false, undefined, undefined, 0), b, 'cached');
    assert.deepEqual(a, encode({ type: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false }, 4));
    assert.deepEqual(b, encode({ type: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, retain: true, dup: false }, 5));
  });
});

void describe('detach: a kept message holds only its own bytes', () => {
  /** `bytes` at offset 100 of a 64 KiB buffer, as a decoded payload lies in a read slab. */
  function inSlab(bytes: Buffer): Buffer {
    const slab = Buffer.alloc(64 * 1024, 0xee);
    bytes.copy(slab, 100);
    return slab.subarray(100, 100 + bytes.length);
  }

  void it('copies a payload and a correlation data that are small views of large buffers, and drops encodings that are', () => {
    const raw = inSlab(encode({ type: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false }, 4));
    const m = createMessage('a/b', raw.subarray(raw.length - 5), 0, false, { correlationData: inSlab(Buffer.from('corr')) }, 'pub', 0);
    m.encoded = raw;
    m.encodedKey = 6;
    const kept = encodeDelivery(m, 4, 1, false, 7, false, undefined, undefined, 0);
    const moreEncoded = m.moreEncoded;
    detach(m);
    assert.equal(m.payload.toString(), 'hello');
    assert.equal(m.payload.buffer.byteLength, 5, 'a buffer of its own');
    assert.equal(m.properties?.correlationData?.toString(), 'corr');
    assert.equal(m.properties?.correlationData?.buffer.byteLength, 4);
    assert.equal(m.encoded, undefined, 'the raw bytes (a view into the slab) are dropped');
    assert.equal(m.encodedKey, -1);
    assert.equal(m.moreEncoded, moreEncoded);
    assert.notEqual(kept.buffer.byteLength, 64 * 1024, 'an encoding the encoder made is its own');
    assert.deepEqual(
      encodeDelivery(m, 4, 0, false, 0, false, undefined, undefined, 0),
      encode({ type: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 0, retain: false, dup: false }, 4),
      'made again from the copied payload',
    );
  });

  void it('leaves alone buffers that are their own or most of theirs', () => {
    const own = Buffer.alloc(100, 0x78);
    const big = Buffer.alloc(40 * 1024, 1);
    const large = big.subarray(1000, 39 * 1024);
    const a = createMessage('t', own, 0, false, undefined, 'pub', 0);
    const b = createMessage('t', large, 0, false, undefined, 'pub', 0);
    detach(a);
    detach(b);
    assert.equal(a.payload, own);
    assert.equal(b.payload, large, 'a view of most of its buffer is not copied');
  });
});
