// SpiderSubnet reconciler (upstream's subnet controller, §1.2 and §2.2): adopts the pools of its CIDR (controller
// ownerReference + `ipam.spidernet.io/owner-spider-subnet` label), keeps `status.controlledIPPools` (each pool's
// share of the subnet), `totalIPCount` and `allocatedIPCount` (IPs handed to pools), and on deletion first
// deletes its pools (foreground) and then drops its finalizer. Entries of auto-created pools are the
// application controller's: they are kept as they are (or rebuilt from the pool when missing).

import {
  type ControlledIPPools,
  decodeControlledIPPools,
  encodeControlledIPPools,
  StatusDecodeError,
} from "../../api/allocated.ts";
import { API_VERSION, FINALIZER, KIND, LABEL } from "../../api/constants.ts";
import { cidrLabelValue } from "../../api/defaults.ts";
import type { OwnerReference, SpiderIPPool, SpiderSubnet } from "../../api/types.ts";
import { describeSet, parseOtherSubnet, sameCIDR } from "../../api/validate/common.ts";
import { isAutoPool } from "../../api/validate/ippool.ts";
import { type CIDR, type Family, IPRangeSet } from "../../ip/mod.ts";
import type { PlannedEvent } from "./events.ts";
import { countNumber } from "./ippool.ts";

/** Event reasons of the subnet reconciler. */
export const SUBNET_EVENT = {
  invalidSpec: "InvalidSpec",
  invalidControlledIPPools: "InvalidControlledIPPools",
  outsideSubnet: "OutsideSubnet",
  adoptionRefused: "AdoptionRefused",
  waitingForIPPools: "WaitingForIPPools",
} as const;

/** The finalizer the garbage collector puts on an object deleted with propagationPolicy Foreground. */
export const FOREGROUND_DELETION = "foregroundDeletion";
const ORPHAN = "orphan";

/** A metadata merge patch for one pool, conditional on the resourceVersion it was planned from. */
export interface Adoption {
  pool: string;
  patch: {
    metadata: { resourceVersion?: string; labels: Record<string, string>; ownerReferences: OwnerReference[] };
  };
}

export interface SubnetPlan {
  /** Labels to merge into the subnet's metadata (the `subnet-cidr` label); undefined when right. */
  labels?: Record<string, string>;
  /** Status fields to merge-patch; `controlledIPPools: null` removes the field. Undefined when right. */
  status?: { controlledIPPools?: string | null; totalIPCount?: number; allocatedIPCount?: number };
  adopt: Adoption[];
  /** The subnet is being deleted without foreground propagation: delete it again with Foreground. */
  foregroundDelete: boolean;
  /** The subnet is being deleted and controls no pool any more. */
  removeFinalizer: boolean;
  /** Events about the subnet (`pool` undefined) or one of its pools. */
  events: (PlannedEvent & { pool?: string })[];
  /** For the metrics. */
  pools: number;
  total?: number;
  allocated?: number;
}

/** The `application` key of an auto-pool from its owner-application labels, when they are complete. */
export function applicationOf(pool: SpiderIPPool): string | undefined {
  const l = pool.metadata?.labels ?? {};
  const parts = [
    l[LABEL.ownerApplicationGV],
    l[LABEL.ownerApplicationKind],
    l[LABEL.ownerApplicationNamespace],
    l[LABEL.ownerApplicationName],
  ];
  return parts.every((p) => p) ? parts.join("_") : undefined;
}

function familyOf(subnet: SpiderSubnet, cidr: CIDR): Family {
  const v = subnet.spec?.ipVersion;
  return v === 4 || v === 6 ? v : cidr.family;
}

function parseSet(family: Family, items: readonly string[] | undefined | null, what: string) {
  return IPRangeSet.parse(family, items ?? [], what);
}

/** The pool's addresses (ips − excludeIPs) in `family`, undefined when its spec does not parse. */
function poolAddresses(pool: SpiderIPPool, family: Family): IPRangeSet | undefined {
  try {
    return parseSet(family, pool.spec?.ips, "spec.ips").subtract(
      parseSet(family, pool.spec?.excludeIPs, "x"),
    );
  } catch {
    return undefined; // the pool reconciler reports it
  }
}

