/**
 * The broker's bridges (docs/bridges.md): started once the store is loaded, stopped before it
 * closes. Each bridge's state goes to `$SYS/broker/connection/<name>/state` ("1" connected,
 * "0" not), retained, as Mosquitto does; counters to `broker.stats().bridges` and the metrics.
 */
import type { BrokerCore } from '../core/broker-core.js';
import { createMessage } from '../core/message.js';
import type { Logger } from '../options.js';
import { Bridge } from './bridge.js';
import type { BridgeOptions, BridgeStats } from './types.js';

export type { BridgeOptions, BridgeStats, BridgeTopic, BridgeTls, BridgeDirection, BridgeState } from './types.js';

export class Bridges {
  readonly #bridges: Bridge[];
  readonly #core: BrokerCore;

  constructor(options: readonly BridgeOptions[], core: BrokerCore, log: Logger, limits: { maxPacketSize: number; maxOutboundBufferBytes: number }) {
    this.#core = core;
    const seen = new Set<string>();
    for (const o of options) {
      if (seen.has(o.name)) throw new Error(`two bridges are named "${o.name}"`);
      seen.add(o.name);
      if (o.remotes.length === 0) throw new Error(`bridge "${o.name}" has no remotes`);
    }
    this.#bridges = options.map(
      (o) =>
        new Bridge(o, {
          core,
          log,
          maxPacketSize: limits.maxPacketSize,
          maxOutboundBufferBytes: limits.maxOutboundBufferBytes,
          onState: (b, up) => this.#state(b, up),
        }),
    );
  }

  start(): void {
    const now = Date.now();
    for (const b of this.#bridges) {
      this.#state(b, false);
      b.start(now);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.#bridges.map((b) => b.stop()));
  }

  stats(): BridgeStats[] {
    return this.#bridges.map((b) => b.stats());
  }

  #state(b: Bridge, up: boolean): void {
    this.#core.publishLocal(createMessage(`$SYS/broker/connection/${b.name}/state`, Buffer.from(up ? '1' : '0'), 0, true, undefined, '', Date.now()));
  }
}
