// Defaulting (the mutating webhooks) of the five writable kinds, as pure functions: each takes an object and
// returns a mutated copy, never touching the input. Defaulting never rejects; where a field is too malformed
// to normalise it is left as is for validation to report.

import { familyOf, formatCIDR, formatIP, IPError, parseCIDR, parseIP } from "../ip/mod.ts";
import {
  ANNOTATION,
  API_VERSION,
  COORDINATOR_DEFAULTS,
  DEFAULT_CNI_TYPE,
  FINALIZER,
  KIND,
  LABEL,
} from "./constants.ts";
import type {
  CoordinatorSpec,
  IPPoolSpec,
  MultusCNIConfigSpec,
  ObjectMeta,
  ReservedIPSpec,
  Route,
  SpiderCoordinator,
  SpiderIPPool,
  SpiderMultusConfig,
  SpiderpoolPools,
  SpiderReservedIP,
  SpiderSubnet,
  SubnetSpec,
} from "./types.ts";
import { mergeRanges } from "./validate/common.ts";
import { findOwningSubnet } from "./validate/ippool.ts";

/** What SpiderIPPool defaulting needs from the cluster. */
export interface IPPoolDefaultsContext {
  enableSpiderSubnet: boolean;
  /** Every SpiderSubnet; the pool's owner is the one with the same `spec.subnet`. */
  subnets: readonly SpiderSubnet[];
}

/**
 * The label value derived from a subnet: `.`, `:` and `/` become `-` (`192.0.2.0/24` → `192-0-2-0-24`).
 * Used for `ipam.spidernet.io/ippool-cidr` and `ipam.spidernet.io/subnet-cidr`.
 */
export function cidrLabelValue(subnet: string): string {
  return subnet.replace(/[.:/]/g, "-");
}

/**
 * Defaults a SpiderIPPool: finalizer, `ipVersion` from the subnet, the `ippool-cidr` label, ips and excludeIPs
 * merged into canonical minimal ranges, and — with the SpiderSubnet feature — the owning SpiderSubnet as
 * controller owner, its label, and its gateway and routes when the pool sets none.
 *
 * ```ts
 * defaultIPPool({ metadata: { name: "v4-a" }, spec: { subnet: "192.0.2.0/24", ips: ["192.0.2.1-192.0.2.3", "192.0.2.2-192.0.2.5"] } },
 *   { enableSpiderSubnet: false, subnets: [] }).spec.ips; // ["192.0.2.1-192.0.2.5"]
 * ```
 */
export function defaultIPPool(pool: SpiderIPPool, ctx: IPPoolDefaultsContext): SpiderIPPool {
  const out = structuredClone(pool);
  const meta = ensureMeta(out);
  const spec = out.spec ??= {} as IPPoolSpec;
  const family = defaultAddresses(meta, spec, LABEL.ippoolCIDR);
  if (ctx.enableSpiderSubnet && family !== undefined) {
    const owner = findOwningSubnet(out, ctx.subnets.filter((s) => !s.metadata?.deletionTimestamp));
    if (owner?.metadata?.name) {
      const refs = meta.ownerReferences ??= [];
      const hasController = refs.some((r) => r.controller);
      if (!hasController && owner.metadata.uid) {
        refs.push({
          apiVersion: API_VERSION,
          kind: KIND.subnet,
          name: owner.metadata.name,
          uid: owner.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        });
      }
      (meta.labels ??= {})[LABEL.ownerSpiderSubnet] = owner.metadata.name;
      if ((spec.gateway === undefined || spec.gateway === null) && owner.spec?.gateway) {
        spec.gateway = owner.spec.gateway;
      }
      if ((spec.routes === undefined || spec.routes === null) && owner.spec?.routes) {
        spec.routes = structuredClone(owner.spec.routes);
      }
    }
  }
  return out;
}

