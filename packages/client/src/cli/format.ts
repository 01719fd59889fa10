/**
 * mosquitto_sub's output: plain payload, `-v` (topic payload), `-N` (no newline), and `-F`'s
 * format language: %t topic, %p payload, %x/%X payload as hex, %l length, %q QoS, %r retain,
 * %m message id (0 here), %I ISO 8601 time, %U Unix time with nanoseconds, %j/%J JSON, %C content
 * type, %D correlation data, %E message expiry, %F payload format indicator, %P user properties,
 * %R response topic, %S subscription identifiers, %% percent; printf's flags `-` (left) and `0`,
 * a width and a `.precision` between % and the code, as mosquitto_sub applies them (applySpec);
 * `@` followed by a strftime code
 * (the receive time, local: @Y-@m-@dT@H:@M:@S, @N nanoseconds, @@ an @); escapes \n \t \r \\ \0 \e \a.
 */
import type { Message } from '../types.js';

const decoder = new TextDecoder();

function hex(b: Uint8Array, upper: boolean): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return upper ? s.toUpperCase() : s;
}

function jsonOf(m: Message, payloadAsJson: boolean): string {
  const text = decoder.decode(m.payload);
  let payload: unknown = text;
  if (payloadAsJson) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = text;
    }
  }
  return JSON.stringify({ tst: new Date().toISOString(), topic: m.topic, qos: m.qos, retain: m.retain ? 1 : 0, payloadlen: m.payload.length, payload });
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '0': '\0', e: '\x1b', a: '\x07' };

const pad2 = (n: number): string => String(n).padStart(2, '0');
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

/** The UTC offset of `d` as strftime's %z: +hhmm / -hhmm. */
function offset(d: Date): string {
  const o = -d.getTimezoneOffset();
  const a = Math.abs(o);
  return `${o < 0 ? '-' : '+'}${pad2(Math.floor(a / 60))}${pad2(a % 60)}`;
}

/** One strftime conversion of `d` (local time); undefined for a code not known. */
export function strftime(code: string, d: Date, nanos: number): string | undefined {
  switch (code) {
    case 'Y':
      return String(d.getFullYear());
    case 'y':
      return pad2(d.getFullYear() % 100);
    case 'm':
      return pad2(d.getMonth() + 1);
    case 'd':
      return pad2(d.getDate());
    case 'e':
      return String(d.getDate()).padStart(2, ' ');
    case 'H':
      return pad2(d.getHours());
    case 'I':
      return pad2(d.getHours() % 12 || 12);
    case 'M':
      return pad2(d.getMinutes());
    case 'S':
      return pad2(d.getSeconds());
    case 'N':
      return String(nanos).padStart(9, '0');
    case 'p':
      return d.getHours() < 12 ? 'AM' : 'PM';
    case 'j': {
      const start = new Date(d.getFullYear(), 0, 1);
      return String(Math.floor((d.getTime() - start.getTime()) / 86_400_000) + 1).padStart(3, '0');
    }
    case 'a':
      return DAYS[d.getDay()]!.slice(0, 3);
    case 'A':
      return DAYS[d.getDay()]!;
    case 'b':
    case 'h':
      return MONTHS[d.getMonth()]!.slice(0, 3);
    case 'B':
      return MONTHS[d.getMonth()]!;
    case 'u':
      return String(d.getDay() || 7);
    case 'w':
      return String(d.getDay());
    case 's':
      return String(Math.floor(d.getTime() / 1000));
    case 'z':
      return offset(d);
    case 'F':
      return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
    case 'T':
      return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    case 'R':
      return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
    case '@':
      return '@';
    default:
      return undefined;
  }
}

/** Conversions printed as numbers (`0` pads them; mosquitto_sub ignores their precision). */
const NUMERIC = new Set(['l', 'm', 'E', 'F']);
/** Printed as one character by mosquitto_sub, whatever the width. */
const FIXED = new Set(['q', 'r']);

interface Spec {
  left: boolean;
  zero: boolean;
  width: number | undefined;
  precision: number | undefined;
}

/**
 * A conversion's width and precision as mosquitto_sub applies them (checked against its output
 * in test/client/units.test.ts): strings as printf's %s; %p pads to the width and is cut to it;
 * %x / %X print at most width/2 bytes and half the payload; %q and %r ignore both.
 */
