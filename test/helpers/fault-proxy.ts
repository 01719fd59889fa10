/**
 * An in-process TCP proxy on 127.0.0.1 between clients and one target port, for network faults
 * in tests: cut, blackhole, latency, pause/resume, refuse, heal.
 *
 *   const proxy = new FaultProxy({ port: redis.port });
 *   const port = await proxy.listen();        // clients connect here
 *   proxy.blackhole(); ...; await proxy.heal();
 *
 * Faults:
 * - cut(): every current connection is reset (RST) on both sides; new ones are accepted.
 * - blackhole(): nothing passes either way and nothing is answered: bytes are read and dropped,
 *   new connections are accepted and held without reaching the target. A real partition loses no
 *   bytes (TCP retransmits), so a connection that lost bytes here cannot carry its protocol any
 *   further: heal() resets it (the client sees what it sees after a long partition). Connections
 *   that lost nothing go on as if nothing happened.
 * - latency(ms): every chunk is delayed by ms in each direction, order kept (latency(0) ends it).
 * - pause()/resume(): forwarding stops, bytes are buffered (unbounded) and sent in order on resume.
 *   New connections are held until resume.
 * - refuse(): the listening socket is closed, so new connections get ECONNREFUSED; current ones
 *   go on. heal() (or unrefuse()) listens again on the same port.
 * - holdRequests(match): what the matching connections' clients send from now on is held back
 *   (the client's first 4 KiB, e.g. its CLIENT SETNAME, decide: `match`); the target's answers
 *   still flow. held() shows what is held and what the target answered since; releaseRequests(n)
 *   forwards the first n held bytes; endHeld() ends those connections cleanly (the client reads
 *   every answer forwarded so far, then the end; the rest of its requests never reaches the target):
 *   a connection that breaks after the server answered part of what the client had sent.
 * - heal(): all of the above undone.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface FaultProxyStats {
  /** Bytes read from clients / from the target (dropped ones included). */
  bytesFromClient: number;
  bytesFromTarget: number;
  /** Bytes written to the target / to clients. */
  bytesToTarget: number;
  bytesToClient: number;
  /** Bytes thrown away by blackhole(). */
  bytesDropped: number;
  /** Client connections accepted since listen(), and those still open. */
  acceptedConnections: number;
  liveConnections: number;
  /** Live connections not (yet) connected to the target: held by blackhole() or pause(). */
  heldConnections: number;
}

interface Lane {
  queue: Array<{ chunk: Buffer; due: number }>;
  lastDue: number;
  timer: NodeJS.Timeout | undefined;
  ended: boolean;
  endSent: boolean;
}

interface Link {
  client: Socket;
  upstream: Socket | undefined;
  upstreamReady: boolean;
  toTarget: Lane;
  toClient: Lane;
  /** Bytes were dropped: the streams are no longer whole. */
  tainted: boolean;
  /** The first bytes the client sent (holdRequests matches on them). */
  head: Buffer;
  /** holdRequests(): the client's bytes held back, and the target's bytes passed on since the hold or the last release. */
  hold: { requests: Buffer[]; replies: Buffer[] } | undefined;
}

const HEAD_BYTES = 4096;

const lane = (): Lane => ({ queue: [], lastDue: 0, timer: undefined, ended: false, endSent: false });

export class FaultProxy {
  readonly targetHost: string;
  readonly targetPort: number;
  readonly #links = new Set<Link>();
  /** Client sockets of connections ended by endHeld(), until they close. */
  readonly #ending = new Set<Socket>();
  readonly #changed = new Set<() => void>();
  #server: Server | undefined;
  #port = 0;
  #blackholed = false;
  #paused = false;
  #refusing = false;
  #closed = false;
  #latencyMs = 0;
  readonly #stats = { bytesFromClient: 0, bytesFromTarget: 0, bytesToTarget: 0, bytesToClient: 0, bytesDropped: 0, acceptedConnections: 0 };

  constructor(target: { port: number; host?: string }) {
    this.targetPort = target.port;
    this.targetHost = target.host ?? '127.0.0.1';
  }

  /** The port clients connect to (0 before listen()). */
  get port(): number {
    return this.#port;
  }

