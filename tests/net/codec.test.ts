// The netlink wire format and the announcement frames, byte by byte: what the layer sends for VLANs and bonds
// (this kernel has neither, so these bytes are what is tested here), and how it reads the kernel's answers.

import assert from "node:assert/strict";
import { gratuitousArp, icmpv6Checksum, unsolicitedNA } from "../../src/net/arp.ts";
import {
  attr,
  bondActiveSlaveBody,
  encodeMessage,
  IFLA,
  IFLA_BOND,
  IFLA_INFO,
  IFLA_VLAN,
  ipBytes,
  ipText,
  macBytes,
  newBondBody,
  newVlanBody,
  NLM_F,
  NLMSG,
  parseAck,
  parseAttrList,
  parseAttrs,
  parseLinkMsg,
  parseMessages,
  parseRouteMsg,
  readStr,
  readU16,
  readU32,
  readU8,
  routeDumpBody,
  routeGetBody,
  RTA,
  strAttr,
  u32Attr,
} from "../../src/net/codec.ts";
import { bondArgs } from "../../src/net/iproute.ts";

/** The nested IFLA_LINKINFO of an RTM_NEWLINK body: kind and data attributes. */
function linkinfo(body: Uint8Array) {
  const top = parseAttrs(body, 16);
  const info = parseAttrs(top.get(IFLA.linkinfo)!);
  return {
    top,
    kind: readStr(info.get(IFLA_INFO.kind)),
    data: parseAttrList(info.get(IFLA_INFO.data) ?? new Uint8Array()),
  };
}

Deno.test("a VLAN link request: name, parent index, kind vlan and the VLAN id", () => {
  const body = newVlanBody({ name: "ens192.100", parent: "ens192", vlanId: 100 }, 7);
  const { top, kind, data } = linkinfo(body);
  assert.equal(readStr(top.get(IFLA.ifname)), "ens192.100");
  assert.equal(readU32(top.get(IFLA.link)), 7);
  assert.equal(kind, "vlan");
  assert.deepEqual(data.map((a) => [a.type, readU16(a.data)]), [[IFLA_VLAN.id, 100]]);
});

Deno.test("a bond link request carries the mode and every option, each as the kernel's attribute type", () => {
  const index: Record<string, number> = { ens192: 3, ens224: 4 };
  const body = newBondBody({
    name: "bond0",
    mode: 4,
    options: {
      miimon: 100,
      upDelay: 200,
      downDelay: 300,
      useCarrier: 1,
      arpInterval: 1000,
      arpIpTargets: ["192.0.2.1", "192.0.2.2"],
      arpValidate: 3,
      arpAllTargets: 1,
      primary: "ens224",
      primaryReselect: 2,
      failOverMac: 1,
      xmitHashPolicy: 2,
      resendIgmp: 5,
      allSlavesActive: 1,
      minLinks: 1,
      lpInterval: 2,
      packetsPerSlave: 3,
      lacpRate: 1,
      adSelect: 2,
      adActorSysPrio: 100,
      adUserPortKey: 10,
      adActorSystem: "02:00:5e:10:00:01",
      tlbDynamicLb: 1,
      peerNotifDelay: 400,
    },
  }, (n) => index[n]);
  const { top, kind, data } = linkinfo(body);
  assert.equal(readStr(top.get(IFLA.ifname)), "bond0");
  assert.equal(kind, "bond");
  const got = new Map(data.map((a) => [a.type, a.data]));
  const u8 = (t: number) => readU8(got.get(t));
  const u16 = (t: number) => readU16(got.get(t));
  const u32 = (t: number) => readU32(got.get(t));
  assert.deepEqual(
    [
      u8(IFLA_BOND.mode),
      u32(IFLA_BOND.miimon),
      u32(IFLA_BOND.updelay),
      u32(IFLA_BOND.downdelay),
      u8(IFLA_BOND.useCarrier),
    ],
    [4, 100, 200, 300, 1],
  );
  assert.deepEqual(
    [
      u32(IFLA_BOND.arpInterval),
      u32(IFLA_BOND.arpValidate),
      u32(IFLA_BOND.arpAllTargets),
      u32(IFLA_BOND.primary),
    ],
    [1000, 3, 1, 4],
  );
  assert.deepEqual(
    parseAttrList(got.get(IFLA_BOND.arpIpTarget)!).map((a) => [a.type, ipText(a.data)]),
    [[0, "192.0.2.1"], [1, "192.0.2.2"]],
  );
  assert.deepEqual(
    [
      u8(IFLA_BOND.primaryReselect),
      u8(IFLA_BOND.failOverMac),
      u8(IFLA_BOND.xmitHashPolicy),
      u32(IFLA_BOND.resendIgmp),
    ],
    [2, 1, 2, 5],
  );
  assert.deepEqual(
    [
      u8(IFLA_BOND.allSlavesActive),
      u32(IFLA_BOND.minLinks),
      u32(IFLA_BOND.lpInterval),
      u32(IFLA_BOND.packetsPerSlave),
    ],
    [1, 1, 2, 3],
  );
  assert.deepEqual(
    [
      u8(IFLA_BOND.adLacpRate),
      u8(IFLA_BOND.adSelect),
      u16(IFLA_BOND.adActorSysPrio),
      u16(IFLA_BOND.adUserPortKey),
    ],
    [1, 2, 100, 10],
  );
  assert.deepEqual([...got.get(IFLA_BOND.adActorSystem)!], [2, 0, 0x5e, 0x10, 0, 1]);
  assert.deepEqual([u8(IFLA_BOND.tlbDynamicLb), u32(IFLA_BOND.peerNotifDelay)], [1, 400]);
});

