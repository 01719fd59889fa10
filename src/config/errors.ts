/** Config errors: each names the key path, the reason, the offending value and where it came from. */

export interface ConfigIssue {
  /** Key path, e.g. ['mqtt', 'maxPacketSize'] or ['listeners', 0, 'port']; [] for the whole document. */
  path: (string | number)[];
  /** What is wrong, e.g. 'must be an integer between 1 and 268435460'. */
  reason: string;
  /** The offending value, when there is one. */
  value?: unknown;
  hasValue: boolean;
  /** Where the value came from: a file path, an environment variable or a flag. */
  source?: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'ConfigError';
    this.issues = issues;
  }
  /** One line per issue, each starting with "config error: ". */
  get lines(): string[] {
    return this.issues.map(formatIssue);
  }
}

/** `['listeners', 0, 'port']` → `listeners[0].port`. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

function formatValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export function formatIssue(issue: ConfigIssue): string {
  const where = formatPath(issue.path);
  const extra: string[] = [];
  if (issue.hasValue) extra.push(`got ${formatValue(issue.value)}`);
  if (issue.source) extra.push(`from ${issue.source}`);
  const tail = extra.length ? ` (${extra.join(', ')})` : '';
  return `config error: ${where ? `${where}: ` : ''}${issue.reason}${tail}`;
}

/** Closest candidate within a small edit distance (a third of the word's length), for "did you mean" hints. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(1, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}
