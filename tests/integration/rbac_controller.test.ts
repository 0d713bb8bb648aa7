// deploy/rbac.yaml for spiderpool-controller and spiderpool-init against the real API server with RBAC: each
// ServiceAccount, with a real token, may make every request its code makes and is refused the rest. Writes are
// dry runs (?dryRun=All): authorisation is the same, nothing is changed. That these permissions are enough for
// the real processes is shown by rbac_processes.test.ts.
import assert from "node:assert/strict";
import type { KubeHttp } from "../../src/kube/client.ts";
import { kubeTest, type TestScope, testScope } from "../kube/harness.ts";
import { applyRbac, clientAs, statusOf, whenAuthorised } from "./rbac_kit.ts";

const SP = "/apis/spiderpool.spidernet.io/v2beta1";
const ADM = "/apis/admissionregistration.k8s.io/v1";
const LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";
const SECRETS = "/api/v1/namespaces/kube-system/secrets";
const CONFIGMAPS = "/api/v1/namespaces/kube-system/configmaps";
const DRY = "dryRun=All";

type Call = [what: string, call: (c: KubeHttp) => Promise<unknown>];

const pool = (name: string) => ({
  apiVersion: "spiderpool.spidernet.io/v2beta1",
  kind: "SpiderIPPool",
  metadata: { name },
  spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10"] },
});

const webhookConfig = (kind: string, name: string) => ({
  apiVersion: "admissionregistration.k8s.io/v1",
  kind,
  metadata: { name },
  webhooks: [],
});

/** Asserts every call of `allowed` is authorised and every call of `refused` answers 403. */
async function check(client: KubeHttp, who: string, allowed: Call[], refused: Call[]): Promise<void> {
  // The first call waits for the new bindings to reach the authorizer.
  assert.notEqual(await whenAuthorised(() => allowed[0][1](client)), 403, `${who}: ${allowed[0][0]}`);
  for (const [what, call] of allowed) {
    assert.notEqual(await statusOf(call(client)), 403, `${who} may ${what}`);
  }
  for (const [what, call] of refused) {
    assert.equal(await statusOf(call(client)), 403, `${who} may not ${what}`);
  }
}

async function withRbac(scope: TestScope): Promise<{ pool: string; subnet: string }> {
  const { http } = scope.cluster;
  for (const path of await applyRbac(http)) scope.track(path);
  // Real objects for the updates, patches and deletes to be authorised against.
  const poolName = scope.name("pool");
  scope.track(`${SP}/spiderippools/${poolName}`);
  await http.post(`${SP}/spiderippools`, pool(poolName));
  const subnet = scope.name("subnet");
  scope.track(`${SP}/spidersubnets/${subnet}`);
  await http.post(`${SP}/spidersubnets`, {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderSubnet",
    metadata: { name: subnet },
    spec: { ipVersion: 4, subnet: "198.51.100.0/24", ips: ["198.51.100.1-198.51.100.9"] },
  });
  return { pool: poolName, subnet };
}

