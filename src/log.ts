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
}

export type CourierLogger = PinoLogger;

export function createLogger(options: CreateLoggerOptions = {}): CourierLogger {
  const dest = options.destination ?? 1;
  // Synchronous writes to a descriptor: the last line before exit (shutdown, fatal error) is never lost.
  const stream = typeof dest === 'number' ? pino.destination({ dest, sync: true }) : dest;
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
