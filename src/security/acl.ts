/**
 * ACL file: which topics a client may publish to and which filters it may subscribe to.
 *
 * Format (one statement per line; blank lines and lines whose first non-blank character is `#`
 * are comments; there are no end-of-line comments because `#` is a topic wildcard):
 *
 *     # Global rules: before any section, they apply to every client.
 *     topic read public/#
 *     pattern readwrite devices/%c/#
 *
 *     # Rules after `user NAME` apply to clients authenticated as NAME.
 *     user alice
 *     topic readwrite alice/#
 *     topic deny alice/secret/#
 *
 *     # Rules after `client ID` apply to the client whose client identifier is ID.
 *     client dashboard-1
 *     topic read sensors/#
 *
 * - `topic ACCESS FILTER`: ACCESS is `read`, `write`, `readwrite` or `deny`; FILTER is an MQTT
 *   topic filter (the rest of the line, trailing blanks removed; `$share/...` is not allowed).
 * - `pattern ACCESS FILTER`: the same, after substituting `%u` (the authenticated user name) and
 *   `%c` (the client identifier). A pattern that uses `%u` never applies to a client without a
 *   user name. A substituted value that is empty, contains `+`, `#` or `/`, or that would put a
 *   `$` at the start of the filter, never grants access, and makes a `deny` pattern deny
 *   everything: names cannot inject wildcards or levels.
 * - `user NAME` / `client ID` start a section (the rest of the line is the name); sections with
 *   the same name add up. Patterns in a section apply only to that section's clients.
 *
 * Decisions. The rules that apply to a request are the global ones, those of the `user` section
 * of its user name and those of the `client` section of its client identifier.
 * - Publish to topic T: denied when a `deny` rule matches T; else allowed when a `write` or
 *   `readwrite` rule matches T.
 * - Subscribe to filter F (for `$share/GROUP/F`, the filter F): denied when a `deny` rule overlaps
 *   F (some topic matches both); else allowed when a `read` or `readwrite` rule covers F (every
 *   topic F matches, the rule matches too): `read sensors/#` covers `sensors/+/temp`, while
 *   `read sensors/+/temp` does not cover `sensors/#`.
 * - Everything else is denied. An ACL file always means deny-by-default, so a file without rules
 *   denies everything.
 * Matching follows MQTT: filters starting with `+` or `#` do not match topics starting with `$`
 * [MQTT-4.7.2-1], so `$SYS/...` needs rules that name it.
 */
import { readFile } from 'node:fs/promises';
import { checkTopicFilter, parseSharedFilter } from '../topics/index.js';
import type { AuthorizationRequest, AuthorizationResult, Authorizer } from './types.js';
import { FileReloader, type FileWatchOptions } from './file-watch.js';

export type AclAccess = 'read' | 'write' | 'readwrite' | 'deny';
const ACCESS: readonly string[] = ['read', 'write', 'readwrite', 'deny'];
/** v5 reason code Not authorized. */
const NOT_AUTHORIZED = 0x87;

