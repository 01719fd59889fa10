/**
 * mosquitto_sub's output: plain payload, `-v` (topic payload), `-N` (no newline), and `-F`'s
 * format language: %t topic, %p payload, %x/%X payload as hex, %l length, %q QoS, %r retain,
 * %m message id (0 here), %I ISO 8601 time, %U Unix time with nanoseconds, %j/%J JSON, %C content
 * type, %D correlation data, %E message expiry, %F payload format indicator, %P user properties,
 * %R response topic, %S subscription identifiers, %% percent; escapes \n \t \r \\ \0 \e \a.
 * Not done: field widths and precision, and `@` strftime codes.
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

export function formatMessage(fmt: string, m: Message): string {
  let out = '';
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i]!;
    if (c === '\\' && i + 1 < fmt.length) {
      const e = ESCAPES[fmt[++i]!];
      out += e ?? `\\${fmt[i]}`;
      continue;
    }
    if (c !== '%' || i + 1 >= fmt.length) {
      out += c;
      continue;
    }
    const code = fmt[++i]!;
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
      case 'I':
        out += new Date().toISOString().replace(/\.\d+Z$/, 'Z');
        break;
      case 'U': {
        const ms = Date.now();
        out += `${Math.floor(ms / 1000)}.${String((ms % 1000) * 1_000_000).padStart(9, '0')}`;
        break;
      }
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
  }
  return out;
}

/** One output line (or record) for `m` as -F / -v / -N ask. */
export function render(m: Message, opts: { format: string | undefined; verbose: boolean; eol: boolean }): string {
  if (opts.format !== undefined) return formatMessage(opts.format, m) + (opts.eol ? '\n' : '');
  const body = decoder.decode(m.payload);
  return (opts.verbose ? `${m.topic} ${body}` : body) + (opts.eol ? '\n' : '');
}
