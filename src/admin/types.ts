/** What the admin listener needs of the broker (src/broker/observability.ts builds it from the Broker). */
import type { Inspector } from '../observability/inspector.js';
import type { Metrics } from '../observability/metrics.js';
import type { Sampler } from '../observability/sampler.js';
import type { Snapshot } from '../observability/snapshot.js';
import type { Logger } from '../options.js';

export interface AdminListenerInfo {
  name: string;
  transport: string;
  host: string;
  port: number;
  connections: number;
}

export interface AdminBackend {
  readonly log: Logger;
  info(): { version: string; node: string | null; startedAt: string; listeners: AdminListenerInfo[]; cluster: boolean };
  snapshot(): Snapshot;
  readonly inspector: Inspector;
  readonly metrics: Metrics;
  readonly sampler: Sampler;
  /** The $SYS tree as last published (topic → value); empty when `sys.interval` is 0. */
  sys(): Map<string, string>;
  publish(m: { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean }): void;
  /** Listeners bound and store open. */
  ready(): boolean;
}

/** The admin listener (config section `admin`). */
export interface AdminOptions {
  /** Interface to bind; default 127.0.0.1 (loopback only). */
  host?: string;
  /** Port; default 18083 (0 = a free port). */
  port?: number;
  /** Admin users file (`courier passwd --admin FILE USER`); without users a one-time token is logged at start. */
  usersFile?: string;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** Allow plain HTTP on a non-loopback address (refused otherwise). */
  allowInsecure?: boolean;
  /** Host header values accepted (DNS rebinding protection); default the bind address, localhost, 127.0.0.1 and [::1] with the port. */
  allowedHosts?: string[];
  /** `/metrics`, `/healthz`, `/readyz` without credentials; default true on a loopback bind, else false. */
  publicMetrics?: boolean;
}
