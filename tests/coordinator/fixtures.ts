// Plain-data namespaces for the planner's tests: a pod and a host described link by link, the way the plugin
// observes them, so each test states only what matters to it.

import type { CoordinatorSettings } from "../../src/coordinator/config.ts";
import type { AddInput, HostState, PodState } from "../../src/coordinator/plan.ts";
import type { AddrInfo, LinkInfo, NeighInfo, RouteInfo, RuleInfo } from "../../src/net/types.ts";
import { IFF_LOOPBACK, IFF_UP, RT_SCOPE, RT_TABLE, RTN, RTPROT } from "../../src/net/types.ts";

export function settings(o: Partial<CoordinatorSettings> = {}): CoordinatorSettings {
  return {
    mode: "auto",
    podDefaultCniNic: "eth0",
    overlayPodCIDR: ["198.18.128.0/24"],
    serviceCIDR: ["198.18.0.0/24"],
    hijackCIDR: ["169.254.0.0/16"],
    policyRoutes: [],
    podMACPrefix: "",
    tunePodRoutes: true,
    podDefaultRouteNic: "",
    hostRuleTable: 500,
    podRPFilter: 0,
    txQueueLen: 0,
    vethLinkAddress: "",
    vethMTU: 1500,
    agentSocket: "/run/test.sock",
    log: { level: "info", path: "/dev/null", maxSizeMB: 0, maxAgeDays: 0, maxCount: 0 },
    ...o,
  };
}

export function link(index: number, name: string, o: Partial<LinkInfo> = {}): LinkInfo {
  return {
    index,
    name,
    flags: name === "lo" ? IFF_UP | IFF_LOOPBACK : IFF_UP,
    mac: name === "lo" ? "00:00:00:00:00:00" : `02:00:00:00:00:${index.toString(16).padStart(2, "0")}`,
    mtu: 1500,
    txqlen: 1000,
    ...o,
  };
}

export function addr(index: number, cidr: string, scope: number = RT_SCOPE.universe): AddrInfo {
  const [address, len] = cidr.split("/");
  return { index, family: address.includes(":") ? 6 : 4, address, prefixLen: Number(len), scope, flags: 0 };
}

/** A route in main unless told; `dst` "default" is the family's default. */
export function route(
  dst: string,
  o: Partial<RouteInfo> & { family?: 4 | 6 } = {},
): RouteInfo {
  const family = o.family ?? (dst.includes(":") || o.gw?.includes(":") ? 6 : 4);
  return {
    family,
    dst: dst === "default" ? (family === 4 ? "0.0.0.0/0" : "::/0") : dst,
    table: RT_TABLE.main,
    scope: o.gw ? RT_SCOPE.universe : RT_SCOPE.link,
    protocol: RTPROT.boot,
    type: RTN.unicast,
    ...o,
  };
}

export function rule(o: Partial<RuleInfo> & { priority: number; table: number }): RuleInfo {
  return { family: 4, action: 1, ...o };
}

export const MAIN_RULES: RuleInfo[] = [
  rule({ priority: 0, table: RT_TABLE.local }),
  rule({ priority: 32766, table: RT_TABLE.main }),
  rule({ priority: 32767, table: RT_TABLE.default }),
];

export function pod(o: Partial<PodState> = {}): PodState {
  return {
    links: [link(1, "lo"), link(2, "eth0", { kind: "macvlan" })],
    addrs: [addr(1, "127.0.0.1/8", RT_SCOPE.host), addr(2, "192.0.2.10/24")],
    routes: [
      route("192.0.2.0/24", { ifindex: 2, protocol: RTPROT.kernel, src: "192.0.2.10" }),
      route("default", { ifindex: 2, gw: "192.0.2.1" }),
    ],
    rules: MAIN_RULES,
    sysctls: { "net.ipv6.conf.all.disable_ipv6": "0", "net.ipv4.conf.all.rp_filter": "0" },
    ...o,
  };
}

export function host(o: Partial<HostState> = {}): HostState {
  return {
    links: [link(1, "lo"), link(2, "ens192"), link(3, "docker0"), link(4, "cali12345")],
    addrs: [
      addr(1, "127.0.0.1/8", RT_SCOPE.host),
      addr(2, "203.0.113.2/24"),
      addr(2, "fe80::1/64", RT_SCOPE.link),
      addr(3, "198.19.0.1/16"),
      addr(4, "198.19.9.9/32"),
    ],
    sourceToward: { "192.0.2.10": "203.0.113.2" },
    routes: [],
    rules: MAIN_RULES,
    neighs: [],
    ...o,
  };
}

export function neigh(ifindex: number, dst: string, lladdr: string, state: number): NeighInfo {
  return { family: dst.includes(":") ? 6 : 4, ifindex, dst, lladdr, state };
}

export function input(o: Partial<AddInput> = {}): AddInput {
  return {
    settings: settings(),
    containerId: "0123456789abcdef0123",
    ifName: "eth0",
    pod: pod(),
    host: host(),
    macs: { host: "02:aa:00:00:00:01", pod: "02:bb:00:00:00:01" },
    ...o,
  };
}
