// The plain data of the network layer: links, addresses, routes, rules and neighbours as read from a network
// namespace, the specifications used to create or delete them, and NetError, the one error every backend
// (netlink through libnl, or iproute2 as the fallback) throws with the kernel's errno and message.

import type { Family } from "../ip/mod.ts";

export type { Family };

/** Kernel constants used across the layer (uapi values; names as in the kernel headers). */
export const RT_TABLE = { unspec: 0, default: 253, main: 254, local: 255 } as const;
export const RT_SCOPE = { universe: 0, site: 200, link: 253, host: 254, nowhere: 255 } as const;
export const RTPROT = { unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4 } as const;
export const RTN = { unicast: 1, local: 2, broadcast: 3, anycast: 4, multicast: 5, blackhole: 6 } as const;
export const NUD = {
  incomplete: 0x01,
  reachable: 0x02,
  stale: 0x04,
  delay: 0x08,
  probe: 0x10,
  failed: 0x20,
} as const;
export const NUD_NOARP = 0x40;
export const NUD_PERMANENT = 0x80;
export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;
export const IFF_LOWER_UP = 0x10000;
export const AF_INET = 2;
export const AF_INET6 = 10;

export function afOf(family: Family): number {
  return family === 4 ? AF_INET : AF_INET6;
}

/** A network interface as the kernel reports it. */
export interface LinkInfo {
  index: number;
  name: string;
  /** IFF_* flags. */
  flags: number;
  /** Hardware address as "aa:bb:cc:dd:ee:ff" (empty for links without one, e.g. lo's zeros are kept). */
  mac: string;
  mtu: number;
  txqlen: number;
  /** `IFLA_INFO_KIND`: "veth", "bridge", "vlan", "bond", ... (undefined for physical NICs and lo). */
  kind?: string;
  /** `IFLA_LINK`: for a veth the peer's ifindex, for a VLAN its parent's (in the namespace of `linkNetnsId`). */
  link?: number;
  /** `IFLA_LINK_NETNSID`: set when `link` lives in another namespace. */
  linkNetnsId?: number;
  /** `IFLA_MASTER`: the bridge or bond this link is enslaved to. */
  master?: number;
  /** VLAN id, for kind "vlan". */
  vlanId?: number;
}

export interface AddrInfo {
  index: number;
  family: Family;
  /** The address without prefix. */
  address: string;
  prefixLen: number;
  scope: number;
  /** IFA_F_* flags (tentative, dadfailed, permanent, ...). */
  flags: number;
}

export interface NextHop {
  ifindex: number;
  gw?: string;
}

export interface RouteInfo {
  family: Family;
  /** Destination in CIDR form; "0.0.0.0/0" or "::/0" for a default route. */
  dst: string;
  table: number;
  scope: number;
  protocol: number;
  type: number;
  /** Output interface (single-path routes). */
  ifindex?: number;
  gw?: string;
  /** Preferred source (`src` in `ip route`). */
  src?: string;
  /** Metric (`RTA_PRIORITY`); IPv6 routes always carry one. */
  metric?: number;
  /** Nexthops of a multipath route (the kernel merges IPv6 default routes of several links into one). */
  multipath?: NextHop[];
}

export interface RuleInfo {
  family: Family;
  priority: number;
  table: number;
  /** FR_ACT_* action; 1 = lookup a table. */
  action: number;
  /** Source selector in CIDR form; undefined = all. */
  src?: string;
  dst?: string;
  fwmark?: number;
  fwmask?: number;
  iifname?: string;
  oifname?: string;
}

export interface NeighInfo {
  family: Family;
  ifindex: number;
  dst: string;
  lladdr?: string;
  /** NUD_* state. */
  state: number;
}

/** What to create or delete: devices by name, addresses in text (validated by the caller). */
export interface RouteSpec {
  family: Family;
  /** CIDR; "0.0.0.0/0" / "::/0" for the default route. */
  dst: string;
  table: number;
  /** Output device name; absent for a route defined by its gateway alone. */
  dev?: string;
  gw?: string;
  scope?: number;
  src?: string;
  metric?: number;
  protocol?: number;
}