/** A parse error with its location; the message reads `file:line: reason`. */
export class AclFileError extends Error {
  readonly file: string;
  readonly line: number;
  readonly reason: string;
  constructor(file: string, line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'AclFileError';
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

interface Rule {
  access: AclAccess;
  /** The filter as written (with `%u`/`%c` for patterns). */
  filter: string;
  /** Levels of a `topic` rule; undefined for patterns (computed per request). */
  levels: string[] | undefined;
  usesUser: boolean;
  usesClient: boolean;
}

interface Rules {
  global: Rule[];
  users: Map<string, Rule[]>;
  clients: Map<string, Rule[]>;
  count: number;
}

/**
 * True when every topic that filter `f` matches is also matched by filter `r` (levels, split at
 * '/'). A topic name is a filter that matches only itself, so this is also "does `r` match topic
 * `f`". Wildcards in the first level do not match topics starting with '$' [MQTT-4.7.2-1].
 */
export function filterCovers(r: readonly string[], f: readonly string[]): boolean {
  for (let i = 0; ; i++) {
    const rl = r[i];
    const fl = f[i];
    if (rl === '#') return i > 0 || !fl!.startsWith('$');
    if (rl === undefined || fl === undefined) return rl === fl;
    // '#' first matches every topic without '$', as '+/#' does (a topic has at least one level).
    if (fl === '#') return i === 0 && rl === '+' && r[1] === '#';
    if (fl === '+') {
      if (rl !== '+') return false;
    } else if (rl === '+') {
      if (i === 0 && fl.startsWith('$')) return false;
    } else if (rl !== fl) {
      return false;
    }
  }
}

/** True when some topic matches both filters (levels, split at '/'). */
export function filtersOverlap(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; ; i++) {
    const al = a[i];
    const bl = b[i];
    if (al === '#' || bl === '#' || al === '+' || bl === '+') {
      // A wildcard level takes any value except, first, one starting with '$'.
      const other = al === '#' || al === '+' ? bl : al;
      if (i === 0 && other !== undefined && other !== '+' && other !== '#' && other.startsWith('$')) return false;
      if (al === '#' || bl === '#') return true;
      if (al === undefined || bl === undefined) return false;
      continue;
    }
    if (al === undefined || bl === undefined) return al === bl;
    if (al !== bl) return false;
  }
}

function parseRules(text: string, name: string): Rules {
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  const rules: Rules = { global: [], users: new Map(), clients: new Map(), count: 0 };
  let section = rules.global;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fail = (reason: string): never => {
      throw new AclFileError(name, lineNo, reason);
    };
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line)!;
    const keyword = m[1]!;
    const rest = m[2] ?? '';
    switch (keyword) {
      case 'user':
      case 'client': {
        if (rest === '') fail(`"${keyword}" needs a ${keyword === 'user' ? 'user name' : 'client identifier'}`);
        const map = keyword === 'user' ? rules.users : rules.clients;
        section = map.get(rest) ?? [];
        map.set(rest, section);
        break;
      }
      case 'topic':
      case 'pattern': {
        const usage = `expected "${keyword} <read|write|readwrite|deny> <filter>"`;
        const r = /^(\S+)(?:\s+(.*))?$/.exec(rest);
        if (!r) fail(`${usage}, got "${line}"`);
        const access = r![1]!;
        const filter = r![2] ?? '';
        if (!ACCESS.includes(access)) fail(`unknown access "${access}": ${usage}`);
        if (filter === '') fail(`missing topic filter: ${usage}`);
        const isPattern = keyword === 'pattern';
        // Placeholders stand for one level's worth of text; check the filter with a stand-in.
        const shape = isPattern ? filter.replace(/%[uc]/g, 'x') : filter;
        const bad = checkTopicFilter(shape);
        if (bad) fail(`invalid topic filter "${filter}": ${bad}`);
        if (parseSharedFilter(filter) || filter.startsWith('$share/')) {
          fail(`"${filter}": rules name plain filters; a $share/GROUP/FILTER subscription is checked against FILTER`);
        }
        section.push({
          access: access as AclAccess,
          filter,
          levels: isPattern ? undefined : filter.split('/'),
          usesUser: isPattern && filter.includes('%u'),
          usesClient: isPattern && filter.includes('%c'),
        });
        rules.count++;
        break;
      }
      default:
        fail(`unknown statement "${keyword}" (expected topic, pattern, user or client)`);
    }
  }
  return rules;
}

