// `dist/spiderpool init` against the real API server: creates the default objects from upstream's environment,
// changes nothing when run again, waits for the controller's webhook configurations, keeps retrying while the
// webhook does not answer, and refuses bad settings before writing anything.
import assert from "node:assert/strict";
import { run } from "../binary/run.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";
import { NotFoundError } from "../../src/kube/client.ts";
import { type ControllerSet, startControllers } from "./webhook_harness.ts";

const BIN = new URL("../../dist/spiderpool", import.meta.url).pathname;
const API = "/apis/spiderpool.spidernet.io/v2beta1";
const ADMISSION = "/apis/admissionregistration.k8s.io/v1";

/** The chart's environment for this test's uniquely named objects. */
function chartEnv(scope: TestScope, extra: Record<string, string> = {}): Record<string, string> {
  return {
    SPIDERPOOL_NAMESPACE: scope.namespace,
    SPIDERPOOL_CONTROLLER_NAME: scope.name("controller"),
    SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME: scope.name("coordinator"),
    SPIDERPOOL_INIT_DEFAULT_COORDINATOR_MODE: "auto",
    SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POD_CIDR_TYPE: "cluster",
    SPIDERPOOL_INIT_DEFAULT_COORDINATOR_DETECT_GATEWAY: "false",
    SPIDERPOOL_INIT_DEFAULT_COORDINATOR_DETECT_IP_CONFLICT: "false",
    SPIDERPOOL_INIT_DEFAULT_COORDINATOR_TUNE_POD_ROUTES: "true",
    SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR: '["198.18.0.0/15"]',
    SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME: scope.name("v4-subnet"),
    SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME: scope.name("v4-pool"),
    SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET: "203.0.113.0/24",
    SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_IPRANGES: '["203.0.113.10-203.0.113.99"]',
    SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY: "203.0.113.1",
    SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME: scope.name("v6-pool"),
    SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_SUBNET: "2001:db8:77::/64",
    SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_IPRANGES: '["2001:db8:77::10-2001:db8:77::ff"]',
    SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG: "false",
    ...extra,
  };
}

/**
 * Registers for clean-up everything init may create for `env`; with a controller `set`, through it (the
 * webhook's finalizers are stripped).
 */
function track(scope: TestScope, env: Record<string, string>, set?: ControllerSet): void {
  const t = set ? set.track : scope.track;
  t(`${API}/spidercoordinators/${env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME}`);
  t(`${API}/spidersubnets/${env.SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME}`);
  t(`${API}/spiderippools/${env.SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME}`);
  t(`${API}/spiderippools/${env.SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME}`);
}

