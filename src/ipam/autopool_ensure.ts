// The order of writes that creates or resizes one auto-pool, shared by the controller (native applications)
// and the agent (third-party controllers), over an injected AutoPoolIO: read the subnet and the pool fresh,
// plan with planPreAllocation, write the subnet's `status.controlledIPPools` first (conditional on its
// resourceVersion), then the pool (conditional on its resourceVersion whenever addresses leave it). The
// subnet write is what reserves addresses, so no address is ever in two pools' pre-allocations; the pool
// webhook admits only a pool whose spec.ips equals its pre-allocation. Conflicts re-read and plan again.

import { decodeControlledIPPools, encodeControlledIPPools, StatusDecodeError } from "../api/allocated.ts";
import type { PoolIPNumber } from "../api/annotations.ts";
import { ANNOTATION, KIND, LABEL } from "../api/constants.ts";
import type { SpiderIPPool, SpiderSubnet } from "../api/types.ts";
import { type Family, IPRangeSet } from "../ip/mod.ts";
import {
  allocatedAddresses,
  applicationKey,
  autoPoolName,
  type AutoPoolWant,
  ipNumberAnnotation,
  isPoolOf,
  newAutoPool,
  planPreAllocation,
  reclaimLabel,
  selectAutoPool,
  specAddresses,
} from "./autopool.ts";
import type { TopController } from "./workload.ts";

/** The subnet an application names does not exist (or is being deleted). */
export class SubnetUnavailableError extends Error {
  constructor(readonly subnet: string, message: string) {
    super(message);
    this.name = "SubnetUnavailableError";
  }
}

/** The subnet's `status.controlledIPPools` cannot be read: nothing is pre-allocated until it is repaired. */
export class ControlledIPPoolsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ControlledIPPoolsError";
  }
}

/** The reads and writes ensureAutoPool needs. Writes throw; `conflict` and `staleAdmission` classify errors. */
export interface AutoPoolIO {
  /**
   * The subnet; undefined when absent. With `fresh` as the API server has it now; otherwise it may be the newest
   * copy this process knows (a cache, or its own last write): the status write is conditional on its
   * resourceVersion, so a stale copy costs a conflict and a fresh read, never a wrong write.
   */
  getSubnet(name: string, fresh: boolean): Promise<SpiderSubnet | undefined>;
  /** The pool as the API server has it now; undefined when absent. */
  getPool(name: string): Promise<SpiderIPPool | undefined>;
  /** Every pool, from a cache: other pools' addresses and the application's existing pool. */
  pools(): readonly SpiderIPPool[];
  /** SpiderReservedIP addresses of `family`. */
  reserved(family: Family): IPRangeSet;
  /** Merge-patches the subnet's status, conditional on `resourceVersion`. */
  patchSubnetStatus(
    name: string,
    resourceVersion: string | undefined,
    status: { controlledIPPools: string | null; totalIPCount: number; allocatedIPCount: number },
  ): Promise<unknown>;
  createPool(pool: SpiderIPPool): Promise<SpiderIPPool>;
  /** Merge-patches a pool; `metadata.resourceVersion` in the patch makes it conditional. */
  patchPool(name: string, patch: Record<string, unknown>): Promise<SpiderIPPool>;
  /** Runs `fn` alone among this process's writers of the same subnet (fewer conflicts; never needed for safety). */
  withSubnet<T>(subnet: string, fn: () => Promise<T>): Promise<T>;
  /** True for a 409 (a conditional write lost, or a create found the name taken). */
  conflict(err: unknown): boolean;
  /**
   * True for an admission refusal that a moment later may pass: the pool webhook read the subnet before this
   * process's write reached the API server's cache.
   */
  staleAdmission(err: unknown): boolean;
  sleep(ms: number): Promise<void>;
}

export interface EnsureInput {
  app: TopController;
  want: AutoPoolWant;
  desired: number;
  ipNumber: PoolIPNumber;
  reclaim: boolean;
  /** Labels added to a new pool besides the auto-pool labels (a test's webhook selector). */
  extraLabels?: Record<string, string>;
}

export type EnsureAction = "created" | "grown" | "shrunk" | "relabelled" | "unchanged";

export interface EnsureResult {
  pool: SpiderIPPool;
  action: EnsureAction;
  /** Size before and after. */
  from: bigint;
  to: bigint;
  /** Writes sent (subnet status and pool), conflicts included. */
  writes: number;
  conflicts: number;
}

/** Attempts of one ensure before a conflict is thrown to the caller (which retries later). */
const ATTEMPTS = 12;

function familySet(family: Family, items: readonly string[] | undefined): IPRangeSet {
  return IPRangeSet.parse(family, items ?? []);
}

