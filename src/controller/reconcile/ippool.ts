// SpiderIPPool reconciler (upstream's IPPool controller, §1.2): keeps `status.totalIPCount` = |ips − excludeIPs|
// and `status.allocatedIPCount` = the records in `status.allocatedIPs`, and removes the finalizer once a
// terminating pool holds no record. Agents write the same status concurrently, so the reconciler never writes
// `allocatedIPs`: it merge-patches only the two counts, conditional on the resourceVersion it read, so a count
// always matches the records it was computed from and an agent's record can never be lost.

import { decodeAllocatedIPs, StatusDecodeError } from "../../api/allocated.ts";
import { API_VERSION, FINALIZER, KIND } from "../../api/constants.ts";
import type { SpiderIPPool } from "../../api/types.ts";
import { admittedPool, poolSpecProblems } from "../../ipam/pool.ts";
import { IPRangeSet, parseIP } from "../../ip/mod.ts";
import type { PlannedEvent } from "./events.ts";

/** Event reasons of the pool reconciler. */
export const POOL_EVENT = {
  invalidSpec: "InvalidSpec",
  invalidAllocatedIPs: "InvalidAllocatedIPs",
  allocatedOutsidePool: "AllocatedIPsOutsidePool",
  deletionBlocked: "DeletionBlocked",
} as const;

/** What the pool reconciler decides for one pool. */
export interface PoolPlan {
  /** The status fields to merge-patch; undefined when they are right. */
  status?: { totalIPCount?: number; allocatedIPCount?: number };
  /** The pool is terminating and empty: drop our finalizer (instead of any status change). */
  removeFinalizer: boolean;
  events: PlannedEvent[];
  /** For the metrics; undefined when they cannot be computed. */
  total?: number;
  allocated?: number;
}

/** An address count as a JSON number; IPv6 pools beyond 2^53 − 1 addresses are reported as that. */
export function countNumber(n: bigint): number {
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

function describeIPs(ips: string[], max = 5): string {
  return ips.slice(0, max).join(", ") + (ips.length > max ? ` and ${ips.length - max} more` : "");
}

/**
 * The one rule of the pool reconciler: what to write for `pool` as read. Pure; safe to call any number of
 * times (a converged pool gives no status, no finalizer removal).
 *
 * ```ts
 * planPool({ metadata: { name: "v4-a" }, spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.19"] } });
 * // { status: { totalIPCount: 10, allocatedIPCount: 0 }, removeFinalizer: false, events: [], total: 10, allocated: 0 }
 * ```
 */
export function planPool(pool: SpiderIPPool): PoolPlan {
  const name = pool.metadata?.name ?? "";
  const what = `${KIND.ippool} ${JSON.stringify(name)}`;
  const events: PlannedEvent[] = [];
  // The same verdict on the spec as the agent's (src/ipam/pool.ts): a pool it refuses to serve from gets an
  // event, and its totalIPCount is left alone.
  let usable: IPRangeSet | undefined;
  const problems = poolSpecProblems(pool);
  if (problems.length > 0) {
    events.push({
      type: "Warning",
      reason: POOL_EVENT.invalidSpec,
      message: `${problems.map((p) => p.message).join("; ")}; no address is handed out from it and ` +
        `status.totalIPCount is left as is until the spec is fixed (kubectl edit spiderippool ${name})`,
    });
  } else {
    // totalIPCount is upstream's |ips − excludeIPs| (reserved IPs and the gateway are not subtracted).
    const spec = admittedPool(pool).spec;
    const family = spec.ipVersion as 4 | 6;
    usable = IPRangeSet.parse(family, spec.ips ?? []).subtract(
      IPRangeSet.parse(family, spec.excludeIPs ?? []),
    );
  }
  let records: string[] | undefined;
  try {
    records = Object.keys(decodeAllocatedIPs(pool.status?.allocatedIPs, name));
  } catch (err) {
    if (!(err instanceof StatusDecodeError)) throw err;
    events.push({
      type: "Warning",
      reason: POOL_EVENT.invalidAllocatedIPs,
      message: `${err.message}; status.allocatedIPCount and the finalizer are left as they are and no pod ` +
        `can be given an address from this pool until status.allocatedIPs is repaired`,
    });
  }
  const total = usable === undefined ? undefined : countNumber(usable.count());
  const allocated = records?.length;

  if (usable !== undefined && records !== undefined) {
    const outside = records.filter((ip) => {
      const p = parseIP(ip);
      return p.family !== usable.family || !usable.has(p.value);
    });
    if (outside.length > 0) {
      events.push({
        type: "Warning",
        reason: POOL_EVENT.allocatedOutsidePool,
        message: `${what}: status.allocatedIPs holds ${describeIPs(outside)}, no longer in spec.ips minus ` +
          `spec.excludeIPs; add them back to spec.ips (or out of spec.excludeIPs) until the pods holding them ` +
          `are deleted`,
      });
    }
  }

  const finalizers = pool.metadata?.finalizers ?? [];
  if (pool.metadata?.deletionTimestamp) {
    if (records !== undefined && records.length === 0 && finalizers.includes(FINALIZER)) {
      return { removeFinalizer: true, events, total, allocated };
    }
    if (records !== undefined && records.length > 0) {
      events.push({
        type: "Warning",
        reason: POOL_EVENT.deletionBlocked,
        message: `${what} is being deleted but ${records.length} IP(s) are still allocated ` +
          `(${describeIPs(records)}); it is removed once their pods are deleted and the IPs released`,
      });
    }
  }

  const status: PoolPlan["status"] = {};
  if (total !== undefined && pool.status?.totalIPCount !== total) status.totalIPCount = total;
  if (allocated !== undefined && pool.status?.allocatedIPCount !== allocated) {
    status.allocatedIPCount = allocated;
  }
  return {
    status: Object.keys(status).length > 0 ? status : undefined,
    removeFinalizer: false,
    events,
    total,
    allocated,
  };
}

/** The merge patch that writes `plan.status` only if the pool is still at `resourceVersion`. */
export function poolStatusPatch(
  resourceVersion: string | undefined,
  status: NonNullable<PoolPlan["status"]>,
) {
  return { metadata: { resourceVersion }, status };
}

/** The merge patch that drops our finalizer only if the pool is still at its read resourceVersion. */
export function finalizerPatch(obj: { metadata?: { resourceVersion?: string; finalizers?: string[] } }) {
  return {
    metadata: {
      resourceVersion: obj.metadata?.resourceVersion,
      finalizers: (obj.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER),
    },
  };
}

/** `apiVersion`/`kind` for events about a pool read from a list (list items may lack them). */
export function poolRef(pool: SpiderIPPool): SpiderIPPool {
  return { ...pool, apiVersion: API_VERSION, kind: KIND.ippool };
}
