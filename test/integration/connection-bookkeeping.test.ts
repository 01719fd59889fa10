/**
 * What the broker keeps per connection, kept small (issue 19): the connection count is a counter
 * beside the one set of open connections, and a client's connection time lives on its connection
 * (no map by client id). These tests hold the behaviour those replaced.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

void describe('connection bookkeeping', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ limits: { maxConnections: 2 } });
  });
  after(() => b.close());

  void it('counts a connection from accept to its end, through refusals by the connection limit', async () => {
    const silent = await RawClient.open(b.port); // never sends CONNECT: counted all the same
    const { client: first } = await RawClient.connect(b.port, { clientId: 'count-1' });
    assert.equal(b.broker.stats().connections, 2);
    // A third is over the limit: refused, and no longer counted once refused.
    const { client: third, connack } = await RawClient.connect(b.port, { clientId: 'count-3' });
    assert.equal(connack.reasonCode, 3); // 3.1.1 Server unavailable
    await third.closed();
    assert.equal(b.broker.stats().connections, 2);
    const gone = once(b.broker, 'clientDisconnect');
    await first.disconnect();
    await gone;
    assert.equal(b.broker.stats().connections, 1);
    // Room again for one.
    const { client: fourth, connack: ok } = await RawClient.connect(b.port, { clientId: 'count-4' });
    assert.equal(ok.reasonCode, 0);
    assert.equal(b.broker.stats().connections, 2);
    await fourth.disconnect();
    silent.destroy();
  });

  void it("reports a client's connection time, which a takeover renews", async () => {
    const t0 = Date.now();
    const { client: a } = await RawClient.connect(b.port, { clientId: 'since', clean: false });
    const first = b.broker.inspector.client('since')?.connectedAt;
    assert.ok(first !== null && first !== undefined, 'connected client has a connection time');
    const at1 = Date.parse(first);
    assert.ok(at1 >= t0 - 1 && at1 <= Date.now() + 1, `connection time ${first} is when it connected`);
    const { client: c } = await RawClient.connect(b.port, { clientId: 'since', clean: false });
    await a.closed();
    const second = b.broker.inspector.client('since')?.connectedAt;
    assert.ok(second !== null && second !== undefined, 'the new connection has a connection time');
    assert.ok(Date.parse(second) >= at1);
    const gone = once(b.broker, 'clientDisconnect');
    await c.disconnect();
    await gone;
    assert.equal(b.broker.inspector.client('since')?.connectedAt, null, 'an offline session has none');
  });
});
