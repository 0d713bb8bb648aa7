// The SpiderCoordinator status controller against the real API server (v1.36, which serves ServiceCIDRs),
// led by a real Lease elector, for every podCIDRType: cluster (kubeadm-config, then the kube-controller-manager
// pod's flags), none, calico (its IPPool CRD installed and removed during the test), cilium (cluster-pool,
// multi-pool with CiliumPodIPPools, kubernetes) and auto (from a CNI configuration directory); NotReady with
// reasons, Warning Events and emptied lists; and a real agent then answering GET /v1/coordinator/config.
import assert from "node:assert/strict";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import type { SpiderCoordinator } from "../../src/api/types.ts";
import { AgentClient } from "../../src/agentapi/client.ts";
import { startAgent } from "../../src/agent/daemon.ts";
import { CoordinatorController } from "../../src/controller/coordinator/controller.ts";
import { LeaderElector } from "../../src/controller/leader.ts";
import { ControllerMetrics } from "../../src/controller/metrics.ts";
import { eventsAbout } from "../../src/controller/reconcile/events.ts";
import { type KubeHttp, NotFoundError } from "../../src/kube/client.ts";
import { installCrds, waitEstablished } from "../kube/crds.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";

const COORDS = `/apis/${API_VERSION}/${PLURAL.coordinator}`;
const CRD_DIR = new URL("./crds/", import.meta.url).pathname;
const CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const KUBEADM = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";
const TIMINGS = { leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };
/** The test control plane's --service-cluster-ip-range: the API server's own ServiceCIDR "kubernetes". */
const CLUSTER_SERVICES = "198.18.128.0/20";

interface World extends AsyncDisposable {
  scope: TestScope;
  http: KubeHttp;
  name: string;
  cniDir: string;
  controller: CoordinatorController;
  metrics: ControllerMetrics;
  /** Sets the coordinator's spec.podCIDRType (creating it the first time). */
  setType(type: string | undefined): Promise<void>;
  /** Waits until the status satisfies `check`. */
  status(
    what: string,
    check: (s: NonNullable<SpiderCoordinator["status"]>) => boolean,
  ): Promise<SpiderCoordinator>;
}

async function deleteQuietly(http: KubeHttp, path: string): Promise<void> {
  await http.delete(path).catch((err) => {
    if (!(err instanceof NotFoundError)) throw err;
  });
}

/** A test namespace, a coordinator named after it (or `name`), and a leading controller for it. */
async function world(prefix: string, opts: { name?: string } = {}): Promise<World> {
  const scope = await testScope(prefix);
  const { http, kc } = scope.cluster;
  const name = opts.name ?? scope.name("coord");
  const cniDir = await Deno.makeTempDir({ prefix: "spiderpool-cni-conf-" });
  const metrics = new ControllerMetrics();
  const controller = new CoordinatorController({
    http,
    kubeConfig: kc,
    identity: "replica-a",
    name,
    cniConfigDir: cniDir,
    ciliumConfigMap: `${scope.namespace}/cilium-config`,
    metrics,
    discoveryMs: 500,
    log: () => {},
  });
  const elector = new LeaderElector({
    http,
    namespace: scope.namespace,
    identity: "replica-a",
    timings: TIMINGS,
    work: [controller],
    metrics,
    log: () => {},
  });
  controller.start();
  await controller.synced;
  elector.start();
  await poll("the controller to lead", 30_000, () => Promise.resolve(elector.isLeader() || undefined));
  scope.track(`${COORDS}/${name}`);
  let created = false;
  return {
    scope,
    http,
    name,
    cniDir,
    controller,
    metrics,
    async setType(type) {
      if (!created) {
        await http.post(COORDS, {
          apiVersion: API_VERSION,
          kind: "SpiderCoordinator",
          metadata: { name },
          spec: type === undefined ? {} : { podCIDRType: type },
        });
        created = true;
      } else {
        await http.patch(`${COORDS}/${name}`, { spec: { podCIDRType: type ?? null } }, "merge");
      }
    },
    status(what, check) {
      return poll(`coordinator status: ${what}`, 30_000, async () => {
        const { body } = await http.get<SpiderCoordinator>(`${COORDS}/${name}`);
        return body.status && check(body.status) ? body : undefined;
      });
    },
    async [Symbol.asyncDispose]() {
      await elector.stop();
      await controller.stop();
      await Deno.remove(cniDir, { recursive: true }).catch(() => {});
      await scope[Symbol.asyncDispose]();
    },
  };
}

const same = (a: string[] | undefined, b: string[]) => JSON.stringify(a ?? []) === JSON.stringify(b);

async function warnings(w: World): Promise<string[]> {
  const events = await eventsAbout(w.http, { kind: "SpiderCoordinator", name: w.name });
  return events.filter((e) => e.type === "Warning").map((e) => e.reason);
}

