import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { checkTopicFilter, checkTopicName, parseSharedFilter, RetainedIndex, TopicTrie } from '../../../src/topics/index.js';

/** Reference matcher written straight from §4.7, used as the oracle for the trie and the index. */
function naiveMatch(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

function trieMatches(trie: TopicTrie<string>, topic: string): string[] {
  const out: string[] = [];
  trie.match(topic, (_v, key, filter) => out.push(`${filter}|${key}`));
  return out.sort();
}

void describe('topic names and filters', () => {
  void test('[MQTT-4.7.3-1] topic names and filters are at least one character long', () => {
    assert.notEqual(checkTopicName(''), null);
    assert.notEqual(checkTopicFilter(''), null);
  });
  void test('[MQTT-4.7.3-2] topic names and filters must not contain U+0000', () => {
    assert.notEqual(checkTopicName('a\u0000b'), null);
    assert.notEqual(checkTopicFilter('a/\u0000'), null);
  });
  void test('[MQTT-3.3.2-2] wildcards are not allowed in topic names', () => {
    assert.notEqual(checkTopicName('a/+'), null);
    assert.notEqual(checkTopicName('a/#'), null);
    assert.equal(checkTopicName('a/b c/ü'), null);
    assert.equal(checkTopicName('/'), null);
  });
  void test("[MQTT-4.7.1-2] '#' must be the last character and occupy a whole level", () => {
    for (const ok of ['#', 'a/#', '/#', 'a/+/#']) assert.equal(checkTopicFilter(ok), null, ok);
    for (const bad of ['a#', 'a/#/b', '#/a', 'a/b#', '##']) assert.notEqual(checkTopicFilter(bad), null, bad);
  });
  void test("[MQTT-4.7.1-3] '+' must occupy an entire level", () => {
    for (const ok of ['+', '+/+', 'a/+/b', '/+', '+/']) assert.equal(checkTopicFilter(ok), null, ok);
    for (const bad of ['a+', '+a', 'a/b+/c', '++']) assert.notEqual(checkTopicFilter(bad), null, bad);
  });
  void test('topic length and level limits are counted in UTF-8 bytes and levels', () => {
    assert.equal(checkTopicName('ab', { maxLength: 2 }), null);
    assert.notEqual(checkTopicName('aü', { maxLength: 2 }), null);
    assert.equal(checkTopicName('a/b/c', { maxLevels: 3 }), null);
    assert.notEqual(checkTopicName('a/b/c/d', { maxLevels: 3 }), null);
    assert.notEqual(checkTopicName('x'.repeat(65536)), null);
  });
  void test('[MQTT-4.8.2-1] [MQTT-4.8.2-2] shared subscription syntax', () => {
    assert.deepEqual(parseSharedFilter('$share/g1/a/+'), { group: 'g1', filter: 'a/+' });
    assert.equal(parseSharedFilter('a/b'), null);
    assert.equal(checkTopicFilter('$share/g/#'), null);
    for (const bad of ['$share/', '$share//a', '$share/g', '$share/g/', '$share/g+/a', '$share/#/a', '$share/g/a#']) {
      assert.notEqual(checkTopicFilter(bad), null, bad);
    }
  });
});

void describe('TopicTrie', () => {
  void test("'sport/#' also matches the parent level 'sport' [MQTT-4.7.1-2]", () => {
    const trie = new TopicTrie<string>();
    trie.add('sport/#', 'c1', 'v');
    assert.deepEqual(trieMatches(trie, 'sport'), ['sport/#|c1']);
    assert.deepEqual(trieMatches(trie, 'sport/tennis/player1'), ['sport/#|c1']);
    assert.deepEqual(trieMatches(trie, 'sports'), []);
  });
  void test("'+' matches empty levels, including a leading one", () => {
    const trie = new TopicTrie<string>();
    trie.add('+/finance', 'c1', 'v');
    trie.add('a/+/b', 'c2', 'v');
    assert.deepEqual(trieMatches(trie, '/finance'), ['+/finance|c1']);
    assert.deepEqual(trieMatches(trie, 'a//b'), ['a/+/b|c2']);
  });
  void test('[MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with $', () => {
    const trie = new TopicTrie<string>();
    trie.add('#', 'c1', 'v');
    trie.add('+/monitor/Clients', 'c2', 'v');
    trie.add('$SYS/#', 'c3', 'v');
    trie.add('$SYS/monitor/+', 'c4', 'v');
    assert.deepEqual(trieMatches(trie, '$SYS/monitor/Clients'), ['$SYS/#|c3', '$SYS/monitor/+|c4']);
    assert.deepEqual(trieMatches(trie, 'x/monitor/Clients'), ['#|c1', '+/monitor/Clients|c2']);
  });
  void test('[MQTT-4.7.3-4] matching is case-sensitive and does not normalise', () => {
    const trie = new TopicTrie<string>();
    trie.add('ACCOUNTS', 'c1', 'v');
    assert.deepEqual(trieMatches(trie, 'Accounts'), []);
    assert.deepEqual(trieMatches(trie, 'ACCOUNTS'), ['ACCOUNTS|c1']);
  });
  void test('add replaces per (filter, key), remove prunes and reports', () => {
    const trie = new TopicTrie<number>();
    assert.equal(trie.add('a/+', 'c1', 1), true);
    assert.equal(trie.add('a/+', 'c1', 2), false);
    assert.equal(trie.add('a/#', 'c1', 3), true);
    assert.equal(trie.size, 2);
    assert.equal(trie.get('a/+', 'c1'), 2);
    assert.equal(trie.remove('a/+', 'c1'), 2);
    assert.equal(trie.remove('a/+', 'c1'), undefined);
    assert.equal(trie.remove('a/#', 'c1'), 3);
    assert.equal(trie.size, 0);
    const seen: number[] = [];
    trie.match('a/b', (v) => seen.push(v));
    assert.deepEqual(seen, []);
  });
  void test('matches the reference matcher on random filters and topics', () => {
    const level = fc.constantFrom('a', 'b', '', '$x', 'c');
    const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'));
    const filterLevel = fc.constantFrom('a', 'b', '', '+', '$x');
    const filter = fc
      .tuple(fc.array(filterLevel, { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([l, hash]) => (hash ? [...l, '#'] : l).join('/'))
      .filter((f) => checkTopicFilter(f) === null);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(filter, fc.constantFrom('k1', 'k2')), { maxLength: 20 }),
        fc.array(topic, { minLength: 1, maxLength: 10 }),
        (subs, topics) => {
          const trie = new TopicTrie<string>();
          for (const [f, k] of subs) trie.add(f, k, f);
          for (const t of topics) {
            const expected = [...new Set(subs.filter(([f]) => naiveMatch(f, t)).map(([f, k]) => `${f}|${k}`))].sort();
            assert.deepEqual(trieMatches(trie, t), expected, `topic ${JSON.stringify(t)}`);
          }
          // Removing everything leaves an empty trie.
          for (const [f, k] of subs) trie.remove(f, k);
          assert.equal(trie.size, 0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

void describe('RetainedIndex', () => {
  void test('set, replace, get and delete', () => {
    const idx = new RetainedIndex<number>();
    idx.set('a/b', 1);
    idx.set('a/b', 2);
    idx.set('a', 3);
    assert.equal(idx.size, 2);
    assert.equal(idx.get('a/b'), 2);
    assert.equal(idx.delete('a/b'), true);
    assert.equal(idx.delete('a/b'), false);
    const seen: string[] = [];
    idx.match('#', (t) => seen.push(t));
    assert.deepEqual(seen, ['a']);
  });
  void test('reverse matching agrees with the reference matcher on random topics and filters', () => {
    const level = fc.constantFrom('a', 'b', '', '$x');
    const topic = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/'));
    const filter = fc
      .tuple(fc.array(fc.constantFrom('a', 'b', '', '+', '$x'), { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([l, hash]) => (hash ? [...l, '#'] : l).join('/'))
      .filter((f) => checkTopicFilter(f) === null);
    fc.assert(
      fc.property(fc.uniqueArray(topic, { maxLength: 20 }), filter, (topics, f) => {
        const idx = new RetainedIndex<string>();
        for (const t of topics) idx.set(t, t);
        const got: string[] = [];
        idx.match(f, (t, v) => {
          assert.equal(t, v);
          got.push(t);
        });
        assert.deepEqual(got.sort(), topics.filter((t) => naiveMatch(f, t)).sort(), `filter ${JSON.stringify(f)}`);
      }),
      { numRuns: 200 },
    );
  });
});
