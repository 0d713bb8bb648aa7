// Which candidate pools a pod may actually use on one NIC and family (drop reasons are kept so the error says
// why each pool was refused), and the order they are tried in: pools with narrower affinity first.

import { parseMultusDefaultNetwork, parseMultusNetworks } from "../api/annotations.ts";
import { ANNOTATION, DEFAULT_NIC, LABEL } from "../api/constants.ts";
import { matchLabelSelector } from "../api/selector.ts";
import { isAutoPool } from "../api/validate/ippool.ts";
import type { SpiderIPPool } from "../api/types.ts";
import { cidrContains, type Family, parseCIDR, parseIP } from "../ip/mod.ts";
import { invalidSpecReason, poolFamily } from "./pool.ts";
import type { TopController } from "./workload.ts";

/** A NetworkAttachmentDefinition reference. */
export interface NetworkRef {
  namespace: string;
  name: string;
}

/** What the pool's affinities are checked against. */
export interface FilterContext {
  family: Family;
  nic: string;
  pod: { namespace: string; labels?: Record<string, string> };
  namespace: { name: string; labels?: Record<string, string> };
  node: { name: string; labels?: Record<string, string> };
  /** The NAD driving this NIC (see multusNetworkFor); undefined when unknown. */
  multusNetwork?: NetworkRef;
  /** Spiderpool's own namespace: a `spec.multusName` entry without a namespace lives there. */
  agentNamespace: string;
  /** The pod's top controller; auto-pools only serve their application. */
  top: TopController;
  /**
   * With `match_master_subnet` (SR-IOV): the addresses of the VF's PF on the host. A pool is kept only when
   * one of them lies in its subnet. Undefined when the option is off.
   */
  masterAddresses?: readonly string[];
}

export interface DroppedPool {
  pool: string;
  reason: string;
}

export interface FilterResult {
  usable: SpiderIPPool[];
  dropped: DroppedPool[];
}

/** Every candidate pool of a NIC and family was refused. The message lists each pool and why. */
export class NoPoolAvailableError extends Error {
  readonly family: Family;
  readonly nic: string;
  readonly dropped: DroppedPool[];
  constructor(family: Family, nic: string, candidates: readonly string[], dropped: readonly DroppedPool[]) {
    const list = candidates.map((c) => JSON.stringify(c)).join(",");
    const why = dropped.map((d) => `${d.pool}: ${d.reason}`).join("; ");
    super(`no IPPool available, all IPv${family} IPPools [${list}] of ${nic} filtered out: ${why}`);
    this.name = "NoPoolAvailableError";
    this.family = family;
    this.nic = nic;
    this.dropped = [...dropped];
  }
}

/**
 * Keeps the candidate pools the pod may use, in candidate order, and says why each other one was dropped.
 * Names without a pool in `pools` are dropped as not found.
 */
export function filterPools(
  candidateNames: readonly string[],
  pools: readonly SpiderIPPool[] | ReadonlyMap<string, SpiderIPPool>,
  ctx: FilterContext,
): FilterResult {
  const byName = pools instanceof Map
    ? pools as ReadonlyMap<string, SpiderIPPool>
    : new Map((pools as readonly SpiderIPPool[]).map((p) => [p.metadata.name, p]));
  const usable: SpiderIPPool[] = [];
  const dropped: DroppedPool[] = [];
  for (const name of candidateNames) {
    const reason = dropReason(byName.get(name), ctx);
    if (reason === undefined) usable.push(byName.get(name)!);
    else dropped.push({ pool: name, reason });
  }
  return { usable, dropped };
}

/**
 * Like filterPools, but throws NoPoolAvailableError when no candidate is left. An empty candidate list is
 * not an error: that family simply gets no address.
 */
export function requireUsablePools(
  candidateNames: readonly string[],
  pools: readonly SpiderIPPool[] | ReadonlyMap<string, SpiderIPPool>,
  ctx: FilterContext,
): SpiderIPPool[] {
  const { usable, dropped } = filterPools(candidateNames, pools, ctx);
  if (usable.length === 0 && candidateNames.length > 0) {
    throw new NoPoolAvailableError(ctx.family, ctx.nic, candidateNames, dropped);
  }
  return usable;
}