/** A count as a JSON number (IPv6 subnets beyond 2^53 − 1 addresses are reported as that). */
function countNumber(n: bigint): number {
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

/**
 * Creates, grows or shrinks the application's pool for `input.want` to `input.desired` addresses, or just
 * refreshes its labels; safe to call any number of times and from several processes at once.
 *
 * Throws SubnetUnavailableError, SubnetChangedError, InsufficientSubnetIPsError, PoolFreeIPsNotEnoughError,
 * AllocatedElsewhereError, ControlledIPPoolsError, AutoPoolNameError, or the last conflict after ATTEMPTS.
 */
export async function ensureAutoPool(io: AutoPoolIO, input: EnsureInput): Promise<EnsureResult> {
  const { app, want } = input;
  let writes = 0;
  let conflicts = 0;
  let lastConflict: unknown;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (attempt > 0) await io.sleep(Math.min(500, 10 * 2 ** (attempt - 1)) * (1 + Math.random()));
    try {
      // Read the pool before the subnet: a shrink's plan rests on the allocations as of this read, and the
      // pool write below is conditional on it.
      const cached = selectAutoPool(io.pools(), app, want);
      const expected = cached?.metadata?.name ?? autoPoolName(app.name, want.family, want.ifName, app.uid);
      let pool = await io.getPool(expected);
      if (pool !== undefined && !isPoolOf(pool, app, want)) {
        throw new Error(
          `${KIND.ippool} ${
            JSON.stringify(expected)
          } exists but is not the auto-created pool of ${app.kind} ` +
            `${app.namespace}/${app.name} (its labels name another application); delete or rename it`,
        );
      }
      if (pool?.metadata?.deletionTimestamp) pool = undefined;
      if (
        pool?.metadata?.labels?.[LABEL.ippoolReclaim] === "true" &&
        pool.metadata.labels[LABEL.ownerApplicationUID] !== app.uid
      ) {
        throw new Error(
          `${KIND.ippool} ${
            JSON.stringify(expected)
          } belongs to a deleted ${app.kind} of the same name and is ` +
            `about to be deleted; the new pool is made once it is gone`,
        );
      }
      const outcome = await io.withSubnet(want.subnet, async () => {
        const subnet = await io.getSubnet(want.subnet, attempt > 0);
        if (subnet === undefined) {
          throw new SubnetUnavailableError(
            want.subnet,
            `${KIND.subnet} ${
              JSON.stringify(want.subnet)
            } named by ${app.kind} ${app.namespace}/${app.name} ` +
              `for IPv${want.family} on ${want.ifName} does not exist; create it or fix the annotation`,
          );
        }
        if (subnet.metadata?.deletionTimestamp) {
          throw new SubnetUnavailableError(
            want.subnet,
            `${KIND.subnet} ${JSON.stringify(want.subnet)} is being deleted; no pool is made from it`,
          );
        }
        if (pool !== undefined) selectAutoPool([pool], app, want, subnet); // subnet moved?
        else selectAutoPool(io.pools(), app, want, subnet);
        const family = want.family;
        if ((subnet.spec?.ipVersion ?? family) !== family) {
          throw new SubnetUnavailableError(
            want.subnet,
            `${KIND.subnet} ${
              JSON.stringify(want.subnet)
            } is IPv${subnet.spec?.ipVersion}, but ${app.kind} ` +
              `${app.namespace}/${app.name} names it as its IPv${family} subnet; fix the annotation`,
          );
        }
        const poolName = pool?.metadata?.name ?? expected;
        let entries;
        try {
          entries = decodeControlledIPPools(subnet.status?.controlledIPPools, want.subnet);
        } catch (err) {
          if (!(err instanceof StatusDecodeError)) throw err;
          throw new ControlledIPPoolsError(
            `${err.message}; no address is pre-allocated from it until the subnet controller rebuilds it`,
          );
        }
        const total = familySet(family, subnet.spec?.ips).subtract(
          familySet(family, subnet.spec?.excludeIPs),
        );
        let others = IPRangeSet.empty(family);
        for (const [name, share] of Object.entries(entries)) {
          if (name === poolName) continue;
          try {
            others = others.union(familySet(family, share.ips));
          } catch {
            throw new ControlledIPPoolsError(
              `${KIND.subnet} ${JSON.stringify(want.subnet)}: status.controlledIPPools["${name}"].ips ` +
                `${JSON.stringify(share.ips)} do not parse; no address is pre-allocated until it is repaired`,
            );
          }
        }
        for (const p of io.pools()) {
          if (p.metadata?.name === poolName || p.spec?.subnet === undefined) continue;
          if (p.spec.subnet !== subnet.spec?.subnet) continue;
          others = others.union(specAddresses(p, family));
        }
        const own = entries[poolName];
        const poolIPs = pool ? specAddresses(pool, family) : undefined;
        const plan = planPreAllocation({
          subnetName: want.subnet,
          poolName,
          family,
          subnetTotal: total,
          reserved: io.reserved(family),
          others,
          entry: own ? familySet(family, own.ips) : undefined,
          poolIPs,
          allocated: allocatedAddresses(pool, family),
          desired: input.desired,
        });
        const application = applicationKey(app);
        const entryChanged = own === undefined || own.application !== application ||
          !familySet(family, own.ips).equals(plan.ips);
        if (entryChanged) {
          const next = { ...entries, [poolName]: { ips: plan.ips.toStrings(), application } };
          let allocated = 0n;
          for (const [name, share] of Object.entries(next)) {
            allocated += name === poolName ? plan.ips.count() : familySet(family, share.ips).count();
          }
          writes++;
          await io.patchSubnetStatus(want.subnet, subnet.metadata?.resourceVersion, {
            controlledIPPools: encodeControlledIPPools(next) ?? null,
            totalIPCount: countNumber(total.count()),
            allocatedIPCount: countNumber(allocated),
          });
        }
        return { subnet, plan, poolName, poolIPs };
      });
      const { subnet, plan, poolName, poolIPs } = outcome;
      const from = poolIPs?.count() ?? 0n;
      const to = plan.ips.count();
      if (pool === undefined) {
        writes++;
        const created = await io.createPool(newAutoPool({
          app,
          subnet,
          want,
          reclaim: input.reclaim,
          ipNumber: input.ipNumber,
          ips: plan.ips.toStrings(),
          extraLabels: input.extraLabels,
        }));
        return { pool: created, action: "created", from: 0n, to, writes, conflicts };
      }
      const patch = poolPatch(pool, poolIPs!, plan.ips, input);
      if (patch === undefined) return { pool, action: "unchanged", from, to, writes, conflicts };
      writes++;
      const updated = await io.patchPool(poolName, patch);
      const action: EnsureAction = to > from ? "grown" : to < from ? "shrunk" : "relabelled";
      return { pool: updated, action, from, to, writes, conflicts };
    } catch (err) {
      if (io.conflict(err) || io.staleAdmission(err)) {
        conflicts++;
        lastConflict = err;
        continue;
      }
      throw err;
    }
  }
  throw lastConflict;
}

