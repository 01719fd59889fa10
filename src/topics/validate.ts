/**
 * Topic name and topic filter rules (MQTT 3.1.1 §4.7, MQTT 5.0 §4.7 and §4.8.2).
 * Functions return null when the input is valid, else a short reason for logs and reason strings.
 */

import { utf8ByteLength } from '../protocol/bytes.js';

export interface TopicLimits {
  /** Longest topic in UTF-8 bytes; default 65535 (the longest a UTF-8 string field can be). */
  maxLength?: number;
  /** Most levels ('/'-separated parts); default unlimited. */
  maxLevels?: number;
}

export interface SharedFilter {
  group: string;
  filter: string;
}

const SHARE_PREFIX = '$share/';

function checkCommon(s: string, what: string, limits: TopicLimits | undefined): string | null {
  // [MQTT-4.7.3-1] topic names and filters are at least one character long.
  if (s.length === 0) return `${what} is empty`;
  // [MQTT-4.7.3-2] no U+0000.
  if (s.includes('\u0000')) return `${what} contains U+0000`;
  const maxLength = limits?.maxLength ?? 65535;
  // Cheap bound first: UTF-8 takes at least one byte per UTF-16 unit and at most three.
  if (s.length * 3 > maxLength && utf8ByteLength(s) > maxLength) return `${what} is longer than ${maxLength} bytes`;
  if (limits?.maxLevels !== undefined) {
    let levels = 1;
    for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 0x2f) levels++;
    if (levels > limits.maxLevels) return `${what} has more than ${limits.maxLevels} levels`;
  }
  return null;
}

/** A topic name a client may publish to. */
export function checkTopicName(topic: string, limits?: TopicLimits): string | null {
  const common = checkCommon(topic, 'topic name', limits);
  if (common) return common;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    // [MQTT-3.3.2-2] / [MQTT-4.7.1-1] wildcards are not allowed in topic names.
    if (c === 0x23 || c === 0x2b) return 'topic name contains a wildcard';
  }
  return null;
}

function checkFilterLevels(filter: string): string | null {
  const n = filter.length;
  for (let i = 0; i < n; i++) {
    const c = filter.charCodeAt(i);
    if (c === 0x23) {
      // [MQTT-4.7.1-2] '#' occupies a whole level and is the last character.
      if (i !== n - 1) return "'#' is not the last character of the filter";
      if (i > 0 && filter.charCodeAt(i - 1) !== 0x2f) return "'#' does not occupy a whole level";
    } else if (c === 0x2b) {
      // [MQTT-4.7.1-3] '+' occupies a whole level.
      if ((i > 0 && filter.charCodeAt(i - 1) !== 0x2f) || (i < n - 1 && filter.charCodeAt(i + 1) !== 0x2f)) {
        return "'+' does not occupy a whole level";
      }
    }
  }
  return null;
}

/** A topic filter a client may subscribe to, including `$share/{group}/{filter}`. */
export function checkTopicFilter(filter: string, limits?: TopicLimits): string | null {
  const common = checkCommon(filter, 'topic filter', limits);
  if (common) return common;
  if (filter.startsWith(SHARE_PREFIX)) {
    const rest = filter.slice(SHARE_PREFIX.length);
    const slash = rest.indexOf('/');
    // [MQTT-4.8.2-1] ShareName is at least one character; the filter follows after a '/'.
    if (slash <= 0) return 'shared subscription needs $share/{group}/{filter}';
    const group = rest.slice(0, slash);
    // [MQTT-4.8.2-2] ShareName contains no '/', '+' or '#'.
    if (group.includes('+') || group.includes('#')) return 'shared subscription group contains a wildcard';
    const inner = rest.slice(slash + 1);
    if (inner.length === 0) return 'shared subscription has an empty topic filter';
    return checkFilterLevels(inner);
  }
  return checkFilterLevels(filter);
}

export function isWildcardFilter(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

/** '$share/{group}/{filter}' → {group, filter}; null when the filter is not a shared subscription. */
export function parseSharedFilter(filter: string): SharedFilter | null {
  if (!filter.startsWith(SHARE_PREFIX)) return null;
  const rest = filter.slice(SHARE_PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  return { group: rest.slice(0, slash), filter: rest.slice(slash + 1) };
}
