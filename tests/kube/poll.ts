// Bounded waiting for the tests and their harness: every wait on the cluster names what it waits for and ends
// with an error after a timeout.

/**
 * Calls `check` every 100–500 ms until it returns a value other than undefined; throws after `timeoutMs` with
 * `what` and the last error seen.
 *
 * @example
 * ```ts
 * const rs = await poll("the Deployment's ReplicaSet", 30_000, () => findReplicaSet(ns));
 * ```
 */
export async function poll<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  let lastError: unknown;
  while (true) {
    try {
      const v = await check();
      if (v !== undefined) return v;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError instanceof Error ? `; last error: ${lastError.message}` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
}
