// The SpiderEndpoint that records a pod's addresses (one detail per NIC), and the socket API answer built from
// it. Fresh allocations and repeated ADDs answer through the same function, so a retried ADD sees exactly
// what the first one returned.

import type { AnnotationRoute } from "../api/annotations.ts";
import { API_VERSION, FINALIZER, KIND } from "../api/constants.ts";
import type { IPAllocationDetail, SpiderEndpoint, SpiderIPPool } from "../api/types.ts";
import type { IpamAddResponse, IpConfig, Route } from "../agentapi/models.ts";
import { type Family, parseCIDR, parseIPPrefix } from "../ip/mod.ts";
import { type DetectionFlags, storedRoutesFor, withDefaultRoute } from "./routes.ts";
import { hasStaticIP, type TopController, type WorkloadFlags } from "./workload.ts";

/** One address allocated in this ADD. */
export interface NICAllocation {
  /** NIC name; "" for a not-yet-named NIC in no-name mode. */
  nic: string;
  /** NIC order (the `ippools` item index; 0 otherwise). */
  index: number;
  ip: string;
  pool: SpiderIPPool;
  cleanGateway: boolean;
}

/**
 * Endpoint details for this ADD's allocations: one per NIC, ordered by NIC index, with `IP/prefix`
 * addresses, pools, gateways, and the routes to store (pool routes plus matching custom routes).
 */
export function endpointDetailsFor(
  allocations: readonly NICAllocation[],
  customRoutes: readonly AnnotationRoute[],
): IPAllocationDetail[] {
  const groups = new Map<string, { index: number; allocs: NICAllocation[] }>();
  for (const a of allocations) {
    const key = a.nic !== "" ? a.nic : `#${a.index}`;
    const g = groups.get(key) ?? { index: a.index, allocs: [] };
    g.allocs.push(a);
    groups.set(key, g);
  }
  return [...groups.values()].sort((x, y) => x.index - y.index).map(({ allocs }) => {
    const d: IPAllocationDetail = { interface: allocs[0].nic, vlan: 0 };
    const routes: { dst: string; gw: string }[] = [];
    let gateway = false;
    for (const a of allocs) {
      const subnet = parseCIDR(a.pool.spec.subnet, { canonical: false });
      const fam = subnet.family === 4 ? "ipv4" : "ipv6";
      d[fam] = `${a.ip}/${subnet.prefix}`;
      d[`${fam}Pool`] = a.pool.metadata.name;
      if (a.pool.spec.gateway) {
        d[`${fam}Gateway`] = a.pool.spec.gateway;
        gateway = true;
      }
      routes.push(...storedRoutesFor(a.pool, customRoutes));
    }
    if (gateway) d.cleanGateway = allocs.some((a) => a.cleanGateway);
    if (routes.length > 0) d.routes = routes;
    return d;
  });
}

export interface EndpointInput {
  namespace: string;
  /** Endpoint name: the pod name, or the VMI name for KubeVirt (see endpointNameFor). */
  name: string;
  pod: { name: string; uid: string };
  node: string;
  top: TopController;
  details: IPAllocationDetail[];
  flags: WorkloadFlags;
  /** The endpoint already stored for this pod (same UID, or a fixed-IP workload): details are merged in. */
  existing?: SpiderEndpoint;
}

/**
 * The SpiderEndpoint after an allocation: finalizer set; owned by the Pod except for StatefulSet and KubeVirt
 * pods, whose endpoint must outlive the pod. With `existing`, its metadata (resourceVersion) is kept and
 * details of other NICs are kept; details of the same NIC are replaced.
 */
