/**
 * Bounded fuzzing of the decoder, part of `npm test`: the same harness as `npm run fuzz`
 * (scripts/fuzz.ts), with a fixed seed and a few tens of thousands of inputs, so it runs in
 * seconds. See scripts/fuzz.ts for what each input is and what is asserted about it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder, MqttError, PacketTooLargeError, encode } from '../../../src/protocol/index.js';
import type { Packet } from '../../../src/protocol/index.js';
import { buildCorpus, formatReport, makeInput, runFuzz, runOne } from '../../../scripts/fuzz.js';

const SEED = 0x5eed_c0de;
const ITERATIONS = 30_000;

void describe('decoder fuzzing (bounded)', () => {
  void it(
    `${ITERATIONS} random and mutated inputs: only MqttError is thrown, each input is fast, the decoder stays within maxPacketSize, and whatever decodes re-encodes and re-decodes identically`,
    { timeout: 120_000 },
    (t) => {
      const report = runFuzz({ iterations: ITERATIONS, seed: SEED, corpusSize: 600, maxInputMs: 500 });
      t.diagnostic(formatReport(report));
      assert.deepEqual(
        report.violations.map((v) => `${v.kind}: ${v.message}`),
        [],
      );
      assert.equal(report.iterations, ITERATIONS);
      // The run must reach both sides of the decoder, or it proves little.
      assert.ok((report.outcomes.decoded ?? 0) > ITERATIONS / 10, 'a good share of inputs decode');
      assert.ok((report.outcomes.COURIER_MALFORMED_PACKET ?? 0) > ITERATIONS / 10, 'a good share of inputs are malformed');
      assert.ok((report.outcomes.COURIER_PACKET_TOO_LARGE ?? 0) > 0, 'small maxPacketSize limits are hit');
      assert.ok((report.outcomes.incomplete ?? 0) > 0, 'truncated inputs wait for more bytes');
    },
  );

  void it('inputs are a pure function of (seed, iteration), so a printed iteration reproduces', () => {
    const corpus = buildCorpus(7, 50);
    for (const i of [0, 1, 99, 12345]) {
      const a = makeInput(corpus, 7, i);
      const b = makeInput(buildCorpus(7, 50), 7, i);
      assert.deepEqual(a, b);
    }
  });

  void it('the harness reports a violation when a valid packet is not decoded (the check can fail)', () => {
    const corpus = buildCorpus(3, 50);
    let input = makeInput(corpus, 3, 0);
    for (let i = 1; input.kind !== 'valid'; i++) input = makeInput(corpus, 3, i);
    const wrong = { ...input, expected: [{ type: 'pingreq' } as Packet, ...input.expected!] };
    assert.equal(runOne(wrong, 500).violation?.kind, 'valid-rejected');
  });
});

void describe('decoder memory bounds', () => {
  void it('a Remaining Length above maxPacketSize is rejected from the header alone, before any body byte is buffered', () => {
    const decoder = new Decoder(() => assert.fail('no packet expected'), { protocolVersion: 5, maxPacketSize: 1024 });
    // PUBLISH claiming 268,435,455 bytes.
    assert.throws(() => decoder.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f])), PacketTooLargeError);
  });

  void it('a body streamed towards a too-large packet is never accumulated: the decoder throws before holding more than maxPacketSize', () => {
    const limit = 4096;
    const decoder = new Decoder(() => assert.fail('no packet expected'), { protocolVersion: 4, maxPacketSize: limit });
    const header = Buffer.from([0x30, 0x80, 0x80, 0x04]); // Remaining Length 65536
    let thrown: unknown;
    try {
      decoder.push(header);
      const chunk = Buffer.alloc(512, 0x41);
      for (let i = 0; i < 256; i++) decoder.push(chunk);
    } catch (err) {
      thrown = err;
    }
    assert.ok(thrown instanceof PacketTooLargeError, `expected PacketTooLargeError, got ${String(thrown)}`);
  });

  void it('a header claiming the maximum Remaining Length does not make the decoder allocate it up front', () => {
    const before = process.memoryUsage().arrayBuffers;
    const decoders: Decoder[] = [];
    // 64 decoders each told a 256 MiB packet is coming: up-front allocation would need 16 GiB.
    for (let i = 0; i < 64; i++) {
      const d = new Decoder(() => assert.fail('no packet expected'), { protocolVersion: 4 });
      d.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01, 0x74]));
      decoders.push(d);
    }
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 64 * 1024 * 1024, `array buffers grew by ${grown} bytes`);
    assert.equal(decoders.length, 64);
  });

  void it('valid packets split at every byte boundary decode, and a thrown error is always an MqttError', () => {
    const packets: Packet[] = [
      { type: 'connect', protocolName: 'MQTT', protocolVersion: 5, clean: true, keepAlive: 10, clientId: 'x', properties: { userProperties: [['k', 'v']] } },
      {
        type: 'publish',
        topic: 'a/b',
        payload: Buffer.from('hello'),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 3,
        properties: { contentType: 'text/plain' },
      },
    ];
    const bytes = Buffer.concat(packets.map((p) => encode(p, 5)));
    for (let cut = 0; cut <= bytes.length; cut++) {
      const got: Packet[] = [];
      const d = new Decoder((p) => got.push(p));
      try {
        d.push(bytes.subarray(0, cut));
        d.push(bytes.subarray(cut));
      } catch (err) {
        assert.ok(err instanceof MqttError, String(err));
        throw err;
      }
      assert.deepEqual(
        got.map((p) => p.type),
        ['connect', 'publish'],
      );
    }
  });
});
