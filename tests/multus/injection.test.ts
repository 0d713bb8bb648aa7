// Pod resource injection through the real API server: mutatePod served over HTTPS and registered as a
// MutatingWebhookConfiguration for this test's namespace (as the controller registers /mutate--v1-pod), so
// pods created through the API server come back with the networks and limits injected, or are refused with
// the webhook's message.
import assert from "node:assert/strict";
import { KubeHttpError } from "../../src/kube/client.ts";
import { mutatePod, type PodAdmissionRequest } from "../../src/multus/inject.ts";
import { PodInjectionMetrics } from "../../src/multus/metrics.ts";
import { Registry } from "prom-client";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";
import { createSMC } from "./kit.ts";

const NET = "cni.spidernet.io/network-resource-inject";
const RDMA = "cni.spidernet.io/rdma-resource-inject";
const NETWORKS = "k8s.v1.cni.cncf.io/networks";

interface Pod {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { containers: { name: string; resources?: { limits?: Record<string, string> } }[] };
}

async function selfSignedCert(dir: string): Promise<{ cert: string; key: string }> {
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      `${dir}/key.pem`,
      "-out",
      `${dir}/cert.pem`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`openssl: ${new TextDecoder().decode(out.stderr)}`);
  return { cert: await Deno.readTextFile(`${dir}/cert.pem`), key: await Deno.readTextFile(`${dir}/key.pem`) };
}

/** Serves mutatePod on https://127.0.0.1:PORT/mutate--v1-pod and registers it for the scope's namespace. */
async function podWebhook(scope: TestScope, metrics: PodInjectionMetrics): Promise<AsyncDisposable> {
  const { http } = scope.cluster;
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-podwh-" });
  const { cert, key } = await selfSignedCert(dir);
  const ac = new AbortController();
  const listening = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert,
    key,
    signal: ac.signal,
    onListen: ({ port }) => listening.resolve(port),
  }, async (req) => {
    if (new URL(req.url).pathname !== "/mutate--v1-pod") return new Response("not found", { status: 404 });
    const review = await req.json() as { request: PodAdmissionRequest };
    const response = await mutatePod(http, review.request, { metrics });
    return Response.json({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response });
  });
  const port = await listening.promise;
  const name = scope.name("pods");
  const path = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${name}`;
  scope.track(path);
  await http.post("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "MutatingWebhookConfiguration",
    metadata: { name },
    webhooks: [{
      name: "pods.spiderpool.spidernet.io",
      admissionReviewVersions: ["v1"],
      sideEffects: "None",
      failurePolicy: "Fail",
      timeoutSeconds: 10,
      clientConfig: {
        url: `https://127.0.0.1:${port}/mutate--v1-pod`,
        caBundle: btoa(cert),
      },
      rules: [{ apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"] }],
      namespaceSelector: {
        matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "In", values: [scope.namespace] }],
      },
    }],
  });
  // The API server picks up a new webhook configuration within a moment; until then pods pass unmutated. A
  // dry-run pod asking for a network nobody offers is refused once the webhook is called.
  await poll("the API server to call the pod webhook", 30_000, async () => {
    const probe = podBody("probe", { [NET]: "probe-no-such-network" });
    const refused = await http.post(`/api/v1/namespaces/${scope.namespace}/pods?dryRun=All`, probe).then(
      () => false,
      (e) => e instanceof KubeHttpError && e.status === 403,
    );
    return refused || undefined;
  });
  return {
    async [Symbol.asyncDispose]() {
      await http.delete(path).catch(() => {});
      ac.abort();
      await server.finished;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function podBody(name: string, annotations: Record<string, string>, limits?: Record<string, string>) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, annotations },
    spec: {
      containers: [
        { name: "app", image: "registry.invalid/app:1", ...(limits ? { resources: { limits } } : {}) },
        { name: "sidecar", image: "registry.invalid/sidecar:1" },
      ],
    },
  };
}

