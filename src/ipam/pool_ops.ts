// The requests the agent and the IP GC queue on one SpiderIPPool (allocate, release, re-stamp a fixed IP) and
// the batch plan the group committer runs for them: decode `status.allocatedIPs` once, apply every request
// through the rules of src/ipam, encode once. Only glue lives here; each decision is an src/ipam call. Every
// request that may hand an address out is decided against the agent's pool cache only when that cache holds
// the spec just read (src/ipam/overlap.ts says why that keeps overlapping pools apart); otherwise it fails with
// StalePoolViewError and the agent retries once its cache has caught up. A batch of releases reads no cache.

import { type AllocatedIPs, decodeAllocatedIPs } from "../api/allocated.ts";
import type { SpiderIPPool } from "../api/types.ts";
import type { IPRangeSet } from "../ip/mod.ts";
import {
  type AllocationRequest,
  cacheView,
  chooseIPs,
  type Chosen,
  ensureIPs,
  type PoolClaims,
  poolStatusWith,
  releaseEach,
  restampIPs,
  StalePoolViewError,
  usableAddresses,
} from "./mod.ts";
import type { Outcome, Plan } from "../kube/pool_commit.ts";

/** What a batch plan reads besides the pool: the agent's caches, each read once per plan. */
export interface PlanContext {
  /** Addresses held back by SpiderReservedIPs, of one family. */
  reservedFor(family: 4 | 6): IPRangeSet;
  /** Every SpiderIPPool of the agent's cache: one snapshot, read synchronously. */
  cachedPools(): readonly SpiderIPPool[];
  /** The agent's memory of what each pool claims (src/ipam/overlap.ts). */
  claims?: PoolClaims;
}

/** The pool spec a request was decided with: the plan refuses to apply it to another spec. */
export interface SpecVersion {
  uid: string;
  generation: number;
}

export type PoolOp =
  /**
   * Addresses for one pod: one per entry of `requests` (each NIC/family of this ADD that uses this pool).
   * `hold` are addresses this pod already holds in the pool for other NICs; they are not handed out again.
   * `spec`: the pool as the candidate filter saw it; a pool read at another uid or generation is refused.
   */
  | { kind: "allocate"; requests: AllocationRequest[]; hold: string[]; spec?: SpecVersion }
  /** Remove `ips` where the record's podUid is `podUid`. */
  | { kind: "release"; ips: string[]; podUid: string }
  /** Hand fixed `ips` (StatefulSet/KubeVirt) to the new UID of `pod`. */
  | { kind: "restamp"; ips: string[]; pod: string; podUid: string }
  /**
   * Before answering a repeated ADD from the endpoint: `ips` must be recorded for `podUid`; a missing record is
   * recreated when the address is free, a record of another pod fails the op.
   */
  | { kind: "ensure"; ips: string[]; pod: string; podUid: string };

export type PoolOpResult =
  | { kind: "allocate"; chosen: Chosen[] }
  | { kind: "release"; released: string[] }
  | { kind: "restamp" }
  | { kind: "ensure"; recreated: string[] };

/**
 * Plans one batch on `pool`: releases, re-stamps and ensures first (in queue order), then every allocation through
 * ONE chooseIPs call. An error of one request (an exhausted pool, a broken fixed IP, a cache that lags) is that
 * request's outcome; the others still commit.
 */