Deno.test("a bond request leaves integer options at 0 out (the kernel's default), as upstream does", () => {
  const { data } = linkinfo(
    newBondBody({ name: "sp_bond0", mode: 1, options: { miimon: 0, minLinks: 0 } }, () => 0),
  );
  assert.deepEqual(data.map((a) => a.type), [IFLA_BOND.mode]);
});

Deno.test("the active slave is set on the existing bond, by index", () => {
  const body = bondActiveSlaveBody(9, 4);
  assert.equal(new DataView(body.buffer).getInt32(4, true), 9);
  const { kind, data } = linkinfo(body);
  assert.equal(kind, "bond");
  assert.deepEqual(data.map((a) => [a.type, readU32(a.data)]), [[IFLA_BOND.activeSlave, 4]]);
});

Deno.test("the iproute2 fallback passes the same bond options to ip link", () => {
  assert.deepEqual(
    bondArgs({
      miimon: 100,
      primary: "ens224",
      arpIpTargets: ["192.0.2.1", "192.0.2.2"],
      minLinks: 0,
      adActorSystem: "02:00:5e:10:00:01",
    }),
    [
      "miimon",
      "100",
      "arp_ip_target",
      "192.0.2.1,192.0.2.2",
      "primary",
      "ens224",
      "ad_actor_system",
      "02:00:5e:10:00:01",
    ],
  );
});

Deno.test("messages frame and parse back; attributes are padded to 4 bytes", () => {
  const a = strAttr(IFLA.ifname, "eth0");
  assert.equal(a.length, 12); // 4 header + "eth0\0" (5) padded to 8
  const msg = encodeMessage(
    16,
    NLM_F.create | NLM_F.excl,
    7,
    0,
    new Uint8Array([...new Uint8Array(16), ...a]),
  );
  const [m] = parseMessages(concatTwice(msg));
  assert.deepEqual([m.type, m.flags, m.seq], [16, 0x600, 7]);
  assert.equal(readStr(parseAttrs(m.body, 16).get(IFLA.ifname)), "eth0");
  assert.throws(() => parseMessages(msg.subarray(0, 20)), /malformed netlink message/);
});

function concatTwice(m: Uint8Array): Uint8Array {
  const out = new Uint8Array(m.length * 2);
  out.set(m);
  out.set(m, m.length);
  return out;
}

Deno.test("an error answer gives the errno and the kernel's extended message", () => {
  const body = new Uint8Array(20 + 40);
  const v = new DataView(body.buffer);
  v.setInt32(0, -17, true);
  v.setUint32(4, 16, true); // the echoed request header (capped)
  const msgAttr = strAttr(1, "ipv4: Address already assigned");
  body.set(msgAttr, 20);
  const ack = parseAck({
    type: NLMSG.error,
    flags: NLM_F.capped | NLM_F.ackTlvs,
    seq: 1,
    pid: 0,
    body: body.subarray(0, 20 + msgAttr.length),
  });
  assert.deepEqual(ack, { errno: 17, detail: "ipv4: Address already assigned" });
  assert.deepEqual(parseAck({ type: NLMSG.error, flags: 0, seq: 1, pid: 0, body: new Uint8Array(20) }), {
    errno: 0,
    detail: "",
  });
});

Deno.test("a route message: destination, table above 255, gateway, metric and multipath nexthops", () => {
  const rtm = new Uint8Array(12);
  rtm.set([10, 0, 0, 0, 252, 3, 0, 1]); // IPv6, default, table id in RTA_TABLE
  const hop = (ifindex: number, gw: string) => {
    const gwAttr = attr(RTA.gateway, ipBytes(gw));
    const h = new Uint8Array(8 + gwAttr.length);
    new DataView(h.buffer).setUint16(0, h.length, true);
    new DataView(h.buffer).setInt32(4, ifindex, true);
    h.set(gwAttr, 8);
    return h;
  };
  const body = new Uint8Array([
    ...rtm,
    ...u32Attr(RTA.table, 1234567),
    ...u32Attr(RTA.priority, 1024),
    ...attr(RTA.multipath, new Uint8Array([...hop(2, "2001:db8::1"), ...hop(4, "2001:db8:2::1")])),
  ]);
  assert.deepEqual(parseRouteMsg(body), {
    family: 6,
    dst: "::/0",
    table: 1234567,
    protocol: 3,
    scope: 0,
    type: 1,
    metric: 1024,
    multipath: [{ ifindex: 2, gw: "2001:db8::1" }, { ifindex: 4, gw: "2001:db8:2::1" }],
  });
});

