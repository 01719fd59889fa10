/**
 * A recovery of a dead node takes nothing into memory once this incarnation no longer stands
 * (it fenced itself, or joined again under a new id, while the recovery awaited Redis). A trace
 * of the chaos run showed why: a node cut off from Redis fenced itself (every session dropped),
 * and a recovery it had started adopted the dead node's sessions afterwards. Joined again as a
 * new incarnation, it held them under its old incarnation's tokens: it never read the kicks of the
 * nodes that claimed them since (those went to the old incarnation's inbox), replayed the dead
 * inbox to them, and its refused commits handed those messages to their owners a second time
 * (QoS 2 duplicates at every subscriber). Fakes for Redis, the store and the core.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Recovery, type RecoveryHost } from '../../../src/cluster/recovery.js';
import { keys } from '../../../src/cluster/scripts.js';
import type { Logger } from '../../../src/options.js';

function host(owner: { nid: number; standing: boolean }, onAdopt: () => void): { host: RecoveryHost; restored: string[]; adopted: string[] } {
  const restored: string[] = [];
  const adopted: string[] = [];
  const redis = {
    set: async () => 'OK',
    smembers: async () => ['a', 'b'],
    eval: async () => 1,
  };
  const h = {
    owner: {
      get nid() {
        return owner.nid;
      },
      get standing() {
        return owner.standing;
      },
      redis,
      collectInterest() {},
      takeCollected: () => [],
      routes: { dropNode() {} },
      mark() {},
      handOver() {},
    },
    store: {
      adopt: async (cid: string) => {
        adopted.push(cid);
        onAdopt();
        return { token: `9:${owner.nid}`, session: { clientId: cid, expiryInterval: 600, subscriptions: [] }, outbound: [], inbound: [] };
      },
      release: async () => {},
    },
    keys: keys('t:'),
    log: { warn() {}, error() {}, info() {}, debug() {} } as unknown as Logger,
    leaseMs: 2000,
    counters: { adopted: 0, recoveries: 0, replayed: 0 },
    core: () => ({
      sessions: new Map(),
      evict() {},
      restoreSession: (rec: { clientId: string }) => {
        restored.push(rec.clientId);
        return {};
      },
      commitPoint: () => null,
    }),
    hold: () => () => {},
    remember() {},
    members: () => undefined,
    tombstone: () => undefined,
    movedFrom() {},
    answered() {},
    redirected() {},
    passOnRedirected: () => 0,
  } as unknown as RecoveryHost;
  return { host: h, restored, adopted };
}

void describe('Recovery: only while this incarnation stands', () => {
  void it('a node that fenced itself starts no recovery', async () => {
    const owner = { nid: 5, standing: false };
    const { host: h, adopted, restored } = host(owner, () => {});
    await assert.rejects(new Recovery(h).recover(3), /fenced itself or was replaced/);
    assert.deepEqual({ adopted, restored }, { adopted: [], restored: [] });
  });

  void it('fenced while its adoptions were in flight: nothing adopted is taken into memory', async () => {
    const owner = { nid: 5, standing: true };
    const {
      host: h,
      adopted,
      restored,
    } = host(owner, () => {
      owner.standing = false;
    });
    await assert.rejects(new Recovery(h).recover(3), /fenced itself or was replaced/);
    assert.deepEqual(adopted, ['a', 'b'], 'adopted in Redis (the old incarnation, recovered in turn by another node)');
    assert.deepEqual(restored, [], 'but not restored here');
  });

  void it('joined again as a new incarnation meanwhile: the same', async () => {
    const owner = { nid: 5, standing: true };
    const { host: h, restored } = host(owner, () => {
      owner.nid = 8;
    });
    await assert.rejects(new Recovery(h).recover(3), /incarnation 5/);
    assert.deepEqual(restored, []);
  });
});
