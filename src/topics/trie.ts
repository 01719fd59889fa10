/**
 * Subscription trie: filters split into levels, one node per level, wildcard children kept apart
 * from literal ones. Matching a topic walks at most (levels × branches that actually match), so
 * its cost depends on the topic and the matching entries, never on the total number of
 * subscriptions.
 */

class TrieNode<V> {
  readonly children = new Map<string, TrieNode<V>>();
  plus: TrieNode<V> | undefined = undefined;
  /** Entries whose filter ends with '#' at this level: key → value. */
  hash: Map<string, V> | undefined = undefined;
  /** Entries whose filter ends exactly at this node. */
  entries: Map<string, V> | undefined = undefined;
  /** Filter string of the entries stored here (same for `entries`; `hash` is filter + '/#'). */
  filter = '';
  hashFilter = '';

  isEmpty(): boolean {
    return this.children.size === 0 && this.plus === undefined && (this.hash?.size ?? 0) === 0 && (this.entries?.size ?? 0) === 0;
  }
}

export class TopicTrie<V> {
  readonly #root = new TrieNode<V>();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Adds or replaces the value for (filter, key). Returns true when it was new. */
  add(filter: string, key: string, value: V): boolean {
    const levels = filter.split('/');
    let node = this.#root;
    const last = levels.length - 1;
    for (let i = 0; i < levels.length; i++) {
      const level = levels[i]!;
      if (level === '#' && i === last) {
        node.hash ??= new Map();
        node.hashFilter = filter;
        return this.#put(node.hash, key, value);
      }
      let next: TrieNode<V> | undefined;
      if (level === '+') {
        next = node.plus ??= new TrieNode<V>();
      } else {
        next = node.children.get(level);
        if (!next) {
          next = new TrieNode<V>();
          node.children.set(level, next);
        }
      }
      node = next;
    }
    node.entries ??= new Map();
    node.filter = filter;
    return this.#put(node.entries, key, value);
  }

  #put(map: Map<string, V>, key: string, value: V): boolean {
    const isNew = !map.has(key);
    map.set(key, value);
    if (isNew) this.#size++;
    return isNew;
  }

  #find(filter: string): { map: Map<string, V> | undefined; path: Array<[TrieNode<V>, string]> } {
    const levels = filter.split('/');
    const path: Array<[TrieNode<V>, string]> = [];
    let node: TrieNode<V> | undefined = this.#root;
    const last = levels.length - 1;
    for (let i = 0; i < levels.length && node; i++) {
      const level = levels[i]!;
      if (level === '#' && i === last) return { map: node.hash, path: [...path, [node, '#']] };
      path.push([node, level]);
      node = level === '+' ? node.plus : node.children.get(level);
    }
    return { map: node?.entries, path: node ? [...path, [node, '']] : path };
  }

  get(filter: string, key: string): V | undefined {
    return this.#find(filter).map?.get(key);
  }

  /** Removes (filter, key); returns the removed value or undefined. Prunes empty nodes. */
  remove(filter: string, key: string): V | undefined {
    const { map, path } = this.#find(filter);
    if (!map || !map.has(key)) return undefined;
    const value = map.get(key);
    map.delete(key);
    this.#size--;
    // Prune from the leaf upwards: path[i] = [node, level taken from node to reach path[i+1]].
    for (let i = path.length - 2; i >= 0; i--) {
      const [parent, level] = path[i]!;
      const child = path[i + 1]![0];
      if (!child.isEmpty()) break;
      if (level === '+') parent.plus = undefined;
      else parent.children.delete(level);
    }
    return value;
  }

  /**
   * Calls fn for every entry whose filter matches the topic name. The topic is walked by index
   * (no split array per call); `ctx` is passed through to fn so callers need no closure.
   */
  match<C>(topic: string, fn: (this: C, value: V, key: string, filter: string) => void, ctx?: C): void {
    // [MQTT-4.7.2-1] a filter starting with a wildcard does not match a topic starting with '$'.
    const dollar = topic.charCodeAt(0) === 0x24;
    this.#walk(this.#root, topic, 0, dollar, fn, ctx as C);
  }

  /** `start` is where the level to match begins; topic.length + 1 once every level is matched. */
  #walk<C>(node: TrieNode<V>, topic: string, start: number, noWildcard: boolean, fn: (this: C, value: V, key: string, filter: string) => void, ctx: C): void {
    // '#' matches the parent level too ('sport/#' matches 'sport') [MQTT-4.7.1-2].
    if (node.hash !== undefined && !noWildcard) {
      for (const [key, value] of node.hash) fn.call(ctx, value, key, node.hashFilter);
    }
    if (start > topic.length) {
      if (node.entries !== undefined) for (const [key, value] of node.entries) fn.call(ctx, value, key, node.filter);
      return;
    }
    let end = topic.indexOf('/', start);
    if (end === -1) end = topic.length;
    if (node.children.size > 0) {
      const child = node.children.get(topic.slice(start, end));
      if (child !== undefined) this.#walk(child, topic, end + 1, false, fn, ctx);
    }
    if (node.plus !== undefined && !noWildcard) this.#walk(node.plus, topic, end + 1, false, fn, ctx);
  }
}