/** Defaults a SpiderSubnet: finalizer, `ipVersion`, the `subnet-cidr` label, canonical ips and excludeIPs. */
export function defaultSubnet(subnet: SpiderSubnet): SpiderSubnet {
  const out = structuredClone(subnet);
  defaultAddresses(ensureMeta(out), out.spec ??= {} as SubnetSpec, LABEL.subnetCIDR);
  return out;
}

/**
 * The defaulting pools and subnets share, in place: finalizer, canonical addresses, `ipVersion` from the
 * subnet, the CIDR label `cidrLabel`, ips and excludeIPs merged. Returns the family of the subnet, if it parses.
 */
function defaultAddresses(
  meta: ObjectMeta,
  spec: IPPoolSpec | SubnetSpec,
  cidrLabel: string,
): 4 | 6 | undefined {
  addFinalizer(meta);
  canonicaliseAddresses(spec);
  const family = subnetFamily(spec.subnet);
  if (family !== undefined && (spec.ipVersion === undefined || spec.ipVersion === null)) {
    spec.ipVersion = family;
  }
  if (spec.subnet) (meta.labels ??= {})[cidrLabel] = cidrLabelValue(spec.subnet);
  if (family !== undefined && spec.ipVersion === family) {
    const ips = mergeRanges(spec.ips, family);
    if (ips !== undefined) spec.ips = ips;
    const ex = mergeRanges(spec.excludeIPs, family);
    if (ex !== undefined) spec.excludeIPs = ex;
  }
  return family;
}

/** Defaults a SpiderReservedIP: `ipVersion` from `ips[0]`, ips merged into canonical minimal ranges. */
export function defaultReservedIP(rip: SpiderReservedIP): SpiderReservedIP {
  const out = structuredClone(rip);
  const spec = out.spec ??= {} as ReservedIPSpec;
  const first = spec.ips?.[0];
  const family = first === undefined ? undefined : familyOf(first);
  if (family !== undefined && (spec.ipVersion === undefined || spec.ipVersion === null)) {
    spec.ipVersion = family;
  }
  if (spec.ipVersion === 4 || spec.ipVersion === 6) {
    const ips = mergeRanges(spec.ips, spec.ipVersion);
    if (ips !== undefined) spec.ips = ips;
  }
  return out;
}

/**
 * Defaults the SpiderCoordinator: finalizer; mode auto, tunePodRoutes true, hostRuleTable 500, podRPFilter 0,
 * txQueueLen 0, vethLinkAddress "", vethMTU 1500; `disable` spelled `disabled`; bare IPs in hijackCIDR and
 * policyRoutes[].dst turned into /32 or /128. podCIDRType is not defaulted (validation requires it).
 */
export function defaultCoordinator(c: SpiderCoordinator): SpiderCoordinator {
  const out = structuredClone(c);
  addFinalizer(ensureMeta(out));
  const spec = out.spec ??= {};
  spec.mode ??= COORDINATOR_DEFAULTS.mode;
  spec.tunePodRoutes ??= COORDINATOR_DEFAULTS.tunePodRoutes;
  spec.hostRuleTable ??= COORDINATOR_DEFAULTS.hostRuleTable;
  spec.podRPFilter ??= COORDINATOR_DEFAULTS.podRPFilter;
  spec.txQueueLen ??= COORDINATOR_DEFAULTS.txQueueLen;
  spec.vethLinkAddress ??= COORDINATOR_DEFAULTS.vethLinkAddress;
  spec.vethMTU ??= COORDINATOR_DEFAULTS.vethMTU;
  normaliseCoordinatorSpec(spec);
  return out;
}

/**
 * Defaults a SpiderMultusConfig: cniType `custom` when unset; the defaults of the chosen cniType's block; for
 * custom, `customCNI` "" and no coordinator (enableCoordinator false); otherwise the coordinator block (an
 * absent one becomes the standard block) and enableCoordinator true when unset; chainCNIJsonData [];
 * injection annotations copied to labels.
 */
