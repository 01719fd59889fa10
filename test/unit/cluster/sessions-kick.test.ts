/**
 * ClusterSessions' kick bookkeeping, with fakes for the store, the core and the node: a session
 * claimed by another node whose copy here was dropped by a refused commit before the kick was
 * read still gets what arrives here handed over to its new node (else the new node, which leaves
 * those messages to this one, never gets them) — and what arrives between the refused commit
 * and the kick goes to the node that took it too (the refused commit names it).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterSessions, type SessionCore, type SessionsOwner } from '../../../src/cluster/sessions.js';
import type { FencedHandler, RedisStore } from '../../../src/cluster/redis-store.js';
import type { Logger } from '../../../src/options.js';
import type { Message } from '../../../src/core/message.js';
import { keys } from '../../../src/cluster/scripts.js';
import { encodeOutbound } from '../../../src/store/outbound-codec.js';

interface Fakes {
  sessions: ClusterSessions;
  store: { onFenced?: FencedHandler; tokens: Map<string, string> };
  core: Map<string, { subscriptions: Map<string, { filter: string; noLocal: boolean }>; expiryInterval: number }>;
  handedOver: Array<[number, string, string]>;
  marks: string[];
  /** Makes the core's commit point pending on `p` (null: nothing pending). */
  pending(p: Promise<void> | null): void;
}

function fakes(): Fakes {
  const tokens = new Map<string, string>();
  const store = {
    tokens,
    onFenced: undefined as FencedHandler | undefined,
    fence: (id: string) => tokens.get(id),
    // A claim of a live node 1's session (subscribed to t/#).
    claim: async () => ({
      token: '9:2',
      previousOwner: '1',
      previousAlive: true,
      present: true,
      loaded: { session: { clientId: 'c', expiryInterval: 600, subscriptions: [{ filter: 't/#' }] }, outbound: [], inbound: [] },
    }),
    forget: (id: string) => void tokens.delete(id),
  };
  const core = new Map<string, { subscriptions: Map<string, { filter: string; noLocal: boolean }>; expiryInterval: number }>();
  const handedOver: Array<[number, string, string]> = [];
  const marks: string[] = [];
  let committed: Promise<void> | null = null;
  const owner = {
    nid: 2,
    handOver: (nid: number, cid: string, m: Message) => handedOver.push([nid, cid, m.topic]),
    mark: (nid: number, kind: string, cid: string, seq: number) => void marks.push(`${kind} ${cid} ${seq} to ${nid}`),
  } as unknown as SessionsOwner;
  const log = { warn() {}, error() {}, info() {}, debug() {} } as unknown as Logger;
  const sessions = new ClusterSessions(owner, store as unknown as RedisStore, keys('t:'), log, 2000);
  sessions.attach({
    sessions: core,
    evict: (id: string) => void core.delete(id),
    commitPoint: () => committed,
    deliverStored: (id: string) => core.has(id),
  } as unknown as SessionCore);
  return {
    sessions,
    store,
    core,
    handedOver,
    marks,
    pending: (p) => {
      committed = p;
    },
  };
}

const msg = (topic: string) => ({ topic, origin: 'someone' }) as unknown as Message;

