// The netlink backend: one libnl socket per namespace, opened inside that namespace (the socket keeps working
// there after the thread has returned home). Changes are built as libnl-route objects and sent as the requests
// libnl builds for them; the kernel's acknowledgement is read here, so errors carry the real errno and the
// kernel's extended message. Dumps, route lookups, VLANs and bonds (whose options libnl 3.7 cannot set) are
// encoded by codec.ts and sent through the same socket.
// deno-lint-ignore-file require-await -- libnl calls are synchronous; the methods are async so that a failure
// reaches the caller as a rejected promise, as it does from the iproute2 backend.

import type { BackendKind, NetNs } from "./backend.ts";
import {
  addrDumpBody,
  bondActiveSlaveBody,
  ipBytes,
  linkDumpBody,
  linkGetBody,
  macBytes,
  neighDumpBody,
  newBondBody,
  newVlanBody,
  NLM_F,
  type NlMessage,
  NLMSG,
  parseAck,
  parseAddrMsg,
  parseLinkMsg,
  parseMessages,
  parseNeighMsg,
  parseRouteMsg,
  parseRuleMsg,
  routeDumpBody,
  routeGetBody,
  RTM,
  ruleDumpBody,
} from "./codec.ts";
import { cstr, errno, libc, libnl, nlErrorText } from "./ffi.ts";
import { closeFd, inNetns, openNetns, ownNetnsFd } from "./netns.ts";
import { describeChange, describeRoute, describeRule } from "./describe.ts";
import { sysctlPath } from "./sysctl.ts";
import {
  type AddrInfo,
  AF_INET,
  AF_INET6,
  afOf,
  type BondSpec,
  type Family,
  IFF_UP,
  type LinkChange,
  type LinkInfo,
  type NeighInfo,
  type NeighSpec,
  NetError,
  type RouteInfo,
  type RouteSpec,
  RT_SCOPE,
  RTPROT,
  type RuleInfo,
  type RuleSpec,
  type VethSpec,
  type VlanSpec,
} from "./types.ts";

const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const NETLINK_GET_STRICT_CHK = 12;
const AF_LLC = 26;
const FR_ACT_TO_TBL = 1;
const CREATE_EXCL = NLM_F.create | NLM_F.excl;
const DUMP_RETRIES = 5;

type Ptr = Deno.PointerObject;

/**
 * Bumped by every operation that creates or removes links. A change in one namespace can remove links in
 * another (deleting a veth removes its peer), so each handle's name → index cache is valid for one generation;
 * after that, a name is looked up again (one RTM_GETLINK for that link, not a dump of all).
 */
let linkGeneration = 0;

function mustPtr(p: Deno.PointerValue, what: string): Ptr {
  if (!p) throw new NetError(what, 12, "out of memory");
  return p;
}

/** A libnl address object for `text` (validated and encoded in TypeScript, so libnl never guesses a family). */
function nlAddr(text: string, prefixLen?: number): Ptr {
  const { nl } = libnl();
  const bytes = ipBytes(text);
  const a = mustPtr(
    nl.nl_addr_build(bytes.length === 4 ? AF_INET : AF_INET6, bytes, BigInt(bytes.length)),
    "nl_addr_build",
  );
  nl.nl_addr_set_prefixlen(a, prefixLen ?? bytes.length * 8);
  return a;
}

function llAddr(mac: string): Ptr {
  const bytes = macBytes(mac);
  return mustPtr(libnl().nl.nl_addr_build(AF_LLC, bytes, 6n), "nl_addr_build");
}

function splitCidr(cidr: string): { ip: string; len: number } {
  const at = cidr.indexOf("/");
  if (at < 0) throw new Error(`expected an address with its prefix length, got ${JSON.stringify(cidr)}`);
  return { ip: cidr.slice(0, at), len: Number(cidr.slice(at + 1)) };
}

/** A network namespace reached through a libnl netlink socket. */
export class NetlinkNs implements NetNs {
  readonly backend: BackendKind = "netlink";
  readonly path: string | undefined;
  readonly #fd: number | undefined;
  #sk: Ptr | null;
  #indexes = new Map<string, number>();
  #indexesGeneration = -1;

  private constructor(path: string | undefined, fd: number | undefined, sk: Ptr) {
    this.path = path;
    this.#fd = fd;
    this.#sk = sk;
  }

