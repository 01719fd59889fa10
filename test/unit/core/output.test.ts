/**
 * A connection's Output: everything written in one event-loop turn leaves at the end of the
 * turn, in order; packets that lie next to each other in memory leave as one buffer (no copy),
 * so a turn of forwarded PUBLISH frames from one received chunk is one plain write.
 */
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { Output, type OutputOwner } from '../../../src/core/output.js';

interface Recorded {
  stream: Duplex;
  /** The Output under test, writing to `stream`. */
  out: Output;
  /** One entry per call the stream's implementation got: the chunks it was handed. */
  calls: Buffer[][];
}

const owner: OutputOwner = {
  commitPoint: () => null,
  storeFailed: () => assert.fail('no store here'),
};

function recorder(): Recorded {
  const calls: Buffer[][] = [];
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      calls.push([chunk]);
      cb();
    },
    writev(chunks, cb) {
      calls.push(chunks.map((c) => c.chunk as Buffer));
      cb();
    },
  });
  return { stream, out: new Output(stream, owner), calls };
}

/** Every chunk the stream got, in order, as text. */
const sent = (calls: Buffer[][]): string[] => calls.flat().map((b) => b.toString());

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

void describe('Output', () => {
  void it('writes nothing before the end of the turn, then neighbours in memory as one buffer of the same memory', async () => {
    const { out, calls } = recorder();
    const chunk = Buffer.from('aaabbbbcc');
    out.write(chunk.subarray(0, 3));
    out.write(chunk.subarray(3, 7));
    out.write(chunk.subarray(7));
    assert.equal(calls.length, 0);
    assert.equal(out.buffered, 9, 'bytes waiting for the turn count as buffered (backpressure)');
    await turn();
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.length, 1);
    const sent = calls[0]![0]!;
    assert.equal(sent.toString(), 'aaabbbbcc');
    assert.equal(sent.buffer, chunk.buffer, 'not copied');
    assert.equal(sent.byteOffset, chunk.byteOffset);
  });

  void it('separate buffers leave in order in one writev; runs of neighbours inside it are joined', async () => {
    const { out, calls } = recorder();
    const one = Buffer.from('1122');
    const two = Buffer.from('3344');
    out.write(one.subarray(0, 2));
    out.write(one.subarray(2));
    out.write(two.subarray(0, 2));
    out.write(Buffer.from('xx'));
    out.write(two.subarray(2)); // next to "33" in memory, but after "xx" in order: not joined
    await turn();
    assert.equal(calls.length, 1);
    assert.deepEqual(
      calls[0]!.map((b) => b.toString()),
      ['1122', '33', 'xx', '44'],
    );
  });

  void it('two slices of one buffer that are not adjacent stay apart', async () => {
    const { out, calls } = recorder();
    const b = Buffer.from('abcdef');
    out.write(b.subarray(0, 2));
    out.write(b.subarray(3, 5));
    await turn();
    assert.deepEqual(sent(calls), ['ab', 'de']);
  });

  void it('flush() hands the turn to the stream at once, so ending the stream after it loses nothing', () => {
    const { stream, out, calls } = recorder();
    out.write(Buffer.from('ack'));
    out.write(Buffer.from('bye'));
    out.flush();
    stream.end();
    assert.deepEqual(sent(calls), ['ack', 'bye']);
    out.write(Buffer.from('late'));
    out.flush();
    assert.equal(calls.flat().length, 2, 'nothing is written after the end');
  });

  void it('each turn is written separately', async () => {
    const { out, calls } = recorder();
    const b = Buffer.from('abcd');
    out.write(b.subarray(0, 2));
    await turn();
    out.write(b.subarray(2));
    await turn();
    assert.deepEqual(
      calls.map((c) => c.map((x) => x.toString())),
      [['ab'], ['cd']],
    );
  });
});

void describe('Output, a large turn', () => {
  void it('sends every 64 KiB while the turn goes on, in order, and the rest at its end', async () => {
    const { out, calls } = recorder();
    // 2,000 separate 100-byte packets (200 kB), none next to another in memory.
    const packets = Array.from({ length: 2000 }, (_, i) => Buffer.alloc(100, i % 251));
    for (const p of packets) out.write(p);
    const duringTurn = calls.length;
    assert.ok(duringTurn >= 2, `the peer gets bytes before the turn ends (${duringTurn} writes so far)`);
    for (const c of calls) assert.ok(c.reduce((n, b) => n + b.length, 0) <= 64 * 1024 + 100, 'no write much above 64 KiB');
    await turn();
    assert.deepEqual(Buffer.concat(calls.flat()), Buffer.concat(packets));
  });
});
