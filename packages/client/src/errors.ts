/**
 * The client's errors. Every one has a stable `code`; refusals carry the MQTT `reasonCode` the
 * server answered with (3.1.1 CONNACK return codes are mapped to their 5.0 equivalents).
 */
export class ClientError extends Error {
  readonly code: string;
  readonly reasonCode: number | undefined;
  constructor(code: string, message: string, reasonCode?: number) {
    super(message);
    this.name = 'ClientError';
    this.code = code;
    this.reasonCode = reasonCode;
  }
}

/** The server refused something with a reason code ≥ 0x80 (CONNACK, PUBACK, PUBREC, SUBACK, UNSUBACK, DISCONNECT). */
export class RefusedError extends ClientError {
  /** 5.0 Server Reference of a CONNACK or DISCONNECT 0x9C (use another server) / 0x9D (server moved). */
  serverReference: string | undefined;
  constructor(what: string, reasonCode: number, reasonString?: string, serverReference?: string) {
    super('REFUSED', `${what} refused with reason code 0x${reasonCode.toString(16).padStart(2, '0')}${reasonString ? `: ${reasonString}` : ''}`, reasonCode);
    this.name = 'RefusedError';
    this.serverReference = serverReference;
  }
}

/** Reason codes of a redirect (5.0): 0x9C use another server (for now), 0x9D server moved (for good). */
export const USE_ANOTHER_SERVER = 0x9c;
export const SERVER_MOVED = 0x9d;

/**
 * Where a Server Reference points, from `current`: a URL as is, else `host[:port]` (an IPv6
 * address in brackets) with the current scheme and path; several references (space-separated): the first.
 */
export function redirectTarget(current: URL, reference: string): URL | undefined {
  const first = reference.trim().split(/\s+/)[0] ?? '';
  if (first === '') return undefined;
  try {
    if (first.includes('://')) return new URL(first);
    const u = new URL(current.href);
    u.host = first;
    if (!/:\d+$/.test(first)) u.port = '';
    return u.host === '' ? undefined : u;
  } catch {
    return undefined;
  }
}

/** `close()` was called (or the client stopped for good) before the operation finished. */
export class ClosedError extends ClientError {
  constructor(cause?: unknown) {
    super('CLOSED', cause instanceof Error ? `client closed: ${cause.message}` : 'client closed', cause instanceof ClientError ? cause.reasonCode : undefined);
    this.name = 'ClosedError';
    if (cause !== undefined) this.cause = cause;
  }
}

/** The offline queue is full (count or bytes): the publish was not taken. */
export class QueueFullError extends ClientError {
  constructor(detail: string) {
    super('QUEUE_FULL', `offline queue full (${detail})`);
    this.name = 'QueueFullError';
  }
}

/** Checked before sending: the packet would exceed what the server accepts (Maximum Packet Size, Maximum QoS, ...). */
export class LimitError extends ClientError {
  constructor(message: string) {
    super('LIMIT', message);
    this.name = 'LimitError';
  }
}

/** The connection could not be made or was lost, and the client is not reconnecting. */
export class ConnectionError extends ClientError {
  constructor(message: string, cause?: unknown) {
    super('CONNECTION', message);
    this.name = 'ConnectionError';
    if (cause !== undefined) this.cause = cause;
  }
}

/** The reason an aborted signal gives, as an Error. */
export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  const e = new Error(r === undefined ? 'aborted' : String(r));
  e.name = 'AbortError';
  return e;
}

/** 3.1.1 CONNACK return codes 1..5 as 5.0 reason codes. */
export function connackReason(code: number, version: number): number {
  if (version === 5 || code === 0) return code;
  return [0, 0x84, 0x85, 0x88, 0x86, 0x87][code] ?? 0x80;
}

/** CONNACK / DISCONNECT reason codes after which reconnecting cannot help. */
export const PERMANENT_REFUSALS: ReadonlySet<number> = new Set([0x84, 0x85, 0x86, 0x87, 0x8c, 0x8e, 0x95, 0x9a, 0x9b]);
