// deploy/controller.yaml, deploy/webhooks.yaml, deploy/init.yaml, deploy/rbac.yaml and deploy/agent.yaml: what
// the controller Deployment, its Service and webhook configurations, the init Job and the agent promise
// (replicas, probes, ports, only the flags and environment the processes read, identities), and that the API
// server accepts every object of every manifest in a dry-run create.
import assert from "node:assert/strict";
import { loadAll } from "js-yaml";
import { parseConfig } from "../../src/api/config.ts";
import { SINGULAR } from "../../src/api/constants.ts";
import { webhookConfigurations } from "../../src/controller/webhook/register.ts";
import { run } from "../binary/run.ts";
import { kubeTest, testScope } from "../kube/harness.ts";
import { CONTROLLER_BIN } from "./webhook_harness.ts";

const DEPLOY = new URL("../../deploy/", import.meta.url);

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  // deno-lint-ignore no-explicit-any
  spec?: any;
  // deno-lint-ignore no-explicit-any
  [k: string]: any;
}

async function docs(file: string): Promise<Doc[]> {
  return (loadAll(await Deno.readTextFile(new URL(file, DEPLOY))) as Doc[]).filter((d) => d);
}

function find(all: Doc[], kind: string, name: string): Doc {
  const d = all.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(d, `${kind} ${name} is in the manifests`);
  return d;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

const envOf = (c: { env?: EnvVar[] }) => Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));

Deno.test("deploy/controller.yaml: two replicas on separate nodes, probes on 5720, the leader election settings", async () => {
  const all = await docs("controller.yaml");
  const d = find(all, "Deployment", "spiderpool-controller");
  assert.equal(d.spec.replicas, 2);
  const pod = d.spec.template.spec;
  assert.equal(pod.serviceAccountName, "spiderpool-controller");
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.dnsPolicy, "ClusterFirstWithHostNet");
  assert.equal(
    pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey,
    "kubernetes.io/hostname",
  );
  const c = pod.containers[0];
  assert.deepEqual(c.command.slice(0, 2), ["spiderpool", "controller"]);
  for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
    assert.equal(c[probe].httpGet.port, 5720, probe);
    assert.equal(c[probe].httpGet.path, `/v1/runtime/${probe.replace("Probe", "")}`);
  }
  assert.equal(c.startupProbe.failureThreshold * c.startupProbe.periodSeconds, 60, "upstream's 30 × 2 s");
  assert.deepEqual(
    c.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]),
    [["http", 5720], ["metrics", 5721], ["webhook", 5722]],
  );
  const env = envOf(c);
  assert.equal(
    env.SPIDERPOOL_POD_NAME.valueFrom?.fieldRef?.fieldPath,
    "metadata.name",
    "identity = pod name",
  );
  assert.equal(env.SPIDERPOOL_POD_NAMESPACE.valueFrom?.fieldRef?.fieldPath, "metadata.namespace");
  assert.deepEqual(
    ["DURATION", "RENEW_DEADLINE", "RETRY_PERIOD"].map((k) => env[`SPIDERPOOL_LEADER_${k}`]?.value),
    ["15", "10", "2"],
  );
  assert.deepEqual(
    ["SPIDERPOOL_HEALTH_PORT", "SPIDERPOOL_METRIC_HTTP_PORT", "SPIDERPOOL_WEBHOOK_PORT"].map((k) =>
      env[k]?.value
    ),
    ["5720", "5721", "5722"],
  );
  const mounts = Object.fromEntries(
    c.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]),
  );
  assert.equal(mounts.config, "/tmp/spiderpool/config-map");
  assert.equal(
    pod.volumes.find((v: { name: string }) => v.name === "config").configMap.name,
    "spiderpool-conf",
  );

  const svc = find(all, "Service", "spiderpool-controller");
  assert.deepEqual(svc.spec.selector, d.spec.selector.matchLabels);
  const webhook = svc.spec.ports.find((p: { name: string }) => p.name === "webhook");
  assert.deepEqual([webhook.port, webhook.targetPort], [5722, "webhook"]);
  // `spiderpool gc` calls the IP GC trigger on the health port through the Service (its default address).
  const health = svc.spec.ports.find((p: { name: string }) => p.name === "http");
  assert.deepEqual([health.port, health.targetPort], [5720, "http"]);
});

