/**
 * inboxEntry (src/cluster/inbox-entry.ts) with typed fakes of the core and the node: each kind
 * of inbox entry reaches the right calls with the right arguments, and the count it returns is
 * the messages (or handed-over entries) it carried.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import type { SessionFilter } from '../../../src/core/broker-core.js';
import { createMessage, type Message } from '../../../src/core/message.js';
import { inboxEntry } from '../../../src/cluster/inbox-entry.js';
import type { RouteTable } from '../../../src/cluster/routes.js';
import type { ClusterCore, TailOwner } from '../../../src/cluster/tail-types.js';
import { BatchWriter } from '../../../src/cluster/wire.js';

interface Published {
  topic: string;
  plain: boolean;
  groups: readonly string[] | undefined;
  sessions: SessionFilter | undefined;
}

class FakeCore implements ClusterCore {
  readonly published: Published[] = [];
  readonly retained = new Map<string, Message>();
  publishForwarded(m: Message, plain: boolean, groups: readonly string[] | undefined, sessions?: SessionFilter): number {
    this.published.push({ topic: m.topic, plain, groups, sessions });
    return 1;
  }
  forwardPressure(): boolean {
    return false;
  }
  applyRetained(m: Message): void {
    this.retained.set(m.topic, m);
  }
  dropRetained(topic: string): void {
    this.retained.delete(topic);
  }
}

/** Records every call as a line; what the node answers is set per test. */
class FakeOwner implements TailOwner {
  readonly calls: string[] = [];
  readonly excludedArgs: Array<[string, string, number | undefined, boolean | undefined]> = [];
  exclude: ReadonlySet<string> | undefined = undefined;
  adopted = new Map<number, ReadonlySet<string>>();
  tombstones = new Map<string, number>();
  redirectedEntries: Buffer[] = [];
  readonly available = true;
  get redis(): Redis {
    throw new Error('inboxEntry must not use Redis');
  }
  get routes(): RouteTable {
    throw new Error('inboxEntry must not use the route table');
  }
  received(count: number): void {
    this.calls.push(`received ${count}`);
  }
  handling(on: boolean): void {
    this.calls.push(`handling ${on}`);
  }
  handled(inbox: string, minid: string): void {
    this.calls.push(`handled ${inbox} ${minid}`);
  }
  kicked(clientId: string, token: string, clean: boolean): void {
    this.calls.push(`kicked ${clientId} ${token} ${clean}`);
  }
  redirected(clientId: string, entries: Buffer[]): void {
    this.calls.push(`redirected ${clientId} ${entries.map((e) => e.toString()).join(',')}`);
  }
  barrier(kind: 'b' | 'a', clientId: string, from: number, seq: number): void {
    this.calls.push(`barrier ${kind} ${clientId} ${from} ${seq}`);
  }
  excluded(destinations: string, topic: string, sender?: number, viaStore?: boolean): ReadonlySet<string> | undefined {
    this.excludedArgs.push([destinations, topic, sender, viaStore]);
    return this.exclude;
  }
  cut(clientId: string, from: number): void {
    this.calls.push(`cut ${clientId} ${from}`);
  }
  adoptedFrom(nid: number): ReadonlySet<string> | undefined {
    return this.adopted.get(nid);
  }
  forwardedForDead(nid: number, m: Message): void {
    this.calls.push(`forwardedForDead ${nid} ${m.topic}`);
  }
  movedOn(clientId: string): number | undefined {
    return this.tombstones.get(clientId);
  }
  handOver(nid: number, clientId: string, m: Message): void {
    this.calls.push(`handOver ${nid} ${clientId} ${m.topic}`);
  }
  forwardedHere(m: Message): void {
    this.calls.push(`forwardedHere ${m.topic}`);
  }
  quiet(): Promise<void> | undefined {
    return undefined;
  }
  serving(): boolean {
    return true;
  }
}

/** A forward batch: a/1 for plain subscriptions, g/1 for the shared group `g/g/+` only. */
function batch(): Buffer {
  const w = new BatchWriter();
  w.add(createMessage('a/1', Buffer.from('one'), 1, false, undefined, 'p', 1000), true, undefined);
  w.add(createMessage('g/1', Buffer.from('two'), 0, false, undefined, 'p', 1000), false, ['g/g/+']);
  return w.finish();
}

/** An entry's fields as Redis hands them over: names and values as Buffers. */
function entry(...parts: Array<string | Buffer>): Buffer[] {
  return parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p));
}

function setup(): { owner: FakeOwner; core: FakeCore } {
  return { owner: new FakeOwner(), core: new FakeCore() };
}

void describe('inboxEntry: forwards (f)', () => {
  void it('delivers each message of the batch as it was sent; only plain ones are told to the node as forwarded here', () => {
    const { owner, core } = setup();
    assert.equal(inboxEntry(entry('f', '2', 'd', '1,2', 'b', batch()), owner, core), 2);
    assert.deepEqual(core.published, [
      { topic: 'a/1', plain: true, groups: undefined, sessions: undefined },
      { topic: 'g/1', plain: false, groups: ['g/g/+'], sessions: undefined },
    ]);
    assert.deepEqual(owner.calls, ['forwardedHere a/1']);
    assert.deepEqual(owner.excludedArgs, [
      ['1,2', 'a/1', 2, false],
      ['1,2', 'g/1', 2, false],
    ]);
  });

  void it('keeps the sessions the node excludes from the delivery; an empty exclusion is none', () => {
    const { owner, core } = setup();
    owner.exclude = new Set(['moved']);
    inboxEntry(entry('f', '4', 'd', '1,4', 's', '1', 'b', batch()), owner, core);
    assert.deepEqual(
      core.published.map((p) => p.sessions),
      [{ exclude: owner.exclude }, { exclude: owner.exclude }],
    );
    assert.equal(owner.excludedArgs[0]![3], true, 'an entry with `s` came through the store');

    const second = setup();
    second.owner.exclude = new Set();
    inboxEntry(entry('f', '4', 'd', '1,4', 'b', batch()), second.owner, second.core);
    assert.deepEqual(
      second.core.published.map((p) => p.sessions),
      [undefined, undefined],
    );
  });

  void it('asks for no exclusion without a destination list, and ignores an entry without a batch', () => {
    const { owner, core } = setup();
    assert.equal(inboxEntry(entry('f', '2', 'b', batch()), owner, core), 2);
    assert.deepEqual(owner.excludedArgs, []);
    assert.equal(core.published.length, 2);

    const empty = setup();
    assert.equal(inboxEntry(entry('f', '2', 'd', '1,2'), empty.owner, empty.core), 0);
    assert.deepEqual(empty.core.published, []);
    assert.deepEqual(empty.owner.calls, []);
  });
});

