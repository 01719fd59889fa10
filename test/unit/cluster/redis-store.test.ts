/**
 * RedisStore beyond the Store contract (conformance.test.ts runs that): fencing of a session's
 * writes by its claimant's token, claim, per-session load, group commit (one Redis call per
 * turn), commit points that reject when Redis cannot be reached, and durability through
 * `kill -9` of Redis with `appendfsync always`. Needs a real redis-server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import { RedisStore } from '../../../src/cluster/redis-store.js';
import { decodeOutbound } from '../../../src/store/outbound-codec.js';
import type { StoredMessage, StoredSession } from '../../../src/store/types.js';
import { startBroker } from '../../helpers/broker.js';
import { FaultProxy } from '../../helpers/fault-proxy.js';
import { pollUntil } from '../../helpers/wait.js';
import { redisServerGate, startRedisServer, type RedisServer } from '../../helpers/redis-server.js';

const msg = (topic: string, payload: string): StoredMessage => ({ topic, payload: Buffer.from(payload), qos: 1, retain: false, expiresAt: 0, origin: 'pub' });
const session = (clientId: string, extra: Partial<StoredSession> = {}): StoredSession => ({
  clientId,
  expiryInterval: 3600,
  subscriptions: [{ filter: 'a/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 }],
  ...extra,
});
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

void describe('RedisStore', redisServerGate(), () => {
  let redis: RedisServer;
  let prefixes = 0;
  const stores: RedisStore[] = [];
  const open = async (prefix: string, extra: Partial<ConstructorParameters<typeof RedisStore>[0]> = {}): Promise<RedisStore> => {
    const s = new RedisStore({ redis: redis.url, prefix, ...extra });
    stores.push(s);
    await s.open();
    return s;
  };
  const prefix = (): string => `rs${++prefixes}:`;

  before(async () => {
    redis = await startRedisServer({ appendonly: true, appendfsync: 'always' });
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close().catch(() => {})));
    await redis?.close();
  });

  void it('claim: a new token each time, the previous owner, whether a session is there', async () => {
    const p = prefix();
    const a = await open(p);
    const first = await a.claim('c', 'n1');
    assert.deepEqual({ previousOwner: first.previousOwner, present: first.present }, { previousOwner: null, present: false });
    assert.match(first.token, /^\d+:n1$/);
    assert.equal(a.fence('c'), first.token, 'the store writes with the token it claimed');
    a.putSession(session('c'));
    await a.flush();
    const second = await a.claim('c', 'n2');
    assert.deepEqual({ previousOwner: second.previousOwner, present: second.present }, { previousOwner: 'n1', present: true });
    assert.ok(Number(second.token.split(':')[0]) > Number(first.token.split(':')[0]), 'tokens grow');
    const loaded = await a.loadSession('c');
    assert.equal(loaded.fence, second.token);
    assert.equal(loaded.owner, 'n2');
    // release: only once the record is gone, and only with the current token.
    assert.equal(await a.release('c'), false, 'a session with a record is not released');
    await a.claim('c', 'n3');
    a.deleteSession('c');
    await a.flush();
    assert.equal((await a.loadSession('c')).fence !== undefined, true, 'deleteSession of a fenced session keeps its fence');
    assert.equal(await a.release('c'), true);
    const r = redis.client();
    const left = (await r.keys(`${p}*`)).sort();
    assert.deepEqual(
      left.filter((k) => !k.startsWith(`${p}done:`)),
      [`${p}fence:seq`],
    );
    // The store's record of its commit calls (see the next test) expires by itself, but outlives
    // any Redis outage a waiting commit may be sent again after (a day), and goes when the store closes.
    const done = left.filter((k) => k.startsWith(`${p}done:`));
    assert.equal(done.length, 1, 'one record of commit calls');
    const ttl = await r.pttl(done[0]!);
    assert.ok(ttl > 3_600_000 && ttl <= 86_400_000, `${done[0]} expires after its last call, in a day (PTTL ${ttl})`);
    await a.close();
    assert.deepEqual(await r.keys(`${p}done:*`), [], 'the record is deleted with its store');
  });

  void it('release: a claim of the same client id sent from here while the release waited keeps the ownership, even with the same token', async () => {
    const p = prefix();
    const s = await open(p, { cluster: true });
    const first = await s.claim('c', '1');
    s.putMessage(1, msg('t', 'pending')); // the release waits for this write
    const released = s.release('c');
    // The client reconnects here at once, without Clean Start: the owner's own claim keeps its token.
    const again = s.claim('c', '1');
    assert.equal(await released, false, 'not released: a claim was sent meanwhile');
    const second = await again;
    assert.equal(second.token, first.token, 'the same token (the case a token check alone misses)');
    const loaded = await s.loadSession('c');
    assert.equal(loaded.fence, second.token, 'the new connection still owns the session');
    assert.equal(await s.release('c'), true, 'a later release goes through');
  });

  void it('a commit call applied by Redis and sent again (a reconnect resends what was unanswered) is applied once, and answers as the first time', async () => {
    const p = prefix();
    const a = await open(p, { cluster: true });
    const b = await open(p, { cluster: true });
    const r = redis.client();
    await r.xadd(`${p}in:7`, '*', 'init', '1');
    await a.claim('pub', 'A');
    // Watch the calls the store sends: the next commit is captured and sent again by hand.
    const client = a.redis as unknown as { courierStoreCommit: (...args: unknown[]) => Promise<unknown> };
    const original = client.courierStoreCommit.bind(client);
    let sent: unknown[] = [];
    client.courierStoreCommit = (...args: unknown[]) => {
      sent = args;
      return original(...args);
    };
    a.putInbound('pub', 11);
    a.appendForward('pub', 7, `${p}in:7`, () => ['f', '1', 'd', '7', 'b', 'once']);
    a.putOutbound('pub', 1, { messageId: 0, qos: 1, retain: false, message: msg('t', 'x') });
    await a.flush();
    assert.equal(await r.xlen(`${p}in:7`), 2);
    assert.deepEqual(await original(...sent), [[], []], 'the same call again: nothing applied, the same (empty) answer');
    assert.equal(await r.xlen(`${p}in:7`), 2, 'the forward appended once');
    // A call that reported fenced writes answers the same when sent again.
    await b.claim('pub', 'B');
    a.putInbound('pub', 12);
    await a.flush();
    const first = sent;
    const again = (await original(...first)) as [unknown[], unknown[]];
    assert.equal(again[0].length, 3, 'the fenced report of the first application');
    assert.equal(String(again[0][1]), (await a.loadSession('pub')).fence);
    client.courierStoreCommit = original;
  });

  void it('claim by the owner itself (a reconnect to the same node): without Clean Start the token stays and its writes in flight count; with Clean Start a new one', async () => {
    // Found by the --workers soak: a new token refused the node's own commit in flight at the
    // reconnect, whose entries the session there already had, and handed them back to that same
    // node: each was delivered twice (QoS 2 duplicates).
    const p = prefix();
    const fenced: string[][] = [];
    const a = await open(p, { onFenced: (ids) => fenced.push(ids) });
    const first = await a.claim('c', 'n1');
    a.putSession(session('c'));
    await a.flush();
    // The claim reaches Redis first, then a commit made with the token the store had until then.
    const claiming = a.claim('c', 'n1');
    a.putOutbound('c', 1, { messageId: 0, qos: 2, retain: false, message: msg('t', 'one') });
    const inFlight = a.commitPoint();
    const again = await claiming;
    await inFlight;
    assert.equal(again.token, first.token, 'the same token');
    assert.deepEqual(fenced, [], 'nothing refused');
    assert.deepEqual(
      (await a.loadSession('c')).outbound.map(([seq]) => seq),
      [1],
      'the entry written in flight is the session’s',
    );
    const clean = await a.claim('c', 'n1', { clean: true });
    assert.notEqual(clean.token, first.token, 'Clean Start: a new token (older writes must not reach the new session)');
  });

  void it('fencing: writes with a stale token are dropped and reported before their commit point resolves; the new owner writes', async () => {
    const p = prefix();
    const reports: string[][] = [];
    const takers: unknown[] = [];
    const a = await open(p, {
      onFenced: (ids, _tokens, by) => {
        reports.push(ids);
        takers.push(...by);
      },
    });
    const b = await open(p);
    await a.claim('c', 'A');
    a.putSession(session('c', { owner: 'from-a' }));
    a.putMessage(1, msg('t', 'one'));
    a.putOutbound('c', 1, { messageId: 1, qos: 1, retain: false });
    await a.flush();
    assert.deepEqual(reports, []);

    const bToken = (await b.claim('c', 'B')).token; // takes it over: A's token is stale from here on
    a.putOutbound('c', 2, { messageId: 1, qos: 1, retain: false });
    a.putInbound('c', 7);
    a.deleteOutbound('c', 1);
    a.putSession(session('c', { owner: 'stale' }));
    a.putSession(session('other')); // unfenced client in the same commit: applied
    let reportedBeforeResolve = false;
    await a.commitPoint()!.then(() => {
      reportedBeforeResolve = reports.length === 1;
    });
    assert.ok(reportedBeforeResolve, 'onFenced runs before the commit point resolves');
    assert.deepEqual(reports, [['c']]);
    assert.deepEqual(takers, [{ token: bToken, clean: false }], 'the refusal names the claim that took the session');
    assert.equal(a.stats().fencedWrites, 4);

    b.putOutbound('c', 3, { messageId: 0, qos: 1, retain: false, message: msg('t', 'three') });
    b.putSession(session('c', { owner: 'from-b' }));
    await b.flush();
    const s = await b.loadSession('c');
    assert.equal(s.session?.owner, 'from-b');
    assert.deepEqual(
      s.outbound.map(([seq]) => seq),
      [1, 3],
      "A's put of 2 and delete of 1 were dropped, B's put of 3 applied",
    );
    assert.deepEqual(s.inbound, []);
    assert.equal((await b.loadSession('other')).session?.clientId, 'other');
    assert.equal(reports.length, 1, 'B was never fenced');
  });

  void it("a client's forward goes in the same atomic commit as its writes: not when it is fenced; to the adopter when the inbox is gone", async () => {
    const p = prefix();
    const fenced: string[][] = [];
    const a = await open(p, { cluster: true, onFenced: (ids) => fenced.push(ids) });
    const b = await open(p, { cluster: true });
    const r = redis.client();
    await r.xadd(`${p}in:7`, '*', 'init', '1');
    await a.claim('pub', 'A');
    const fields = (batch: string) => () => ['f', '1', 'd', '7', 'b', batch];
    assert.equal(a.appendForward('nobody', 7, `${p}in:7`, fields('x')), false, 'a client without a token: the caller forwards it');
    a.putInbound('pub', 11);
    assert.equal(a.appendForward('pub', 7, `${p}in:7`, fields('first')), true);
    await a.flush();
    const entries = (await r.xrange(`${p}in:7`, '-', '+')).map(([, f]) => f.join(' '));
    assert.deepEqual(entries, ['init 1', 'f 1 d 7 b first'], 'written with the packet id');
    assert.deepEqual((await a.loadSession('pub')).inbound, [11]);
    // Claimed elsewhere: the packet id and the forward are both refused.
    await b.claim('pub', 'B');
    a.putInbound('pub', 12);
    a.appendForward('pub', 7, `${p}in:7`, fields('second'));
    await a.flush();
    assert.deepEqual(fenced, [['pub']]);
    assert.equal(await r.xlen(`${p}in:7`), 2, 'no forward from a fenced client');
    // Node 8's inbox is gone, its sessions adopted by node 9: the forward goes there, tagged x.
    await r.xadd(`${p}in:9`, '*', 'init', '1');
    await r.set(`${p}moved:8`, '9');
    // The fields as the outbox writes them (outbox.ts #storeForward): the batch is not always the sixth.
    b.appendForward('pub', 8, `${p}in:8`, () => ['f', '2', 'd', '8,9', 's', '1', 'b', 'third']);
    await b.flush();
    assert.deepEqual(
      (await r.xrange(`${p}in:9`, '-', '+')).map(([, f]) => f.join(' ')),
      ['init 1', 'x 8 f 2 b third'],
    );
  });

  void it("a QoS 2 PUBLISH of a fenced publisher (an atomic unit scoped to it): its entries for fenced subscribers go to nobody, the others' as before", async () => {
    // The chaos run's duplicate after a SIGSTOP (docs/clustering.md): a node resumed past its
    // lease routed a waiting QoS 2 PUBLISH to its local subscribers; its refused commit handed
    // their entries to their new owner while the publisher's packet id was refused, and the
    // publisher's resend was routed again at the adopter [MQTT-4.3.3-9].
    const p = prefix();
    const a = await open(p, { cluster: true, onFenced: () => {} });
    const b = await open(p, { cluster: true });
    const r = redis.client();
    await r.xadd(`${p}in:B`, '*', 'init', '1');
    for (const cid of ['pub', 'sub', 'other']) await a.claim(cid, 'A');
    a.putSession(session('sub'));
    await a.flush();
    // Node A is declared dead: B adopts every session.
    for (const cid of ['pub', 'sub', 'other']) await b.claim(cid, 'B');
    const entry = (payload: string) => ({ messageId: 0, qos: 2 as const, retain: false, message: { ...msg('a/x', payload), qos: 2 as const } });
    // A resumes and handles, in one turn: pub's QoS 2 PUBLISH (one unit), then other's (no token
    // of its own here: a plain put, as a QoS 1 message would be).
    a.atomic(true, 'pub');
    a.putInbound('pub', 5);
    a.putOutbound('sub', 100, entry('in-unit'));
    a.atomic(false);
    a.putOutbound('sub', 101, entry('plain'));
    await a.flush();
    const redirected = (await r.xrangeBuffer(`${p}in:B`, '-', '+')).slice(1).map(([, f]) => f);
    assert.equal(redirected.length, 1, 'one r entry for sub');
    const payloads = redirected[0]!.filter((_, i, f) => i > 1 && f[i - 1]!.toString() === 'e').map((e) => decodeOutbound(e).message?.payload.toString());
    assert.deepEqual(payloads, ['plain'], "the unit's entry is not handed over; the plain one is");
    assert.deepEqual((await b.loadSession('pub')).inbound, [], "the publisher's packet id was refused too");
  });

  void it('loadSession: record, outbound in seq order, inbound ids and the referenced messages in one read', async () => {
    const p = prefix();
    const s = await open(p);
    s.putSession(session('c', { will: { message: msg('will', 'bye'), delaySeconds: 3 }, disconnectedAt: 99 }));
    s.putMessage(5, msg('t', 'five'));
    s.putMessage(6, msg('t', 'six'));
    for (const seq of [30, 4, 12]) s.putOutbound('c', seq, { messageId: 5, qos: 1, retain: false });
    s.putOutbound('c', 13, { messageId: 0, qos: 2, retain: false, message: msg('t', 'inline'), packetId: 9 });
    s.putOutbound('c', 14, { messageId: 77, qos: 1, retain: false }); // a reference whose message is gone
    s.putInbound('c', 300);
    s.putInbound('c', 2);
    s.putOutbound('d', 1, { messageId: 6, qos: 1, retain: false });
    await s.flush();
    const c = await s.loadSession('c');
    assert.equal(c.session?.will?.message.payload.toString(), 'bye');
    assert.equal(c.session?.disconnectedAt, 99);
    assert.deepEqual(
      c.outbound.map(([seq]) => seq),
      [4, 12, 13, 14, 30],
    );
    assert.equal(c.outbound[2]![1].message?.payload.toString(), 'inline');
    assert.deepEqual(c.inbound, [2, 300]);
    assert.deepEqual([...c.messages.keys()], [5], 'only the messages this session references, once, and only those present');
    assert.equal(c.messages.get(5)!.payload.toString(), 'five');
    assert.equal(c.fence, undefined);
    const none = await s.loadSession('nobody');
    assert.deepEqual(
      { ...none, messages: [...none.messages] },
      { session: undefined, outbound: [], inbound: [], messages: [], fence: undefined, owner: undefined },
    );
  });

  void it('release: the releases of one turn go in one call, each with its own outcome, sent before any later call of the store', async () => {
    const p = prefix();
    const s = await open(p, { cluster: true });
    const other = await open(p, { cluster: true });
    for (let i = 0; i < 300; i++) await s.claim(`r${i}`, '1');
    // r0 has a record (kept); r1 was claimed by another node since (its token is stale: kept for it).
    s.putSession(session('r0'));
    await s.flush();
    await other.claim('r1', '2');
    const stats0 = s.stats();
    const released = await Promise.all(Array.from({ length: 300 }, (_, i) => s.release(`r${i}`)));
    assert.deepEqual(released.slice(0, 3), [false, false, true]);
    assert.equal(released.filter((r) => r).length, 298);
    // 300 releases: two calls (256 + 44).
    assert.deepEqual({ releases: s.stats().releases - stats0.releases, calls: s.stats().releaseCalls - stats0.releaseCalls }, { releases: 300, calls: 2 });
    const metas = (await redis.client().keys(`${p}s:*:meta`)).sort();
    assert.deepEqual(metas, [`${p}s:{r0}:meta`, `${p}s:{r1}:meta`]);
    assert.deepEqual(await redis.client().smembers(`${p}own:1`), ['r0']);
    assert.deepEqual(await redis.client().smembers(`${p}own:2`), ['r1']);

    // A release asked for before a claim of the same client id goes first on the wire: the
    // claim that follows it finds no owner and its record stays.
    await s.claim('z', '1');
    const gone = s.release('z');
    await new Promise<void>((r) => setImmediate(r)); // the release is queued (after its flush), not sent
    const again = s.claim('z', '1');
    assert.equal(await gone, true);
    assert.equal((await again).previousOwner, null, 'the release was applied before the claim');
    assert.equal(await redis.client().hget(`${p}s:{z}:meta`, 'owner'), '1');
  });

  void it('group commit: the writes of one turn are one Redis call; a larger turn is split at the cap, in order', async () => {
    const p = prefix();
    const s = await open(p, { maxOpsPerCall: 256 });
    const probe = redis.client();
    const calls = async (): Promise<number> => {
      const info = await probe.info('commandstats');
      let n = 0;
      for (const m of info.matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) n += Number(m[1]);
      return n;
    };
    s.putMessage(1, msg('warm', 'up')); // loads the script
    await s.flush();
    const before0 = await calls();
    const stats0 = s.stats();
    for (let i = 1; i <= 100; i++) s.putOutbound('c', i, { messageId: 1, qos: 1, retain: false });
    const point = s.commitPoint();
    assert.notEqual(point, null);
    for (let i = 1; i <= 50; i++) s.deleteOutbound('c', i);
    assert.equal(s.commitPoint(), point, 'one commit point for the whole turn');
    await point;
    assert.equal((await calls()) - before0, 1, 'INFO commandstats: 150 writes in one turn = one call');
    assert.deepEqual({ calls: s.stats().calls - stats0.calls, writes: s.stats().writes - stats0.writes }, { calls: 1, writes: 150 });

    // 600 writes in one turn: three calls (256 + 256 + 88), applied in order: a put and its delete in different calls.
    const before1 = await calls();
    for (let i = 1000; i < 1300; i++) s.putOutbound('c', i, { messageId: 1, qos: 1, retain: false });
    for (let i = 1000; i < 1300; i++) s.deleteOutbound('c', i);
    await s.commitPoint();
    assert.equal((await calls()) - before1, 3);
    assert.deepEqual(
      (await s.loadSession('c')).outbound.map(([seq]) => seq),
      Array.from({ length: 50 }, (_, i) => 51 + i),
    );
    await turn();
    assert.equal(s.commitPoint(), null, 'nothing outstanding');
  });

  void it('atomic: the writes of an open unit are never split at the cap (units nest); outside one the cap splits again', async () => {
    const s = await open(prefix(), { maxOpsPerCall: 4 });
    s.putMessage(1, msg('warm', 'up'));
    await s.flush();
    const calls0 = s.stats().calls;
    s.atomic(true);
    s.atomic(true);
    for (let i = 1; i <= 10; i++) s.putOutbound('c', i, { messageId: 1, qos: 1, retain: false });
    s.atomic(false);
    s.putInbound('c', 7);
    s.atomic(false);
    await s.flush();
    assert.equal(s.stats().calls - calls0, 1, '11 writes in one unit: one call despite a cap of 4');
    const calls1 = s.stats().calls;
    for (let i = 11; i <= 20; i++) s.putOutbound('c', i, { messageId: 1, qos: 1, retain: false });
    await s.flush();
    assert.equal(s.stats().calls - calls1, 3, 'outside a unit: split at the cap (4 + 4 + 2)');
    s.atomic(false); // an unmatched close does not open a negative count
    const calls2 = s.stats().calls;
    for (let i = 21; i <= 25; i++) s.putOutbound('c', i, { messageId: 1, qos: 1, retain: false });
    await s.flush();
    assert.equal(s.stats().calls - calls2, 2);
  });

  void it('one commit nets the writes per key in call order: the last write of a field wins, a deleted session drops what came before', async () => {
    const s = await open(prefix());
    s.putSession(session('c'));
    s.putOutbound('c', 1, { messageId: 0, qos: 1, retain: false, message: msg('t', 'old') });
    s.putInbound('c', 5);
    await s.flush();
    // One turn: put+delete, delete+put, a deleted session written again, inbound add/remove.
    s.putOutbound('c', 2, { messageId: 0, qos: 1, retain: false, message: msg('t', 'gone') });
    s.deleteOutbound('c', 2);
    s.deleteOutbound('c', 1);
    s.putOutbound('c', 1, { messageId: 0, qos: 1, retain: false, message: msg('t', 'new') });
    s.putInbound('c', 6);
    s.deleteInbound('c', 5);
    s.putSession(session('d'));
    s.putOutbound('d', 9, { messageId: 0, qos: 1, retain: false, message: msg('t', 'd9') });
    s.putInbound('d', 1);
    s.deleteSession('d');
    s.putSession(session('d', { owner: 'again' }));
    s.putOutbound('d', 10, { messageId: 0, qos: 1, retain: false, message: msg('t', 'd10') });
    s.putMessage(3, msg('t', 'm3'));
    s.deleteMessage(3);
    s.putMessage(4, msg('t', 'm4'));
    s.putRetained('r', msg('r', 'x'));
    s.deleteRetained('r');
    s.putRetained('q', msg('q', 'y'));
    await s.flush();
    const c = await s.loadSession('c');
    assert.deepEqual(
      c.outbound.map(([seq, e]) => [seq, e.message?.payload.toString()]),
      [[1, 'new']],
    );
    assert.deepEqual(c.inbound, [6]);
    const d = await s.loadSession('d');
    assert.equal(d.session?.owner, 'again');
    assert.deepEqual(
      d.outbound.map(([seq]) => seq),
      [10],
    );
    assert.deepEqual(d.inbound, []);
    const snap = await s.load();
    assert.deepEqual([...snap.messages.keys()], [4]);
    assert.deepEqual(
      snap.retained.map(([t]) => t),
      ['q'],
    );
  });

  void it('commit points reject while Redis cannot be reached (cut, blackhole, refused) and resolve again after it heals', async () => {
    const proxy = new FaultProxy({ port: redis.port });
    const port = await proxy.listen();
    try {
      const s = await open(prefix(), { redis: `redis://127.0.0.1:${port}`, commandTimeoutMs: 300 });
      s.putSession(session('c'));
      await s.flush();

      // Blackhole: no answer; the call times out and its commit point rejects (never resolves early).
      proxy.blackhole();
      s.putOutbound('c', 1, { messageId: 0, qos: 1, retain: false, message: msg('t', 'lost?') });
      const point = s.commitPoint()!;
      await assert.rejects(s.flush(), /timed out/i, 'flush rejects when what it waits for fails');
      await assert.rejects(point, /timed out/i);
      await s.flush(); // nothing outstanding: a failure already reported is not reported again
      await proxy.heal();
      await waitReady(s);
      s.putOutbound('c', 2, { messageId: 0, qos: 1, retain: false, message: msg('t', 'two') });
      await s.commitPoint();

      // Cut: the connection is reset under a call in flight.
      proxy.pause(); // holds the bytes so the call is surely in flight when the cut comes
      s.putOutbound('c', 3, { messageId: 0, qos: 1, retain: false, message: msg('t', 'three') });
      const cutPoint = s.commitPoint()!;
      await turn();
      proxy.cut();
      proxy.resume();
      await assert.rejects(cutPoint);
      await s.flush().catch(() => {});

      // Refused: nothing to connect to; writes fail at once instead of being queued and replayed later.
      proxy.refuse();
      proxy.cut();
      s.putOutbound('c', 4, { messageId: 0, qos: 1, retain: false, message: msg('t', 'four') });
      await assert.rejects(s.commitPoint()!);
      await s.flush().catch(() => {});
      await proxy.heal();
      await waitReady(s);
      s.putOutbound('c', 5, { messageId: 0, qos: 1, retain: false, message: msg('t', 'five') });
      await s.commitPoint();
      const seqs = (await s.loadSession('c')).outbound.map(([seq]) => seq);
      assert.ok(seqs.includes(2) && seqs.includes(5), `what was acknowledged is there: ${seqs.join(',')}`);
      assert.ok(s.stats().failedCalls >= 3);
    } finally {
      await proxy.close();
    }
  });

  void it('open() fails with a clear error when Redis cannot be reached (and its client stops reconnecting)', async () => {
    const s = new RedisStore({ redis: 'redis://:secret@127.0.0.1:1' });
    await assert.rejects(
      s.open(),
      (err: Error) => /RedisStore: Redis at redis:\/\/\*\*\*@127\.0\.0\.1:1 cannot be reached/.test(err.message) && !err.message.includes('secret'),
    );
    let retries = 0;
    s.redis.on('reconnecting', () => retries++);
    await new Promise((resolve) => setTimeout(resolve, 300)); // its backoff starts at 50 ms
    assert.equal(retries, 0, 'no reconnect attempts after the failed open');
  });

  void it('kill -9 of Redis with appendfsync always: every write whose commit point resolved is there after the restart', async () => {
    const own = await startRedisServer({ appendonly: true, appendfsync: 'always' });
    try {
      const p = prefix();
      const s = new RedisStore({ redis: own.url, prefix: p, commandTimeoutMs: 2000 });
      await s.open();
      const acked: number[] = [];
      let seq = 0;
      let stop = false;
      const writer = (async () => {
        while (!stop) {
          const batch: number[] = [];
          for (let i = 0; i < 20; i++) {
            const n = ++seq;
            batch.push(n);
            s.putOutbound('c', n, { messageId: 0, qos: 1, retain: false, message: msg('t', String(n)) });
          }
          try {
            await s.commitPoint();
            acked.push(...batch);
          } catch {
            return;
          }
        }
      })();
      while (acked.length < 2000) await turn();
      await own.kill9();
      stop = true;
      await writer;
      await s.close().catch(() => {});
      await own.restart();
      const t = new RedisStore({ redis: own.url, prefix: p });
      await t.open();
      const present = new Set((await t.loadSession('c')).outbound.map(([n]) => n));
      const missing = acked.filter((n) => !present.has(n));
      assert.deepEqual(missing, [], `${acked.length} acknowledged writes, ${missing.length} missing after kill -9`);
      await t.close();
    } finally {
      await own.close();
    }
  });
});

/** Resolves once the store's connection answers again (a commit issued before would fail at once). */
async function waitReady(s: RedisStore): Promise<void> {
  await pollUntil(() => s.redis.ping().then((r) => r === 'PONG'), { what: 'the store connection to answer PING', timeoutMs: 10_000 });
}

