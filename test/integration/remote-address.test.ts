/**
 * The peer's address is read when something asks for it (issue 19: `getpeername` at accept was
 * most of Courier's CPU per connection over a bare node:net server). These tests hold what the
 * eager read gave: every reader still sees the address and port, including an event listener
 * told of a client whose connection was reset (the socket can no longer be asked then).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { ClientInfo } from '../../src/index.js';
import type { AuthenticationRequest } from '../../src/security/types.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-client.js';

void describe('remote address, read when asked for', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.close());

  void it('is in the events of a client whose connection was reset', async () => {
    const connected = once(b.broker, 'clientConnect') as Promise<[ClientInfo, boolean]>;
    const { client } = await RawClient.connect(b.port, { clientId: 'reset-me' });
    const localPort = client.socket.localPort;
    const [info] = await connected;
    assert.equal(info.clientId, 'reset-me');
    const gone = once(b.broker, 'clientDisconnect') as Promise<[ClientInfo, string]>;
    client.socket.resetAndDestroy();
    const [left, reason] = await gone;
    assert.match(reason, /network error|closed by the client/);
    assert.equal(left.remoteAddress, '127.0.0.1');
    assert.equal(left.remotePort, localPort);
    assert.equal(left.transport, 'tcp');
    // The same fields as the plain object it used to be.
    assert.deepEqual(JSON.parse(JSON.stringify(left)), {
      clientId: 'reset-me',
      protocolVersion: 4,
      transport: 'tcp',
      remoteAddress: '127.0.0.1',
      remotePort: localPort,
    });
  });
});

void describe('remote address for authenticators', () => {
  let b: TestBroker;
  const seen: AuthenticationRequest[] = [];
  before(async () => {
    b = await startBroker({
      authenticate: (req) => {
        seen.push(req);
        return undefined; // undecided: the loopback listener admits anonymous clients
      },
    });
  });
  after(() => b.close());

  void it('reaches authenticators and the admin view of a connected client', async () => {
    const { client } = await RawClient.connect(b.port, { clientId: 'asked' });
    const req = seen.find((r) => r.clientId === 'asked');
    assert.equal(req?.remoteAddress, '127.0.0.1');
    const summary = b.broker.inspector.client('asked');
    assert.equal(summary?.ip, '127.0.0.1');
    assert.equal(summary?.port, client.socket.localPort);
    await client.disconnect();
  });
});

void describe('remote address with nobody watching', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker();
  });
  after(() => b.close());

  void it('is read for the admin view while the client is connected', async () => {
    const { client } = await RawClient.connect(b.port, { clientId: 'unwatched' });
    const summary = b.broker.inspector.client('unwatched');
    assert.equal(summary?.ip, '127.0.0.1');
    assert.equal(summary?.port, client.socket.localPort);
    await client.disconnect();
  });
});
