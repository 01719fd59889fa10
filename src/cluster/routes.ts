/**
 * The cluster route table: which other node has interest in which topic filter. Every node
 * holds the whole table in memory (replicated from the Redis route log), so routing a PUBLISH
 * never asks Redis. Plain filters and shared groups (`$share/group/filter`) are kept apart:
 * a message goes to every node with a matching plain filter, but to only one node per
 * matching shared group. Pure: no I/O.
 */
import { TopicTrie } from '../topics/trie.js';
import { parseSharedFilter } from '../topics/validate.js';

/** The result of matching one topic; reused between calls (cleared by `match`). */
export interface RouteMatch {
  /** Nodes with a matching plain subscription. */
  readonly plain: Set<number>;
  /** Matching shared groups (`group/filter`, as BrokerCore keys them) → nodes with members. */
  readonly groups: Map<string, Set<number>>;
}

const PLAIN = '';

export class RouteTable {
  /** filter → (PLAIN | NUL + group) → node ids. */
  readonly #trie = new TopicTrie<Set<number>>();
  /** node id → raw filters (as subscribed: `$share/g/f` for shared groups). */
  readonly #byNode = new Map<number, Set<string>>();
  readonly #match: RouteMatch = { plain: new Set(), groups: new Map() };
  #routes = 0;

  /** Route entries (node, filter) held. */
  get size(): number {
    return this.#routes;
  }

  /** Node ids with at least one route. */
  nodes(): number[] {
    return [...this.#byNode.keys()];
  }

  filtersOf(nid: number): string[] {
    return [...(this.#byNode.get(nid) ?? [])];
  }

  /** Adds a route; false when it was there already (route ops are idempotent). */
  add(nid: number, raw: string): boolean {
    let mine = this.#byNode.get(nid);
    if (mine === undefined) {
      mine = new Set();
      this.#byNode.set(nid, mine);
    }
    if (mine.has(raw)) return false;
    mine.add(raw);
    this.#routes++;
    const { filter, key } = split(raw);
    let set = this.#trie.get(filter, key);
    if (set === undefined) {
      set = new Set();
      this.#trie.add(filter, key, set);
    }
    set.add(nid);
    return true;
  }

  remove(nid: number, raw: string): boolean {
    const mine = this.#byNode.get(nid);
    if (mine === undefined || !mine.delete(raw)) return false;
    if (mine.size === 0) this.#byNode.delete(nid);
    this.#routes--;
    const { filter, key } = split(raw);
    const set = this.#trie.get(filter, key);
    if (set !== undefined) {
      set.delete(nid);
      if (set.size === 0) this.#trie.remove(filter, key);
    }
    return true;
  }

  /** Removes every route of a node (it left or died); returns how many. */
  dropNode(nid: number): number {
    const mine = this.#byNode.get(nid);
    if (mine === undefined) return 0;
    const n = mine.size;
    for (const raw of [...mine]) this.remove(nid, raw);
    return n;
  }

  /** Replaces a node's routes with `filters` (a resync). */
  setNode(nid: number, filters: Iterable<string>): void {
    const next = new Set(filters);
    for (const raw of this.filtersOf(nid)) if (!next.has(raw)) this.remove(nid, raw);
    for (const raw of next) this.add(nid, raw);
  }

  clear(): void {
    for (const nid of this.nodes()) this.dropNode(nid);
  }

  /** The nodes and shared groups a topic goes to. The result is reused by the next call. */
  match(topic: string): RouteMatch {
    const m = this.#match;
    m.plain.clear();
    if (m.groups.size > 0) m.groups.clear();
    if (this.#routes === 0) return m;
    this.#trie.match(topic, onMatch, m);
    return m;
  }
}

/**
 * The nodes that get a message for its matching shared groups: one per group, in turn among the
 * nodes with members and this node (when `localGroups`, the groups with members here, has it).
 * Adds to `assigned` (node → the groups it serves this message for) and returns the groups this
 * node serves itself: those whose turn is here, and those of `localGroups` no other node has.
 * `turns`: each group's turn counter, kept by the caller across messages.
 */
export function assignGroups(
  groups: ReadonlyMap<string, ReadonlySet<number>>,
  localGroups: readonly string[] | undefined,
  turns: Map<string, number>,
  assigned: Map<number, string[]>,
): string[] | undefined {
  let mine: string[] | undefined;
  for (const [group, nodes] of groups) {
    const local = localGroups?.includes(group) === true;
    const turn = turns.get(group) ?? 0;
    turns.set(group, turn + 1);
    let pick = turn % (nodes.size + (local ? 1 : 0));
    if (pick === nodes.size) {
      (mine ??= []).push(group);
      continue;
    }
    for (const nid of nodes) {
      if (pick-- !== 0) continue;
      const list = assigned.get(nid);
      if (list === undefined) assigned.set(nid, [group]);
      else list.push(group);
      break;
    }
  }
  if (localGroups !== undefined) for (const g of localGroups) if (!groups.has(g)) (mine ??= []).push(g);
  return mine;
}

function onMatch(this: RouteMatch, nodes: Set<number>, key: string, filter: string): void {
  if (key === PLAIN) {
    for (const n of nodes) this.plain.add(n);
    return;
  }
  const group = `${key.slice(1)}/${filter}`;
  const known = this.groups.get(group);
  if (known === undefined) this.groups.set(group, nodes);
  else {
    // The same group reached through two trie paths cannot happen (one filter per group key),
    // but merge defensively rather than lose a node.
    const merged = new Set(known);
    for (const n of nodes) merged.add(n);
    this.groups.set(group, merged);
  }
}

function split(raw: string): { filter: string; key: string } {
  const sf = parseSharedFilter(raw);
  return sf === null ? { filter: raw, key: PLAIN } : { filter: sf.filter, key: `\u0000${sf.group}` };
}