void describe('persistence engine "redis" (single node)', redisServerGate(), () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedisServer({ appendonly: true, appendfsync: 'always' });
  });
  after(async () => {
    await redis?.close();
  });

  void it('clean sessions without a will write nothing to Redis', async () => {
    const b = await startBroker({ persistence: { engine: 'redis', redis: redis.url } });
    try {
      const probe = redis.client();
      const scripts = async (): Promise<number> => {
        let n = 0;
        for (const m of (await probe.info('commandstats')).matchAll(/cmdstat_(?:evalsha|eval):calls=(\d+)/g)) n += Number(m[1]);
        return n;
      };
      const before0 = await scripts();
      const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { clientId: 'clean-sub', clean: true, protocolVersion: 5, reconnectPeriod: 0 });
      const got: string[] = [];
      sub.on('message', (_t, p) => got.push(p.toString()));
      await sub.subscribeAsync('c/#', { qos: 2 });
      const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${b.port}`, { clientId: 'clean-pub', clean: true, protocolVersion: 4, reconnectPeriod: 0 });
      for (let i = 0; i < 10; i++) await pub.publishAsync('c/x', String(i), { qos: (i % 3) as 0 | 1 | 2 });
      await pollUntil(() => got.length === 10, { what: 'ten deliveries' });
      await Promise.all([sub.endAsync(), pub.endAsync()]);
      assert.equal(await scripts(), before0, 'no commit call');
      assert.deepEqual(await probe.keys('courier:s:*'), []);
    } finally {
      await b.close();
    }
  });

  void it('a persistent session, its subscription and its queued QoS 1 messages survive a broker restart on the same Redis', async () => {
    const persistence = { engine: 'redis' as const, redis: redis.url };
    const first = await startBroker({ persistence });
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${first.port}`, {
      clientId: 'keep',
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 600 },
      reconnectPeriod: 0,
    });
    await sub.subscribeAsync('q/#', { qos: 1 });
    await sub.endAsync();
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${first.port}`, { protocolVersion: 5, reconnectPeriod: 0 });
    for (let i = 0; i < 5; i++) await pub.publishAsync('q/x', String(i), { qos: 1 }); // PUBACK after Redis has the entries
    await pub.endAsync();
    await first.close();
    assert.ok((await redis.client().keys('courier:s:{keep}:*')).length >= 2, 'the session is in Redis');

    const second = await startBroker({ persistence });
    try {
      const got: string[] = [];
      const back = mqtt.connect(`mqtt://127.0.0.1:${second.port}`, {
        clientId: 'keep',
        clean: false,
        protocolVersion: 5,
        properties: { sessionExpiryInterval: 600 },
        reconnectPeriod: 0,
      });
      back.on('message', (_t, p) => got.push(p.toString()));
      const connack = await new Promise<{ sessionPresent: boolean }>((resolve) => back.once('connect', resolve));
      assert.equal(connack.sessionPresent, true);
      await pollUntil(() => got.length === 5, { what: 'the five queued messages' });
      assert.deepEqual(got, ['0', '1', '2', '3', '4']);
      await back.endAsync();
    } finally {
      await second.close();
    }
  });
});
