/**
 * MQTT 5.0 §4.12 Enhanced authentication: a challenge/response exchange through AUTH packets
 * driven by a typed hook (`enhancedAuth`), re-authentication with AUTH 0x19, and the errors.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';
import type { EnhancedAuthenticator } from '../../src/security/types.js';
import { setPassword } from '../../src/security/passwords.js';

const SECRET = 'shared-secret';
const mac = (challenge: Buffer): Buffer => createHmac('sha256', SECRET).update(challenge).digest();

/** A toy challenge/response method: the server sends a nonce, the client answers HMAC(secret, nonce). */
const challengeResponse: EnhancedAuthenticator = (req) => {
  let nonce: Buffer | undefined;
  return {
    async step(data) {
      await new Promise((r) => setImmediate(r)); // an asynchronous hook
      if (nonce === undefined) {
        nonce = randomBytes(16);
        return { continue: true, data: nonce };
      }
      const ok = data !== undefined && data.equals(mac(nonce));
      return ok
        ? { continue: false, result: { ok: true, username: `hmac-${req.clientId}` }, data: Buffer.from(req.reauthenticate ? 'again' : 'welcome') }
        : { continue: false, result: { ok: false, reasonCode: 0x87, reason: 'wrong answer' } };
    },
  };
};

void describe('§4.12 enhanced authentication (MQTT 5.0)', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ enhancedAuth: { 'HMAC-CHALLENGE': challengeResponse } });
  });
  after(() => b.close());

  async function start(clientId: string): Promise<{ client: RawClient; nonce: Buffer }> {
    const client = await RawClient.open(b.port, 5);
    client.send({
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepAlive: 0,
      clientId,
      properties: { authenticationMethod: 'HMAC-CHALLENGE' },
    });
    const auth = await client.next('auth');
    assert.equal(auth.reasonCode, 0x18);
    assert.equal(auth.properties?.authenticationMethod, 'HMAC-CHALLENGE');
    return { client, nonce: auth.properties!.authenticationData! };
  }

  void it("[MQTT-4.12.0-2] [MQTT-4.12.0-5] CONNECT → AUTH 0x18 (challenge) → AUTH 0x18 (response) → CONNACK 0x00 with the same method and the server's data", async () => {
    const { client, nonce } = await start('ea-ok');
    client.send({ type: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'HMAC-CHALLENGE', authenticationData: mac(nonce) } });
    const connack = await client.next('connack');
    assert.equal(connack.reasonCode, 0);
    assert.equal(connack.properties?.authenticationMethod, 'HMAC-CHALLENGE');
    assert.equal(connack.properties?.authenticationData?.toString(), 'welcome');
    await client.disconnect();
  });

  void it('§4.12 a wrong answer ends the exchange with CONNACK 0x87 and the connection closes', async () => {
    const { client } = await start('ea-wrong');
    client.send({ type: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'HMAC-CHALLENGE', authenticationData: Buffer.from('nope') } });
    assert.equal((await client.next('connack')).reasonCode, 0x87);
    await client.closed();
  });

  void it('[MQTT-4.12.0-1] an unsupported method gets CONNACK 0x8C and the connection closes', async () => {
    const { client, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'ea-bad', properties: { authenticationMethod: 'NOPE' } });
    assert.equal(connack.reasonCode, 0x8c);
    await client.closed();
  });

  void it('[MQTT-4.12.0-5] an AUTH with another method during the exchange is a Protocol Error', async () => {
    const { client } = await start('ea-other');
    client.send({ type: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'OTHER', authenticationData: Buffer.from('x') } });
    await client.closed();
  });

  void it('[MQTT-4.12.1-1] re-authentication: AUTH 0x19 → AUTH 0x18 → AUTH 0x18 → AUTH 0x00; a failed one ends with DISCONNECT [MQTT-4.12.1-2]', async () => {
    const { client, nonce } = await start('ea-re');
    client.send({ type: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'HMAC-CHALLENGE', authenticationData: mac(nonce) } });
    assert.equal((await client.next('connack')).reasonCode, 0);
    client.send({ type: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'HMAC-CHALLENGE' } });
    const challenge = await client.next('auth');
    assert.equal(challenge.reasonCode, 0x18);
    client.send({
      type: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'HMAC-CHALLENGE', authenticationData: mac(challenge.properties!.authenticationData!) },
    });
    const done = await client.next('auth');
    assert.equal(done.reasonCode, 0);
    assert.equal(done.properties?.authenticationData?.toString(), 'again');
    // Still connected; now fail a second re-authentication.
    client.send({ type: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'HMAC-CHALLENGE' } });
    await client.next('auth');
    client.send({ type: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'HMAC-CHALLENGE', authenticationData: Buffer.from('bad') } });
    assert.equal((await client.next('disconnect')).reasonCode, 0x87);
    await client.closed();
  });

  void it('[MQTT-4.12.0-7] AUTH from a client that connected without a method is a Protocol Error: DISCONNECT 0x82', async () => {
    const { client } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'ea-none' });
    client.send({ type: 'auth', reasonCode: 0x19, properties: { authenticationMethod: 'HMAC-CHALLENGE' } });
    assert.equal((await client.next('disconnect')).reasonCode, 0x82);
    await client.closed();
  });

  void it('MQTT.js completes the exchange through its handleAuth hook', async () => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${b.port}`, {
      protocolVersion: 5,
      clientId: 'ea-mqttjs',
      reconnectPeriod: 0,
      properties: { authenticationMethod: 'HMAC-CHALLENGE' },
    });
    client.handleAuth = (packet, callback) => {
      const nonce = packet.properties?.authenticationData as Buffer;
      callback(undefined, { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'HMAC-CHALLENGE', authenticationData: mac(nonce) } });
    };
    const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    assert.equal(connack.properties?.authenticationMethod, 'HMAC-CHALLENGE');
    await client.endAsync();
  });
});

/** The client side of SCRAM-SHA-256 (RFC 5802), written here from the RFC to drive the broker. */
function scramClient(user: string, password: string): { first: Buffer; final(serverFirst: Buffer): Buffer; verify(serverFinal: Buffer): boolean } {
  const cnonce = randomBytes(18).toString('base64');
  const bare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${cnonce}`;
  let expected = '';
  return {
    first: Buffer.from(`n,,${bare}`),
    final(serverFirstBuf) {
      const serverFirst = serverFirstBuf.toString();
      const attrs = new Map(serverFirst.split(',').map((p) => [p[0]!, p.slice(2)] as const));
      const nonce = attrs.get('r')!;
      assert.ok(nonce.startsWith(cnonce), 'the server nonce extends ours');
      const salted = pbkdf2Sync(password, Buffer.from(attrs.get('s')!, 'base64'), Number(attrs.get('i')), 32, 'sha256');
      const clientKey = createHmac('sha256', salted).update('Client Key').digest();
      const storedKey = createHash('sha256').update(clientKey).digest();
      const withoutProof = `c=${Buffer.from('n,,').toString('base64')},r=${nonce}`;
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const signature = createHmac('sha256', storedKey).update(authMessage).digest();
      const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
      const serverKey = createHmac('sha256', salted).update('Server Key').digest();
      expected = `v=${createHmac('sha256', serverKey).update(authMessage).digest('base64')}`;
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
    },
    verify(serverFinal) {
      return serverFinal.toString() === expected;
    },
  };
}

