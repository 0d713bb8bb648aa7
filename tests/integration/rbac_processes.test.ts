// The real processes under deploy/rbac.yaml, each with its own ServiceAccount's token instead of the admin's:
// `spiderpool controller` patches the webhook configurations deploy/webhooks.yaml ships, serves them, leads and
// reconciles; without those configurations it says what to apply and stops; `spiderpool init` waits for the
// controller's real webhooks and creates the defaults through them. Least privilege is enough when these pass
// (rbac_controller.test.ts shows it is no more than that).
//
// The ServiceAccounts are bound in kube-system, so these tests run the controller there, under the real names
// (Lease, Secret, admission ledgers, webhook configurations spiderpool-controller), and remove them at the end.
// Test files run one at a time, so no other suite meets these cluster-wide webhooks while they exist.
import assert from "node:assert/strict";
import { NotFoundError } from "../../src/kube/client.ts";
import { scrapeMetrics } from "../e2e/node_sim.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";
import { API, CONTROLLER_BIN, failure, forceDelete, randomSubnets } from "../controller/webhook_harness.ts";
import { run } from "../binary/run.ts";
import {
  ADM,
  CONTROLLER_STATE,
  controllerAsServiceAccount,
  FAST_LEASE,
  NS,
  underRbac,
} from "./under_rbac.ts";

interface Obj {
  metadata: { name: string; finalizers?: string[]; labels?: Record<string, string> };
  spec: Record<string, unknown>;
  status?: { totalIPCount?: number };
}

async function webhookConfig(scope: TestScope, plural: string) {
  return (await scope.cluster.http.get<
    { webhooks: { name: string; clientConfig: { caBundle?: string; url?: string; service?: unknown } }[] }
  >(`${ADM}/${plural}/spiderpool-controller`)).body;
}

