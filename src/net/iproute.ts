// The fallback backend: every operation is one `ip` command (iproute2), run through `nsenter --net=PATH` for
// another namespace, reading with `ip -j`. Used when libnl cannot be loaded, or when chosen explicitly
// (SPIDERPOOL_NET_BACKEND=iproute) to compare or to work around a libnl problem. Same contract as netlink.ts.

import type { BackendKind, NetNs } from "./backend.ts";
import { sysctlPath } from "./sysctl.ts";
import {
  type AddrInfo,
  type BondOptions,
  type BondSpec,
  type Family,
  IFF_LOOPBACK,
  IFF_LOWER_UP,
  IFF_UP,
  type LinkChange,
  type LinkInfo,
  type NeighInfo,
  type NeighSpec,
  NetError,
  NUD_NOARP,
  NUD_PERMANENT,
  type RouteInfo,
  type RouteSpec,
  RT_TABLE,
  RTN,
  RTPROT,
  type RuleInfo,
  type RuleSpec,
  type VethSpec,
  type VlanSpec,
} from "./types.ts";
import { describeChange, describeRoute, describeRule } from "./describe.ts";

const TIMEOUT_MS = 20_000;
const decoder = new TextDecoder();

/** errno for the messages iproute2 prints (strerror texts; extended-ack texts keep errno 0). */
const STDERR_ERRNO: [RegExp, number][] = [
  [/File exists|already assigned|already exists/i, 17],
  [/FIB table does not exist/i, 3],
  [/Nexthop has invalid gateway/i, 101],
  [/No such process/i, 3],
  [/Cannot find device|does not exist|No such device/i, 19],
  [/No such file or directory/i, 2],
  [/Operation not supported|Unknown device type/i, 95],
  [/Network is unreachable/i, 101],
  [/No route to host/i, 113],
  [/Cannot assign requested address/i, 99],
  [/Operation not permitted/i, 1],
  [/Permission denied/i, 13],
  [/Device or resource busy/i, 16],
  [/Invalid argument/i, 22],
];

export function errnoFromStderr(stderr: string): number {
  return STDERR_ERRNO.find(([re]) => re.test(stderr))?.[1] ?? 0;
}

const FLAG_BITS: Record<string, number> = {
  UP: IFF_UP,
  BROADCAST: 0x2,
  LOOPBACK: IFF_LOOPBACK,
  POINTOPOINT: 0x10,
  NOARP: 0x80,
  PROMISC: 0x100,
  MULTICAST: 0x1000,
  LOWER_UP: IFF_LOWER_UP,
};
const SCOPES: Record<string, number> = {
  global: 0,
  universe: 0,
  site: 200,
  link: 253,
  host: 254,
  nowhere: 255,
};
const TABLES: Record<string, number> = {
  default: RT_TABLE.default,
  main: RT_TABLE.main,
  local: RT_TABLE.local,
};
const PROTOCOLS: Record<string, number> = {
  redirect: 1,
  kernel: RTPROT.kernel,
  boot: RTPROT.boot,
  static: RTPROT.static,
  ra: 9,
  dhcp: 16,
};
const TYPES: Record<string, number> = {
  unicast: RTN.unicast,
  local: RTN.local,
  broadcast: RTN.broadcast,
  anycast: RTN.anycast,
  multicast: RTN.multicast,
  blackhole: RTN.blackhole,
  unreachable: 7,
  prohibit: 8,
  throw: 9,
};
const NUD_BITS: Record<string, number> = {
  INCOMPLETE: 0x01,
  REACHABLE: 0x02,
  STALE: 0x04,
  DELAY: 0x08,
  PROBE: 0x10,
  FAILED: 0x20,
  NOARP: NUD_NOARP,
  PERMANENT: NUD_PERMANENT,
};

const named = (table: Record<string, number>, v: unknown, dflt: number): number =>
  v === undefined ? dflt : typeof v === "number" ? v : table[String(v)] ?? (Number(v) || dflt);

const withLen = (ip: string, len: number | undefined, family: Family) =>
  ip.includes("/") ? ip : `${ip}/${len ?? (family === 4 ? 32 : 128)}`;