kubeTest(
  "pod injection: pods created through the API server get the labelled networks and RDMA resources",
  async () => {
    await using scope = await testScope("smc-inject");
    const other = await testScope("smc-inject-b", { serviceAccount: false });
    await using _other = other;
    const { http } = scope.cluster;
    const metrics = new PodInjectionMetrics(new Registry());
    await using _webhook = await podWebhook(scope, metrics);
    const group = `gpu-${scope.namespace.slice(-8)}`;
    const anno = { [RDMA]: group, [NET]: group };
    await createSMC(scope, "gpu2", {
      cniType: "sriov",
      sriov: { resourceName: "spidernet.io/gpu2sriov", ippools: { ipv4: ["gpu2-v4"] } },
    }, anno);
    await createSMC(other, "gpu1", {
      cniType: "sriov",
      sriov: { resourceName: "spidernet.io/gpu1sriov", ippools: { ipv4: ["gpu1-v4"] } },
    }, anno);
    await createSMC(scope, "shared", {
      cniType: "macvlan",
      macvlan: {
        master: ["ens1f0"],
        rdmaResourceName: "spidernet.io/shared_cx5",
        ippools: { ipv4: ["m-v4"] },
      },
    }, { ...anno, "multus.spidernet.io/cr-name": "shared-net" });

    const pods = `/api/v1/namespaces/${scope.namespace}/pods`;
    const { body: pod } = await http.post<Pod>(
      pods,
      podBody("rdma", { [RDMA]: group }, { "spidernet.io/gpu1sriov": "1" }),
    );
    assert.equal(
      pod.metadata.annotations?.[NETWORKS],
      `${scope.namespace}/shared-net,${other.namespace}/gpu1,${scope.namespace}/gpu2`,
    );
    assert.deepEqual(pod.spec.containers[0].resources?.limits, {
      "spidernet.io/gpu1sriov": "1",
      "spidernet.io/shared_cx5": "1",
      "spidernet.io/gpu2sriov": "1",
    });
    assert.equal(pod.spec.containers[1].resources?.limits, undefined);

    const { body: plain } = await http.post<Pod>(pods, podBody("plain", {}));
    assert.equal(plain.metadata.annotations?.[NETWORKS], undefined);
    assert.match(
      await metrics.admissions.get().then((m) => JSON.stringify(m.values)),
      /"annotation":"cni\.spidernet\.io\/rdma-resource-inject","result":"injected"/,
    );
  },
);

kubeTest(
  "pod injection: a namespace annotation injects its pods; a value no SMC carries refuses the pod",
  async () => {
    await using scope = await testScope("smc-inject-ns");
    const { http } = scope.cluster;
    await using _webhook = await podWebhook(scope, new PodInjectionMetrics(new Registry()));
    const tenant = `vlan-${scope.namespace.slice(-8)}`;
    await createSMC(scope, "vlan100", { cniType: "vlan", vlan: { master: ["eth0"], vlanID: 100 } }, {
      [NET]: tenant,
    });
    await http.patch(`/api/v1/namespaces/${scope.namespace}`, {
      metadata: { annotations: { [NET]: tenant } },
    }, "merge");
    const pods = `/api/v1/namespaces/${scope.namespace}/pods`;
    const { body: pod } = await http.post<Pod>(pods, podBody("tenant", {}));
    assert.equal(pod.metadata.annotations?.[NETWORKS], `${scope.namespace}/vlan100`);
    assert.equal(
      pod.spec.containers[0].resources?.limits,
      undefined,
      "a VLAN without RDMA needs no resource",
    );

    const err = await http.post(pods, podBody("lost", { [NET]: "nobody-has-this" })).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(err instanceof KubeHttpError, `refused: ${err}`);
    assert.equal(err.status, 403);
    assert.match(
      err.message,
      /denied the request: pod .*\/lost: annotation cni\.spidernet\.io\/network-resource-inject="nobody-has-this" \(on the pod\) asks for the networks of SpiderMultusConfigs labelled/,
    );
  },
);