kubeTest(
  "under RBAC: the controller with its ServiceAccount's token patches the shipped webhooks, serves them, leads and reconciles",
  async () => {
    // A namespace whose pods (only) the Pod webhook of podResourceInject sees, as a user would switch it on.
    await using scope = await testScope("rbac-ctl-proc");
    await using sa = await underRbac(scope, true);
    const before = await webhookConfig(scope, "validatingwebhookconfigurations");
    assert.ok(before.webhooks.every((w) => !w.clientConfig.caBundle), "shipped without CA");

    await using set = await controllerAsServiceAccount(scope, sa.controller, true, {
      configYaml: `podResourceInject:\n  enabled: true\n  namespacesInclude: [${scope.namespace}]\n`,
    });
    const leader = await set.leader();
    await set.ready(leader);
    assert.equal(await set.holder(), leader.podName);
    // The shipped configurations now carry the CA and this controller's address, and nothing was created.
    for (const plural of ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]) {
      const cfg = await webhookConfig(scope, plural);
      // The mutating one also holds the Pod webhook podResourceInject asks for.
      assert.equal(cfg.webhooks.length, plural.startsWith("mutating") ? 6 : 5, plural);
      for (const w of cfg.webhooks) {
        assert.ok(w.clientConfig.caBundle, `${plural} ${w.name} has the CA`);
        assert.equal(w.clientConfig.service, undefined, "the url replaced the shipped Service");
        assert.match(w.clientConfig.url!, /^https:\/\/127\.0\.0\.1:\d+\//);
      }
    }
    assert.match(
      await leader.log(),
      /registered in spiderpool-controller \(mutating patched, validating patched/,
    );

    // Served: a pool without ipVersion is completed, an overlapping one refused; the leader writes the status.
    const { v4, v4prefix } = randomSubnets();
    const name = scope.name("p");
    const pool = await set.create<Obj>(`${API}/spiderippools`, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: { name },
      spec: { subnet: v4, ips: [`${v4prefix}10-${v4prefix}14`] },
    });
    assert.equal(pool.spec.ipVersion, 4);
    const refused = await failure(set.create(`${API}/spiderippools`, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: { name: scope.name("q") },
      spec: { subnet: v4, ips: [`${v4prefix}14`] },
    }));
    assert.match(refused.message, new RegExp(`overlaps SpiderIPPool "${name}"`));
    await poll("the leader to write totalIPCount", 30_000, async () => {
      const { body } = await set.http.get<Obj>(`${API}/spiderippools/${name}`);
      return body.status?.totalIPCount === 5 || undefined;
    });
    // The Pod webhook reads the namespace and lists SpiderMultusConfigs of every namespace as the controller's
    // ServiceAccount: a pod asking for a group of networks gets them (the SMC through its own webhook).
    const group = `rdma-${set.id}`;
    await set.create(`${API}/namespaces/${scope.namespace}/spidermultusconfigs`, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderMultusConfig",
      metadata: { name: "gpu1", annotations: { "cni.spidernet.io/rdma-resource-inject": group } },
      spec: { cniType: "sriov", sriov: { resourceName: "spidernet.io/gpu1sriov", ippools: { ipv4: ["a"] } } },
    });
    const pod = await poll("the Pod webhook to inject a pod", 30_000, async () => {
      const { body } = await set.http.post<
        {
          metadata: { annotations?: Record<string, string> };
          spec: { containers: { resources?: unknown }[] };
        }
      >(`/api/v1/namespaces/${scope.namespace}/pods?dryRun=All`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name: "p",
          labels: set.labels(),
          annotations: { "cni.spidernet.io/rdma-resource-inject": group },
        },
        spec: { containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
      });
      return body.metadata.annotations?.["k8s.v1.cni.cncf.io/networks"] ? body : undefined;
    });
    assert.equal(pod.metadata.annotations?.["k8s.v1.cni.cncf.io/networks"], `${scope.namespace}/gpu1`);
    // (The API server defaults the request of an extended resource to its limit.)
    assert.deepEqual(
      (pod.spec.containers[0].resources as { limits?: unknown }).limits,
      { "spidernet.io/gpu1sriov": "1" },
    );

    // Every component the Deployment switches on (the pool and subnet reconcilers, the auto-pool controller, the
    // SpiderMultusConfig and SpiderCoordinator controllers, the IP GC) has listed what it watches by now; nothing refused.
    assert.match(await leader.log(), /; 5 leader-only component\(s\)/);
    await new Promise((r) => setTimeout(r, 3_000));
    assert.doesNotMatch(await leader.log(), /forbidden|HTTP 403/i);
  },
);

kubeTest(
  "under RBAC: without deploy/webhooks.yaml the controller says what to apply and exits 1 (it may not create webhook configurations)",
  async () => {
    await using scope = await testScope("rbac-ctl-nowh", { serviceAccount: false });
    await using sa = await underRbac(scope, false);
    const r = await run(CONTROLLER_BIN, [
      "controller",
      "--kubeconfig",
      sa.controller,
      "--namespace",
      NS,
      "--pod-name",
      scope.name("ctl"),
      "--config-path",
      "/nonexistent/conf.yml",
      "--health-port",
      "0",
      "--webhook-port",
      "0",
      "--bind-address",
      "127.0.0.1",
      "--webhook-url",
      "https://127.0.0.1:1",
    ], FAST_LEASE);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /MutatingWebhookConfiguration "spiderpool-controller" does not exist and this controller may not create it: .*cannot create resource "mutatingwebhookconfigurations".*; apply deploy\/webhooks\.yaml \(the controller then only patches it\), or grant create on mutatingwebhookconfigurations named "spiderpool-controller"/,
    );
    await assert.rejects(
      scope.cluster.http.get(`${ADM}/mutatingwebhookconfigurations/spiderpool-controller`),
      NotFoundError,
    );
    // It handed back the Lease it may have taken on its way down.
    try {
      const { body } = await scope.cluster.http.get<{ spec: { holderIdentity?: string } }>(
        CONTROLLER_STATE[0],
      );
      assert.notEqual(body.spec.holderIdentity, scope.name("ctl"));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  },
);