/** A network namespace reached by running iproute2 commands. */
export class IpRouteNs implements NetNs {
  readonly backend: BackendKind = "iproute";
  readonly path: string | undefined;

  constructor(path?: string) {
    this.path = path;
  }

  close(): void {}

  /** Runs `ip ARGS` in this namespace; throws NetError naming `what`. */
  async ip(what: string, ...args: string[]): Promise<string> {
    return await this.run(what, "ip", args);
  }

  /** Runs a command in this namespace (through nsenter when it is not the process's own). */
  async run(what: string, cmd: string, args: string[]): Promise<string> {
    const [bin, argv] = this.path === undefined
      ? [cmd, args]
      : ["nsenter", [`--net=${this.path}`, "--", cmd, ...args]];
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command(bin, {
        args: argv,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(TIMEOUT_MS),
      }).output();
    } catch (e) {
      throw new NetError(what, 0, `cannot run ${bin}: ${(e as Error).message}`);
    }
    if (!out.success) {
      const stderr = decoder.decode(out.stderr).trim();
      throw new NetError(what, errnoFromStderr(stderr), `${cmd} ${args.join(" ")}: ${stderr}`);
    }
    return decoder.decode(out.stdout);
  }

  async #json<T>(what: string, ...args: string[]): Promise<T[]> {
    const text = await this.ip(what, "-j", ...args);
    return text.trim() === "" ? [] : JSON.parse(text) as T[];
  }

  async links(): Promise<LinkInfo[]> {
    type J = {
      ifindex: number;
      ifname: string;
      flags?: string[];
      mtu?: number;
      txqlen?: number;
      address?: string;
      link?: string;
      link_index?: number;
      link_netnsid?: number;
      master?: string;
      linkinfo?: { info_kind?: string; info_data?: { id?: number } };
    };
    const raw = await this.#json<J>("list links", "-d", "link", "show");
    const byName = new Map(raw.map((l) => [l.ifname, l.ifindex]));
    return raw.map((l) => {
      const link: LinkInfo = {
        index: l.ifindex,
        name: l.ifname,
        flags: (l.flags ?? []).reduce((f, name) => f | (FLAG_BITS[name] ?? 0), 0),
        mac: l.address && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(l.address) ? l.address : "",
        mtu: l.mtu ?? 0,
        txqlen: l.txqlen ?? 0,
      };
      const kind = l.linkinfo?.info_kind;
      if (kind) link.kind = kind;
      const peer = l.link_index ?? (l.link ? byName.get(l.link) : undefined);
      if (peer) link.link = peer;
      if (l.link_netnsid !== undefined) link.linkNetnsId = l.link_netnsid;
      if (l.master) link.master = byName.get(l.master);
      if (kind === "vlan") link.vlanId = l.linkinfo?.info_data?.id;
      return link;
    });
  }

  async addrs(family?: Family): Promise<AddrInfo[]> {
    type J = {
      ifindex: number;
      addr_info?: { family: string; local: string; prefixlen: number; scope?: string; tentative?: boolean }[];
    };
    const raw = await this.#json<J>("list addresses", ...(family ? [`-${family}`] : []), "addr", "show");
    return raw.flatMap((l) =>
      (l.addr_info ?? []).filter((a) => a.family === "inet" || a.family === "inet6").map((a) => ({
        index: l.ifindex,
        family: (a.family === "inet" ? 4 : 6) as Family,
        address: a.local,
        prefixLen: a.prefixlen,
        scope: named(SCOPES, a.scope, 0),
        flags: a.tentative ? 0x40 : 0,
      }))
    );
  }

  async routes(family?: Family, table?: number): Promise<RouteInfo[]> {
    type J = {
      type?: string;
      dst: string;
      gateway?: string;
      dev?: string;
      table?: string;
      protocol?: string;
      scope?: string;
      prefsrc?: string;
      metric?: number;
      nexthops?: { gateway?: string; dev: string }[];
    };
    const index = await this.#indexByName();
    const out: RouteInfo[] = [];
    for (const f of family ? [family] : [4, 6] as Family[]) {
      let raw: J[];
      try {
        raw = await this.#json<J>("list routes", `-${f}`, "route", "show", "table", String(table ?? "all"));
      } catch (e) {
        // A table that never had a route does not exist yet: it is empty.
        if (table !== undefined && e instanceof NetError && e.errno === 3) continue;
        throw e;
      }
      for (const r of raw) {
        const route: RouteInfo = {
          family: f,
          dst: r.dst === "default" ? (f === 4 ? "0.0.0.0/0" : "::/0") : withLen(r.dst, undefined, f),
          table: table ?? named(TABLES, r.table, RT_TABLE.main),
          scope: named(SCOPES, r.scope, 0),
          protocol: named(PROTOCOLS, r.protocol, RTPROT.boot),
          type: named(TYPES, r.type, RTN.unicast),
        };
        if (r.dev) route.ifindex = index.get(r.dev);
        if (r.gateway) route.gw = r.gateway;
        if (r.prefsrc) route.src = r.prefsrc;
        if (r.metric !== undefined) route.metric = r.metric;
        if (r.nexthops) {
          route.multipath = r.nexthops.map((h) => ({ ifindex: index.get(h.dev) ?? 0, gw: h.gateway }));
        }
        out.push(route);
      }
    }
    return out;
  }

  async rules(family?: Family): Promise<RuleInfo[]> {
    type J = {
      priority: number;
      src?: string;
      srclen?: number;
      dst?: string;
      dstlen?: number;
      fwmark?: string;
      fwmask?: string;
      table?: string;
      action?: string;
      iif?: string;
      oif?: string;
    };
    const out: RuleInfo[] = [];
    for (const f of family ? [family] : [4, 6] as Family[]) {
      for (const r of await this.#json<J>("list rules", `-${f}`, "rule", "show")) {
        const rule: RuleInfo = {
          family: f,
          priority: r.priority,
          table: named(TABLES, r.table, 0),
          action: r.action ? 0 : 1,
        };
        if (r.src && r.src !== "all") rule.src = withLen(r.src, r.srclen, f);
        if (r.dst && r.dst !== "all") rule.dst = withLen(r.dst, r.dstlen, f);
        if (r.fwmark !== undefined) {
          rule.fwmark = Number(r.fwmark);
          rule.fwmask = r.fwmask !== undefined ? Number(r.fwmask) : 0xffffffff;
        }
        if (r.iif) rule.iifname = r.iif;
        if (r.oif) rule.oifname = r.oif;
        out.push(rule);
      }
    }
    return out;
  }

  async neighs(family?: Family): Promise<NeighInfo[]> {
    type J = { dst: string; dev: string; lladdr?: string; state?: string[] };
    const index = await this.#indexByName();
    const raw = await this.#json<J>("list neighbours", ...(family ? [`-${family}`] : []), "neigh", "show");
    return raw.map((n) => {
      const neigh: NeighInfo = {
        family: n.dst.includes(":") ? 6 : 4,
        ifindex: index.get(n.dev) ?? 0,
        dst: n.dst,
        state: (n.state ?? []).reduce((s, name) => s | (NUD_BITS[name] ?? 0), 0),
      };
      if (n.lladdr) neigh.lladdr = n.lladdr;
      return neigh;
    });
  }

  async routeGet(dst: string): Promise<RouteInfo | undefined> {
    type J = { dst: string; gateway?: string; dev?: string; prefsrc?: string; table?: string };
    let raw: J[];
    try {
      raw = await this.#json<J>(`route lookup of ${dst}`, "route", "get", dst);
    } catch (e) {
      if (e instanceof NetError && [101, 113, 22, 19].includes(e.errno)) return undefined;
      throw e;
    }
    const r = raw[0];
    if (!r) return undefined;
    const family: Family = dst.includes(":") ? 6 : 4;
    const route: RouteInfo = {
      family,
      dst: withLen(r.dst, undefined, family),
      table: named(TABLES, r.table, RT_TABLE.main),
      scope: 0,
      protocol: 0,
      type: RTN.unicast,
    };
    if (r.dev) route.ifindex = (await this.#indexByName()).get(r.dev);
    if (r.gateway) route.gw = r.gateway;
    if (r.prefsrc) route.src = r.prefsrc;
    return route;
  }

  async #indexByName(): Promise<Map<string, number>> {
    type J = { ifindex: number; ifname: string };
    return new Map((await this.#json<J>("list links", "link", "show")).map((l) => [l.ifname, l.ifindex]));
  }

  async readSysctl(key: string): Promise<string | undefined> {
    const path = sysctlPath(key);
    try {
      if (this.path === undefined) return (await Deno.readTextFile(path)).trim();
      return (await this.run(`read sysctl ${key}`, "cat", [path])).trim();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || (e instanceof NetError && e.errno === 2)) return undefined;
      throw e;
    }
  }

  async writeSysctl(key: string, value: string): Promise<void> {
    const path = sysctlPath(key);
    const what = `set sysctl ${key}=${value}`;
    if (this.path === undefined) {
      try {
        await Deno.writeTextFile(path, value);
      } catch (e) {
        throw new NetError(what, e instanceof Deno.errors.NotFound ? 2 : 22, (e as Error).message);
      }
      return;
    }
    await this.run(what, "sh", ["-c", 'printf "%s" "$1" > "$2"', "sh", value, path]);
  }

  async addVeth(spec: VethSpec, peerNs: NetNs): Promise<void> {
    const side = (name: string, mac: string | undefined) => [
      "name",
      name,
      ...(mac ? ["address", mac] : []),
      ...(spec.mtu ? ["mtu", String(spec.mtu)] : []),
    ];
    const peerPath = peerNs === this ? undefined : peerNs.path ?? `/proc/${Deno.pid}/ns/net`;
    await this.ip(
      `create veth pair ${spec.name} <-> ${spec.peer.name}`,
      "link",
      "add",
      ...side(spec.name, spec.mac),
      "type",
      "veth",
      "peer",
      ...side(spec.peer.name, spec.peer.mac),
      ...(peerPath ? ["netns", peerPath] : []),
    );
  }

  async setLink(name: string, change: LinkChange): Promise<void> {
    const args: string[] = [];
    if (change.mtu !== undefined) args.push("mtu", String(change.mtu));
    if (change.mac !== undefined) args.push("address", change.mac);
    if (change.txqlen !== undefined) args.push("txqueuelen", String(change.txqlen));
    if (change.master !== undefined) {
      args.push(...(change.master === null ? ["nomaster"] : ["master", change.master]));
    }
    if (change.up !== undefined) args.push(change.up ? "up" : "down");
    await this.ip(`set link ${name} ${describeChange(change)}`, "link", "set", "dev", name, ...args);
  }

  async delLink(name: string): Promise<void> {
    await this.ip(`delete link ${name}`, "link", "del", "dev", name);
  }

  async addVlan(spec: VlanSpec): Promise<void> {
    await this.ip(
      `create VLAN ${spec.name} (id ${spec.vlanId}) on ${spec.parent}`,
      "link",
      "add",
      "link",
      spec.parent,
      "name",
      spec.name,
      "type",
      "vlan",
      "id",
      String(spec.vlanId),
    );
  }

  async addBond(spec: BondSpec): Promise<void> {
    await this.ip(
      `create bond ${spec.name} (mode ${spec.mode})`,
      "link",
      "add",
      "name",
      spec.name,
      "type",
      "bond",
      "mode",
      String(spec.mode),
      ...bondArgs(spec.options),
    );
  }

  async setBondActiveSlave(bond: string, slave: string): Promise<void> {
    await this.ip(
      `set active slave of bond ${bond} to ${slave}`,
      "link",
      "set",
      "dev",
      bond,
      "type",
      "bond",
      "active_slave",
      slave,
    );
  }

  async addAddr(dev: string, cidr: string, scope?: number): Promise<void> {
    await this.ip(
      `add address ${cidr} to ${dev}`,
      "addr",
      "add",
      cidr,
      "dev",
      dev,
      ...(scope !== undefined ? ["scope", String(scope)] : []),
    );
  }

  async delAddr(dev: string, cidr: string): Promise<void> {
    await this.ip(`delete address ${cidr} from ${dev}`, "addr", "del", cidr, "dev", dev);
  }

  #routeArgs(r: RouteSpec): string[] {
    return [
      r.dst,
      ...(r.gw ? ["via", r.gw] : []),
      ...(r.dev ? ["dev", r.dev] : []),
      "table",
      String(r.table),
      ...(r.scope !== undefined ? ["scope", String(r.scope)] : []),
      ...(r.protocol !== undefined ? ["proto", String(r.protocol)] : []),
      ...(r.src ? ["src", r.src] : []),
      ...(r.metric !== undefined ? ["metric", String(r.metric)] : []),
    ];
  }

  async addRoute(spec: RouteSpec, replace = false): Promise<void> {
    await this.ip(
      `${replace ? "replace" : "add"} route ${describeRoute(spec)}`,
      `-${spec.family}`,
      "route",
      replace ? "replace" : "add",
      ...this.#routeArgs(spec),
    );
  }

  async delRoute(spec: RouteSpec): Promise<void> {
    await this.ip(
      `delete route ${describeRoute(spec)}`,
      `-${spec.family}`,
      "route",
      "del",
      ...this.#routeArgs(spec),
    );
  }

  #ruleArgs(r: RuleSpec): string[] {
    return [
      ...(r.fwmark !== undefined
        ? ["fwmark", `0x${r.fwmark.toString(16)}/0x${(r.fwmask ?? 0xffffffff).toString(16)}`]
        : ["from", r.src ?? "all"]),
      ...(r.fwmark !== undefined && r.src ? ["from", r.src] : []),
      ...(r.dst ? ["to", r.dst] : []),
      "lookup",
      String(r.table),
      "pref",
      String(r.priority),
    ];
  }

  async addRule(spec: RuleSpec): Promise<void> {
    await this.ip(
      `add rule ${describeRule(spec)}`,
      `-${spec.family}`,
      "rule",
      "add",
      ...this.#ruleArgs(spec),
    );
  }

  async delRule(spec: RuleSpec): Promise<void> {
    await this.ip(
      `delete rule ${describeRule(spec)}`,
      `-${spec.family}`,
      "rule",
      "del",
      ...this.#ruleArgs(spec),
    );
  }

  async addNeigh(spec: NeighSpec): Promise<void> {
    const nud = spec.state === undefined
      ? []
      : ["nud", spec.state === NUD_PERMANENT ? "permanent" : String(spec.state)];
    await this.ip(
      `add neighbour ${spec.dst} lladdr ${spec.lladdr} dev ${spec.dev}`,
      "neigh",
      "replace",
      spec.dst,
      ...(spec.lladdr ? ["lladdr", spec.lladdr] : []),
      "dev",
      spec.dev,
      ...nud,
    );
  }

  async delNeigh(spec: NeighSpec): Promise<void> {
    await this.ip(`delete neighbour ${spec.dst} dev ${spec.dev}`, "neigh", "del", spec.dst, "dev", spec.dev);
  }
}

