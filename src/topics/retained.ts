/**
 * Retained messages by topic name, with reverse matching: which stored topic names match a
 * (possibly wildcard) filter. Topics live in a level tree, so a filter with a literal prefix
 * only visits that subtree.
 */

class LevelNode<V> {
  readonly children = new Map<string, LevelNode<V>>();
  topic: string | undefined = undefined;
  value: V | undefined = undefined;
  has = false;
}

export class RetainedIndex<V> {
  readonly #root = new LevelNode<V>();
  readonly #byTopic = new Map<string, V>();

  get size(): number {
    return this.#byTopic.size;
  }

  set(topic: string, value: V): void {
    let node = this.#root;
    for (const level of topic.split('/')) {
      let next = node.children.get(level);
      if (!next) {
        next = new LevelNode<V>();
        node.children.set(level, next);
      }
      node = next;
    }
    node.topic = topic;
    node.value = value;
    node.has = true;
    this.#byTopic.set(topic, value);
  }

  get(topic: string): V | undefined {
    return this.#byTopic.get(topic);
  }

  delete(topic: string): boolean {
    if (!this.#byTopic.delete(topic)) return false;
    const levels = topic.split('/');
    const path: LevelNode<V>[] = [this.#root];
    let node = this.#root;
    for (const level of levels) {
      node = node.children.get(level)!;
      path.push(node);
    }
    node.has = false;
    node.value = undefined;
    node.topic = undefined;
    for (let i = path.length - 1; i > 0; i--) {
      const n = path[i]!;
      if (n.has || n.children.size > 0) break;
      path[i - 1]!.children.delete(levels[i - 1]!);
    }
    return true;
  }

  entries(): IterableIterator<[string, V]> {
    return this.#byTopic.entries();
  }

  /** Calls fn for every stored topic matching the filter. */
  match(filter: string, fn: (topic: string, value: V) => void): void {
    const levels = filter.split('/');
    this.#walk(this.#root, levels, 0, fn);
  }

  #walk(node: LevelNode<V>, levels: string[], i: number, fn: (topic: string, value: V) => void): void {
    if (i === levels.length) {
      if (node.has) fn(node.topic!, node.value as V);
      return;
    }
    const level = levels[i]!;
    if (level === '#') {
      // '#' matches the parent level itself and everything below it [MQTT-4.7.1-2].
      if (node.has && i > 0) fn(node.topic!, node.value as V);
      this.#all(node, i === 0, fn);
      return;
    }
    if (level === '+') {
      for (const [name, child] of node.children) {
        // [MQTT-4.7.2-1] a leading wildcard does not match topics starting with '$'.
        if (i === 0 && name.startsWith('$')) continue;
        this.#walk(child, levels, i + 1, fn);
      }
      return;
    }
    const child = node.children.get(level);
    if (child) this.#walk(child, levels, i + 1, fn);
  }

  #all(node: LevelNode<V>, atRoot: boolean, fn: (topic: string, value: V) => void): void {
    for (const [name, child] of node.children) {
      if (atRoot && name.startsWith('$')) continue;
      if (child.has) fn(child.topic!, child.value as V);
      this.#all(child, false, fn);
    }
  }
}
