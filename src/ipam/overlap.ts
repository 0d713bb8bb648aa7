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
//
// Cost: a record inside its pool's own `ips − excludeIPs` is already blocked through that set, so only records
// outside it count. Under one spec generation those are only ever removed (every new record is a usable
// address of that spec), so they are computed once per pool generation (PoolClaims) from the first version the
// agent looks at: a superset of the truth later on, which is safe. A plan then costs two comparisons per
// disjoint pool, not a decode of every pool's records on every status write.

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
  /** Recorded in the other pool's `status.allocatedIPs` outside its `ips − excludeIPs`. */
  held: IPRangeSet;
}

/** What one pool claims in one family, with the bounds of `listed ∪ held` for a quick disjointness test. */
export interface Claim {
  listed: IPRangeSet;
  held: IPRangeSet;
  lo?: bigint;
  hi?: bigint;
}

/** Specs remembered before the memory is dropped and rebuilt (pools come and go; the memory must not grow). */
const MAX_REMEMBERED = 20_000;

/**
 * What each pool claims, remembered per pool spec (`uid` and `metadata.generation`; objects without them, such
 * as those of unit tests, per object). One per agent: see the module comment for why a claim may be remembered
 * across status writes of the same generation.
 */
export class PoolClaims {
  readonly #bySpec = new Map<string, Map<Family, Claim>>();
  readonly #byObject = new WeakMap<SpiderIPPool, Map<Family, Claim>>();

  /**
   * The addresses `pool` claims in `family`: `ips − excludeIPs` as written (subnet and gateway not applied: an
   * older agent may hand them out) and its records outside that set. A spec whose ranges do not parse claims
   * its records only; a status that does not decode claims nothing beyond its spec (such a pool refuses to
   * allocate until it is fixed).
   */
  claimOf(pool: SpiderIPPool, family: Family): Claim {
    const { uid, generation } = pool.metadata ?? {};
    const key = uid && generation !== undefined ? `${uid}\u0000${generation}` : undefined;
    let byFamily = key !== undefined ? this.#bySpec.get(key) : this.#byObject.get(pool);
    if (byFamily === undefined) {
      byFamily = new Map();
      if (key === undefined) this.#byObject.set(pool, byFamily);
      else {
        if (this.#bySpec.size >= MAX_REMEMBERED) this.#bySpec.clear();
        this.#bySpec.set(key, byFamily);
      }
    }
    let claim = byFamily.get(family);
    if (claim === undefined) {
      claim = claimNow(pool, family);
      byFamily.set(family, claim);
    }
    return claim;
  }
}

function claimNow(pool: SpiderIPPool, family: Family): Claim {
  const listed = (poolFamily(pool) === family ? specAddresses(admittedPool(pool).spec, family) : undefined) ??
    IPRangeSet.empty(family);
  let records: AllocatedIPs = {};
  try {
    records = decodeAllocatedIPs(pool.status?.allocatedIPs, pool.metadata?.name ?? "");
  } catch {
    // A corrupt status cannot be trusted either way; the pool itself refuses to allocate until it is fixed.
  }
  const ranges = [];
  for (const ip of Object.keys(records)) {
    const p = parseIP(ip); // decodeAllocatedIPs checked every key
    if (p.family === family && !listed.has(p.value)) ranges.push({ start: p.value, end: p.value });
  }
  const held = IPRangeSet.fromRanges(family, ranges);
  const all = listed.union(held);
  return { listed, held, lo: all.first(), hi: all.ranges.at(-1)?.end };
}

/** The memory of pure callers that keep none of their own (CNI STATUS, tests). */
const sharedClaims = new PoolClaims();

/** What `pool` claims in `family` (see PoolClaims.claimOf). */
export function poolClaim(pool: SpiderIPPool, family: Family, claims: PoolClaims = sharedClaims): Claim {
  return claims.claimOf(pool, family);
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
  claims: PoolClaims = sharedClaims,
): Overlap[] {
  const out: Overlap[] = [];
  const lo = usable.first();
  const hi = usable.ranges.at(-1)?.end;
  if (lo === undefined || hi === undefined) return out;
  for (const other of others) {
    const name = other.metadata?.name;
    if (name === pool) continue;
    const claim = claims.claimOf(other, usable.family);
    if (claim.lo === undefined || claim.hi! < lo || claim.lo > hi) continue;
    const listed = usable.intersect(claim.listed);
    const held = usable.intersect(claim.held);
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
  claims: PoolClaims = sharedClaims,
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
  return { overlaps: overlapsWith(name, usable, cached, claims) };
}
