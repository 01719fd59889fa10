/**
 * Redis protocol (RESP2 and RESP3) framing for tests that look at the bytes a FaultProxy
 * carries: where each complete top-level value of a stream ends, and a request's items.
 */

export interface RespFrame {
  /** Offset just past the value. */
  end: number;
  /** A request (an array of bulk strings): its items, e.g. ['EVALSHA', sha, '2', ...]. */
  items: Buffer[] | undefined;
}

/** The complete top-level values at the start of `buf` (an incomplete last one is left out). */
export function respFrames(buf: Buffer): RespFrame[] {
  const frames: RespFrame[] = [];
  let pos = 0;
  for (;;) {
    const items: Buffer[] = [];
    const end = value(buf, pos, items, true);
    if (end < 0) return frames;
    frames.push({ end, items: buf[pos] === 0x2a ? items : undefined });
    pos = end;
  }
}

/** A request's items as text (latin1: byte for byte). */
export function requestArgs(frame: RespFrame): string[] {
  return (frame.items ?? []).map((b) => b.toString('latin1'));
}

/** The end of the value at `pos`, or -1 when `buf` holds only part of it. */
function value(buf: Buffer, pos: number, items: Buffer[], top: boolean): number {
  if (pos >= buf.length) return -1;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return -1;
  const type = String.fromCharCode(buf[pos]!);
  const n = Number(buf.toString('latin1', pos + 1, eol));
  const next = eol + 2;
  switch (type) {
    case '$':
    case '!':
    case '=': {
      if (n < 0) return next;
      if (buf.length < next + n + 2) return -1;
      if (!top) items.push(buf.subarray(next, next + n));
      return next + n + 2;
    }
    case '*':
    case '~':
    case '>':
    case '%':
    case '|': {
      if (n < 0) return next;
      const count = type === '%' || type === '|' ? 2 * n : n;
      let at = next;
      for (let i = 0; i < count; i++) {
        at = value(buf, at, items, false);
        if (at < 0) return -1;
      }
      return at;
    }
    default:
      // Simple string, error, integer, null, boolean, double, big number.
      return next;
  }
}