export function defaultMultusConfig(smc: SpiderMultusConfig): SpiderMultusConfig {
  const out = structuredClone(smc);
  const meta = ensureMeta(out);
  const spec: MultusCNIConfigSpec = out.spec ??= {};
  spec.cniType ??= DEFAULT_CNI_TYPE;
  spec.disableIPAM ??= false;
  spec.chainCNIJsonData ??= [];
  switch (spec.cniType) {
    case "macvlan":
    case "ipvlan": {
      const b = spec[spec.cniType];
      if (b) {
        b.vlanID ??= 0;
        b.mtu ??= 0;
        b.rdmaResourceName ??= "";
        b.ippools = defaultPools(b.ippools, false);
        if (b.bond) b.bond.options ??= "";
      }
      break;
    }
    case "vlan": {
      const b = spec.vlan;
      if (b) {
        b.vlanMode ??= "manual";
        if (b.vlanMode === "manual") b.vlanID ??= 0;
        b.rdmaResourceName ??= "";
        b.mtu ??= 0;
        if (b.bond) b.bond.options ??= "";
      }
      break;
    }
    case "sriov": {
      const b = spec.sriov;
      if (b) {
        b.vlanID ??= 0;
        b.mtu ??= 0;
        b.minTxRateMbps ??= 0;
        b.maxTxRateMbps ??= 0;
        b.rdmaIsolation ??= false;
        b.resourceName ??= "";
        b.ippools = defaultPools(b.ippools, true);
      }
      break;
    }
    case "ib-sriov": {
      const b = spec.ibsriov;
      if (b) {
        b.pkey ??= "";
        b.enableIbKubernetes ??= false;
        b.rdmaIsolation ??= true;
        b.resourceName ??= "";
        b.linkState ??= "enable";
        b.ippools = defaultPools(b.ippools, false);
      }
      break;
    }
    case "ipoib":
      if (spec.ipoib) spec.ipoib.ippools = defaultPools(spec.ipoib.ippools, false);
      break;
    case "ovs":
      if (spec.ovs) {
        spec.ovs.vlan ??= 0;
        spec.ovs.ippools = defaultPools(spec.ovs.ippools, false);
      }
      break;
  }
  if (spec.cniType === "custom") {
    spec.customCNI ??= "";
    delete spec.coordinator;
    spec.enableCoordinator = false;
  } else {
    spec.enableCoordinator ??= true;
    spec.coordinator = defaultMultusCoordinator(spec.coordinator);
  }
  for (const key of [ANNOTATION.rdmaResourceInject, ANNOTATION.networkResourceInject]) {
    const v = meta.annotations?.[key];
    if (v !== undefined) (meta.labels ??= {})[key] = v;
  }
  return out;
}

/**
 * The coordinator block of a SpiderMultusConfig with its defaults: mode auto, empty lists and strings,
 * tunePodRoutes true, podRPFilter 0 (and txQueueLen 0 when the block was given). hostRuleTable, vethMTU and
 * podCIDRType stay unset so the SpiderCoordinator's values apply.
 */
export function defaultMultusCoordinator(given: CoordinatorSpec | undefined): CoordinatorSpec {
  const spec: CoordinatorSpec = structuredClone(given ?? {});
  spec.mode ??= COORDINATOR_DEFAULTS.mode;
  spec.hijackCIDR ??= [];
  spec.policyRoutes ??= [];
  spec.vethLinkAddress ??= "";
  spec.podMACPrefix ??= "";
  spec.podDefaultRouteNIC ??= "";
  spec.podRPFilter ??= COORDINATOR_DEFAULTS.podRPFilter;
  spec.tunePodRoutes ??= COORDINATOR_DEFAULTS.tunePodRoutes;
  if (given !== undefined && given !== null) spec.txQueueLen ??= COORDINATOR_DEFAULTS.txQueueLen;
  normaliseCoordinatorSpec(spec);
  return spec;
}

