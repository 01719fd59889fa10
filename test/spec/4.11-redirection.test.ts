/**
 * MQTT 5.0 §4.11 Server redirection: CONNACK or DISCONNECT with 0x9C (Use another server) or
 * 0x9D (Server moved) and a Server Reference — from the operator (`broker.redirect`, e.g. to
 * drain a node) and from an authentication hook. 3.1.1 clients get CONNACK 3 (server unavailable).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

void describe('§4.11 Server redirection', () => {
  void it('§4.11 broker.redirect(): new v5 clients get CONNACK 0x9C with the Server Reference, 3.1.1 clients CONNACK 3; connected v5 clients get DISCONNECT 0x9D when asked; redirect(undefined) ends it', async () => {
    const b = await startBroker();
    try {
      const { client: old } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'redir-old' });
      b.broker.redirect({ serverReference: 'other.example:1883' });
      const { client: c5, connack: a5 } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'redir-5' });
      assert.equal(a5.reasonCode, 0x9c);
      assert.equal(a5.properties?.serverReference, 'other.example:1883');
      await c5.closed();
      const { client: c4, connack: a4 } = await RawClient.connect(b.port, { protocolVersion: 4, clientId: 'redir-4' });
      assert.equal(a4.reasonCode, 3);
      await c4.closed();
      assert.deepEqual(await old.barrier(), [], 'connected clients stay unless asked');
      b.broker.redirect({ serverReference: 'new.example', permanent: true, disconnectConnected: true });
      const d = await old.next('disconnect');
      assert.equal(d.reasonCode, 0x9d);
      assert.equal(d.properties?.serverReference, 'new.example');
      await old.closed();
      b.broker.redirect(undefined);
      const { client: ok, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'redir-ok' });
      assert.equal(connack.reasonCode, 0);
      await ok.disconnect();
    } finally {
      await b.close();
    }
  });

  void it('§4.11 an authentication hook may redirect: CONNACK 0x9D with its Server Reference', async () => {
    const b = await startBroker({
      authenticate: (req) => (req.username === 'moved' ? { ok: false, reasonCode: 0x9d, serverReference: 'home.example', reason: 'moved' } : undefined),
    });
    try {
      const { client, connack } = await RawClient.connect(b.port, { protocolVersion: 5, clientId: 'hook-redir', username: 'moved' });
      assert.equal(connack.reasonCode, 0x9d);
      assert.equal(connack.properties?.serverReference, 'home.example');
      await client.closed();
    } finally {
      await b.close();
    }
  });
});
