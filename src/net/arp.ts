// Announcing addresses on a link after its MAC changed: a gratuitous ARP request for each IPv4 address and an
// unsolicited neighbour advertisement (override flag set) for each IPv6 one, so neighbours replace the cached
// MAC at once. Frames are built here as bytes (pure, tested) and sent on a raw packet socket opened inside the
// link's namespace.

import { ipBytes, macBytes } from "./codec.ts";
import { errno, libc } from "./ffi.ts";
import { closeFd, inNetns, openNetns } from "./netns.ts";
import { NetError } from "./types.ts";

const BROADCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
const ALL_NODES_MAC = Uint8Array.of(0x33, 0x33, 0, 0, 0, 1);
const ALL_NODES_IP = "ff02::1";
const ETH_P_ARP = 0x0806;
const ETH_P_IPV6 = 0x86dd;
const AF_PACKET = 17;
const SOCK_RAW = 3;
const MIN_FRAME = 60;

function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(Math.max(MIN_FRAME, 14 + payload.length));
  frame.set(dst, 0);
  frame.set(src, 6);
  frame[12] = type >> 8;
  frame[13] = type & 0xff;
  frame.set(payload, 14);
  return frame;
}

/** A gratuitous ARP request (sender and target address both `ip`) from `mac`, to the broadcast address. */
export function gratuitousArp(mac: string, ip: string): Uint8Array {
  const sha = macBytes(mac);
  const spa = ipBytes(ip, 4);
  const arp = new Uint8Array(28);
  arp.set([0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, hlen 6, plen 4, request
  arp.set(sha, 8);
  arp.set(spa, 14);
  arp.set(spa, 24); // target hardware address stays zero
  return ethernet(BROADCAST, sha, ETH_P_ARP, arp);
}

/** The ICMPv6 checksum over the IPv6 pseudo-header and `icmp`. */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, icmp: Uint8Array): number {
  const pseudo = new Uint8Array(40 + icmp.length + (icmp.length & 1));
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  new DataView(pseudo.buffer).setUint32(32, icmp.length);
  pseudo[39] = 58;
  pseudo.set(icmp, 40);
  let sum = 0;
  for (let i = 0; i < pseudo.length; i += 2) sum += (pseudo[i] << 8) | pseudo[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

/** An unsolicited neighbour advertisement of `ip` at `mac` (override set), to all nodes (ff02::1). */
export function unsolicitedNA(mac: string, ip: string): Uint8Array {
  const lladdr = macBytes(mac);
  const src = ipBytes(ip, 6);
  const dst = ipBytes(ALL_NODES_IP, 6);
  const icmp = new Uint8Array(32);
  icmp[0] = 136; // neighbour advertisement
  icmp[4] = 0x20; // override, not solicited, not router
  icmp.set(src, 8);
  icmp[24] = 2; // option: target link-layer address, 8 bytes
  icmp[25] = 1;
  icmp.set(lladdr, 26);
  new DataView(icmp.buffer).setUint16(2, icmpv6Checksum(src, dst, icmp));
  const ip6 = new Uint8Array(40 + icmp.length);
  ip6[0] = 0x60;
  new DataView(ip6.buffer).setUint16(4, icmp.length);
  ip6[6] = 58;
  ip6[7] = 255; // hop limit 255: receivers drop neighbour discovery that crossed a router
  ip6.set(src, 8);
  ip6.set(dst, 24);
  ip6.set(icmp, 40);
  return ethernet(ALL_NODES_MAC, lladdr, ETH_P_IPV6, ip6);
}

function sockaddrLL(ifindex: number, protocol: number, dst: Uint8Array): Uint8Array {
  const sa = new Uint8Array(20);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_PACKET, true);
  v.setUint16(2, protocol); // network order
  v.setInt32(4, ifindex, true);
  v.setUint16(8, 1, true); // ARPHRD_ETHER
  sa[11] = 6;
  sa.set(dst, 12);
  return sa;
}

/**
 * Sends one announcement per address on link `ifindex` (of the namespace at `nsPath`, or this process's own)
 * whose MAC is `mac`. Returns the number of frames sent.
 */
export function announce(nsPath: string | undefined, ifindex: number, mac: string, ips: string[]): number {
  const frames = ips.map((ip) => ip.includes(":") ? unsolicitedNA(mac, ip) : gratuitousArp(mac, ip));
  const send = () => {
    const fd = libc().socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) throw new NetError("open a packet socket", errno());
    try {
      for (const f of frames) {
        const ethType = (f[12] << 8) | f[13];
        const sa = sockaddrLL(ifindex, ethType, f.subarray(0, 6));
        if (Number(libc().sendto(fd, f, BigInt(f.length), 0, sa, sa.length)) < 0) {
          throw new NetError(`send an address announcement on link ${ifindex}`, errno());
        }
      }
    } finally {
      closeFd(fd);
    }
    return frames.length;
  };
  if (nsPath === undefined) return send();
  const nsFd = openNetns(nsPath);
  try {
    return inNetns(nsFd, "announcing addresses", send);
  } finally {
    closeFd(nsFd);
  }
}
