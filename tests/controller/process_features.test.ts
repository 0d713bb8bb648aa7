// What the `dist/spiderpool controller` process does for a user beyond pools and subnets, each through the
// real API server: the Pod resource-injection webhook of podResourceInject, SpiderMultusConfig → NAD, the
// SpiderCoordinator's status, and auto-pools sized by the ConfigMap the process reads (`--config-path`).
import assert from "node:assert/strict";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { KubeHttpError, NotFoundError } from "../../src/kube/client.ts";
import { nadPath, type NetworkAttachmentDefinition } from "../../src/multus/nad.ts";
import { kubeTest, poll, testScope } from "../kube/harness.ts";
import { API, randomSubnets, SET_LABEL, startControllers } from "./webhook_harness.ts";

const RDMA = "cni.spidernet.io/rdma-resource-inject";
const NET = "cni.spidernet.io/network-resource-inject";
const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const ADM = "/apis/admissionregistration.k8s.io/v1";

interface Pod {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { containers: { name: string; resources?: { limits?: Record<string, string> } }[] };
}

interface SMC {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

interface MutatingConfig {
  webhooks: {
    name: string;
    failurePolicy: string;
    namespaceSelector?: unknown;
    objectSelector?: unknown;
    rules: { apiGroups: string[]; resources: string[]; operations: string[] }[];
    clientConfig: { url?: string };
  }[];
}

async function metricsText(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) });
  return await res.text();
}

function podBody(
  name: string,
  labels: Record<string, string>,
  annotations: Record<string, string>,
  limits?: Record<string, string>,
) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels, annotations },
    spec: {
      containers: [
        { name: "app", image: "registry.invalid/app:1", ...(limits ? { resources: { limits } } : {}) },
        { name: "sidecar", image: "registry.invalid/sidecar:1" },
      ],
    },
  };
}

