/**
 * Topic rules of a bridge, Mosquitto's semantics: a rule `filter` with `localPrefix` L and
 * `remotePrefix` R subscribes to `L + filter` here (out) and `R + filter` there (in); a message
 * on `L + rest` here is `R + rest` there and the other way round. An empty filter with prefixes
 * maps one topic to another (`topic "" out 0 local/a remote/b`). Pure: no I/O.
 */
import { checkTopicFilter, checkTopicName, filterMatches } from '../topics/index.js';
import type { BridgeTopic } from './types.js';

export interface TopicRule {
  readonly localFilter: string;
  readonly remoteFilter: string;
  readonly qos: 0 | 1 | 2;
  readonly in: boolean;
  readonly out: boolean;
  readonly localPrefix: string;
  readonly remotePrefix: string;
}

export function compileRule(t: BridgeTopic): TopicRule {
  const localPrefix = t.localPrefix ?? '';
  const remotePrefix = t.remotePrefix ?? '';
  return {
    localFilter: localPrefix + t.filter,
    remoteFilter: remotePrefix + t.filter,
    qos: t.qos ?? 0,
    in: t.direction !== 'out',
    out: t.direction !== 'in',
    localPrefix,
    remotePrefix,
  };
}

/** A local topic matched by `rule.localFilter`, as it is named on the remote. */
export function toRemote(rule: TopicRule, topic: string): string {
  return rule.remotePrefix + topic.slice(rule.localPrefix.length);
}

/** A remote topic matched by `rule.remoteFilter`, as it is named here. */
export function toLocal(rule: TopicRule, topic: string): string {
  return rule.localPrefix + topic.slice(rule.remotePrefix.length);
}

/** The first rule of `rules` that sends `topic` (a local topic) out, or undefined. */
export function outRuleFor(rules: readonly TopicRule[], topic: string): TopicRule | undefined {
  for (const r of rules) if (r.out && filterMatches(r.localFilter, topic)) return r;
  return undefined;
}

/** The first rule of `rules` that brings `topic` (a remote topic) in, or undefined. */
export function inRuleFor(rules: readonly TopicRule[], topic: string): TopicRule | undefined {
  for (const r of rules) if (r.in && filterMatches(r.remoteFilter, topic)) return r;
  return undefined;
}

/** Whether a message published on the remote's `topic` would come back to us through an `in` rule. */
export function comesBack(rules: readonly TopicRule[], remoteTopic: string): boolean {
  for (const r of rules) if (r.in && filterMatches(r.remoteFilter, remoteTopic)) return true;
  return false;
}

/** Why a rule is unusable (a message for the config error), or null. */
export function checkRule(t: BridgeTopic): string | null {
  const l = t.localPrefix ?? '';
  const r = t.remotePrefix ?? '';
  for (const [what, p] of [
    ['localPrefix', l],
    ['remotePrefix', r],
  ] as const) {
    if (/[+#]/.test(p)) return `${what} must not contain wildcards`;
  }
  if (t.filter === '') {
    if (l === '' || r === '') return 'an empty filter maps one topic to another: set both localPrefix and remotePrefix';
    return checkTopicName(l) ?? checkTopicName(r);
  }
  return checkTopicFilter(l + t.filter) ?? checkTopicFilter(r + t.filter);
}
