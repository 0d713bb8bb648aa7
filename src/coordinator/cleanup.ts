// The coordinator's DEL and CHECK as pure functions. DEL normally takes back the undo list the ADD recorded;
// planCleanup is for when there is no record (a node that rebooted into old sandboxes, an ADD from another
// version): it finds the coordinator's objects by their names and by the pod's addresses. missingObjects tells
// CHECK which recorded objects are gone.

import type { Family } from "../ip/mod.ts";
import type { IptablesRule } from "../net/iptables.ts";
import type { Op } from "../net/ops.ts";
import { NUD_PERMANENT, RT_TABLE } from "../net/types.ts";
import type { AddrInfo, LinkInfo, NeighInfo, RouteInfo, RuleInfo } from "../net/types.ts";
import type { CoordinatorSettings } from "./config.ts";
import {
  HOST_RULE_PRIORITY,
  type HostState,
  hostVethName,
  MARK,
  MARK_TABLE,
  markRules,
  POD_VETH,
  type PodState,
} from "./plan.ts";

export interface CleanupInput {
  settings: CoordinatorSettings;
  containerId: string;
  ifName: string;
  /** The NIC's addresses (from prevResult and, when the pod's namespace still exists, from the NIC itself). */
  podIPs: string[];
  host: HostState;
  /** Undefined when the pod's namespace is gone (its side went with it). */
  pod?: PodState;
}

const hostLen = (ip: string) => `${ip}/${ip.includes(":") ? 128 : 32}`;
const familyOf = (ip: string): Family => (ip.includes(":") ? 6 : 4);

function nameOf(links: LinkInfo[], index: number | undefined): string | undefined {
  return links.find((l) => l.index === index)?.name;
}

/** Operations removing what a coordinator ADD for this container and NIC may have made. */
export function planCleanup(input: CleanupInput): Op[] {
  const { settings: s, host, pod, ifName } = input;
  const ops: Op[] = [];
  const dsts = new Set(input.podIPs.map(hostLen));
  const families = [...new Set(input.podIPs.map(familyOf))];
  const hostVeth = hostVethName(input.containerId);
  // The overlay CNI's host veth (peer of the pod's first NIC) carries our neighbours in overlay mode.
  const firstNic = pod?.links.find((l) => l.name === s.podDefaultCniNic);
  const overlayPeer =
    firstNic?.link !== undefined && firstNic.kind === "veth" && !pod?.links.some((l) => l.name === POD_VETH)
      ? nameOf(host.links, firstNic.link)
      : undefined;

  if (host.links.some((l) => l.name === hostVeth)) ops.push({ ns: "host", kind: "link.del", name: hostVeth });
  for (const r of host.routes) {
    if (r.table !== s.hostRuleTable || !dsts.has(r.dst)) continue;
    const dev = nameOf(host.links, r.ifindex);
    if (dev === hostVeth) continue; // goes with the veth
    ops.push({
      ns: "host",
      kind: "route.del",
      route: { family: r.family, dst: r.dst, table: r.table, ...(dev ? { dev } : {}) },
    });
  }
  for (const n of host.neighs) {
    const dev = nameOf(host.links, n.ifindex);
    if (!dev || dev === hostVeth || !input.podIPs.includes(n.dst) || !(n.state & NUD_PERMANENT)) continue;
    if (dev !== overlayPeer) continue;
    ops.push({ ns: "host", kind: "neigh.del", neigh: { family: n.family, dev, dst: n.dst } });
  }
  for (const r of host.rules) {
    // Older coordinators added `to <pod IP> lookup <hostRuleTable>` for each pod address.
    if (r.table === s.hostRuleTable && r.dst && dsts.has(r.dst) && !r.src) {
      ops.push({
        ns: "host",
        kind: "rule.del",
        rule: { family: r.family, priority: r.priority, table: r.table, dst: r.dst },
      });
    }
  }
  for (const f of families) {
    const shared = host.rules.find((r) =>
      r.family === f && r.table === s.hostRuleTable && r.priority === HOST_RULE_PRIORITY && !r.src && !r.dst
    );
    if (shared) {
      ops.push({
        ns: "host",
        kind: "rule.del",
        rule: { family: f, priority: HOST_RULE_PRIORITY, table: s.hostRuleTable },
        ifTableEmpty: true,
      });
    }
  }
  if (!pod) return ops;

  for (const r of pod.rules) {
    if (
      r.src && dsts.has(r.src) && ![RT_TABLE.main, RT_TABLE.local, RT_TABLE.default].includes(r.table as 253)
    ) {
      ops.push({
        ns: "pod",
        kind: "rule.del",
        rule: { family: r.family, priority: r.priority, table: r.table, src: r.src },
      });
    }
  }
  if (ifName === s.podDefaultCniNic && pod.links.some((l) => l.name === POD_VETH)) {
    for (const f of families) {
      for (const rule of markRules(f)) ops.push({ ns: "pod", kind: "iptables.del", rule });
      const mark = pod.rules.find((r) => r.family === f && r.fwmark === MARK && r.table === MARK_TABLE);
      if (mark) {
        ops.push({
          ns: "pod",
          kind: "rule.del",
          rule: { family: f, priority: mark.priority, table: MARK_TABLE, fwmark: MARK, fwmask: mark.fwmask },
        });
      }
    }
  }
  return ops;
}

