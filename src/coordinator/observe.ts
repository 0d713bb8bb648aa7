// Reading the pod's and the host's namespaces into the plain data the planner and CHECK take. The only I/O of
// the coordinator besides applying plans: a few netlink dumps, one route lookup per pod address, two sysctls.

import type { NetNs } from "../net/mod.ts";
import type { NsView } from "./cleanup.ts";
import type { CoordinatorSettings } from "./config.ts";
import { type HostState, type PodState, SYSCTL } from "./plan.ts";

export async function observePod(pod: NetNs): Promise<PodState> {
  const sysctls: Record<string, string | undefined> = {};
  for (const key of Object.values(SYSCTL)) sysctls[key] = await pod.readSysctl(key);
  return {
    links: await pod.links(),
    addrs: await pod.addrs(),
    routes: await pod.routes(),
    rules: await pod.rules(),
    sysctls,
  };
}

export async function observeHost(
  host: NetNs,
  s: CoordinatorSettings,
  podAddrs: string[],
): Promise<HostState> {
  const sourceToward: Record<string, string | undefined> = {};
  for (const ip of podAddrs) sourceToward[ip] = (await host.routeGet(ip))?.src;
  return {
    links: await host.links(),
    addrs: await host.addrs(),
    sourceToward,
    routes: await host.routes(undefined, s.hostRuleTable),
    rules: await host.rules(),
    neighs: await host.neighs(),
  };
}

/** Both namespaces as CHECK compares them with the record. */
export async function view(ns: NetNs): Promise<NsView> {
  const sysctls: Record<string, string | undefined> = {};
  for (const key of Object.values(SYSCTL)) sysctls[key] = await ns.readSysctl(key);
  return {
    links: await ns.links(),
    addrs: await ns.addrs(),
    routes: await ns.routes(),
    rules: await ns.rules(),
    neighs: await ns.neighs(),
    sysctls,
  };
}