/** A value that is safe to put into a pattern: one whole level's worth of literal text. */
function safeValue(value: string): boolean {
  return value.length > 0 && !/[+#/]/.test(value);
}

/**
 * The levels a rule means for this client: 'none' when it does not apply, 'all' when a `deny`
 * pattern cannot be filled in safely (so it denies everything).
 */
function levelsFor(rule: Rule, username: string | undefined, clientId: string): string[] | 'none' | 'all' {
  if (rule.levels) return rule.levels;
  if (rule.usesUser && username === undefined) return 'none';
  const unsafe = rule.access === 'deny' ? 'all' : 'none';
  if (rule.usesUser && !safeValue(username!)) return unsafe;
  if (rule.usesClient && !safeValue(clientId)) return unsafe;
  const filter = rule.filter.replace(/%[uc]/g, (p) => (p === '%u' ? username! : clientId));
  // A name starting with '$' must not move the filter into the $-topic space ($SYS/...).
  if (filter.startsWith('$') && !rule.filter.startsWith('$')) return unsafe;
  return filter.split('/');
}

/** What `AclFile.check` needs of a request. */
export type AclRequest = Pick<AuthorizationRequest, 'action' | 'clientId' | 'username' | 'topic'>;

export class AclFile {
  /** The file path (or the name given to `parse`). */
  readonly path: string;
  readonly #fromFile: boolean;
  #rules: Rules;
  #reloader: FileReloader | undefined;

  private constructor(path: string, rules: Rules, fromFile: boolean) {
    this.path = path;
    this.#rules = rules;
    this.#fromFile = fromFile;
  }

  /** Reads and parses the file; rejects with AclFileError (file:line: reason) or the fs error. */
  static async load(path: string): Promise<AclFile> {
    return new AclFile(path, parseRules(await readFile(path, 'utf8'), path), true);
  }

  /** Parses ACL text; `name` appears in error messages. The result cannot `watch`. */
  static parse(text: string, name: string): AclFile {
    return new AclFile(name, parseRules(text, name), false);
  }

  /** Number of `topic` and `pattern` rules. */
  get ruleCount(): number {
    return this.#rules.count;
  }

  /** The decision for one request (see the file header). */
  check(req: AclRequest): boolean {
    const rules = this.#rules;
    let target = req.topic;
    if (req.action === 'subscribe' && target.startsWith('$share/')) {
      const shared = parseSharedFilter(target);
      if (!shared) return false;
      target = shared.filter;
    }
    const targetLevels = target.split('/');
    const wanted: AclAccess = req.action === 'publish' ? 'write' : 'read';
    let allowed = false;
    const consider = (list: readonly Rule[] | undefined): boolean => {
      if (!list) return true;
      for (const rule of list) {
        if (rule.access !== 'deny' && rule.access !== wanted && rule.access !== 'readwrite') continue;
        if (rule.access !== 'deny' && allowed) continue;
        const levels = levelsFor(rule, req.username, req.clientId);
        if (levels === 'none') continue;
        if (rule.access === 'deny') {
          if (levels === 'all' || filtersOverlap(levels, targetLevels)) return false;
        } else if (levels !== 'all' && filterCovers(levels, targetLevels)) {
          allowed = true;
        }
      }
      return true;
    };
    if (!consider(rules.global)) return false;
    if (req.username !== undefined && !consider(rules.users.get(req.username))) return false;
    if (!consider(rules.clients.get(req.clientId))) return false;
    return allowed;
  }

  /** The hook for the broker: allowed → true; denied → `{ allow: false, reasonCode: 0x87 }`. Never undefined. */
  authorizer(): Authorizer {
    return (req): AuthorizationResult => (this.check(req) ? true : { allow: false, reasonCode: NOT_AUTHORIZED });
  }

  /**
   * Reloads the file whenever it changes. A file that fails to parse keeps the previous rules and
   * is reported to `onError` (default: a process warning); `onReload` runs after each successful
   * reload. Calling `watch` again replaces the previous watch.
   */
  watch(onReload?: () => void, onError?: (err: Error) => void, options?: FileWatchOptions): void {
    if (!this.#fromFile) throw new Error(`${this.path}: not loaded from a file, nothing to watch`);
    this.#reloader?.close();
    const reload = async (): Promise<void> => {
      this.#rules = parseRules(await readFile(this.path, 'utf8'), this.path);
    };
    this.#reloader = new FileReloader(this.path, reload, onReload, onError, options);
  }

  /** Stops watching. */
  close(): void {
    this.#reloader?.close();
    this.#reloader = undefined;
  }
}
