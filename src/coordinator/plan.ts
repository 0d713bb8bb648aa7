// The coordinator's ADD as a pure function: from the merged settings and what was observed in the pod's and the
// host's namespaces, the ordered list of operations (veth pair, MAC, sysctls, neighbours, host and hijack
// routes, the host rule table, the conntrack-mark rules, per-NIC policy tables, policy routes) that make the
// pod's traffic to the node, to services and to each NIC's peers take the right path. The plugin observes,
// calls planAdd, and hands the result to the executor; tests read the list directly.

import { cidrContains, type Family, parseCIDR, parseIP } from "../ip/mod.ts";
import type { Op } from "../net/ops.ts";
import {
  type AddrInfo,
  IFF_LOOPBACK,
  IFF_UP,
  type LinkInfo,
  type NeighInfo,
  NUD_PERMANENT,
  type RouteInfo,
  type RouteSpec,
  RT_SCOPE,
  RT_TABLE,
  type RuleInfo,
} from "../net/types.ts";
import type { CoordinatorSettings } from "./config.ts";

/** The underlay veth inside the pod. */
export const POD_VETH = "veth0";
/** Table of the replies to connections that entered through veth0 (marked by conntrack). */
export const MARK_TABLE = 100;
/** The table number of the first NIC; later NICs count up from the number of links. */
export const FIRST_NIC_TABLE = 101;
/** Priority of the host's `from all lookup <hostRuleTable>` rule and of the pod's fwmark rule. */
export const HOST_RULE_PRIORITY = 1000;
export const MARK_RULE_PRIORITY = 1000;
/**
 * Priority of the pod's `from <NIC address> lookup <NIC table>` rules: after the fwmark rule, so that a reply
 * to a connection the node opened through veth0 goes back through veth0 whatever its source address.
 */
export const SOURCE_RULE_PRIORITY = 1001;
export const MARK = 0x1;
/** Host interfaces whose addresses are not node addresses for the pod (container, overlay and VPN devices). */
export const NODE_INTERFACES_EXCLUDED: readonly RegExp[] = [
  /^docker.*/,
  /^cbr.*/,
  /^dummy.*/,
  /^virbr.*/,
  /^lxcbr.*/,
  /^veth.*/,
  /^lo$/,
  /^cali.*/,
  /^flannel.*/,
  /^kube-ipvs.*/,
  /^cni.*/,
  /^vx-submariner/,
  /^cilium*/,
];

/** The mangle rules that send replies to connections entering through veth0 back through veth0. */
export function markRules(
  family: Family,
): { family: Family; table: string; chain: string; args: string[] }[] {
  const mark = `0x${MARK.toString(16)}`;
  return [
    {
      family,
      table: "mangle",
      chain: "PREROUTING",
      args: [
        "-i",
        POD_VETH,
        "-m",
        "conntrack",
        "--ctstate",
        "NEW",
        "-j",
        "MARK",
        "--set-xmark",
        `${mark}/0xffffffff`,
      ],
    },
    {
      family,
      table: "mangle",
      chain: "PREROUTING",
      args: ["-m", "mark", "--mark", mark, "-j", "CONNMARK", "--save-mark"],
    },
    { family, table: "mangle", chain: "OUTPUT", args: ["-j", "CONNMARK", "--restore-mark"] },
  ];
}

/** A problem that stops the ADD before anything is changed; the message says what to fix. */
export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PlanError";
  }
}

/** What the plugin read from the pod's namespace. */
export interface PodState {
  links: LinkInfo[];
  addrs: AddrInfo[];
  /** Every table. */
  routes: RouteInfo[];
  rules: RuleInfo[];
  /** Current values of the sysctls the plan may change (see SYSCTL). */
  sysctls: Record<string, string | undefined>;
}

