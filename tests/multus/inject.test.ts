// The pod resource-injection rules (spec §9, last paragraph) as a pure plan: which annotation asks, which
// SpiderMultusConfigs answer, in which order their networks are listed, which resources are added, every
// refusal, and the JSON Patch applied to real pod shapes.
import assert from "node:assert/strict";
import type { MultusCNIConfigSpec, SpiderMultusConfig } from "../../src/api/types.ts";
import {
  escapePointer,
  injectionRequest,
  mergeNetworks,
  type PatchOp,
  planPodInjection,
  type PodForInjection,
} from "../../src/multus/inject.ts";
import { stored } from "./stored.ts";

const RDMA = "cni.spidernet.io/rdma-resource-inject";
const NET = "cni.spidernet.io/network-resource-inject";
const NETWORKS = "k8s.v1.cni.cncf.io/networks";

function smc(
  ns: string,
  name: string,
  spec: MultusCNIConfigSpec,
  annotations: Record<string, string> = {},
): SpiderMultusConfig {
  return stored({ metadata: { name, namespace: ns, annotations }, spec });
}

const macvlan = (ns: string, name: string, master: string[], extra: Record<string, unknown> = {}) =>
  smc(ns, name, {
    cniType: "macvlan",
    macvlan: {
      master,
      rdmaResourceName: `spidernet.io/shared_${master[0]}`,
      ippools: { ipv4: [`${name}-v4`] },
      ...extra,
    },
  });

function pod(
  annotations?: Record<string, string>,
  containers: PodForInjection["spec"] = undefined,
): PodForInjection {
  return {
    metadata: { name: "p", namespace: "app", ...(annotations ? { annotations } : {}) },
    spec: containers ?? { containers: [{ name: "c" }] },
  };
}

/** Applies RFC 6902 add/replace operations the way the API server does (parents must exist). */
function apply<T>(doc: T, patch: PatchOp[]): T {
  const out = structuredClone(doc) as Record<string, unknown>;
  for (const op of patch) {
    const tokens = op.path.slice(1).split("/").map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));
    let at: Record<string, unknown> | unknown[] = out;
    for (const t of tokens.slice(0, -1)) {
      const next: unknown = Array.isArray(at) ? at[Number(t)] : at[t];
      if (next === undefined || next === null) throw new Error(`${op.path}: parent ${t} does not exist`);
      at = next as Record<string, unknown>;
    }
    const last = tokens[tokens.length - 1];
    if (op.op === "replace" && (at as Record<string, unknown>)[last] === undefined) {
      throw new Error(`${op.path}: replace of an absent member`);
    }
    (at as Record<string, unknown>)[last] = structuredClone(op.value);
  }
  return out as T;
}

const inject = (
  p: PodForInjection,
  configs: SpiderMultusConfig[],
  nsAnno?: Record<string, string>,
  opts = {},
) => {
  const req = injectionRequest(p.metadata?.annotations, nsAnno);
  assert.ok(req, "an injection request");
  return planPodInjection(p, req, configs, opts);
};

Deno.test("inject: the pod's own annotations come first (rdma, then network), then the namespace's", () => {
  assert.deepEqual(injectionRequest({ [NET]: "a", [RDMA]: "b" }, { [RDMA]: "c" }), {
    key: RDMA,
    value: "b",
    source: "pod",
  });
  assert.deepEqual(injectionRequest({ [NET]: "a" }, { [RDMA]: "c" }), {
    key: NET,
    value: "a",
    source: "pod",
  });
  assert.deepEqual(injectionRequest({ other: "x" }, { [NET]: "t", [RDMA]: "c" }), {
    key: RDMA,
    value: "c",
    source: "namespace",
  });
  assert.deepEqual(injectionRequest(undefined, { [NET]: "tenant-a" }), {
    key: NET,
    value: "tenant-a",
    source: "namespace",
  });
  assert.equal(injectionRequest({ a: "b" }, { c: "d" }), undefined);
  assert.equal(injectionRequest(undefined, undefined), undefined);
});

