import assert from "node:assert/strict";
import { ANNOTATION, FINALIZER, LABEL } from "../../src/api/constants.ts";
import {
  cidrLabelValue,
  defaultCoordinator,
  defaultIPPool,
  defaultMultusConfig,
  defaultReservedIP,
  defaultSubnet,
  hostCIDR,
} from "../../src/api/defaults.ts";
import type { SpiderIPPool, SpiderMultusConfig, SpiderSubnet } from "../../src/api/types.ts";

const noSubnets = { enableSpiderSubnet: false, subnets: [] };

function pool(name: string, spec: Partial<SpiderIPPool["spec"]>): SpiderIPPool {
  return { metadata: { name }, spec: { subnet: "192.0.2.0/24", ...spec } } as SpiderIPPool;
}

const subnetA: SpiderSubnet = {
  metadata: { name: "subnet-a", uid: "uid-subnet-a" },
  spec: {
    subnet: "192.0.2.0/24",
    ipVersion: 4,
    ips: ["192.0.2.10-192.0.2.100"],
    gateway: "192.0.2.1",
    routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.254" }],
  },
};

Deno.test("pool defaulting merges overlapping ranges into canonical minimal ranges", () => {
  const got = defaultIPPool(
    pool("v4-a", {
      ips: ["192.0.2.1-192.0.2.3", "192.0.2.2-192.0.2.5"],
      excludeIPs: ["192.0.2.4", "192.0.2.3"],
    }),
    noSubnets,
  );
  assert.deepEqual(got.spec.ips, ["192.0.2.1-192.0.2.5"]);
  assert.deepEqual(got.spec.excludeIPs, ["192.0.2.3-192.0.2.4"]);
});

Deno.test("pool defaulting sorts and deduplicates ranges", () => {
  const got = defaultIPPool(
    pool("v4-a", { ips: ["192.0.2.9", "192.0.2.1", "192.0.2.9", "192.0.2.2"] }),
    noSubnets,
  );
  assert.deepEqual(got.spec.ips, ["192.0.2.1-192.0.2.2", "192.0.2.9"]);
});

Deno.test("pool defaulting sets ipVersion from the subnet", () => {
  assert.equal(defaultIPPool(pool("v4-a", {}), noSubnets).spec.ipVersion, 4);
  assert.equal(defaultIPPool(pool("v6-a", { subnet: "2001:db8::/64" }), noSubnets).spec.ipVersion, 6);
});

Deno.test("pool defaulting adds the finalizer once", () => {
  const once = defaultIPPool(pool("v4-a", {}), noSubnets);
  assert.deepEqual(once.metadata.finalizers, [FINALIZER]);
  assert.deepEqual(defaultIPPool(once, noSubnets).metadata.finalizers, [FINALIZER]);
});

Deno.test("pool defaulting adds no finalizer to a terminating pool", () => {
  const p = pool("v4-a", {});
  p.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
  assert.equal(defaultIPPool(p, noSubnets).metadata.finalizers, undefined);
});

Deno.test("pool defaulting labels the pool with its CIDR, . : / replaced by -", () => {
  assert.equal(
    defaultIPPool(pool("v4-a", {}), noSubnets).metadata.labels?.[LABEL.ippoolCIDR],
    "192-0-2-0-24",
  );
  assert.equal(
    defaultIPPool(pool("v6-a", { subnet: "2001:db8::/64" }), noSubnets).metadata.labels?.[LABEL.ippoolCIDR],
    "2001-db8---64",
  );
  assert.equal(cidrLabelValue("198.18.0.0/16"), "198-18-0-0-16");
});

Deno.test("pool defaulting does not modify its input", () => {
  const input = pool("v4-a", { ips: ["192.0.2.2", "192.0.2.1"] });
  const copy = structuredClone(input);
  defaultIPPool(input, noSubnets);
  assert.deepEqual(input, copy);
});

Deno.test("pool defaulting leaves unparsable ranges for validation to report", () => {
  assert.deepEqual(defaultIPPool(pool("v4-a", { ips: ["192.0.2.9", "nonsense"] }), noSubnets).spec.ips, [
    "192.0.2.9",
    "nonsense",
  ]);
});

Deno.test("pool defaulting with SpiderSubnet: owner reference, owner label, gateway and routes inherited", () => {
  const got = defaultIPPool(pool("v4-a", { ips: ["192.0.2.10"] }), {
    enableSpiderSubnet: true,
    subnets: [subnetA],
  });
  assert.deepEqual(got.metadata.ownerReferences, [{
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderSubnet",
    name: "subnet-a",
    uid: "uid-subnet-a",
    controller: true,
    blockOwnerDeletion: true,
  }]);
  assert.equal(got.metadata.labels?.[LABEL.ownerSpiderSubnet], "subnet-a");
  assert.equal(got.spec.gateway, "192.0.2.1");
  assert.deepEqual(got.spec.routes, [{ dst: "198.51.100.0/24", gw: "192.0.2.254" }]);
});