kubeTest(
  "controller process: with podResourceInject, a Pod created through the API server gets the networks and RDMA resources of its labelled SpiderMultusConfigs",
  async () => {
    await using scope = await testScope("ctl-podinj");
    const ns = scope.namespace;
    await using set = await startControllers(scope, {
      configYaml: `podResourceInject:\n  enabled: true\n  namespacesInclude: [${ns}]\n`,
      reconcileNamespace: ns,
    });
    const { http } = set;

    // Registered in the controller's mutating configuration as upstream does: CREATE of core v1 pods, Fail,
    // the excluded system namespaces and the included one in the namespaceSelector.
    const { body: cfg } = await http.get<MutatingConfig>(
      `${ADM}/mutatingwebhookconfigurations/${set.configName}`,
    );
    const hook = cfg.webhooks.find((w) => w.name === "pods.spiderpool.spidernet.io");
    assert.ok(hook, `pods webhook registered: ${cfg.webhooks.map((w) => w.name)}`);
    assert.equal(hook.failurePolicy, "Fail");
    assert.deepEqual(hook.rules.map((r) => [r.apiGroups, r.resources, r.operations]), [[[""], ["pods"], [
      "CREATE",
    ]]]);
    assert.match(hook.clientConfig.url!, /\/mutate--v1-pod$/);
    assert.deepEqual(hook.namespaceSelector, {
      matchExpressions: [
        {
          key: "kubernetes.io/metadata.name",
          operator: "NotIn",
          values: ["kube-system", "spiderpool", "metallb-system", "istio-system"],
        },
        { key: "kubernetes.io/metadata.name", operator: "In", values: [ns] },
      ],
    });

    // SpiderMultusConfigs through the controller's own SMC webhooks, which copy the inject annotation into the
    // label the pod webhook selects by.
    const group = `gpu-${set.id}`;
    const smcs = `${API}/namespaces/${ns}/spidermultusconfigs`;
    const sriov = await set.create<SMC>(smcs, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderMultusConfig",
      metadata: { name: "gpu1", annotations: { [RDMA]: group } },
      spec: {
        cniType: "sriov",
        sriov: { resourceName: "spidernet.io/gpu1sriov", ippools: { ipv4: ["gpu1-v4"] } },
      },
    });
    assert.equal(sriov.metadata.labels?.[RDMA], group, "the SMC webhook copied the annotation into a label");
    await set.create<SMC>(smcs, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderMultusConfig",
      metadata: {
        name: "shared",
        annotations: { [RDMA]: group, "multus.spidernet.io/cr-name": "shared-net" },
      },
      spec: {
        cniType: "macvlan",
        macvlan: {
          master: ["ens1f0"],
          rdmaResourceName: "spidernet.io/shared_cx5",
          ippools: { ipv4: ["m-v4"] },
        },
      },
    });

    const pods = `/api/v1/namespaces/${ns}/pods`;
    // The API server picks up a changed webhook configuration within a moment: wait until a pod asking for a
    // network nobody offers is refused by the controller.
    await poll("the API server to call the controller's pod webhook", 30_000, async () => {
      const probe = podBody("probe", set.labels(), { [NET]: "probe-no-such-network" });
      const refused = await http.post(`${pods}?dryRun=All`, probe).then(
        () => false,
        (e) => e instanceof KubeHttpError && e.status === 403,
      );
      return refused || undefined;
    });

    const { body: pod } = await http.post<Pod>(
      pods,
      podBody("rdma", set.labels(), { [RDMA]: group }),
    );
    assert.equal(pod.metadata.annotations?.[NETWORKS], `${ns}/shared-net,${ns}/gpu1`);
    assert.deepEqual(pod.spec.containers[0].resources?.limits, {
      "spidernet.io/shared_cx5": "1",
      "spidernet.io/gpu1sriov": "1",
    });
    assert.equal(pod.spec.containers[1].resources?.limits, undefined);

    // A pod without the annotation is admitted unchanged; one asking for a group nobody labels is refused with
    // the controller's message, as `kubectl apply` prints it after "Error from server".
    const { body: plain } = await http.post<Pod>(pods, podBody("plain", set.labels(), {}));
    assert.equal(plain.metadata.annotations?.[NETWORKS], undefined);
    const err = await http.post(pods, podBody("lost", set.labels(), { [RDMA]: "nobody-has-this" })).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(err instanceof KubeHttpError, `refused: ${err}`);
    assert.equal(err.status, 403);
    assert.match(
      err.message,
      new RegExp(
        `admission webhook "pods\\.spiderpool\\.spidernet\\.io" denied the request: pod ${ns}/lost: ` +
          `annotation cni\\.spidernet\\.io/rdma-resource-inject="nobody-has-this" \\(on the pod\\)`,
      ),
    );

    const metrics = await metricsText(set.replicas[0].metricsPort);
    assert.match(
      metrics,
      /spiderpool_pod_resource_inject_counts_total\{annotation="cni\.spidernet\.io\/rdma-resource-inject",result="injected"\} 1/,
    );
    assert.match(
      metrics,
      /spiderpool_webhook_admission_counts_total\{webhook="mutating",kind="Pod",operation="CREATE",verdict="allowed"\} [2-9]/,
    );
  },
);

