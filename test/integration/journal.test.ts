/**
 * The broker's journal of outbound messages for persistent sessions (src/core/journal.ts):
 * what reaches the Store, and when. A recording MemoryStore stands in for the engine.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/store/memory.js';
import type { StoredOutbound } from '../../src/store/types.js';
import { startBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

class RecordingStore extends MemoryStore {
  readonly puts: Array<[string, number, StoredOutbound]> = [];
  readonly messages: number[] = [];
  override putOutbound(clientId: string, seq: number, entry: StoredOutbound): void {
    this.puts.push([clientId, seq, entry]);
    super.putOutbound(clientId, seq, entry);
  }
  override putMessage(id: number, message: Parameters<MemoryStore['putMessage']>[1]): void {
    this.messages.push(id);
    super.putMessage(id, message);
  }
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function offlineSubscriber(port: number, clientId: string): Promise<void> {
  const { client } = await RawClient.connect(port, { protocolVersion: 5, clientId, properties: { sessionExpiryInterval: 600 } });
  client.send({ type: 'subscribe', packetId: 1, subscriptions: [{ topicFilter: 'j/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }] });
  await client.next('suback');
  await client.disconnect();
}

void describe('journal of outbound entries', () => {
  void it('a message queued for an offline persistent session by broker.publish (no packet waits for it) is written by the end of the turn', async () => {
    const store = new RecordingStore();
    const b = await startBroker({ store });
    try {
      await offlineSubscriber(b.port, 'j-offline');
      b.broker.publish({ topic: 'j/x', payload: 'for later', qos: 1 });
      await nextTurn();
      const entry = store.puts.find(([c]) => c === 'j-offline');
      assert.ok(entry !== undefined, 'the queued entry reached the store');
      assert.equal(entry[2].message?.payload.toString(), 'for later', 'carried by one entry only: stored inline');
      assert.deepEqual(store.messages, [], 'no separate message record');
    } finally {
      await b.close();
    }
  });

  void it('a message for two persistent sessions is stored once and referenced by both entries', async () => {
    const store = new RecordingStore();
    const b = await startBroker({ store });
    try {
      await offlineSubscriber(b.port, 'j-a');
      await offlineSubscriber(b.port, 'j-b');
      b.broker.publish({ topic: 'j/y', payload: 'shared', qos: 1 });
      await nextTurn();
      const entries = store.puts.filter(([c]) => c === 'j-a' || c === 'j-b').map(([, , e]) => e);
      assert.equal(entries.length, 2);
      assert.equal(store.messages.length, 1);
      for (const e of entries) {
        assert.equal(e.message, undefined);
        assert.equal(e.messageId, store.messages[0]);
      }
    } finally {
      await b.close();
    }
  });
});
