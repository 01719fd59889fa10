/**
 * What the core asks of a cluster (src/cluster/ implements it on Redis): the core stays the
 * authority for this node's sessions and local delivery, and tells the link what other nodes
 * need to know. The core calls it synchronously and never waits for it, except through
 * `commitPoint()`, which gates acknowledgements exactly as the store's commit point does.
 */
import type { Message } from './message.js';
import type { StoredOutbound, StoredSession } from '../store/types.js';

/** The outcome of claiming a session at CONNECT in a cluster (Cluster II). */
export interface SessionClaim {
  /** The fencing token this node now holds the session by. */
  token: string;
  /** This node's id, as owners are named. */
  self: string;
  /** The node that held it before (null: nobody); when it is another node, the fields below are its stored state. */
  previousOwner: string | null;
  /** The previous owner (another node) held a lease and was told to let go. */
  previousAlive: boolean;
  session: StoredSession | undefined;
  outbound: Array<[number, StoredOutbound]>;
  inbound: number[];
  /** A newer claim (another connection elsewhere) took it while this one was in flight. */
  superseded: boolean;
  /**
   * Set when the previous owner is alive and still hands messages back: the restored session
   * holds its direct deliveries until the cluster releases it, and calls this if it lets go by
   * itself (Session.hold; src/cluster/move-order.ts).
   */
  hold?: (() => void) | undefined;
}

export interface ClusterLink {
  /**
   * A message published on this node (by a client, a will or the broker): queue it for every
   * other node with matching interest. `localGroups` are the shared-group keys
   * (`group/filter`) with members on this node that match; the link decides which node
   * serves each matching group and returns the keys this node delivers to (undefined = none).
   */
  forward(m: Message, localGroups: readonly string[] | undefined): readonly string[] | undefined;
  /**
   * Set by `forward` for the message it was just given: sessions here that must not get it
   * directly (they moved here from a node it was also forwarded to, which hands it over).
   */
  readonly excludedLocally?: ReadonlySet<string> | undefined;
  /** This node's interest in a filter (as subscribed, `$share/g/f` included) began or ended. */
  interest(filter: string, on: boolean): void;
  /** A retained message was set (or, with an empty payload, deleted) on this node. */
  retain(m: Message): void;
  /**
   * Cluster writes queued so far (forwards, retained and route changes), a running count. A
   * connection notes it after the packet whose acknowledgement depends on them.
   */
  readonly writes: number;
  /**
   * Resolves once the cluster writes up to number `upTo` are accepted by the cluster (null when
   * they are); see Store.commitPoint. Only acknowledgements that depend on cluster writes wait:
   * other output (QoS 0 deliveries, PINGRESP) never waits for Redis.
   */
  commitPoint(upTo: number): Promise<void> | null;
  /**
   * Resolves once this node has applied every retained change acknowledged anywhere in the
   * cluster before the call (read-your-writes for SUBSCRIBE); null when nothing to wait for.
   */
  retainedBarrier(): Promise<void> | null;
  /**
   * Cluster II: a session of this node ended for good (expired, Clean Start, a clean session's
   * connection closed): its ownership record in the cluster is released, unless a claim newer
   * than `claimToken` (the one this node held it by) took it meanwhile.
   */
  sessionEnded?(clientId: string, claimToken: string | undefined): void;
  /** Cluster II: claims the session of `clientId` for a new connection here (see SessionClaim). */
  claim?(clientId: string, clean: boolean): Promise<SessionClaim>;
}