void describe('ClusterSessions: kicks after a refused commit', () => {
  void it('a session dropped by a fenced commit before its kick still gets a tombstone from that kick', () => {
    const f = fakes();
    f.store.tokens.set('c', '5:2');
    f.core.set('c', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
    // A message handled here after node 3 claimed the session: its commit is refused first...
    f.store.onFenced!(['c'], ['5:2'], [{ token: '', clean: false }]);
    assert.equal(f.core.has('c'), false, 'dropped here');
    // ...then the kick (node 3's claim, token 9:3) is read.
    f.sessions.kicked('c', '9:3', false);
    f.sessions.handOver(msg('t/x'), undefined);
    assert.deepEqual(f.handedOver, [[3, 'c', 't/x']], 'what still arrives here goes to node 3');
  });

  void it('the usual order (kick first) hands over too; a clean session or a non-matching topic does not', () => {
    const f = fakes();
    f.store.tokens.set('c', '5:2');
    f.core.set('c', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
    f.sessions.kicked('c', '9:3', false);
    f.sessions.handOver(msg('u/x'), undefined);
    f.sessions.handOver(msg('t/y'), [3]);
    assert.deepEqual(f.handedOver, [], 'not for another topic, nor when node 3 got it in the same step');
    f.sessions.handOver(msg('t/x'), undefined);
    assert.deepEqual(f.handedOver, [[3, 'c', 't/x']]);
    const g = fakes();
    g.store.tokens.set('d', '5:2');
    g.core.set('d', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
    g.store.onFenced!(['d'], ['5:2'], [{ token: '', clean: false }]);
    g.sessions.kicked('d', '9:3', true);
    g.sessions.handOver(msg('t/x'), undefined);
    assert.deepEqual(g.handedOver, [], 'a clean claim takes nothing over');
  });

  void it('between a refused commit and its kick, what arrives here goes to the node that took the session (named by the refusal)', () => {
    const f = fakes();
    f.store.tokens.set('c', '5:2');
    f.core.set('c', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
    // Node 3 claimed it (token 9:3); the refused commit says so before the kick is read here.
    f.store.onFenced!(['c'], ['5:2'], [{ token: '9:3', clean: false }]);
    assert.equal(f.core.has('c'), false, 'dropped here');
    // A forward that was in this node's inbox before the kick: handled now, before the kick.
    f.sessions.handOver(msg('t/x'), undefined);
    assert.deepEqual(f.handedOver, [[3, 'c', 't/x']], 'handed to node 3, not lost');
    f.sessions.kicked('c', '9:3', false);
    f.sessions.handOver(msg('t/y'), undefined);
    assert.deepEqual(
      f.handedOver,
      [
        [3, 'c', 't/x'],
        [3, 'c', 't/y'],
      ],
      'and after the kick as before',
    );
    // A Clean Start claim, an unknown taker or a session without filters: nothing handed over.
    for (const taker of [
      { token: '9:3', clean: true },
      { token: '', clean: false },
    ]) {
      const g = fakes();
      g.store.tokens.set('d', '5:2');
      g.core.set('d', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
      g.store.onFenced!(['d'], ['5:2'], [taker]);
      g.sessions.handOver(msg('t/x'), undefined);
      assert.deepEqual(g.handedOver, [], `nothing for ${JSON.stringify(taker)}`);
    }
  });

  void it('what is handed over or redirected here after the session moved on follows it to its new node', () => {
    // Found by the --workers soak: node B held a session, node A handed one of B's messages back
    // to it (B had left it to A), then the client reconnected to A; B read the kick, then A's
    // hand-over for a session no longer there, and the message reached nobody.
    const f = fakes();
    f.store.tokens.set('c', '5:2');
    f.core.set('c', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
    assert.equal(f.sessions.movedOn('c'), undefined, 'here: delivered here');
    f.sessions.kicked('c', '9:3', false);
    assert.equal(f.sessions.movedOn('c'), 3, 'moved on to node 3');
    const entry = encodeOutbound({
      messageId: 0,
      message: { topic: 't/r', payload: Buffer.from('x'), qos: 1, retain: false, expiresAt: 0, origin: 'p' },
      qos: 1,
      retain: false,
    });
    f.sessions.redirected('c', [entry]);
    assert.deepEqual(f.handedOver, [[3, 'c', 't/r']], 'a redirected entry follows it');
    const g = fakes();
    g.store.tokens.set('d', '5:2');
    g.core.set('d', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
    g.sessions.kicked('d', '9:3', true);
    assert.equal(g.sessions.movedOn('d'), undefined, 'a clean claim took nothing over: nothing follows');
    g.sessions.redirected('d', [entry]);
    assert.deepEqual(g.handedOver, []);
  });

  void it('the node a session left hands over even what it also forwards to the claimant, until its answer and cut are sent', async () => {
    const f = fakes();
    f.store.tokens.set('c', '5:2');
    f.core.set('c', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
    let commit!: () => void;
    f.pending(new Promise<void>((r) => (commit = r)));
    f.sessions.kicked('c', '9:3', false);
    f.sessions.handOver(msg('t/x'), [3]);
    assert.deepEqual(f.handedOver, [[3, 'c', 't/x']], 'before the cut: node 3 does not deliver what comes from here, so it goes through the tombstone');
    assert.deepEqual(f.marks, [], 'the answer waits for the commits in flight');
    commit();
    f.pending(null);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(f.marks, ['a c 0 to 3', 'c c 0 to 3'], 'the answer (store stream) and the cut (pipeline)');
    f.sessions.handOver(msg('t/y'), [3]);
    assert.deepEqual(f.handedOver, [[3, 'c', 't/x']], 'after the cut: node 3 delivers what this node forwarded it itself');
  });

  void it('the claimant does not deliver what the node it claimed from forwards before that node’s cut, per stream', async () => {
    // Found by the --workers soak: node A published a message while its copy of a session that
    // node B claimed was still there; A's copy had it (committed, so B loaded it) and A forwarded
    // it to B, which delivered it again: a QoS 2 duplicate.
    const f = fakes();
    await f.sessions.claim('c', false);
    const ex = (sender: number, viaStore: boolean, topic = 't/x'): string[] => [...(f.sessions.excluded('2', topic, sender, viaStore) ?? [])];
    assert.deepEqual(ex(1, false), ['c'], 'from node 1 through its pipeline: not delivered here');
    assert.deepEqual(ex(1, true), ['c'], 'nor through its store commits');
    assert.deepEqual(ex(1, false, 'u/x'), [], 'not for a topic the session does not want');
    assert.deepEqual(ex(3, false), [], 'nor from another node');
    f.sessions.cut('c', 3);
    assert.deepEqual(ex(1, false), ['c'], 'a cut from another node changes nothing');
    f.sessions.cut('c', 1);
    assert.deepEqual(ex(1, false), [], 'after the pipeline cut: pipeline forwards are delivered here');
    assert.deepEqual(ex(1, true), ['c'], 'store forwards until the answer');
    f.sessions.barrier('a', 'c', 1, 0);
    assert.deepEqual(ex(1, true), []);
    f.sessions.order.stop();
  });

  void it('a session taken back by the node that took it from here: no exclusion and no hand-over of what is forwarded there', async () => {
    // That node left to this one what it forwarded here (its copy never had it): excluding those
    // here lost them (the 40-move test, when the exclusion ignored it).
    const n = fakes();
    n.store.tokens.set('c', '5:2');
    n.core.set('c', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
    n.sessions.kicked('c', '6:1', false); // node 1 took it from here...
    await n.sessions.claim('c', false); // ...and this node takes it back from node 1
    assert.deepEqual([...(n.sessions.excluded('2', 't/x', 1, false) ?? [])], [], 'what node 1 forwards here is delivered here');
    n.sessions.order.stop();
    const o = fakes();
    await o.sessions.claim('c', false); // this node took it from node 1...
    o.core.set('c', { subscriptions: new Map([['t/#', { filter: 't/#', noLocal: false }]]), expiryInterval: 600 });
    o.pending(new Promise<void>(() => {}));
    o.sessions.kicked('c', '9:1', false); // ...and node 1 takes it back, before the answer
    o.sessions.handOver(msg('t/x'), [1]);
    assert.deepEqual(o.handedOver, [], 'what this node forwarded to node 1 is not handed over too');
    o.sessions.handOver(msg('t/y'), undefined);
    assert.deepEqual(o.handedOver, [[1, 'c', 't/y']], 'what it did not forward there is');
    o.sessions.order.stop();
  });
});
