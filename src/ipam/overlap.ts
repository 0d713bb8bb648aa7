// Why two pools never hand out one address, even with no webhook and two agents allocating at the same moment.
//
// Rule: an address of pool P is unusable while it lies in the `ips − excludeIPs` of another pool, or is
// recorded in another pool's `status.allocatedIPs` (terminating and disabled pools included). Both are read
// from the agent's pool cache, and a decision counts only when that cache holds the very spec of P that the
// commit writes against: the pool read at commit time must have the cached `uid` and `metadata.generation`
// (which the API server bumps on every spec change and on deletion), and the status write carries the read
// resourceVersion, so the spec cannot change between the decision and the write. Otherwise the agent waits for
// its cache to catch up and decides again (cacheView answers StalePoolViewError).
//
// Why that needs no lock: each agent's cache is one list+watch of every pool, i.e. a consistent prefix of
// etcd's history at some revision w. Say agent 1 records x in A at c1 using snapshot w1 ≤ c1, and agent 2
// records x in B at c2 using w2 ≤ c2, with A's spec holding x over [sA, eA) ∋ w1, c1 and B's over
// [sB, eB) ∋ w2, c2. Take c1 < c2 while A's record is still there. If w2 ≥ c1, agent 2's snapshot shows
// the record of x in A: refused. If w2 < c1, then w2 ∉ [sA, eA) (else A's spec shows x) and w2 < c1 < eA, so
// w2 < sA ≤ w1; hence sB ≤ w2 < w1 ≤ c1 < c2 < eB and agent 1's snapshot shows x in B's spec: refused.
// Recording the claim in every overlapping pool would need a multi-object transaction the API lacks; refusing
// the overlap is what upstream's webhook intends anyway, so a valid cluster never notices the rule.

import { type AllocatedIPs, decodeAllocatedIPs } from "../api/allocated.ts";
import { KIND } from "../api/constants.ts";
import type { SpiderIPPool } from "../api/types.ts";
import { usableAddresses as specAddresses } from "../api/validate/common.ts";
import { type Family, IPRangeSet, parseIP } from "../ip/mod.ts";
import { admittedPool, poolFamily, usableAddresses } from "./pool.ts";

/** Addresses of one pool that another pool also claims. */
export interface Overlap {
  /** The other pool. */
  pool: string;
  /** In the other pool's `ips − excludeIPs`. */
  listed: IPRangeSet;
  /** Recorded in the other pool's `status.allocatedIPs` (and not in `listed`). */
  held: IPRangeSet;
}

/** What one pool claims, per family: its listed addresses and its records. */
interface Claim {
  listed: IPRangeSet;
  held: IPRangeSet;
}

const claimMemo = new WeakMap<SpiderIPPool, Map<Family, Claim>>();

/**
 * The addresses `pool` claims in `family`: `ips − excludeIPs` as written (subnet and gateway not applied: an
 * older agent may hand them out) and every recorded address. A spec whose ranges do not parse claims its
 * records only; a status that does not decode claims nothing beyond its spec.
 */
export function poolClaim(pool: SpiderIPPool, family: Family): Claim {
  let byFamily = claimMemo.get(pool);
  if (byFamily === undefined) claimMemo.set(pool, byFamily = new Map());
  let claim = byFamily.get(family);
  if (claim === undefined) {
    const listed =
      (poolFamily(pool) === family ? specAddresses(admittedPool(pool).spec, family) : undefined) ??
        IPRangeSet.empty(family);
    let records: AllocatedIPs = {};
    try {
      records = decodeAllocatedIPs(pool.status?.allocatedIPs, pool.metadata.name);
    } catch {
      // A corrupt status cannot be trusted either way; the pool itself refuses to allocate until it is fixed.
    }
    const ranges = [];
    for (const ip of Object.keys(records)) {
      const p = parseIP(ip); // decodeAllocatedIPs checked every key
      if (p.family === family) ranges.push({ start: p.value, end: p.value });
    }
    claim = { listed, held: IPRangeSet.fromRanges(family, ranges) };
    byFamily.set(family, claim);
  }
  return claim;
}

