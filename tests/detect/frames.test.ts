// The frames of IP-conflict and gateway detection, byte by byte: the ARP probe and request, the neighbour
// solicitations (duplicate-address-detection form and from the pod's address), and the parsers of what comes
// back. The kernel's own answers to these frames are checked end to end in detect.test.ts.

import assert from "node:assert/strict";
import { ARP_OP, arpProbe, arpRequest, gratuitousArp, parseArp } from "../../src/net/arp.ts";
import { ipText } from "../../src/net/codec.ts";
import {
  icmpv6Checksum,
  neighbourSolicitation,
  parseNeighbourAdvertisement,
  solicitedNodeMulticast,
  unsolicitedNA,
} from "../../src/net/ndp.ts";
import { ethernet, parseEthernet } from "../../src/net/packet.ts";

const MAC = "0a:1b:c0:00:02:0b";
const MAC_BYTES = [0x0a, 0x1b, 0xc0, 0, 2, 0x0b];

Deno.test("frames: an ARP probe asks for the address from 0.0.0.0 to broadcast, claiming nothing", () => {
  const f = arpProbe(MAC, "192.0.2.11");
  assert.equal(f.length, 60);
  assert.deepEqual([...f.subarray(0, 6)], [255, 255, 255, 255, 255, 255]);
  assert.deepEqual([...f.subarray(6, 12)], MAC_BYTES);
  assert.deepEqual([f[12], f[13]], [0x08, 0x06]);
  const arp = f.subarray(14);
  assert.deepEqual([...arp.subarray(0, 8)], [0, 1, 8, 0, 6, 4, 0, ARP_OP.request]);
  assert.deepEqual([...arp.subarray(8, 14)], MAC_BYTES, "sender hardware address");
  assert.deepEqual([...arp.subarray(14, 18)], [0, 0, 0, 0], "sender IP 0.0.0.0 (RFC 5227 probe)");
  assert.deepEqual([...arp.subarray(18, 24)], [0, 0, 0, 0, 0, 0], "target hardware address unknown");
  assert.deepEqual([...arp.subarray(24, 28)], [192, 0, 2, 11]);
});

Deno.test("frames: the gateway request asks for the gateway from the pod's address", () => {
  const p = parseArp(arpRequest(MAC, "192.0.2.11", "192.0.2.1"));
  assert.deepEqual(p, {
    op: ARP_OP.request,
    senderMac: MAC,
    senderIP: "192.0.2.11",
    targetMac: "00:00:00:00:00:00",
    targetIP: "192.0.2.1",
    frameSrc: MAC,
  });
  assert.deepEqual(arpRequest(MAC, "192.0.2.9", "192.0.2.9"), gratuitousArp(MAC, "192.0.2.9"));
});

Deno.test("frames: an ARP reply is read field by field; other frames are not ARP", () => {
  const reply = new Uint8Array(28);
  reply.set([0, 1, 8, 0, 6, 4, 0, ARP_OP.reply]);
  reply.set([2, 0, 0, 0, 0, 0x11], 8);
  reply.set([192, 0, 2, 11], 14);
  reply.set(MAC_BYTES, 18);
  reply.set([0, 0, 0, 0], 24);
  const frame = ethernet(Uint8Array.from(MAC_BYTES), Uint8Array.of(2, 0, 0, 0, 0, 0x12), 0x0806, reply);
  assert.deepEqual(parseArp(frame), {
    op: ARP_OP.reply,
    senderMac: "02:00:00:00:00:11",
    senderIP: "192.0.2.11",
    targetMac: MAC,
    targetIP: "0.0.0.0",
    frameSrc: "02:00:00:00:00:12",
  });
  const ipv4 = ethernet(Uint8Array.from(MAC_BYTES), Uint8Array.from(MAC_BYTES), 0x0800, reply);
  assert.equal(parseArp(ipv4), undefined, "EtherType IPv4");
  const tokenRing = reply.slice();
  tokenRing[1] = 6;
  assert.equal(
    parseArp(ethernet(Uint8Array.from(MAC_BYTES), Uint8Array.from(MAC_BYTES), 0x0806, tokenRing)),
    undefined,
  );
  assert.equal(parseArp(frame.subarray(0, 30)), undefined, "truncated");
  assert.equal(parseEthernet(frame.subarray(0, 10)), undefined);
});

Deno.test("frames: the solicited-node group of an address keeps its last 24 bits", () => {
  assert.equal(solicitedNodeMulticast("2001:db8::1:2345:6789"), "ff02::1:ff45:6789");
  assert.equal(solicitedNodeMulticast("2001:db8::11"), "ff02::1:ff00:11");
});

