/**
 * Flags as mosquitto_pub/sub/rr spell them: short (-t) and long (--topic) forms, values as the
 * next argument, repeatable flags collected, and `-D command identifier value` (three values).
 */
export interface FlagSpec {
  short?: string;
  long: string;
  /** Values taken: 0 (a switch), 1, or 3 (-D). */
  values: 0 | 1 | 3;
  repeat?: boolean;
}

export type Parsed = Map<string, string[]>;

export class UsageError extends Error {}

export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[]): Parsed {
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(`--${s.long}`, s);
    if (s.short !== undefined) byName.set(`-${s.short}`, s);
  }
  const out: Parsed = new Map();
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    let inline: string | undefined;
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    if (eq > 0) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const spec = byName.get(arg);
    if (spec === undefined) throw new UsageError(`unknown option ${arg}`);
    const prev = out.get(spec.long);
    if (prev !== undefined && !spec.repeat && spec.values !== 0) throw new UsageError(`${arg} given twice`);
    const vals = prev ?? [];
    if (spec.values === 0) vals.push('1');
    else if (inline !== undefined && spec.values === 1) vals.push(inline);
    else {
      if (i + spec.values >= argv.length) throw new UsageError(`${arg} needs ${spec.values === 1 ? 'a value' : `${spec.values} values`}`);
      for (let k = 0; k < spec.values; k++) vals.push(argv[++i]!);
      // mosquitto's `-D command user-property NAME VALUE` (four values): kept as one NAME\0VALUE
      // (NUL cannot occur in an MQTT string [MQTT-1.5.4-2]); `NAME=VALUE` as the third value also works.
      const next = argv[i + 1];
      if (spec.long === 'property' && vals.at(-2) === 'user-property' && next !== undefined && !next.startsWith('-'))
        vals.push(`${vals.pop()!}\0${argv[++i]!}`);
    }
    out.set(spec.long, vals);
  }
  return out;
}

export const one = (p: Parsed, name: string): string | undefined => p.get(name)?.at(-1);
export const has = (p: Parsed, name: string): boolean => p.has(name);
export const all = (p: Parsed, name: string): string[] => p.get(name) ?? [];

export function int(p: Parsed, name: string, min: number, max: number): number | undefined {
  const v = one(p, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer in ${min}..${max}, got ${v}`);
  return n;
}