  /** Opens a socket in the namespace at `path` (the process's own when undefined). Loads libnl. */
  static open(path?: string): NetlinkNs {
    const fd = path === undefined ? undefined : openNetns(path);
    try {
      const sk = fd === undefined ? connect() : inNetns(fd, "opening a netlink socket", connect);
      return new NetlinkNs(path, fd, sk);
    } catch (e) {
      if (fd !== undefined) closeFd(fd);
      throw e;
    }
  }

  /** The namespace descriptor (for moving links into it). */
  get nsFd(): number {
    return this.#fd ?? ownNetnsFd();
  }

  close(): void {
    if (this.#sk) libnl().nl.nl_socket_free(this.#sk);
    this.#sk = null;
    if (this.#fd !== undefined) closeFd(this.#fd);
  }

  #socket(): Ptr {
    if (!this.#sk) throw new Error("netlink handle used after close()");
    return this.#sk;
  }

  /** Sends a libnl message (freed here) and reads the answer up to its acknowledgement or end of dump. */
  #exchange(msg: Ptr, what: string): NlMessage[] {
    const { nl } = libnl();
    const sk = this.#socket();
    let rc: number;
    let seq: number;
    try {
      rc = nl.nl_send_auto(sk, msg);
      seq = new Deno.UnsafePointerView(mustPtr(nl.nlmsg_hdr(msg), "nlmsg_hdr")).getUint32(8);
    } finally {
      nl.nlmsg_free(msg);
    }
    if (rc < 0) throw new NetError(what, 0, nlErrorText(rc));
    const out: NlMessage[] = [];
    for (;;) {
      for (const m of this.#recv(what)) {
        if (m.seq !== seq) continue; // a late acknowledgement of an earlier dump
        if (m.type === NLMSG.error) {
          const ack = parseAck(m);
          if (ack.errno !== 0) throw new NetError(what, ack.errno, ack.detail);
          return out;
        }
        if (m.type === NLMSG.done) {
          if (m.flags & NLM_F.dumpIntr) throw new DumpInterrupted(what);
          return out;
        }
        // Dump parts, or the single answer of a lookup; the end of dump or the acknowledgement follows.
        out.push(m);
      }
    }
  }

  #recv(what: string): NlMessage[] {
    const { nl } = libnl();
    const peer = new Uint8Array(12);
    const buf = new BigUint64Array(1);
    const n = nl.nl_recv(this.#socket(), peer, buf, null);
    if (n < 0) throw new NetError(what, 0, nlErrorText(n));
    const p = Deno.UnsafePointer.create(buf[0]);
    if (n === 0 || !p) {
      if (p) libc().free(p);
      throw new NetError(what, 0, "the netlink socket returned no data");
    }
    try {
      return parseMessages(new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, n)).slice());
    } finally {
      libc().free(p);
    }
  }

  /** Sends a request whose body codec.ts encoded. */
  #raw(type: number, flags: number, body: Uint8Array, what: string): NlMessage[] {
    const { nl } = libnl();
    const msg = mustPtr(nl.nlmsg_alloc_simple(type, flags), "nlmsg_alloc_simple");
    if (nl.nlmsg_append(msg, body, BigInt(body.length), 4) < 0) {
      nl.nlmsg_free(msg);
      throw new NetError(what, 0, "message too large");
    }
    return this.#exchange(msg, what);
  }

  #dump(type: number, body: Uint8Array, what: string): NlMessage[] {
    for (let attempt = 1;; attempt++) {
      try {
        return this.#raw(type, NLM_F.dump, body, what);
      } catch (e) {
        if (!(e instanceof DumpInterrupted) || attempt >= DUMP_RETRIES) throw e;
      }
    }
  }

  /** Builds a request with a libnl `build_*_request` function, then sends it. */
  #built(what: string, build: (out: BigUint64Array) => number): void {
    const out = new BigUint64Array(1);
    const rc = build(out);
    if (rc < 0) throw new NetError(what, 0, nlErrorText(rc));
    this.#exchange(mustPtr(Deno.UnsafePointer.create(out[0]), what), what);
  }

  async links(): Promise<LinkInfo[]> {
    const links = this.#dump(RTM.getLink, linkDumpBody(), "list links")
      .filter((m) => m.type === RTM.newLink).map((m) => parseLinkMsg(m.body));
    this.#indexes = new Map(links.map((l) => [l.name, l.index]));
    this.#indexesGeneration = linkGeneration;
    return links;
  }

  /** The index of link `name`, from the cache, else asked of the kernel for that one link. */
  #ifindex(name: string, what: string): number {
    if (this.#indexesGeneration !== linkGeneration) {
      this.#indexes.clear();
      this.#indexesGeneration = linkGeneration;
    }
    let index = this.#indexes.get(name);
    if (index === undefined) {
      try {
        const m = this.#raw(RTM.getLink, 0, linkGetBody(name), `look up link ${name}`)
          .find((x) => x.type === RTM.newLink);
        if (m) index = parseLinkMsg(m.body).index;
      } catch (e) {
        if (!(e instanceof NetError && e.gone)) throw e;
      }
      if (index === undefined) throw new NetError(what, 19, `no link named ${name}`);
      this.#indexes.set(name, index);
    }
    return index;
  }

  async addrs(family?: Family): Promise<AddrInfo[]> {
    const msgs = this.#dump(RTM.getAddr, addrDumpBody(family ? afOf(family) : 0), "list addresses");
    return (msgs.filter((m) => m.type === RTM.newAddr).map((m) => parseAddrMsg(m.body))
      .filter((a): a is AddrInfo => a !== undefined && (!family || a.family === family)));
  }

  async routes(family?: Family, table?: number): Promise<RouteInfo[]> {
    const out: RouteInfo[] = [];
    for (const f of family ? [family] : [4, 6] as Family[]) {
      const msgs = this.#dump(RTM.getRoute, routeDumpBody(afOf(f), table), "list routes");
      for (const m of msgs) {
        if (m.type !== RTM.newRoute) continue;
        const r = parseRouteMsg(m.body);
        if (r && (table === undefined || r.table === table)) out.push(r);
      }
    }
    return out;
  }

  async rules(family?: Family): Promise<RuleInfo[]> {
    const out: RuleInfo[] = [];
    for (const f of family ? [family] : [4, 6] as Family[]) {
      for (const m of this.#dump(RTM.getRule, ruleDumpBody(afOf(f)), "list rules")) {
        const r = m.type === RTM.newRule ? parseRuleMsg(m.body) : undefined;
        if (r) out.push(r);
      }
    }
    return out;
  }

  async neighs(family?: Family): Promise<NeighInfo[]> {
    const msgs = this.#dump(RTM.getNeigh, neighDumpBody(family ? afOf(family) : 0), "list neighbours");
    return (msgs.filter((m) => m.type === RTM.newNeigh).map((m) => parseNeighMsg(m.body))
      .filter((n): n is NeighInfo => n !== undefined && (!family || n.family === family)));
  }

  async routeGet(dst: string): Promise<RouteInfo | undefined> {
    try {
      const msgs = this.#raw(RTM.getRoute, 0, routeGetBody(dst), `route lookup of ${dst}`);
      const m = msgs.find((x) => x.type === RTM.newRoute);
      return m ? parseRouteMsg(m.body) : undefined;
    } catch (e) {
      if (e instanceof NetError && [101, 113, 22, 19].includes(e.errno)) return undefined;
      throw e;
    }
  }

  async readSysctl(key: string): Promise<string | undefined> {
    const path = sysctlPath(key);
    const read = () => {
      try {
        return Deno.readTextFileSync(path).trim();
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return undefined;
        throw new NetError(`read sysctl ${key}`, 13, (e as Error).message);
      }
    };
    return this.#fd === undefined ? read() : inNetns(this.#fd, `reading ${key}`, read);
  }

  async writeSysctl(key: string, value: string): Promise<void> {
    const path = sysctlPath(key);
    const write = () => {
      try {
        Deno.writeTextFileSync(path, value);
      } catch (e) {
        const errno = e instanceof Deno.errors.NotFound
          ? 2
          : e instanceof Deno.errors.PermissionDenied
          ? 13
          : 22;
        throw new NetError(`set sysctl ${key}=${value}`, errno, (e as Error).message);
      }
    };
    if (this.#fd === undefined) write();
    else inNetns(this.#fd, `writing ${key}`, write);
  }

  async addVeth(spec: VethSpec, peerNs: NetNs): Promise<void> {
    const { nl, rt } = libnl();
    const what = `create veth pair ${spec.name} <-> ${spec.peer.name}`;
    const link = mustPtr(rt.rtnl_link_veth_alloc(), what);
    try {
      const peer = mustPtr(rt.rtnl_link_veth_get_peer(link), what);
      try {
        rt.rtnl_link_set_name(link, cstr(spec.name));
        rt.rtnl_link_set_name(peer, cstr(spec.peer.name));
        if (spec.mtu) rt.rtnl_link_set_mtu(link, spec.mtu), rt.rtnl_link_set_mtu(peer, spec.mtu);
        for (const [l, mac] of [[link, spec.mac], [peer, spec.peer.mac]] as const) {
          if (!mac) continue;
          const a = llAddr(mac);
          rt.rtnl_link_set_addr(l, a);
          nl.nl_addr_put(a);
        }
        if (peerNs !== this) {
          if (!(peerNs instanceof NetlinkNs)) {
            throw new Error("a veth peer namespace must use the same backend");
          }
          rt.rtnl_link_set_ns_fd(peer, peerNs.nsFd);
        }
        this.#built(what, (out) => rt.rtnl_link_build_add_request(link, CREATE_EXCL, out));
      } finally {
        rt.rtnl_link_put(peer);
      }
    } finally {
      rt.rtnl_link_put(link);
      linkGeneration++;
    }
  }

  async setLink(name: string, change: LinkChange): Promise<void> {
    const { nl, rt } = libnl();
    const what = `set link ${name} ${describeChange(change)}`;
    const index = this.#ifindex(name, what);
    const orig = mustPtr(rt.rtnl_link_alloc(), what);
    const changes = mustPtr(rt.rtnl_link_alloc(), what);
    try {
      rt.rtnl_link_set_ifindex(orig, index);
      if (change.up === true) rt.rtnl_link_set_flags(changes, IFF_UP);
      if (change.up === false) rt.rtnl_link_unset_flags(changes, IFF_UP);
      if (change.mtu !== undefined) rt.rtnl_link_set_mtu(changes, change.mtu);
      if (change.txqlen !== undefined) rt.rtnl_link_set_txqlen(changes, change.txqlen);
      if (change.mac !== undefined) {
        const a = llAddr(change.mac);
        rt.rtnl_link_set_addr(changes, a);
        nl.nl_addr_put(a);
      }
      if (change.master !== undefined) {
        rt.rtnl_link_set_master(changes, change.master === null ? 0 : this.#ifindex(change.master, what));
      }
      this.#built(what, (out) => rt.rtnl_link_build_change_request(orig, changes, 0, out));
    } finally {
      rt.rtnl_link_put(orig);
      rt.rtnl_link_put(changes);
    }
  }

  async delLink(name: string): Promise<void> {
    const { rt } = libnl();
    const what = `delete link ${name}`;
    const index = this.#ifindex(name, what);
    const link = mustPtr(rt.rtnl_link_alloc(), what);
    try {
      rt.rtnl_link_set_ifindex(link, index);
      this.#built(what, (out) => rt.rtnl_link_build_delete_request(link, out));
    } finally {
      rt.rtnl_link_put(link);
      linkGeneration++;
    }
  }

  async addVlan(spec: VlanSpec): Promise<void> {
    const what = `create VLAN ${spec.name} (id ${spec.vlanId}) on ${spec.parent}`;
    try {
      this.#raw(RTM.newLink, CREATE_EXCL, newVlanBody(spec, this.#ifindex(spec.parent, what)), what);
    } finally {
      linkGeneration++;
    }
  }

  async addBond(spec: BondSpec): Promise<void> {
    const what = `create bond ${spec.name} (mode ${spec.mode})`;
    const { activeSlave: _later, ...options } = spec.options;
    try {
      const body = newBondBody({ ...spec, options }, (n) => this.#ifindex(n, what));
      this.#raw(RTM.newLink, CREATE_EXCL, body, what);
    } finally {
      linkGeneration++;
    }
  }

  async setBondActiveSlave(bond: string, slave: string): Promise<void> {
    const what = `set active slave of bond ${bond} to ${slave}`;
    this.#raw(
      RTM.newLink,
      0,
      bondActiveSlaveBody(this.#ifindex(bond, what), this.#ifindex(slave, what)),
      what,
    );
  }

  #addrObject(dev: string, cidr: string, what: string, scope?: number): Ptr {
    const { nl, rt } = libnl();
    const { ip, len } = splitCidr(cidr);
    const a = mustPtr(rt.rtnl_addr_alloc(), what);
    rt.rtnl_addr_set_ifindex(a, this.#ifindex(dev, what));
    rt.rtnl_addr_set_family(a, ip.includes(":") ? AF_INET6 : AF_INET);
    const local = nlAddr(ip, len);
    rt.rtnl_addr_set_local(a, local);
    nl.nl_addr_put(local);
    rt.rtnl_addr_set_prefixlen(a, len);
    if (scope !== undefined) rt.rtnl_addr_set_scope(a, scope);
    return a;
  }

  async addAddr(dev: string, cidr: string, scope?: number): Promise<void> {
    const { rt } = libnl();
    const what = `add address ${cidr} to ${dev}`;
    const a = this.#addrObject(dev, cidr, what, scope);
    try {
      this.#built(what, (out) => rt.rtnl_addr_build_add_request(a, CREATE_EXCL, out));
    } finally {
      rt.rtnl_addr_put(a);
    }
  }

  async delAddr(dev: string, cidr: string): Promise<void> {
    const { rt } = libnl();
    const what = `delete address ${cidr} from ${dev}`;
    const a = this.#addrObject(dev, cidr, what);
    try {
      this.#built(what, (out) => rt.rtnl_addr_build_delete_request(a, 0, out));
    } finally {
      rt.rtnl_addr_put(a);
    }
  }

  #routeObject(spec: RouteSpec, what: string, forDelete: boolean): Ptr {
    const { nl, rt } = libnl();
    const r = mustPtr(rt.rtnl_route_alloc(), what);
    const af = afOf(spec.family);
    rt.rtnl_route_set_family(r, af);
    const { ip, len } = splitCidr(spec.dst);
    const dst = nlAddr(ip, len);
    rt.rtnl_route_set_dst(r, dst);
    nl.nl_addr_put(dst);
    rt.rtnl_route_set_table(r, spec.table);
    // A delete matches any protocol and scope unless told; an add says what `ip route add` would.
    rt.rtnl_route_set_protocol(r, spec.protocol ?? (forDelete ? RTPROT.unspec : RTPROT.boot));
    const scope = spec.scope ??
      (forDelete
        ? RT_SCOPE.nowhere
        : spec.gw || spec.family === 6 || !spec.dev
        ? RT_SCOPE.universe
        : RT_SCOPE.link);
    rt.rtnl_route_set_scope(r, scope);
    if (spec.metric !== undefined) rt.rtnl_route_set_priority(r, spec.metric);
    if (spec.src) {
      const src = nlAddr(spec.src);
      rt.rtnl_route_set_pref_src(r, src);
      nl.nl_addr_put(src);
    }
    if (spec.dev || spec.gw) {
      const nh = mustPtr(rt.rtnl_route_nh_alloc(), what);
      if (spec.dev) rt.rtnl_route_nh_set_ifindex(nh, this.#ifindex(spec.dev, what));
      if (spec.gw) {
        const gw = nlAddr(spec.gw);
        rt.rtnl_route_nh_set_gateway(nh, gw);
        nl.nl_addr_put(gw);
      }
      rt.rtnl_route_add_nexthop(r, nh);
    }
    return r;
  }

  async addRoute(spec: RouteSpec, replace = false): Promise<void> {
    const { rt } = libnl();
    const what = `${replace ? "replace" : "add"} route ${describeRoute(spec)}`;
    const r = this.#routeObject(spec, what, false);
    const flags = replace ? NLM_F.create | NLM_F.replace : CREATE_EXCL;
    try {
      this.#built(what, (out) => rt.rtnl_route_build_add_request(r, flags, out));
    } finally {
      rt.rtnl_route_put(r);
    }
  }

  async delRoute(spec: RouteSpec): Promise<void> {
    const { rt } = libnl();
    const what = `delete route ${describeRoute(spec)}`;
    const r = this.#routeObject(spec, what, true);
    try {
      this.#built(what, (out) => rt.rtnl_route_build_del_request(r, 0, out));
    } finally {
      rt.rtnl_route_put(r);
    }
  }

  #ruleObject(spec: RuleSpec, what: string): Ptr {
    const { nl, rt } = libnl();
    const r = mustPtr(rt.rtnl_rule_alloc(), what);
    rt.rtnl_rule_set_family(r, afOf(spec.family));
    rt.rtnl_rule_set_prio(r, spec.priority);
    rt.rtnl_rule_set_table(r, spec.table);
    rt.rtnl_rule_set_action(r, FR_ACT_TO_TBL);
    if (spec.src) {
      const { ip, len } = splitCidr(spec.src);
      const src = nlAddr(ip, len);
      rt.rtnl_rule_set_src(r, src);
      nl.nl_addr_put(src);
    }
    if (spec.dst) {
      const { ip, len } = splitCidr(spec.dst);
      const dst = nlAddr(ip, len);
      rt.rtnl_rule_set_dst(r, dst);
      nl.nl_addr_put(dst);
    }
    if (spec.fwmark !== undefined) {
      rt.rtnl_rule_set_mark(r, spec.fwmark);
      rt.rtnl_rule_set_mask(r, spec.fwmask ?? 0xffffffff);
    }
    return r;
  }

  async addRule(spec: RuleSpec): Promise<void> {
    const { rt } = libnl();
    const what = `add rule ${describeRule(spec)}`;
    const r = this.#ruleObject(spec, what);
    try {
      this.#built(what, (out) => rt.rtnl_rule_build_add_request(r, CREATE_EXCL, out));
    } finally {
      rt.rtnl_rule_put(r);
    }
  }

  async delRule(spec: RuleSpec): Promise<void> {
    const { rt } = libnl();
    const what = `delete rule ${describeRule(spec)}`;
    const r = this.#ruleObject(spec, what);
    try {
      this.#built(what, (out) => rt.rtnl_rule_build_delete_request(r, 0, out));
    } finally {
      rt.rtnl_rule_put(r);
    }
  }

  #neighObject(spec: NeighSpec, what: string): Ptr {
    const { nl, rt } = libnl();
    const n = mustPtr(rt.rtnl_neigh_alloc(), what);
    rt.rtnl_neigh_set_ifindex(n, this.#ifindex(spec.dev, what));
    rt.rtnl_neigh_set_family(n, afOf(spec.family));
    const dst = nlAddr(spec.dst);
    rt.rtnl_neigh_set_dst(n, dst);
    nl.nl_addr_put(dst);
    if (spec.lladdr) {
      const ll = llAddr(spec.lladdr);
      rt.rtnl_neigh_set_lladdr(n, ll);
      nl.nl_addr_put(ll);
    }
    if (spec.state !== undefined) rt.rtnl_neigh_set_state(n, spec.state);
    return n;
  }

  async addNeigh(spec: NeighSpec): Promise<void> {
    const { rt } = libnl();
    const what = `add neighbour ${spec.dst} lladdr ${spec.lladdr} dev ${spec.dev}`;
    const n = this.#neighObject(spec, what);
    try {
      this.#built(what, (out) => rt.rtnl_neigh_build_add_request(n, NLM_F.create | NLM_F.replace, out));
    } finally {
      rt.rtnl_neigh_put(n);
    }
  }

  async delNeigh(spec: NeighSpec): Promise<void> {
    const { rt } = libnl();
    const what = `delete neighbour ${spec.dst} dev ${spec.dev}`;
    const n = this.#neighObject({ ...spec, lladdr: undefined, state: undefined }, what);
    try {
      this.#built(what, (out) => rt.rtnl_neigh_build_delete_request(n, 0, out));
    } finally {
      rt.rtnl_neigh_put(n);
    }
  }
}

class DumpInterrupted extends Error {}

/** Opens a route-netlink socket in the calling thread's namespace and turns on exact error reports. */
function connect(): Ptr {
  const { nl } = libnl();
  const sk = mustPtr(nl.nl_socket_alloc(), "nl_socket_alloc");
  const rc = nl.nl_connect(sk, NETLINK_ROUTE);
  if (rc < 0) {
    nl.nl_socket_free(sk);
    throw new NetError("open a route netlink socket", 0, nlErrorText(rc));
  }
  const fd = nl.nl_socket_get_fd(sk);
  const one = new Int32Array([1]);
  const bytes = new Uint8Array(one.buffer);
  // Extended acks name the failing attribute; capped acks do not echo the request back; strict checking lets
  // a dump filter by table. Older kernels refuse some of these: then errors are just less detailed.
  for (const opt of [NETLINK_EXT_ACK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK]) {
    if (libc().setsockopt(fd, SOL_NETLINK, opt, bytes, 4) !== 0) errno();
  }
  // One receive per datagram: the kernel never sends a dump part larger than 32 KiB, so a 64 KiB buffer needs
  // no MSG_PEEK round trip to size it.
  nl.nl_socket_set_msg_buf_size(sk, 65536n);
  nl.nl_socket_set_buffer_size(sk, 1 << 20, 1 << 20);
  return sk;
}
