// A corpus of invalid objects of every webhook kind, each sent to the real API server and refused by the
// controller's validating webhook with a message that names the object and the offending field, as
// `kubectl apply` would print it. Each object passes the CRD schema, so the refusal is the webhook's.

import assert from "node:assert/strict";
import { kubeTest, testScope } from "../kube/harness.ts";
import { API, failure, randomSubnets, startControllers } from "./webhook_harness.ts";

interface Case {
  kind: "SpiderIPPool" | "SpiderSubnet" | "SpiderReservedIP" | "SpiderCoordinator" | "SpiderMultusConfig";
  why: string;
  spec: Record<string, unknown>;
  /** Text the message must contain to name the field. */
  field: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const PLURAL: Record<Case["kind"], string> = {
  SpiderIPPool: "spiderippools",
  SpiderSubnet: "spidersubnets",
  SpiderReservedIP: "spiderreservedips",
  SpiderCoordinator: "spidercoordinators",
  SpiderMultusConfig: "spidermultusconfigs",
};

function corpus(
  v4: string,
  p4: string,
  v6: string,
  p6: string,
  fixtures: { subnetCIDR: string; sp: string },
): Case[] {
  const pool = (
    why: string,
    spec: Record<string, unknown>,
    field: string,
    labels?: Record<string, string>,
  ): Case => ({
    kind: "SpiderIPPool",
    why,
    spec: { subnet: v4, ...spec },
    field,
    labels,
  });
  const subnet = (why: string, spec: Record<string, unknown>, field: string): Case => ({
    kind: "SpiderSubnet",
    why,
    spec,
    field,
  });
  const rip = (why: string, spec: Record<string, unknown>, field: string): Case => ({
    kind: "SpiderReservedIP",
    why,
    spec,
    field,
  });
  const coord = (why: string, spec: Record<string, unknown>, field: string): Case => ({
    kind: "SpiderCoordinator",
    why,
    spec: { podCIDRType: "cluster", ...spec },
    field,
  });
  const smc = (
    why: string,
    spec: Record<string, unknown>,
    field: string,
    annotations?: Record<string, string>,
  ): Case => ({
    kind: "SpiderMultusConfig",
    why,
    spec,
    field,
    annotations,
  });
  const mac = (extra: Record<string, unknown>) => ({
    cniType: "macvlan",
    macvlan: { master: ["ens192"], ...extra },
  });
  const { sp } = fixtures;
  return [
    // SpiderIPPool
    pool("subnet empty", { subnet: "", ips: [`${p4}1`] }, "spec.subnet is required"),
    pool("subnet not a CIDR", { subnet: "not-a-cidr" }, "spec.subnet"),
    pool("subnet with host bits", { subnet: `${p4}1/24` }, "spec.subnet"),
    pool("ipVersion 6 on an IPv4 subnet", { ipVersion: 6 }, "spec.ipVersion"),
    pool("ips item malformed", { ips: [`${p4}300`] }, "spec.ips[0]"),
    pool("ips outside the subnet", { ips: ["203.0.113.1"] }, "spec.ips[0]"),
    pool("IPv6 in an IPv4 pool", { ips: [`${p6}1`] }, "spec.ips[0]"),
    pool("range end before start", { ips: [`${p4}20-${p4}10`] }, "spec.ips[0]"),
    pool("range with spaces", { ips: [`${p4}1 - ${p4}5`] }, "spec.ips[0]"),
    pool("second item bad", { ips: [`${p4}1`, `${p4}x`] }, "spec.ips[1]"),
    pool("excludeIPs outside", { ips: [`${p4}1`], excludeIPs: ["203.0.113.9"] }, "spec.excludeIPs[0]"),
    pool("excludeIPs malformed", { excludeIPs: ["zzz"] }, "spec.excludeIPs[0]"),
    pool("gateway malformed", { gateway: "gw" }, "spec.gateway"),
    pool("gateway outside subnet", { gateway: "203.0.113.1" }, "spec.gateway"),
    pool("gateway handed out", { ips: [`${p4}1-${p4}9`], gateway: `${p4}5` }, "spec.gateway"),
    pool("IPv6 gateway on IPv4 pool", { gateway: `${p6}1` }, "spec.gateway"),
    pool("route dst malformed", { routes: [{ dst: "nowhere", gw: `${p4}1` }] }, "spec.routes[0].dst"),
    pool("default route as a route", { routes: [{ dst: "0.0.0.0/0", gw: `${p4}1` }] }, "spec.routes[0].dst"),
    pool(
      "IPv6 route in IPv4 pool",
      { routes: [{ dst: "2001:db8::/64", gw: `${p4}1` }] },
      "spec.routes[0].dst",
    ),
    pool(
      "route gw outside subnet",
      { routes: [{ dst: "203.0.113.0/24", gw: "198.51.100.1" }] },
      "spec.routes[0].gw",
    ),
    pool("route gw malformed", { routes: [{ dst: "203.0.113.0/24", gw: "x" }] }, "spec.routes[0].gw"),
    pool(
      "duplicate route dst",
      { routes: [{ dst: "203.0.113.0/24", gw: `${p4}1` }, { dst: "203.0.113.0/24", gw: `${p4}2` }] },
      "spec.routes[1].dst",
    ),
    pool("empty podAffinity", { podAffinity: {} }, "spec.podAffinity"),
    pool(
      "podAffinity In without values",
      { podAffinity: { matchExpressions: [{ key: "app", operator: "In" }] } },
      "spec.podAffinity.matchExpressions[0]",
    ),
    pool(
      "podAffinity bad label key",
      { podAffinity: { matchLabels: { "bad key": "x" } } },
      "spec.podAffinity.matchLabels",
    ),
    pool(
      "nodeAffinity bad label value",
      { nodeAffinity: { matchLabels: { zone: "a b" } } },
      "spec.nodeAffinity.matchLabels",
    ),
    pool("namespaceName not a name", { namespaceName: ["Bad_NS"] }, "spec.namespaceName[0]"),
    pool("nodeName not a name", { nodeName: ["node one"] }, "spec.nodeName[0]"),
    pool("multusName with two slashes", { multusName: ["a/b/c"] }, "spec.multusName[0]"),
    pool("ips overlap another pool", { ips: [`${p4}100-${p4}105`] }, "spec.ips overlaps SpiderIPPool"),
    pool(
      "subnet overlaps another pool's",
      { subnet: v4.replace("/24", "/25"), ips: [`${p4}1`] },
      "spec.subnet",
    ),
    pool(
      "auto-pool affinity with a foreign label",
      { podAffinity: { matchLabels: { app: "x" } } },
      "spec.podAffinity of an auto-created pool",
      { "ipam.spidernet.io/owner-application-name": "web" },
    ),
    {
      kind: "SpiderIPPool",
      why: "IPv6 subnet with host bits",
      spec: { subnet: v6.replace("::/64", "::1/64") },
      field: "spec.subnet",
    },
    {
      kind: "SpiderIPPool",
      why: "IPv6 prefix out of range",
      spec: { subnet: v6.replace("/64", "/129") },
      field: "spec.subnet",
    },
    {
      kind: "SpiderIPPool",
      why: "ips outside the owning subnet's",
      spec: { subnet: fixtures.subnetCIDR, ips: [`${sp}200`] },
      field: "does not offer",
    },
    // SpiderSubnet
    subnet("subnet malformed", { subnet: "192.0.2" }, "spec.subnet"),
    subnet("subnet host bits", { subnet: `${p6}5/64` }, "spec.subnet"),
    subnet("ips outside", { subnet: v6.replace("::/64", ":1::/80"), ips: [`${p6}1`] }, "spec.ips[0]"),
    subnet("gateway outside", { subnet: "198.19.250.0/24", gateway: "198.19.251.1" }, "spec.gateway"),
    subnet(
      "default route",
      { subnet: "198.19.250.0/24", routes: [{ dst: "0.0.0.0/0", gw: "198.19.250.1" }] },
      "spec.routes[0].dst",
    ),
    subnet("overlaps a subnet", { subnet: fixtures.subnetCIDR }, "spec.subnet"),
    subnet("ipVersion mismatch", { subnet: "198.19.250.0/24", ipVersion: 6 }, "spec.ipVersion"),
    subnet(
      "excludeIPs malformed",
      { subnet: "198.19.250.0/24", excludeIPs: ["198.19.250.1-"] },
      "spec.excludeIPs[0]",
    ),
    subnet("does not cover an existing pool", { subnet: v4, ips: [`${p4}1-${p4}2`] }, "does not cover"),
    subnet("empty subnet", { subnet: "", ips: ["198.19.250.1"] }, "spec.subnet is required"),
    // SpiderReservedIP
    rip("empty item", { ips: [""] }, "spec.ips[0]"),
    rip("ips malformed", { ips: ["1.2.3"] }, "spec.ips[0]"),
    rip("mixed families", { ips: [`${p6}9`, "198.19.250.1"] }, "spec.ips[1]"),
    rip("ipVersion 4 with IPv6 ips", { ipVersion: 4, ips: [`${p6}9`] }, "spec.ipVersion"),
    rip("range end before start", { ips: [`${p6}9-${p6}1`] }, "spec.ips[0]"),
    rip("overlaps a reservation", { ips: [`${p6}ff00-${p6}ff10`] }, "spec.ips overlaps SpiderReservedIP"),
    // SpiderCoordinator
    {
      kind: "SpiderCoordinator",
      why: "podCIDRType missing",
      spec: {},
      field: "spec.podCIDRType is required",
    },
    coord("podMACPrefix not hex", { podMACPrefix: "zz:zz" }, "spec.podMACPrefix"),
    coord("podMACPrefix multicast", { podMACPrefix: "01:00" }, "spec.podMACPrefix"),
    coord("hijackCIDR malformed", { hijackCIDR: ["169.254.0.0/33"] }, "spec.hijackCIDR[0]"),
    coord(
      "policy route dst malformed",
      { policyRoutes: [{ dst: "x", gw: "198.51.100.1" }] },
      "spec.policyRoutes[0].dst",
    ),
    coord(
      "policy route families differ",
      { policyRoutes: [{ dst: "203.0.113.0/24", gw: "2001:db8::1" }] },
      "spec.policyRoutes[0]",
    ),
    coord("podDefaultRouteNIC bad", { podDefaultRouteNIC: "eth/0" }, "spec.podDefaultRouteNIC"),
    coord("vethLinkAddress malformed", { vethLinkAddress: "169.254.200" }, "spec.vethLinkAddress"),
    coord("podRPFilter out of range", { podRPFilter: 5 }, "spec.podRPFilter"),
    // SpiderMultusConfig
    smc("macvlan without master", { cniType: "macvlan", macvlan: { master: [] } }, "spec.macvlan.master"),
    smc(
      "two masters, no bond",
      { cniType: "macvlan", macvlan: { master: ["ens192", "ens224"] } },
      "spec.macvlan.bond",
    ),
    smc(
      "master name too long",
      { cniType: "macvlan", macvlan: { master: ["this-name-is-too-long"] } },
      "spec.macvlan.master[0]",
    ),
    smc("master listed twice", {
      cniType: "ipvlan",
      ipvlan: { master: ["ens192", "ens192"], bond: { name: "b0", mode: 1 } },
    }, "spec.ipvlan.master"),
    smc("block of another cniType", { ...mac({}), ipvlan: { master: ["ens192"] } }, "spec.ipvlan"),
    smc("cniType block missing", { cniType: "macvlan" }, "spec.macvlan"),
    smc(
      "matchMasterSubnet on macvlan",
      mac({ ippools: { ipv4: ["p"], matchMasterSubnet: true } }),
      "spec.macvlan.ippools.matchMasterSubnet",
    ),
    smc("bad pool name", mac({ ippools: { ipv4: ["Bad_Pool"] } }), "spec.macvlan.ippools.ipv4[0]"),
    smc("vlan auto with vlanID", {
      cniType: "vlan",
      vlan: { master: ["ens192"], vlanMode: "auto", vlanID: 5 },
    }, "spec.vlan.vlanID"),
    smc("sriov without resourceName", { cniType: "sriov", sriov: {} }, "spec.sriov.resourceName"),
    smc("sriov min rate above max", {
      cniType: "sriov",
      sriov: { resourceName: "r", minTxRateMbps: 10, maxTxRateMbps: 5 },
    }, "spec.sriov.minTxRateMbps"),
    smc("ib-sriov without resourceName", { cniType: "ib-sriov", ibsriov: {} }, "spec.ibsriov.resourceName"),
    smc(
      "ipoib with empty master",
      { cniType: "ipoib", ipoib: { master: "" } },
      "spec.ipoib.master is required",
    ),
    smc("ovs with empty bridge", { cniType: "ovs", ovs: { bridge: " " } }, "spec.ovs.bridge is required"),
    smc("ovs trunk min above max", {
      cniType: "ovs",
      ovs: { bridge: "br1", trunk: [{ minID: 20, maxID: 10 }] },
    }, "spec.ovs.trunk[0]"),
    smc("custom CNI not JSON", { cniType: "custom", customCNI: "{nope" }, "spec.customCNI"),
    smc("chained CNI not JSON", { ...mac({}), chainCNIJsonData: ["{"] }, "spec.chainCNIJsonData[0]"),
    smc(
      "chained CNI without type",
      { ...mac({}), chainCNIJsonData: ['{"mtu":1400}'] },
      "spec.chainCNIJsonData[0]",
    ),
    smc(
      "coordinator MAC prefix bad",
      { ...mac({}), coordinator: { podMACPrefix: "0g:00" } },
      "spec.coordinator.podMACPrefix",
    ),
    smc("cr-name not a name", mac({}), "multus.spidernet.io/cr-name", {
      "multus.spidernet.io/cr-name": "Bad_Name",
    }),
    smc("cni-version unknown", mac({}), "multus.spidernet.io/cni-version", {
      "multus.spidernet.io/cni-version": "9.9.9",
    }),
    smc("rdma inject without resource", mac({}), "cni.spidernet.io/rdma-resource-inject", {
      "cni.spidernet.io/rdma-resource-inject": "g1",
    }),
    smc("inject on custom", { cniType: "custom" }, "cni.spidernet.io/network-resource-inject", {
      "cni.spidernet.io/network-resource-inject": "g1",
    }),
  ];
}

kubeTest(
  "a corpus of invalid objects of every kind is refused by the webhook, each message naming object and field",
  async () => {
    await using scope = await testScope("wh-corpus", { serviceAccount: false });
    await using set = await startControllers(scope);
    const { v4, v4prefix: p4, v6, v6prefix: p6 } = randomSubnets();
    const { v4: sv4, v4prefix: sp } = randomSubnets();
    const ns = scope.namespace;
    // Fixtures the conflict cases run into: a pool, a subnet with a pool inside it, a reservation.
    const meta = (name: string) => ({ name });
    const obj = (kind: string, name: string, spec: unknown) => ({
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind,
      metadata: meta(name),
      spec,
    });
    await set.create(
      `${API}/spiderippools`,
      obj("SpiderIPPool", scope.name("fix-pool"), { subnet: v4, ips: [`${p4}100-${p4}110`] }),
    );
    await set.create(
      `${API}/spidersubnets`,
      obj("SpiderSubnet", scope.name("fix-subnet"), { subnet: sv4, ips: [`${sp}10-${sp}50`] }),
    );
    await set.create(
      `${API}/spiderreservedips`,
      obj("SpiderReservedIP", scope.name("fix-rip"), { ips: [`${p6}ff00-${p6}ff05`] }),
    );

    const cases = corpus(v4, p4, v6, p6, { subnetCIDR: sv4, sp });
    assert.ok(cases.length >= 60, `only ${cases.length} cases`);
    const kinds = new Set(cases.map((c) => c.kind));
    assert.equal(kinds.size, 5);
    const problems: string[] = [];
    for (const [i, c] of cases.entries()) {
      const name = `${scope.name("bad")}-${i}`;
      const namespaced = c.kind === "SpiderMultusConfig";
      const collection = namespaced
        ? `${API}/namespaces/${ns}/${PLURAL[c.kind]}`
        : `${API}/${PLURAL[c.kind]}`;
      const body = {
        apiVersion: "spiderpool.spidernet.io/v2beta1",
        kind: c.kind,
        metadata: {
          name,
          ...(namespaced ? { namespace: ns } : {}),
          labels: c.labels,
          annotations: c.annotations,
        },
        spec: JSON.parse(JSON.stringify(c.spec)),
      };
      let err;
      try {
        err = await failure(set.create(collection, body));
      } catch (e) {
        problems.push(`#${i} ${c.kind} (${c.why}): ${(e as Error).message}`);
        continue;
      }
      const prefix =
        `admission webhook "${PLURAL[c.kind].slice(0, -1)}.spiderpool.spidernet.io" denied the request: ` +
        `${c.kind} "${name}": `;
      if (err.code !== 422 || !err.message.startsWith(prefix) || !err.message.includes(c.field)) {
        problems.push(
          `#${i} ${c.kind} (${c.why}): expected the webhook to name ${c.field}, got ${err.code}: ${err.message}`,
        );
      }
    }
    assert.deepEqual(problems, [], `${problems.length} of ${cases.length} cases:\n${problems.join("\n")}`);
  },
);
