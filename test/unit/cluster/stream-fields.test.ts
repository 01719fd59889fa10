/**
 * src/cluster/stream-fields.ts, pure: XREAD replies as [key, entries] pairs (nested, flattened,
 * and a real redis-server's reply read the way the tail reads it), fields by name, hand-over
 * entries, barrier marks, stream ids compared.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { compareIds, field, handedOverEntries, markOf, streamsOf, type Entry } from '../../../src/cluster/stream-fields.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../../helpers/redis-server.js';

const b = (...xs: string[]): Buffer[] => xs.map((x) => Buffer.from(x));
const strs = (xs: Buffer[]): string[] => xs.map((x) => x.toString());

void describe('streamsOf: an XREAD reply as [key, entries] pairs', () => {
  void it('is null for no reply, an empty reply or something that is not an array', () => {
    assert.equal(streamsOf(null), null);
    assert.equal(streamsOf(undefined), null);
    assert.equal(streamsOf([]), null);
    assert.equal(streamsOf('OK'), null);
  });

  void it('returns nested pairs as they are', () => {
    const e1: Entry = [Buffer.from('1-0'), b('f', '2')];
    const reply = [[Buffer.from('k1'), [e1]]];
    assert.equal(streamsOf(reply), reply);
  });

  void it('pairs a flattened reply (key, entries, key, entries) and drops a key without entries', () => {
    const e1: Entry = [Buffer.from('1-0'), b('f', '2')];
    const e2: Entry = [Buffer.from('2-0'), b('k', 'c')];
    const out = streamsOf([Buffer.from('k1'), [e1], Buffer.from('k2'), [e2], Buffer.from('k3')]);
    assert.ok(out !== null);
    assert.deepEqual(
      out.map(([k, es]) => [k.toString(), es.map(([id]) => id.toString())]),
      [
        ['k1', ['1-0']],
        ['k2', ['2-0']],
      ],
    );
  });
});

void describe('field: a stream entry field by name', () => {
  void it('reads names at even positions only, so a value equal to a name is not taken for it', () => {
    const fields = b('f', 'b', 'b', 'batch', 'd', '1,2');
    assert.equal(field(fields, 'f')?.toString(), 'b');
    assert.equal(field(fields, 'b')?.toString(), 'batch');
    assert.equal(field(fields, 'd')?.toString(), '1,2');
  });

  void it('is undefined for a missing name and for a name without a value', () => {
    assert.equal(field(b('f', '2'), 'b'), undefined);
    assert.equal(field(b('f', '2', 'b'), 'b'), undefined);
    assert.equal(field([], 'f'), undefined);
  });

  void it('gives the first of a repeated name', () => {
    assert.equal(field(b('e', 'one', 'e', 'two'), 'e')?.toString(), 'one');
  });
});

void describe('handedOverEntries: the outbound entries of an `r` entry', () => {
  void it('collects every `e` value after the client id, in order', () => {
    assert.deepEqual(strs(handedOverEntries(b('r', 'cid', 'e', 'x1', 'e', 'x2', 'e', 'x3'))), ['x1', 'x2', 'x3']);
  });

  void it('does not take the client id for a name, skips other names and a trailing name without value', () => {
    assert.deepEqual(strs(handedOverEntries(b('r', 'e', 'e', 'x1', 'z', 'no', 'e', 'x2', 'e'))), ['x1', 'x2']);
    assert.deepEqual(handedOverEntries(b('r', 'cid')), []);
  });
});

void describe('markOf: the node and sequence number of a barrier or its answer', () => {
  void it('reads n and s', () => {
    assert.deepEqual(markOf(b('b', 'cid', 'n', '3', 's', '17')), { from: 3, seq: 17 });
    assert.deepEqual(markOf(b('a', 'cid', 's', '0', 'n', '12')), { from: 12, seq: 0 });
  });

  void it('is undefined when either is missing or not an integer', () => {
    assert.equal(markOf(b('b', 'cid', 'n', '3')), undefined);
    assert.equal(markOf(b('b', 'cid', 's', '3')), undefined);
    assert.equal(markOf(b('b', 'cid', 'n', 'x', 's', '1')), undefined);
    assert.equal(markOf(b('b', 'cid', 'n', '1.5', 's', '1')), undefined);
  });
});

void describe('compareIds: stream ids in stream order', () => {
  void it('compares milliseconds first, then the sequence, as numbers (not as strings)', () => {
    assert.ok(compareIds('2-0', '10-0') < 0);
    assert.ok(compareIds('1-2', '1-10') < 0);
    assert.ok(compareIds('2-0', '1-99') > 0);
    assert.equal(compareIds('5-3', '5-3'), 0);
    assert.equal(compareIds('0-0', '0-0'), 0);
  });

  void it('takes an id without a sequence as sequence 0', () => {
    assert.equal(compareIds('5', '5-0'), 0);
    assert.ok(compareIds('5', '5-1') < 0);
    assert.ok(compareIds('5-1', '5') > 0);
  });
});

void describe('streamsOf on a real XREAD reply', redisServerGate(), () => {
  let server: RedisServer;
  let redis: Redis;

  before(async () => {
    server = await startRedisServer();
    redis = server.client();
  });

  after(async () => {
    await server?.close();
  });

  void it('pairs each stream with its entries, ids and fields as Buffers', async () => {
    const id1 = await redis.xadd('s:a', '*', 'f', '2', 'd', '1,2');
    const id2 = await redis.xadd('s:b', '*', 'k', 'cid', 't', 'tok');
    const id3 = await redis.xadd('s:a', '*', 'r', 'cid', 'e', 'x');
    const reply = streamsOf(await redis.callBuffer('XREAD', 'COUNT', '10', 'STREAMS', 's:a', 's:b', '0-0', '0-0'));
    assert.ok(reply !== null);
    const read = reply.map(([key, entries]) => [key.toString(), entries.map(([id, fields]) => [id.toString(), strs(fields)])]);
    assert.deepEqual(read, [
      [
        's:a',
        [
          [id1, ['f', '2', 'd', '1,2']],
          [id3, ['r', 'cid', 'e', 'x']],
        ],
      ],
      ['s:b', [[id2, ['k', 'cid', 't', 'tok']]]],
    ]);
    assert.ok(compareIds(id1!, id3!) < 0);
    assert.equal(streamsOf(await redis.callBuffer('XREAD', 'STREAMS', 's:a', id3!)), null);
  });
});