/** `ip link add … type bond` arguments for the options (integers only when > 0, as netlink.ts sends them). */
export function bondArgs(o: BondOptions): string[] {
  const out: string[] = [];
  const int = (key: string, v: number | undefined) => {
    if (v !== undefined && v > 0) out.push(key, String(v));
  };
  int("miimon", o.miimon);
  int("updelay", o.upDelay);
  int("downdelay", o.downDelay);
  int("use_carrier", o.useCarrier);
  int("arp_interval", o.arpInterval);
  if (o.arpIpTargets?.length) out.push("arp_ip_target", o.arpIpTargets.join(","));
  int("arp_validate", o.arpValidate);
  int("arp_all_targets", o.arpAllTargets);
  if (o.primary) out.push("primary", o.primary);
  int("primary_reselect", o.primaryReselect);
  int("fail_over_mac", o.failOverMac);
  int("xmit_hash_policy", o.xmitHashPolicy);
  int("resend_igmp", o.resendIgmp);
  int("all_slaves_active", o.allSlavesActive);
  int("min_links", o.minLinks);
  int("lp_interval", o.lpInterval);
  int("packets_per_slave", o.packetsPerSlave);
  int("lacp_rate", o.lacpRate);
  int("ad_select", o.adSelect);
  int("ad_actor_sys_prio", o.adActorSysPrio);
  int("ad_user_port_key", o.adUserPortKey);
  if (o.adActorSystem) out.push("ad_actor_system", o.adActorSystem);
  int("tlb_dynamic_lb", o.tlbDynamicLb);
  int("peer_notify_delay", o.peerNotifDelay);
  return out;
}
