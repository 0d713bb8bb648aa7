// The netlink wire format, as pure functions: message framing, attributes (TLVs), the rtnetlink headers, the
// requests the layer builds itself (dumps, route lookups, VLAN and bond links) and the parsers of the kernel's
// answers into the plain data of types.ts. No I/O: the backends move these bytes, the tests read them.

import { formatIP, parseIP } from "../ip/mod.ts";
import { parseIPv4 } from "../ip/address.ts";
import {
  type AddrInfo,
  AF_INET,
  AF_INET6,
  type BondSpec,
  type Family,
  type LinkInfo,
  type NeighInfo,
  type NextHop,
  type RouteInfo,
  type RuleInfo,
  type VlanSpec,
} from "./types.ts";

export const NLMSG = { noop: 1, error: 2, done: 3, overrun: 4 } as const;
export const RTM = {
  newLink: 16,
  delLink: 17,
  getLink: 18,
  newAddr: 20,
  delAddr: 21,
  getAddr: 22,
  newRoute: 24,
  delRoute: 25,
  getRoute: 26,
  newNeigh: 28,
  delNeigh: 29,
  getNeigh: 30,
  newRule: 32,
  delRule: 33,
  getRule: 34,
} as const;
export const NLM_F = {
  request: 0x1,
  multi: 0x2,
  ack: 0x4,
  dumpIntr: 0x10,
  dump: 0x300,
  replace: 0x100,
  excl: 0x200,
  create: 0x400,
  /** In an NLMSG_ERROR: the request was not echoed (NETLINK_CAP_ACK). */
  capped: 0x100,
  /** In an NLMSG_ERROR: extended-ack TLVs follow. */
  ackTlvs: 0x200,
} as const;

export const IFLA = {
  address: 1,
  ifname: 3,
  mtu: 4,
  link: 5,
  master: 10,
  txqlen: 13,
  linkinfo: 18,
  netNsFd: 28,
  linkNetnsId: 37,
} as const;
export const IFLA_INFO = { kind: 1, data: 2 } as const;
export const IFLA_VLAN = { id: 1, protocol: 5 } as const;
/** IFLA_BOND_* (include/uapi/linux/if_link.h). */
export const IFLA_BOND = {
  mode: 1,
  activeSlave: 2,
  miimon: 3,
  updelay: 4,
  downdelay: 5,
  useCarrier: 6,
  arpInterval: 7,
  arpIpTarget: 8,
  arpValidate: 9,
  arpAllTargets: 10,
  primary: 11,
  primaryReselect: 12,
  failOverMac: 13,
  xmitHashPolicy: 14,
  resendIgmp: 15,
  numPeerNotif: 16,
  allSlavesActive: 17,
  minLinks: 18,
  lpInterval: 19,
  packetsPerSlave: 20,
  adLacpRate: 21,
  adSelect: 22,
  adActorSysPrio: 24,
  adUserPortKey: 25,
  adActorSystem: 26,
  tlbDynamicLb: 27,
  peerNotifDelay: 28,
} as const;
export const IFA = { address: 1, local: 2, flags: 8 } as const;
export const RTA = {
  dst: 1,
  src: 2,
  oif: 4,
  gateway: 5,
  priority: 6,
  prefsrc: 7,
  multipath: 9,
  table: 15,
} as const;
export const FRA = {
  dst: 1,
  src: 2,
  iifname: 3,
  priority: 6,
  fwmark: 10,
  table: 15,
  fwmask: 16,
  oifname: 17,
} as const;
export const NDA = { dst: 1, lladdr: 2 } as const;
const NLA_TYPE_MASK = 0x3fff;
const NLA_F_NESTED = 0x8000;
const NLMSGERR_ATTR_MSG = 1;

/** One netlink message: the header fields and the payload after the 16-byte header. */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  body: Uint8Array;
}

const align4 = (n: number) => (n + 3) & ~3;

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) out.set(p, off), off += p.length;
  return out;
}

/** Frames `body` as one message (header in host byte order, as netlink requires). */
export function encodeMessage(
  type: number,
  flags: number,
  seq: number,
  pid: number,
  body: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(align4(16 + body.length));
  const v = view(out);
  v.setUint32(0, 16 + body.length, true);
  v.setUint16(4, type, true);
  v.setUint16(6, flags, true);
  v.setUint32(8, seq, true);
  v.setUint32(12, pid, true);
  out.set(body, 16);
  return out;
}

