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
}

const lane = (): Lane => ({ queue: [], lastDue: 0, timer: undefined, ended: false, endSent: false });

export class FaultProxy {
  readonly targetHost: string;
  readonly targetPort: number;
  readonly #links = new Set<Link>();
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

  /** Ends every fault: no blackhole, latency, pause or refusal; connections that lost bytes are reset. */
  async heal(): Promise<void> {
    this.#blackholed = false;
    this.#paused = false;
    this.#latencyMs = 0;
    for (const link of [...this.#links]) {
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
    const link: Link = { client, upstream: undefined, upstreamReady: false, toTarget: lane(), toClient: lane(), tainted: false };
    this.#links.add(link);
    client.on('data', (chunk: Buffer) => {
      this.#stats.bytesFromClient += chunk.length;
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
