// IPv6 neighbour discovery (RFC 4861) on the wire: the unsolicited neighbour advertisement that announces an
// address, the neighbour solicitation that asks who holds one (in the duplicate-address-detection form of
// RFC 4862, from ::, or from the pod's own address), and the parser of the advertisements that answer. Pure:
// bytes in, bytes out; the raw sockets of packet.ts move them.

import { ipBytes, ipText, macBytes, macText } from "./codec.ts";
import { ETH_P_IPV6, ethernet, parseEthernet } from "./packet.ts";

const ICMPV6 = 58;
const ND_NEIGHBOR_SOLICIT = 135;
const ND_NEIGHBOR_ADVERT = 136;
const OPT_SOURCE_LLADDR = 1;
const OPT_TARGET_LLADDR = 2;
/** Receivers drop neighbour discovery whose hop limit is not 255: it crossed a router. */
const ND_HOP_LIMIT = 255;
const ALL_NODES = "ff02::1";
const UNSPECIFIED = "::";

/** The ICMPv6 checksum over the IPv6 pseudo-header and `icmp` (0 when `icmp` carries a correct checksum). */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, icmp: Uint8Array): number {
  const pseudo = new Uint8Array(40 + icmp.length + (icmp.length & 1));
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  new DataView(pseudo.buffer).setUint32(32, icmp.length);
  pseudo[39] = ICMPV6;
  pseudo.set(icmp, 40);
  let sum = 0;
  for (let i = 0; i < pseudo.length; i += 2) sum += (pseudo[i] << 8) | pseudo[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

/** The Ethernet multicast address of an IPv6 multicast group: 33:33 and the group's last 32 bits. */
function multicastMac(group: Uint8Array): Uint8Array {
  return Uint8Array.of(0x33, 0x33, group[12], group[13], group[14], group[15]);
}

/** The solicited-node multicast group of `ip` (ff02::1:ffXX:XXXX), where its holder listens for solicitations. */
export function solicitedNodeMulticast(ip: string): string {
  const b = ipBytes(ip, 6);
  const g = ipBytes("ff02::1:ff00:0", 6);
  g.set(b.subarray(13), 13);
  return ipText(g);
}

/** An ICMPv6 message in an IPv6 packet (hop limit 255) in an Ethernet frame; the checksum is filled in. */
function ndFrame(dstMac: Uint8Array, srcMac: Uint8Array, src: Uint8Array, dst: Uint8Array, icmp: Uint8Array) {
  new DataView(icmp.buffer).setUint16(2, icmpv6Checksum(src, dst, icmp));
  const ip6 = new Uint8Array(40 + icmp.length);
  ip6[0] = 0x60;
  new DataView(ip6.buffer).setUint16(4, icmp.length);
  ip6[6] = ICMPV6;
  ip6[7] = ND_HOP_LIMIT;
  ip6.set(src, 8);
  ip6.set(dst, 24);
  ip6.set(icmp, 40);
  return ethernet(dstMac, srcMac, ETH_P_IPV6, ip6);
}

/** An unsolicited neighbour advertisement of `ip` at `mac` (override set), to all nodes (ff02::1). */
export function unsolicitedNA(mac: string, ip: string): Uint8Array {
  const lladdr = macBytes(mac);
  const target = ipBytes(ip, 6);
  const dst = ipBytes(ALL_NODES, 6);
  const icmp = new Uint8Array(32);
  icmp[0] = ND_NEIGHBOR_ADVERT;
  icmp[4] = 0x20; // override, not solicited, not router
  icmp.set(target, 8);
  icmp[24] = OPT_TARGET_LLADDR;
  icmp[25] = 1; // 8 bytes
  icmp.set(lladdr, 26);
  return ndFrame(multicastMac(dst), lladdr, target, dst, icmp);
}

/**
 * A neighbour solicitation for `target` from `mac`, to the target's solicited-node group. Without `source` it is
 * the duplicate address detection form of RFC 4862: sent from :: and without a source link-layer option, so it
 * asks without claiming an address and no neighbour caches anything; a holder answers to all nodes. With
 * `source` it carries the source link-layer option and the holder answers `source` directly.
 */
export function neighbourSolicitation(mac: string, target: string, source?: string): Uint8Array {
  const lladdr = macBytes(mac);
  const t = ipBytes(target, 6);
  const dst = ipBytes(solicitedNodeMulticast(target), 6);
  const src = ipBytes(source ?? UNSPECIFIED, 6);
  const icmp = new Uint8Array(source === undefined ? 24 : 32);
  icmp[0] = ND_NEIGHBOR_SOLICIT;
  icmp.set(t, 8);
  if (source !== undefined) {
    icmp[24] = OPT_SOURCE_LLADDR;
    icmp[25] = 1;
    icmp.set(lladdr, 26);
  }
  return ndFrame(multicastMac(dst), lladdr, src, dst, icmp);
}

/** A neighbour advertisement as received. */
export interface NeighbourAdvertisement {
  frameSrc: string;
  src: string;
  dst: string;
  target: string;
  /** From the target link-layer address option, when present. */
  targetMac?: string;
  router: boolean;
  solicited: boolean;
  override: boolean;
}

/**
 * Reads a neighbour advertisement; undefined for any other frame, and for one that a receiver must drop (hop
 * limit not 255, bad checksum, code not 0, truncated).
 */
export function parseNeighbourAdvertisement(frame: Uint8Array): NeighbourAdvertisement | undefined {
  const eth = parseEthernet(frame);
  if (!eth || eth.type !== ETH_P_IPV6 || eth.payload.length < 40) return undefined;
  const ip6 = eth.payload;
  if (ip6[0] >> 4 !== 6 || ip6[6] !== ICMPV6 || ip6[7] !== ND_HOP_LIMIT) return undefined;
  const length = (ip6[4] << 8) | ip6[5];
  if (length < 24 || ip6.length < 40 + length) return undefined;
  const src = ip6.subarray(8, 24);
  const dst = ip6.subarray(24, 40);
  const icmp = ip6.subarray(40, 40 + length);
  if (icmp[0] !== ND_NEIGHBOR_ADVERT || icmp[1] !== 0) return undefined;
  if (icmpv6Checksum(src, dst, icmp) !== 0) return undefined;
  let targetMac: string | undefined;
  for (let at = 24; at + 2 <= icmp.length;) {
    const len = icmp[at + 1] * 8;
    if (len === 0 || at + len > icmp.length) return undefined; // a zero-length option is invalid (RFC 4861 4.6)
    if (icmp[at] === OPT_TARGET_LLADDR && len >= 8) targetMac = macText(icmp.subarray(at + 2, at + 8));
    at += len;
  }
  return {
    frameSrc: eth.src,
    src: ipText(src),
    dst: ipText(dst),
    target: ipText(icmp.subarray(8, 24)),
    ...(targetMac ? { targetMac } : {}),
    router: (icmp[4] & 0x80) !== 0,
    solicited: (icmp[4] & 0x40) !== 0,
    override: (icmp[4] & 0x20) !== 0,
  };
}
