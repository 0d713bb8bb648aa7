// First-fit address choice inside a pool (Spiderpool's `genRandomIP`, which despite its name is first-fit).
// Upstream once enumerated every address of the pool (issue #3541: minutes for a /10); here the cost depends
// only on the number of allocated addresses and of ranges, so a /64 pool is as fast as a /24.

import type { Range } from "./range.ts";
import type { IPRangeSet } from "./set.ts";

/**
 * The lowest address of `pool` that is neither in `excluded` nor in `allocated`; undefined when none is free.
 * `allocated` may hold duplicates and addresses outside the pool. Cost: one walk over the ranges plus a sort of
 * the allocated addresses that fall inside the pool.
 *
 * ```ts
 * const pool = IPRangeSet.parse(4, ["192.0.2.1-192.0.2.10"]);
 * firstFree(pool, IPRangeSet.parse(4, ["192.0.2.1"]), [0xc0000202n]); // 0xc0000203n (192.0.2.3)
 * ```
 */
export function firstFree(
  pool: IPRangeSet,
  excluded: IPRangeSet,
  allocated: Iterable<bigint>,
): bigint | undefined {
  const free = pool.subtract(excluded).ranges;
  if (free.length === 0) return undefined;
  const lo = free[0].start;
  const span = free[free.length - 1].end - lo;
  if (span <= 0xffffffffn) return firstFree32(free, lo, Number(span), allocated, pool.family === 4);
  return firstFreeBig(free, lo, span, allocated);
}

/**
 * Pools spanning at most 2^32 addresses (every IPv4 pool, IPv6 up to a /96): offsets from the lowest free
 * address are sorted natively in a Uint32Array and walked as plain numbers.
 */
function firstFree32(
  free: readonly Range[],
  lo: bigint,
  span: number,
  allocated: Iterable<bigint>,
  v4: boolean,
): bigint | undefined {
  const offsets: number[] = [];
  if (v4) {
    const base = Number(lo); // IPv4 values convert to numbers exactly: no bigint arithmetic per address
    for (const a of allocated) {
      const off = Number(a) - base;
      if (off >= 0 && off <= span) offsets.push(off);
    }
  } else {
    const hi = lo + BigInt(span);
    for (const a of allocated) if (a >= lo && a <= hi) offsets.push(Number(a - lo));
  }
  const taken = new Uint32Array(offsets).sort();
  let t = 0;
  for (const r of free) {
    // Walk the range and the sorted allocations together: each allocation at the candidate pushes it up by one.
    let candidate = Number(r.start - lo);
    const end = Number(r.end - lo);
    for (; t < taken.length && taken[t] <= end; t++) {
      if (taken[t] > candidate) break;
      if (taken[t] === candidate) candidate++;
    }
    if (candidate <= end) return lo + BigInt(candidate);
  }
  return undefined;
}

/**
 * Wider IPv6 pools: offsets sorted natively in a BigUint64Array when the span fits 64 bits (up to a /64), else
 * absolute values sorted by comparison; then the same walk on bigints.
 */
function firstFreeBig(
  free: readonly Range[],
  lo: bigint,
  span: bigint,
  allocated: Iterable<bigint>,
): bigint | undefined {
  const hi = lo + span;
  const inside: bigint[] = [];
  let base = lo;
  let taken: ArrayLike<bigint>;
  if (lo >> 64n === hi >> 64n) {
    // One /64 (the usual IPv6 pool): the low 64 bits are the offset from the /64, cheaper than a subtraction.
    base = lo - BigInt.asUintN(64, lo);
    for (const a of allocated) if (a >= lo && a <= hi) inside.push(BigInt.asUintN(64, a));
    taken = new BigUint64Array(inside).sort();
  } else if (span <= 0xffffffffffffffffn) {
    for (const a of allocated) if (a >= lo && a <= hi) inside.push(a - lo);
    taken = new BigUint64Array(inside).sort();
  } else {
    for (const a of allocated) if (a >= lo && a <= hi) inside.push(a - lo);
    taken = inside.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  }
  let t = 0;
  for (const r of free) {
    let candidate = r.start - base;
    const end = r.end - base;
    for (; t < taken.length && taken[t] <= end; t++) {
      if (taken[t] > candidate) break;
      if (taken[t] === candidate) candidate++;
    }
    if (candidate <= end) return base + candidate;
  }
  return undefined;
}
