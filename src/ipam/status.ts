// Whether the agent can serve an ADD that names no pool (CNI 1.1 STATUS): the runtime asks with the network
// configuration only, so the candidates are the pod-independent sources of `getPoolCandidates` — the CNI
// config's default pools, else the pools with `spec.default: true` — and each family needs one that has room.

import { type AllocatedIPs, decodeAllocatedIPs } from "../api/allocated.ts";
import { MAX_ALLOCATED_IPS } from "../api/constants.ts";
import type { SpiderIPPool } from "../api/types.ts";
import { type Family, IPRangeSet, parseIP } from "../ip/mod.ts";
import { defaultPoolNames, expandPoolNames } from "./candidates.ts";
import { nodeMismatch, unusableReason } from "./filter.ts";
import { blockedBy, describeOverlaps, overlapsWith } from "./overlap.ts";
import { usableAddresses } from "./pool.ts";

export interface StatusInput {
  /** The CNI config's `default_ipv4_ippool` / `default_ipv6_ippool` (globs allowed). */
  cniDefaults: { ipv4: readonly string[]; ipv6: readonly string[] };
  /** Every SpiderIPPool (from the cache). */
  pools: readonly SpiderIPPool[];
  /** Addresses held back by SpiderReservedIPs, per family. */
  reserved: Readonly<Record<Family, IPRangeSet>>;
  /** ConfigMap `enableIPv4` / `enableIPv6`: a disabled family is never checked. */
  flags: { enableIPv4: boolean; enableIPv6: boolean };
  /** The agent's node: pools whose spec.nodeName / spec.nodeAffinity exclude it cannot serve its pods. */
  node?: { name: string; labels?: Readonly<Record<string, string>> };
  /** Records one pool may hold (`SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS`); default 5000. */
  maxAllocated?: number;
}

/** One candidate pool: its free addresses, or why it cannot serve. */
export interface PoolAvailability {
  pool: string;
  /**
   * Addresses an ADD could get now: ips ∩ subnet − excludeIPs − gateway − reserved − other pools' claims −
   * allocated (0 when unusable).
   */
  free: bigint;
  /** Why the pool cannot serve, e.g. `254 of 254 allocated`; undefined when it can. */
  reason?: string;
}

/** One enabled family that has candidates. */
export interface FamilyStatus {
  family: Family;
  /** `cni`: the CNI config's default pools; `default`: the pools with `spec.default: true`. */
  source: "cni" | "default";
  pools: PoolAvailability[];
  /** At least one candidate pool has a free address. */
  available: boolean;
}

export interface IpamStatus {
  available: boolean;
  /** The families checked; a family without candidates is left out (pods then choose pools by annotation). */
  families: FamilyStatus[];
  /** When not available: each failing family, its pools and why each cannot serve. */
  message?: string;
}

/**
 * Whether a pod without pool annotations could get an address now. A family counts only when it is enabled
 * and has candidates; it fails when none of its candidate pools is usable with a free address. Throws
 * PoolSelectionError when the CNI config lists a pool twice (every such ADD would fail the same way).
 *
 * ```ts
 * ipamStatus({ cniDefaults: { ipv4: [], ipv6: [] }, pools, reserved, flags });
 * // { available: false, families: [...], message: 'no free IPv4 address in the default pools (spec.default:
 * //   true): "v4-a" 254 of 254 allocated, "v4-b" disabled (spec.disable: true); add ips or another default
 * //   pool' }
 * ```
 */
export function ipamStatus(input: StatusInput): IpamStatus {
  const { cniDefaults, pools, flags } = input;
  const enabled = ([4, 6] as const).filter((f) => f === 4 ? flags.enableIPv4 : flags.enableIPv6);
  const fromCNI = cniDefaults.ipv4.length > 0 || cniDefaults.ipv6.length > 0;
  const byName = new Map(pools.map((p) => [p.metadata.name, p]));
  const families: FamilyStatus[] = [];
  for (const family of enabled) {
    const names = fromCNI
      ? expandPoolNames(
        family === 4 ? cniDefaults.ipv4 : cniDefaults.ipv6,
        family,
        pools,
        `CNI IPAM config default_ipv${family}_ippool`,
      )
      : defaultPoolNames(pools, family);
    if (names.length === 0) continue;
    const states = names.map((n) => poolAvailability(byName.get(n), n, family, input));
    families.push({
      family,
      source: fromCNI ? "cni" : "default",
      pools: states,
      available: states.some((s) => s.reason === undefined),
    });
  }
  const failed = families.filter((f) => !f.available);
  if (failed.length === 0) return { available: true, families };
  return { available: false, families, message: failed.map(describeFamily).join("; ") };
}

function describeFamily(f: FamilyStatus): string {
  const where = f.source === "cni"
    ? `the CNI config's default_ipv${f.family}_ippool pools`
    : "the default pools (spec.default: true)";
  const fix = f.source === "cni"
    ? `add ips to them or another pool to default_ipv${f.family}_ippool`
    : "add ips or another default pool";
  const pools = f.pools.map((p) => `${JSON.stringify(p.pool)} ${p.reason}`).join(", ");
  return `no free IPv${f.family} address in ${where}: ${pools}; ${fix}`;
}

function poolAvailability(
  pool: SpiderIPPool | undefined,
  name: string,
  family: Family,
  input: StatusInput,
): PoolAvailability {
  const unusable = unusableReason(pool, family) ??
    (pool && input.node ? nodeMismatch(pool, input.node) : undefined);
  if (unusable !== undefined || pool === undefined) return { pool: name, free: 0n, reason: unusable };
  let usable: IPRangeSet;
  let records: AllocatedIPs;
  try {
    usable = usableAddresses(pool).usable;
    records = decodeAllocatedIPs(pool.status?.allocatedIPs, name);
  } catch (err) {
    return { pool: name, free: 0n, reason: `unreadable: ${(err as Error).message}` };
  }
  if (usable.isEmpty()) {
    return {
      pool: name,
      free: 0n,
      reason:
        "has no address (spec.ips within spec.subnet, minus spec.excludeIPs and spec.gateway, is empty)",
    };
  }
  const max = input.maxAllocated ?? MAX_ALLOCATED_IPS;
  const keys = Object.keys(records);
  if (keys.length >= max) {
    return {
      pool: name,
      free: 0n,
      reason: `holds ${keys.length} allocated IPs, the most one pool may hold ` +
        "(SPIDERPOOL_IPPOOL_MAX_ALLOCATED_IPS)",
    };
  }
  const reserved = input.reserved[family];
  const overlaps = overlapsWith(name, usable, input.pools);
  const open = usable.subtract(reserved).subtract(blockedBy(family, overlaps));
  let allocated = 0;
  let allocatedOpen = 0n;
  for (const ip of keys) {
    const p = parseIP(ip); // decodeAllocatedIPs has checked every key
    if (p.family !== family || !usable.has(p.value)) continue;
    allocated++;
    if (open.has(p.value)) allocatedOpen++;
  }
  const free = open.count() - allocatedOpen;
  if (free > 0n) return { pool: name, free };
  const held = usable.intersect(reserved).count();
  return {
    pool: name,
    free: 0n,
    reason: `${allocated} of ${usable.count()} allocated${held > 0n ? `, ${held} reserved` : ""}${
      overlaps.length > 0 ? `, the rest claimed by other pools (${describeOverlaps(overlaps)})` : ""
    }`,
  };
}
