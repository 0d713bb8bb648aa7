import assert from "node:assert/strict";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import {
  adoptEndpoint,
  buildEndpoint,
  detailFor,
  endpointDetailsFor,
  type NICAllocation,
  responseFromDetails,
  responseFromEndpoint,
  type TopController,
} from "../../src/ipam/mod.ts";

const wflags = { enableStatefulSet: true, enableKubevirtStaticIP: true };
const dflags = { enableIPConflictDetection: false, enableGatewayDetection: false };
const v4: SpiderIPPool = {
  metadata: { name: "v4-a" },
  spec: {
    ipVersion: 4,
    subnet: "192.0.2.0/24",
    gateway: "192.0.2.1",
    routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.254" }],
  },
};
const v6: SpiderIPPool = {
  metadata: { name: "v6-a" },
  spec: { ipVersion: 6, subnet: "2001:db8::/64", gateway: "2001:db8::1" },
};
const net1: SpiderIPPool = {
  metadata: { name: "net1-v4" },
  spec: { ipVersion: 4, subnet: "203.0.113.0/24" },
};
const top = (kind: string, apiVersion = "apps/v1"): TopController => ({
  apiVersion,
  kind,
  name: "web",
  namespace: "default",
  uid: "c1",
});
const alloc = (
  nic: string,
  index: number,
  ip: string,
  pool: SpiderIPPool,
  cleanGateway = false,
): NICAllocation => ({
  nic,
  index,
  ip,
  pool,
  cleanGateway,
});

Deno.test("endpointDetailsFor: one detail per NIC with both families, gateways, routes, vlan 0", () => {
  const details = endpointDetailsFor(
    [
      alloc("net1", 1, "203.0.113.5", net1),
      alloc("eth0", 0, "192.0.2.10", v4),
      alloc("eth0", 0, "2001:db8::10", v6),
    ],
    [{ dst: "203.0.113.128/25", gw: "192.0.2.2" }],
  );
  assert.deepEqual(details, [
    {
      interface: "eth0",
      vlan: 0,
      ipv4: "192.0.2.10/24",
      ipv4Pool: "v4-a",
      ipv4Gateway: "192.0.2.1",
      ipv6: "2001:db8::10/64",
      ipv6Pool: "v6-a",
      ipv6Gateway: "2001:db8::1",
      cleanGateway: false,
      routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.254" }, { dst: "203.0.113.128/25", gw: "192.0.2.2" }],
    },
    { interface: "net1", vlan: 0, ipv4: "203.0.113.5/24", ipv4Pool: "net1-v4" },
  ]);
});

Deno.test("endpointDetailsFor: cleanGateway is recorded only when a gateway exists", () => {
  const [d] = endpointDetailsFor([alloc("eth0", 0, "203.0.113.5", net1, true)], []);
  assert.equal("cleanGateway" in d, false);
});

Deno.test("buildEndpoint: a Deployment pod's endpoint is owned by the Pod and has the finalizer", () => {
  const details = endpointDetailsFor([alloc("eth0", 0, "192.0.2.10", v4)], []);
  const ep = buildEndpoint({
    namespace: "default",
    name: "web-abc",
    pod: { name: "web-abc", uid: "u1" },
    node: "node-1",
    top: top("Deployment"),
    details,
    flags: wflags,
  });
  assert.deepEqual(ep, {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderEndpoint",
    metadata: {
      name: "web-abc",
      namespace: "default",
      finalizers: ["spiderpool.spidernet.io"],
      ownerReferences: [{
        apiVersion: "v1",
        kind: "Pod",
        name: "web-abc",
        uid: "u1",
        controller: true,
        blockOwnerDeletion: true,
      }],
    },
    status: {
      current: { uid: "u1", node: "node-1", ips: details },
      ownerControllerType: "Deployment",
      ownerControllerName: "web",
    },
  });
});

Deno.test("buildEndpoint: StatefulSet and KubeVirt endpoints have no ownerReference (they outlive the pod)", () => {
  for (const t of [top("StatefulSet"), top("VirtualMachineInstance", "kubevirt.io/v1")]) {
    const ep = buildEndpoint({
      namespace: "default",
      name: "db-0",
      pod: { name: "db-0", uid: "u1" },
      node: "n",
      top: t,
      details: [],
      flags: wflags,
    });
    assert.equal(ep.metadata.ownerReferences, undefined, t.kind);
    assert.equal(ep.status.ownerControllerType, t.kind);
  }
  // With the feature off a StatefulSet pod is an ordinary pod.
  const off = buildEndpoint({
    namespace: "default",
    name: "db-0",
    pod: { name: "db-0", uid: "u1" },
    node: "n",
    top: top("StatefulSet"),
    details: [],
    flags: { ...wflags, enableStatefulSet: false },
  });
  assert.equal(off.metadata.ownerReferences?.[0].kind, "Pod");
});