kubeTest(
  "the controller's ServiceAccount may do what the reconcilers, elector, webhooks and IP GC do, and no more",
  async () => {
    await using scope = await testScope("rbac-ctl");
    const { pool: p, subnet: s } = await withRbac(scope);
    const ns = scope.namespace;
    const merge = (path: string, body: unknown) => (c: KubeHttp) => c.patch(`${path}?${DRY}`, body, "merge");
    const allowed: Call[] = [
      ["list SpiderIPPools", (c) => c.get(`${SP}/spiderippools`)],
      ["watch SpiderIPPools", (c) => c.get(`${SP}/spiderippools?watch=true&timeoutSeconds=1`)],
      ["list SpiderSubnets", (c) => c.get(`${SP}/spidersubnets`)],
      [
        "patch a pool's metadata (finalizer, adoption)",
        merge(`${SP}/spiderippools/${p}`, { metadata: { labels: { a: "b" } } }),
      ],
      ["patch a pool's status", merge(`${SP}/spiderippools/${p}/status`, { status: { totalIPCount: 1 } })],
      ["patch a subnet's metadata", merge(`${SP}/spidersubnets/${s}`, { metadata: { labels: { a: "b" } } })],
      ["patch a subnet's status", merge(`${SP}/spidersubnets/${s}/status`, { status: { totalIPCount: 9 } })],
      [
        "delete a subnet (foreground)",
        (c) => c.delete(`${SP}/spidersubnets/${s}?${DRY}`, { propagationPolicy: "Foreground" }),
      ],
      ["list SpiderReservedIPs", (c) => c.get(`${SP}/spiderreservedips`)],
      ["list SpiderCoordinators", (c) => c.get(`${SP}/spidercoordinators`)],
      ["list SpiderMultusConfigs", (c) => c.get(`${SP}/spidermultusconfigs`)],
      ["list SpiderEndpoints", (c) => c.get(`${SP}/spiderendpoints`)],
      [
        "list NetworkAttachmentDefinitions",
        (c) => c.get("/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"),
      ],
      ["create its Lease", (c) =>
        c.post(`${LEASES}?${DRY}`, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: "spiderpool-controller-leases" },
          spec: {},
        })],
      ["get its Lease", (c) => c.get(`${LEASES}/spiderpool-controller-leases`)],
      ["update its Lease", (c) =>
        c.put(`${LEASES}/spiderpool-controller-leases?${DRY}`, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: "spiderpool-controller-leases" },
          spec: {},
        })],
      ["create its certificate Secret", (c) =>
        c.post(`${SECRETS}?${DRY}`, {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "spiderpool-controller-server-certs" },
          type: "kubernetes.io/tls",
          data: { "tls.crt": "", "tls.key": "" },
        })],
      ["get its certificate Secret", (c) => c.get(`${SECRETS}/spiderpool-controller-server-certs`)],
      ["update its certificate Secret", (c) =>
        c.put(`${SECRETS}/spiderpool-controller-server-certs?${DRY}`, {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "spiderpool-controller-server-certs" },
        })],
      [
        "patch its MutatingWebhookConfiguration",
        merge(`${ADM}/mutatingwebhookconfigurations/spiderpool-controller`, { webhooks: [] }),
      ],
      [
        "patch its ValidatingWebhookConfiguration",
        merge(`${ADM}/validatingwebhookconfigurations/spiderpool-controller`, { webhooks: [] }),
      ],
      ["create its admission ledgers", (c) =>
        c.post(`${CONFIGMAPS}?${DRY}`, {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "spiderpool-controller-admission-ippools" },
        })],
      [
        "get its pool admission ledger",
        (c) => c.get(`${CONFIGMAPS}/spiderpool-controller-admission-ippools`),
      ],
      [
        "update its reserved-IP admission ledger",
        (c) =>
          c.put(`${CONFIGMAPS}/spiderpool-controller-admission-reservedips?${DRY}`, {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: "spiderpool-controller-admission-reservedips" },
          }),
      ],
      ["ask the API server whether it is ready (/readyz)", (c) => c.get("/readyz")],
      [
        "create Events about pools (namespace default)",
        (c) =>
          c.post(`/api/v1/namespaces/default/events?${DRY}`, {
            apiVersion: "v1",
            kind: "Event",
            metadata: { name: `${p}.x` },
            involvedObject: { kind: "SpiderIPPool", name: p },
            reason: "Test",
            message: "m",
          }),
      ],
      ["patch Events", merge(`/api/v1/namespaces/default/events/${p}.x`, { count: 2 })],
      [
        "create a NetworkAttachmentDefinition",
        (c) =>
          c.post(`/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions?${DRY}`, {
            apiVersion: "k8s.cni.cncf.io/v1",
            kind: "NetworkAttachmentDefinition",
            metadata: { name: "net" },
            spec: { config: "{}" },
          }),
      ],
      [
        "patch a NetworkAttachmentDefinition",
        merge(`/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions/net`, { spec: {} }),
      ],
      [
        "patch a SpiderCoordinator's status",
        merge(`${SP}/spidercoordinators/default/status`, { status: {} }),
      ],
      ["get kubeadm-config", (c) => c.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")],
      [
        "watch the Cilium ConfigMap by name",
        (c) =>
          c.get(
            `/api/v1/namespaces/kube-system/configmaps?fieldSelector=metadata.name%3Dcilium-config&watch=true&timeoutSeconds=1`,
          ),
      ],
      ["list ServiceCIDRs", (c) => c.get("/apis/networking.k8s.io/v1/servicecidrs")],
      ["list Calico IPPools", (c) => c.get("/apis/crd.projectcalico.org/v1/ippools")],
      ["list CiliumPodIPPools", (c) => c.get("/apis/cilium.io/v2alpha1/ciliumpodippools")],
      ["get a namespace (pod injection annotation)", (c) => c.get(`/api/v1/namespaces/${ns}`)],
      [
        "list kube-controller-manager pods",
        (c) => c.get("/api/v1/pods?labelSelector=component%3Dkube-controller-manager"),
      ],
      ["create an auto-pool", (c) => c.post(`${SP}/spiderippools?${DRY}`, pool(scope.name("new")))],
      ["delete a reclaimable auto-pool", (c) => c.delete(`${SP}/spiderippools/${p}?${DRY}`)],
      [
        "watch Deployments",
        (c) => c.get(`/apis/apps/v1/deployments?watch=true&timeoutSeconds=1&labelSelector=none%3Dnone`),
      ],
      ["list StatefulSets", (c) => c.get(`/apis/apps/v1/statefulsets`)],
      ["get a DaemonSet", (c) => c.get(`/apis/apps/v1/namespaces/${ns}/daemonsets/x`)],
      ["list ReplicaSets", (c) => c.get(`/apis/apps/v1/replicasets`)],
      ["list Jobs", (c) => c.get(`/apis/batch/v1/jobs`)],
      // The IP GC.
      [
        "replace a pool's status with its resourceVersion (PUT; the GC's releases)",
        (c) => c.put(`${SP}/spiderippools/${p}/status?${DRY}`, pool(p)),
      ],
      ["watch Pods", (c) => c.get(`/api/v1/pods?watch=true&timeoutSeconds=1&labelSelector=none%3Dnone`)],
      ["get a Pod", (c) => c.get(`/api/v1/namespaces/${ns}/pods/x`)],
      ["watch Nodes", (c) => c.get(`/api/v1/nodes?watch=true&timeoutSeconds=1&labelSelector=none%3Dnone`)],
      ["get a Node", (c) => c.get(`/api/v1/nodes/x`)],
      ["get a StatefulSet", (c) => c.get(`/apis/apps/v1/namespaces/${ns}/statefulsets/x`)],
      [
        "get a VirtualMachineInstance",
        (c) => c.get(`/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/x`),
      ],
      ["get a VirtualMachine", (c) => c.get(`/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachines/x`)],
      [
        "delete a SpiderEndpoint",
        (c) => c.delete(`${SP}/namespaces/${ns}/spiderendpoints/x?${DRY}`),
      ],
      [
        "remove a SpiderEndpoint's finalizer",
        merge(`${SP}/namespaces/${ns}/spiderendpoints/x`, { metadata: { finalizers: null } }),
      ],
      ["review a bearer token (TokenReview)", (c) =>
        c.post("/apis/authentication.k8s.io/v1/tokenreviews", {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenReview",
          spec: { token: "not-a-token" },
        })],
      [
        "review a caller's access (SubjectAccessReview)",
        (c) =>
          c.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
            apiVersion: "authorization.k8s.io/v1",
            kind: "SubjectAccessReview",
            spec: {
              user: "someone",
              resourceAttributes: {
                group: "spiderpool.spidernet.io",
                resource: "spiderippools",
                subresource: "gc",
              },
            },
          }),
      ],
      [
        "create Events about pods",
        (c) =>
          c.post(`/api/v1/namespaces/${ns}/events?${DRY}`, {
            apiVersion: "v1",
            kind: "Event",
            metadata: { name: "x.y" },
            involvedObject: { kind: "Pod", name: "x", namespace: ns },
            reason: "IPReleasedByGC",
            message: "m",
          }),
      ],
      [
        "watch CronJobs",
        (c) => c.get(`/apis/batch/v1/cronjobs?watch=true&timeoutSeconds=1&labelSelector=none%3Dnone`),
      ],
    ];
    const refused: Call[] = [
      ["create a SpiderSubnet", (c) => c.post(`${SP}/spidersubnets?${DRY}`, { metadata: { name: "x" } })],
      [
        "create a SpiderEndpoint",
        (c) => c.post(`${SP}/namespaces/${ns}/spiderendpoints?${DRY}`, { metadata: { name: "x" } }),
      ],
      ["update a SpiderCoordinator", merge(`${SP}/spidercoordinators/default`, { spec: {} })],
      ["patch a SpiderReservedIP", merge(`${SP}/spiderreservedips/x`, { spec: {} })],
      [
        "delete a NetworkAttachmentDefinition",
        (c) =>
          c.delete(`/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions/net?${DRY}`),
      ],
      [
        "read other ConfigMaps",
        (c) => c.get("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"),
      ],
      ["list every ConfigMap", (c) => c.get("/api/v1/namespaces/kube-system/configmaps")],
      ["read another Secret of its namespace", (c) => c.get(`${SECRETS}/other`)],
      ["list Secrets", (c) => c.get(SECRETS)],
      [
        "read Secrets of other namespaces",
        (c) => c.get(`/api/v1/namespaces/${ns}/secrets/spiderpool-controller-server-certs`),
      ],
      [
        "delete its certificate Secret",
        (c) => c.delete(`${SECRETS}/spiderpool-controller-server-certs?${DRY}`),
      ],
      [
        "update another Lease",
        (c) =>
          c.put(`${LEASES}/kube-controller-manager?${DRY}`, {
            metadata: { name: "kube-controller-manager" },
            spec: {},
          }),
      ],
      [
        "create Leases elsewhere",
        (c) =>
          c.post(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases?${DRY}`, {
            metadata: { name: "x" },
            spec: {},
          }),
      ],
      [
        "create a webhook configuration (even its own: deploy/webhooks.yaml ships them)",
        (c) =>
          c.post(
            `${ADM}/mutatingwebhookconfigurations?${DRY}`,
            webhookConfig("MutatingWebhookConfiguration", "spiderpool-controller"),
          ),
      ],
      [
        "replace its webhook configuration (PUT)",
        (c) =>
          c.put(
            `${ADM}/validatingwebhookconfigurations/spiderpool-controller?${DRY}`,
            webhookConfig("ValidatingWebhookConfiguration", "spiderpool-controller"),
          ),
      ],
      ["read another webhook configuration", (c) => c.get(`${ADM}/mutatingwebhookconfigurations/other`)],
      ["read another ConfigMap of its namespace", (c) => c.get(`${CONFIGMAPS}/other`)],
      [
        "patch another webhook configuration",
        merge(`${ADM}/validatingwebhookconfigurations/other`, { webhooks: [] }),
      ],
      ["list webhook configurations", (c) => c.get(`${ADM}/mutatingwebhookconfigurations`)],
      [
        "delete its webhook configuration",
        (c) => c.delete(`${ADM}/mutatingwebhookconfigurations/spiderpool-controller?${DRY}`),
      ],
      [
        "create ConfigMaps",
        (c) => c.post(`/api/v1/namespaces/${ns}/configmaps?${DRY}`, { metadata: { name: "x" } }),
      ],
      ["delete Pods", (c) => c.delete(`/api/v1/namespaces/${ns}/pods/x?${DRY}`)],
      ["patch Pods", merge(`/api/v1/namespaces/${ns}/pods/x`, { metadata: { labels: { a: "b" } } })],
      ["patch Nodes", merge(`/api/v1/nodes/x`, { metadata: { labels: { a: "b" } } })],
      [
        "replace a SpiderEndpoint (PUT)",
        (c) => c.put(`${SP}/namespaces/${ns}/spiderendpoints/x?${DRY}`, { metadata: { name: "x" } }),
      ],
      [
        "replace a subnet's status (PUT)",
        (c) => c.put(`${SP}/spidersubnets/${s}/status?${DRY}`, { metadata: { name: s } }),
      ],
      [
        "delete a VirtualMachineInstance",
        (c) => c.delete(`/apis/kubevirt.io/v1/namespaces/${ns}/virtualmachineinstances/x?${DRY}`),
      ],
      [
        "scale a Deployment",
        merge(`/apis/apps/v1/namespaces/${ns}/deployments/x/scale`, { spec: { replicas: 1 } }),
      ],
      [
        "change CRDs",
        (c) =>
          c.delete(
            `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/spiderippools.spiderpool.spidernet.io?${DRY}`,
          ),
      ],
    ];
    const client = await clientAs(scope, "kube-system", "spiderpool-controller");
    try {
      await check(client, "spiderpool-controller", allowed, refused);
    } finally {
      client.close();
    }
  },
);

kubeTest(
  "the init Job's ServiceAccount may create the default objects and read the webhook configurations, nothing else",
  async () => {
    await using scope = await testScope("rbac-init");
    const { pool: p } = await withRbac(scope);
    const ns = scope.namespace;
    const allowed: Call[] = [
      ["create a SpiderCoordinator", (c) =>
        c.post(`${SP}/spidercoordinators?${DRY}`, {
          apiVersion: "spiderpool.spidernet.io/v2beta1",
          kind: "SpiderCoordinator",
          metadata: { name: scope.name("c") },
          spec: { podCIDRType: "auto" },
        })],
      ["create a SpiderSubnet", (c) =>
        c.post(`${SP}/spidersubnets?${DRY}`, {
          apiVersion: "spiderpool.spidernet.io/v2beta1",
          kind: "SpiderSubnet",
          metadata: { name: scope.name("s") },
          spec: { ipVersion: 4, subnet: "203.0.113.0/24" },
        })],
      ["create a SpiderIPPool", (c) => c.post(`${SP}/spiderippools?${DRY}`, pool(scope.name("new")))],
      [
        "be told that a SpiderIPPool exists (409 on create)",
        (c) => c.post(`${SP}/spiderippools?${DRY}`, pool(p)),
      ],
      [
        "create a SpiderMultusConfig in its namespace",
        (c) =>
          c.post(`${SP}/namespaces/kube-system/spidermultusconfigs?${DRY}`, {
            apiVersion: "spiderpool.spidernet.io/v2beta1",
            kind: "SpiderMultusConfig",
            metadata: { name: "calico" },
            spec: { cniType: "custom" },
          }),
      ],
      [
        "get the controller's MutatingWebhookConfiguration",
        (c) => c.get(`${ADM}/mutatingwebhookconfigurations/spiderpool-controller`),
      ],
      [
        "get the controller's ValidatingWebhookConfiguration",
        (c) => c.get(`${ADM}/validatingwebhookconfigurations/spiderpool-controller`),
      ],
      ["discover the Spiderpool API group", (c) => c.get(SP)],
    ];
    const refused: Call[] = [
      ["list SpiderIPPools", (c) => c.get(`${SP}/spiderippools`)],
      ["get a SpiderIPPool", (c) => c.get(`${SP}/spiderippools/${p}`)],
      [
        "update a SpiderIPPool",
        (c) => c.patch(`${SP}/spiderippools/${p}?${DRY}`, { spec: { ips: [] } }, "merge"),
      ],
      ["delete a SpiderIPPool", (c) => c.delete(`${SP}/spiderippools/${p}?${DRY}`)],
      [
        "create a SpiderMultusConfig elsewhere",
        (c) =>
          c.post(`${SP}/namespaces/${ns}/spidermultusconfigs?${DRY}`, { metadata: { name: "x" }, spec: {} }),
      ],
      [
        "create a SpiderReservedIP",
        (c) => c.post(`${SP}/spiderreservedips?${DRY}`, { metadata: { name: "x" } }),
      ],
      ["get another webhook configuration", (c) => c.get(`${ADM}/mutatingwebhookconfigurations/other`)],
      [
        "change the webhook configuration",
        (c) =>
          c.patch(
            `${ADM}/mutatingwebhookconfigurations/spiderpool-controller?${DRY}`,
            { webhooks: [] },
            "merge",
          ),
      ],
      ["read Secrets", (c) => c.get(`${SECRETS}/spiderpool-controller-server-certs`)],
      [
        "create Pods",
        (c) => c.post(`/api/v1/namespaces/kube-system/pods?${DRY}`, { metadata: { name: "x" } }),
      ],
    ];
    const client = await clientAs(scope, "kube-system", "spiderpool-init");
    try {
      await check(client, "spiderpool-init", allowed, refused);
    } finally {
      client.close();
    }
  },
);