/**
 * Why a pool cannot serve any pod for `family`, whatever the pod: missing, terminating, disabled, of another
 * family (`spec.ipVersion`, else derived from `spec.subnet` as the webhook does), or with a spec the webhook
 * would refuse (poolSpecProblems). Undefined when the pool itself is usable (affinities: dropReason).
 */
export function unusableReason(pool: SpiderIPPool | undefined, family: Family): string | undefined {
  if (pool === undefined) return "SpiderIPPool not found";
  if (pool.metadata.deletionTimestamp) return "terminating";
  const spec = pool.spec ?? {};
  if (spec.disable === true) return "disabled (spec.disable: true)";
  // A broken spec first: an ipVersion that disagrees with the subnet would otherwise read as "of the other
  // family", hiding the field to fix.
  const invalid = invalidSpecReason(pool);
  if (invalid !== undefined) return invalid;
  const fam = poolFamily(pool);
  if (fam !== undefined && fam !== family) return `an IPv${fam} pool, not IPv${family}`;
  return undefined;
}

/** Why a pool does not serve pods on `node` (spec.nodeName, else spec.nodeAffinity), or undefined when it does. */
export function nodeMismatch(
  pool: SpiderIPPool,
  node: { name: string; labels?: Readonly<Record<string, string>> },
): string | undefined {
  const spec = pool.spec ?? {};
  if (spec.nodeName && spec.nodeName.length > 0) {
    return spec.nodeName.includes(node.name)
      ? undefined
      : `node ${JSON.stringify(node.name)} is not in spec.nodeName`;
  }
  if (spec.nodeAffinity && !matchLabelSelector(spec.nodeAffinity, node.labels)) {
    return `labels of node ${JSON.stringify(node.name)} do not match spec.nodeAffinity`;
  }
  return undefined;
}

/** Why a pool cannot serve this pod on this NIC and family, or undefined when it can. */
export function dropReason(pool: SpiderIPPool | undefined, ctx: FilterContext): string | undefined {
  const unusable = unusableReason(pool, ctx.family);
  if (unusable !== undefined || pool === undefined) return unusable;
  const spec = pool.spec ?? {};
  const wrongNode = nodeMismatch(pool, ctx.node);
  if (wrongNode !== undefined) return wrongNode;
  if (spec.namespaceName && spec.namespaceName.length > 0) {
    if (!spec.namespaceName.includes(ctx.pod.namespace)) {
      return `namespace ${JSON.stringify(ctx.pod.namespace)} is not in spec.namespaceName`;
    }
  } else if (spec.namespaceAffinity && !matchLabelSelector(spec.namespaceAffinity, ctx.namespace.labels)) {
    return `labels of namespace ${JSON.stringify(ctx.pod.namespace)} do not match spec.namespaceAffinity`;
  }
  if (spec.podAffinity) {
    if (isAutoPool(pool)) {
      // Auto-pools belong to one application; upstream returns here, skipping the multusName check.
      return servesApplication(pool, ctx.top)
        ? undefined
        : `auto-pool of another application (${
          appOf(pool)
        }), not ${ctx.top.kind} ${ctx.top.namespace}/${ctx.top.name}`;
    }
    if (!matchLabelSelector(spec.podAffinity, ctx.pod.labels)) {
      return "pod labels do not match spec.podAffinity";
    }
  }
  if (spec.multusName && spec.multusName.length > 0) {
    const want = spec.multusName.map((m) => normalizeNetwork(m, ctx.agentNamespace));
    const net = ctx.multusNetwork;
    if (net === undefined) {
      return `spec.multusName is set but no NetworkAttachmentDefinition is known for ${ctx.nic}`;
    }
    const have = `${net.namespace}/${net.name}`;
    if (!want.includes(have)) return `NIC ${ctx.nic} uses network ${have}, not one of spec.multusName`;
  }
  if (ctx.masterAddresses !== undefined && !masterInSubnet(pool, ctx.masterAddresses)) {
    return `no address of the master interface (${ctx.masterAddresses.join(", ") || "none"}) is in subnet ` +
      `${pool.spec.subnet} (match_master_subnet)`;
  }
  return undefined;
}

