/**
 * Named wildcards: 'sensors/+id/temp' subscribes to 'sensors/+/temp' and gives each message
 * `params.id`; 'logs/#rest' gives `params.rest` as the levels '#' matched. A '+' or '#' must fill
 * a whole level [MQTT-4.7.1-2], so '+name' cannot be mistaken for a topic level.
 */
import { parseSharedFilter } from '../../../src/topics/validate.js';

export interface CompiledFilter {
  /** The filter as sent in SUBSCRIBE (names stripped). */
  filter: string;
  /** The filter the topics are matched against (without a $share/group/ prefix). */
  match: string;
  /** Per level of `match`: the name of a named '+' or '#', else undefined. */
  names: Array<string | undefined> | undefined;
}

export function compileFilter(pattern: string): CompiledFilter {
  const levels = pattern.split('/');
  let names: Array<string | undefined> | undefined;
  const shared = pattern.startsWith('$share/') ? 2 : 0;
  for (let i = shared; i < levels.length; i++) {
    const l = levels[i]!;
    if (l.length > 1 && (l[0] === '+' || l[0] === '#')) {
      names ??= [];
      names[i - shared] = l.slice(1);
      levels[i] = l[0];
    }
  }
  const filter = levels.join('/');
  const share = shared ? parseSharedFilter(filter) : null;
  return { filter, match: share ? share.filter : filter, names };
}

export function paramsOf(c: CompiledFilter, topic: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const names = c.names;
  if (names === undefined) return out;
  const levels = topic.split('/');
  for (let i = 0; i < names.length; i++) {
    const n = names[i];
    if (n === undefined) continue;
    out[n] = i === names.length - 1 && c.match.endsWith('#') ? levels.slice(i) : (levels[i] ?? '');
  }
  return out;
}
