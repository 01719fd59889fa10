/**
 * The CLI's structured logger: pino, one JSON object per line, to stdout by default. The library
 * itself logs nothing unless it is handed a logger (see `BrokerOptions.logger`).
 */
import { pino, type Logger as PinoLogger, type DestinationStream } from 'pino';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

export interface CreateLoggerOptions {
  level?: LogLevel;
  /** Where the JSON lines go: a file descriptor (default 1, stdout) or any writable stream. */
  destination?: number | DestinationStream;
  /**
   * One readable line per event instead of JSON. Default: when the destination is a terminal
   * (file descriptor 1 or 2 with `isTTY`), unless COURIER_LOG_FORMAT=json.
   */
  readable?: boolean;
}

const LEVEL_WIDTH = 5;

/** `{"level":"info","time":"...","msg":"x","clientId":"a"}` → `09:12:01.123 INFO  x  clientId=a`. */
export function readableLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const { level, time, msg, pid: _pid, name: _name, ...rest } = o;
  const t = typeof time === 'string' ? time.slice(11, 23) : '';
  const fields = Object.entries(rest)
    .map(([k, v]) => {
      if (k === 'err' && typeof v === 'object' && v !== null) {
        const e = v as { message?: unknown; stack?: unknown };
        return `err=${JSON.stringify(e.message ?? '')}${typeof e.stack === 'string' ? `\n${e.stack}` : ''}`;
      }
      const text = typeof v === 'string' ? (/[\s="]/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v);
      return `${k}=${text}`;
    })
    .join(' ');
  const lvl = String(level ?? '')
    .toUpperCase()
    .padEnd(LEVEL_WIDTH);
  return `${t} ${lvl} ${String(msg ?? '')}${fields === '' ? '' : `  ${fields}`}\n`;
}

/** A destination that writes readable lines to `out` (pino hands it one JSON line per write). */
export function readableDestination(out: { write(text: string): unknown }): DestinationStream {
  return { write: (line: string) => void out.write(readableLine(line)) };
}

export type CourierLogger = PinoLogger;

export function createLogger(options: CreateLoggerOptions = {}): CourierLogger {
  const dest = options.destination ?? 1;
  // Synchronous writes to a descriptor: the last line before exit (shutdown, fatal error) is never lost.
  let stream = typeof dest === 'number' ? pino.destination({ dest, sync: true }) : dest;
  const tty = (dest === 1 && process.stdout.isTTY === true) || (dest === 2 && process.stderr.isTTY === true);
  if (options.readable ?? (tty && process.env.COURIER_LOG_FORMAT !== 'json')) stream = readableDestination(stream);
  return pino(
    {
      name: 'courier',
      level: options.level ?? DEFAULT_LOG_LEVEL,
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level as its name ("info"), not pino's number: readable and greppable.
      formatters: { level: (label) => ({ level: label }) },
      base: { pid: process.pid },
    },
    stream,
  );
}