Deno.test("inject: networks sorted by master, bond and resource name, then namespace/name, with NAD names", () => {
  const configs = [
    smc("b", "sriov-z", {
      cniType: "sriov",
      sriov: { resourceName: "spidernet.io/a_sriov", ippools: { ipv4: ["p"] } },
    }),
    macvlan("b", "eth9", ["eth9"]),
    smc("a", "bond", {
      cniType: "ipvlan",
      ipvlan: { master: ["eth1", "eth2"], bond: { name: "bond0", mode: 1 }, ippools: { ipv6: ["p6"] } },
    }),
    macvlan("b", "x-eth1", ["eth1"]),
    macvlan("a", "y-eth1", ["eth1"]),
    smc("a", "renamed", { cniType: "ipoib", ipoib: { master: "ib0", ippools: { ipv4: ["ib"] } } }, {
      "multus.spidernet.io/cr-name": "ib-net",
    }),
  ];
  const plan = inject(pod({ [NET]: "gpu" }), configs);
  assert.equal(plan.action, "inject");
  if (plan.action !== "inject") return;
  assert.deepEqual(plan.configs, ["a/bond", "a/y-eth1", "b/x-eth1", "b/eth9", "a/renamed", "b/sriov-z"]);
  assert.equal(plan.networks, "a/bond,a/y-eth1,b/x-eth1,b/eth9,a/ib-net,b/sriov-z");
});

Deno.test("inject: each distinct resource becomes a limit of 1 on the first container", () => {
  const configs = [
    macvlan("ns", "m1", ["eth1"]),
    macvlan("ns", "m1b", ["eth1"], { vlanID: 10 }),
    smc("ns", "s", {
      cniType: "sriov",
      sriov: { resourceName: "spidernet.io/gpu1sriov", ippools: { ipv4: ["p"] } },
    }),
    smc("ns", "no-rdma", { cniType: "macvlan", macvlan: { master: ["eth5"], ippools: { ipv4: ["p"] } } }),
  ];
  const p = pod({ [NET]: "v" }, { containers: [{ name: "c" }, { name: "d" }] });
  const plan = inject(p, configs);
  assert.equal(plan.action, "inject");
  if (plan.action !== "inject") return;
  assert.deepEqual(plan.resources, { "spidernet.io/shared_eth1": "1", "spidernet.io/gpu1sriov": "1" });
  const after = apply(p, plan.patch);
  assert.deepEqual(after.spec?.containers, [
    { name: "c", resources: { limits: { "spidernet.io/shared_eth1": "1", "spidernet.io/gpu1sriov": "1" } } },
    { name: "d" },
  ]);
  assert.deepEqual(after.metadata?.annotations, { [NET]: "v", [NETWORKS]: "ns/m1,ns/m1b,ns/no-rdma,ns/s" });
});

Deno.test("inject: resources some container already declares (limit or request) are not added again", () => {
  const configs = [macvlan("ns", "a", ["eth1"]), macvlan("ns", "b", ["eth2"]), macvlan("ns", "c", ["eth3"])];
  const p = pod({ [RDMA]: "v" }, {
    containers: [
      { name: "c", resources: { limits: { cpu: "1" } } },
      {
        name: "d",
        resources: {
          limits: { "spidernet.io/shared_eth1": 2 },
          requests: { "spidernet.io/shared_eth2": "1" },
        },
      },
    ],
  });
  const plan = inject(p, configs);
  if (plan.action !== "inject") throw new Error(plan.message);
  assert.deepEqual(plan.resources, { "spidernet.io/shared_eth3": "1" });
  assert.deepEqual(
    plan.patch.find((op) => op.path.includes("resources")),
    { op: "add", path: "/spec/containers/0/resources/limits/spidernet.io~1shared_eth3", value: "1" },
  );
  assert.deepEqual(apply(p, plan.patch).spec?.containers?.[0].resources, {
    limits: { cpu: "1", "spidernet.io/shared_eth3": "1" },
  });
});