async function get<T>(scope: TestScope, path: string): Promise<T | undefined> {
  try {
    return (await scope.cluster.http.get<T>(path)).body;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

interface Obj {
  metadata: { resourceVersion: string; annotations?: Record<string, string>; finalizers?: string[] };
  spec: Record<string, unknown>;
}

kubeTest(
  "spiderpool init creates the default coordinator, subnet, pools and Multus config through the controller's webhooks; a second run changes nothing",
  async () => {
    await using scope = await testScope("init", { serviceAccount: false });
    // The real controller under the name init waits for; init's objects carry no label, so its webhooks see
    // every object while this test runs (files run one at a time).
    await using set = await startControllers(scope, {
      webhookConfigName: scope.name("controller"),
      webhookSelector: false,
    });
    const cniDir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(
        `${cniDir}/00-multus.conf`,
        JSON.stringify({ name: "multus-cni-network", type: "multus" }),
      );
      await Deno.writeTextFile(
        `${cniDir}/10-calico.conflist`,
        JSON.stringify({ cniVersion: "0.3.1", name: "k8s-pod-network", plugins: [{ type: "calico" }] }),
      );
      const env = chartEnv(scope, {
        SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG: "true",
        SPIDERPOOL_INIT_DEFAULT_CNI_DIR: cniDir,
        SPIDERPOOL_INIT_DEFAULT_CNI_NAMESPACE: scope.namespace,
      });
      track(scope, env, set);
      const args = ["init", `--kubeconfig=${scope.cluster.kubeconfigPath}`, "--timeout=60"];
      const first = await run(BIN, args, env);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stderr, /created SpiderCoordinator/);
      assert.match(first.stderr, /network "k8s-pod-network" of type calico/);

      const coord = await get<Obj>(
        scope,
        `${API}/spidercoordinators/${env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME}`,
      );
      assert.equal(coord?.spec.podCIDRType, "cluster");
      assert.deepEqual(coord?.spec.hijackCIDR, ["198.18.0.0/15"]);
      const subnet = await get<Obj>(
        scope,
        `${API}/spidersubnets/${env.SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME}`,
      );
      assert.deepEqual(subnet?.spec, {
        ipVersion: 4,
        subnet: "203.0.113.0/24",
        ips: ["203.0.113.10-203.0.113.99"],
        gateway: "203.0.113.1",
      });
      const v4 = await get<Obj>(
        scope,
        `${API}/spiderippools/${env.SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME}`,
      );
      assert.equal(v4?.spec.default, true);
      assert.equal(v4?.spec.gateway, "203.0.113.1");
      // Admitted by the controller's mutating webhook, which adds what init does not write.
      assert.deepEqual(v4?.metadata.finalizers, ["spiderpool.spidernet.io"]);
      const v6 = await get<Obj>(
        scope,
        `${API}/spiderippools/${env.SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME}`,
      );
      assert.deepEqual([v6?.spec.ipVersion, v6?.spec.subnet, v6?.spec.default], [
        6,
        "2001:db8:77::/64",
        true,
      ]);
      const smc = await get<Obj>(scope, `${API}/namespaces/${scope.namespace}/spidermultusconfigs/calico`);
      assert.equal(smc?.metadata.annotations?.["multus.spidernet.io/cr-name"], "k8s-pod-network");
      assert.deepEqual([smc?.spec.cniType, smc?.spec.enableCoordinator], ["custom", false]);

      const versions = [coord, subnet, v4, v6, smc].map((o) => o?.metadata.resourceVersion);
      const second = await run(BIN, args, env);
      assert.equal(second.code, 0, second.stderr);
      assert.doesNotMatch(second.stderr, /created/);
      assert.equal(second.stderr.match(/exists; left unchanged/g)?.length, 5);
      const again = [
        `${API}/spidercoordinators/${env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME}`,
        `${API}/spidersubnets/${env.SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME}`,
        `${API}/spiderippools/${env.SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME}`,
        `${API}/spiderippools/${env.SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME}`,
        `${API}/namespaces/${scope.namespace}/spidermultusconfigs/calico`,
      ];
      assert.deepEqual(
        await Promise.all(again.map(async (p) => (await get<Obj>(scope, p))?.metadata.resourceVersion)),
        versions,
      );
    } finally {
      await Deno.remove(cniDir, { recursive: true });
    }
  },
);

kubeTest("spiderpool init refuses a bad setting before writing anything (exit 2)", async () => {
  await using scope = await testScope("init-bad", { serviceAccount: false });
  const env = chartEnv(scope, { SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY: "198.51.100.1" });
  track(scope, env);
  const r = await run(
    BIN,
    ["init", `--kubeconfig=${scope.cluster.kubeconfigPath}`, "--skip-webhook-wait"],
    env,
  );
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /spec\.gateway.*198\.51\.100\.1.*\(set by SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY\)/,
  );
  assert.equal(
    await get(scope, `${API}/spidercoordinators/${env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME}`),
    undefined,
  );
});

