// Helpers shared by the unit tests and the IP benchmark.

/**
 * Deterministic PRNG (mulberry32) returning numbers in [0, 1), so a randomized test that fails reproduces from
 * its printed seed.
 *
 * ```ts
 * const rand = prng(5952);
 * rand(); // the same first number on every run
 * ```
 */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
