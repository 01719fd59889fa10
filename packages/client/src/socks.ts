/**
 * A SOCKS5 tunnel (RFC 1928, user/password auth RFC 1929) for the Node transport: connects to
 * the proxy, asks it to connect to `host:port` by name (socks5h: the proxy resolves it), and
 * resolves with the socket once bytes pass through. mosquitto's `--proxy socks5h://[user[:pass]@]host[:port]`.
 */
import { connect, type Socket } from 'node:net';
import { ConnectionError } from './errors.js';

const REPLIES = ['succeeded', 'general failure', 'not allowed by ruleset', 'network unreachable', 'host unreachable', 'connection refused', 'TTL expired'];

export function socksConnect(proxy: URL, host: string, port: number, signal: AbortSignal): Promise<Socket> {
  if (proxy.protocol !== 'socks5h:' && proxy.protocol !== 'socks5:')
    return Promise.reject(new ConnectionError(`unsupported proxy ${proxy.protocol} (socks5h:// only)`));
  const user = decodeURIComponent(proxy.username);
  const pass = decodeURIComponent(proxy.password);
  return new Promise<Socket>((resolve, reject) => {
    const s = connect({ host: proxy.hostname.replace(/^\[|\]$/g, ''), port: proxy.port === '' ? 1080 : Number(proxy.port) });
    let buf = Buffer.alloc(0);
    let stage: 'method' | 'auth' | 'connect' = 'method';
    const fail = (why: string): void => {
      s.destroy();
      reject(new ConnectionError(`SOCKS5 proxy ${proxy.host}: ${why}`));
    };
    const onAbort = () => fail('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      s.off('data', onData);
      s.off('error', onError);
      s.off('close', onClose);
    };
    const onError = (e: Error) => {
      done();
      fail(e.message);
    };
    const onClose = () => {
      done();
      fail('closed');
    };
    const sendConnect = (): void => {
      const name = Buffer.from(host);
      s.write(Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, Buffer.from([port >> 8, port & 0xff])]));
      stage = 'connect';
    };
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (stage === 'method') {
        if (buf.length < 2) return;
        const method = buf[1]!;
        buf = buf.subarray(2);
        if (method === 0) return sendConnect();
        if (method !== 2) return fail('no acceptable authentication method');
        const u = Buffer.from(user);
        const p = Buffer.from(pass);
        s.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
        stage = 'auth';
        return;
      }
      if (stage === 'auth') {
        if (buf.length < 2) return;
        if (buf[1] !== 0) return fail('authentication refused');
        buf = buf.subarray(2);
        return sendConnect();
      }
      // VER REP RSV ATYP BND.ADDR BND.PORT
      if (buf.length < 5) return;
      const atyp = buf[3]!;
      const len = 4 + (atyp === 1 ? 4 : atyp === 4 ? 16 : 1 + buf[4]!) + 2;
      if (buf.length < len) return;
      if (buf[1] !== 0) return fail(REPLIES[buf[1]!] ?? `reply ${buf[1]}`);
      done();
      if (buf.length > len) s.unshift(buf.subarray(len));
      resolve(s);
    };
    s.on('data', onData);
    s.on('error', onError);
    s.on('close', onClose);
    s.once('connect', () => s.write(Buffer.from(user !== '' ? [5, 2, 0, 2] : [5, 1, 0])));
  });
}