Deno.test("pool defaulting keeps the pool's own gateway and an explicitly empty route list", () => {
  const got = defaultIPPool(pool("v4-a", { gateway: "192.0.2.2", routes: [] }), {
    enableSpiderSubnet: true,
    subnets: [subnetA],
  });
  assert.equal(got.spec.gateway, "192.0.2.2");
  assert.deepEqual(got.spec.routes, []);
});

Deno.test("pool defaulting without the SpiderSubnet feature inherits nothing", () => {
  const got = defaultIPPool(pool("v4-a", {}), { enableSpiderSubnet: false, subnets: [subnetA] });
  assert.equal(got.spec.gateway, undefined);
  assert.equal(got.metadata.ownerReferences, undefined);
});

Deno.test("pool defaulting ignores a subnet of another CIDR", () => {
  const got = defaultIPPool(pool("v4-b", { subnet: "198.51.100.0/24" }), {
    enableSpiderSubnet: true,
    subnets: [subnetA],
  });
  assert.equal(got.metadata.labels?.[LABEL.ownerSpiderSubnet], undefined);
});

Deno.test("subnet defaulting: finalizer, ipVersion, subnet-cidr label, merged ranges", () => {
  const got = defaultSubnet({
    metadata: { name: "s6" },
    spec: { subnet: "2001:db8::/64", ips: ["2001:db8::10-2001:db8::20", "2001:db8::21"] },
  });
  assert.deepEqual(got.metadata.finalizers, [FINALIZER]);
  assert.equal(got.spec.ipVersion, 6);
  assert.equal(got.metadata.labels?.[LABEL.subnetCIDR], "2001-db8---64");
  assert.deepEqual(got.spec.ips, ["2001:db8::10-2001:db8::21"]);
});

Deno.test("reserved IP defaulting takes ipVersion from ips[0] and merges ranges", () => {
  const got = defaultReservedIP({
    metadata: { name: "r" },
    spec: { ips: ["198.51.100.3", "198.51.100.1-198.51.100.2"] },
  });
  assert.equal(got.spec.ipVersion, 4);
  assert.deepEqual(got.spec.ips, ["198.51.100.1-198.51.100.3"]);
});

Deno.test("coordinator defaulting fills the documented defaults", () => {
  const got = defaultCoordinator({ metadata: { name: "default" }, spec: { podCIDRType: "calico" } });
  assert.deepEqual(got.spec, {
    podCIDRType: "calico",
    mode: "auto",
    tunePodRoutes: true,
    hostRuleTable: 500,
    podRPFilter: 0,
    txQueueLen: 0,
    vethLinkAddress: "",
    vethMTU: 1500,
  });
  assert.deepEqual(got.metadata.finalizers, [FINALIZER]);
});

Deno.test("coordinator defaulting keeps given values, including false and 0", () => {
  const got = defaultCoordinator({
    metadata: { name: "default" },
    spec: { tunePodRoutes: false, vethMTU: 9000, podRPFilter: -1, hostRuleTable: 600, mode: "underlay" },
  });
  assert.equal(got.spec.tunePodRoutes, false);
  assert.equal(got.spec.vethMTU, 9000);
  assert.equal(got.spec.podRPFilter, -1);
  assert.equal(got.spec.hostRuleTable, 600);
  assert.equal(got.spec.mode, "underlay");
});

Deno.test("coordinator defaulting spells mode disable as disabled", () => {
  assert.equal(
    defaultCoordinator({ metadata: { name: "default" }, spec: { mode: "disable" } }).spec.mode,
    "disabled",
  );
});

Deno.test("coordinator defaulting turns bare IPs into host CIDRs", () => {
  const got = defaultCoordinator({
    metadata: { name: "default" },
    spec: {
      hijackCIDR: ["198.51.100.7", "2001:db8::7", "203.0.113.0/24"],
      policyRoutes: [{ dst: "198.18.0.1", gw: "192.0.2.1" }],
    },
  });
  assert.deepEqual(got.spec.hijackCIDR, ["198.51.100.7/32", "2001:db8::7/128", "203.0.113.0/24"]);
  assert.deepEqual(got.spec.policyRoutes, [{ dst: "198.18.0.1/32", gw: "192.0.2.1" }]);
  assert.equal(hostCIDR("not-an-ip"), "not-an-ip");
});

function smc(spec: SpiderMultusConfig["spec"], annotations?: Record<string, string>): SpiderMultusConfig {
  return { metadata: { name: "m", namespace: "kube-system", annotations }, spec };
}

Deno.test("multus config defaulting: no cniType means custom, without coordinator", () => {
  const got = defaultMultusConfig(smc({ coordinator: { mode: "overlay" }, enableCoordinator: true }));
  assert.equal(got.spec.cniType, "custom");
  assert.equal(got.spec.customCNI, "");
  assert.equal(got.spec.enableCoordinator, false);
  assert.equal(got.spec.coordinator, undefined);
  assert.deepEqual(got.spec.chainCNIJsonData, []);
});

