// ARP on the wire: the frames this project sends itself (gratuitous ARP after an address or MAC change, the
// RFC 5227 probe "who has X?" from 0.0.0.0, and "who has the gateway?" from the pod's address) and the parser of
// what comes back. Frames are built and read here as bytes (pure, tested); `announce` sends the announcements of
// a link through a raw socket of packet.ts. IPv6's counterparts live in ndp.ts.

import { ipBytes, ipText, macBytes, macText } from "./codec.ts";
import { BROADCAST_MAC, ETH_P_ARP, ethernet, LinkSocket, parseEthernet } from "./packet.ts";
import { unsolicitedNA } from "./ndp.ts";

export { icmpv6Checksum, unsolicitedNA } from "./ndp.ts";

export const ARP_OP = { request: 1, reply: 2 } as const;

/**
 * An ARP request from `mac` for `targetIP`, broadcast. `senderIP` "0.0.0.0" makes it an RFC 5227 probe (it asks
 * without claiming anything, so no neighbour caches a MAC for an address that may be someone else's).
 */
export function arpRequest(mac: string, senderIP: string, targetIP: string): Uint8Array {
  const sha = macBytes(mac);
  const arp = new Uint8Array(28);
  arp.set([0, 1, 0x08, 0x00, 6, 4, 0, ARP_OP.request]); // Ethernet, IPv4, hlen 6, plen 4
  arp.set(sha, 8);
  arp.set(ipBytes(senderIP, 4), 14);
  arp.set(ipBytes(targetIP, 4), 24); // target hardware address stays zero
  return ethernet(macBytes(BROADCAST_MAC), sha, ETH_P_ARP, arp);
}

/** A gratuitous ARP request (sender and target address both `ip`) from `mac`, to the broadcast address. */
export function gratuitousArp(mac: string, ip: string): Uint8Array {
  return arpRequest(mac, ip, ip);
}

/** The RFC 5227 probe for `ip`: "who has `ip`?" asked from 0.0.0.0. */
export function arpProbe(mac: string, ip: string): Uint8Array {
  return arpRequest(mac, "0.0.0.0", ip);
}

/** An IPv4-over-Ethernet ARP packet. */
export interface ArpPacket {
  /** ARP_OP.request or ARP_OP.reply (others are kept as they are). */
  op: number;
  senderMac: string;
  senderIP: string;
  targetMac: string;
  targetIP: string;
  /** The frame's Ethernet source. */
  frameSrc: string;
}

/** Reads an ARP frame; undefined for anything that is not Ethernet/IPv4 ARP. */
export function parseArp(frame: Uint8Array): ArpPacket | undefined {
  const eth = parseEthernet(frame);
  if (!eth || eth.type !== ETH_P_ARP || eth.payload.length < 28) return undefined;
  const p = eth.payload;
  if (p[0] !== 0 || p[1] !== 1 || p[2] !== 0x08 || p[3] !== 0x00 || p[4] !== 6 || p[5] !== 4) {
    return undefined;
  }
  return {
    op: (p[6] << 8) | p[7],
    senderMac: macText(p.subarray(8, 14)),
    senderIP: ipText(p.subarray(14, 18)),
    targetMac: macText(p.subarray(18, 24)),
    targetIP: ipText(p.subarray(24, 28)),
    frameSrc: eth.src,
  };
}

/** The announcement of `ip` at `mac`: a gratuitous ARP, or for IPv6 an unsolicited neighbour advertisement. */
export function announcement(mac: string, ip: string): Uint8Array {
  return ip.includes(":") ? unsolicitedNA(mac, ip) : gratuitousArp(mac, ip);
}

/**
 * Sends one announcement per address out of link `ifName` of the namespace at `nsPath` (this process's own when
 * undefined), from the link's current MAC (override set for IPv6), so neighbours replace a MAC they cached.
 * Returns the number of frames sent; throws NetError (e.g. ENODEV for a missing link, ENETDOWN for a link that
 * is down).
 */
export function announce(nsPath: string | undefined, ifName: string, ips: readonly string[]): number {
  const socket = LinkSocket.open(nsPath, ifName, { receive: false });
  try {
    for (const ip of ips) socket.send(announcement(socket.link.mac, ip));
    return ips.length;
  } finally {
    socket.close();
  }
}