/**
 * The merge patch that brings an existing pool to `ips` with the labels and annotation of `input`, or
 * undefined when it has them. Conditional on the pool's resourceVersion when addresses leave it, so that a
 * pod given one of them meanwhile makes the write fail instead of the address disappearing under it.
 */
function poolPatch(
  pool: SpiderIPPool,
  current: IPRangeSet,
  ips: IPRangeSet,
  input: EnsureInput,
): Record<string, unknown> | undefined {
  const labels = pool.metadata?.labels ?? {};
  const wantLabels: Record<string, string> = {
    [LABEL.ownerApplicationUID]: input.app.uid,
    [LABEL.ippoolReclaim]: reclaimLabel(input.reclaim),
  };
  const labelPatch = Object.fromEntries(Object.entries(wantLabels).filter(([k, v]) => labels[k] !== v));
  const number = ipNumberAnnotation(input.ipNumber);
  const annoChanged = pool.metadata?.annotations?.[ANNOTATION.ippoolIPNumber] !== number;
  const ipsChanged = !familySet(input.want.family, pool.spec?.ips).equals(ips);
  if (Object.keys(labelPatch).length === 0 && !annoChanged && !ipsChanged) return undefined;
  const shrinking = !current.subtract(ips).isEmpty();
  return {
    metadata: {
      ...(shrinking ? { resourceVersion: pool.metadata?.resourceVersion } : {}),
      ...(Object.keys(labelPatch).length > 0 ? { labels: labelPatch } : {}),
      ...(annoChanged ? { annotations: { [ANNOTATION.ippoolIPNumber]: number } } : {}),
    },
    ...(ipsChanged ? { spec: { ips: ips.toStrings() } } : {}),
  };
}

/**
 * True when cached copies of the pool and its subnet already show what ensureAutoPool would make: the pool
 * exists with `desired` addresses equal to its pre-allocation (recorded for this application), its labels and
 * annotation are current, and the subnet is usable. A reconcile can then skip every API read; a stale cache
 * is harmless, since the change it has not seen yet queues the application again.
 */
export function looksConverged(
  input: EnsureInput,
  pool: SpiderIPPool | undefined,
  subnet: SpiderSubnet | undefined,
): boolean {
  const { app, want } = input;
  if (!pool || !subnet || pool.metadata?.deletionTimestamp || subnet.metadata?.deletionTimestamp) {
    return false;
  }
  const l = pool.metadata?.labels ?? {};
  if (
    l[LABEL.ownerSpiderSubnet] !== want.subnet || l[LABEL.ownerApplicationUID] !== app.uid ||
    l[LABEL.ippoolReclaim] !== reclaimLabel(input.reclaim) ||
    pool.metadata?.annotations?.[ANNOTATION.ippoolIPNumber] !== ipNumberAnnotation(input.ipNumber) ||
    pool.spec?.subnet !== subnet.spec?.subnet
  ) {
    return false;
  }
  try {
    const ips = familySet(want.family, pool.spec?.ips);
    if (ips.count() !== BigInt(input.desired)) return false;
    const entry = decodeControlledIPPools(subnet.status?.controlledIPPools, want.subnet)[pool.metadata.name];
    return entry !== undefined && entry.application === applicationKey(app) &&
      familySet(want.family, entry.ips).equals(ips);
  } catch {
    return false;
  }
}
