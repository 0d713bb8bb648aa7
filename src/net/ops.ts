// The vocabulary of a plan: one operation on one namespace ("host" is the process's own, "pod" the sandbox's),
// written as plain data so a planner can return a list a test reads, a state file can keep it, and the
// executor can apply it and compute how to take it back. `inverse` is that rule, in one place.

import type { IptablesRule } from "./iptables.ts";
import { describeIptables } from "./iptables.ts";
import { describeChange, describeRoute, describeRule } from "./describe.ts";
import type { BondSpec, LinkChange, NeighSpec, RouteSpec, RuleSpec, VethSpec, VlanSpec } from "./types.ts";

export type NsRef = "host" | "pod";

interface Base {
  ns: NsRef;
  /** The step of the plan this operation belongs to (named in logs and errors). */
  step?: string;
}

export type Op =
  | Base & { kind: "link.veth"; veth: VethSpec; peerNs: NsRef }
  | Base & { kind: "link.set"; name: string; change: LinkChange; prev?: LinkChange }
  | Base & { kind: "link.del"; name: string }
  | Base & { kind: "link.vlan"; vlan: VlanSpec }
  | Base & { kind: "link.bond"; bond: BondSpec }
  | Base & { kind: "bond.activeSlave"; bond: string; slave: string }
  | Base & { kind: "addr.add" | "addr.del"; dev: string; cidr: string; scope?: number }
  /** `replace`: take the place of a route with the same key (restoring a route another one displaced). */
  | Base & { kind: "route.add" | "route.del"; route: RouteSpec; replace?: boolean }
  /** `ifTableEmpty`: a shared rule, deleted only while its table holds no route of the rule's family. */
  | Base & { kind: "rule.add" | "rule.del"; rule: RuleSpec; ifTableEmpty?: boolean }
  /** `prev`: the entry this one replaces, restored when the operation is taken back. */
  | Base & { kind: "neigh.add" | "neigh.del"; neigh: NeighSpec; prev?: NeighSpec }
  | Base & { kind: "sysctl.set"; key: string; value: string; prev?: string }
  | Base & { kind: "iptables.add" | "iptables.del"; rule: IptablesRule }
  | Base & { kind: "announce"; dev: string; ips: string[] };

export type OpKind = Op["kind"];

/** One line describing the operation, as `ip` would write it. */
export function describeOp(op: Op): string {
  const where = op.ns === "pod" ? "in the pod" : "on the host";
  switch (op.kind) {
    case "link.veth":
      return `create veth ${op.veth.name} (${where}) with peer ${op.veth.peer.name} (in the ${
        op.peerNs === "pod" ? "pod" : "host"
      })`;
    case "link.set":
      return `set ${op.name} ${describeChange(op.change)} ${where}`;
    case "link.del":
      return `delete link ${op.name} ${where}`;
    case "link.vlan":
      return `create VLAN ${op.vlan.name} id ${op.vlan.vlanId} on ${op.vlan.parent} ${where}`;
    case "link.bond":
      return `create bond ${op.bond.name} mode ${op.bond.mode} ${where}`;
    case "bond.activeSlave":
      return `make ${op.slave} the active slave of ${op.bond} ${where}`;
    case "addr.add":
    case "addr.del":
      return `${op.kind === "addr.add" ? "add" : "delete"} address ${op.cidr} ${
        op.kind === "addr.add" ? "to" : "from"
      } ${op.dev} ${where}`;
    case "route.add":
    case "route.del":
      return `${op.kind === "route.add" ? "add" : "delete"} route ${describeRoute(op.route)} ${where}`;
    case "rule.add":
    case "rule.del":
      return `${op.kind === "rule.add" ? "add" : "delete"} rule ${describeRule(op.rule)} ${where}`;
    case "neigh.add":
    case "neigh.del":
      return `${op.kind === "neigh.add" ? "add" : "delete"} neighbour ${op.neigh.dst}${
        op.neigh.lladdr ? ` lladdr ${op.neigh.lladdr}` : ""
      } dev ${op.neigh.dev} ${where}`;
    case "sysctl.set":
      return `set ${op.key}=${op.value} ${where}`;
    case "iptables.add":
    case "iptables.del":
      return `${op.kind === "iptables.add" ? "add" : "delete"} ${describeIptables(op.rule)} ${where}`;
    case "announce":
      return `announce ${op.ips.join(", ")} on ${op.dev} ${where}`;
  }
}

/** The operation that takes `op` back, or undefined when there is none (deletions of objects, announcements). */
export function inverse(op: Op): Op | undefined {
  const base = { ns: op.ns, step: op.step };
  switch (op.kind) {
    case "link.veth":
      return { ...base, kind: "link.del", name: op.veth.name };
    case "link.vlan":
      return { ...base, kind: "link.del", name: op.vlan.name };
    case "link.bond":
      return { ...base, kind: "link.del", name: op.bond.name };
    case "link.set":
      return op.prev
        ? { ...base, kind: "link.set", name: op.name, change: op.prev, prev: op.change }
        : undefined;
    case "addr.add":
      return { ...base, kind: "addr.del", dev: op.dev, cidr: op.cidr };
    case "addr.del":
      return { ...base, kind: "addr.add", dev: op.dev, cidr: op.cidr, scope: op.scope };
    case "route.add":
      return { ...base, kind: "route.del", route: op.route };
    case "route.del":
      // Whatever took the deleted route's place since (another NIC's default route) gives it back.
      return { ...base, kind: "route.add", route: op.route, replace: true };
    case "rule.add":
      return { ...base, kind: "rule.del", rule: op.rule, ifTableEmpty: op.ifTableEmpty };
    case "rule.del":
      return { ...base, kind: "rule.add", rule: op.rule };
    case "neigh.add":
      return op.prev
        ? { ...base, kind: "neigh.add", neigh: op.prev, prev: op.neigh }
        : { ...base, kind: "neigh.del", neigh: op.neigh };
    case "neigh.del":
      return op.neigh.lladdr ? { ...base, kind: "neigh.add", neigh: op.neigh } : undefined;
    case "sysctl.set":
      return op.prev !== undefined
        ? { ...base, kind: "sysctl.set", key: op.key, value: op.prev, prev: op.value }
        : undefined;
    case "iptables.add":
      return { ...base, kind: "iptables.del", rule: op.rule };
    case "iptables.del":
      return { ...base, kind: "iptables.add", rule: op.rule };
    case "link.del":
    case "bond.activeSlave":
    case "announce":
      return undefined;
  }
}