/** Every file under `dir`, concatenated (the source a process is built from). */
async function source(...paths: string[]): Promise<string> {
  let out = "";
  for (const p of paths) {
    const url = new URL(`../../${p}`, import.meta.url);
    if ((await Deno.stat(url)).isFile) out += await Deno.readTextFile(url);
    else for await (const e of Deno.readDir(url)) out += await source(`${p}/${e.name}`);
  }
  return out;
}

Deno.test("deploy/controller.yaml passes only flags and environment the controller reads", async () => {
  const c = find(await docs("controller.yaml"), "Deployment", "spiderpool-controller").spec.template.spec
    .containers[0];
  const help = await run(CONTROLLER_BIN, ["controller", "--help"]);
  assert.equal(help.code, 0, help.stderr);
  for (const arg of c.command.slice(2)) {
    const flag = String(arg).split("=")[0];
    assert.ok(help.stdout.includes(`  ${flag} `), `${flag} is a flag of spiderpool controller`);
  }
  assert.ok(c.command.includes("--config-path=/tmp/spiderpool/config-map/conf.yml"));
  const code = await source("src/cmd/controller.ts", "src/controller");
  for (const name of Object.keys(envOf(c))) {
    assert.ok(code.includes(`"${name}"`), `the controller reads ${name}`);
  }
});

Deno.test("deploy/webhooks.yaml holds every webhook of spec §1.5, called through the Service, without CA", async () => {
  const all = await docs("webhooks.yaml");
  const svc = find(await docs("controller.yaml"), "Service", "spiderpool-controller");
  // The shipped ConfigMap decides whether the controller adds the Pod webhook.
  const shipped = parseConfig(
    find(await docs("configmap.yaml"), "ConfigMap", "spiderpool-conf").data["conf.yml"],
  );
  const expected = webhookConfigurations({
    endpoint: {
      service: { namespace: svc.metadata.namespace!, name: svc.metadata.name, port: svc.spec.ports[0].port },
    },
    caPem: "",
    kinds: [
      SINGULAR.ippool,
      SINGULAR.subnet,
      SINGULAR.reservedIP,
      SINGULAR.coordinator,
      SINGULAR.multusConfig,
    ],
    podWebhook: shipped.podResourceInject.enabled ? shipped.podResourceInject : undefined,
  });
  // What the controller patches in at start-up, apart from the CA: the manifest and the code agree.
  assert.deepEqual(find(all, "MutatingWebhookConfiguration", "spiderpool-controller"), {
    ...expected.MutatingWebhookConfiguration,
  });
  assert.deepEqual(find(all, "ValidatingWebhookConfiguration", "spiderpool-controller"), {
    ...expected.ValidatingWebhookConfiguration,
  });
  const validating = find(all, "ValidatingWebhookConfiguration", "spiderpool-controller");
  const ops = Object.fromEntries(
    validating.webhooks.map((w: { name: string; rules: { operations: string[] }[] }) => [
      w.name,
      w.rules[0].operations.join(","),
    ]),
  );
  assert.deepEqual(ops, {
    "spiderippool.spiderpool.spidernet.io": "CREATE,UPDATE,DELETE",
    "spidersubnet.spiderpool.spidernet.io": "CREATE,UPDATE,DELETE",
    "spiderreservedip.spiderpool.spidernet.io": "CREATE,UPDATE",
    "spidercoordinator.spiderpool.spidernet.io": "CREATE,UPDATE",
    "spidermultusconfig.spiderpool.spidernet.io": "CREATE,UPDATE",
  });
});

Deno.test("deploy/agent.yaml switches the agent's metrics on explicitly (they default off)", async () => {
  const ds = find(await docs("agent.yaml"), "DaemonSet", "spiderpool-agent");
  const c = ds.spec.template.spec.containers[0];
  assert.equal(envOf(c).SPIDERPOOL_ENABLED_METRIC?.value, "true");
  assert.ok(c.ports.some((p: { name: string; containerPort: number }) => p.containerPort === 5711));
});

