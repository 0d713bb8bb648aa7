// The SpiderCoordinator status rules (spec §7.3) as pure functions: reading kubeadm-config and the
// kube-controller-manager's flags, the default CNI's type, and the status for every podCIDRType and failure.
import assert from "node:assert/strict";
import {
  byCreation,
  cidrsFromKCMPod,
  cidrsFromKubeadmConfig,
  type CoordinatorFacts,
  planCoordinatorStatus,
  podCIDRTypeOfCNI,
  sameStatus,
} from "../../src/controller/coordinator/cidrs.ts";
import { readDefaultCNI } from "../../src/controller/coordinator/cniconf.ts";

const KUBEADM = {
  ClusterConfiguration: [
    "apiServer: {}",
    "apiVersion: kubeadm.k8s.io/v1beta3",
    "kind: ClusterConfiguration",
    "networking:",
    "  dnsDomain: cluster.local",
    "  podSubnet: 198.18.0.0/17,2001:db8:42::/56",
    '  serviceSubnet: "198.18.128.0/20" # services',
  ].join("\n"),
};

const CLUSTER = { podCIDR: ["198.18.0.0/17"], serviceCIDR: ["198.18.128.0/20"], source: "kubeadm" };
const svc = (name: string, created: string, cidrs: string[], deleting = false) => ({
  metadata: { name, creationTimestamp: created, ...(deleting ? { deletionTimestamp: created } : {}) },
  spec: { cidrs },
});

const facts = (f: Partial<CoordinatorFacts>): CoordinatorFacts => ({ name: "default", ...f });

Deno.test("coordinator cidrs: the default CNI's name gives podCIDRType auto its meaning", () => {
  assert.deepEqual(
    ["calico", "k8s-pod-network", "cilium", "flannel", "kindnet", "", undefined].map(podCIDRTypeOfCNI),
    ["calico", "calico", "cilium", "cluster", "none", "none", "none"],
  );
});

Deno.test("coordinator cidrs: kubeadm-config's ClusterConfiguration gives dual-stack pod and service subnets", () => {
  assert.deepEqual(cidrsFromKubeadmConfig(KUBEADM), {
    podCIDR: ["198.18.0.0/17", "2001:db8:42::/56"],
    serviceCIDR: ["198.18.128.0/20"],
    source: "ConfigMap kube-system/kubeadm-config",
  });
  assert.equal(cidrsFromKubeadmConfig({ other: "x" }), undefined);
  assert.deepEqual(
    cidrsFromKubeadmConfig({ ClusterConfiguration: "networking:\n  podSubnet: bogus" })?.podCIDR,
    [],
  );
});

Deno.test("coordinator cidrs: kube-controller-manager flags from command or args, = or space separated", () => {
  const pod = (command: string[], args: string[] = []) => ({
    metadata: { name: "kcm", namespace: "kube-system" },
    spec: { containers: [{ command, args }] },
  });
  assert.deepEqual(
    cidrsFromKCMPod(pod(["kube-controller-manager", "--cluster-cidr=198.18.0.0/17,2001:db8::/56"], [
      "--service-cluster-ip-range",
      "198.18.128.0/20",
    ])),
    {
      podCIDR: ["198.18.0.0/17", "2001:db8::/56"],
      serviceCIDR: ["198.18.128.0/20"],
      source: "the flags of kube-controller-manager pod kube-system/kcm",
    },
  );
  // RKE2 puts every flag in args.
  assert.deepEqual(cidrsFromKCMPod(pod([], ["--cluster-cidr=203.0.113.0/24"]))?.podCIDR, ["203.0.113.0/24"]);
  assert.equal(cidrsFromKCMPod(pod(["kube-controller-manager", "--v=2"])), undefined);
});

Deno.test("coordinator status: podCIDRType cluster uses the cluster's pod CIDRs and ServiceCIDR objects by age", () => {
  const plan = planCoordinatorStatus(facts({
    podCIDRType: "cluster",
    cluster: CLUSTER,
    serviceCIDRs: [
      svc("extra", "2026-02-01T00:00:00Z", ["203.0.113.0/24"]),
      svc("kubernetes", "2026-01-01T00:00:00Z", ["198.18.128.0/20", "2001:db8:1::/112"]),
      svc("going", "2026-01-15T00:00:00Z", ["192.0.2.0/24"], true),
    ],
  }));
  assert.deepEqual(plan.status, {
    phase: "Synced",
    overlayPodCIDR: ["198.18.0.0/17"],
    serviceCIDR: ["198.18.128.0/20", "2001:db8:1::/112", "203.0.113.0/24"],
  });
  assert.deepEqual(plan.sources, ["kubeadm", "ServiceCIDR objects"]);
  assert.deepEqual(plan.events, []);
});

Deno.test("coordinator status: without ServiceCIDR objects the service CIDRs come from the cluster", () => {
  const plan = planCoordinatorStatus(
    facts({ podCIDRType: "none", cluster: CLUSTER, serviceCIDRs: undefined }),
  );
  assert.deepEqual(plan.status, { phase: "Synced", overlayPodCIDR: [], serviceCIDR: ["198.18.128.0/20"] });
});

