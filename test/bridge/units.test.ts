/**
 * The pure parts of bridges: topic rules (Mosquitto's prefix semantics), the loop guard for
 * 3.1.1 remotes, the config schema of `bridges`, and that @courier/client fits the shape the
 * bridge loads it as (checked by the type checker: `npm run typecheck` fails if it drifts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as clientLibrary from '../../packages/client/src/index.js';
import { checkRule, comesBack, compileRule, outRuleFor, toLocal, toRemote } from '../../src/bridge/topics.js';
import { LoopGuard } from '../../src/bridge/loop-guard.js';
import type { ClientLibrary } from '../../src/bridge/types.js';
import { ConfigError, parseConfig, parseConfigText } from '../../src/config/index.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The contract: the real client library is what src/bridge/remote.ts takes it for.
const contract: ClientLibrary = clientLibrary;

void describe('bridge topic rules', () => {
  void it('out: local prefix + filter here, remote prefix + rest there', () => {
    const r = compileRule({ filter: 'sensors/#', direction: 'out', qos: 1, localPrefix: 'site/', remotePrefix: 'plant1/' });
    assert.equal(r.localFilter, 'site/sensors/#');
    assert.equal(r.remoteFilter, 'plant1/sensors/#');
    assert.equal(toRemote(r, 'site/sensors/t1'), 'plant1/sensors/t1');
    assert.equal(toLocal(r, 'plant1/sensors/t1'), 'site/sensors/t1');
    assert.deepEqual([r.in, r.out, r.qos], [false, true, 1]);
  });

  void it('an empty filter maps one topic to another (Mosquitto: topic "" out 0 local/a remote/b)', () => {
    const r = compileRule({ filter: '', direction: 'both', localPrefix: 'local/a', remotePrefix: 'remote/b' });
    assert.equal(toRemote(r, 'local/a'), 'remote/b');
    assert.equal(toLocal(r, 'remote/b'), 'local/a');
    assert.equal(
      checkRule({ filter: '', direction: 'out', localPrefix: 'a' }),
      'an empty filter maps one topic to another: set both localPrefix and remotePrefix',
    );
  });

  void it('rejects wildcards in prefixes and bad filters', () => {
    assert.match(checkRule({ filter: 'a', direction: 'in', localPrefix: '+/' }) ?? '', /wildcards/);
    assert.notEqual(checkRule({ filter: 'a/#/b', direction: 'in' }), null);
    assert.equal(checkRule({ filter: 'a/+/b', direction: 'in', remotePrefix: 'x/' }), null);
  });

  void it('picks the first out rule of a local topic; knows which remote topics come back through an in rule', () => {
    const rules = [
      compileRule({ filter: 'a/#', direction: 'in' }),
      compileRule({ filter: 'a/#', direction: 'out', localPrefix: 'l/' }),
      compileRule({ filter: '#', direction: 'out' }),
    ];
    assert.equal(outRuleFor(rules, 'l/a/1'), rules[1]);
    assert.equal(outRuleFor(rules, 'z'), rules[2]);
    assert.equal(comesBack(rules, 'a/1'), true);
    assert.equal(comesBack(rules, 'b/1'), false);
  });
});

void describe('bridge loop guard', () => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  void it('drops one echo per message sent, and only that', () => {
    const g = new LoopGuard();
    g.sent('t', bytes('x'), 0);
    g.sent('t', bytes('x'), 0);
    assert.equal(g.echo('t', bytes('y'), 1), false, 'other payload');
    assert.equal(g.echo('u', bytes('x'), 1), false, 'other topic');
    assert.equal(g.echo('t', bytes('x'), 1), true);
    assert.equal(g.echo('t', bytes('x'), 1), true);
    assert.equal(g.echo('t', bytes('x'), 1), false, 'two sent, two echoes dropped, the third is someone else’s');
  });

  void it('forgets after its time and beyond its size', () => {
    const g = new LoopGuard(2, 1000);
    g.sent('a', bytes('1'), 0);
    assert.equal(g.echo('a', bytes('1'), 1001), false, 'too old');
    g.sent('b', bytes('1'), 2000);
    g.sent('c', bytes('1'), 2000);
    g.sent('d', bytes('1'), 2000);
    assert.ok(g.size <= 2);
    assert.equal(g.echo('d', bytes('1'), 2001), true);
  });
});

void describe('bridges in the config file', () => {
  void it('a valid bridge becomes BrokerOptions.bridges', () => {
    const c = parseConfig({
      bridges: [
        {
          name: 'cloud',
          remotes: ['mqtts://broker.example:8883', 'mqtt://backup.example'],
          protocolVersion: 4,
          clientId: 'plant1',
          username: 'u',
          password: 'p',
          tls: { ca: '/etc/ssl/ca.pem', rejectUnauthorized: true },
          cleanStart: false,
          sessionExpiry: 3600,
          keepAlive: 30,
          addressOrder: 'round-robin',
          topics: [{ filter: 'sensors/#', direction: 'out', qos: 1, remotePrefix: 'plant1/' }],
        },
      ],
    });
    assert.equal(c.options.bridges?.[0]?.name, 'cloud');
    assert.equal(c.options.bridges?.[0]?.topics[0]?.remotePrefix, 'plant1/');
  });

  void it('the Courier side of the translated Mosquitto block in docs/bridges.md is a valid config', () => {
    const doc = readFileSync(fileURLToPath(new URL('../../docs/bridges.md', import.meta.url)), 'utf8');
    const yaml = /```yaml\n(bridges:[\s\S]*?)```/.exec(doc)?.[1];
    assert.ok(yaml !== undefined, 'the yaml block is there');
    const c = parseConfig(parseConfigText(yaml, 'docs/bridges.md', 'yaml'));
    const b = c.options.bridges![0]!;
    assert.equal(b.remotes.length, 2);
    assert.equal(b.topics.length, 4);
    assert.deepEqual(b.topics[3], { filter: '', direction: 'out', qos: 0, localPrefix: 'local/alarm', remotePrefix: 'plant1/alarm' });
  });

  void it('refuses what cannot work, naming the key', () => {
    const bad = (bridge: Record<string, unknown>, pattern: RegExp) => {
      assert.throws(
        () => parseConfig({ bridges: [{ name: 'b', remotes: ['mqtt://h'], topics: [{ filter: '#', direction: 'out' }], ...bridge }] }),
        (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
      );
    };
    bad({ remotes: ['http://h'] }, /bridges\[0\]\.remotes\[0\].*mqtt:\/\//s);
    bad({ remotes: [] }, /at least one remote/);
    bad({ topics: [{ filter: '#', direction: 'sideways' }] }, /"in", "out" or "both"/);
    bad({ topics: [{ filter: '#', direction: 'in', localPrefix: 'a/+/' }] }, /wildcards/);
    bad({ protocolVersion: 3 }, /4 \(MQTT 3\.1\.1\) or 5/);
    bad({ name: 'a b' }, /letters, digits/);
    bad({ tpoics: [] }, /unknown key/);
    assert.throws(
      () =>
        parseConfig({
          bridges: [
            { name: 'x', remotes: ['mqtt://h'], topics: [{ filter: '#', direction: 'out' }] },
            { name: 'x', remotes: ['mqtt://h'], topics: [{ filter: '#', direction: 'in' }] },
          ],
        }),
      /same name as bridges\[0\]/,
    );
  });
});

void contract;

void describe('bridges and clusters', () => {
  void it('createBroker refuses bridges on a cluster node (each node would run every bridge)', async () => {
    const { createBroker } = await import('../../src/index.js');
    await assert.rejects(
      () =>
        createBroker({
          port: 0,
          wsPort: null,
          cluster: { redis: 'redis://127.0.0.1:1' },
          bridges: [{ name: 'b', remotes: ['mqtt://127.0.0.1:1'], topics: [{ filter: '#', direction: 'out' }] }],
        }),
      /bridges cannot run on a cluster node yet/,
    );
  });
});
