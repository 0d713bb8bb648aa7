import assert from "node:assert/strict";
import type { SpiderIPPool } from "../../src/api/types.ts";
import {
  dropReason,
  type FilterContext,
  filterPools,
  multusNetworkFor,
  NoPoolAvailableError,
  requireUsablePools,
  sortPools,
} from "../../src/ipam/mod.ts";

const pool = (
  name: string,
  spec: Partial<SpiderIPPool["spec"]> = {},
  meta: Partial<SpiderIPPool["metadata"]> = {},
): SpiderIPPool => ({
  metadata: { name, ...meta },
  spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"], ...spec },
});

const ctx: FilterContext = {
  family: 4,
  nic: "eth0",
  pod: { namespace: "team-a", labels: { app: "web" } },
  namespace: { name: "team-a", labels: { tier: "gold" } },
  node: { name: "node-1", labels: { zone: "z1" } },
  multusNetwork: { namespace: "kube-system", name: "macvlan-a" },
  agentNamespace: "kube-system",
  top: { apiVersion: "apps/v1", kind: "Deployment", name: "web", namespace: "team-a", uid: "d1" },
};

const appLabels = (name: string) => ({
  "ipam.spidernet.io/app-api-group": "apps",
  "ipam.spidernet.io/app-api-version": "v1",
  "ipam.spidernet.io/app-kind": "Deployment",
  "ipam.spidernet.io/app-namespace": "team-a",
  "ipam.spidernet.io/app-name": name,
});
const autoPool = (name: string, app: string, spec: Partial<SpiderIPPool["spec"]> = {}) =>
  pool(name, { podAffinity: { matchLabels: appLabels(app) }, ...spec }, {
    labels: { "ipam.spidernet.io/owner-application-name": app },
  });

Deno.test("filter: each reason a pool is dropped (table)", () => {
  const rows: [string, SpiderIPPool | undefined, RegExp][] = [
    ["missing", undefined, /^SpiderIPPool not found$/],
    ["terminating", pool("p", {}, { deletionTimestamp: "2026-01-01T00:00:00Z" }), /^terminating$/],
    ["disabled", pool("p", { disable: true }), /spec.disable/],
    [
      "no ipVersion and no subnet to derive it from",
      pool("p", { ipVersion: undefined, subnet: "" }),
      /spec.ipVersion is unset and cannot be derived from spec.subnet/,
    ],
    [
      "ipVersion disagrees with the subnet",
      pool("p", { ipVersion: 6 }),
      /spec\.ipVersion 6 does not match spec\.subnet, which is IPv4/,
    ],
    [
      "gateway does not parse",
      pool("p", { gateway: "gw" }),
      /invalid spec: spec.gateway: invalid IPv4 address "gw"/,
    ],
    [
      "other family",
      pool("p", { ipVersion: 6, subnet: "2001:db8::/64", ips: ["2001:db8::10-2001:db8::20"] }),
      /an IPv6 pool, not IPv4/,
    ],
    ["nodeName", pool("p", { nodeName: ["node-2"] }), /node "node-1" is not in spec.nodeName/],
    [
      "nodeAffinity",
      pool("p", { nodeAffinity: { matchLabels: { zone: "z2" } } }),
      /do not match spec.nodeAffinity/,
    ],
    [
      "namespaceName",
      pool("p", { namespaceName: ["team-b"] }),
      /namespace "team-a" is not in spec.namespaceName/,
    ],
    [
      "namespaceAffinity",
      pool("p", { namespaceAffinity: { matchLabels: { tier: "silver" } } }),
      /do not match spec.namespaceAffinity/,
    ],
    ["podAffinity", pool("p", { podAffinity: { matchLabels: { app: "db" } } }), /pod labels do not match/],
    [
      "auto-pool of another app",
      autoPool("p", "api"),
      /auto-pool of another application \(Deployment team-a\/api\)/,
    ],
    [
      "multusName",
      pool("p", { multusName: ["macvlan-b"] }),
      /uses network kube-system\/macvlan-a, not one of/,
    ],
  ];
  for (const [name, p, re] of rows) assert.match(dropReason(p, ctx) ?? "(kept)", re, name);
});

Deno.test("filter: pools whose every rule matches are kept", () => {
  const rows: [string, SpiderIPPool][] = [
    ["plain", pool("p")],
    ["nodeName", pool("p", { nodeName: ["node-1"] })],
    ["nodeAffinity", pool("p", { nodeAffinity: { matchLabels: { zone: "z1" } } })],
    ["namespaceName", pool("p", { namespaceName: ["team-a"] })],
    ["namespaceAffinity", pool("p", { namespaceAffinity: { matchLabels: { tier: "gold" } } })],
    ["podAffinity", pool("p", { podAffinity: { matchLabels: { app: "web" } } })],
    ["multusName bare name = agent namespace", pool("p", { multusName: ["macvlan-a"] })],
    ["multusName ns/name", pool("p", { multusName: ["kube-system/macvlan-a"] })],
    ["auto-pool of this app", autoPool("p", "web")],
  ];
  for (const [name, p] of rows) assert.equal(dropReason(p, ctx), undefined, name);
});

