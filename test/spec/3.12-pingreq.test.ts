/** MQTT 3.1.1 §3.12 / 5.0 §3.12 PINGREQ, and keep alive (§3.1.2.10). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

for (const version of [4, 5] as const) {
  void describe(`§3.12 PINGREQ (MQTT ${version === 5 ? '5.0' : '3.1.1'})`, () => {
    let b: TestBroker;
    before(async () => {
      b = await startBroker();
    });
    after(() => b.close());

    void it('[MQTT-3.12.4-1] the server answers PINGREQ with PINGRESP', async () => {
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: `ping-${version}` });
      client.send({ type: 'pingreq' });
      await client.next('pingresp');
      await client.disconnect();
    });

    void it(`${version === 5 ? '[MQTT-3.1.2-22]' : '[MQTT-3.1.2-24]'} a client silent for 1.5 × keep alive is disconnected (5.0: DISCONNECT 0x8D) and its will published`, async () => {
      const { client: watcher } = await RawClient.connect(b.port, { protocolVersion: version, clientId: `watch-${version}` });
      watcher.send({
        type: 'subscribe',
        packetId: 1,
        subscriptions: [{ topicFilter: `ka/${version}`, qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
      });
      await watcher.next('suback');
      const { client } = await RawClient.connect(b.port, {
        protocolVersion: version,
        clientId: `ka-${version}`,
        keepAlive: 1,
        will: { topic: `ka/${version}`, payload: Buffer.from('gone'), qos: 0, retain: false },
      });
      if (version === 5) {
        const d = await client.next('disconnect', 5000);
        assert.equal(d.reasonCode, 0x8d);
      }
      await client.closed();
      const will = await watcher.next('publish');
      assert.equal(will.payload.toString(), 'gone');
      await watcher.disconnect();
    });

    void it('keep alive 0 disables the timeout: a silent client stays connected across a later PINGREQ', async () => {
      const { client } = await RawClient.connect(b.port, { protocolVersion: version, clientId: `ka0-${version}`, keepAlive: 0 });
      assert.deepEqual(await client.barrier(), []);
      assert.equal(client.isClosed, false);
      await client.disconnect();
    });
  });
}