Deno.test("deploy/init.yaml: the init Job runs spiderpool init as spiderpool-init with the chart's environment", async () => {
  const job = find(await docs("init.yaml"), "Job", "spiderpool-init");
  const pod = job.spec.template.spec;
  assert.equal(pod.serviceAccountName, "spiderpool-init");
  assert.equal(pod.restartPolicy, "Never");
  assert.equal(pod.hostNetwork, true);
  const c = pod.containers[0];
  assert.deepEqual(c.command.slice(0, 2), ["spiderpool", "init"]);
  const env = envOf(c);
  assert.equal(env.SPIDERPOOL_CONTROLLER_NAME.value, "spiderpool-controller");
  assert.equal(env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME.value, "default");
  assert.equal(env.SPIDERPOOL_INIT_DEFAULT_CNI_DIR.value, "/etc/cni/net.d");
  assert.equal(c.volumeMounts[0].mountPath, "/etc/cni/net.d");
});

Deno.test("deploy/rbac.yaml: every ServiceAccount the workloads run as exists and is bound", async () => {
  const rbac = await docs("rbac.yaml");
  for (const sa of ["spiderpool-agent", "spiderpool-controller", "spiderpool-init"]) {
    assert.equal(find(rbac, "ServiceAccount", sa).metadata.namespace, "kube-system");
    const bound = rbac.filter((d) =>
      (d.kind === "ClusterRoleBinding" || d.kind === "RoleBinding") &&
      d.subjects?.some((s: { name: string }) => s.name === sa)
    );
    assert.ok(bound.length >= 1, `${sa} is bound`);
    for (const b of bound) find(rbac, b.roleRef.kind, b.roleRef.name);
  }
});

const COLLECTIONS: Record<string, (d: Doc) => string> = {
  Deployment: (d) => `/apis/apps/v1/namespaces/${d.metadata.namespace}/deployments`,
  DaemonSet: (d) => `/apis/apps/v1/namespaces/${d.metadata.namespace}/daemonsets`,
  Job: (d) => `/apis/batch/v1/namespaces/${d.metadata.namespace}/jobs`,
  Service: (d) => `/api/v1/namespaces/${d.metadata.namespace}/services`,
  ConfigMap: (d) => `/api/v1/namespaces/${d.metadata.namespace}/configmaps`,
  ServiceAccount: (d) => `/api/v1/namespaces/${d.metadata.namespace}/serviceaccounts`,
  ClusterRole: () => "/apis/rbac.authorization.k8s.io/v1/clusterroles",
  ClusterRoleBinding: () => "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
  Role: (d) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${d.metadata.namespace}/roles`,
  RoleBinding: (d) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${d.metadata.namespace}/rolebindings`,
  MutatingWebhookConfiguration: () => "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
  ValidatingWebhookConfiguration: () =>
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
};

kubeTest("every object of deploy/*.yaml is accepted by the API server (dry-run create)", async () => {
  await using scope = await testScope("deploy-dry", { serviceAccount: false });
  const { http } = scope.cluster;
  const files = [...Deno.readDirSync(DEPLOY)].map((e) => e.name).filter((n) => n.endsWith(".yaml")).sort();
  for (const f of ["controller.yaml", "init.yaml", "rbac.yaml", "webhooks.yaml", "agent.yaml"]) {
    assert.ok(files.includes(f), f);
  }
  let n = 0;
  for (const file of files) {
    for (const d of await docs(file)) {
      const collection = COLLECTIONS[d.kind]?.(d);
      assert.ok(collection, `${file}: no dry-run path known for kind ${d.kind}`);
      // A unique name: the dry run must not collide with objects other tests applied for real.
      const body = { ...d, metadata: { ...d.metadata, name: `${d.metadata.name}-${scope.namespace}` } };
      try {
        await http.post(`${collection}?dryRun=All`, body);
      } catch (err) {
        assert.fail(`${file}: ${d.kind} ${d.metadata.name} refused: ${(err as Error).message}`);
      }
      n++;
    }
  }
  assert.ok(n >= 17, `${n} objects checked`);
});
