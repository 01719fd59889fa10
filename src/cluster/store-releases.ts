/**
 * RedisStore's releases of ownership records: the releases asked for in one turn (a burst of
 * disconnects) go together, in one call (store-scripts.ts RELEASE), at the end of the turn or
 * before any other call of the store, whichever comes first: on the wire each keeps its place
 * before every call made after it was asked for.
 */
import type { Scripted } from './store-connection.js';
import type { StoreKeys } from './store-scripts.js';
import type { RedisStoreStats } from './store-types.js';

/** At most this many releases go in one call (the rest in the next). */
const MAX_RELEASES_PER_CALL = 256;

interface PendingRelease {
  clientId: string;
  token: string;
  resolve: (released: boolean) => void;
  reject: (err: unknown) => void;
}

export class ReleaseQueue {
  /** Releases asked for and not sent yet. */
  #releases: PendingRelease[] = [];
  #scheduled = false;

  /** `ownPrefix`: the own-set prefix in a cluster, '' outside one. `stats` is counted in place. */
  constructor(
    private readonly scripts: Scripted,
    private readonly keys: StoreKeys,
    private readonly ownPrefix: string,
    private readonly stats: RedisStoreStats,
  ) {}

  /** Releases the ownership record of `clientId` if `token` still holds, at the end of this turn at the latest. */
  release(clientId: string, token: string): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#releases.push({ clientId, token, resolve, reject });
      if (this.#scheduled) return;
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#send();
      });
    });
  }

  /** Before any other call: the releases asked for before it go first. */
  first(): void {
    if (this.#releases.length > 0) this.#send();
  }

  /** Sends the releases asked for so far, MAX_RELEASES_PER_CALL per call. */
  #send(): void {
    while (this.#releases.length > 0) {
      const batch = this.#releases.splice(0, MAX_RELEASES_PER_CALL);
      const keys = batch.map((q) => this.keys.meta(q.clientId));
      const argv: string[] = [this.ownPrefix];
      for (const q of batch) argv.push(q.token, q.clientId);
      this.stats.releases += batch.length;
      this.stats.releaseCalls++;
      this.scripts.courierStoreRelease(keys.length, ...keys, ...argv).then(
        (replies) => {
          for (let i = 0; i < batch.length; i++) batch[i]!.resolve(replies[i] === 1);
        },
        (err: unknown) => {
          for (const q of batch) q.reject(err);
        },
      );
    }
  }
}
