/** The pure parts of the cluster: the forward batch encoding and the route table. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchError, BatchWriter, decodeRetained, encodeRetained, readBatch, type Forwarded } from '../../../src/cluster/wire.js';
import { assignGroups, RouteTable } from '../../../src/cluster/routes.js';
import { compareIds } from '../../../src/cluster/tail.js';
import { nextId } from '../../../src/cluster/scripts.js';
import { createMessage } from '../../../src/core/message.js';

void describe('cluster wire: forward batches', () => {
  void test('round-trips messages with every property, plain flag and groups, in order', () => {
    const w = new BatchWriter(8); // grows
    const m1 = createMessage('a/b', Buffer.from('hello'), 1, true, undefined, 'pub-1', 1000);
    const m2 = createMessage(
      'ü/€',
      Buffer.alloc(70_000, 7),
      2,
      false,
      {
        payloadFormatIndicator: 1,
        contentType: 'text/plain',
        responseTopic: 'r/t',
        correlationData: Buffer.from([0, 1, 2]),
        userProperties: [
          ['k', 'v'],
          ['k', 'w'],
        ],
        messageExpiryInterval: 30,
      },
      '',
      1000,
    );
    w.add(m1, true, undefined);
    w.add(m2, false, ['g/f/+', 'h/#']);
    assert.equal(w.count, 2);
    const out: Forwarded[] = [];
    assert.equal(
      readBatch(w.finish(), (f) => out.push(f)),
      2,
    );
    assert.equal(out[0]!.plain, true);
    assert.equal(out[0]!.groups, undefined);
    assert.deepEqual(
      { t: out[0]!.message.topic, p: out[0]!.message.payload.toString(), q: out[0]!.message.qos, r: out[0]!.message.retain, o: out[0]!.message.origin },
      { t: 'a/b', p: 'hello', q: 1, r: true, o: 'pub-1' },
    );
    const b = out[1]!;
    assert.equal(b.plain, false);
    assert.deepEqual(b.groups, ['g/f/+', 'h/#']);
    assert.equal(b.message.topic, 'ü/€');
    assert.equal(b.message.payload.length, 70_000);
    assert.equal(b.message.expiresAt, 31_000, 'absolute expiry travels as is');
    assert.deepEqual(b.message.properties, m2.properties);
    w.reset();
    assert.equal(w.count, 0);
    assert.equal(w.size, 0);
  });

  void test('a truncated batch is refused with BatchError, not misread', () => {
    const w = new BatchWriter();
    w.add(createMessage('t', Buffer.from('x'), 0, false, undefined, 'c', 0), true, undefined);
    const buf = w.finish();
    for (let cut = 1; cut < buf.length; cut++) {
      assert.throws(() => readBatch(buf.subarray(0, cut), () => {}), BatchError);
    }
  });

  void test('retained records round-trip', () => {
    const m = createMessage('r/1', Buffer.from('v'), 1, true, { contentType: 'x' }, 'c', 0);
    const back = decodeRetained(encodeRetained(m));
    assert.equal(back.topic, 'r/1');
    assert.equal(back.payload.toString(), 'v');
    assert.deepEqual(back.properties, { contentType: 'x' });
  });
});

void describe('cluster route table', () => {
  void test('matches plain filters per node and shared groups per group, wildcards included', () => {
    const t = new RouteTable();
    assert.equal(t.add(2, 'a/+'), true);
    assert.equal(t.add(2, 'a/+'), false, 'idempotent');
    t.add(3, 'a/#');
    t.add(3, '$share/g/a/b');
    t.add(4, '$share/g/a/b');
    t.add(4, '$share/h/a/+');
    t.add(5, 'other');
    const m = t.match('a/b');
    assert.deepEqual([...m.plain].sort(), [2, 3]);
    assert.deepEqual([...m.groups.keys()].sort(), ['g/a/b', 'h/a/+']);
    assert.deepEqual([...m.groups.get('g/a/b')!].sort(), [3, 4]);
    assert.deepEqual([...t.match('$SYS/x').plain], [], '[MQTT-4.7.2-1] wildcards do not match $ topics');
    assert.equal(t.size, 6);
    assert.equal(t.dropNode(3), 2);
    assert.deepEqual([...t.match('a/b').plain], [2]);
    assert.deepEqual([...t.match('a/b').groups.get('g/a/b')!], [4]);
    t.setNode(4, ['x/y']);
    assert.equal(t.match('a/b').groups.size, 0);
    assert.deepEqual([...t.match('x/y').plain], [4]);
    assert.equal(t.remove(4, 'x/y'), true);
    assert.equal(t.remove(4, 'x/y'), false);
    t.clear();
    assert.equal(t.size, 0);
    assert.deepEqual(t.nodes(), []);
  });

  void test('stream ids compare numerically and nextId is the id right after', () => {
    assert.ok(compareIds('10-0', '9-5') > 0);
    assert.ok(compareIds('5-2', '5-10') < 0);
    assert.equal(compareIds('5-2', '5-2'), 0);
    assert.equal(nextId('1796458185954-0'), '1796458185954-1');
    assert.equal(nextId('1-18446744073709551614'), '1-18446744073709551615');
  });

  void test('shared groups: one node per group and message, in turn among the nodes with members and this one', () => {
    const t = new RouteTable();
    t.add(2, '$share/g/a/#');
    t.add(3, '$share/g/a/#');
    const turns = new Map<string, number>();
    const picks: string[] = [];
    for (let i = 0; i < 6; i++) {
      const assigned = new Map<number, string[]>();
      // This node has members of g/a/# and of h/x (which no other node has).
      const mine = assignGroups(t.match('a/b').groups, ['g/a/#', 'h/x'], turns, assigned);
      assert.deepEqual(
        mine?.filter((g) => g === 'h/x'),
        ['h/x'],
        'a group only this node has stays here',
      );
      const here = mine?.includes('g/a/#') === true;
      const to = [...assigned].filter(([, gs]) => gs.includes('g/a/#')).map(([nid]) => nid);
      assert.equal(to.length + (here ? 1 : 0), 1, 'exactly one node serves the group');
      picks.push(here ? 'me' : String(to[0]));
    }
    assert.deepEqual(picks, ['2', '3', 'me', '2', '3', 'me']);
    // Without members here, only the remote nodes take turns.
    const assigned = new Map<number, string[]>();
    assert.equal(assignGroups(t.match('a/b').groups, undefined, new Map(), assigned), undefined);
    assert.deepEqual([...assigned], [[2, ['g/a/#']]]);
  });
});
