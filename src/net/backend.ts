// What the rest of the project asks of one network namespace: read its links, addresses, routes, rules and
// neighbours, and change them. Two implementations: netlink through libnl (netlink.ts, the normal path) and
// iproute2 commands (iproute.ts, when libnl cannot be loaded or is switched off). Both throw NetError.

import type {
  AddrInfo,
  BondSpec,
  Family,
  LinkChange,
  LinkInfo,
  NeighInfo,
  NeighSpec,
  RouteInfo,
  RouteSpec,
  RuleInfo,
  RuleSpec,
  VethSpec,
  VlanSpec,
} from "./types.ts";

export type BackendKind = "netlink" | "iproute";

export interface NetNs {
  readonly backend: BackendKind;
  /** The namespace file this handle works in; undefined for the process's own namespace. */
  readonly path: string | undefined;

  links(): Promise<LinkInfo[]>;
  /** Addresses of every link (of one family when given). */
  addrs(family?: Family): Promise<AddrInfo[]>;
  /** Routes of every table, or of `table` only. */
  routes(family?: Family, table?: number): Promise<RouteInfo[]>;
  rules(family?: Family): Promise<RuleInfo[]>;
  neighs(family?: Family): Promise<NeighInfo[]>;
  /** The route the kernel would use toward `dst` (`ip route get`); undefined when it has none. */
  routeGet(dst: string): Promise<RouteInfo | undefined>;
  /** A sysctl of this namespace by dotted key ("net.ipv4.conf.all.rp_filter"); undefined when absent. */
  readSysctl(key: string): Promise<string | undefined>;
  writeSysctl(key: string, value: string): Promise<void>;

  /** Creates a veth pair here whose peer is created directly in `peerNs`. */
  addVeth(spec: VethSpec, peerNs: NetNs): Promise<void>;
  setLink(name: string, change: LinkChange): Promise<void>;
  delLink(name: string): Promise<void>;
  addVlan(spec: VlanSpec): Promise<void>;
  /** Creates a bond with its mode and options (the active slave is set later, once enslaved). */
  addBond(spec: BondSpec): Promise<void>;
  setBondActiveSlave(bond: string, slave: string): Promise<void>;
  /** `cidr` is the address with its prefix, e.g. "192.0.2.5/32". */
  addAddr(dev: string, cidr: string, scope?: number): Promise<void>;
  delAddr(dev: string, cidr: string): Promise<void>;
  /** Adds a route; with `replace`, takes the place of a route with the same destination, metric and table. */
  addRoute(spec: RouteSpec, replace?: boolean): Promise<void>;
  delRoute(spec: RouteSpec): Promise<void>;
  addRule(spec: RuleSpec): Promise<void>;
  delRule(spec: RuleSpec): Promise<void>;
  /** Adds or replaces a neighbour entry. */
  addNeigh(spec: NeighSpec): Promise<void>;
  delNeigh(spec: NeighSpec): Promise<void>;
  /** Closes the handle's sockets and descriptors. */
  close(): void;
}