async function kubeadmConfig(http: KubeHttp, podSubnet: string): Promise<void> {
  await http.post("/api/v1/namespaces/kube-system/configmaps", {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "kubeadm-config" },
    data: {
      ClusterConfiguration:
        `apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: ${podSubnet}\n` +
        `  serviceSubnet: ${CLUSTER_SERVICES}\n`,
    },
  });
}

kubeTest(
  "coordinator status: the API server's ServiceCIDRs (oldest first) and podCIDRType none",
  async () => {
    await using w = await world("coord-none");
    const { http } = w;
    const { body: served } = await http.get<
      { items: { metadata: { name: string }; spec: { cidrs: string[] } }[] }
    >(
      "/apis/networking.k8s.io/v1/servicecidrs",
    );
    assert.deepEqual(
      served.items.find((s) => s.metadata.name === "kubernetes")?.spec.cidrs,
      [CLUSTER_SERVICES],
      "the test control plane serves networking.k8s.io/v1 ServiceCIDRs",
    );
    await w.setType("none");
    await w.status("Synced", (s) => s.phase === "Synced" && same(s.serviceCIDR, [CLUSTER_SERVICES]));

    const extra = `${w.scope.namespace}-svc`;
    const extraPath = `/apis/networking.k8s.io/v1/servicecidrs/${extra}`;
    try {
      await http.post("/apis/networking.k8s.io/v1/servicecidrs", {
        apiVersion: "networking.k8s.io/v1",
        kind: "ServiceCIDR",
        metadata: { name: extra },
        spec: { cidrs: ["203.0.113.0/24"] },
      });
      const added = await w.status("the new ServiceCIDR appended", (s) => (s.serviceCIDR ?? []).length === 2);
      assert.deepEqual(added.status, {
        phase: "Synced",
        overlayPodCIDR: [],
        serviceCIDR: [CLUSTER_SERVICES, "203.0.113.0/24"],
      });
    } finally {
      await deleteQuietly(http, extraPath);
    }
    await w.status("the deleted ServiceCIDR gone", (s) => same(s.serviceCIDR, [CLUSTER_SERVICES]));
    await w.controller.settled();
    const writes = w.metrics.writes.coordinator_status;
    w.controller.resync();
    await w.controller.settled();
    assert.equal(
      w.metrics.writes.coordinator_status,
      writes,
      "a resync of a synced coordinator writes nothing",
    );
  },
);