Deno.test("frames: a DAD solicitation comes from :: without a link-layer option, to the solicited-node group", () => {
  const f = neighbourSolicitation(MAC, "2001:db8::11");
  assert.deepEqual([...f.subarray(0, 6)], [0x33, 0x33, 0xff, 0, 0, 0x11]);
  assert.deepEqual([...f.subarray(6, 12)], MAC_BYTES);
  assert.deepEqual([f[12], f[13]], [0x86, 0xdd]);
  const ip6 = f.subarray(14);
  assert.equal(ip6[0] >> 4, 6);
  assert.equal((ip6[4] << 8) | ip6[5], 24, "payload: the 24-byte solicitation, no option");
  assert.deepEqual([ip6[6], ip6[7]], [58, 255], "ICMPv6, hop limit 255");
  assert.equal(ipText(ip6.subarray(8, 24)), "::");
  assert.equal(ipText(ip6.subarray(24, 40)), "ff02::1:ff00:11");
  const icmp = ip6.subarray(40, 64);
  assert.deepEqual([icmp[0], icmp[1]], [135, 0]);
  assert.equal(ipText(icmp.subarray(8, 24)), "2001:db8::11");
  assert.equal(icmpv6Checksum(ip6.subarray(8, 24), ip6.subarray(24, 40), icmp), 0);
});

Deno.test("frames: a solicitation from the pod's address carries its source link-layer option", () => {
  const f = neighbourSolicitation(MAC, "2001:db8::1", "2001:db8::11");
  const ip6 = f.subarray(14);
  assert.equal((ip6[4] << 8) | ip6[5], 32);
  assert.equal(ipText(ip6.subarray(8, 24)), "2001:db8::11");
  assert.equal(ipText(ip6.subarray(24, 40)), "ff02::1:ff00:1");
  const icmp = ip6.subarray(40, 72);
  assert.equal(ipText(icmp.subarray(8, 24)), "2001:db8::1");
  assert.deepEqual([...icmp.subarray(24, 32)], [1, 1, ...MAC_BYTES]);
  assert.equal(icmpv6Checksum(ip6.subarray(8, 24), ip6.subarray(24, 40), icmp), 0);
});

Deno.test("frames: a neighbour advertisement is read with its flags and target link-layer address", () => {
  const na = parseNeighbourAdvertisement(unsolicitedNA("02:00:00:00:00:11", "2001:db8::11"));
  assert.deepEqual(na, {
    frameSrc: "02:00:00:00:00:11",
    src: "2001:db8::11",
    dst: "ff02::1",
    target: "2001:db8::11",
    targetMac: "02:00:00:00:00:11",
    router: false,
    solicited: false,
    override: true,
  });
  assert.equal(
    parseNeighbourAdvertisement(neighbourSolicitation(MAC, "2001:db8::11")),
    undefined,
    "a solicitation",
  );
  assert.equal(parseNeighbourAdvertisement(arpProbe(MAC, "192.0.2.1")), undefined, "not IPv6");
});

Deno.test("frames: advertisements a receiver must drop are not read (hop limit, checksum, zero-length option)", () => {
  const good = unsolicitedNA("02:00:00:00:00:11", "2001:db8::11");
  const hop = good.slice();
  hop[14 + 7] = 64;
  assert.equal(parseNeighbourAdvertisement(hop), undefined, "hop limit 64: it crossed a router");
  const sum = good.slice();
  sum[14 + 40 + 2] ^= 0xff;
  assert.equal(parseNeighbourAdvertisement(sum), undefined, "bad checksum");
  const opt = good.slice();
  opt[14 + 40 + 25] = 0; // option length 0, then fix the checksum so only the option is wrong
  const ip6 = opt.subarray(14);
  const icmp = ip6.subarray(40, 72);
  icmp[2] = 0, icmp[3] = 0;
  new DataView(icmp.buffer, icmp.byteOffset).setUint16(
    2,
    icmpv6Checksum(ip6.subarray(8, 24), ip6.subarray(24, 40), icmp),
  );
  assert.equal(parseNeighbourAdvertisement(opt), undefined, "zero-length option");
  assert.equal(parseNeighbourAdvertisement(good.subarray(0, 70)), undefined, "truncated");
});

Deno.test("frames: an advertisement without a link-layer option has no targetMac", () => {
  // An NA built by hand: 24 bytes, solicited, to the pod's address.
  const src = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1]);
  const dst = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 0x11]);
  const icmp = new Uint8Array(24);
  icmp[0] = 136;
  icmp[4] = 0x40;
  icmp.set(src, 8);
  new DataView(icmp.buffer).setUint16(2, icmpv6Checksum(src, dst, icmp));
  const ip6 = new Uint8Array(64);
  ip6[0] = 0x60;
  ip6[5] = 24;
  ip6[6] = 58;
  ip6[7] = 255;
  ip6.set(src, 8);
  ip6.set(dst, 24);
  ip6.set(icmp, 40);
  const na = parseNeighbourAdvertisement(
    ethernet(Uint8Array.from(MAC_BYTES), Uint8Array.of(2, 0, 0, 0, 0, 1), 0x86dd, ip6),
  );
  assert.equal(na?.target, "2001:db8::1");
  assert.equal(na?.targetMac, undefined);
  assert.equal(na?.frameSrc, "02:00:00:00:00:01");
  assert.equal(na?.solicited, true);
});
