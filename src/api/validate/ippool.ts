// Admission validation of SpiderIPPool (CREATE and UPDATE), run after defaultIPPool: the subnet and its
// ranges, overlap with the other pools of the cluster, addresses still held by pods, gateway and routes,
// affinities, and — with the SpiderSubnet feature — containment in the owning subnet.

import { type CIDR, cidrsOverlap, type Family, formatCIDR, IPRangeSet, parseIP } from "../../ip/mod.ts";
import { decodeAllocatedIPs, StatusDecodeError } from "../allocated.ts";
import { AUTO_POOL_AFFINITY_LABELS, KIND, LABEL } from "../constants.ts";
import type { SpiderIPPool, SpiderSubnet } from "../types.ts";
import {
  checkAddressSpec,
  checkDeletable,
  checkMultusNames,
  checkNamespaceNames,
  checkObjectNames,
  checkSelector,
  checkTerminating,
  describeSet,
  type FeatureFlags,
  type FieldError,
  ipMessage,
  parseOtherSubnet,
  preAllocatedIPs,
  Problems,
  sameCIDR,
  usableAddresses,
} from "./common.ts";

/** What SpiderIPPool validation needs besides the object: the ConfigMap flags and the cluster's objects. */
export interface IPPoolValidationContext extends FeatureFlags {
  /** Every SpiderIPPool in the cluster; the one being validated is skipped by name. */
  pools: readonly SpiderIPPool[];
  /** Every SpiderSubnet (used only when enableSpiderSubnet). */
  subnets?: readonly SpiderSubnet[];
}

/**
 * Validates a SpiderIPPool on CREATE (`old` undefined) or UPDATE. Returns no errors when it is acceptable.
 *
 * ```ts
 * validateIPPool(pool, undefined, { enableIPv4: true, enableIPv6: true, enableSpiderSubnet: false, pools: [] });
 * ```
 */
export function validateIPPool(
  pool: SpiderIPPool,
  old: SpiderIPPool | undefined,
  ctx: IPPoolValidationContext,
): FieldError[] {
  const name = pool.metadata?.name ?? "";
  const p = new Problems(KIND.ippool, name);
  const terminating = checkTerminating(
    p,
    pool.metadata,
    old !== undefined,
    `the pool is being deleted and cannot be changed; wait for its pods to release their IPs, or create a new pool`,
  );
  if (terminating) return p.errors;
  const spec = pool.spec ?? {};
  const checked = checkAddressSpec(p, spec, old?.spec, ctx);
  if (checked === undefined) return p.errors;
  const { family, subnet, usable } = checked;

  checkSelector(p, "spec.podAffinity", spec.podAffinity, true);
  checkSelector(p, "spec.namespaceAffinity", spec.namespaceAffinity, false);
  checkSelector(p, "spec.nodeAffinity", spec.nodeAffinity, false);
  checkNamespaceNames(p, "spec.namespaceName", spec.namespaceName);
  checkObjectNames(p, "spec.nodeName", spec.nodeName, "node");
  checkMultusNames(p, "spec.multusName", spec.multusName);
  if (isAutoPool(pool)) checkAutoPoolAffinity(p, pool);

  if (subnet !== undefined) {
    checkOtherPools(p, name, family, subnet, usable, ctx.pools);
    if (ctx.enableSpiderSubnet) checkOwningSubnet(p, pool, family, subnet, usable, ctx.subnets ?? []);
  }
  if (old !== undefined) checkAllocatedKept(p, name, old, usable);
  return p.errors;
}

/**
 * Validates a DELETE: with `enableValidatingResourcesDeletedWebhook` a pool still holding allocated IPs may
 * not be deleted; without it every delete is allowed (the finalizer waits for the IPs instead).
 */
export function validateIPPoolDelete(
  pool: SpiderIPPool,
  enableValidatingResourcesDeletedWebhook: boolean,
): FieldError[] {
  return checkDeletable(
    KIND.ippool,
    pool,
    enableValidatingResourcesDeletedWebhook,
    (n) =>
      `cannot be deleted while ${n} IP${
        n === 1 ? " is" : "s are"
      } allocated from it; delete or move the pods ` +
      `using the pool first`,
  );
}

/** True for pools the application controller created (they carry the owner-application labels). */
export function isAutoPool(pool: SpiderIPPool): boolean {
  const labels = pool.metadata?.labels ?? {};
  return LABEL.ownerApplicationUID in labels || LABEL.ownerApplicationName in labels ||
    LABEL.ownerApplicationKind in labels;
}

/** The usable addresses of a pool (ips − excludeIPs), or undefined when its spec does not parse. */
export function poolUsableSet(pool: SpiderIPPool, family: Family): IPRangeSet | undefined {
  return usableAddresses(pool.spec, family);
}

