/**
 * The local subscriptions and which of them a PUBLISH is for. In 5.0 every distinct filter has
 * its own Subscription Identifier, so a message goes to the subscriptions it was sent for, even
 * when filters overlap; without identifiers (3.1.1, or a server without them) topics are matched
 * with the broker's own filter matching (`filterMatches`, once per distinct filter: a client
 * holds a handful, for which a trie is not worth its weight in the browser bundle).
 */
import type { PublishPacket } from '../../../src/protocol/packets.js';
import { filterMatches } from '../../../src/topics/match.js';
import { toMessage } from './packets.js';
import type { SubscriptionImpl } from './subscription.js';

export class Router {
  readonly #subs = new Set<SubscriptionImpl>();
  readonly #filterIds = new Map<string, number>();
  readonly #idFilters = new Map<number, string>();
  /** The subscriptions of each filter as sent. */
  readonly #byFilter = new Map<string, Set<SubscriptionImpl>>();
  #seq = 0;

  /** A key for a new subscription. */
  nextKey(): string {
    return String(++this.#seq);
  }

  add(sub: SubscriptionImpl): void {
    this.#subs.add(sub);
    const f = sub.compiled.filter;
    let set = this.#byFilter.get(f);
    if (set === undefined) this.#byFilter.set(f, (set = new Set()));
    set.add(sub);
  }

  /** Removes `sub`; true when no other local subscription has its filter (the server's can go). */
  remove(sub: SubscriptionImpl): boolean {
    if (!this.#subs.delete(sub)) return false;
    const filter = sub.compiled.filter;
    const set = this.#byFilter.get(filter);
    set?.delete(sub);
    if (set !== undefined && set.size > 0) return false;
    this.#byFilter.delete(filter);
    const id = this.#filterIds.get(filter);
    if (id !== undefined) {
      this.#filterIds.delete(filter);
      this.#idFilters.delete(id);
    }
    return true;
  }

  /** A local subscription has `filter` (as sent). */
  has(filter: string): boolean {
    return this.#byFilter.has(filter);
  }

  /** The Subscription Identifier of `filter` (assigned on first use). */
  identifierFor(filter: string): number {
    let id = this.#filterIds.get(filter);
    if (id === undefined) {
      id = this.#filterIds.size + 1;
      while (this.#idFilters.has(id)) id++;
      this.#filterIds.set(filter, id);
      this.#idFilters.set(id, filter);
    }
    return id;
  }

  /** The Subscription Identifier `filter` has, if any. */
  identifierOf(filter: string): number | undefined {
    return this.#filterIds.get(filter);
  }

  /** Gives `filter` the identifier a session store kept for it (the server's subscription still carries it). */
  restoreIdentifier(filter: string, id: number): void {
    if (this.#idFilters.has(id) || this.#filterIds.has(filter)) return;
    this.#filterIds.set(filter, id);
    this.#idFilters.set(id, filter);
  }

  /** Restored subscriptions (from a session store) whose filter as sent is `filter`. */
  restoredWith(filter: string): SubscriptionImpl[] {
    const out: SubscriptionImpl[] = [];
    for (const s of this.#subs) if (s.restored && s.compiled.filter === filter) out.push(s);
    return out;
  }

  /** Every local subscription. */
  all(): SubscriptionImpl[] {
    return [...this.#subs];
  }

  /** One subscription per distinct filter, a granted one where there is one (what a resubscribe sends). */
  distinct(): SubscriptionImpl[] {
    const seen = new Map<string, SubscriptionImpl>();
    for (const s of this.#subs) if (!(seen.get(s.compiled.filter)?.granted ?? false)) seen.set(s.compiled.filter, s);
    return [...seen.values()];
  }

  route(p: PublishPacket): void {
    const ids = p.properties?.subscriptionIdentifiers;
    if (ids !== undefined && ids.length > 0) {
      let hit = false;
      for (const id of ids) {
        const filter = this.#idFilters.get(id);
        const subs = filter === undefined ? undefined : this.#byFilter.get(filter);
        if (subs === undefined) continue;
        hit = true;
        for (const s of subs) s.deliver(toMessage(p, s.compiled));
      }
      if (hit) return;
      // None of ours: a message the server queued for an earlier connection of the session
      // (another process, or identifiers not assigned yet) is matched by topic, not dropped.
    }
    // A client holds a handful of filters: the broker's single-filter match beats building a trie.
    for (const subs of this.#byFilter.values()) {
      let matched: boolean | undefined;
      for (const s of subs) if ((matched ??= filterMatches(s.compiled.match, p.topic))) s.deliver(toMessage(p, s.compiled));
    }
  }

  /** Ends every subscription's iteration (the client closed). */
  endAll(): void {
    for (const s of this.#subs) s.end();
    this.#subs.clear();
    this.#byFilter.clear();
  }
}
