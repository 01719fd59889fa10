/**
 * diagnostics_channel: an application embedding Courier observes connects, disconnects,
 * subscriptions and publishes without hooks, and sees admin actions.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { http, jsonFrom, loginWithToken, startAdminBroker } from '../helpers/admin.js';
import { connectClient } from '../helpers/interop.js';
import { pollUntil } from '../helpers/wait.js';

void describe('diagnostics_channel events', () => {
  void it('courier:client:connect/disconnect, courier:client:subscribe, courier:message:publish, courier:admin:action', async () => {
    const seen: Array<[string, Record<string, unknown>]> = [];
    const names = [
      'courier:client:connect',
      'courier:client:disconnect',
      'courier:client:subscribe',
      'courier:client:unsubscribe',
      'courier:message:publish',
      'courier:admin:action',
    ];
    const handlers = names.map((n) => {
      const h = (msg: unknown): void => void seen.push([n, msg as Record<string, unknown>]);
      subscribe(n, h);
      return [n, h] as const;
    });
    const b = await startAdminBroker({ sys: { interval: 0 } });
    try {
      const c = await connectClient(`mqtt://127.0.0.1:${b.port}`, { protocolVersion: 5, clientId: 'dc-client' });
      await c.subscribeAsync('dc/#', { qos: 1 });
      await c.publishAsync('dc/x', 'payload', { qos: 1 });
      await c.unsubscribeAsync('dc/#');
      await c.endAsync();
      const cookie = await loginWithToken(b);
      b.broker.publish({ topic: 'dc/retained', payload: 'r', retain: true });
      const r = await http(b.adminPort, 'DELETE', `/api/v1/retained/${encodeURIComponent('dc/retained')}`, { headers: { ...cookie, ...jsonFrom(b.origin) } });
      assert.equal(r.status, 200);
      await pollUntil(() => seen.some(([n]) => n === 'courier:admin:action'), { what: 'admin action' });
      const of = (n: string): Array<Record<string, unknown>> => seen.filter(([k]) => k === n).map(([, m]) => m);
      assert.equal((of('courier:client:connect')[0]!.client as { clientId: string }).clientId, 'dc-client');
      assert.equal(of('courier:client:connect')[0]!.sessionPresent, false);
      assert.deepEqual(
        (of('courier:client:subscribe')[0]!.subscriptions as Array<{ filter: string }>).map((s) => s.filter),
        ['dc/#'],
      );
      assert.deepEqual(of('courier:client:unsubscribe')[0]!.filters, ['dc/#']);
      const pub = of('courier:message:publish').find((m) => m.topic === 'dc/x')!;
      assert.deepEqual([pub.clientId, pub.qos, String(pub.payload)], ['dc-client', 1, 'payload']);
      await pollUntil(() => of('courier:client:disconnect').length > 0, { what: 'disconnect' });
      assert.equal(typeof of('courier:client:disconnect')[0]!.reason, 'string');
      assert.deepEqual(of('courier:admin:action')[0], { user: 'token', action: 'retained.delete', target: { topic: 'dc/retained' } });
    } finally {
      for (const [n, h] of handlers) unsubscribe(n, h);
      await b.close();
    }
  });
});
