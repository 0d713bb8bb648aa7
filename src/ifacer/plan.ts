// The `ifacer` plugin's rules as pure functions: its configuration (interfaces, VLAN id, bond with mode and
// options) and the plan that makes the VLAN sub-interface or the bond the network needs on the host, doing
// nothing for what already exists, so a second ADD changes nothing.

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { NetConf } from "../cni/types.ts";
import { parseIP } from "../ip/mod.ts";
import type { Op } from "../net/ops.ts";
import { type BondOptions, IFF_UP, type LinkInfo } from "../net/types.ts";

export const DEFAULT_BOND_NAME = "sp_bond0";
const MAX_IFNAME = 15;

export interface IfacerConf {
  interfaces: string[];
  /** 0 = no VLAN. */
  vlanID: number;
  bond?: { name: string; mode: number; options: BondOptions };
}

/** Option keys of `bond.options` and where each goes (the same keys as upstream's BondOptions). */
const INT_OPTIONS: Record<string, keyof BondOptions> = {
  ad_actor_sys_prio: "adActorSysPrio",
  ad_select: "adSelect",
  ad_user_port_key: "adUserPortKey",
  all_slaves_active: "allSlavesActive",
  arp_interval: "arpInterval",
  arp_validate: "arpValidate",
  arp_all_targets: "arpAllTargets",
  downdelay: "downDelay",
  fail_over_mac: "failOverMac",
  lacp_rate: "lacpRate",
  miimon: "miimon",
  min_links: "minLinks",
  packets_per_slave: "packetsPerSlave",
  primary_reselect: "primaryReselect",
  tlb_dynamic_lb: "tlbDynamicLb",
  up_delay: "upDelay",
  use_carrier: "useCarrier",
  xmit_hash_policy: "xmitHashPolicy",
  lp_interval: "lpInterval",
  resend_igmp: "resendIgmp",
  peer_notif_delay: "peerNotifDelay",
};
export const BOND_OPTION_KEYS: readonly string[] = [
  "active_slave",
  "ad_actor_system",
  "arp_ip_target",
  "primary",
  ...Object.keys(INT_OPTIONS),
].sort();

function bad(key: string, expected: string, got: unknown): CniError {
  return new CniError(
    ErrorCode.invalidNetworkConfig,
    `invalid ifacer configuration "${key}": expected ${expected}, got ${
      JSON.stringify(got)
    }; fix it in the ` +
      `network configuration (SpiderMultusConfig or NetworkAttachmentDefinition)`,
  );
}

/** Parses `bond.options`: "k=v;k=v", a value starting with "[" is a JSON array. Unknown keys are refused. */
export function parseBondOptions(text: string): BondOptions {
  const out: BondOptions = {};
  for (const item of text.split(";").map((x) => x.trim()).filter((x) => x !== "")) {
    const eq = item.indexOf("=");
    if (eq <= 0) throw bad("bond.options", 'items of the form key=value separated by ";"', item);
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    const where = `bond.options ${key}`;
    if (key === "active_slave" || key === "primary") {
      if (value === "" || value.length > MAX_IFNAME || /[/\s:]/.test(value)) {
        throw bad(where, "an interface name", value);
      }
      out[key === "primary" ? "primary" : "activeSlave"] = value;
    } else if (key === "ad_actor_system") {
      if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(value)) throw bad(where, "a MAC address", value);
      out.adActorSystem = value.toLowerCase();
    } else if (key === "arp_ip_target") {
      let list: unknown = value.split(",").map((x) => x.trim());
      if (value.startsWith("[")) {
        try {
          list = JSON.parse(value);
        } catch {
          throw bad(where, 'a JSON list of IPv4 addresses, e.g. ["192.0.2.1"]', value);
        }
      }
      if (!Array.isArray(list) || list.length === 0 || list.some((x) => typeof x !== "string")) {
        throw bad(where, "a list of IPv4 addresses", value);
      }
      for (const ip of list as string[]) {
        try {
          parseIP(ip, 4);
        } catch {
          throw bad(where, "IPv4 addresses", ip);
        }
      }
      out.arpIpTargets = list as string[];
    } else if (INT_OPTIONS[key]) {
      if (!/^\d+$/.test(value)) throw bad(where, "a whole number ≥ 0", value);
      (out as Record<string, number>)[INT_OPTIONS[key]] = Number(value);
    } else {
      throw bad("bond.options", `one of the keys ${BOND_OPTION_KEYS.join(", ")}`, key);
    }
  }
  return out;
}

