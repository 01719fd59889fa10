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

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