/**
 * Normalises a coordinator spec in place: `disable` → `disabled`; a bare IP in hijackCIDR or policyRoutes dst
 * becomes a host CIDR and a CIDR with host bits set its network; addresses are written canonically.
 */
export function normaliseCoordinatorSpec(spec: CoordinatorSpec): void {
  if (spec.mode === "disable") spec.mode = "disabled";
  if (spec.hijackCIDR) spec.hijackCIDR = spec.hijackCIDR.map(hostCIDR);
  if (spec.policyRoutes) {
    spec.policyRoutes = spec.policyRoutes.map((r: Route) => ({
      ...r,
      dst: hostCIDR(r.dst),
      gw: canonicalIP(r.gw),
    }));
  }
}

/**
 * `192.0.2.1` → `192.0.2.1/32`, `2001:db8::1` → `2001:db8::1/128`; a valid CIDR is rewritten canonically, host
 * bits cleared (`10.96.0.1/12` → `10.96.0.0/12`).
 */
export function hostCIDR(text: string): string {
  if (typeof text !== "string") return text;
  try {
    const ip = parseIP(text);
    return `${formatIP(ip.family, ip.value)}/${ip.family === 4 ? 32 : 128}`;
  } catch (e) {
    if (!(e instanceof IPError)) throw e;
  }
  return networkCIDR(text);
}

function canonicalIP(text: string): string {
  if (typeof text !== "string") return text;
  try {
    const ip = parseIP(text);
    return formatIP(ip.family, ip.value);
  } catch (e) {
    if (!(e instanceof IPError)) throw e;
    return text;
  }
}

/**
 * Writes subnet, gateway and route addresses in canonical form (`2001:DB8:0::/64` → `2001:db8::/64`), route
 * destinations as networks.
 */
function canonicaliseAddresses(spec: { subnet?: string; gateway?: string; routes?: Route[] }): void {
  if (typeof spec.subnet === "string") spec.subnet = canonicalCIDR(spec.subnet);
  if (typeof spec.gateway === "string") spec.gateway = canonicalIP(spec.gateway);
  if (Array.isArray(spec.routes)) {
    spec.routes = spec.routes.map((r) =>
      r && typeof r === "object" ? { ...r, dst: networkCIDR(r.dst), gw: canonicalIP(r.gw) } : r
    );
  }
}

/** A subnet written canonically; one with host bits set is left for validation to name the canonical form. */
function canonicalCIDR(text: string): string {
  return rewriteCIDR(text, true);
}

/**
 * A route destination written canonically as its network: upstream accepts host bits there (net.ParseCIDR),
 * and the route is to the network either way.
 */
function networkCIDR(text: string): string {
  return rewriteCIDR(text, false);
}

function rewriteCIDR(text: string, canonical: boolean): string {
  if (typeof text !== "string") return text;
  try {
    return formatCIDR(parseCIDR(text, { canonical }));
  } catch (e) {
    if (!(e instanceof IPError)) throw e;
    return text;
  }
}

function defaultPools(pools: SpiderpoolPools | undefined, withMatchMaster: boolean): SpiderpoolPools {
  const out: SpiderpoolPools = structuredClone(pools ?? {});
  out.ipv4 ??= [];
  out.ipv6 ??= [];
  if (withMatchMaster) out.matchMasterSubnet ??= false;
  return out;
}

function subnetFamily(subnet: string | undefined): 4 | 6 | undefined {
  if (!subnet) return undefined;
  try {
    return parseCIDR(subnet, { canonical: false }).family;
  } catch (e) {
    if (!(e instanceof IPError)) throw e;
    return undefined;
  }
}

function ensureMeta(obj: { metadata?: ObjectMeta }): ObjectMeta {
  return obj.metadata ??= { name: "" };
}

function addFinalizer(meta: ObjectMeta): void {
  if (meta.deletionTimestamp) return; // the API server refuses new finalizers on a terminating object
  const f = meta.finalizers ??= [];
  if (!f.includes(FINALIZER)) f.push(FINALIZER);
}