/** Reads and checks the configuration; throws CniError code 7 naming the key. */
export function parseIfacerConf(conf: NetConf): IfacerConf {
  const interfaces = conf.interfaces;
  if (!Array.isArray(interfaces) || interfaces.length === 0) {
    throw bad("interfaces", 'a list of at least one host interface, e.g. ["ens192"]', interfaces);
  }
  for (const name of interfaces) {
    if (typeof name !== "string" || name === "" || name.length > MAX_IFNAME || /[/\s:]/.test(name)) {
      throw bad("interfaces", "host interface names (1-15 characters)", name);
    }
  }
  if (new Set(interfaces).size !== interfaces.length) {
    throw bad("interfaces", "distinct interface names", interfaces);
  }
  const vlan = conf.vlanID ?? 0;
  if (typeof vlan !== "number" || !Number.isInteger(vlan) || vlan < 0 || vlan > 4094) {
    throw bad("vlanID", "a VLAN id from 0 to 4094 (0 = no VLAN)", vlan);
  }
  const out: IfacerConf = { interfaces: interfaces as string[], vlanID: vlan };
  if (conf.bond !== undefined && conf.bond !== null) {
    const b = conf.bond as Record<string, unknown>;
    if (typeof b !== "object" || Array.isArray(b)) throw bad("bond", '{"name", "mode", "options"}', b);
    const name = b.name === undefined || b.name === "" ? DEFAULT_BOND_NAME : b.name;
    if (typeof name !== "string" || name.length > MAX_IFNAME || /[/\s:]/.test(name)) {
      throw bad("bond.name", "an interface name (1-15 characters)", name);
    }
    const mode = b.mode ?? 0;
    if (typeof mode !== "number" || !Number.isInteger(mode) || mode < 0 || mode > 6) {
      throw bad("bond.mode", "a bonding mode from 0 (balance-rr) to 6 (balance-alb)", mode);
    }
    if (b.options !== undefined && typeof b.options !== "string") {
      throw bad("bond.options", "a string", b.options);
    }
    out.bond = { name, mode, options: parseBondOptions((b.options as string | undefined) ?? "") };
  }
  return out;
}

/** A configuration the host cannot satisfy; nothing has been changed. */
export class IfacerPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IfacerPlanError";
  }
}

export function vlanName(parent: string, vlanID: number): string {
  return `${parent}.${vlanID}`;
}

function linkNamed(links: LinkInfo[], name: string): LinkInfo | undefined {
  return links.find((l) => l.name === name);
}

