// Admission validation of SpiderSubnet (CREATE and UPDATE), run after defaultSubnet: the subnet and its ranges,
// no overlap with another SpiderSubnet, pools of the same CIDR fitting inside, and IPs already handed to pools
// (status.controlledIPPools) kept on UPDATE.

import { cidrsOverlap, formatCIDR } from "../../ip/mod.ts";
import { KIND } from "../constants.ts";
import type { SpiderIPPool, SpiderSubnet } from "../types.ts";
import {
  checkAddressSpec,
  checkDeletable,
  checkTerminating,
  describeSet,
  type FeatureFlags,
  type FieldError,
  parseOtherSubnet,
  preAllocatedIPs,
  Problems,
  sameCIDR,
  usableAddresses,
} from "./common.ts";

/** What SpiderSubnet validation needs besides the object. */
export interface SubnetValidationContext extends Pick<FeatureFlags, "enableIPv4" | "enableIPv6"> {
  /** Every SpiderSubnet in the cluster; the one being validated is skipped by name. */
  subnets: readonly SpiderSubnet[];
  /** Every SpiderIPPool in the cluster. */
  pools: readonly SpiderIPPool[];
}

/** Validates a SpiderSubnet on CREATE (`old` undefined) or UPDATE. */
export function validateSubnet(
  subnet: SpiderSubnet,
  old: SpiderSubnet | undefined,
  ctx: SubnetValidationContext,
): FieldError[] {
  const name = subnet.metadata?.name ?? "";
  const p = new Problems(KIND.subnet, name);
  const terminating = checkTerminating(
    p,
    subnet.metadata,
    old !== undefined,
    `the subnet is being deleted and cannot be changed; wait until its pools are gone, or create a new subnet`,
  );
  if (terminating) return p.errors;
  const checked = checkAddressSpec(p, subnet.spec ?? {}, old?.spec, ctx);
  if (checked?.subnet === undefined) return p.errors;
  const { family, subnet: cidr, usable: total } = checked;

  for (const other of ctx.subnets) {
    const otherName = other.metadata?.name ?? "";
    if (otherName === name) continue;
    const oc = parseOtherSubnet(other.spec?.subnet);
    if (oc !== undefined && oc.family === family && cidrsOverlap(oc, cidr)) {
      p.add(
        "spec.subnet",
        `spec.subnet ${JSON.stringify(formatCIDR(cidr))} overlaps ${KIND.subnet} ${
          JSON.stringify(otherName)
        } ` +
          `(${other.spec?.subnet}); subnets may not overlap, add the addresses to that subnet instead`,
      );
    }
  }

  // Pools of this CIDR are the subnet's pools (existing ones are adopted on CREATE), so they must fit inside it.
  for (const pool of ctx.pools) {
    const pc = parseOtherSubnet(pool.spec?.subnet);
    if (pc === undefined || !sameCIDR(pc, cidr)) continue;
    const usable = usableAddresses(pool.spec, family);
    if (usable === undefined) continue;
    const outside = usable.subtract(total);
    if (!outside.isEmpty()) {
      p.add(
        "spec.ips",
        `spec.ips does not cover ${describeSet(outside)} of existing ${KIND.ippool} ` +
          `${JSON.stringify(pool.metadata?.name ?? "")} in the same subnet; add those addresses to spec.ips`,
      );
    }
  }
  if (old !== undefined) {
    for (const [pool, given] of preAllocatedIPs(old, family) ?? []) {
      if (given === undefined) continue;
      const lost = given.subtract(total);
      if (!lost.isEmpty()) {
        p.add(
          "spec.ips",
          `spec.ips no longer offers ${describeSet(lost)}, already given to ${KIND.ippool} ${
            JSON.stringify(pool)
          }; ` +
            `shrink or delete that pool first`,
        );
      }
    }
  }
  return p.errors;
}

/**
 * Validates a DELETE: with `enableValidatingResourcesDeletedWebhook` a subnet that still hands IPs to pools may
 * not be deleted.
 */
export function validateSubnetDelete(
  subnet: SpiderSubnet,
  enableValidatingResourcesDeletedWebhook: boolean,
): FieldError[] {
  return checkDeletable(
    KIND.subnet,
    subnet,
    enableValidatingResourcesDeletedWebhook,
    (n) => `cannot be deleted while its pools hold ${n} of its IPs; delete those pools first`,
  );
}