/** What the plugin read from the host's namespace (the one the plugin runs in). */
export interface HostState {
  links: LinkInfo[];
  addrs: AddrInfo[];
  /** For each pod address: the source address the host uses toward it (`ip route get`), if it has a route. */
  sourceToward: Record<string, string | undefined>;
  /** Routes of the host rule table. */
  routes: RouteInfo[];
  rules: RuleInfo[];
  neighs: NeighInfo[];
}

export interface AddInput {
  settings: CoordinatorSettings;
  containerId: string;
  ifName: string;
  pod: PodState;
  host: HostState;
  /** MACs for a new veth pair (random, chosen by the caller so the plan stays a function of its input). */
  macs: { host: string; pod: string };
}

export interface AddPlan {
  mode: "underlay" | "overlay";
  firstInvoke: boolean;
  /** The policy-routing table of this NIC. */
  table: number;
  hostVeth: string;
  podVeth: string;
  families: Family[];
  /** Addresses of the NIC being added. */
  podIPs: string[];
  /** Node addresses the pod reaches through the veth (host routes and neighbours). */
  nodeIPs: string[];
  /** The next hop on the host for hijacked CIDRs and the mark table, per family. */
  gateway: Partial<Record<Family, string>>;
  ops: Op[];
  /** Things worth a log line (skipped steps and why). */
  notes: string[];
}

/** Lets reverse-path filtering on veth0 see the conntrack mark (see the reply-via-veth step). */
export const VETH_SRC_VALID_MARK = `net.ipv4.conf.${POD_VETH}.src_valid_mark`;

export const SYSCTL = {
  disableIPv6: "net.ipv6.conf.all.disable_ipv6",
  rpFilter: "net.ipv4.conf.all.rp_filter",
} as const;

/** The host side of the underlay veth pair: "veth" + the first 11 characters of the container id. */
export function hostVethName(containerId: string): string {
  return `veth${containerId.slice(0, 11)}`;
}

/** The IPv4 forwarding switch of the host side of the underlay veth pair. */
export function hostVethForwarding(hostVeth: string): string {
  return `net.ipv4.conf.${hostVeth}.forwarding`;
}