kubeTest(
  "coordinator status: cluster from kubeadm-config, then the kube-controller-manager pod, then neither",
  async () => {
    await using w = await world("coord-cluster");
    const { http } = w;
    const kcmPod = `/api/v1/namespaces/${w.scope.namespace}/pods/kube-controller-manager`;
    try {
      await kubeadmConfig(http, "198.18.0.0/17,2001:db8:42::/56");
      await w.setType("cluster");
      const synced = await w.status("Synced from kubeadm-config", (s) => s.phase === "Synced");
      assert.deepEqual(synced.status?.overlayPodCIDR, ["198.18.0.0/17", "2001:db8:42::/56"]);
      assert.deepEqual(synced.status?.serviceCIDR, [CLUSTER_SERVICES]);

      await http.delete(KUBEADM);
      await http.post(`/api/v1/namespaces/${w.scope.namespace}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "kube-controller-manager", labels: { component: "kube-controller-manager" } },
        spec: {
          containers: [{
            name: "kube-controller-manager",
            image: "registry.invalid/kube-controller-manager:1",
            command: ["kube-controller-manager"],
            args: ["--cluster-cidr", "198.51.100.0/24", `--service-cluster-ip-range=${CLUSTER_SERVICES}`],
          }],
        },
      });
      w.controller.resync(); // pods are not watched; the 60 s resync would find it
      await w.status("Synced from the pod's flags", (s) => same(s.overlayPodCIDR, ["198.51.100.0/24"]));

      await http.delete(kcmPod, { gracePeriodSeconds: 0 });
      await poll("the pod to be gone", 30_000, () => http.get(kcmPod).then(() => undefined, () => true));
      w.controller.resync();
      const notReady = await w.status("NotReady", (s) => s.phase === "NotReady");
      assert.deepEqual(notReady.status?.overlayPodCIDR, []);
      assert.deepEqual(notReady.status?.serviceCIDR, []);
      assert.match(
        notReady.status!.reason!,
        /neither ConfigMap kube-system\/kubeadm-config nor a pod labelled/,
      );
      await poll(
        "a ClusterNotReady Event",
        30_000,
        async () => (await warnings(w)).includes("ClusterNotReady") || undefined,
      );
    } finally {
      await deleteQuietly(http, KUBEADM);
      await http.delete(kcmPod, { gracePeriodSeconds: 0 }).catch(() => {});
    }
  },
);

kubeTest(
  "coordinator status: calico is NotReady without Calico, then follows its IPPools once installed",
  async () => {
    await using w = await world("coord-calico");
    const { http } = w;
    const crd = "ippools.crd.projectcalico.org";
    const pools = "/apis/crd.projectcalico.org/v1/ippools";
    await deleteQuietly(http, `${CRDS}/${crd}`);
    await poll("no Calico IPPool API", 60_000, () => http.get(pools).then(() => undefined, () => true));
    try {
      await w.setType("calico");
      const notReady = await w.status("NotReady", (s) => s.phase === "NotReady");
      assert.match(
        notReady.status!.reason!,
        /Calico's IPPool CRD \(ippools\.crd\.projectcalico\.org\) is not installed/,
      );
      assert.ok((await warnings(w)).includes("CalicoNotReady"));

      await installCrds(http, CRD_DIR);
      await waitEstablished(http, crd);
      await w.status(
        "Synced once Calico is there",
        (s) => s.phase === "Synced" && same(s.overlayPodCIDR, []),
      );
      const pool = (name: string, cidr: string, disabled = false) =>
        http.post(pools, {
          apiVersion: "crd.projectcalico.org/v1",
          kind: "IPPool",
          metadata: { name: `${w.scope.namespace}-${name}` },
          spec: { cidr, disabled },
        });
      await pool("v4", "198.51.100.0/24");
      await new Promise((r) => setTimeout(r, 1_100)); // creation timestamps have 1 s resolution
      await pool("v6", "2001:db8:ca::/48");
      await pool("off", "203.0.113.0/24", true);
      await w.status(
        "the pools' CIDRs, oldest first",
        (s) => same(s.overlayPodCIDR, ["198.51.100.0/24", "2001:db8:ca::/48"]),
      );
      await http.delete(`${pools}/${w.scope.namespace}-v4`);
      await w.status("the deleted pool gone", (s) => same(s.overlayPodCIDR, ["2001:db8:ca::/48"]));
    } finally {
      await deleteQuietly(http, `${CRDS}/${crd}`);
    }
  },
);

kubeTest("coordinator status: cilium from its ConfigMap (cluster-pool, multi-pool, kubernetes)", async () => {
  await using w = await world("coord-cilium");
  const { http } = w;
  const cm = `/api/v1/namespaces/${w.scope.namespace}/configmaps`;
  const crd = "ciliumpodippools.cilium.io";
  await deleteQuietly(http, `${CRDS}/${crd}`);
  try {
    await w.setType("cilium");
    const missing = await w.status("NotReady without the ConfigMap", (s) => s.phase === "NotReady");
    assert.match(missing.status!.reason!, /ConfigMap .*\/cilium-config does not exist; install Cilium first/);

    await http.post(cm, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "cilium-config" },
      data: {
        ipam: "cluster-pool",
        "cluster-pool-ipv4-cidr": "198.51.100.0/24",
        "cluster-pool-ipv6-cidr": "2001:db8:ce::/104",
      },
    });
    await w.status(
      "cluster-pool CIDRs",
      (s) => same(s.overlayPodCIDR, ["198.51.100.0/24", "2001:db8:ce::/104"]),
    );

    await http.patch(`${cm}/cilium-config`, { data: { ipam: "multi-pool" } }, "merge");
    const noCRD = await w.status("NotReady for multi-pool without the CRD", (s) => s.phase === "NotReady");
    assert.match(noCRD.status!.reason!, /ipam multi-pool, but the CiliumPodIPPool CRD .* is not installed/);
    await installCrds(http, CRD_DIR);
    await waitEstablished(http, crd);
    await http.post("/apis/cilium.io/v2alpha1/ciliumpodippools", {
      apiVersion: "cilium.io/v2alpha1",
      kind: "CiliumPodIPPool",
      metadata: { name: `${w.scope.namespace}-p` },
      spec: { ipv4: { cidrs: ["203.0.113.0/24"], maskSize: 27 } },
    });
    await w.status(
      "the CiliumPodIPPools' CIDRs",
      (s) => s.phase === "Synced" && same(s.overlayPodCIDR, ["203.0.113.0/24"]),
    );

    await http.patch(`${cm}/cilium-config`, { data: { ipam: "kubernetes" } }, "merge");
    const noCluster = await w.status(
      "NotReady for kubernetes IPAM without cluster CIDRs",
      (s) => s.phase === "NotReady",
    );
    assert.match(
      noCluster.status!.reason!,
      /ipam kubernetes, whose pod CIDRs are the cluster's, but neither/,
    );
    await kubeadmConfig(http, "198.18.0.0/17");
    w.controller.resync();
    await w.status(
      "the cluster's CIDRs",
      (s) => s.phase === "Synced" && same(s.overlayPodCIDR, ["198.18.0.0/17"]),
    );
    assert.ok((await warnings(w)).includes("CiliumNotReady"));
  } finally {
    await deleteQuietly(http, KUBEADM);
    await deleteQuietly(http, `${CRDS}/${crd}`);
  }
});

kubeTest(
  "coordinator status: auto follows the CNI configuration directory; an agent then serves the CIDRs",
  async () => {
    // Named "default": the agent serves the coordinator of that name (the one spiderpool-init creates).
    await using w = await world("coord-auto", { name: "default" });
    const { http } = w;
    const node = w.scope.name("node");
    const agentDir = await Deno.makeTempDir({ prefix: "spiderpool-coord-agent-" });
    let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
    try {
      await kubeadmConfig(http, "198.18.0.0/17");
      await Deno.writeTextFile(`${w.cniDir}/00-multus.conf`, '{"name":"multus-cni-network","type":"multus"}');
      await Deno.writeTextFile(
        `${w.cniDir}/10-flannel.conflist`,
        '{"name":"flannel","plugins":[{"type":"flannel"}]}',
      );
      await w.setType("auto");
      await w.status(
        "cluster CIDRs for flannel",
        (s) => s.phase === "Synced" && same(s.overlayPodCIDR, ["198.18.0.0/17"]),
      );

      await Deno.writeTextFile(
        `${w.cniDir}/05-other.conflist`,
        '{"name":"kindnet","plugins":[{"type":"ptp"}]}',
      );
      w.controller.resync(); // the directory is not watched; the 60 s resync would see it
      await w.status("none for an unknown CNI", (s) => s.phase === "Synced" && same(s.overlayPodCIDR, []));

      await Deno.writeTextFile(`${w.cniDir}/01-broken.conflist`, "{ not json");
      w.controller.resync();
      const broken = await w.status(
        "NotReady for an unreadable configuration",
        (s) => s.phase === "NotReady",
      );
      assert.match(
        broken.status!.reason!,
        /podCIDRType auto reads the default CNI from .*01-broken\.conflist/,
      );
      await Deno.remove(`${w.cniDir}/01-broken.conflist`);
      await Deno.remove(`${w.cniDir}/05-other.conflist`);
      w.controller.resync();
      await w.status(
        "back to flannel",
        (s) => s.phase === "Synced" && same(s.overlayPodCIDR, ["198.18.0.0/17"]),
      );

      await http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
      w.scope.track(`/api/v1/nodes/${node}`);
      agent = await startAgent({
        nodeName: node,
        socketPath: `${agentDir}/agent.sock`,
        kubeConfig: w.scope.cluster.kc,
        healthPort: 0,
        metricsPort: 0,
        log: () => {},
      });
      await http.post(`/api/v1/namespaces/${w.scope.namespace}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "web" },
        spec: { nodeName: node, containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
      });
      const client = new AgentClient(`${agentDir}/agent.sock`);
      const config = await poll(
        "the agent to serve the coordinator",
        30_000,
        () =>
          client.coordinatorConfig({ podName: "web", podNamespace: w.scope.namespace }).catch(() =>
            undefined
          ),
      );
      assert.deepEqual([config.overlayPodCIDR, config.serviceCIDR], [["198.18.0.0/17"], [CLUSTER_SERVICES]]);
    } finally {
      await agent?.stop();
      await Deno.remove(agentDir, { recursive: true }).catch(() => {});
      await http.delete(`/api/v1/namespaces/${w.scope.namespace}/pods`, { gracePeriodSeconds: 0 }).catch(
        () => {},
      );
      await deleteQuietly(http, KUBEADM);
    }
  },
);

kubeTest(
  "coordinator status: an unset podCIDRType is NotReady naming the field; a change of type is an Event",
  async () => {
    await using w = await world("coord-unset");
    await w.setType(undefined);
    const unset = await w.status("NotReady", (s) => s.phase === "NotReady");
    assert.match(
      unset.status!.reason!,
      /spec\.podCIDRType is not set; set it to auto, cluster, calico, cilium or none/,
    );
    const changes = async () =>
      (await eventsAbout(w.http, { kind: "SpiderCoordinator", name: w.name }))
        .filter((e) => e.reason === "PodCIDRTypeChanged").map((e) => e.message);
    // Reconciles that find the type unchanged (still unset) report no change.
    for (let i = 0; i < 2; i++) {
      w.controller.resync();
      await w.controller.settled();
    }
    assert.deepEqual(await changes(), []);
    await w.setType("none");
    await w.status("Synced", (s) => s.phase === "Synced");
    const messages = await poll("a PodCIDRTypeChanged Event", 30_000, async () => {
      const m = await changes();
      return m.length > 0 ? m : undefined;
    });
    assert.deepEqual(messages, ["podCIDRType changed from (unset) to none"]);
  },
);