export interface RuleSpec {
  family: Family;
  priority: number;
  table: number;
  /** CIDR, e.g. "192.0.2.5/32"; absent = from all. */
  src?: string;
  /** CIDR of the destination selector (`to`); absent = to all. */
  dst?: string;
  fwmark?: number;
  fwmask?: number;
}

export interface NeighSpec {
  family: Family;
  dev: string;
  dst: string;
  lladdr?: string;
  /** NUD state; NUD_PERMANENT for static entries. */
  state?: number;
}

export interface VethSpec {
  name: string;
  mac?: string;
  mtu?: number;
  /** The peer is created directly inside the given namespace. */
  peer: { name: string; mac?: string };
}

/** Attribute changes of an existing link; absent fields stay as they are. */
export interface LinkChange {
  up?: boolean;
  mtu?: number;
  mac?: string;
  txqlen?: number;
  /** Enslave to this link (bond or bridge); null releases it from its master. */
  master?: string | null;
}

export interface VlanSpec {
  name: string;
  parent: string;
  vlanId: number;
}

/** Bond options in the kernel's terms (IFLA_BOND_*), resolved: interfaces by name, MACs and IPs in text. */
export interface BondOptions {
  activeSlave?: string;
  adActorSysPrio?: number;
  adActorSystem?: string;
  adSelect?: number;
  adUserPortKey?: number;
  allSlavesActive?: number;
  arpInterval?: number;
  arpIpTargets?: string[];
  arpValidate?: number;
  arpAllTargets?: number;
  downDelay?: number;
  failOverMac?: number;
  lacpRate?: number;
  miimon?: number;
  minLinks?: number;
  packetsPerSlave?: number;
  primary?: string;
  primaryReselect?: number;
  tlbDynamicLb?: number;
  upDelay?: number;
  useCarrier?: number;
  xmitHashPolicy?: number;
  lpInterval?: number;
  resendIgmp?: number;
  peerNotifDelay?: number;
}

export interface BondSpec {
  name: string;
  /** 0 balance-rr … 6 balance-alb. */
  mode: number;
  options: BondOptions;
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  13: "EACCES",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  34: "ERANGE",
  93: "EPROTONOSUPPORT",
  95: "EOPNOTSUPP",
  97: "EAFNOSUPPORT",
  99: "EADDRNOTAVAIL",
  101: "ENETUNREACH",
  113: "EHOSTUNREACH",
};

const ERRNO_TEXT: Record<number, string> = {
  1: "Operation not permitted",
  2: "No such file or directory",
  3: "No such process",
  13: "Permission denied",
  16: "Device or resource busy",
  17: "File exists",
  19: "No such device",
  22: "Invalid argument",
  34: "Numerical result out of range",
  93: "Protocol not supported",
  95: "Operation not supported",
  97: "Address family not supported by protocol",
  99: "Cannot assign requested address",
  101: "Network is unreachable",
  113: "No route to host",
};

export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  EOPNOTSUPP: 95,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
} as const;

/** The C library's text for an errno. */
export function errnoText(errno: number): string {
  return ERRNO_TEXT[errno] ?? `error ${errno}`;
}

/**
 * A failed network operation: `what` names the operation and its object (e.g. `add route 192.0.2.0/24 dev
 * eth0 table 101`), `errno` is the kernel's answer, `detail` the kernel's extended message when it sent one.
 */
export class NetError extends Error {
  readonly what: string;
  readonly errno: number;
  readonly detail: string;

  constructor(what: string, errno: number, detail = "") {
    super(errno === 0 ? `${what}: ${detail}` : `${what}: ${errnoText(errno)}${detail ? ` (${detail})` : ""}`);
    this.name = "NetError";
    this.what = what;
    this.errno = errno;
    this.detail = detail;
  }

  /** The errno's symbolic name, e.g. "EEXIST". */
  get code(): string {
    return ERRNO_NAMES[this.errno] ?? `E${this.errno}`;
  }

  /** The object already exists (EEXIST). */
  get exists(): boolean {
    return this.errno === ERRNO.EEXIST;
  }

  /** The object (or the device it refers to) is already gone. */
  get gone(): boolean {
    return this.errno === ERRNO.ENOENT || this.errno === ERRNO.ESRCH || this.errno === ERRNO.ENODEV ||
      this.errno === ERRNO.EADDRNOTAVAIL;
  }
}
