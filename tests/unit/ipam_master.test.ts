// match_master_subnet decisions: the NIC's parent device as `ip -details -json link` reports it, the PF found
// through sysfs, the PF's host addresses, and the filter that keeps only pools whose subnet holds one of them.

import assert from "node:assert/strict";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { dropReason, type FilterContext } from "../../src/ipam/mod.ts";
import {
  MasterInterfaceError,
  masterOf,
  parsePodLink,
  type PodLink,
  vfAddress,
} from "../../src/ipam/master.ts";

const VF: PodLink = { ifName: "net1", parentBus: "pci", parentDev: "0000:3b:02.1" };

Deno.test("master: link details are read from `ip -details -json link show` output", () => {
  const rows: [string, string, PodLink | RegExp][] = [
    [
      "SR-IOV VF",
      '[{"ifindex":9,"ifname":"net1","flags":["UP"],"parentbus":"pci","parentdev":"0000:3b:02.1"}]',
      { ...VF, kind: undefined },
    ],
    [
      "veth",
      '[{"ifindex":3,"ifname":"net1","link_index":4,"linkinfo":{"info_kind":"veth"}}]',
      { ifName: "net1", kind: "veth", parentBus: undefined, parentDev: undefined },
    ],
    [
      "virtio",
      '[{"ifname":"net1","parentbus":"virtio","parentdev":"virtio2"}]',
      { ifName: "net1", kind: undefined, parentBus: "virtio", parentDev: "virtio2" },
    ],
    ["another interface only", '[{"ifname":"eth0"}]', /no such interface in the pod's network namespace/],
    ["empty output", "", /unreadable link details/],
    ["not an array", '{"ifname":"net1"}', /no such interface/],
  ];
  for (const [name, json, want] of rows) {
    if (want instanceof RegExp) {
      assert.throws(
        () => parsePodLink("net1", json),
        (e: unknown) => e instanceof MasterInterfaceError,
        name,
      );
      assert.throws(() => parsePodLink("net1", json), want, name);
    } else {
      assert.deepEqual(parsePodLink("net1", json), want, name);
    }
  }
});

Deno.test("master: only a PCI device has a VF address; anything else says why and what to do", () => {
  assert.equal(vfAddress(VF), "0000:3b:02.1");
  const rows: [string, PodLink, RegExp][] = [
    [
      "veth",
      { ifName: "eth0", kind: "veth" },
      /"eth0" in the pod: it is a veth interface with no PCI device/,
    ],
    ["no kind", { ifName: "eth0" }, /a virtual interface with no PCI device/],
    [
      "virtio",
      { ifName: "eth0", parentBus: "virtio", parentDev: "virtio2" },
      /bus virtio \(virtio2\), not PCI/,
    ],
    ["malformed PCI address", { ifName: "eth0", parentBus: "pci", parentDev: "../../x" }, /is malformed/],
  ];
  for (const [name, link, re] of rows) {
    assert.throws(() => vfAddress(link), (e: unknown) => e instanceof MasterInterfaceError, name);
    assert.throws(() => vfAddress(link), re, name);
  }
  assert.throws(
    () => vfAddress({ ifName: "eth0", kind: "veth" }),
    /SR-IOV VFs only; remove it from this network's IPAM config/,
  );
});

Deno.test("master: the PF's netdevs and their host addresses", () => {
  const host = [
    { name: "ens1f0", cidr: "198.51.100.7/24" },
    { name: "ens1f0", cidr: "2001:db8:1::7/64" },
    { name: "ens1f1", cidr: "203.0.113.7/24" },
    { name: "lo", cidr: "127.0.0.1/8" },
  ];
  assert.deepEqual(masterOf(VF, ["ens1f0"], host), {
    pf: ["ens1f0"],
    addresses: ["198.51.100.7/24", "2001:db8:1::7/64"],
  });
  assert.deepEqual(masterOf(VF, ["ens1f0"], []), { pf: ["ens1f0"], addresses: [] });
  assert.throws(() => masterOf(VF, undefined, host), /PCI device 0000:3b:02.1 is not a VF/);
  assert.throws(() => masterOf(VF, [], host), /has no network interface on the host/);
  assert.throws(() => masterOf({ ifName: "net1", kind: "veth" }, ["ens1f0"], host), /veth/);
});

Deno.test("master: a pool serves the NIC only if its subnet holds an address of the PF", () => {
  const ctx: FilterContext = {
    family: 4,
    nic: "net1",
    pod: { namespace: "default" },
    namespace: { name: "default" },
    node: { name: "n1" },
    agentNamespace: "kube-system",
    top: { apiVersion: "v1", kind: "Pod", name: "p", namespace: "default", uid: "u" },
  };
  const pool = (name: string, subnet: string): SpiderIPPool => ({
    metadata: { name },
    spec: { subnet, ips: [subnet.replace(/0\/\d+$/, "10")] },
  });
  const rail1 = pool("rail1", "198.51.100.0/24");
  const rail2 = pool("rail2", "203.0.113.0/24");
  const master = masterOf(VF, ["ens1f0"], [{ name: "ens1f0", cidr: "198.51.100.7/24" }]);
  const withMaster = { ...ctx, masterAddresses: master.addresses };
  assert.equal(dropReason(rail1, withMaster), undefined);
  assert.equal(
    dropReason(rail2, withMaster),
    "no address of the master interface (198.51.100.7/24) is in subnet 203.0.113.0/24 (match_master_subnet)",
  );
  assert.match(dropReason(rail1, { ...ctx, masterAddresses: [] }) ?? "", /\(none\)/);
  assert.equal(dropReason(rail2, ctx), undefined, "without match_master_subnet the subnet does not matter");
});