kubeTest(
  "controller process: without podResourceInject no Pod webhook is registered; a SpiderMultusConfig becomes its NAD, which follows the SMC and goes with it",
  async () => {
    await using scope = await testScope("ctl-smcnad", { serviceAccount: false });
    const ns = scope.namespace;
    await using set = await startControllers(scope, { reconcileNamespace: ns });
    const { http } = set;
    const { body: cfg } = await http.get<MutatingConfig>(
      `${ADM}/mutatingwebhookconfigurations/${set.configName}`,
    );
    assert.deepEqual(cfg.webhooks.map((w) => w.name).sort(), [
      "spidercoordinator.spiderpool.spidernet.io",
      "spiderippool.spiderpool.spidernet.io",
      "spidermultusconfig.spiderpool.spidernet.io",
      "spiderreservedip.spiderpool.spidernet.io",
      "spidersubnet.spiderpool.spidernet.io",
    ]);

    // The README's example: macvlan on ens192 with an IPv4 pool, the coordinator block left to the defaults.
    const smc = await set.create<SMC>(`${API}/namespaces/${ns}/spidermultusconfigs`, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderMultusConfig",
      metadata: { name: "macvlan-ens192" },
      spec: { cniType: "macvlan", macvlan: { master: ["ens192"], ippools: { ipv4: ["v4-pool"] } } },
    });
    // As the webhook defaults it: macvlan's mtu 0 and the coordinator's txQueueLen 0 are set, so written
    // (Go's pointer fields), in upstream's field order.
    const expected = '{"cniVersion":"0.3.1","name":"macvlan-ens192","plugins":[' +
      '{"type":"macvlan","master":"ens192","mode":"bridge","mtu":0,' +
      '"ipam":{"type":"spiderpool","default_ipv4_ippool":["v4-pool"]}},' +
      '{"txQueueLen":0,"tunePodRoutes":true,"mode":"auto","type":"coordinator","podRPFilter":0}]}';
    const get = async () => {
      try {
        return (await http.get<NetworkAttachmentDefinition>(nadPath(ns, "macvlan-ens192"))).body;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    };
    const nad = await poll("the controller process to write the NAD", 30_000, get);
    assert.equal(nad.spec?.config, expected);
    assert.deepEqual(
      nad.metadata.ownerReferences?.map((r) => [r.kind, r.name, r.uid, r.controller]),
      [["SpiderMultusConfig", "macvlan-ens192", smc.metadata.uid, true]],
    );

    // A change of the SMC (through its webhook) reaches the NAD; a NAD edited by hand is put back.
    await http.patch(
      `${API}/namespaces/${ns}/spidermultusconfigs/macvlan-ens192`,
      { spec: { macvlan: { vlanID: 100 } } },
      "merge",
    );
    const vlan = await poll("the NAD to follow the SMC's vlanID", 30_000, async () => {
      const n = await get();
      return n?.spec?.config?.includes('"master":"ens192.100"') ? n : undefined;
    });
    assert.match(
      vlan.spec!.config!,
      /^\{"cniVersion":"0\.3\.1","name":"macvlan-ens192","plugins":\[\{"vlanID":100,"type":"ifacer","interfaces":\["ens192"\]\},/,
    );
    await http.patch(nadPath(ns, "macvlan-ens192"), { spec: { config: "{}" } }, "merge");
    await poll("the hand-edited NAD to be repaired", 30_000, async () => {
      const n = await get();
      return n?.spec?.config === vlan.spec!.config ? true : undefined;
    });

    // Deleting the SMC deletes the NAD (kube-controller-manager's garbage collector, through the owner).
    await http.delete(`${API}/namespaces/${ns}/spidermultusconfigs/macvlan-ens192`);
    await poll("the NAD to go with its SMC", 60_000, async () => (await get()) === undefined || undefined);
    const metrics = await metricsText((await set.leader()).metricsPort);
    assert.match(metrics, /spiderpool_multusconfig_nad_sync_counts_total\{result="created"\} 1/);
  },
);

kubeTest(
  "controller process: the SpiderCoordinator it is told to keep gets its CIDRs and phase Synced",
  async () => {
    await using scope = await testScope("ctl-coord", { serviceAccount: false });
    await using set = await startControllers(scope);
    const name = `coord-${set.id}`;
    // spiderpool init would create it; here through the controller's own webhooks, with podCIDRType none (no
    // pod CIDRs to find), so the service CIDRs come from the API server's ServiceCIDR objects.
    const created = await set.create<{ spec: Record<string, unknown> }>(`${API}/spidercoordinators`, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderCoordinator",
      metadata: { name },
      spec: { podCIDRType: "none" },
    });
    assert.equal(created.spec.mode, "auto", "defaulted by the mutating webhook");
    const { body: served } = await set.http.get<
      { items: { metadata: { name: string }; spec: { cidrs: string[] } }[] }
    >(
      "/apis/networking.k8s.io/v1/servicecidrs",
    );
    const clusterServices = served.items.find((s) => s.metadata.name === "kubernetes")!.spec.cidrs;
    const status = await poll("the leader to write the coordinator's status", 30_000, async () => {
      const { body } = await set.http.get<{ status?: { phase?: string; serviceCIDR?: string[] } }>(
        `${API}/spidercoordinators/${name}`,
      );
      return body.status?.phase === "Synced" ? body.status : undefined;
    });
    assert.deepEqual(status.serviceCIDR?.slice(0, clusterServices.length), clusterServices);
    assert.deepEqual((status as { overlayPodCIDR?: string[] }).overlayPodCIDR, []);
  },
);

kubeTest(
  "controller process: auto-pools are sized by the ConfigMap's clusterSubnetDefaultFlexibleIPNumber; enableAutoPoolForApplication false runs no application controller",
  async () => {
    await using scope = await testScope("ctl-apconf", { serviceAccount: false });
    const ns = scope.namespace;
    await using set = await startControllers(scope, {
      configYaml: "clusterSubnetDefaultFlexibleIPNumber: 3\n",
      autoPools: true,
      reconcileNamespace: ns,
    });
    const { http } = set;
    const { v4, v4prefix } = randomSubnets();
    const subnet = scope.name("s");
    await set.create(`${API}/spidersubnets`, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderSubnet",
      metadata: { name: subnet },
      spec: { subnet: v4, ips: [`${v4prefix}10-${v4prefix}59`], gateway: `${v4prefix}1` },
    });
    const deployments = `/apis/apps/v1/namespaces/${ns}/deployments`;
    const deployment = (name: string) => ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: {
            labels: { app: name },
            annotations: { "ipam.spidernet.io/subnet": JSON.stringify({ ipv4: [subnet] }) },
          },
          spec: { containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
        },
      },
    });
    await http.post(deployments, deployment("web"));
    const poolsOf = async (app: string) => {
      const sel =
        `ipam.spidernet.io/owner-application-namespace=${ns},ipam.spidernet.io/owner-application-name=${app}`;
      return (await http.get<{ items: SpiderIPPool[] }>(
        `${API}/spiderippools?labelSelector=${encodeURIComponent(sel)}`,
      )).body.items;
    };
    const pool = await poll("the process's auto-pool of web", 60_000, async () => (await poolsOf("web"))[0]);
    // replicas 2 + the ConfigMap's 3, not the built-in default +1.
    assert.deepEqual(pool.spec.ips, [`${v4prefix}10-${v4prefix}14`]);
    assert.equal(pool.metadata.annotations?.["ipam.spidernet.io/ippool-ip-number"], "+3");
    assert.equal(pool.metadata.labels?.[SET_LABEL], set.id, "made with the reconcile selector's labels");
    // The leader's pool reconciler (limited to the set's labels) counts it.
    await poll("the pool's totalIPCount", 30_000, async () => {
      const { body } = await http.get<SpiderIPPool>(`${API}/spiderippools/${pool.metadata.name}`);
      return body.status?.totalIPCount === 5 || undefined;
    });
    for (const p of await poolsOf("web")) set.track(`${API}/spiderippools/${p.metadata.name}`);
    assert.match(await (await set.leader()).log(), /; 5 leader-only component\(s\)/);

    // The same process with the application controller switched off in its ConfigMap: one component fewer (it
    // shares the namespace's Lease with the first set, so it does not lead; its components are counted at start).
    await using off = await startControllers(scope, {
      configYaml: "enableAutoPoolForApplication: false\n",
      reconcileNamespace: ns,
    });
    assert.match(await off.replicas[0].log(), /; 4 leader-only component\(s\)/);
    // Stopped before the clean-up, so that no auto-pool is made again for the Deployment while its pools go.
    await Promise.all([...set.replicas, ...off.replicas].map((r) => r.stop()));
  },
);

