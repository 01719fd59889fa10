/** Admission at CONNECT: the cluster reachable, global and per-listener connection limits, connect rate per IP. */
import { ConnackReturnCode, ReasonCode } from '../protocol/constants.js';
import type { Limits } from '../options.js';
import type { ConnectionInfo } from '../transport/types.js';
import type { ListenerAdmission } from './listeners.js';

/** Why a CONNECT is refused: the CONNACK codes for 5.0 and 3.1.1 and the reason logged. */
export interface Refusal {
  v5: number;
  v3: number;
  reason: string;
}

export class Admission {
  readonly #limits: Limits;
  readonly #cluster: { readonly available: boolean } | undefined;
  readonly #policies: ReadonlyMap<string, ListenerAdmission>;
  /** Connections by listener name (kept by the broker). */
  readonly #perListener: ReadonlyMap<string, number>;
  readonly #connectRate = new Map<string, { window: number; count: number }>();

  constructor(
    limits: Limits,
    cluster: { readonly available: boolean } | undefined,
    policies: ReadonlyMap<string, ListenerAdmission>,
    perListener: ReadonlyMap<string, number>,
  ) {
    this.#limits = limits;
    this.#cluster = cluster;
    this.#policies = policies;
    this.#perListener = perListener;
  }

  /** Null when `conn` is admitted; `connections` is the broker's count, `conn` included. */
  admit(conn: { readonly info: ConnectionInfo }, connections: number): Refusal | null {
    const limits = this.#limits;
    if (this.#cluster !== undefined && !this.#cluster.available) {
      return { v5: ReasonCode.ServerUnavailable, v3: ConnackReturnCode.ServerUnavailable, reason: 'the cluster (Redis) is unreachable' };
    }
    const policy = this.#policies.get(conn.info.listener);
    if (limits.maxConnections > 0 && connections > limits.maxConnections) {
      return { v5: ReasonCode.QuotaExceeded, v3: ConnackReturnCode.ServerUnavailable, reason: `more than ${limits.maxConnections} connections` };
    }
    if (policy !== undefined && policy.maxConnections > 0 && (this.#perListener.get(policy.name) ?? 0) > policy.maxConnections) {
      return {
        v5: ReasonCode.QuotaExceeded,
        v3: ConnackReturnCode.ServerUnavailable,
        reason: `more than ${policy.maxConnections} connections on ${policy.name}`,
      };
    }
    // The address only when a per-address limit is set (reading it is a system call, transport/socket-info.ts).
    const ip = limits.connectRatePerIp > 0 ? conn.info.remoteAddress : undefined;
    if (ip !== undefined) {
      const now = Date.now();
      let r = this.#connectRate.get(ip);
      if (r === undefined || now - r.window >= 1000) {
        if (this.#connectRate.size > 100_000) this.#connectRate.clear();
        r = { window: now, count: 0 };
        this.#connectRate.set(ip, r);
      }
      if (++r.count > limits.connectRatePerIp) {
        return {
          v5: ReasonCode.ConnectionRateExceeded,
          v3: ConnackReturnCode.ServerUnavailable,
          reason: `more than ${limits.connectRatePerIp} connections per second from ${ip}`,
        };
      }
    }
    return null;
  }
}