export function planPoolBatch(
  pool: SpiderIPPool,
  ops: readonly PoolOp[],
  ctx: PlanContext,
): Plan<PoolOpResult> {
  const name = pool.metadata.name;
  const before = decodeAllocatedIPs(pool.status?.allocatedIPs, name);
  let records: AllocatedIPs = before;
  const outcomes: Outcome<PoolOpResult>[] = new Array(ops.length);
  // Releases never hand anything out, so a batch of releases needs no cache view.
  const view = ops.some((op) => op.kind !== "release")
    ? cacheView(pool, ctx.cachedPools(), ctx.claims)
    : { overlaps: [] };
  const stale = "stale" in view ? view.stale : undefined;
  const overlaps = "overlaps" in view ? view.overlaps : [];

  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    if (op.kind === "release") {
      // A run of releases (the IP GC queues thousands at once) copies the records once.
      let end = i;
      while (ops[end]?.kind === "release") end++;
      const run = ops.slice(i, end) as Extract<PoolOp, { kind: "release" }>[];
      const r = releaseEach(records, run);
      records = r.records;
      for (const [k, x] of r.results.entries()) {
        outcomes[i + k] = { ok: true, value: { kind: "release", released: x.released } };
      }
      i = end - 1;
    } else if (stale !== undefined && op.kind !== "allocate") {
      outcomes[i] = { ok: false, error: stale };
    } else if (op.kind === "restamp") {
      try {
        records = restampIPs(pool, records, op.ips, { pod: op.pod, podUid: op.podUid }, overlaps).records;
        outcomes[i] = { ok: true, value: { kind: "restamp" } };
      } catch (err) {
        outcomes[i] = { ok: false, error: err as Error };
      }
    } else if (op.kind === "ensure") {
      try {
        const r = ensureIPs(
          pool,
          records,
          op.ips,
          { pod: op.pod, podUid: op.podUid },
          reservedOf(pool),
          overlaps,
        );
        records = r.records;
        outcomes[i] = { ok: true, value: { kind: "ensure", recreated: r.recreated } };
      } catch (err) {
        outcomes[i] = { ok: false, error: err as Error };
      }
    }
  }

  const allocs: { op: Extract<PoolOp, { kind: "allocate" }>; i: number }[] = [];
  ops.forEach((op, i) => {
    if (op.kind !== "allocate") return;
    const refused = stale ?? specChanged(pool, op.spec);
    if (refused !== undefined) outcomes[i] = { ok: false, error: refused };
    else allocs.push({ op, i });
  });
  if (allocs.length > 0) {
    let reserved: IPRangeSet;
    try {
      reserved = ctx.reservedFor(usableAddresses(pool).family);
    } catch (err) {
      for (const { i } of allocs) outcomes[i] = { ok: false, error: err as Error };
      return finish();
    }
    // Every allocation of the batch in ONE chooseIPs call: distinct addresses for all of them.
    const requests = allocs.flatMap(({ op }) => op.requests.map((r) => ({ ...r, otherNICs: op.hold })));
    let result;
    try {
      result = chooseIPs(pool, reserved, records, requests, { overlaps });
    } catch (err) {
      for (const { i } of allocs) outcomes[i] = { ok: false, error: err as Error };
      return finish();
    }
    const next = result.records;
    // A pod asking for several addresses gets all of them or none, so a failure never leaves a record.
    let k = 0;
    for (const { op, i } of allocs) {
      const mine = result.outcomes.slice(k, k + op.requests.length);
      k += op.requests.length;
      const failed = mine.find((o) => !o.ok);
      if (failed && !failed.ok) {
        for (const o of mine) if (o.ok && !o.value.reused) delete next[o.value.ip];
        outcomes[i] = { ok: false, error: failed.error };
      } else {
        const chosen = mine.map((o) => (o as { value: Chosen }).value);
        outcomes[i] = { ok: true, value: { kind: "allocate", chosen } };
      }
    }
    records = next;
  }
  return finish();

  /** Reserved addresses of the pool's family; a pool whose spec cannot be read has none to check here. */
  function reservedOf(p: SpiderIPPool): IPRangeSet | undefined {
    try {
      return ctx.reservedFor(usableAddresses(p).family);
    } catch {
      return undefined;
    }
  }

  function finish(): Plan<PoolOpResult> {
    return { status: sameRecords(records, before) ? undefined : poolStatusWith(pool, records), outcomes };
  }
}

/**
 * Whether two decoded record maps hold the same records: then their encodings are equal and nothing needs
 * writing. Compared record by record, as encoding a pool of thousands of records twice per plan cost more
 * than the rest of the plan.
 */
function sameRecords(a: Readonly<AllocatedIPs>, b: Readonly<AllocatedIPs>): boolean {
  if (a === b) return true;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) {
    const x = a[k];
    const y = Object.hasOwn(b, k) ? b[k] : undefined;
    if (y === undefined || x.pod !== y.pod || x.podUid !== y.podUid) return false;
  }
  return true;
}

/**
 * A StalePoolViewError when `pool` (just read) is not the spec the request was filtered with: the filter's
 * verdict (affinities, disable, terminating) may not hold for it.
 */
function specChanged(pool: SpiderIPPool, spec: SpecVersion | undefined): StalePoolViewError | undefined {
  if (spec === undefined) return undefined;
  const { uid = "", generation = 0 } = pool.metadata;
  if (uid === spec.uid && generation === spec.generation) return undefined;
  return new StalePoolViewError(
    pool.metadata.name,
    uid,
    generation,
    `was chosen at generation ${spec.generation} (UID ${spec.uid})`,
  );
}