  /** Starts accepting on 127.0.0.1 (`port` 0: a free one); resolves with the port. */
  async listen(port = 0): Promise<number> {
    if (this.#server) throw new Error('FaultProxy is already listening');
    if (this.#closed) throw new Error('FaultProxy is closed');
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (socket) => this.#accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    this.#port = (server.address() as AddressInfo).port;
    return this.#port;
  }

  /** Resets every current connection on both sides; returns how many. New ones are accepted. */
  cut(): number {
    const n = this.#links.size;
    for (const link of [...this.#links]) this.#drop(link, true);
    return n;
  }

  blackhole(): void {
    this.#blackholed = true;
    for (const link of this.#links) this.#pumpBoth(link);
  }

  latency(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`latency must be >= 0, got ${ms}`);
    this.#latencyMs = ms;
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#release();
  }

  /** Closes the listening socket: new connections are refused until heal() or unrefuse(). */
  refuse(): void {
    if (this.#refusing || !this.#server) return;
    this.#refusing = true;
    this.#server.close();
    this.#server = undefined;
  }

  /** Listens again on the same port after refuse(). */
  async unrefuse(): Promise<void> {
    if (!this.#refusing || this.#closed) return;
    this.#refusing = false;
    await this.listen(this.#port);
  }

  /** Holds back what the clients of the connections whose first bytes match `match` send from now on; returns how many. */
  holdRequests(match: (head: Buffer) => boolean): number {
    let n = 0;
    for (const link of this.#links) {
      if (link.hold !== undefined || !match(link.head)) continue;
      link.hold = { requests: [], replies: [] };
      n++;
    }
    return n;
  }

  /** The held connection's requests not yet released, and the answers passed on to it since the hold or the last release. */
  held(): { requests: Buffer; replies: Buffer } {
    const holds = [...this.#links].flatMap((l) => (l.hold === undefined ? [] : [l.hold]));
    if (holds.length !== 1) throw new Error(`FaultProxy: ${holds.length} held connections, expected one`);
    return { requests: Buffer.concat(holds[0]!.requests), replies: Buffer.concat(holds[0]!.replies) };
  }

  /** Forwards the first `bytes` of what each held connection holds; the rest stays held. held().replies starts again. */
  releaseRequests(bytes: number): void {
    for (const link of this.#links) {
      if (link.hold === undefined) continue;
      const all = Buffer.concat(link.hold.requests);
      link.hold.replies = [];
      link.hold.requests = all.length > bytes ? [all.subarray(bytes)] : [];
      if (bytes > 0) this.#ingress(link, link.toTarget, all.subarray(0, Math.min(bytes, all.length)));
    }
  }

  /**
   * Ends the held connections: the client gets what was passed on to it, then a FIN; the target's
   * side is closed, and what is still held never reaches it. Returns how many.
   */
  endHeld(): number {
    let n = 0;
    for (const link of [...this.#links]) {
      if (link.hold === undefined) continue;
      n++;
      this.#links.delete(link);
      for (const l of [link.toTarget, link.toClient]) clearTimeout(l.timer);
      link.upstream?.destroy();
      const client = link.client;
      this.#ending.add(client);
      client.once('close', () => this.#ending.delete(client));
      client.once('end', () => client.destroy());
      client.end();
    }
    this.#notify();
    return n;
  }

  /** Ends every fault: no blackhole, latency, pause or refusal; connections that lost bytes are reset. */
  async heal(): Promise<void> {
    this.#blackholed = false;
    this.#paused = false;
    this.#latencyMs = 0;
    for (const link of [...this.#links]) {
      if (link.hold !== undefined) {
        const held = Buffer.concat(link.hold.requests);
        link.hold = undefined;
        if (held.length > 0) this.#ingress(link, link.toTarget, held);
      }
      if (link.tainted) {
        this.#drop(link, true);
        continue;
      }
      for (const l of [link.toTarget, link.toClient]) {
        for (const item of l.queue) item.due = 0;
        l.lastDue = 0;
      }
    }
    this.#release();
    await this.unrefuse();
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const server = this.#server;
    this.#server = undefined;
    for (const link of [...this.#links]) this.#drop(link, false);
    for (const socket of this.#ending) socket.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    this.#notify();
  }

  stats(): FaultProxyStats {
    let held = 0;
    for (const link of this.#links) if (!link.upstreamReady) held++;
    return { ...this.#stats, liveConnections: this.#links.size, heldConnections: held };
  }

  /** Resolves once `predicate` holds for the stats (checked on every change); rejects after `timeoutMs`. */
  waitFor(predicate: (stats: FaultProxyStats) => boolean, timeoutMs = 5000, what = 'proxy condition'): Promise<FaultProxyStats> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const s = this.stats();
        if (!predicate(s)) return;
        clearTimeout(timer);
        this.#changed.delete(check);
        resolve(s);
      };
      const timer = setTimeout(() => {
        this.#changed.delete(check);
        reject(new Error(`FaultProxy: timed out after ${timeoutMs} ms waiting for ${what}; stats ${JSON.stringify(this.stats())}`));
      }, timeoutMs);
      this.#changed.add(check);
      check();
    });
  }

  #notify(): void {
    for (const f of [...this.#changed]) f();
  }

  #accept(client: Socket): void {
    if (this.#closed) {
      client.destroy();
      return;
    }
    this.#stats.acceptedConnections++;
    client.setNoDelay(true);
    const link: Link = {
      client,
      upstream: undefined,
      upstreamReady: false,
      toTarget: lane(),
      toClient: lane(),
      tainted: false,
      head: Buffer.alloc(0),
      hold: undefined,
    };
    this.#links.add(link);
    client.on('data', (chunk: Buffer) => {
      this.#stats.bytesFromClient += chunk.length;
      if (link.head.length < HEAD_BYTES) link.head = Buffer.concat([link.head, chunk.subarray(0, HEAD_BYTES - link.head.length)]);
      if (link.hold !== undefined) {
        link.hold.requests.push(chunk);
        this.#notify();
        return;
      }
      this.#ingress(link, link.toTarget, chunk);
    });
    client.on('end', () => {
      link.toTarget.ended = true;
      this.#pump(link, link.toTarget);
    });
    client.on('error', () => {});
    client.on('close', (hadError) => this.#closedSide(link, hadError));
    if (!this.#blackholed && !this.#paused) this.#connectUpstream(link);
    this.#notify();
  }

  #connectUpstream(link: Link): void {
    const upstream = connect({ host: this.targetHost, port: this.targetPort, allowHalfOpen: true });
    link.upstream = upstream;
    upstream.setNoDelay(true);
    upstream.on('connect', () => {
      link.upstreamReady = true;
      this.#pumpBoth(link);
      this.#notify();
    });
    upstream.on('data', (chunk: Buffer) => {
      this.#stats.bytesFromTarget += chunk.length;
      link.hold?.replies.push(chunk);
      this.#ingress(link, link.toClient, chunk);
    });
    upstream.on('end', () => {
      link.toClient.ended = true;
      this.#pump(link, link.toClient);
    });
    upstream.on('error', () => {});
    upstream.on('close', (hadError) => this.#closedSide(link, hadError || !link.upstreamReady));
  }

  /** Connections held by blackhole/pause connect now; queues flow. */
  #release(): void {
    if (this.#blackholed || this.#paused) return;
    for (const link of [...this.#links]) {
      if (link.upstream === undefined) this.#connectUpstream(link);
      else this.#pumpBoth(link);
    }
  }

  #closedSide(link: Link, hadError: boolean): void {
    if (!this.#links.has(link)) return;
    const clientGone = link.client.destroyed;
    const upstreamGone = link.upstream === undefined || link.upstream.destroyed;
    // An error (RST, refused) on one side is passed on as a reset; a clean close once both are done.
    if (hadError) this.#drop(link, true);
    else if (clientGone && upstreamGone) this.#drop(link, false);
    else if (clientGone && !link.upstreamReady) this.#drop(link, false);
  }

  #drop(link: Link, reset: boolean): void {
    if (!this.#links.delete(link)) return;
    for (const l of [link.toTarget, link.toClient]) {
      clearTimeout(l.timer);
      l.queue = [];
    }
    for (const socket of [link.client, link.upstream]) {
      if (!socket || socket.destroyed) continue;
      if (reset && !socket.connecting) socket.resetAndDestroy();
      else socket.destroy();
    }
    this.#notify();
  }

  #ingress(link: Link, l: Lane, chunk: Buffer): void {
    if (this.#blackholed) {
      link.tainted = true;
      this.#stats.bytesDropped += chunk.length;
      this.#notify();
      return;
    }
    const due = Math.max(Date.now() + this.#latencyMs, l.lastDue);
    l.lastDue = due;
    l.queue.push({ chunk, due });
    this.#pump(link, l);
    this.#notify();
  }

  #pumpBoth(link: Link): void {
    this.#pump(link, link.toTarget);
    this.#pump(link, link.toClient);
  }

  #pump(link: Link, l: Lane): void {
    if (!this.#links.has(link)) return;
    clearTimeout(l.timer);
    l.timer = undefined;
    if (this.#blackholed) {
      if (l.queue.length > 0) {
        link.tainted = true;
        for (const item of l.queue) this.#stats.bytesDropped += item.chunk.length;
        l.queue = [];
        this.#notify();
      }
      return;
    }
    const toTarget = l === link.toTarget;
    const dest = toTarget ? (link.upstreamReady ? link.upstream : undefined) : link.client;
    if (this.#paused || !dest || dest.destroyed) return;
    const now = Date.now();
    let wrote = false;
    while (l.queue.length > 0 && l.queue[0]!.due <= now) {
      const { chunk } = l.queue.shift()!;
      dest.write(chunk);
      if (toTarget) this.#stats.bytesToTarget += chunk.length;
      else this.#stats.bytesToClient += chunk.length;
      wrote = true;
    }
    if (l.queue.length > 0) {
      l.timer = setTimeout(() => this.#pump(link, l), l.queue[0]!.due - now);
    } else if (l.ended && !l.endSent) {
      l.endSent = true;
      dest.end();
    }
    if (wrote) this.#notify();
  }
}