/** The operations making `conf`'s interfaces exist and be up on a host whose links are `links`. */
export function planIfacer(conf: IfacerConf, links: LinkInfo[]): { ops: Op[]; notes: string[] } {
  const ops: Op[] = [];
  const notes: string[] = [];
  const up = (name: string, link: LinkInfo | undefined, step: string) => {
    if (!link || !(link.flags & IFF_UP)) {
      ops.push({
        ns: "host",
        step,
        kind: "link.set",
        name,
        change: { up: true },
        prev: link ? { up: false } : undefined,
      });
    }
  };
  const need = (name: string) => {
    const link = linkNamed(links, name);
    if (!link) {
      throw new IfacerPlanError(
        `host interface ${name} (listed in "interfaces") does not exist on this node`,
      );
    }
    return link;
  };

  let parent: string;
  if (conf.interfaces.length === 1) {
    if (conf.vlanID === 0) {
      notes.push(`one interface and no VLAN: ${conf.interfaces[0]} is used as it is`);
      return { ops, notes };
    }
    parent = conf.interfaces[0];
    up(parent, need(parent), "parent");
  } else {
    if (!conf.bond) {
      notes.push(`several interfaces but no bond configured: nothing to create`);
      return { ops, notes };
    }
    const { name, mode, options } = conf.bond;
    parent = name;
    const slaves = conf.interfaces.map(need);
    const existing = linkNamed(links, name);
    if (existing && existing.kind !== "bond") {
      throw new IfacerPlanError(
        `a host interface named ${name} exists but is ${
          existing.kind ? `a ${existing.kind}` : "not a bond"
        }; ` +
          `choose another bond.name`,
      );
    }
    for (const slave of slaves) {
      if (slave.master !== undefined && slave.master !== existing?.index) {
        const master = links.find((l) => l.index === slave.master)?.name ?? `link ${slave.master}`;
        throw new IfacerPlanError(
          `${slave.name} is already enslaved to ${master}; it cannot join bond ${name}`,
        );
      }
    }
    for (const key of ["primary", "activeSlave"] as const) {
      const nic = options[key];
      if (nic && !conf.interfaces.includes(nic)) {
        throw new IfacerPlanError(
          `bond.options ${
            key === "primary" ? "primary" : "active_slave"
          }=${nic} is not one of the bonded interfaces ` +
            `[${conf.interfaces.join(", ")}]`,
        );
      }
    }
    if (!existing) ops.push({ ns: "host", step: "bond", kind: "link.bond", bond: { name, mode, options } });
    for (const slave of slaves) {
      if (existing && slave.master === existing.index) continue;
      // The kernel enslaves only links that are down.
      if (slave.flags & IFF_UP) {
        ops.push({
          ns: "host",
          step: "bond",
          kind: "link.set",
          name: slave.name,
          change: { up: false },
          prev: { up: true },
        });
      }
      ops.push({
        ns: "host",
        step: "bond",
        kind: "link.set",
        name: slave.name,
        change: { master: name },
        prev: { master: null },
      });
      ops.push({ ns: "host", step: "bond", kind: "link.set", name: slave.name, change: { up: true } });
    }
    if (!existing && options.activeSlave) {
      ops.push({
        ns: "host",
        step: "bond",
        kind: "bond.activeSlave",
        bond: name,
        slave: options.activeSlave,
      });
    }
    up(name, existing, "bond");
    if (conf.vlanID === 0) return { ops, notes };
  }

  const name = vlanName(parent, conf.vlanID);
  if (name.length > MAX_IFNAME) {
    throw new IfacerPlanError(
      `the VLAN interface name ${name} is longer than ${MAX_IFNAME} characters; use a shorter ${
        conf.interfaces.length === 1 ? "interface" : "bond"
      } name`,
    );
  }
  const other = links.find((l) => l.kind === "vlan" && l.vlanId === conf.vlanID && l.name !== name);
  if (other) {
    throw new IfacerPlanError(
      `cannot have multiple different vlan interfaces with the same vlanId ${conf.vlanID} on node at the same ` +
        `time: ${other.name} already has it`,
    );
  }
  const vlan = linkNamed(links, name);
  if (vlan) {
    const parentIndex = linkNamed(links, parent)?.index;
    if (
      vlan.kind !== "vlan" || vlan.vlanId !== conf.vlanID ||
      (parentIndex !== undefined && vlan.link !== parentIndex)
    ) {
      throw new IfacerPlanError(
        `a host interface named ${name} exists but is not VLAN ${conf.vlanID} on ${parent}`,
      );
    }
    up(name, vlan, "vlan");
  } else {
    ops.push({ ns: "host", step: "vlan", kind: "link.vlan", vlan: { name, parent, vlanId: conf.vlanID } });
    ops.push({ ns: "host", step: "vlan", kind: "link.set", name, change: { up: true } });
  }
  return { ops, notes };
}
