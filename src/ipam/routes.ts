// What a pod is told about one allocated address: the IpConfig of the socket API (address with the pool's
// prefix, gateway, pool) and its routes — the pool's routes, the pod's `ipam.spidernet.io/routes` whose gateway
// lies in the pool's subnet, and a default route through the gateway unless cleanGateway.

import type { AnnotationRoute } from "../api/annotations.ts";
import { KIND } from "../api/constants.ts";
import type { Route as PoolRoute, SpiderIPPool } from "../api/types.ts";
import type { IpConfig, Route } from "../agentapi/models.ts";
import { cidrContains, type Family, parseCIDR, parseIP } from "../ip/mod.ts";

/** ConfigMap switches copied into every IpConfig (per-pool settings do not exist upstream either). */
export interface DetectionFlags {
  enableIPConflictDetection: boolean;
  enableGatewayDetection: boolean;
}

/** The default route destination of a family. */
export function defaultDestination(family: Family): string {
  return family === 4 ? "0.0.0.0/0" : "::/0";
}

function subnetOf(pool: SpiderIPPool) {
  const s = pool.spec?.subnet;
  if (!s) throw new Error(`${KIND.ippool} ${JSON.stringify(pool.metadata.name)} has no spec.subnet`);
  return parseCIDR(s, { canonical: false });
}

/**
 * The socket API's IpConfig for address `ip` of `pool` on `nic`: `address` carries the prefix of the pool's
 * subnet, `vlan` is always 0.
 *
 * ```ts
 * ipConfigFor(pool, "192.0.2.10", "eth0", flags);
 * // { version: 4, address: "192.0.2.10/24", ipPool: "v4-a", gateway: "192.0.2.1", nic: "eth0", vlan: 0, ... }
 * ```
 */
export function ipConfigFor(pool: SpiderIPPool, ip: string, nic: string, flags: DetectionFlags): IpConfig {
  const subnet = subnetOf(pool);
  return {
    version: subnet.family,
    address: `${ip}/${subnet.prefix}`,
    ipPool: pool.metadata.name,
    ...(pool.spec?.gateway ? { gateway: pool.spec.gateway } : {}),
    nic,
    vlan: 0,
    enableGatewayDetection: flags.enableGatewayDetection,
    enableIPConflictDetection: flags.enableIPConflictDetection,
  };
}

/** The custom routes whose gateway lies inside `pool`'s subnet (they belong to the NIC using that pool). */
export function customRoutesFor(pool: SpiderIPPool, customRoutes: readonly AnnotationRoute[]): PoolRoute[] {
  const subnet = subnetOf(pool);
  return customRoutes.filter((r) => {
    const gw = parseIP(r.gw);
    return gw.family === subnet.family && cidrContains(subnet, gw.value);
  }).map((r) => ({ dst: r.dst, gw: r.gw }));
}

/**
 * The routes stored on the endpoint for one address: the pool's `spec.routes` then the matching custom
 * routes. The default route is not stored; it follows from the gateway and cleanGateway.
 */
export function storedRoutesFor(pool: SpiderIPPool, customRoutes: readonly AnnotationRoute[]): PoolRoute[] {
  return [
    ...(pool.spec?.routes ?? []).map((r) => ({ dst: r.dst, gw: r.gw })),
    ...customRoutesFor(pool, customRoutes),
  ];
}

/**
 * The socket API routes for one address of `pool` on `nic`: stored routes, then `0.0.0.0/0` (or `::/0`)
 * through `spec.gateway` unless `cleanGateway` or the pool has no gateway.
 */
export function routesFor(
  pool: SpiderIPPool,
  nic: string,
  cleanGateway: boolean,
  customRoutes: readonly AnnotationRoute[],
): Route[] {
  const family = subnetOf(pool).family;
  return withDefaultRoute(storedRoutesFor(pool, customRoutes), nic, family, pool.spec?.gateway, cleanGateway);
}

/** Stored routes as socket API routes on `nic`, plus the default route through `gateway` unless clean. */
export function withDefaultRoute(
  stored: readonly PoolRoute[],
  nic: string,
  family: Family,
  gateway: string | undefined,
  cleanGateway: boolean,
): Route[] {
  const out: Route[] = stored.map((r) => ({ ifName: nic, dst: r.dst, gw: r.gw }));
  if (gateway && !cleanGateway) out.push({ ifName: nic, dst: defaultDestination(family), gw: gateway });
  return out;
}

/**
 * Custom routes whose gateway lies in none of the allocated pools' subnets; the caller logs them as dropped.
 */
export function unmatchedRoutes(
  customRoutes: readonly AnnotationRoute[],
  pools: readonly SpiderIPPool[],
): AnnotationRoute[] {
  return customRoutes.filter((r) => pools.every((p) => customRoutesFor(p, [r]).length === 0));
}
