/**
 * Malformed and forbidden packets: the corpus in test/fixtures/malformed/corpus.json, each entry
 * a packet as hex with the protocol level the decoder is told (null = server side, before the
 * first CONNECT), the MqttError class and reason code expected (0x81 Malformed Packet, 0x82
 * Protocol Error, 0x84 Unsupported Protocol Version, 0x95 Packet too large), the normative
 * statement the error must cite (null where the spec numbers none) and a piece of the message
 * that names the fault, so an entry cannot pass by failing for some other reason.
 *
 * Every entry is decoded twice, pushed whole (through `decodeAll`, which also rejects a stream
 * ending mid-packet) and one byte at a time; both must fail the same way, after the same
 * packets.
 */
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Decoder, MalformedPacketError, MqttError, PacketTooLargeError, ProtocolError, UnsupportedProtocolVersionError } from '../../../src/protocol/index.js';
import type { Packet, ProtocolVersion } from '../../../src/protocol/index.js';
import { decodeAll } from '../../../src/protocol/decoder.js';

interface Entry {
  name: string;
  version: ProtocolVersion | null;
  hex: string;
  error: string;
  reasonCode: string;
  statement: string | null;
  message: string;
  decodedFirst?: number;
  maxPacketSize?: number;
}

const CORPUS_URL = new URL('../../fixtures/malformed/corpus.json', import.meta.url);
const corpus = JSON.parse(readFileSync(CORPUS_URL, 'utf8')) as { entries: Entry[] };

const CLASSES: Record<string, new (...args: never[]) => MqttError> = {
  MalformedPacketError,
  ProtocolError,
  PacketTooLargeError,
  UnsupportedProtocolVersionError,
};

/** The reason code each class must carry (MQTT 5.0 §2.4). */
const CLASS_CODES: Record<string, number> = {
  MalformedPacketError: 0x81,
  ProtocolError: 0x82,
  UnsupportedProtocolVersionError: 0x84,
  PacketTooLargeError: 0x95,
};

/** A well-formed statement id; the 3.1.1 spec itself prints one id as "MQTT-3-8.3-4", kept verbatim. */
const STATEMENT = /^\[MQTT-\d+(\.\d+)+-\d+\]$|^\[MQTT-3-8\.3-4\]$/;

function bytesOf(e: Entry): Buffer {
  return Buffer.from(e.hex.replace(/\s+/g, ''), 'hex');
}

function optionsOf(e: Entry): { protocolVersion?: ProtocolVersion; maxPacketSize?: number } {
  const o: { protocolVersion?: ProtocolVersion; maxPacketSize?: number } = {};
  if (e.version !== null) o.protocolVersion = e.version;
  if (e.maxPacketSize !== undefined) o.maxPacketSize = e.maxPacketSize;
  return o;
}

interface Outcome {
  error: unknown;
  decoded: Packet[];
  /** True when no error was thrown but the stream ended mid-packet. */
  pending: boolean;
}

/** Whole input through decodeAll (which throws for a stream ending mid-packet). */
function decodeWhole(e: Entry): Outcome {
  const decoded: Packet[] = [];
  const opts = optionsOf(e);
  try {
    // decodeAll returns only on success; re-decode with a callback to see what came before an error.
    decodeAll(bytesOf(e), opts);
  } catch (error) {
    const d = new Decoder((p) => decoded.push(p), opts);
    try {
      d.push(bytesOf(e));
    } catch {
      // the same error; `decoded` now holds what preceded it
    }
    return { error, decoded, pending: false };
  }
  return { error: undefined, decoded, pending: false };
}

/** One byte per push; reports an error, or that the stream ended mid-packet. */
function decodeBytewise(e: Entry): Outcome {
  const decoded: Packet[] = [];
  const d = new Decoder((p) => decoded.push(p), optionsOf(e));
  const bytes = bytesOf(e);
  try {
    for (let i = 0; i < bytes.length; i++) d.push(bytes.subarray(i, i + 1));
  } catch (error) {
    return { error, decoded, pending: false };
  }
  return { error: undefined, decoded, pending: d.pending };
}

function checkError(e: Entry, err: unknown, how: string): void {
  assert.ok(err instanceof MqttError, `${how}: expected an MqttError, got ${String(err)}`);
  const cls = CLASSES[e.error];
  assert.ok(cls !== undefined, `unknown error class ${e.error} in the corpus`);
  assert.ok(err instanceof cls, `${how}: expected ${e.error}, got ${err.name}: ${err.message}`);
  assert.equal(`0x${err.reasonCode.toString(16)}`, e.reasonCode, `${how}: reason code (${err.message})`);
  assert.equal(err.statement ?? null, e.statement, `${how}: statement (${err.message})`);
  assert.ok(err.message.includes(e.message), `${how}: message ${JSON.stringify(err.message)} should name ${JSON.stringify(e.message)}`);
  if (e.statement !== null) assert.ok(err.message.endsWith(e.statement), `${how}: the message cites the statement`);
}