Deno.test("filter: nodeName takes precedence over nodeAffinity, namespaceName over namespaceAffinity", () => {
  const p = pool("p", {
    nodeName: ["node-1"],
    nodeAffinity: { matchLabels: { zone: "nowhere" } },
    namespaceName: ["team-a"],
    namespaceAffinity: { matchLabels: { tier: "none" } },
  });
  assert.equal(dropReason(p, ctx), undefined);
});

Deno.test("filter: an auto-pool of this app skips the multusName check (upstream returns early)", () => {
  assert.equal(dropReason(autoPool("p", "web", { multusName: ["other-net"] }), ctx), undefined);
});

Deno.test("filter: multusName with no known network for the NIC drops the pool", () => {
  assert.match(
    dropReason(pool("p", { multusName: ["macvlan-a"] }), { ...ctx, multusNetwork: undefined }) ?? "",
    /no NetworkAttachmentDefinition is known for eth0/,
  );
});

Deno.test("filter keeps candidate order and reports every dropped pool", () => {
  const pools = [pool("a", { disable: true }), pool("b"), pool("c", { nodeName: ["x"] }), pool("d")];
  const r = filterPools(["d", "a", "b", "c", "missing"], pools, ctx);
  assert.deepEqual(r.usable.map((p) => p.metadata.name), ["d", "b"]);
  assert.deepEqual(r.dropped.map((d) => d.pool), ["a", "c", "missing"]);
});

Deno.test("filter: when all pools are dropped the error lists each pool and why", () => {
  const pools = [pool("a", { disable: true }), pool("b", { nodeName: ["node-9"] })];
  assert.throws(() => requireUsablePools(["a", "b"], pools, ctx), (e: unknown) => {
    assert.ok(e instanceof NoPoolAvailableError);
    assert.equal(
      e.message,
      'no IPPool available, all IPv4 IPPools ["a","b"] of eth0 filtered out: a: disabled (spec.disable: true); ' +
        'b: node "node-1" is not in spec.nodeName',
    );
    return true;
  });
});

Deno.test("filter: an empty candidate list is not an error (the family gets no address)", () => {
  assert.deepEqual(requireUsablePools([], [], ctx), []);
});

Deno.test("sort: podAffinity > nodeName > nodeAffinity > namespaceName > namespaceAffinity > multusName > none", () => {
  const sel = { matchLabels: { a: "b" } };
  const pools = [
    pool("plain"),
    pool("multus", { multusName: ["n"] }),
    pool("nsAff", { namespaceAffinity: sel }),
    pool("nsName", { namespaceName: ["x"] }),
    pool("nodeAff", { nodeAffinity: sel }),
    pool("nodeName", { nodeName: ["x"] }),
    pool("podAff", { podAffinity: sel }),
  ];
  assert.deepEqual(sortPools(pools).map((p) => p.metadata.name), [
    "podAff",
    "nodeName",
    "nodeAff",
    "nsName",
    "nsAff",
    "multus",
    "plain",
  ]);
});

Deno.test("sort: comparisons are lexicographic (podAffinity alone beats all the others together)", () => {
  const sel = { matchLabels: { a: "b" } };
  const many = pool("many", { nodeName: ["x"], nodeAffinity: sel, namespaceName: ["x"], multusName: ["n"] });
  const pod = pool("pod", { podAffinity: sel });
  assert.deepEqual(sortPools([many, pod]).map((p) => p.metadata.name), ["pod", "many"]);
});

Deno.test("sort is stable: equal pools keep candidate order", () => {
  const names = ["e", "b", "d", "a", "c"];
  assert.deepEqual(sortPools(names.map((n) => pool(n))).map((p) => p.metadata.name), names);
});

Deno.test("multus network: eth0 uses default-network, else the cluster network; netN uses networks", () => {
  const annotations = {
    "v1.multus-cni.io/default-network": "calico",
    "k8s.v1.cni.cncf.io/networks": "macvlan-a,other/sriov-b@ens1",
  };
  const p = { namespace: "team-a", annotations };
  assert.deepEqual(multusNetworkFor("eth0", p, "kube-system"), { namespace: "kube-system", name: "calico" });
  assert.deepEqual(multusNetworkFor("net1", p, "kube-system"), { namespace: "team-a", name: "macvlan-a" });
  assert.deepEqual(multusNetworkFor("ens1", p, "kube-system"), { namespace: "other", name: "sriov-b" });
  assert.equal(multusNetworkFor("net2", p, "kube-system"), undefined);
  const bare = { namespace: "team-a" };
  assert.deepEqual(multusNetworkFor("eth0", bare, "spider", "kube-system/k8s-pod-network"), {
    namespace: "kube-system",
    name: "k8s-pod-network",
  });
  assert.deepEqual(multusNetworkFor("0", bare, "spider", "calico"), { namespace: "spider", name: "calico" });
});

Deno.test("filter: with match_master_subnet a pool is kept only if a master address is in its subnet", () => {
  const p = pool("p");
  assert.equal(dropReason(p, { ...ctx, masterAddresses: ["198.51.100.7/24", "192.0.2.254/24"] }), undefined);
  assert.match(
    dropReason(p, { ...ctx, masterAddresses: ["198.51.100.7/24"] }) ?? "",
    /no address of the master interface \(198.51.100.7\/24\) is in subnet 192.0.2.0\/24/,
  );
  assert.match(dropReason(p, { ...ctx, masterAddresses: [] }) ?? "", /\(none\)/);
});