export function buildEndpoint(input: EndpointInput): SpiderEndpoint {
  const { existing } = input;
  const ownerReferences = hasStaticIP(input.top, input.flags) ? [] : [{
    apiVersion: "v1",
    kind: "Pod",
    name: input.pod.name,
    uid: input.pod.uid,
    controller: true,
    blockOwnerDeletion: true,
  }];
  const finalizers = [...(existing?.metadata.finalizers ?? [])];
  if (!finalizers.includes(FINALIZER)) finalizers.push(FINALIZER);
  const mine = new Set(input.details.map((d) => d.interface).filter((n) => n !== ""));
  const kept = (existing?.status.current.ips ?? []).filter((d) =>
    d.interface === "" || !mine.has(d.interface)
  );
  const { ownerReferences: _o, finalizers: _f, ...meta } = existing?.metadata ?? { name: input.name };
  return {
    apiVersion: API_VERSION,
    kind: KIND.endpoint,
    metadata: {
      ...meta,
      name: input.name,
      namespace: input.namespace,
      finalizers,
      ...(ownerReferences.length > 0 ? { ownerReferences } : {}),
    },
    status: {
      current: { uid: input.pod.uid, node: input.node, ips: [...kept, ...input.details] },
      ownerControllerType: input.top.kind,
      ownerControllerName: input.top.name,
    },
  };
}

/**
 * The endpoint handed to a new pod of a fixed-IP workload (after restampIPs): `uid` and `node` updated,
 * everything else kept.
 */
export function adoptEndpoint(endpoint: SpiderEndpoint, pod: { uid: string; node: string }): SpiderEndpoint {
  return {
    ...endpoint,
    status: { ...endpoint.status, current: { ...endpoint.status.current, uid: pod.uid, node: pod.node } },
  };
}

/** The detail of `ifName` on an endpoint, else the first unnamed one (no-name mode), else undefined. */
export function detailFor(endpoint: SpiderEndpoint, ifName: string): IPAllocationDetail | undefined {
  const ips = endpoint.status.current.ips ?? [];
  return ips.find((d) => d.interface === ifName) ?? ips.find((d) => d.interface === "");
}

/**
 * The socket API answer for stored details: an IpConfig per address and the routes of every NIC (stored
 * routes plus a default route per family with a gateway, unless cleanGateway).
 */
export function responseFromDetails(
  details: readonly IPAllocationDetail[],
  flags: DetectionFlags,
): IpamAddResponse {
  const ips: IpConfig[] = [];
  const routes: Route[] = [];
  for (const d of details) {
    for (const fam of [4, 6] as const) {
      const address = fam === 4 ? d.ipv4 : d.ipv6;
      if (!address) continue;
      const gateway = fam === 4 ? d.ipv4Gateway : d.ipv6Gateway;
      const pool = fam === 4 ? d.ipv4Pool : d.ipv6Pool;
      ips.push({
        version: parseIPPrefix(address).family,
        address,
        ...(pool ? { ipPool: pool } : {}),
        ...(gateway ? { gateway } : {}),
        nic: d.interface,
        vlan: d.vlan ?? 0,
        ...(d.mac ? { mac: d.mac } : {}),
        enableGatewayDetection: flags.enableGatewayDetection,
        enableIPConflictDetection: flags.enableIPConflictDetection,
      });
    }
    routes.push(...withDefaultRoute(d.routes ?? [], d.interface, 4, undefined, true));
    for (const fam of [4, 6] as Family[]) {
      const gateway = fam === 4 ? d.ipv4Gateway : d.ipv6Gateway;
      routes.push(...withDefaultRoute([], d.interface, fam, gateway, d.cleanGateway === true));
    }
  }
  return { ips, routes };
}

/**
 * The answer to a repeated ADD from the stored endpoint (no pool writes). In no-name mode the first unnamed
 * detail is given `ifName`; `endpoint` is then the updated object to write back, else undefined.
 */
export function responseFromEndpoint(
  endpoint: SpiderEndpoint,
  ifName: string,
  flags: DetectionFlags,
): { response: IpamAddResponse; endpoint?: SpiderEndpoint } {
  const ips = endpoint.status.current.ips ?? [];
  if (ips.some((d) => d.interface === ifName) || !ips.some((d) => d.interface === "")) {
    return { response: responseFromDetails(ips, flags) };
  }
  const i = ips.findIndex((d) => d.interface === "");
  const named = ips.map((d, j) => (j === i ? { ...d, interface: ifName } : d));
  const updated: SpiderEndpoint = {
    ...endpoint,
    status: { ...endpoint.status, current: { ...endpoint.status.current, ips: named } },
  };
  return { response: responseFromDetails(named, flags), endpoint: updated };
}