Deno.test("inject: the patch creates missing annotations, resources and limits objects", () => {
  const configs = [macvlan("ns", "a", ["eth1"])];
  const bare: PodForInjection = {
    metadata: { name: "p", namespace: "app" },
    spec: { containers: [{ name: "c" }] },
  };
  const plan = inject(bare, configs, { [NET]: "tenant" });
  if (plan.action !== "inject") throw new Error(plan.message);
  assert.deepEqual(plan.patch, [
    { op: "add", path: "/metadata/annotations", value: { [NETWORKS]: "ns/a" } },
    {
      op: "add",
      path: "/spec/containers/0/resources",
      value: { limits: { "spidernet.io/shared_eth1": "1" } },
    },
  ]);
  const withRequests = pod({ [NET]: "x" }, {
    containers: [{ name: "c", resources: { requests: { cpu: "1" } } }],
  });
  const plan2 = inject(withRequests, configs);
  if (plan2.action !== "inject") throw new Error(plan2.message);
  assert.deepEqual(apply(withRequests, plan2.patch).spec?.containers?.[0].resources, {
    requests: { cpu: "1" },
    limits: { "spidernet.io/shared_eth1": "1" },
  });
});

Deno.test("inject: networks the pod lists already are kept first and not repeated (comma form)", () => {
  const configs = [macvlan("app", "a", ["eth1"]), macvlan("ns", "b", ["eth2"])];
  const p = pod({ [NET]: "v", [NETWORKS]: "mine, a@net5" });
  const plan = inject(p, configs);
  if (plan.action !== "inject") throw new Error(plan.message);
  assert.equal(plan.networks, "mine,a@net5,ns/b");
  assert.deepEqual(plan.patch[0], {
    op: "replace",
    path: "/metadata/annotations/k8s.v1.cni.cncf.io~1networks",
    value: "mine,a@net5,ns/b",
  });
  assert.equal(
    mergeNetworks("ns/b,app/a", [{ namespace: "app", name: "a" }, { namespace: "ns", name: "b" }], "app"),
    "ns/b,app/a",
  );
});

Deno.test("inject: a JSON networks annotation stays JSON, with the networks appended", () => {
  const current = '[{"name":"mine","interface":"net9"},{"name":"b","namespace":"ns"}]';
  assert.equal(
    mergeNetworks(current, [{ namespace: "ns", name: "b" }, { namespace: "ns", name: "c" }], "app"),
    '[{"name":"mine","interface":"net9"},{"name":"b","namespace":"ns"},{"name":"c","namespace":"ns"}]',
  );
  assert.throws(() => mergeNetworks('{"name":"x"}', [], "app"), /not a list/);
});

Deno.test("inject: a pod that already has everything gets an empty patch", () => {
  const configs = [macvlan("ns", "a", ["eth1"])];
  const p = pod({ [NET]: "v", [NETWORKS]: "ns/a" }, {
    containers: [{ name: "c", resources: { limits: { "spidernet.io/shared_eth1": "1" } } }],
  });
  const plan = inject(p, configs);
  assert.equal(plan.action === "inject" && plan.patch.length, 0);
});