function sameEntries(a: ControlledIPPools, b: ControlledIPPools): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
  return ka.every((k) =>
    (a[k].application ?? "") === (b[k].application ?? "") &&
    a[k].ips.length === b[k].ips.length && a[k].ips.every((ip, i) => ip === b[k].ips[i])
  );
}

/**
 * The one rule of the subnet reconciler: what to write for `subnet` given every SpiderIPPool. Pure; a converged
 * subnet gives no labels, no status, no adoption, no deletion step.
 */
export function planSubnet(subnet: SpiderSubnet, pools: readonly SpiderIPPool[]): SubnetPlan {
  const name = subnet.metadata?.name ?? "";
  const uid = subnet.metadata?.uid;
  const what = `${KIND.subnet} ${JSON.stringify(name)}`;
  const plan: SubnetPlan = {
    adopt: [],
    foregroundDelete: false,
    removeFinalizer: false,
    events: [],
    pools: 0,
  };
  const cidr = parseOtherSubnet(subnet.spec?.subnet);
  if (cidr === undefined) {
    plan.events.push({
      type: "Warning",
      reason: SUBNET_EVENT.invalidSpec,
      message:
        `${what}: spec.subnet ${JSON.stringify(subnet.spec?.subnet)} is not a CIDR; its status is not ` +
        `maintained until it is fixed`,
    });
    return plan;
  }
  const family = familyOf(subnet, cidr);
  let total: IPRangeSet | undefined;
  try {
    total = parseSet(family, subnet.spec?.ips, "spec.ips").subtract(
      parseSet(family, subnet.spec?.excludeIPs, "spec.excludeIPs"),
    );
  } catch (err) {
    plan.events.push({
      type: "Warning",
      reason: SUBNET_EVENT.invalidSpec,
      message: `${what}: ${(err as Error).message}; its status is not maintained until it is fixed`,
    });
    return plan;
  }

  if (
    subnet.spec?.subnet && subnet.metadata?.labels?.[LABEL.subnetCIDR] !== cidrLabelValue(subnet.spec.subnet)
  ) {
    plan.labels = { [LABEL.subnetCIDR]: cidrLabelValue(subnet.spec.subnet) };
  }

  const terminating = Boolean(subnet.metadata?.deletionTimestamp);
  const isOurRef = (r: OwnerReference) => r.controller === true && r.kind === KIND.subnet && r.uid === uid;
  const owned: SpiderIPPool[] = [];
  for (const pool of pools) {
    const poolName = pool.metadata?.name ?? "";
    const refs = pool.metadata?.ownerReferences ?? [];
    const controller = refs.find((r) => r.controller);
    const ours = controller !== undefined && isOurRef(controller);
    const labelled = pool.metadata?.labels?.[LABEL.ownerSpiderSubnet] === name;
    if (terminating) {
      // While the subnet is deleted no pool is adopted, and pools the garbage collector orphaned no longer count.
      if (ours) owned.push(pool);
      continue;
    }
    const pc = parseOtherSubnet(pool.spec?.subnet);
    const sameNet = pc !== undefined && sameCIDR(pc, cidr);
    if (!sameNet) {
      if (ours || (labelled && controller === undefined)) owned.push(pool);
      continue;
    }
    if (pool.metadata?.deletionTimestamp) {
      if (ours || (labelled && controller === undefined)) owned.push(pool);
      continue;
    }
    // A controller reference to a SpiderSubnet of the same name but another uid is left from a deleted subnet
    // of that name: this subnet takes its place.
    const stale = controller !== undefined && !ours && controller.kind === KIND.subnet &&
      controller.name === name;
    if (controller !== undefined && !ours && !stale) {
      plan.events.push({
        type: "Warning",
        reason: SUBNET_EVENT.adoptionRefused,
        pool: poolName,
        message:
          `${KIND.ippool} ${JSON.stringify(poolName)} is in the subnet ${subnet.spec?.subnet} of ${what} ` +
          `but is controlled by ${controller.kind} ${
            JSON.stringify(controller.name)
          }; remove that controller ` +
          `ownerReference to let the subnet manage it`,
      });
      continue;
    }
    owned.push(pool);
    if (ours && labelled) continue;
    if (!uid) continue;
    plan.adopt.push({
      pool: poolName,
      patch: {
        metadata: {
          resourceVersion: pool.metadata?.resourceVersion,
          labels: { [LABEL.ownerSpiderSubnet]: name },
          ownerReferences: [
            ...refs.filter((r) => !r.controller),
            {
              apiVersion: API_VERSION,
              kind: KIND.subnet,
              name,
              uid,
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
      },
    });
  }
  plan.pools = owned.length;

  let previous: ControlledIPPools = {};
  let previousReadable = true;
  try {
    previous = decodeControlledIPPools(subnet.status?.controlledIPPools, name);
  } catch (err) {
    if (!(err instanceof StatusDecodeError)) throw err;
    previousReadable = false;
    plan.events.push({
      type: "Warning",
      reason: SUBNET_EVENT.invalidControlledIPPools,
      message: `${err.message}; rebuilt from the pools the subnet controls`,
    });
  }

  const entries: ControlledIPPools = {};
  const ownedNames = new Set(owned.map((p) => p.metadata?.name ?? ""));
  // Entries of auto-pools belong to the application controller, which writes them before it creates the pool.
  for (const [pool, share] of Object.entries(previous)) {
    if (share.application && !ownedNames.has(pool)) entries[pool] = share;
  }
  for (const pool of owned) {
    const poolName = pool.metadata?.name ?? "";
    if (isAutoPool(pool)) {
      const kept = previous[poolName];
      if (kept?.application) {
        entries[poolName] = kept;
        continue;
      }
      const ips = poolAddresses(pool, family);
      if (ips === undefined || ips.isEmpty()) continue;
      const application = applicationOf(pool);
      entries[poolName] = { ips: ips.toStrings(), ...(application ? { application } : {}) };
      continue;
    }
    const ips = poolAddresses(pool, family);
    if (ips === undefined || ips.family !== total.family) continue;
    const outside = ips.subtract(total);
    if (!outside.isEmpty()) {
      plan.events.push({
        type: "Warning",
        reason: SUBNET_EVENT.outsideSubnet,
        pool: poolName,
        message:
          `${KIND.ippool} ${JSON.stringify(poolName)} has ${describeSet(outside)}, which ${what} does not ` +
          `offer (its spec.ips minus spec.excludeIPs); add them to the subnet or remove them from the pool`,
      });
    }
    const inside = ips.intersect(total);
    if (!inside.isEmpty()) entries[poolName] = { ips: inside.toStrings() };
  }

  let allocated = 0n;
  for (const [pool, share] of Object.entries(entries)) {
    try {
      allocated += parseSet(family, share.ips, `status.controlledIPPools["${pool}"].ips`).count();
    } catch (err) {
      plan.events.push({
        type: "Warning",
        reason: SUBNET_EVENT.invalidControlledIPPools,
        message:
          `${what}: ${(err as Error).message}; the application controller rewrites it when it resizes ` +
          `the pool`,
      });
    }
  }
  plan.total = countNumber(total.count());
  plan.allocated = countNumber(allocated);

  const status: NonNullable<SubnetPlan["status"]> = {};
  if (!previousReadable || !sameEntries(previous, entries)) {
    status.controlledIPPools = encodeControlledIPPools(entries) ?? null;
  }
  if (subnet.status?.totalIPCount !== plan.total) status.totalIPCount = plan.total;
  if (subnet.status?.allocatedIPCount !== plan.allocated) status.allocatedIPCount = plan.allocated;

  if (terminating) {
    const finalizers = subnet.metadata?.finalizers ?? [];
    // Foreground only while a pool of it is not yet being deleted: once the garbage collector has deleted them
    // all it takes its foregroundDeletion finalizer off again, and a second foreground delete would only repeat
    // the first (a watch of the pools that is behind still shows them, terminating).
    plan.foregroundDelete = !finalizers.includes(FOREGROUND_DELETION) && !finalizers.includes(ORPHAN) &&
      owned.some((p) => !p.metadata?.deletionTimestamp);
    if (Object.keys(entries).length === 0) {
      plan.removeFinalizer = finalizers.includes(FINALIZER);
      if (plan.removeFinalizer) return plan;
    } else {
      const names = Object.keys(entries).sort();
      plan.events.push({
        type: "Normal",
        reason: SUBNET_EVENT.waitingForIPPools,
        message: `${what} is being deleted; it waits for its ${names.length} pool(s) to be deleted first: ` +
          `${names.slice(0, 5).join(", ")}${names.length > 5 ? ", ..." : ""}`,
      });
    }
  }
  if (Object.keys(status).length > 0) plan.status = status;
  return plan;
}
