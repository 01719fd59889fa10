/**
 * Whether one topic filter matches one topic name (MQTT 5.0 §4.7): for the rare single checks
 * where a trie is not worth it (a handful of filters of a session that moved to another node).
 * A filter starting with a wildcard does not match a topic starting with `$` [MQTT-4.7.2-1].
 */
export function filterMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
