/** The browser's transport: the native WebSocket (ws: and wss: URLs only). */
import { ConnectionError } from './errors.js';
import { joinChunks, type OpenTransport, type Transport } from './transport.js';

export const openWebSocket: OpenTransport = (url, options, handlers, signal) =>
  new Promise<Transport>((resolve, reject) => {
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
      reject(new ConnectionError(`unsupported URL scheme ${url.protocol} in a browser (ws: or wss:)`));
      return;
    }
    const ws = new WebSocket(url.href, options.wsProtocols ?? ['mqtt']);
    ws.binaryType = 'arraybuffer';
    let open = false;
    let closed = false;
    const finish = (err?: Error) => {
      if (closed) return;
      closed = true;
      signal.removeEventListener('abort', onAbort);
      if (open) handlers.close(err);
      else reject(err ?? new ConnectionError(`WebSocket to ${url.href} closed before it opened`));
    };
    const onAbort = () => {
      ws.close();
      finish(new ConnectionError('connection attempt aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    ws.onopen = () => {
      open = true;
      resolve({
        write: (chunks) => {
          if (ws.readyState === 1) ws.send(joinChunks(chunks));
        },
        end: () => ws.close(1000),
        destroy: () => {
          ws.close();
          finish();
        },
      });
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (ev.data instanceof ArrayBuffer) handlers.data(new Uint8Array(ev.data));
    };
    ws.onerror = () => finish(new ConnectionError(`WebSocket error on ${url.href}`));
    ws.onclose = () => finish();
  });