kubeTest(
  "under RBAC: spiderpool init with its ServiceAccount's token waits for the controller's real webhooks, then creates the defaults through them",
  async () => {
    await using scope = await testScope("rbac-init-proc", { serviceAccount: false });
    await using sa = await underRbac(scope, true);
    const { v4, v4prefix } = randomSubnets();
    const env: Record<string, string> = {
      SPIDERPOOL_NAMESPACE: NS,
      SPIDERPOOL_CONTROLLER_NAME: "spiderpool-controller",
      SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME: scope.name("coordinator"),
      SPIDERPOOL_INIT_DEFAULT_COORDINATOR_MODE: "auto",
      SPIDERPOOL_INIT_DEFAULT_COORDINATOR_POD_CIDR_TYPE: "auto",
      SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME: scope.name("v4-subnet"),
      SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME: scope.name("v4-pool"),
      SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET: v4,
      SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_IPRANGES: `["${v4prefix}10-${v4prefix}20"]`,
      SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY: `${v4prefix}1`,
      SPIDERPOOL_INIT_ENABLE_MULTUS_CONFIG: "true",
      SPIDERPOOL_INIT_DEFAULT_CNI_NAME: scope.name("cni"),
      SPIDERPOOL_INIT_DEFAULT_CNI_NAMESPACE: NS,
    };
    const paths = [
      `${API}/spidercoordinators/${env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME}`,
      `${API}/spidersubnets/${env.SPIDERPOOL_INIT_DEFAULT_IPV4_SUBNET_NAME}`,
      `${API}/spiderippools/${env.SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME}`,
      `${API}/namespaces/${NS}/spidermultusconfigs/${env.SPIDERPOOL_INIT_DEFAULT_CNI_NAME}`,
    ];
    const child = new Deno.Command(CONTROLLER_BIN, {
      args: ["init", `--kubeconfig=${sa.init}`, "--timeout=120"],
      env: { ...env, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
      clearEnv: true,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let stderr = "";
    const reading = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) stderr += chunk;
    })();
    try {
      // The shipped configurations exist but carry no CA yet: init waits for the controller to patch it in.
      await poll("init to wait for the controller's CA", 60_000, () =>
        Promise.resolve(
          stderr.includes(
            "waiting for mutatingwebhookconfigurations/spiderpool-controller of the controller, with its CA",
          ) ||
            undefined,
        ));
      assert.doesNotMatch(stderr, /created/);
      // Init's objects carry no label, so this controller's webhooks see every object while the test runs.
      await using set = await controllerAsServiceAccount(scope, sa.controller, false);
      for (const p of paths) set.track(p);
      const status = await child.status;
      await reading;
      assert.equal(status.code, 0, stderr);
      assert.equal(stderr.match(/created Spider/g)?.length, 4, stderr);

      // Admitted by the real webhooks: the mutating one added what init does not write itself.
      const pool = (await set.http.get<Obj>(paths[2])).body;
      assert.ok(pool.metadata.finalizers?.includes("spiderpool.spidernet.io"), JSON.stringify(pool.metadata));
      assert.equal(pool.metadata.labels?.["ipam.spidernet.io/ippool-cidr"], v4.replace(/[./]/g, "-"));
      const totals = await scrapeMetrics(set.replicas[0].metricsPort);
      for (const kind of ["SpiderCoordinator", "SpiderSubnet", "SpiderIPPool", "SpiderMultusConfig"]) {
        const key =
          `spiderpool_webhook_admission_counts_total{webhook="validating",kind="${kind}",operation="CREATE",verdict="allowed"}`;
        assert.ok((totals.get(key) ?? 0) >= 1, `${kind} was admitted by the controller's webhook`);
      }
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await reading.catch(() => {});
      for (const p of paths) await forceDelete(scope.cluster.http, p);
    }
  },
);