void describe('§4.12 built-in SCRAM-SHA-256, backed by the password file (MQTT 5.0)', () => {
  let b: TestBroker;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'courier-scram-'));
    const file = path.join(dir, 'users.pw');
    await setPassword(file, 'alice', 'wonderland');
    b = await startBroker({ security: { passwordFile: file } });
  });
  after(async () => {
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function scram(user: string, password: string): Promise<{ client: RawClient; code: number; verified: boolean }> {
    const s = scramClient(user, password);
    const client = await RawClient.open(b.port, 5);
    client.send({
      type: 'connect',
      protocolName: 'MQTT',
      protocolVersion: 5,
      clean: true,
      keepAlive: 0,
      clientId: `scram-${user}`,
      properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: s.first },
    });
    const challenge = await client.next('auth');
    assert.equal(challenge.reasonCode, 0x18);
    client.send({
      type: 'auth',
      reasonCode: 0x18,
      properties: { authenticationMethod: 'SCRAM-SHA-256', authenticationData: s.final(challenge.properties!.authenticationData!) },
    });
    const connack = await client.next('connack');
    const data = connack.properties?.authenticationData;
    return { client, code: connack.reasonCode, verified: data !== undefined && s.verify(data) };
  }

  void it('[MQTT-4.12.0-2] the right password completes the exchange; CONNACK carries the server signature, which the client verifies', async () => {
    const { client, code, verified } = await scram('alice', 'wonderland');
    assert.equal(code, 0);
    assert.ok(verified, 'server proved it knows the credential');
    await client.disconnect();
  });

  void it('§4.12 a wrong password and an unknown user both end with CONNACK 0x87, after the same exchange', async () => {
    for (const [user, pw] of [
      ['alice', 'nope'],
      ['mallory', 'x'],
    ] as const) {
      const { client, code } = await scram(user, pw);
      assert.equal(code, 0x87);
      await client.closed();
    }
  });
});