Deno.test("multus config defaulting: macvlan block defaults", () => {
  const got = defaultMultusConfig(smc({ cniType: "macvlan", macvlan: { master: ["ens192"] } }));
  assert.deepEqual(got.spec.macvlan, {
    master: ["ens192"],
    vlanID: 0,
    mtu: 0,
    rdmaResourceName: "",
    ippools: { ipv4: [], ipv6: [] },
  });
  assert.equal(got.spec.enableCoordinator, true);
});

Deno.test("multus config defaulting: an absent coordinator block becomes the standard block", () => {
  const got = defaultMultusConfig(smc({ cniType: "ipvlan", ipvlan: { master: ["ens192"] } }));
  assert.deepEqual(got.spec.coordinator, {
    mode: "auto",
    hijackCIDR: [],
    policyRoutes: [],
    vethLinkAddress: "",
    podMACPrefix: "",
    podDefaultRouteNIC: "",
    podRPFilter: 0,
    tunePodRoutes: true,
  });
});

Deno.test("multus config defaulting: a given coordinator block keeps tunePodRoutes true and gains txQueueLen 0", () => {
  const got = defaultMultusConfig(
    smc({ cniType: "macvlan", macvlan: { master: ["ens192"] }, coordinator: { mode: "underlay" } }),
  );
  assert.equal(got.spec.coordinator?.tunePodRoutes, true);
  assert.equal(got.spec.coordinator?.txQueueLen, 0);
  assert.equal(got.spec.coordinator?.mode, "underlay");
  assert.equal(got.spec.coordinator?.vethMTU, undefined);
  assert.equal(got.spec.coordinator?.hostRuleTable, undefined);
});

Deno.test("multus config defaulting: vlan is manual with vlanID 0 unless auto", () => {
  const manual = defaultMultusConfig(smc({ cniType: "vlan", vlan: { master: ["ens192"] } }));
  assert.equal(manual.spec.vlan?.vlanMode, "manual");
  assert.equal(manual.spec.vlan?.vlanID, 0);
  const auto = defaultMultusConfig(smc({ cniType: "vlan", vlan: { master: ["ens192"], vlanMode: "auto" } }));
  assert.equal(auto.spec.vlan?.vlanID, undefined);
});

Deno.test("multus config defaulting: sriov and ib-sriov block defaults", () => {
  const sriov = defaultMultusConfig(smc({ cniType: "sriov", sriov: { resourceName: "spidernet.io/vf" } }));
  assert.deepEqual(sriov.spec.sriov, {
    resourceName: "spidernet.io/vf",
    vlanID: 0,
    mtu: 0,
    minTxRateMbps: 0,
    maxTxRateMbps: 0,
    rdmaIsolation: false,
    ippools: { ipv4: [], ipv6: [], matchMasterSubnet: false },
  });
  const ib = defaultMultusConfig(smc({ cniType: "ib-sriov", ibsriov: { resourceName: "spidernet.io/ib" } }));
  assert.equal(ib.spec.ibsriov?.linkState, "enable");
  assert.equal(ib.spec.ibsriov?.rdmaIsolation, true);
  assert.equal(ib.spec.ibsriov?.enableIbKubernetes, false);
  assert.equal(ib.spec.ibsriov?.pkey, "");
});

Deno.test("multus config defaulting: ovs vlan 0", () => {
  assert.equal(defaultMultusConfig(smc({ cniType: "ovs", ovs: { bridge: "br1" } })).spec.ovs?.vlan, 0);
});

Deno.test("multus config defaulting copies inject annotations into labels", () => {
  const got = defaultMultusConfig(
    smc({ cniType: "macvlan", macvlan: { master: ["ens192"] } }, {
      [ANNOTATION.rdmaResourceInject]: "gpu-net",
    }),
  );
  assert.equal(got.metadata.labels?.[ANNOTATION.rdmaResourceInject], "gpu-net");
});

Deno.test("pool defaulting writes subnet, gateway and routes canonically", () => {
  const got = defaultIPPool(
    pool("v6-a", {
      subnet: "2001:DB8:0::/64",
      gateway: "2001:db8:0:0::1",
      routes: [{ dst: "2001:DB8:1::/64", gw: "2001:db8::FE" }],
    }),
    noSubnets,
  );
  assert.equal(got.spec.subnet, "2001:db8::/64");
  assert.equal(got.spec.gateway, "2001:db8::1");
  assert.deepEqual(got.spec.routes, [{ dst: "2001:db8:1::/64", gw: "2001:db8::fe" }]);
  assert.equal(got.metadata.labels?.[LABEL.ippoolCIDR], "2001-db8---64");
});
