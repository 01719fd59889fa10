/**
 * No reconnect loop on refusals that will not change: a client that was connected, lost its
 * connection and is then refused with bad credentials (0x86 / 3.1.1: 4) or not authorized
 * (0x87 / 3.1.1: 5) stops at the first refusal and closes with it; a transient refusal (0x88
 * Server unavailable) is retried with backoff. Courier in-process with an authenticate hook that
 * the test switches.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, RefusedError } from '../../packages/client/src/index.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { withTimeout } from '../helpers/peers.js';
import { startCourier, unique, type TestServer } from './brokers.js';

void describe('client: refusals after a reconnect', () => {
  let server: TestServer;
  let verdict: { ok: true } | { ok: false; reasonCode: number } = { ok: true };
  let attempts = 0;
  before(async () => {
    server = await startCourier({
      authenticate: () => {
        attempts++;
        return verdict;
      },
    });
  });
  after(async () => {
    await server?.close();
  });

  for (const version of [4, 5] as const) {
    for (const [code, name] of [
      [0x86, 'bad credentials'],
      [0x87, 'not authorized'],
    ] as const) {
      void it(`v${version === 5 ? 5 : '3.1.1'}: ${name} on reconnect ends the client after one attempt`, async () => {
        verdict = { ok: true };
        const proxy = new FaultProxy({ port: server.port });
        const url = `mqtt://127.0.0.1:${await proxy.listen()}`;
        const c = await connect(url, { protocolVersion: version, clientId: unique('ref'), reconnect: { initialDelay: 5, maxDelay: 20 } });
        try {
          const closed = new Promise<Error | undefined>((r) => c.on('close', (i) => r(i.error)));
          verdict = { ok: false, reasonCode: code };
          attempts = 0;
          proxy.cut();
          const err = await withTimeout(closed, 10_000, 'close after the refusal');
          assert.ok(err instanceof RefusedError, String(err));
          assert.equal(err.reasonCode, code);
          assert.equal(attempts, 1);
          assert.equal(c.state, 'closed');
        } finally {
          await c.close();
          await proxy.close();
        }
      });
    }
  }

  void it('v5: Server unavailable (0x88) is retried with backoff until accepted', async () => {
    verdict = { ok: true };
    const proxy = new FaultProxy({ port: server.port });
    const url = `mqtt://127.0.0.1:${await proxy.listen()}`;
    const c = await connect(url, { clientId: unique('ref'), reconnect: { initialDelay: 5, maxDelay: 20 } });
    try {
      verdict = { ok: false, reasonCode: 0x88 };
      attempts = 0;
      const retried = new Promise<void>((r) =>
        c.on('reconnecting', () => {
          if (attempts >= 3) {
            verdict = { ok: true };
            r();
          }
        }),
      );
      const back = new Promise<void>((r) => c.on('connect', () => r()));
      proxy.cut();
      await withTimeout(retried, 10_000, 'three refused attempts');
      await withTimeout(back, 10_000, 'accepted again');
      assert.equal(c.state, 'connected');
    } finally {
      await c.close();
      await proxy.close();
    }
  });
});
