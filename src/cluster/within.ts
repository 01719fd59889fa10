/** A bound on waiting for Redis when stopping: a node or store that cannot reach it still stops. */

/** Runs `f`, giving up (rejecting) after `ms`. */
export async function within<T>(ms: number, f: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      f(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`gave up after ${ms} ms (Redis unreachable)`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