Deno.test("a link message: veth peer index in another namespace, master, VLAN id", () => {
  const ifi = new Uint8Array(16);
  new DataView(ifi.buffer).setInt32(4, 5, true);
  new DataView(ifi.buffer).setUint32(8, 0x1003, true);
  const nsid = new Uint8Array(4);
  const vlanInfo = attr(
    IFLA.linkinfo | 0x8000,
    new Uint8Array([
      ...strAttr(IFLA_INFO.kind, "vlan"),
      ...attr(IFLA_INFO.data | 0x8000, attr(IFLA_VLAN.id, Uint8Array.of(100, 0))),
    ]),
  );
  const body = new Uint8Array([
    ...ifi,
    ...strAttr(IFLA.ifname, "ens192.100"),
    ...attr(IFLA.address, macBytes("02:00:5e:00:00:01")),
    ...u32Attr(IFLA.link, 3),
    ...attr(IFLA.linkNetnsId, nsid),
    ...u32Attr(IFLA.master, 9),
    ...vlanInfo,
  ]);
  const link = parseLinkMsg(body);
  assert.deepEqual(
    [
      link.index,
      link.name,
      link.flags,
      link.mac,
      link.kind,
      link.link,
      link.linkNetnsId,
      link.master,
      link.vlanId,
    ],
    [5, "ens192.100", 0x1003, "02:00:5e:00:00:01", "vlan", 3, 0, 9, 100],
  );
});

Deno.test("requests the layer builds: a table-filtered dump and a route lookup", () => {
  const dump = routeDumpBody(2, 500);
  assert.equal(dump[4], 0, "a table id above 255 travels only in RTA_TABLE");
  assert.equal(readU32(parseAttrs(dump, 12).get(RTA.table)), 500);
  const get = routeGetBody("2001:db8::5");
  assert.deepEqual([get[0], get[1]], [10, 128]);
  assert.equal(ipText(parseAttrs(get, 12).get(RTA.dst)!), "2001:db8::5");
});

Deno.test("addresses are validated in TypeScript before any C call", () => {
  assert.throws(() => ipBytes("192.0.2.300"), /invalid|out of range|octet/i);
  assert.throws(() => macBytes("02:00:5e:00:00"), /invalid MAC address/);
  assert.deepEqual([...ipBytes("192.0.2.1")], [192, 0, 2, 1]);
});

Deno.test("a gratuitous ARP: broadcast, ARP request whose sender and target are the announced address", () => {
  const f = gratuitousArp("0a:1b:c0:00:02:0a", "192.0.2.10");
  assert.equal(f.length, 60);
  assert.deepEqual([...f.subarray(0, 6)], [255, 255, 255, 255, 255, 255]);
  assert.deepEqual([...f.subarray(6, 12)], [0x0a, 0x1b, 0xc0, 0, 2, 0x0a]);
  assert.deepEqual([f[12], f[13]], [0x08, 0x06]);
  const arp = f.subarray(14);
  assert.deepEqual([...arp.subarray(0, 8)], [0, 1, 8, 0, 6, 4, 0, 1]);
  assert.deepEqual([...arp.subarray(14, 18)], [192, 0, 2, 10]);
  assert.deepEqual([...arp.subarray(18, 24)], [0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...arp.subarray(24, 28)], [192, 0, 2, 10]);
});

Deno.test("an unsolicited NA: all-nodes, hop limit 255, override flag, target option, valid checksum", () => {
  const f = unsolicitedNA("0a:1b:00:00:00:0a", "2001:db8::a");
  assert.deepEqual([...f.subarray(0, 6)], [0x33, 0x33, 0, 0, 0, 1]);
  assert.deepEqual([f[12], f[13]], [0x86, 0xdd]);
  const ip6 = f.subarray(14);
  assert.deepEqual([ip6[6], ip6[7]], [58, 255]);
  const icmp = ip6.subarray(40, 72);
  assert.deepEqual([icmp[0], icmp[1], icmp[4]], [136, 0, 0x20]);
  assert.equal(ipText(icmp.subarray(8, 24)), "2001:db8::a");
  assert.deepEqual([...icmp.subarray(24, 32)], [2, 1, 0x0a, 0x1b, 0, 0, 0, 0x0a]);
  // A correct checksum makes the one's-complement sum over pseudo-header and message zero.
  assert.equal(icmpv6Checksum(ip6.subarray(8, 24), ip6.subarray(24, 40), icmp), 0);
});