/** Splits a datagram into its messages; a truncated trailing message is an error. */
export function parseMessages(buf: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  const v = view(buf);
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = v.getUint32(off, true);
    if (len < 16 || off + len > buf.length) {
      throw new Error(`malformed netlink message at byte ${off}: length ${len} of ${buf.length - off} left`);
    }
    out.push({
      type: v.getUint16(off + 4, true),
      flags: v.getUint16(off + 6, true),
      seq: v.getUint32(off + 8, true),
      pid: v.getUint32(off + 12, true),
      body: buf.subarray(off + 16, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** One attribute: type, then the payload padded to 4 bytes. */
export function attr(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(align4(4 + payload.length));
  const v = view(out);
  v.setUint16(0, 4 + payload.length, true);
  v.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

export function u8Attr(type: number, n: number): Uint8Array {
  return attr(type, Uint8Array.of(n));
}

export function u16Attr(type: number, n: number): Uint8Array {
  const p = new Uint8Array(2);
  view(p).setUint16(0, n, true);
  return attr(type, p);
}

export function u32Attr(type: number, n: number): Uint8Array {
  const p = new Uint8Array(4);
  view(p).setUint32(0, n >>> 0, true);
  return attr(type, p);
}

export function strAttr(type: number, s: string): Uint8Array {
  return attr(type, new TextEncoder().encode(s + "\0"));
}

export function nested(type: number, ...children: Uint8Array[]): Uint8Array {
  return attr(type | NLA_F_NESTED, concat(...children));
}

/** Every attribute in `buf` from `start`, in order (nested flag masked off the type). */
export function parseAttrList(buf: Uint8Array, start = 0): { type: number; data: Uint8Array }[] {
  const out: { type: number; data: Uint8Array }[] = [];
  const v = view(buf);
  let off = start;
  while (off + 4 <= buf.length) {
    const len = v.getUint16(off, true);
    if (len < 4 || off + len > buf.length) break;
    out.push({ type: v.getUint16(off + 2, true) & NLA_TYPE_MASK, data: buf.subarray(off + 4, off + len) });
    off += align4(len);
  }
  return out;
}

/** Attributes by type (the last one wins, as in the kernel's parser). */
export function parseAttrs(buf: Uint8Array, start = 0): Map<number, Uint8Array> {
  return new Map(parseAttrList(buf, start).map((a) => [a.type, a.data]));
}

export function readU8(d: Uint8Array | undefined): number | undefined {
  return d && d.length >= 1 ? d[0] : undefined;
}
export function readU16(d: Uint8Array | undefined): number | undefined {
  return d && d.length >= 2 ? view(d).getUint16(0, true) : undefined;
}
export function readU32(d: Uint8Array | undefined): number | undefined {
  return d && d.length >= 4 ? view(d).getUint32(0, true) : undefined;
}
export function readStr(d: Uint8Array | undefined): string | undefined {
  if (!d) return undefined;
  const nul = d.indexOf(0);
  return new TextDecoder().decode(nul < 0 ? d : d.subarray(0, nul));
}

/** Network-order bytes of an address (validated by src/ip: anything else throws there). */
export function ipBytes(text: string, family?: Family): Uint8Array {
  if (family !== 6 && !text.includes(":")) {
    // The common case without bigints (≈ 10× faster; it runs several times per route).
    const n = parseIPv4(text);
    return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  }
  const { family: f, value } = parseIP(text, family);
  const out = new Uint8Array(f === 4 ? 4 : 16);
  let v = value;
  for (let i = out.length - 1; i >= 0; i--) out[i] = Number(v & 0xffn), v >>= 8n;
  return out;
}

/** Text of a 4- or 16-byte network-order address. */
export function ipText(b: Uint8Array): string {
  let v = 0n;
  for (const byte of b) v = (v << 8n) | BigInt(byte);
  return formatIP(b.length === 4 ? 4 : 6, v);
}

/** Parses "aa:bb:cc:dd:ee:ff" (also "-" separated); throws on anything else. */
export function macBytes(text: string): Uint8Array {
  const m = /^([0-9a-fA-F]{2})([:-][0-9a-fA-F]{2}){5}$/.exec(text);
  if (!m) throw new Error(`invalid MAC address ${JSON.stringify(text)}; expected e.g. 0a:1b:2c:3d:4e:5f`);
  return Uint8Array.from(text.split(/[:-]/).map((h) => parseInt(h, 16)));
}

export function macText(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

function familyOfAf(af: number): Family | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

/** `struct ifinfomsg`. */
export function ifinfomsg(
  o: { family?: number; type?: number; index?: number; flags?: number; change?: number },
) {
  const b = new Uint8Array(16);
  const v = view(b);
  b[0] = o.family ?? 0;
  v.setUint16(2, o.type ?? 0, true);
  v.setInt32(4, o.index ?? 0, true);
  v.setUint32(8, o.flags ?? 0, true);
  v.setUint32(12, o.change ?? 0, true);
  return b;
}

/** `struct rtmsg`. */
export function rtmsg(o: {
  family: number;
  dstLen?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
  flags?: number;
}): Uint8Array {
  const b = new Uint8Array(12);
  b[0] = o.family;
  b[1] = o.dstLen ?? 0;
  b[4] = o.table ?? 0;
  b[5] = o.protocol ?? 0;
  b[6] = o.scope ?? 0;
  b[7] = o.type ?? 0;
  view(b).setUint32(8, o.flags ?? 0, true);
  return b;
}

/** Body of a link dump request. */
export function linkDumpBody(): Uint8Array {
  return ifinfomsg({});
}

/** Body of an RTM_GETLINK request for one link by name. */
export function linkGetBody(name: string): Uint8Array {
  return concat(ifinfomsg({}), strAttr(IFLA.ifname, name));
}

/** Body of an address dump request for one family (0 = both). */
export function addrDumpBody(af = 0): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = af;
  return b;
}

/** Body of a route dump request; with `table`, a strict-checking kernel returns that table only. */
export function routeDumpBody(af: number, table?: number): Uint8Array {
  if (table === undefined) return rtmsg({ family: af });
  return concat(rtmsg({ family: af, table: table < 256 ? table : 0 }), u32Attr(RTA.table, table));
}

/** Body of a rule dump request. */
export function ruleDumpBody(af: number): Uint8Array {
  return rtmsg({ family: af });
}

/** Body of a neighbour dump request. */
export function neighDumpBody(af: number): Uint8Array {
  const b = new Uint8Array(12);
  b[0] = af;
  return b;
}

/** Body of an RTM_GETROUTE lookup of one destination (what `ip route get DST` sends). */
export function routeGetBody(dst: string): Uint8Array {
  const bytes = ipBytes(dst);
  const af = bytes.length === 4 ? AF_INET : AF_INET6;
  return concat(rtmsg({ family: af, dstLen: bytes.length * 8 }), attr(RTA.dst, bytes));
}

/** RTM_NEWLINK body creating a VLAN sub-interface of the link with index `parentIndex`. */
export function newVlanBody(spec: VlanSpec, parentIndex: number): Uint8Array {
  return concat(
    ifinfomsg({}),
    strAttr(IFLA.ifname, spec.name),
    u32Attr(IFLA.link, parentIndex),
    nested(
      IFLA.linkinfo,
      strAttr(IFLA_INFO.kind, "vlan"),
      nested(IFLA_INFO.data, u16Attr(IFLA_VLAN.id, spec.vlanId)),
    ),
  );
}

/**
 * RTM_NEWLINK body creating a bond with its mode and options. `ifindex` resolves `primary` (and, when set on
 * an existing bond, `activeSlave`); integer options are sent only when > 0, as upstream does.
 */
export function newBondBody(spec: BondSpec, ifindex: (name: string) => number): Uint8Array {
  return concat(
    ifinfomsg({}),
    strAttr(IFLA.ifname, spec.name),
    nested(
      IFLA.linkinfo,
      strAttr(IFLA_INFO.kind, "bond"),
      nested(IFLA_INFO.data, ...bondDataAttrs(spec, ifindex)),
    ),
  );
}

/** RTM_NEWLINK body changing the active slave of an existing bond (valid only once the slave is enslaved). */
export function bondActiveSlaveBody(bondIndex: number, slaveIndex: number): Uint8Array {
  return concat(
    ifinfomsg({ index: bondIndex }),
    nested(
      IFLA.linkinfo,
      strAttr(IFLA_INFO.kind, "bond"),
      nested(IFLA_INFO.data, u32Attr(IFLA_BOND.activeSlave, slaveIndex)),
    ),
  );
}

/** The IFLA_INFO_DATA attributes of a new bond, in IFLA_BOND_* order. */
export function bondDataAttrs(spec: BondSpec, ifindex: (name: string) => number): Uint8Array[] {
  const o = spec.options;
  const out: Uint8Array[] = [u8Attr(IFLA_BOND.mode, spec.mode)];
  const pos = (n: number | undefined): n is number => n !== undefined && n > 0;
  if (pos(o.miimon)) out.push(u32Attr(IFLA_BOND.miimon, o.miimon));
  if (pos(o.upDelay)) out.push(u32Attr(IFLA_BOND.updelay, o.upDelay));
  if (pos(o.downDelay)) out.push(u32Attr(IFLA_BOND.downdelay, o.downDelay));
  if (pos(o.useCarrier)) out.push(u8Attr(IFLA_BOND.useCarrier, o.useCarrier));
  if (pos(o.arpInterval)) out.push(u32Attr(IFLA_BOND.arpInterval, o.arpInterval));
  if (o.arpIpTargets?.length) {
    out.push(nested(IFLA_BOND.arpIpTarget, ...o.arpIpTargets.map((ip, i) => attr(i, ipBytes(ip, 4)))));
  }
  if (pos(o.arpValidate)) out.push(u32Attr(IFLA_BOND.arpValidate, o.arpValidate));
  if (pos(o.arpAllTargets)) out.push(u32Attr(IFLA_BOND.arpAllTargets, o.arpAllTargets));
  if (o.primary) out.push(u32Attr(IFLA_BOND.primary, ifindex(o.primary)));
  if (pos(o.primaryReselect)) out.push(u8Attr(IFLA_BOND.primaryReselect, o.primaryReselect));
  if (pos(o.failOverMac)) out.push(u8Attr(IFLA_BOND.failOverMac, o.failOverMac));
  if (pos(o.xmitHashPolicy)) out.push(u8Attr(IFLA_BOND.xmitHashPolicy, o.xmitHashPolicy));
  if (pos(o.resendIgmp)) out.push(u32Attr(IFLA_BOND.resendIgmp, o.resendIgmp));
  if (pos(o.allSlavesActive)) out.push(u8Attr(IFLA_BOND.allSlavesActive, o.allSlavesActive));
  if (pos(o.minLinks)) out.push(u32Attr(IFLA_BOND.minLinks, o.minLinks));
  if (pos(o.lpInterval)) out.push(u32Attr(IFLA_BOND.lpInterval, o.lpInterval));
  if (pos(o.packetsPerSlave)) out.push(u32Attr(IFLA_BOND.packetsPerSlave, o.packetsPerSlave));
  if (pos(o.lacpRate)) out.push(u8Attr(IFLA_BOND.adLacpRate, o.lacpRate));
  if (pos(o.adSelect)) out.push(u8Attr(IFLA_BOND.adSelect, o.adSelect));
  if (pos(o.adActorSysPrio)) out.push(u16Attr(IFLA_BOND.adActorSysPrio, o.adActorSysPrio));
  if (pos(o.adUserPortKey)) out.push(u16Attr(IFLA_BOND.adUserPortKey, o.adUserPortKey));
  if (o.adActorSystem) out.push(attr(IFLA_BOND.adActorSystem, macBytes(o.adActorSystem)));
  if (pos(o.tlbDynamicLb)) out.push(u8Attr(IFLA_BOND.tlbDynamicLb, o.tlbDynamicLb));
  if (pos(o.peerNotifDelay)) out.push(u32Attr(IFLA_BOND.peerNotifDelay, o.peerNotifDelay));
  return out;
}

/**
 * The answer in an NLMSG_ERROR message: errno 0 is an acknowledgement; `detail` is the kernel's extended-ack
 * text when it sent one (NETLINK_EXT_ACK).
 */
export function parseAck(msg: NlMessage): { errno: number; detail: string } {
  const v = view(msg.body);
  const errno = Math.abs(v.getInt32(0, true));
  let detail = "";
  if (msg.flags & NLM_F.ackTlvs) {
    // The echoed request follows: its header only when capped, else the whole message.
    const echoedLen = msg.flags & NLM_F.capped ? 16 : v.getUint32(4, true);
    detail = readStr(parseAttrs(msg.body, 4 + align4(echoedLen)).get(NLMSGERR_ATTR_MSG)) ?? "";
  }
  return { errno, detail };
}

/** A link from an RTM_NEWLINK message body. */
export function parseLinkMsg(body: Uint8Array): LinkInfo {
  const v = view(body);
  const a = parseAttrs(body, 16);
  const info = a.get(IFLA.linkinfo) ? parseAttrs(a.get(IFLA.linkinfo)!) : undefined;
  const kind = readStr(info?.get(IFLA_INFO.kind));
  const data = info?.get(IFLA_INFO.data) ? parseAttrs(info.get(IFLA_INFO.data)!) : undefined;
  const addr = a.get(IFLA.address);
  const link: LinkInfo = {
    index: v.getInt32(4, true),
    name: readStr(a.get(IFLA.ifname)) ?? "",
    flags: v.getUint32(8, true),
    mac: addr && addr.length === 6 ? macText(addr) : "",
    mtu: readU32(a.get(IFLA.mtu)) ?? 0,
    txqlen: readU32(a.get(IFLA.txqlen)) ?? 0,
  };
  if (kind) link.kind = kind;
  const peer = readU32(a.get(IFLA.link));
  if (peer !== undefined && peer !== 0) link.link = peer;
  const nsid = a.get(IFLA.linkNetnsId);
  if (nsid) link.linkNetnsId = view(nsid).getInt32(0, true);
  const master = readU32(a.get(IFLA.master));
  if (master) link.master = master;
  if (kind === "vlan") link.vlanId = readU16(data?.get(IFLA_VLAN.id));
  return link;
}

/** An address from an RTM_NEWADDR message body; undefined for families other than IPv4/IPv6. */
export function parseAddrMsg(body: Uint8Array): AddrInfo | undefined {
  const family = familyOfAf(body[0]);
  if (!family) return undefined;
  const a = parseAttrs(body, 8);
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer's on point-to-point links.
  const raw = a.get(IFA.local) ?? a.get(IFA.address);
  if (!raw) return undefined;
  return {
    index: view(body).getUint32(4, true),
    family,
    address: ipText(raw),
    prefixLen: body[1],
    scope: body[3],
    flags: readU32(a.get(IFA.flags)) ?? body[2],
  };
}

/** A route from an RTM_NEWROUTE message body; undefined for families other than IPv4/IPv6. */
export function parseRouteMsg(body: Uint8Array): RouteInfo | undefined {
  const family = familyOfAf(body[0]);
  if (!family) return undefined;
  const a = parseAttrs(body, 12);
  const dst = a.get(RTA.dst);
  const route: RouteInfo = {
    family,
    dst: `${dst ? ipText(dst) : family === 4 ? "0.0.0.0" : "::"}/${body[1]}`,
    table: readU32(a.get(RTA.table)) ?? body[4],
    protocol: body[5],
    scope: body[6],
    type: body[7],
  };
  const oif = readU32(a.get(RTA.oif));
  if (oif !== undefined) route.ifindex = oif;
  const gw = a.get(RTA.gateway);
  if (gw) route.gw = ipText(gw);
  const src = a.get(RTA.prefsrc);
  if (src) route.src = ipText(src);
  const metric = readU32(a.get(RTA.priority));
  if (metric !== undefined) route.metric = metric;
  const mp = a.get(RTA.multipath);
  if (mp) route.multipath = parseMultipath(mp);
  return route;
}

function parseMultipath(buf: Uint8Array): NextHop[] {
  const out: NextHop[] = [];
  const v = view(buf);
  let off = 0;
  while (off + 8 <= buf.length) {
    const len = v.getUint16(off, true);
    if (len < 8 || off + len > buf.length) break;
    const hop: NextHop = { ifindex: v.getInt32(off + 4, true) };
    const gw = parseAttrs(buf.subarray(off, off + len), 8).get(RTA.gateway);
    if (gw) hop.gw = ipText(gw);
    out.push(hop);
    off += align4(len);
  }
  return out;
}

/** A rule from an RTM_NEWRULE message body. */
export function parseRuleMsg(body: Uint8Array): RuleInfo | undefined {
  const family = familyOfAf(body[0]);
  if (!family) return undefined;
  const a = parseAttrs(body, 12);
  const rule: RuleInfo = {
    family,
    priority: readU32(a.get(FRA.priority)) ?? 0,
    table: readU32(a.get(FRA.table)) ?? body[4],
    action: body[7],
  };
  const src = a.get(FRA.src);
  if (src) rule.src = `${ipText(src)}/${body[2]}`;
  const dst = a.get(FRA.dst);
  if (dst) rule.dst = `${ipText(dst)}/${body[1]}`;
  const mark = readU32(a.get(FRA.fwmark));
  if (mark !== undefined) rule.fwmark = mark;
  const mask = readU32(a.get(FRA.fwmask));
  if (mask !== undefined) rule.fwmask = mask;
  const iif = readStr(a.get(FRA.iifname));
  if (iif) rule.iifname = iif;
  const oif = readStr(a.get(FRA.oifname));
  if (oif) rule.oifname = oif;
  return rule;
}

/** A neighbour entry from an RTM_NEWNEIGH message body. */
export function parseNeighMsg(body: Uint8Array): NeighInfo | undefined {
  const family = familyOfAf(body[0]);
  if (!family) return undefined;
  const v = view(body);
  const a = parseAttrs(body, 12);
  const dst = a.get(NDA.dst);
  if (!dst) return undefined;
  const n: NeighInfo = {
    family,
    ifindex: v.getInt32(4, true),
    dst: ipText(dst),
    state: v.getUint16(8, true),
  };
  const ll = a.get(NDA.lladdr);
  if (ll && ll.length === 6) n.lladdr = macText(ll);
  return n;
}
