/**
 * The helpers together, as a cluster test will use them: a courier process, a publisher reaching
 * it through a FaultProxy that cuts its connection mid-stream, and the DeliveryRecorder saying
 * that every acknowledged QoS 1 message reached the persistent subscriber.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { startCourier } from '../../helpers/courier-process.js';
import { FaultProxy } from '../../helpers/fault-proxy.js';
import { ProcessGroup } from '../../helpers/processes.js';
import { DeliveryRecorder, encodePayload } from '../../helpers/recorder.js';

const group = ProcessGroup.scoped();
const clients: MqttClient[] = [];
const proxies: FaultProxy[] = [];
after(async () => {
  for (const c of clients) c.end(true);
  await Promise.all(proxies.map((p) => p.close()));
});

void describe('helpers together', () => {
  void it('courier process + fault proxy + recorder: a cut publisher loses no acknowledged QoS 1 message', { timeout: 90_000 }, async () => {
    const node = await startCourier(group);
    const proxy = new FaultProxy({ port: node.port });
    proxies.push(proxy);
    await proxy.listen();
    const recorder = new DeliveryRecorder();

    const sub = await mqtt.connectAsync(node.url, { clientId: 'together-sub', clean: true, reconnectPeriod: 0, connectTimeout: 20_000 });
    clients.push(sub);
    sub.on('message', (_topic, payload) => recorder.delivered('sub', payload));
    await sub.subscribeAsync('together/t', { qos: 1 });

    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${proxy.port}`, {
      clientId: 'together-pub',
      clean: false,
      reconnectPeriod: 20,
      connectTimeout: 20_000,
    });
    pub.on('error', () => {});
    clients.push(pub);
    const N = 200;
    const pending: Array<Promise<void>> = [];
    for (let seq = 0; seq < N; seq++) {
      if (seq === N / 2) {
        // Wait until the first half reached the broker, then cut the publisher off mid-stream.
        await recorder.until((r) => r.report([['pub', 'sub']]).totals.delivered >= 10, 30_000, 'some deliveries');
        assert.equal(proxy.cut(), 1);
      }
      pending.push(
        pub.publishAsync('together/t', encodePayload('pub', seq), { qos: 1 }).then(
          () => recorder.published('pub', seq, true),
          () => recorder.published('pub', seq, false),
        ),
      );
    }
    await Promise.all(pending);
    const report = await recorder.untilComplete([['pub', 'sub']], 30_000);
    assert.equal(report.totals.lost, 0, report.summary());
    assert.equal(report.totals.unexpected, 0, report.summary());
    assert.ok(report.acked > 0, report.summary());
    assert.ok(proxy.stats().acceptedConnections >= 2, 'the publisher reconnected through the proxy');
  });
});
