/**
 * The bridge's side of this broker: a persistent session of the core with no socket. It holds
 * the subscriptions of the bridge's `out` rules, so QoS 1/2 messages for the remote queue in it
 * (journaled in the broker's Store, within the same queue limits as any session) while the
 * remote is away, and leave in order when it returns. It is the session's `Outlet`: the core
 * hands it messages as it would hand them to a connection, and it passes them to a `Sink` (the
 * remote client) instead of encoding them; the remote's acknowledgement completes the entry.
 *
 * Its client id starts with NUL, which no MQTT client can send [MQTT-1.5.4-2]: no connection can
 * take the session over.
 */
import type { ProtocolVersion, QoS } from '../protocol/constants.js';
import type { BrokerCore } from '../core/broker-core.js';
import { NEVER_EXPIRES } from '../core/broker-core.js';
import type { Message } from '../core/message.js';
import type { Outlet, Session, Subscription } from '../core/session.js';

/** Where the messages go: the remote side (see bridge.ts). */
export interface Sink {
  /** Forwards one message; `done(ok)` is called once the remote acknowledged (QoS 1/2), `ok` false when it refused it. Returns false if it could not even be tried (QoS 0 dropped). */
  forward(m: Message, qos: QoS, retain: boolean, done: ((refused: boolean) => void) | undefined): boolean;
  /** Bytes waiting on the remote connection. */
  buffered(): number;
}

export class LocalSession implements Outlet {
  readonly clientId: string;
  readonly version: ProtocolVersion = 5;
  #session: Session | undefined;
  #window = 0;
  readonly #core: BrokerCore;
  readonly #sink: Sink;
  readonly #maxBuffered: number;
  /** QoS 0 messages dropped because the remote was away or backed up. */
  droppedQos0 = 0;
  /** QoS 1/2 messages the session could not queue (full, or the store's budget). */
  droppedQueueFull = 0;
  /** Bumped whenever the remote connection starts anew: completions from before are ignored. */
  #generation = 0;

  constructor(core: BrokerCore, name: string, sink: Sink, maxBuffered: number) {
    this.clientId = `\u0000bridge/${name}`;
    this.#core = core;
    this.#sink = sink;
    this.#maxBuffered = maxBuffered;
  }

  /** QoS 1/2 messages held for the remote: queued plus in flight. */
  get held(): number {
    const s = this.#session;
    return s === undefined ? 0 : s.queued + s.inflight.size;
  }

  /**
   * Opens (or resumes, after a restart) the session with exactly `subs` (filters no longer
   * configured are dropped), attached with a closed window: nothing leaves until `open()`.
   * With `sendRetained`, retained messages of new subscriptions are queued for the remote.
   */
  start(subs: readonly Subscription[], sendRetained: boolean, now: number): void {
    const core = this.#core;
    const { session } = core.openSession(this.clientId, false);
    session.expiryInterval = NEVER_EXPIRES;
    this.#session = session;
    const wanted = new Map(subs.map((s) => [s.filter, s]));
    for (const filter of [...session.subscriptions.keys()]) if (!wanted.has(filter)) core.unsubscribe(session, filter);
    const added: Subscription[] = [];
    for (const sub of subs) if (!core.subscribe(session, sub)) added.push(sub);
    core.connected(session);
    session.attach(this, now);
    if (sendRetained) {
      for (const sub of added) {
        for (const m of core.retainedMatching(sub.filter, now))
          session.deliver(m, (m.qos < sub.qos ? m.qos : sub.qos) as QoS, sub.retainAsPublished, undefined);
      }
    }
    core.persist(session);
  }

  /**
   * The remote is connected with room for `window` messages in flight. `fresh`: a new client
   * (not the same one resuming), so what was in flight is sent again from here.
   */
  open(window: number, fresh: boolean, now: number): void {
    const s = this.#session;
    if (s === undefined) return;
    this.#window = window;
    if (fresh) {
      this.#generation++;
      s.attach(this, now);
    } else s.drain(now);
  }

  /** The remote went away: messages queue (QoS 1/2) or are dropped and counted (QoS 0). */
  close(): void {
    this.#window = 0;
  }

  /** Broker shutdown: the session goes offline (and stays in the store). */
  stop(now: number): void {
    const s = this.#session;
    if (s === undefined || s.outlet !== this) return;
    this.#window = 0;
    this.#generation++;
    s.detach(now);
    this.#core.persist(s);
  }

  // Outlet ----------------------------------------------------------------------------------

  get sendQuota(): number {
    return this.#window;
  }

  congested(): boolean {
    if (this.#window > 0 && this.#sink.buffered() <= this.#maxBuffered) return false;
    this.droppedQos0++;
    return true;
  }

  dropped(): void {
    this.droppedQueueFull++;
  }

  sendPublish(m: Message, qos: QoS, retain: boolean, packetId: number): boolean {
    if (qos === 0) {
      if (!this.#sink.forward(m, 0, retain, undefined)) this.droppedQos0++;
      return true;
    }
    // Attached with a closed window, the session still offers what was in flight (attach): it
    // is sent when the remote is there (open() with fresh = true attaches again).
    if (this.#window === 0) return true;
    const gen = this.#generation;
    this.#sink.forward(m, qos, retain, () => {
      if (gen !== this.#generation) return;
      this.#session?.complete(packetId, Date.now());
    });
    return true;
  }

  sendPubrel(packetId: number): void {
    // Never asked for: the sink reports QoS 2 done at PUBCOMP and the entry completes then.
    this.#session?.complete(packetId, Date.now());
  }
}