void describe('malformed packet corpus (test/fixtures/malformed/corpus.json)', () => {
  void it('has at least 40 entries with unique names, valid fields, and the reason code each class implies', () => {
    const entries = corpus.entries;
    assert.ok(entries.length >= 40, `only ${entries.length} entries`);
    assert.equal(new Set(entries.map((e) => e.name)).size, entries.length, 'names are unique');
    for (const e of entries) {
      assert.ok(e.version === null || e.version === 3 || e.version === 4 || e.version === 5, `${e.name}: version`);
      assert.match(e.hex, /^[0-9a-f]{2}( [0-9a-f]{2})*$/, `${e.name}: hex`);
      assert.ok(CLASSES[e.error] !== undefined, `${e.name}: error class`);
      assert.equal(e.reasonCode, `0x${CLASS_CODES[e.error]!.toString(16)}`, `${e.name}: reason code of ${e.error}`);
      if (e.statement !== null) assert.match(e.statement, STATEMENT, `${e.name}: statement id`);
      assert.ok(e.message.length > 0, `${e.name}: message`);
    }
  });

  void it('covers all four outcomes and both protocol versions and the server side', () => {
    const classes = new Set(corpus.entries.map((e) => e.error));
    assert.deepEqual([...classes].sort(), Object.keys(CLASSES).sort());
    const versions = new Set(corpus.entries.map((e) => e.version));
    for (const v of [null, 4, 5]) assert.ok(versions.has(v as ProtocolVersion | null), `version ${String(v)}`);
  });

  for (const e of corpus.entries) {
    const title = `${e.name} (${e.version === null ? 'server side' : `v${e.version}`}: ${e.hex}) → ${e.error} ${e.reasonCode}${e.statement ? ` ${e.statement}` : ''}`;
    void it(title, () => {
      const whole = decodeWhole(e);
      checkError(e, whole.error, 'pushed whole');
      assert.equal(whole.decoded.length, e.decodedFirst ?? 0, 'packets decoded before the error (pushed whole)');

      const bytewise = decodeBytewise(e);
      if (e.message.includes('ends in the middle of a packet')) {
        // Only the end of input makes this an error: pushed byte by byte the decoder simply waits.
        assert.equal(bytewise.error, undefined, `byte by byte: no error, got ${String(bytewise.error)}`);
        assert.equal(bytewise.pending, true, 'byte by byte: the decoder holds an incomplete packet');
      } else {
        checkError(e, bytewise.error, 'byte by byte');
      }
      assert.equal(bytewise.decoded.length, e.decodedFirst ?? 0, 'packets decoded before the error (byte by byte)');
    });
  }
});

void describe('malformed input: decoder behaviour around the error', () => {
  void it('after an error the decoder is dead: every further push throws the same error, even for valid bytes', () => {
    const d = new Decoder(() => assert.fail('no packet expected'), { protocolVersion: 4 });
    let first: unknown;
    try {
      d.push(Buffer.from('36050001610001', 'hex'));
    } catch (err) {
      first = err;
    }
    assert.ok(first instanceof MalformedPacketError);
    assert.throws(
      () => d.push(Buffer.from([0xc0, 0x00])),
      (err) => err === first,
    );
  });

  void it('a packet of exactly maxPacketSize bytes decodes; one byte more is PacketTooLargeError 0x95', () => {
    const bytes = Buffer.from('3009000161007878787878', 'hex'); // 11 bytes, v5
    const got: Packet[] = [];
    new Decoder((p) => got.push(p), { protocolVersion: 5, maxPacketSize: 11 }).push(bytes);
    assert.equal(got.length, 1);
    assert.throws(() => new Decoder(() => undefined, { protocolVersion: 5, maxPacketSize: 10 }).push(bytes), PacketTooLargeError);
  });

  void it('[MQTT-1.5.5-1] applies to 5.0 only: the non-minimal Remaining Length rejected in v5 decodes in v3.1.1', () => {
    const bytes = Buffer.from([0xc0, 0x80, 0x00]);
    assert.deepEqual(decodeAll(bytes, { protocolVersion: 4 }), [{ type: 'pingreq' }]);
    assert.throws(() => decodeAll(bytes, { protocolVersion: 5 }), MalformedPacketError);
  });

  void it('a UTF-8 statement follows the version the CONNECT announces: 3.1.1 numbering for a level 4 CONNECT, 5.0 for level 5', () => {
    // Will topic with U+0000, after the protocol level has been read.
    const v4 = Buffer.from('10 13 00 04 4d 51 54 54 04 06 00 3c 00 01 63 00 02 61 00 00 00'.replace(/ /g, ''), 'hex');
    const v5 = Buffer.from('10 15 00 04 4d 51 54 54 05 06 00 3c 00 00 01 63 00 00 02 61 00 00 00'.replace(/ /g, ''), 'hex');
    assert.throws(
      () => decodeAll(v4),
      (err) => err instanceof MalformedPacketError && err.statement === '[MQTT-1.5.3-2]',
    );
    assert.throws(
      () => decodeAll(v5),
      (err) => err instanceof MalformedPacketError && err.statement === '[MQTT-1.5.4-2]',
    );
  });
});