Deno.test("inject: refusals say what is missing and what to do", () => {
  const cases: [string, PodForInjection, SpiderMultusConfig[], RegExp][] = [
    [
      "no SMC",
      pod({ [NET]: "none" }),
      [],
      /labelled cni\.spidernet\.io\/network-resource-inject=none, but there is none; annotate/,
    ],
    [
      "bad label value",
      pod({ [NET]: "has space" }),
      [],
      /label value "has space" is invalid.*no SpiderMultusConfig can carry it/,
    ],
    [
      "ovs",
      pod({ [NET]: "v" }),
      [smc("ns", "o", { cniType: "ovs", ovs: { bridge: "br0", ippools: { ipv4: ["p"] } } })],
      /SpiderMultusConfig ns\/o has cniType ovs, which resource injection does not support/,
    ],
    [
      "custom",
      pod({ [RDMA]: "v" }),
      [smc("ns", "c", { cniType: "custom", customCNI: "{}" })],
      /cniType custom/,
    ],
    [
      "rdma without resource",
      pod({ [RDMA]: "v" }),
      [smc("ns", "m", { cniType: "macvlan", macvlan: { master: ["eth1"], ippools: { ipv4: ["p"] } } })],
      /ns\/m has no RDMA resource in spec\.macvlan\.rdmaResourceName; set it/,
    ],
    [
      "rdma without pools",
      pod({ [RDMA]: "v" }),
      [smc("ns", "m", { cniType: "sriov", sriov: { resourceName: "r" } })],
      /ns\/m has no ippools/,
    ],
    [
      "network resource without pools",
      pod({ [NET]: "v" }),
      [smc("ns", "m", { cniType: "ib-sriov", ibsriov: { resourceName: "r" } })],
      /ns\/m has no ippools/,
    ],
    [
      "no containers",
      pod({ [NET]: "v" }, { containers: [] }),
      [macvlan("ns", "a", ["eth1"])],
      /no container/,
    ],
    [
      "unreadable networks",
      pod({ [NET]: "v", [NETWORKS]: "[not json" }),
      [macvlan("ns", "a", ["eth1"])],
      /annotation "\[not json" cannot be read/,
    ],
    [
      "only terminating SMCs",
      pod({ [NET]: "v" }),
      [{
        ...macvlan("ns", "a", ["eth1"]),
        metadata: { name: "a", namespace: "ns", deletionTimestamp: "2026-01-01T00:00:00Z" },
      }],
      /but there is none/,
    ],
  ];
  for (const [what, p, configs, message] of cases) {
    const plan = inject(p, configs);
    assert.equal(plan.action, "refuse", what);
    assert.match(plan.action === "refuse" ? plan.message : "", message, what);
  }
});

Deno.test("inject: networks without a resource need no pool; ipoib injects its network but no resource", () => {
  const configs = [
    smc("ns", "plain", { cniType: "vlan", vlan: { master: ["eth0"], vlanID: 5 } }),
    smc("ns", "ib", { cniType: "ipoib", ipoib: { master: "ib0", ippools: { ipv4: ["p"] } } }),
  ];
  const plan = inject(pod({ [NET]: "v" }), configs);
  if (plan.action !== "inject") throw new Error(plan.message);
  assert.equal(plan.networks, "ns/plain,ns/ib");
  assert.deepEqual(plan.resources, {});
  const rdma = inject(pod({ [RDMA]: "v" }), [configs[1]]);
  assert.equal(rdma.action, "inject", "an IPoIB master counts as its RDMA device for rdma-resource-inject");
});

Deno.test("inject: with the network resource device plugin, master NICs and auto-VLAN sub-ENIs are requested", () => {
  const configs = [
    macvlan("ns", "a", ["eth1"]),
    smc("ns", "b", {
      cniType: "ipvlan",
      ipvlan: { master: ["eth2", "eth3"], bond: { name: "bond0", mode: 1 } },
    }),
    smc("ns", "v1", { cniType: "vlan", vlan: { master: ["eth4"], vlanMode: "auto" } }),
    smc("ns", "v2", { cniType: "vlan", vlan: { master: ["eth4"], vlanMode: "auto" } }),
  ];
  const p = pod({ [NET]: "v" }, {
    containers: [{ name: "c", resources: { limits: { "spidernet.io/eth3-nic": "1" } } }],
  });
  const plan = inject(p, configs, undefined, { networkResources: { masterNIC: true, subENI: true } });
  if (plan.action !== "inject") throw new Error(plan.message);
  const res = apply(p, plan.patch).spec?.containers?.[0].resources;
  assert.deepEqual(res?.limits, {
    "spidernet.io/eth3-nic": "1",
    "spidernet.io/shared_eth1": "1",
    "spidernet.io/eth1-nic": "1",
    "spidernet.io/eth2-nic": "1",
    "spidernet.io/eth4-nic": "1",
    "spidernet.io/sub-eni": "2",
  });
  assert.deepEqual(res?.requests, {
    "spidernet.io/eth1-nic": "1",
    "spidernet.io/eth2-nic": "1",
    "spidernet.io/eth4-nic": "1",
    "spidernet.io/sub-eni": "2",
  });
  const off = inject(p, configs);
  assert.deepEqual(off.action === "inject" && off.resources, { "spidernet.io/shared_eth1": "1" });
});

Deno.test("inject: JSON Pointer tokens escape ~ and /", () => {
  assert.equal(escapePointer("a/b~c"), "a~1b~0c");
});