/** One namespace as CHECK sees it. */
export interface NsView {
  links: LinkInfo[];
  addrs: AddrInfo[];
  routes: RouteInfo[];
  rules: RuleInfo[];
  neighs: NeighInfo[];
  sysctls: Record<string, string | undefined>;
}

/** What a CHECK looks at: the current state of both namespaces. */
export interface Observed {
  host: NsView;
  pod: NsView;
  /** Whether a recorded iptables rule is present in the pod (asked of iptables beforehand). */
  iptables: (rule: IptablesRule) => boolean;
}

/**
 * The recorded objects that are no longer there, described. `undo` is the ADD's undo list: each entry takes an
 * object back, so it names the object the ADD made.
 */
export function missingObjects(undo: readonly Op[], observed: Observed): string[] {
  const missing: string[] = [];
  for (const op of undo) {
    const ns = op.ns === "host" ? observed.host : observed.pod;
    const where = op.ns === "host" ? "on the host" : "in the pod";
    switch (op.kind) {
      case "link.del":
        if (!ns.links.some((l) => l.name === op.name)) missing.push(`link ${op.name} ${where}`);
        break;
      case "link.set": {
        const link = ns.links.find((l) => l.name === op.name);
        const want = op.prev ?? {};
        if (!link) missing.push(`link ${op.name} ${where}`);
        else if (want.mac !== undefined && link.mac !== want.mac) {
          missing.push(`MAC ${want.mac} of ${op.name} ${where} (it is ${link.mac})`);
        } else if (want.txqlen !== undefined && link.txqlen !== want.txqlen) {
          missing.push(`txqueuelen ${want.txqlen} of ${op.name} ${where} (it is ${link.txqlen})`);
        }
        break;
      }
      case "addr.del": {
        const link = ns.links.find((l) => l.name === op.dev);
        const [ip, len] = op.cidr.split("/");
        if (
          !link ||
          !ns.addrs.some((a) => a.index === link.index && a.address === ip && a.prefixLen === Number(len))
        ) {
          missing.push(`address ${op.cidr} on ${op.dev} ${where}`);
        }
        break;
      }
      case "route.del": {
        const r = op.route;
        const link = r.dev ? ns.links.find((l) => l.name === r.dev) : undefined;
        const found = ns.routes.some((x) =>
          x.table === r.table && x.dst === r.dst && (!r.gw || x.gw === r.gw || x.multipath?.some((h) =>
            h.gw === r.gw
          )) &&
          (!r.dev || (link !== undefined && (x.ifindex === link.index || x.multipath?.some((h) =>
            h.ifindex === link.index
          ))))
        );
        if (!found) {
          missing.push(
            `route ${r.dst}${r.gw ? ` via ${r.gw}` : ""}${
              r.dev ? ` dev ${r.dev}` : ""
            } table ${r.table} ${where}`,
          );
        }
        break;
      }
      case "rule.del": {
        const r = op.rule;
        const found = ns.rules.some((x) =>
          x.family === r.family && x.table === r.table && x.priority === r.priority && x.src === r.src &&
          x.dst === r.dst && x.fwmark === r.fwmark
        );
        if (!found) {
          missing.push(
            `rule ${
              r.src ? `from ${r.src}` : r.fwmark !== undefined ? `fwmark ${r.fwmark}` : "from all"
            } lookup ${r.table} ${where}`,
          );
        }
        break;
      }
      case "neigh.del": {
        const link = ns.links.find((l) => l.name === op.neigh.dev);
        if (!link || !ns.neighs.some((n) => n.ifindex === link.index && n.dst === op.neigh.dst)) {
          missing.push(`neighbour ${op.neigh.dst} on ${op.neigh.dev} ${where}`);
        }
        break;
      }
      case "sysctl.set":
        if (op.prev !== undefined && ns.sysctls[op.key] !== op.prev) {
          missing.push(`${op.key}=${op.prev} ${where} (it is ${ns.sysctls[op.key]})`);
        }
        break;
      case "iptables.del":
        if (!observed.iptables(op.rule)) missing.push(`iptables rule ${op.rule.args.join(" ")} ${where}`);
        break;
      default:
        break;
    }
  }
  return missing;
}