/** A random locally administered unicast MAC. */
export function randomMac(bytes: Uint8Array = crypto.getRandomValues(new Uint8Array(6))): string {
  const b = Uint8Array.from(bytes.subarray(0, 6));
  b[0] = (b[0] & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** `prefix` ("0a:1b") followed by the IPv4 address, or the last four bytes of the IPv6 address. */
export function macFromPrefix(prefix: string, ip: string): string {
  const { family, value } = parseIP(ip);
  const low = family === 4 ? value : value & 0xffffffffn;
  const tail = [24n, 16n, 8n, 0n].map((s) => Number((low >> s) & 0xffn).toString(16).padStart(2, "0"));
  return `${prefix.toLowerCase()}:${tail.join(":")}`;
}

const hostLen = (ip: string) => `${ip}/${ip.includes(":") ? 128 : 32}`;
const defaultDst = (f: Family) => (f === 4 ? "0.0.0.0/0" : "::/0");
const isDefault = (r: RouteInfo) => r.dst === defaultDst(r.family);
const familyOf = (ip: string): Family => (ip.includes(":") ? 6 : 4);

function byName(links: LinkInfo[], name: string): LinkInfo | undefined {
  return links.find((l) => l.name === name);
}

function nameOf(links: LinkInfo[], index: number | undefined): string | undefined {
  return links.find((l) => l.index === index)?.name;
}

/** Global addresses of link `index` (what the pod or node uses; not link-local, not tentative-failed). */
function globalAddrs(addrs: AddrInfo[], index: number, families?: Family[]): AddrInfo[] {
  return addrs.filter((a) =>
    a.index === index && a.scope === RT_SCOPE.universe && (!families || families.includes(a.family))
  ).sort((a, b) => a.family - b.family);
}

function inAny(ip: string, cidrs: readonly string[]): boolean {
  const { family, value } = parseIP(ip);
  return cidrs.some((c) => {
    const cidr = parseCIDR(c);
    return cidr.family === family && cidrContains(cidr, value);
  });
}

const LINK_LOCAL = ["169.254.0.0/16", "fe80::/10"];

/**
 * Node addresses for the pod: first the host's source address toward each pod address (the address the host
 * answers from), then every other address of the host's own interfaces (not container or overlay devices).
 */
export function nodeAddresses(
  host: HostState,
  podAddrs: readonly string[],
  families: readonly Family[],
): string[] {
  const out: string[] = [];
  const add = (ip: string | undefined) => {
    if (ip && families.includes(familyOf(ip)) && !out.includes(ip)) out.push(ip);
  };
  for (const ip of podAddrs) add(host.sourceToward[ip]);
  for (const link of host.links) {
    if (NODE_INTERFACES_EXCLUDED.some((re) => re.test(link.name))) continue;
    for (const a of globalAddrs(host.addrs, link.index)) add(a.address);
  }
  return out;
}

/**
 * The next hop on the host for hijacked CIDRs, per family: the first node address that is neither link-local
 * nor inside a hijacked CIDR. Such an address (a node-local DNS cache on 169.254.20.10, say) would be routed
 * through itself; upstream issue #3359 picked one and broke service traffic.
 */
export function chooseGateways(
  nodeIPs: readonly string[],
  hijacked: readonly string[],
): Partial<Record<Family, string>> {
  const gw: Partial<Record<Family, string>> = {};
  for (const ip of nodeIPs) {
    const f = familyOf(ip);
    if (gw[f] || inAny(ip, LINK_LOCAL) || inAny(ip, hijacked)) continue;
    gw[f] = ip;
  }
  return gw;
}

/** The first link (in link order, not lo, not `except`) with a default route of `families` in main. */
export function defaultRouteNic(
  pod: PodState,
  families: readonly Family[],
  except: string,
): LinkInfo | undefined {
  const defaults = pod.routes.filter((r) =>
    r.table === RT_TABLE.main && isDefault(r) && families.includes(r.family)
  );
  return pod.links.find((l) =>
    !(l.flags & IFF_LOOPBACK) && l.name !== except &&
    defaults.some((r) => r.ifindex === l.index || r.multipath?.some((h) => h.ifindex === l.index))
  );
}

/** Resolves the mode, whether this is the pod's first coordinator-managed NIC, and its table. */
export function resolveMode(
  s: CoordinatorSettings,
  ifName: string,
  pod: PodState,
): { mode: "underlay" | "overlay"; firstInvoke: boolean; table: number } {
  const vethExists = byName(pod.links, POD_VETH) !== undefined;
  // Links that are up (not loopback), counting this NIC, which the plan sets up first.
  const up =
    pod.links.filter((l) => !(l.flags & IFF_LOOPBACK) && ((l.flags & IFF_UP) || l.name === ifName)).length;
  const first = s.podDefaultCniNic;
  let mode: "underlay" | "overlay";
  if (s.mode === "auto") mode = ifName === first || vethExists ? "underlay" : "overlay";
  else if (s.mode === "underlay" || s.mode === "overlay") mode = s.mode;
  else throw new PlanError(`mode ${s.mode} has no plan`);
  let firstInvoke: boolean;
  let table: number;
  if (mode === "underlay") {
    firstInvoke = ifName === first;
    if (!firstInvoke && !vethExists) {
      throw new PlanError(
        `underlay mode for ${ifName}: ${POD_VETH} is missing, so the coordinator did not run for the pod's first ` +
          `NIC ${first}; add the coordinator to the network of ${first}, or use mode overlay for ${ifName}`,
      );
    }
    table = firstInvoke ? FIRST_NIC_TABLE : up + 98;
  } else {
    if (ifName === first) {
      throw new PlanError(
        `overlay mode for ${ifName}: ${ifName} is the pod's first NIC (podDefaultCniNic), which the overlay CNI ` +
          `owns; the coordinator in overlay mode belongs to the additional NICs (net1, ...)`,
      );
    }
    if (vethExists) {
      throw new PlanError(
        `overlay mode for ${ifName}: ${POD_VETH} exists, so the pod's first NIC was set up in underlay mode; ` +
          `use mode underlay (or auto) for ${ifName}`,
      );
    }
    firstInvoke = up === 2;
    table = firstInvoke ? FIRST_NIC_TABLE : up + 99;
  }
  return { mode, firstInvoke, table: freeTable(table, ifName, pod) };
}

/**
 * The first table from `want` that is not the mark table and not used by another NIC's source rules: counting
 * links (as upstream does) gives a clash when a NIC is down or was added without the coordinator (#3873).
 */
function freeTable(want: number, ifName: string, pod: PodState): number {
  const link = byName(pod.links, ifName);
  const mine = new Set(link ? globalAddrs(pod.addrs, link.index).map((a) => hostLen(a.address)) : []);
  const taken = new Set(
    pod.rules.filter((r) => r.src && !mine.has(r.src) && r.table !== RT_TABLE.main).map((r) => r.table),
  );
  let t = want;
  while (t === MARK_TABLE || taken.has(t)) t++;
  return t;
}

/** The ordered operations of a coordinator ADD. Throws PlanError when the pod cannot be set up as configured. */
export function planAdd(input: AddInput): AddPlan {
  const { settings: s, ifName, pod, host } = input;
  const nic = byName(pod.links, ifName);
  if (!nic) throw new PlanError(`interface ${ifName} does not exist in the pod's network namespace`);
  const nicAddrs = globalAddrs(pod.addrs, nic.index);
  if (nicAddrs.length === 0) {
    throw new PlanError(
      `interface ${ifName} has no IP address; the coordinator runs after the main plugin and its IPAM ` +
        `(put it after them in the network's plugin list)`,
    );
  }
  const families = [...new Set(nicAddrs.map((a) => a.family))].sort() as Family[];
  const podIPs = nicAddrs.map((a) => a.address);
  const { mode, firstInvoke, table } = resolveMode(s, ifName, pod);
  const ops: Op[] = [];
  const notes: string[] = [];
  const push = (step: string, op: Op) => ops.push({ ...op, step });

  // Step: the NIC is up before anything is routed through it.
  if (!(nic.flags & IFF_UP)) {
    push("link-up", { ns: "pod", kind: "link.set", name: ifName, change: { up: true }, prev: { up: false } });
  }

  // Step: the veth pair (underlay) or the overlay CNI's veth (overlay) joins pod and host.
  let hostVeth: string;
  let podVeth: string;
  let hostVethMac: string;
  let podVethMac: string;
  if (mode === "underlay") {
    podVeth = POD_VETH;
    hostVeth = hostVethName(input.containerId);
    const existing = byName(pod.links, POD_VETH);
    const hostLink = byName(host.links, hostVeth);
    if (firstInvoke && !existing) {
      if (hostLink) {
        // Left behind by an earlier attempt of this same container (the name carries its id).
        push("veth", { ns: "host", kind: "link.del", name: hostVeth });
      }
      hostVethMac = input.macs.host;
      podVethMac = input.macs.pod;
      push("veth", {
        ns: "host",
        kind: "link.veth",
        veth: { name: hostVeth, mac: hostVethMac, mtu: s.vethMTU, peer: { name: POD_VETH, mac: podVethMac } },
        peerNs: "pod",
      });
      push("veth", { ns: "pod", kind: "link.set", name: POD_VETH, change: { up: true } });
      push("veth", { ns: "host", kind: "link.set", name: hostVeth, change: { up: true } });
    } else {
      if (!hostLink || !existing || existing.link !== hostLink.index) {
        throw new PlanError(
          `${POD_VETH} in the pod is not paired with ${hostVeth} on the host (it belongs to another container ` +
            `or was left behind); delete the sandbox and let the runtime create it again`,
        );
      }
      hostVethMac = hostLink.mac;
      podVethMac = existing.mac;
      if (firstInvoke) {
        if (!(existing.flags & IFF_UP)) {
          push("veth", { ns: "pod", kind: "link.set", name: POD_VETH, change: { up: true } });
        }
        if (!(hostLink.flags & IFF_UP)) {
          push("veth", { ns: "host", kind: "link.set", name: hostVeth, change: { up: true } });
        }
      }
    }
    if (firstInvoke && families.includes(4)) {
      // The host routes what enters its veth: a pod's connection to a ClusterIP, DNATed by kube-proxy to another
      // pod, and that pod's reply, both arrive on a veth and leave by another. IPv4 forwards only what enters a
      // link whose own forwarding is on, and a new link copies it from conf.default, which is off on a node whose
      // global switch is off (tuneSysctlConfig false, or an agent not yet started). Set on the link the
      // coordinator owns, as Calico does for its workload links; it goes with the link. (IPv6 forwarding has
      // only the global switch: the agent's tuneSysctlConfig sets it.)
      push("veth", { ns: "host", kind: "sysctl.set", key: hostVethForwarding(hostVeth), value: "1" });
    }
    if (firstInvoke && s.vethLinkAddress && families.includes(4)) {
      // A pod address on veth0 lets sidecar proxies (Istio) accept what enters there (#3568); not for IPv6-only.
      push("veth-address", { ns: "pod", kind: "addr.add", dev: POD_VETH, cidr: `${s.vethLinkAddress}/32` });
    }
  } else {
    podVeth = s.podDefaultCniNic;
    const eth0 = byName(pod.links, podVeth);
    const peer = eth0?.link !== undefined ? host.links.find((l) => l.index === eth0.link) : undefined;
    if (!eth0 || eth0.kind !== "veth" || !peer) {
      throw new PlanError(
        `overlay mode needs the pod's ${podVeth} to be a veth whose peer is in the host namespace; ` +
          `${
            eth0 ? `${podVeth} is ${eth0.kind ?? "a device"} without such a peer` : `there is no ${podVeth}`
          }`,
      );
    }
    hostVeth = peer.name;
    hostVethMac = peer.mac;
    podVethMac = eth0.mac;
  }

  // Step: a MAC made from a prefix and the NIC's first address, announced so neighbours update their caches.
  if (s.podMACPrefix) {
    const mac = macFromPrefix(s.podMACPrefix, podIPs[0]);
    if (mac !== nic.mac) {
      push("mac-prefix", {
        ns: "pod",
        kind: "link.set",
        name: ifName,
        change: { mac },
        prev: { mac: nic.mac },
      });
      push("mac-prefix", { ns: "pod", kind: "announce", dev: ifName, ips: podIPs });
      if (mode === "overlay" && ifName === podVeth) podVethMac = mac;
    }
  }

  // Step: queue length and sysctls.
  if (s.txQueueLen > 0 && nic.txqlen !== s.txQueueLen) {
    push("txqueuelen", {
      ns: "pod",
      kind: "link.set",
      name: ifName,
      change: { txqlen: s.txQueueLen },
      prev: { txqlen: nic.txqlen },
    });
  }
  if (families.includes(6) && pod.sysctls[SYSCTL.disableIPv6] !== "0") {
    push("sysctl", {
      ns: "pod",
      kind: "sysctl.set",
      key: SYSCTL.disableIPv6,
      value: "0",
      prev: pod.sysctls[SYSCTL.disableIPv6],
    });
  }
  if (s.podRPFilter >= 0 && pod.sysctls[SYSCTL.rpFilter] !== String(s.podRPFilter)) {
    push("sysctl", {
      ns: "pod",
      kind: "sysctl.set",
      key: SYSCTL.rpFilter,
      value: String(s.podRPFilter),
      prev: pod.sysctls[SYSCTL.rpFilter],
    });
  }

  // The node addresses, and the host next hop per family.
  const allPodIPs = pod.addrs.filter((a) => a.scope === RT_SCOPE.universe && families.includes(a.family))
    .filter((a) => !(nameOf(pod.links, a.index) === "lo")).map((a) => a.address);
  const nodeIPs = nodeAddresses(
    host,
    [...podIPs, ...allPodIPs.filter((ip) => !podIPs.includes(ip))],
    families,
  );
  const hijacked = [...new Set([...s.overlayPodCIDR, ...s.serviceCIDR, ...s.hijackCIDR])];
  const gateway = chooseGateways(nodeIPs, hijacked);
  // Routes through the veth carry the pod's first-NIC IPv4 address as source (not for IPv6: some kernels
  // refuse a source that is not on the output device).
  const firstNic = byName(pod.links, s.podDefaultCniNic);
  const v4Src = firstNic ? globalAddrs(pod.addrs, firstNic.index, [4])[0]?.address : undefined;

  // Step: neighbours, so neither side has to resolve the other through the veth.
  const hostNeighs = host.neighs.filter((n) => podIPs.includes(n.dst));
  for (const n of hostNeighs) {
    const dev = nameOf(host.links, n.ifindex);
    const current = dev === hostVeth && n.lladdr === podVethMac && (n.state & NUD_PERMANENT);
    if (!dev || current) continue;
    push("neighbours", {
      ns: "host",
      kind: "neigh.del",
      neigh: { family: n.family, dev, dst: n.dst, lladdr: n.lladdr, state: n.state },
    });
  }
  for (const ip of podIPs) {
    push("neighbours", {
      ns: "host",
      kind: "neigh.add",
      neigh: { family: familyOf(ip), dev: hostVeth, dst: ip, lladdr: podVethMac, state: NUD_PERMANENT },
    });
  }
  if (firstInvoke) {
    for (const ip of nodeIPs) {
      push("neighbours", {
        ns: "pod",
        kind: "neigh.add",
        neigh: { family: familyOf(ip), dev: podVeth, dst: ip, lladdr: hostVethMac, state: NUD_PERMANENT },
      });
    }
  }

  // Step: the node's addresses through the veth, in main for the first NIC and in this NIC's table for later
  // underlay NICs (their replies to the node then also use the veth, which the host routes back). Not in an
  // overlay NIC's table: the overlay CNI would see packets from an address it did not assign (#5682).
  const hostRouteTables = [
    ...(firstInvoke ? [RT_TABLE.main] : []),
    ...(mode === "underlay" && !firstInvoke ? [table] : []),
  ];
  for (const t of hostRouteTables) {
    for (const ip of nodeIPs) {
      push("host-routes", {
        ns: "pod",
        kind: "route.add",
        route: {
          family: familyOf(ip),
          dst: hostLen(ip),
          dev: podVeth,
          scope: RT_SCOPE.link,
          table: t,
          ...(familyOf(ip) === 4 && v4Src ? { src: v4Src } : {}),
        },
      });
    }
  }

  // Step: the host sends what is addressed to the pod into the veth, through its own rule table.
  for (const f of families) {
    const present = host.rules.some((r) =>
      r.family === f && r.table === s.hostRuleTable && r.priority === HOST_RULE_PRIORITY && !r.src &&
      !r.dst &&
      r.fwmark === undefined
    );
    if (!present) {
      push("host-rule", {
        ns: "host",
        kind: "rule.add",
        rule: { family: f, priority: HOST_RULE_PRIORITY, table: s.hostRuleTable },
        ifTableEmpty: true,
      });
    }
  }
  for (const ip of podIPs) {
    const dst = hostLen(ip);
    for (const r of host.routes.filter((x) => x.table === s.hostRuleTable && x.dst === dst)) {
      const dev = nameOf(host.links, r.ifindex);
      if (dev === hostVeth && !r.gw) continue; // already right (a repeated ADD)
      push("host-rule", {
        ns: "host",
        kind: "route.del",
        route: {
          family: r.family,
          dst,
          table: r.table,
          ...(dev ? { dev } : {}),
          ...(r.gw ? { gw: r.gw } : {}),
        },
      });
    }
    push("host-rule", {
      ns: "host",
      kind: "route.add",
      route: { family: familyOf(ip), dst, dev: hostVeth, scope: RT_SCOPE.link, table: s.hostRuleTable },
    });
  }

  // Step: pod, service and extra CIDRs go to the node through the veth (kube-proxy lives there). In main for the
  // first NIC; in an underlay NIC's table for later ones; never in an overlay NIC's table (#5682).
  const hijackTable = firstInvoke ? RT_TABLE.main : mode === "underlay" ? table : undefined;
  if (hijackTable !== undefined) {
    for (const cidr of hijacked) {
      const f = familyOf(cidr);
      if (!families.includes(f)) continue;
      if (!gateway[f]) {
        notes.push(`hijack route ${cidr} skipped: no IPv${f} node address to route it through`);
        continue;
      }
      push("hijack-routes", {
        ns: "pod",
        kind: "route.add",
        route: {
          family: f,
          dst: cidr,
          gw: gateway[f],
          dev: podVeth,
          table: hijackTable,
          scope: RT_SCOPE.universe,
          ...(f === 4 && v4Src ? { src: v4Src } : {}),
        },
      });
    }
  }

  // Step: replies to connections the node opened through veth0 go back through veth0, whatever their source.
  if (mode === "underlay" && firstInvoke) {
    if (families.includes(4)) {
      // Reverse-path filtering (podRPFilter 1 or 2) checks the source of what enters veth0 without the mark,
      // and veth0 has no address: a connection from a node address the pod has no route for would be dropped.
      // With the mark counted, the check finds the mark table's route back through veth0.
      push("reply-via-veth", { ns: "pod", kind: "sysctl.set", key: VETH_SRC_VALID_MARK, value: "1" });
    }
    for (const f of families) {
      for (const rule of markRules(f)) push("reply-via-veth", { ns: "pod", kind: "iptables.add", rule });
      push("reply-via-veth", {
        ns: "pod",
        kind: "rule.add",
        rule: {
          family: f,
          priority: MARK_RULE_PRIORITY,
          table: MARK_TABLE,
          fwmark: MARK,
          fwmask: 0xffffffff,
        },
      });
      if (!gateway[f]) {
        notes.push(`no IPv${f} node address: replies marked for veth0 have no IPv${f} route`);
        continue;
      }
      push("reply-via-veth", {
        ns: "pod",
        kind: "route.add",
        route: {
          family: f,
          dst: defaultDst(f),
          gw: gateway[f],
          dev: POD_VETH,
          table: MARK_TABLE,
          scope: RT_SCOPE.universe,
          ...(f === 4 && v4Src ? { src: v4Src } : {}),
        },
      });
    }
  }

  // Step: each NIC's routes in its own table, chosen by source address, so replies leave by the NIC the
  // request came in on; the default route stays on one NIC (podDefaultRouteNic, else the one that has it).
  if (s.tunePodRoutes && (!firstInvoke || mode === "overlay")) {
    ops.push(
      ...tuneRoutes(input, families, table, hijacked, notes).map((op) => ({ ...op, step: "tune-routes" })),
    );
  }

  // Step: the configured policy routes, through this NIC.
  for (const r of s.policyRoutes) {
    if (!families.includes(r.family)) continue;
    push("policy-routes", {
      ns: "pod",
      kind: "route.add",
      route: {
        family: r.family,
        dst: r.dst,
        gw: r.gw,
        dev: ifName,
        table: mode === "underlay" && firstInvoke ? RT_TABLE.main : table,
        scope: RT_SCOPE.universe,
      },
    });
  }

  return { mode, firstInvoke, table, hostVeth, podVeth, families, podIPs, nodeIPs, gateway, ops, notes };
}

function tuneRoutes(
  input: AddInput,
  families: Family[],
  table: number,
  hijacked: readonly string[],
  notes: string[],
): Op[] {
  const { settings: s, ifName, pod } = input;
  const holder = defaultRouteNic(pod, families, ifName);
  if (!holder) {
    notes.push(`tunePodRoutes skipped: no other NIC has a default route, so ${ifName}'s routes stay in main`);
    return [];
  }
  const wanted = s.podDefaultRouteNic;
  // Which NIC moves its routes into `table`, and whose addresses select that table.
  let moving: LinkInfo;
  if (wanted === ifName) {
    moving = holder; // this NIC takes the default route; the previous holder's routes move out of main
  } else {
    moving = byName(pod.links, ifName)!;
    if (wanted !== "" && wanted !== holder.name) {
      notes.push(
        `podDefaultRouteNic ${wanted} is not ${ifName} and does not hold the default route yet; ` +
          `${holder.name} keeps it until ${wanted} is set up`,
      );
    }
  }
  const ops: Op[] = [];
  for (const a of globalAddrs(pod.addrs, moving.index, families)) {
    ops.push({
      ns: "pod",
      kind: "rule.add",
      rule: { family: a.family, priority: SOURCE_RULE_PRIORITY, table, src: hostLen(a.address) },
    });
  }
  const main = pod.routes.filter((r) => r.table === RT_TABLE.main && families.includes(r.family));
  const copies: Op[] = [];
  const removals: Op[] = [];
  const spec = (r: RouteInfo, t: number, gw = r.gw): RouteSpec => ({
    family: r.family,
    dst: r.dst,
    table: t,
    dev: moving.name,
    scope: r.scope,
    protocol: r.protocol,
    ...(gw ? { gw } : {}),
    ...(r.src ? { src: r.src } : {}),
    ...(r.metric !== undefined ? { metric: r.metric } : {}),
  });
  for (const r of main) {
    if (r.ifindex === moving.index) {
      if (r.family === 6 && r.dst === "fe80::/64") continue; // link-local: every link has it
      if (!isDefault(r) && hijacked.includes(r.dst)) continue; // stays with the veth or overlay NIC
      copies.push({ ns: "pod", kind: "route.add", route: spec(r, table) });
      // A directly connected subnet stays in main too: the pod reaches that subnet through this NIC whatever
      // the source. Gateway routes leave main, so main keeps one unambiguous default (#5682).
      if (isDefault(r) || r.gw) {
        removals.push({ ns: "pod", kind: "route.del", route: spec(r, RT_TABLE.main) });
      }
    } else if (r.multipath?.some((h) => h.ifindex === moving.index)) {
      // IPv6 default routes of several links are merged into one multipath route: move only our nexthop.
      for (const h of r.multipath.filter((x) => x.ifindex === moving.index)) {
        copies.push({ ns: "pod", kind: "route.add", route: spec(r, table, h.gw) });
        removals.push({ ns: "pod", kind: "route.del", route: spec(r, RT_TABLE.main, h.gw) });
      }
    }
  }
  // Direct routes first, so that gateways are resolvable in the new table when the gateway routes arrive.
  const order = (op: Op) => (op.kind === "route.add" && op.route.gw ? (isDefaultSpec(op.route) ? 2 : 1) : 0);
  copies.sort((a, b) => order(a) - order(b));
  ops.push(...copies, ...removals);
  return ops;
}

function isDefaultSpec(r: RouteSpec): boolean {
  return r.dst === defaultDst(r.family);
}