function checkOtherPools(
  p: Problems,
  name: string,
  family: Family,
  subnet: CIDR,
  usable: IPRangeSet,
  pools: readonly SpiderIPPool[],
): void {
  for (const other of pools) {
    const otherName = other.metadata?.name ?? "";
    if (otherName === name) continue;
    const os = parseOtherSubnet(other.spec?.subnet);
    if (os === undefined || os.family !== family) continue;
    if (!sameCIDR(os, subnet)) {
      if (cidrsOverlap(os, subnet)) {
        p.add(
          "spec.subnet",
          `spec.subnet ${JSON.stringify(formatCIDR(subnet))} overlaps subnet ${
            JSON.stringify(other.spec?.subnet)
          } of ` +
            `${KIND.ippool} ${
              JSON.stringify(otherName)
            }; pools must use the same subnet string or disjoint subnets`,
        );
      }
      continue;
    }
    const theirs = poolUsableSet(other, family);
    if (theirs === undefined) continue;
    const both = usable.intersect(theirs);
    if (!both.isEmpty()) {
      p.add(
        "spec.ips",
        `spec.ips overlaps ${KIND.ippool} ${JSON.stringify(otherName)} at ${
          describeSet(both)
        }; remove those ` +
          `addresses from one of the pools or add them to spec.excludeIPs`,
      );
    }
  }
}

function checkAllocatedKept(p: Problems, name: string, old: SpiderIPPool, usable: IPRangeSet): void {
  let allocated;
  try {
    allocated = decodeAllocatedIPs(old.status?.allocatedIPs, name);
  } catch (e) {
    if (e instanceof StatusDecodeError) return; // nothing trustworthy to protect; the controller reports it
    throw e;
  }
  const dropped: string[] = [];
  for (const [ip, rec] of Object.entries(allocated)) {
    const { family, value } = parseIP(ip);
    if (family !== usable.family || !usable.has(value)) dropped.push(`${ip} (pod ${rec.pod})`);
  }
  if (dropped.length > 0) {
    const shown = dropped.slice(0, 5).join(", ") +
      (dropped.length > 5 ? ` and ${dropped.length - 5} more` : "");
    p.add(
      "spec.ips",
      `spec.ips no longer contains ${shown}, still allocated; keep them in spec.ips and out of spec.excludeIPs ` +
        `until the pods release them`,
    );
  }
}

function checkAutoPoolAffinity(p: Problems, pool: SpiderIPPool): void {
  const aff = pool.spec?.podAffinity;
  if (aff === undefined || aff === null) return;
  const extra = Object.keys(aff.matchLabels ?? {}).filter((k) => !AUTO_POOL_AFFINITY_LABELS.includes(k));
  if (extra.length > 0 || (aff.matchExpressions ?? []).length > 0) {
    p.add(
      "spec.podAffinity",
      `spec.podAffinity of an auto-created pool may only use the matchLabels ${
        AUTO_POOL_AFFINITY_LABELS.join(", ")
      }` +
        `${extra.length > 0 ? ` (found ${extra.join(", ")})` : " and no matchExpressions"}; use a manually ` +
        `created pool for other affinities`,
    );
  }
}

/** The SpiderSubnet a pool belongs to: by the owner label, else the subnet with the same `spec.subnet`. */
export function findOwningSubnet(
  pool: SpiderIPPool,
  subnets: readonly SpiderSubnet[],
): SpiderSubnet | undefined {
  const byLabel = pool.metadata?.labels?.[LABEL.ownerSpiderSubnet];
  if (byLabel) {
    const s = subnets.find((s) => s.metadata?.name === byLabel);
    if (s) return s;
  }
  const cidr = parseOtherSubnet(pool.spec?.subnet);
  if (cidr === undefined) return undefined;
  return subnets.find((s) => {
    const sc = parseOtherSubnet(s.spec?.subnet);
    return sc !== undefined && sameCIDR(sc, cidr);
  });
}

function checkOwningSubnet(
  p: Problems,
  pool: SpiderIPPool,
  family: Family,
  subnet: CIDR,
  usable: IPRangeSet,
  subnets: readonly SpiderSubnet[],
): void {
  const owner = findOwningSubnet(pool, subnets);
  if (owner === undefined) return;
  const ownerName = owner.metadata?.name ?? "";
  const oc = parseOtherSubnet(owner.spec?.subnet);
  if (oc === undefined || !sameCIDR(oc, subnet)) return;
  const total = usableAddresses(owner.spec, family);
  if (total === undefined) return;
  const outside = usable.subtract(total);
  if (!outside.isEmpty()) {
    p.add(
      "spec.ips",
      `spec.ips has ${describeSet(outside)}, which ${KIND.subnet} ${
        JSON.stringify(ownerName)
      } does not offer ` +
        `(its spec.ips minus spec.excludeIPs); add them to the subnet first or use addresses it offers`,
    );
  }
  if (isAutoPool(pool)) {
    const name = pool.metadata?.name ?? "";
    const shares = preAllocatedIPs(owner, family);
    if (shares === undefined) return;
    const given = shares.get(name);
    if (shares.has(name) && given === undefined) return;
    let mine: IPRangeSet;
    try {
      mine = IPRangeSet.parse(family, pool.spec?.ips ?? []);
    } catch (e) {
      ipMessage(e);
      return;
    }
    if (given === undefined) {
      p.add(
        "spec.ips",
        `auto-created pool has no IPs pre-allocated in ${KIND.subnet} ${JSON.stringify(ownerName)} ` +
          `status.controlledIPPools; auto-pools are sized by the application controller, not edited by hand`,
      );
    } else if (!(mine.containsSet(given) && given.containsSet(mine))) {
      p.add(
        "spec.ips",
        `spec.ips [${mine.toStrings().join(", ")}] differs from the IPs ${KIND.subnet} ` +
          `${JSON.stringify(ownerName)} pre-allocated to this auto-pool [${given.toStrings().join(", ")}]; ` +
          `change the ippool-ip-number annotation of the application instead of editing the pool`,
      );
    }
  }
}