/**
 * The parts of `usable` (addresses of the pool named `pool`) that each other pool of `others` claims; pools
 * with nothing in common are left out. `others` may include the pool itself (skipped by name).
 *
 * ```ts
 * overlapsWith("a", IPRangeSet.parse(4, ["203.0.113.230-203.0.113.231"]), [a, b]);
 * // [{ pool: "b", listed: 203.0.113.230-203.0.113.231, held: ∅ }]
 * ```
 */
export function overlapsWith(
  pool: string,
  usable: IPRangeSet,
  others: Iterable<SpiderIPPool>,
): Overlap[] {
  const out: Overlap[] = [];
  if (usable.isEmpty()) return out;
  for (const other of others) {
    const name = other.metadata?.name;
    if (name === pool) continue;
    const claim = poolClaim(other, usable.family);
    const listed = usable.intersect(claim.listed);
    const held = usable.intersect(claim.held).subtract(listed);
    if (!listed.isEmpty() || !held.isEmpty()) out.push({ pool: name, listed, held });
  }
  return out.sort((a, b) => a.pool.localeCompare(b.pool));
}

/** Every address the overlaps make unusable. */
export function blockedBy(family: Family, overlaps: readonly Overlap[]): IPRangeSet {
  return overlaps.reduce((acc, o) => acc.union(o.listed).union(o.held), IPRangeSet.empty(family));
}

/** `203.0.113.230-203.0.113.231 also in SpiderIPPool "b"; 192.0.2.9 held by SpiderIPPool "c"`. */
export function describeOverlaps(overlaps: readonly Overlap[]): string {
  const parts: string[] = [];
  for (const o of overlaps) {
    if (!o.listed.isEmpty()) {
      parts.push(`${shown(o.listed)} also in ${KIND.ippool} ${JSON.stringify(o.pool)}`);
    }
    if (!o.held.isEmpty()) parts.push(`${shown(o.held)} held by ${KIND.ippool} ${JSON.stringify(o.pool)}`);
  }
  return parts.join("; ");
}

function shown(set: IPRangeSet): string {
  const s = set.toStrings();
  return s.length <= 3 ? s.join(", ") : `${s.slice(0, 3).join(", ")} and ${s.length - 3} more ranges`;
}

/**
 * The agent's cache does not (yet) hold the spec of a pool that the API server returned: deciding with it
 * could miss an overlapping pool. The caller waits for the cache to reach `uid` at `generation`, then decides
 * again.
 */
export class StalePoolViewError extends Error {
  readonly pool: string;
  readonly uid: string;
  readonly generation: number;
  /** `seen`: what the agent had instead, e.g. `cached at generation 2`. */
  constructor(pool: string, uid: string, generation: number, seen: string) {
    super(
      `${KIND.ippool} ${
        JSON.stringify(pool)
      } is at generation ${generation} (UID ${uid}) in the API server ` +
        `but ${seen} in this agent; deciding again once the agent's watch has caught up`,
    );
    this.name = "StalePoolViewError";
    this.pool = pool;
    this.uid = uid;
    this.generation = generation;
  }
}

/**
 * The overlaps of `fresh` (the pool as just read from the API server) against `cached` (every pool of the
 * agent's cache, one snapshot), or a StalePoolViewError when the snapshot does not hold `fresh`'s spec. An
 * invalid `fresh` has no overlaps (it hands out nothing).
 */
export function cacheView(
  fresh: SpiderIPPool,
  cached: readonly SpiderIPPool[],
): { overlaps: Overlap[] } | { stale: StalePoolViewError } {
  const name = fresh.metadata.name;
  const mine = cached.find((p) => p.metadata.name === name);
  const uid = fresh.metadata.uid ?? "";
  const generation = fresh.metadata.generation ?? 0;
  if (mine === undefined) return { stale: new StalePoolViewError(name, uid, generation, "not cached yet") };
  if (mine.metadata.uid !== fresh.metadata.uid) {
    return { stale: new StalePoolViewError(name, uid, generation, `cached with UID ${mine.metadata.uid}`) };
  }
  if (mine.metadata.generation !== fresh.metadata.generation) {
    const seen = `cached at generation ${mine.metadata.generation ?? "(none)"}`;
    return { stale: new StalePoolViewError(name, uid, generation, seen) };
  }
  let usable: IPRangeSet;
  try {
    usable = usableAddresses(fresh).usable;
  } catch {
    return { overlaps: [] };
  }
  return { overlaps: overlapsWith(name, usable, cached) };
}
