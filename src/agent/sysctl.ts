// Host tuning by the agent (spec §1.3 step 2, ConfigMap `tuneSysctlConfig`): the sysctls an underlay node needs,
// written at start-up in the network namespace the agent runs in (the node's, with hostNetwork). The settings
// are upstream's DefaultSysctlConfig, per enabled family; a key this kernel (or a non-initial namespace) does
// not have is skipped, and any other failure is logged once and does not stop the agent, whose IPAM does not
// depend on them. `net.netfilter.nf_conntrack_tcp_be_liberal` is not among them: upstream leaves it to the
// administrator (it is needed for underlay pods to reach ClusterIPs behind kube-proxy before Kubernetes 1.29).

import type { NetNs } from "../net/backend.ts";
import { NetError } from "../net/types.ts";

export interface HostSysctl {
  key: string;
  value: string;
  /** Why the node needs it. */
  why: string;
}

const V4: HostSysctl[] = [
  {
    key: "net.ipv4.neigh.default.gc_thresh3",
    value: "28160",
    why: "room in the ARP table for a node full of underlay pods (110 pods × a /16 subnet's worth)",
  },
  {
    key: "net.ipv4.conf.all.arp_notify",
    value: "1",
    why: "gratuitous ARP when a link comes up or its MAC changes",
  },
  { key: "net.ipv4.conf.all.forwarding", value: "1", why: "IPv4 forwarding" },
];
const V6: HostSysctl[] = [
  {
    key: "net.ipv6.neigh.default.gc_thresh3",
    value: "28160",
    why: "room in the neighbour table for a node full of underlay pods",
  },
  { key: "net.ipv6.conf.all.forwarding", value: "1", why: "IPv6 forwarding" },
];
/** Upstream marks it for both families: it is set when either is enabled. */
const ANY: HostSysctl[] = [
  {
    key: "net.ipv4.conf.all.rp_filter",
    value: "0",
    why: "no reverse-path check: replies of multi-NIC pods may arrive on another interface",
  },
];

/**
 * The sysctls to set for the enabled families, in upstream's order.
 *
 * ```ts
 * hostSysctls({ enableIPv4: true, enableIPv6: false }).map((s) => s.key);
 * // ["net.ipv4.neigh.default.gc_thresh3", "net.ipv4.conf.all.arp_notify", "net.ipv4.conf.all.forwarding",
 * //  "net.ipv4.conf.all.rp_filter"]
 * ```
 */
export function hostSysctls(families: { enableIPv4: boolean; enableIPv6: boolean }): HostSysctl[] {
  return [
    ...(families.enableIPv4 ? V4 : []),
    ...(families.enableIPv6 ? V6 : []),
    ...(families.enableIPv4 || families.enableIPv6 ? ANY : []),
  ];
}

export interface TuneReport {
  set: HostSysctl[];
  /** Keys this kernel or namespace does not have. */
  absent: HostSysctl[];
  failed: { setting: HostSysctl; error: string }[];
}

/**
 * Writes `settings` through `ns`. Each key is written once; a missing key and a failure are each logged once,
 * and the agent goes on.
 */
export async function applyHostSysctls(
  ns: Pick<NetNs, "writeSysctl">,
  settings: readonly HostSysctl[],
  log: (message: string) => void,
): Promise<TuneReport> {
  const report: TuneReport = { set: [], absent: [], failed: [] };
  for (const s of settings) {
    try {
      await ns.writeSysctl(s.key, s.value);
      report.set.push(s);
    } catch (e) {
      if (e instanceof NetError && e.errno === 2) {
        report.absent.push(s);
        log(`sysctl ${s.key} does not exist here; skipped`);
        continue;
      }
      const error = e instanceof Error ? e.message : String(e);
      report.failed.push({ setting: s, error });
      log(
        `could not set ${s.key}=${s.value} (${s.why}): ${error}; the agent goes on without it (run the agent ` +
          "privileged, or set tuneSysctlConfig: false and tune the node yourself)",
      );
    }
  }
  if (report.set.length > 0) log(`tuned ${report.set.map((s) => `${s.key}=${s.value}`).join(", ")}`);
  return report;
}

/**
 * Step 2 of the agent's start-up: applies `hostSysctls(config)` in the namespace at `nsPath` (this process's own
 * when undefined), through the network layer.
 */
export async function tuneHost(
  config: { enableIPv4: boolean; enableIPv6: boolean },
  log: (message: string) => void,
  nsPath?: string,
): Promise<TuneReport> {
  const { openNs } = await import("../net/mod.ts");
  const ns = openNs(nsPath);
  try {
    return await applyHostSysctls(ns, hostSysctls(config), log);
  } finally {
    ns.close();
  }
}