/** A webhook configuration of `kind` named `name` whose one webhook calls `url` for `resources`. */
function webhookConfig(
  kind: "Mutating" | "Validating",
  name: string,
  url: string,
  resources: string[],
  caPem: string,
) {
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: `${kind}WebhookConfiguration`,
    metadata: { name },
    webhooks: [{
      name: `${kind.toLowerCase()}.${name}.spidernet.io`,
      admissionReviewVersions: ["v1"],
      sideEffects: "None",
      failurePolicy: "Fail",
      timeoutSeconds: 2,
      clientConfig: { url, caBundle: btoa(caPem) },
      rules: [{
        apiGroups: ["spiderpool.spidernet.io"],
        apiVersions: ["v2beta1"],
        operations: ["CREATE"],
        resources,
        scope: "Cluster",
      }],
    }],
  };
}

async function clusterCA(scope: TestScope): Promise<string> {
  const cluster = scope.cluster.kc.getCurrentCluster()!;
  return cluster.caData ? atob(cluster.caData) : await Deno.readTextFile(cluster.caFile!);
}

kubeTest("spiderpool init waits until the controller's webhook configurations are registered", async () => {
  await using scope = await testScope("init-wait", { serviceAccount: false });
  const env = chartEnv(scope);
  track(scope, env);
  const name = env.SPIDERPOOL_CONTROLLER_NAME;
  const child = new Deno.Command(BIN, {
    args: ["init", `--kubeconfig=${scope.cluster.kubeconfigPath}`, "--timeout=60"],
    env: { ...env, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
  })();
  try {
    await poll(
      "init to wait for the webhook configuration",
      30_000,
      () =>
        Promise.resolve(stderr.includes(`waiting for mutatingwebhookconfigurations/${name}`) || undefined),
    );
    assert.equal(
      await get(scope, `${API}/spidercoordinators/${env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME}`),
      undefined,
    );
    // Register configurations for this controller name; their webhooks match a resource nothing creates, so the
    // creations that follow are not intercepted.
    const ca = await clusterCA(scope);
    for (const kind of ["Mutating", "Validating"] as const) {
      const plural = `${kind.toLowerCase()}webhookconfigurations`;
      scope.track(`${ADMISSION}/${plural}/${name}`);
      await scope.cluster.http.post(
        `${ADMISSION}/${plural}`,
        webhookConfig(kind, name, "https://127.0.0.1:1/x", ["spiderendpoints"], ca),
      );
    }
    const status = await child.status;
    await reading;
    assert.equal(status.code, 0, stderr);
    assert.match(stderr, /waiting for validatingwebhookconfigurations|created SpiderCoordinator/);
    assert.ok(await get(scope, `${API}/spidercoordinators/${env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME}`));
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.output().catch(() => {});
  }
});

kubeTest(
  "spiderpool init keeps retrying a creation while the webhook does not answer, then says why it gave up",
  async () => {
    await using scope = await testScope("init-down", { serviceAccount: false });
    const env = chartEnv(scope);
    track(scope, env);
    const name = env.SPIDERPOOL_CONTROLLER_NAME;
    const ca = await clusterCA(scope);
    // Nothing listens on port 1: the API server cannot call this webhook, and failurePolicy is Fail.
    for (const kind of ["Mutating", "Validating"] as const) {
      const plural = `${kind.toLowerCase()}webhookconfigurations`;
      scope.track(`${ADMISSION}/${plural}/${name}`);
      await scope.cluster.http.post(
        `${ADMISSION}/${plural}`,
        webhookConfig(kind, name, "https://127.0.0.1:1/x", ["spidercoordinators"], ca),
      );
    }
    const r = await run(BIN, ["init", `--kubeconfig=${scope.cluster.kubeconfigPath}`, "--timeout=6"], env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /waiting for the API server to accept SpiderCoordinator/);
    assert.match(
      r.stderr,
      /gave up waiting for the API server to accept SpiderCoordinator .*failed calling webhook/,
    );
    assert.equal(
      await get(scope, `${API}/spidercoordinators/${env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME}`),
      undefined,
    );
  },
);