Deno.test("buildEndpoint with an existing endpoint keeps its metadata and other NICs, replaces this NIC", () => {
  const existing: SpiderEndpoint = {
    metadata: {
      name: "db-0",
      namespace: "default",
      resourceVersion: "42",
      finalizers: ["spiderpool.spidernet.io"],
    },
    status: {
      current: {
        uid: "old",
        node: "node-9",
        ips: [{ interface: "eth0", ipv4: "192.0.2.99/24" }, { interface: "net1", ipv4: "203.0.113.9/24" }],
      },
      ownerControllerType: "StatefulSet",
      ownerControllerName: "db",
    },
  };
  const ep = buildEndpoint({
    namespace: "default",
    name: "db-0",
    pod: { name: "db-0", uid: "new" },
    node: "node-1",
    top: top("StatefulSet"),
    details: [{ interface: "eth0", ipv4: "192.0.2.10/24" }],
    flags: wflags,
    existing,
  });
  assert.equal(ep.metadata.resourceVersion, "42");
  assert.deepEqual(ep.metadata.finalizers, ["spiderpool.spidernet.io"]);
  assert.deepEqual(ep.status.current, {
    uid: "new",
    node: "node-1",
    ips: [{ interface: "net1", ipv4: "203.0.113.9/24" }, { interface: "eth0", ipv4: "192.0.2.10/24" }],
  });
});

Deno.test("responseFromDetails: IPs and routes of every NIC, default routes per family unless cleanGateway", () => {
  const details = endpointDetailsFor([
    alloc("eth0", 0, "192.0.2.10", v4),
    alloc("eth0", 0, "2001:db8::10", v6),
    alloc("net1", 1, "192.0.2.11", v4, true),
  ], []);
  const r = responseFromDetails(details, dflags);
  assert.deepEqual(r.ips.map((c) => [c.nic, c.version, c.address, c.gateway, c.ipPool, c.vlan]), [
    ["eth0", 4, "192.0.2.10/24", "192.0.2.1", "v4-a", 0],
    ["eth0", 6, "2001:db8::10/64", "2001:db8::1", "v6-a", 0],
    ["net1", 4, "192.0.2.11/24", "192.0.2.1", "v4-a", 0],
  ]);
  assert.deepEqual(r.routes, [
    { ifName: "eth0", dst: "198.51.100.0/24", gw: "192.0.2.254" },
    { ifName: "eth0", dst: "0.0.0.0/0", gw: "192.0.2.1" },
    { ifName: "eth0", dst: "::/0", gw: "2001:db8::1" },
    { ifName: "net1", dst: "198.51.100.0/24", gw: "192.0.2.254" },
  ]);
});

Deno.test("responseFromEndpoint answers a repeated ADD exactly like the first one", () => {
  const details = endpointDetailsFor([alloc("eth0", 0, "192.0.2.10", v4, true)], []);
  const ep = buildEndpoint({
    namespace: "default",
    name: "web-abc",
    pod: { name: "web-abc", uid: "u1" },
    node: "n",
    top: top("Deployment"),
    details,
    flags: wflags,
  });
  const again = responseFromEndpoint(ep, "eth0", dflags);
  assert.deepEqual(again.response, responseFromDetails(details, dflags));
  assert.equal(again.endpoint, undefined);
  assert.equal(again.response.routes?.some((r) => r.dst === "0.0.0.0/0"), false, "cleanGateway honoured");
});

Deno.test("responseFromEndpoint in no-name mode names the first unnamed NIC after the ADD's ifName", () => {
  const details = endpointDetailsFor([
    alloc("eth0", 0, "192.0.2.10", v4),
    alloc("", 1, "203.0.113.5", net1),
    alloc("", 2, "203.0.113.6", net1),
  ], []);
  const ep = buildEndpoint({
    namespace: "default",
    name: "p",
    pod: { name: "p", uid: "u1" },
    node: "n",
    top: top("Deployment"),
    details,
    flags: wflags,
  });
  assert.equal(detailFor(ep, "net1")?.ipv4, "203.0.113.5/24");
  const r = responseFromEndpoint(ep, "net1", dflags);
  assert.deepEqual(r.endpoint?.status.current.ips.map((d) => d.interface), ["eth0", "net1", ""]);
  assert.ok(r.response.ips.some((c) => c.nic === "net1" && c.address === "203.0.113.5/24"));
  const r2 = responseFromEndpoint(r.endpoint!, "net2", dflags);
  assert.deepEqual(r2.endpoint?.status.current.ips.map((d) => d.interface), ["eth0", "net1", "net2"]);
});

Deno.test("adoptEndpoint gives a fixed-IP endpoint to the new pod UID and node, keeping its addresses", () => {
  const details = endpointDetailsFor([alloc("eth0", 0, "192.0.2.10", v4)], []);
  const ep = buildEndpoint({
    namespace: "default",
    name: "db-0",
    pod: { name: "db-0", uid: "old" },
    node: "node-1",
    top: top("StatefulSet"),
    details,
    flags: wflags,
  });
  const adopted = adoptEndpoint(ep, { uid: "new", node: "node-2" });
  assert.deepEqual(adopted.status.current, { uid: "new", node: "node-2", ips: details });
  assert.equal(ep.status.current.uid, "old", "input untouched");
});
