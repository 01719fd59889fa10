/**
 * Outbound topic aliases (MQTT 5.0 §3.3.2.3.4), when enabled: each topic published gets an alias
 * from 1 to the limit (the server's Topic Alias Maximum, capped by the `topicAliases` option);
 * the first PUBLISH of a topic on a connection carries the topic and the alias, later ones an
 * empty topic and the alias. Past the limit the least recently used topic gives up its alias to
 * the new one (sent with its topic, which remaps the alias). Mappings last one connection
 * [MQTT-3.3.2-7], so reset() starts afresh on each. The packets kept for resending keep their
 * topic: aliases are applied only to what is written.
 */
import type { PublishPacket } from '../../../src/protocol/packets.js';

export class TopicAliases {
  #max = 0;
  /** Topic → alias, least recently used first (a Map keeps insertion order). */
  readonly #byTopic = new Map<string, number>();
  #next = 1;

  /** A new connection: no alias is known to the server; at most `max` (0: aliases off). */
  reset(max: number): void {
    this.#max = max;
    this.#byTopic.clear();
    this.#next = 1;
  }

  /** Aliases in use now. */
  get size(): number {
    return this.#byTopic.size;
  }

  /** The PUBLISH to write for `p`: `p` itself when aliases are off. */
  apply(p: PublishPacket): PublishPacket {
    if (this.#max === 0) return p;
    const topic = p.topic;
    const known = this.#byTopic.get(topic);
    if (known !== undefined) {
      this.#byTopic.delete(topic); // most recently used: to the end
      this.#byTopic.set(topic, known);
      // The server maps the alias back to its topic [MQTT-3.3.2-12].
      return { ...p, topic: '', properties: { ...p.properties, topicAlias: known } };
    }
    let alias: number;
    if (this.#next <= this.#max) alias = this.#next++;
    else {
      const [oldest, a] = this.#byTopic.entries().next().value as [string, number];
      this.#byTopic.delete(oldest);
      alias = a;
    }
    this.#byTopic.set(topic, alias);
    return { ...p, properties: { ...p.properties, topicAlias: alias } };
  }
}
