/**
 * What the core keeps holds only its own bytes (message.ts detach): a decoded payload is a view
 * into the read it arrived in (a 64 KiB slab that many reads share, transport/shared-reads.ts),
 * and a retained message, a message queued for an offline session or a will kept such a view, and
 * with it the whole slab, for as long as they live.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BrokerCore } from '../../../src/core/broker-core.js';
import { createMessage } from '../../../src/core/message.js';
import { defaultMqttOptions, defaultSessionLimits, noopLogger } from '../../../src/options.js';
import { MemoryStore } from '../../../src/store/memory.js';

/** `text` as a decoded payload: a view at offset 100 of a 64 KiB buffer. */
function inSlab(text: string): Buffer {
  const slab = Buffer.alloc(64 * 1024, 0xee);
  const n = slab.write(text, 100);
  return slab.subarray(100, 100 + n);
}

async function core(): Promise<BrokerCore> {
  const store = new MemoryStore();
  await store.open();
  const c = new BrokerCore(defaultMqttOptions, defaultSessionLimits, store, noopLogger, { publish() {}, sessionExpired() {} });
  await c.load(Date.now());
  return c;
}

void describe('kept messages hold only their own bytes', () => {
  void it('a retained message', async () => {
    const c = await core();
    c.publish(createMessage('r/1', inSlab('retained'), 0, true, undefined, 'pub', Date.now()), 'pub');
    const kept = c.retained.get('r/1');
    assert.equal(kept?.payload.toString(), 'retained');
    assert.equal(kept?.payload.buffer.byteLength, 'retained'.length);
  });

  void it('a message queued for an offline session, and one in flight when its session goes offline', async () => {
    const c = await core();
    const { session } = c.openSession('s', false);
    session.expiryInterval = 3600;
    c.connected(session);
    c.subscribe(session, { filter: 't/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0, subscriptionId: undefined });
    // Online with a window of one that is never acknowledged: the first goes in flight, the second queues.
    session.attach({ version: 5, sendQuota: 1, congested: () => false, sendPublish: () => true, sendPubrel: () => {} }, Date.now());
    c.publish(createMessage('t/1', inSlab('in flight'), 1, false, undefined, 'pub', Date.now()), 'pub');
    c.publish(createMessage('t/2', inSlab('queued online'), 1, false, undefined, 'pub', Date.now()), 'pub');
    const before = [...session.entries()].map((e) => e.message.payload);
    assert.equal(before[0]!.buffer.byteLength, 64 * 1024, 'sent at once: still the view (nothing was copied on the fast path)');
    assert.equal(before[1]!.buffer.byteLength, 'queued online'.length, 'queued: its own bytes');
    c.connectionEnded(session, undefined, Date.now());
    c.publish(createMessage('t/3', inSlab('queued offline'), 1, false, undefined, 'pub', Date.now()), 'pub');
    const after = [...session.entries()].map((e) => [e.message.payload.toString(), e.message.payload.buffer.byteLength]);
    assert.deepEqual(after, [
      ['in flight', 'in flight'.length],
      ['queued online', 'queued online'.length],
      ['queued offline', 'queued offline'.length],
    ]);
  });
});