function masterInSubnet(pool: SpiderIPPool, addresses: readonly string[]): boolean {
  let subnet;
  try {
    subnet = parseCIDR(pool.spec.subnet, { canonical: false });
  } catch {
    return false;
  }
  return addresses.some((a) => {
    try {
      const slash = a.indexOf("/");
      const ip = parseIP(slash === -1 ? a : a.slice(0, slash));
      return ip.family === subnet.family && cidrContains(subnet, ip.value);
    } catch {
      return false;
    }
  });
}

/** An auto-pool: created by the controller for one application (it carries the owner-application labels). */

function splitAPIVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf("/");
  return slash === -1
    ? { group: "", version: apiVersion }
    : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

function servesApplication(pool: SpiderIPPool, top: TopController): boolean {
  const m = pool.spec?.podAffinity?.matchLabels ?? {};
  const { group, version } = splitAPIVersion(top.apiVersion);
  return (m[LABEL.appAPIGroup] ?? "") === group && m[LABEL.appAPIVersion] === version &&
    m[LABEL.appKind] === top.kind && m[LABEL.appNamespace] === top.namespace && m[LABEL.appName] === top.name;
}

function appOf(pool: SpiderIPPool): string {
  const m = pool.spec?.podAffinity?.matchLabels ?? {};
  return `${m[LABEL.appKind] ?? "?"} ${m[LABEL.appNamespace] ?? "?"}/${m[LABEL.appName] ?? "?"}`;
}

function normalizeNetwork(entry: string, agentNamespace: string): string {
  return entry.includes("/") ? entry : `${agentNamespace}/${entry}`;
}

/**
 * The NetworkAttachmentDefinition that drives `nic`, from the pod's Multus annotations: the first NIC
 * (`eth0`, or index 0 in no-name mode) uses `v1.multus-cni.io/default-network`, else `clusterNetwork` (the
 * agent's `MULTUS_CLUSTER_NETWORK`); other NICs come from `k8s.v1.cni.cncf.io/networks`. Names without a
 * namespace live in `agentNamespace` (default network) or the pod's namespace (networks).
 */
export function multusNetworkFor(
  nic: string,
  pod: { namespace: string; annotations?: Record<string, string> },
  agentNamespace: string,
  clusterNetwork?: string,
): NetworkRef | undefined {
  const anno = pod.annotations ?? {};
  if (nic === DEFAULT_NIC || nic === "0") {
    const v = anno[ANNOTATION.multusDefaultNetwork];
    if (v !== undefined && v.trim() !== "") {
      const n = parseMultusDefaultNetwork(v, agentNamespace);
      return { namespace: n.namespace, name: n.name };
    }
    if (clusterNetwork === undefined || clusterNetwork === "") return undefined;
    const slash = clusterNetwork.indexOf("/");
    return slash === -1
      ? { namespace: agentNamespace, name: clusterNetwork }
      : { namespace: clusterNetwork.slice(0, slash), name: clusterNetwork.slice(slash + 1) };
  }
  const v = anno[ANNOTATION.multusNetworks];
  if (v === undefined || v.trim() === "") return undefined;
  const hit = parseMultusNetworks(v, pod.namespace).find((n) => n.interface === nic);
  return hit && { namespace: hit.namespace, name: hit.name };
}

/**
 * Orders usable pools for trying (stable): pools with podAffinity first, then nodeName, nodeAffinity,
 * namespaceName, namespaceAffinity, multusName; pools equal on all of these keep their candidate order.
 */
export function sortPools(pools: readonly SpiderIPPool[]): SpiderIPPool[] {
  const score = (p: SpiderIPPool): number[] => {
    const s = p.spec ?? {};
    return [
      s.podAffinity ? 1 : 0,
      s.nodeName && s.nodeName.length > 0 ? 1 : 0,
      s.nodeAffinity ? 1 : 0,
      s.namespaceName && s.namespaceName.length > 0 ? 1 : 0,
      s.namespaceAffinity ? 1 : 0,
      s.multusName && s.multusName.length > 0 ? 1 : 0,
    ];
  };
  return pools.map((p, i) => ({ p, i, s: score(p) })).sort((a, b) => {
    for (let k = 0; k < a.s.length; k++) if (a.s[k] !== b.s[k]) return b.s[k] - a.s[k];
    return a.i - b.i;
  }).map((x) => x.p);
}

export { isAutoPool };