Deno.test("coordinator status: ServiceCIDRs make kubeadm-config unnecessary unless pod CIDRs need it (#4307)", () => {
  const services = [svc("kubernetes", "2026-01-01T00:00:00Z", ["198.18.128.0/20"])];
  for (const podCIDRType of ["none", "calico"] as const) {
    const plan = planCoordinatorStatus(facts({ podCIDRType, serviceCIDRs: services, calicoPools: [] }));
    assert.equal(plan.status.phase, "Synced", podCIDRType);
  }
  const cluster = planCoordinatorStatus(facts({ podCIDRType: "cluster", serviceCIDRs: services }));
  assert.equal(cluster.status.phase, "NotReady");
  assert.match(cluster.status.reason!, /neither ConfigMap kube-system\/kubeadm-config nor a pod labelled/);
  assert.deepEqual(cluster.events.map((e) => [e.type, e.reason]), [["Warning", "ClusterNotReady"]]);
});

Deno.test("coordinator status: NotReady empties both lists and says why", () => {
  const cases: [Partial<CoordinatorFacts>, string, RegExp][] = [
    [{}, "InvalidSpec", /spec\.podCIDRType is not set/],
    [{ podCIDRType: "none" }, "ClusterNotReady", /serves no ServiceCIDRs .* neither ConfigMap/],
    [{ podCIDRType: "none", serviceCIDRs: [] }, "ClusterNotReady", /there is no ServiceCIDR object/],
    [
      { podCIDRType: "none", serviceCIDRs: [], cluster: { ...CLUSTER, serviceCIDR: [] } },
      "ClusterNotReady",
      /service CIDRs are unknown/,
    ],
    [
      { podCIDRType: "cluster", cluster: { ...CLUSTER, podCIDR: [] } },
      "ClusterNotReady",
      /kubeadm names none \(kubeadm podSubnet/,
    ],
    [
      { podCIDRType: "calico", cluster: CLUSTER },
      "CalicoNotReady",
      /Calico's IPPool CRD .* is not installed/,
    ],
    [
      { podCIDRType: "cilium", cluster: CLUSTER },
      "CiliumNotReady",
      /ConfigMap kube-system\/cilium-config does not exist/,
    ],
    [
      { podCIDRType: "cilium", cluster: CLUSTER, cilium: { configMap: "x/y", data: { ipam: "eni" } } },
      "CiliumNotReady",
      /sets ipam "eni", which is not supported/,
    ],
    [
      { podCIDRType: "cilium", cluster: CLUSTER, cilium: { configMap: "x/y", data: { ipam: "multi-pool" } } },
      "CiliumNotReady",
      /CiliumPodIPPool CRD .* is not installed/,
    ],
    [
      {
        podCIDRType: "cilium",
        cluster: CLUSTER,
        cilium: {
          configMap: "x/y",
          data: { ipam: "cluster-pool", "cluster-pool-ipv4-cidr": "198.18.0.0/33" },
        },
      },
      "InvalidCIDR",
      /key cluster-pool-ipv4-cidr has "198\.18\.0\.0\/33", which is not a CIDR/,
    ],
    [
      {
        podCIDRType: "auto",
        cluster: CLUSTER,
        defaultCNI: { dir: "/etc/cni/net.d", error: "permission denied" },
      },
      "CNIConfigUnreadable",
      /reads the default CNI from \/etc\/cni\/net\.d, which failed: permission denied/,
    ],
  ];
  for (const [f, reason, message] of cases) {
    const plan = planCoordinatorStatus(facts(f));
    assert.deepEqual(plan.status.overlayPodCIDR, [], reason);
    assert.deepEqual(plan.status.serviceCIDR, [], reason);
    assert.equal(plan.status.phase, "NotReady", reason);
    assert.match(plan.status.reason!, message, reason);
    assert.match(plan.status.reason!, /^SpiderCoordinator "default": /);
    assert.deepEqual(plan.events, [{ type: "Warning", reason, message: plan.status.reason }]);
  }
});

Deno.test("coordinator status: calico takes enabled, live IPPools oldest first", () => {
  const pool = (name: string, created: string, cidr: string, extra: Record<string, unknown> = {}) => ({
    metadata: { name, creationTimestamp: created, ...extra },
    spec: { cidr, ...("disabled" in extra ? { disabled: true } : {}) },
  });
  const plan = planCoordinatorStatus(facts({
    podCIDRType: "calico",
    cluster: CLUSTER,
    calicoPools: [
      pool("v6", "2026-01-02T00:00:00Z", "2001:db8:7::/48"),
      pool("b", "2026-01-01T00:00:00Z", "198.51.100.0/24"),
      pool("a", "2026-01-01T00:00:00Z", "203.0.113.0/24"),
      pool("off", "2026-01-01T00:00:00Z", "192.0.2.0/24", { disabled: true }),
      pool("going", "2026-01-01T00:00:00Z", "198.18.0.0/24", { deletionTimestamp: "2026-01-03T00:00:00Z" }),
    ],
  }));
  assert.deepEqual(plan.status.overlayPodCIDR, ["203.0.113.0/24", "198.51.100.0/24", "2001:db8:7::/48"]);
  assert.equal(plan.podCIDRType, "calico");
});

Deno.test("coordinator status: cilium cluster-pool, cluster-pool-v2beta, default, multi-pool and kubernetes", () => {
  const cilium = (data: Record<string, string>, pools?: NonNullable<CoordinatorFacts["cilium"]>["pools"]) =>
    planCoordinatorStatus(facts({
      podCIDRType: "cilium",
      cluster: CLUSTER,
      cilium: { configMap: "kube-system/cilium-config", data, pools },
    })).status.overlayPodCIDR;
  const pool = {
    "cluster-pool-ipv4-cidr": "198.51.100.0/24 203.0.113.0/24",
    "cluster-pool-ipv6-cidr": "2001:db8:c::/64",
  };
  assert.deepEqual(cilium({ ipam: "cluster-pool", ...pool }), [
    "198.51.100.0/24",
    "203.0.113.0/24",
    "2001:db8:c::/64",
  ]);
  assert.deepEqual(cilium({ ipam: "cluster-pool-v2beta", ...pool }), [
    "198.51.100.0/24",
    "203.0.113.0/24",
    "2001:db8:c::/64",
  ]);
  assert.deepEqual(
    cilium(pool),
    ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:c::/64"],
    "Cilium's default mode",
  );
  assert.deepEqual(cilium({ ipam: "kubernetes" }), ["198.18.0.0/17"]);
  assert.deepEqual(
    cilium({ ipam: "multi-pool" }, [
      {
        metadata: { name: "b", creationTimestamp: "2026-01-02T00:00:00Z" },
        spec: { ipv4: { cidrs: ["203.0.113.0/24"] } },
      },
      {
        metadata: { name: "a", creationTimestamp: "2026-01-01T00:00:00Z" },
        spec: { ipv4: { cidrs: ["198.51.100.0/25"] }, ipv6: { cidrs: ["2001:db8:d::/64"] } },
      },
    ]),
    ["198.51.100.0/25", "2001:db8:d::/64", "203.0.113.0/24"],
  );
});

Deno.test("coordinator status: auto follows the default CNI; none when the directory has no configuration", () => {
  const auto = (name?: string) =>
    planCoordinatorStatus(facts({ podCIDRType: "auto", cluster: CLUSTER, defaultCNI: { dir: "/d", name } }));
  assert.deepEqual(auto("flannel").status.overlayPodCIDR, ["198.18.0.0/17"]);
  assert.equal(auto("flannel").podCIDRType, "cluster");
  assert.equal(auto(undefined).podCIDRType, "none");
  assert.equal(auto("k8s-pod-network").status.phase, "NotReady", "calico without its CRD");
});

Deno.test("coordinator status: sameStatus treats an absent reason as empty; order matters", () => {
  const a = { phase: "Synced" as const, overlayPodCIDR: ["x"], serviceCIDR: ["y"] };
  assert.ok(sameStatus({ ...a, reason: "" }, a));
  assert.ok(!sameStatus({ ...a, serviceCIDR: ["y", "z"] }, a));
  assert.ok(!sameStatus(undefined, a));
  assert.ok(sameStatus({ phase: "Synced" }, { phase: "Synced", overlayPodCIDR: [], serviceCIDR: [] }));
  assert.deepEqual(byCreation([]), []);
});

Deno.test("coordinator cni: the first .conf/.conflist in lexical order names the default CNI, Multus' own skipped", async () => {
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-cni-" });
  try {
    assert.deepEqual(await readDefaultCNI(`${dir}/missing`), { dir: `${dir}/missing` });
    assert.deepEqual(await readDefaultCNI(dir), { dir });
    await Deno.writeTextFile(`${dir}/00-multus.conf`, '{"name":"multus-cni-network","type":"multus"}');
    await Deno.writeTextFile(
      `${dir}/10-calico.conflist`,
      '{"name":"k8s-pod-network","plugins":[{"type":"calico"}]}',
    );
    await Deno.writeTextFile(`${dir}/20-other.conf`, '{"name":"other","type":"bridge"}');
    await Deno.writeTextFile(`${dir}/05-notes.txt`, "not a CNI file");
    assert.deepEqual(await readDefaultCNI(dir), {
      dir,
      file: `${dir}/10-calico.conflist`,
      name: "k8s-pod-network",
    });
    await Deno.writeTextFile(`${dir}/01-broken.conf`, "{");
    assert.match((await readDefaultCNI(dir)).error!, /01-broken\.conf: /);
    await Deno.writeTextFile(`${dir}/01-broken.conf`, '{"type":"bridge"}');
    assert.match((await readDefaultCNI(dir)).error!, /01-broken\.conf has no "name"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