kubeTest(
  "controller process: with enableValidatingResourcesDeletedWebhook off (the default) an in-use pool may be deleted; its finalizer keeps it until the addresses are released",
  async () => {
    await using scope = await testScope("ctl-deloff", { serviceAccount: false });
    await using set = await startControllers(scope);
    const { http } = set;
    const { v4, v4prefix } = randomSubnets();
    const name = scope.name("p");
    const pools = `${API}/spiderippools`;
    await set.create(pools, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: { name },
      spec: { subnet: v4, ips: [`${v4prefix}10-${v4prefix}20`] },
    });
    const allocated = JSON.stringify({ [`${v4prefix}12`]: { pod: "ns/web-0", podUid: "u-1" } });
    await http.patch(`${pools}/${name}/status`, { status: { allocatedIPs: allocated, allocatedIPCount: 1 } });
    await http.delete(`${pools}/${name}`);
    const { body } = await http.get<SpiderIPPool>(`${pools}/${name}`);
    assert.ok(body.metadata.deletionTimestamp, "admitted: the pool is terminating");
    assert.deepEqual(body.metadata.finalizers, ["spiderpool.spidernet.io"]);
    // The leader keeps it while the address is allocated, and lets it go once the agent released it.
    await new Promise((r) => setTimeout(r, 2_000));
    assert.ok((await http.get<SpiderIPPool>(`${pools}/${name}`)).body.metadata.deletionTimestamp);
    await http.patch(`${pools}/${name}/status`, { status: { allocatedIPs: null, allocatedIPCount: 0 } });
    await poll("the leader to drop the finalizer of the emptied pool", 30_000, async () => {
      try {
        await http.get(`${pools}/${name}`);
        return undefined;
      } catch (err) {
        if (err instanceof NotFoundError) return true;
        throw err;
      }
    });
  },
);