function applySpec(v: string, code: string, s: Spec): string {
  if (FIXED.has(code)) return v;
  const w = s.width ?? 0;
  let fill = ' ';
  if (NUMERIC.has(code)) {
    if (s.zero && !s.left) fill = '0'; // the precision is ignored
  } else if (code === 'p') {
    if (s.width !== undefined && v.length > w) v = v.slice(0, w);
  } else if (code === 'x' || code === 'X') {
    // With a width, mosquitto_sub 2.0 prints min(length/2, width/2) bytes (half the payload at most: its quirk, kept).
    if (s.width !== undefined) v = v.slice(0, 2 * Math.min(Math.floor(v.length / 4), Math.floor(w / 2)));
    if (s.zero && !s.left) fill = '0';
  } else if (s.precision !== undefined) v = v.slice(0, s.precision);
  if (v.length >= w) return v;
  return s.left ? v.padEnd(w, ' ') : v.padStart(w, fill);
}

/** `fmt` for `m`, received at `now` (ms since the epoch, `nanos` within the second). */
export function formatMessage(fmt: string, m: Message, now: number = Date.now(), nanos: number = (now % 1000) * 1_000_000): string {
  let out = '';
  let date: Date | undefined;
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i]!;
    if (c === '\\' && i + 1 < fmt.length) {
      const e = ESCAPES[fmt[++i]!];
      out += e ?? `\\${fmt[i]}`;
      continue;
    }
    if (c === '@' && i + 1 < fmt.length) {
      // An unknown code comes out as strftime leaves it: %code.
      const code = fmt[++i]!;
      out += strftime(code, (date ??= new Date(now)), nanos) ?? `%${code}`;
      continue;
    }
    if (c !== '%' || i + 1 >= fmt.length) {
      out += c;
      continue;
    }
    // %[-0][width][.precision]code
    const spec: Spec = { left: false, zero: false, width: undefined, precision: undefined };
    let j = i + 1;
    for (; fmt[j] === '-' || fmt[j] === '0'; j++) {
      if (fmt[j] === '-') spec.left = true;
      else spec.zero = true;
    }
    for (; j < fmt.length && fmt[j]! >= '0' && fmt[j]! <= '9'; j++) spec.width = (spec.width ?? 0) * 10 + Number(fmt[j]);
    if (fmt[j] === '.') {
      spec.precision = 0;
      for (j++; j < fmt.length && fmt[j]! >= '0' && fmt[j]! <= '9'; j++) spec.precision = spec.precision * 10 + Number(fmt[j]);
    }
    if (j >= fmt.length) {
      out += fmt.slice(i);
      break;
    }
    const code = fmt[j]!;
    const plain = j === i + 1;
    i = j;
    const before = out;
    out = '';
    const pr = m.properties;
    switch (code) {
      case '%':
        out += '%';
        break;
      case 't':
        out += m.topic;
        break;
      case 'p':
        out += decoder.decode(m.payload);
        break;
      case 'x':
      case 'X':
        out += hex(m.payload, code === 'X');
        break;
      case 'l':
        out += String(m.payload.length);
        break;
      case 'q':
        out += String(m.qos);
        break;
      case 'r':
        out += m.retain ? '1' : '0';
        break;
      case 'm':
        out += '0';
        break;
      case 'I': {
        // ISO 8601 in local time with its offset, as mosquitto_sub prints it (2026-12-05T14:20:01+0000).
        const d = (date ??= new Date(now));
        out += `${strftime('F', d, nanos)}T${strftime('T', d, nanos)}${offset(d)}`;
        break;
      }
      case 'U':
        out += `${Math.floor(now / 1000)}.${String(nanos).padStart(9, '0')}`;
        break;
      case 'j':
      case 'J':
        out += jsonOf(m, code === 'J');
        break;
      case 'C':
        out += pr.contentType ?? '';
        break;
      case 'D':
        out += pr.correlationData === undefined ? '' : decoder.decode(pr.correlationData);
        break;
      case 'E':
        out += pr.messageExpiryInterval === undefined ? '' : String(pr.messageExpiryInterval);
        break;
      case 'F':
        out += pr.payloadFormatIndicator === undefined ? '' : String(pr.payloadFormatIndicator);
        break;
      case 'P':
        out += (pr.userProperties ?? []).map(([k, v]) => `${k}:${v}`).join(' ');
        break;
      case 'R':
        out += pr.responseTopic ?? '';
        break;
      case 'S':
        out += (pr.subscriptionIdentifiers ?? []).join(',');
        break;
      default:
        out += `%${code}`;
    }
    out = before + (plain ? out : applySpec(out, code, spec));
  }
  return out;
}

/** One output line (or record) for `m` as -F / -v / -N ask. */
export function render(m: Message, opts: { format: string | undefined; verbose: boolean; eol: boolean }): string {
  if (opts.format !== undefined) return formatMessage(opts.format, m) + (opts.eol ? '\n' : '');
  const body = decoder.decode(m.payload);
  return (opts.verbose ? `${m.topic} ${body}` : body) + (opts.eol ? '\n' : '');
}