void describe('inboxEntry: forwards meant for a dead node (x)', () => {
  void it('delivers only to the sessions adopted from that node and tells the node of each plain one', () => {
    const { owner, core } = setup();
    const adopted = new Set(['c1', 'c2']);
    owner.adopted.set(7, adopted);
    assert.equal(inboxEntry(entry('x', '7', 'f', '2', 'b', batch()), owner, core), 2);
    assert.deepEqual(core.published, [
      { topic: 'a/1', plain: true, groups: undefined, sessions: { only: adopted, back: true } },
      { topic: 'g/1', plain: false, groups: ['g/g/+'], sessions: { only: adopted, back: true } },
    ]);
    assert.deepEqual(owner.calls, ['forwardedForDead 7 a/1']);
  });

  void it('delivers nothing when no session was adopted from it, but still counts and reports the plain ones', () => {
    const { owner, core } = setup();
    assert.equal(inboxEntry(entry('x', '7', 'f', '2', 'b', batch()), owner, core), 2);
    assert.deepEqual(core.published, []);
    assert.deepEqual(owner.calls, ['forwardedForDead 7 a/1']);
  });
});

void describe('inboxEntry: hand-overs to a session that moved here (o)', () => {
  void it('delivers to that session only, ahead of what it holds', () => {
    const { owner, core } = setup();
    assert.equal(inboxEntry(entry('o', 'cid', 'f', '3', 'b', batch()), owner, core), 2);
    const only = { only: new Set(['cid']), back: true };
    assert.deepEqual(core.published, [
      { topic: 'a/1', plain: true, groups: undefined, sessions: only },
      { topic: 'g/1', plain: true, groups: undefined, sessions: only },
    ]);
    assert.deepEqual(owner.calls, []);
  });

  void it('hands the messages on when the session moved on from here meanwhile', () => {
    const { owner, core } = setup();
    owner.tombstones.set('cid', 9);
    assert.equal(inboxEntry(entry('o', 'cid', 'f', '3', 'b', batch()), owner, core), 2);
    assert.deepEqual(core.published, []);
    assert.deepEqual(owner.calls, ['handOver 9 cid a/1', 'handOver 9 cid g/1']);
  });

  void it('ignores an entry without a batch', () => {
    const { owner, core } = setup();
    owner.tombstones.set('cid', 9);
    assert.equal(inboxEntry(entry('o', 'cid', 'f', '3'), owner, core), 0);
    assert.deepEqual(owner.calls, []);
  });
});

void describe('inboxEntry: kicks, redirected entries, barriers, cuts', () => {
  void it('a kick (k) names the client, the token and Clean Start', () => {
    const { owner, core } = setup();
    assert.equal(inboxEntry(entry('k', 'c1', 't', 'tok-1', 'c', '1'), owner, core), 0);
    inboxEntry(entry('k', 'c2', 't', 'tok-2', 'c', '0'), owner, core);
    inboxEntry(entry('k', 'c3'), owner, core);
    assert.deepEqual(owner.calls, ['kicked c1 tok-1 true', 'kicked c2 tok-2 false', 'kicked c3  false']);
    assert.deepEqual(core.published, []);
  });

  void it('redirected entries (r) go to the node with their client id; the count is the entries', () => {
    const { owner, core } = setup();
    assert.equal(inboxEntry(entry('r', 'c1', 'e', 'x1', 'e', 'x2'), owner, core), 2);
    assert.deepEqual(owner.calls, ['redirected c1 x1,x2']);
  });

  void it('a barrier (b) and its answer (a) carry node and sequence; a cut (c) the node', () => {
    const { owner, core } = setup();
    assert.equal(inboxEntry(entry('b', 'c1', 'n', '3', 's', '5'), owner, core), 0);
    inboxEntry(entry('a', 'c1', 'n', '4', 's', '0'), owner, core);
    inboxEntry(entry('c', 'c2', 'n', '6', 's', '1'), owner, core);
    assert.deepEqual(owner.calls, ['barrier b c1 3 5', 'barrier a c1 4 0', 'cut c2 6']);
  });

  void it('a mark without a readable node or sequence, and an unknown kind, change nothing', () => {
    const { owner, core } = setup();
    assert.equal(inboxEntry(entry('b', 'c1', 'n', '3'), owner, core), 0);
    assert.equal(inboxEntry(entry('c', 'c1', 's', '3'), owner, core), 0);
    assert.equal(inboxEntry(entry('z', 'c1', 'b', batch()), owner, core), 0);
    assert.equal(inboxEntry([], owner, core), 0);
    assert.deepEqual(owner.calls, []);
    assert.deepEqual(core.published, []);
  });
});
