// charts/spiderpool: helm lint and helm template pass (Helm built from its Go module), the rendered objects
// carry what the agent, the controller and the node need, the README's values table matches values.yaml, and
// the API server accepts every rendered object (server-side dry run on the real control plane).

import assert from "node:assert/strict";
import { loadAll } from "js-yaml";
import { getCluster } from "../kube/harness.ts";
import { CHART_DIR, flatten, parseReadmeTable, valueRows } from "./chart_values.ts";
import { lastLine, REPO_ROOT, run } from "./node.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

let binDir: Promise<string> | undefined;
const bin = () =>
  binDir ??= Promise.resolve(Deno.env.get("SPIDERPOOL_NODE_BIN") ?? lastLine("scripts/node-build.sh"));

async function helm(...args: string[]): Promise<string> {
  const home = await Deno.makeTempDir({ prefix: "spiderpool-helm-" });
  try {
    return await run(`${await bin()}/helm`, args, {
      HELM_CACHE_HOME: home,
      HELM_CONFIG_HOME: home,
      HELM_DATA_HOME: home,
    });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** `helm template` with `--set` pairs; returns the rendered objects. */
async function render(set: Record<string, string> = {}, ...extra: string[]): Promise<Obj[]> {
  const args = ["template", "spiderpool", CHART_DIR, "--namespace", "kube-system", ...extra];
  for (const [k, v] of Object.entries(set)) args.push("--set", `${k}=${v}`);
  return (loadAll(await helm(...args)) as Obj[]).filter(Boolean);
}

function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata?.name === name);
  assert.ok(
    o,
    `${kind} ${name} not rendered (got ${objs.map((x) => `${x.kind}/${x.metadata?.name}`).join(", ")})`,
  );
  return o;
}

const ALL_ON = {
  "spiderpoolController.enabled": "true",
  "spiderpoolAgent.cniConfig.install": "true",
  "spiderpoolAgent.cniConfig.coordinator": "true",
  "clusterDefaultPool.installIPv4IPPool": "true",
  "clusterDefaultPool.ipv4Subnet": "203.0.113.0/24",
  "clusterDefaultPool.ipv4IPRanges[0]": "203.0.113.10-203.0.113.200",
  "coordinator.enabled": "true",
  "spiderpoolController.podDisruptionBudget.enabled": "true",
  "spiderpoolAgent.prometheus.enabled": "true",
};

Deno.test("helm lint passes with the default values and with every optional part on", async () => {
  const plain = await helm("lint", CHART_DIR);
  assert.match(plain, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  const args = ["lint", CHART_DIR];
  for (const [k, v] of Object.entries(ALL_ON)) args.push("--set", `${k}=${v}`);
  assert.match(await helm(...args), /1 chart\(s\) linted, 0 chart\(s\) failed/);
});

Deno.test("the README's values table lists every key of values.yaml with its default, and nothing else", async () => {
  const table = parseReadmeTable(await Deno.readTextFile(`${CHART_DIR}README.md`));
  const rows = await valueRows();
  assert.ok(rows.length > 100, `only ${rows.length} values found`);
  const missing = rows.filter((r) => !table.has(r.key)).map((r) => r.key);
  assert.deepEqual(
    missing,
    [],
    "keys of values.yaml missing from the README (deno run -A tests/node/chart_values.ts --write)",
  );
  const stale = [...table.keys()].filter((k) => !rows.some((r) => r.key === k));
  assert.deepEqual(stale, [], "README rows for keys values.yaml no longer has");
  for (const r of rows) assert.equal(table.get(r.key), r.default, `README default of ${r.key}`);
  const undocumented = rows.filter((r) => !r.description).map((r) => r.key);
  assert.deepEqual(undocumented, [], "values without a description");
});

Deno.test("the rendered objects use the values the README documents", async () => {
  const values = flatten(JSON.parse(await helm("show", "values", CHART_DIR, "--jsonpath", "{$}")));
  const objs = await render();
  const ds = find(objs, "DaemonSet", values.get("spiderpoolAgent.name") as string);
  const c = ds.spec.template.spec.containers[0];
  assert.equal(c.command[0], values.get("spiderpoolAgent.binName"));
  assert.equal(
    c.image,
    `${values.get("spiderpoolAgent.image.registry")}/${values.get("spiderpoolAgent.image.repository")}:0.1.0`,
  );
  assert.equal(c.startupProbe.httpGet.port, values.get("spiderpoolAgent.httpPort"));
  assert.equal(
    c.startupProbe.failureThreshold,
    values.get("spiderpoolAgent.healthChecking.startupProbe.failureThreshold"),
  );
  assert.deepEqual(c.resources.limits, {
    cpu: values.get("spiderpoolAgent.resources.limits.cpu"),
    memory: values.get("spiderpoolAgent.resources.limits.memory"),
  });
  assert.equal(ds.spec.template.spec.priorityClassName, values.get("spiderpoolAgent.priorityClassName"));
  assert.deepEqual(
    ds.spec.updateStrategy.rollingUpdate.maxUnavailable,
    values.get("spiderpoolAgent.updateStrategy.rollingUpdate.maxUnavailable"),
  );
  const cm = find(objs, "ConfigMap", values.get("global.configName") as string);
  assert.match(
    cm.data["conf.yml"],
    new RegExp(`ipamUnixSocketPath: ${values.get("global.ipamUNIXSocketHostPath")}`),
  );
  assert.match(cm.data["conf.yml"], /enableIPv6: true/);
  // Defaults that keep a fresh install working with this release: no controller, no init Job, no conflist.
  assert.equal(values.get("spiderpoolController.enabled"), false);
  assert.ok(
    !objs.some((o) => o.kind === "Deployment" || o.kind === "Job" && !o.metadata.name.endsWith("-cleanup")),
  );
  assert.ok(!objs.some((o) => o.metadata.name.endsWith("-cni-config")));
});

Deno.test("the agent's init step installs the build into the node's CNI dir as host paths", async () => {
  const objs = await render({
    "global.cniBinHostPath": "/var/lib/cni/bin",
    "global.libHostPath": "/var/lib/spiderpool",
    "global.ipamUNIXSocketHostPath": "/run/sp/agent.sock",
  });
  const pod = find(objs, "DaemonSet", "spiderpool-agent").spec.template.spec;
  assert.equal(pod.hostNetwork, true);
  const install = pod.initContainers[0];
  assert.deepEqual(install.command, [
    "/usr/bin/spiderpool",
    "install",
    "--cni-bin-dir",
    "/host/var/lib/cni/bin",
    "--lib-dir",
    "/host/var/lib/spiderpool",
    "--host-root",
    "/host",
  ]);
  const vol = (name: string) => pod.volumes.find((v: Obj) => v.name === name).hostPath.path;
  const mount = (c: Obj, name: string) => c.volumeMounts.find((m: Obj) => m.name === name).mountPath;
  assert.equal(vol("cni-bin-dir"), "/var/lib/cni/bin");
  assert.equal(mount(install, "cni-bin-dir"), "/host/var/lib/cni/bin");
  assert.equal(vol("spiderpool-lib-dir"), "/var/lib/spiderpool");
  assert.equal(mount(install, "spiderpool-lib-dir"), "/host/var/lib/spiderpool");
  // The agent serves the socket where the plugins look for it: same directory inside and outside.
  assert.equal(vol("socket-dir"), "/run/sp");
  assert.equal(mount(pod.containers[0], "socket-dir"), "/run/sp");
  const cm = find(objs, "ConfigMap", "spiderpool-conf");
  assert.match(cm.data["conf.yml"], /ipamUnixSocketPath: \/run\/sp\/agent.sock/);
  const env = Object.fromEntries(pod.containers[0].env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
  assert.deepEqual(env.SPIDERPOOL_NODE_NAME, { fieldRef: { fieldPath: "spec.nodeName" } });
  assert.equal(env.KUBERNETES_SERVICE_HOST, undefined);
});

Deno.test("cniConfig writes a bridge conflist with spiderpool as IPAM; coordinator only when asked", async () => {
  const objs = await render({
    "spiderpoolAgent.cniConfig.install": "true",
    "spiderpoolAgent.cniConfig.bridgeName": "br-test",
    "spiderpoolAgent.cniConfig.defaultIPv4IPPool[0]": "pool-a",
  });
  const cm = find(objs, "ConfigMap", "spiderpool-agent-cni-config");
  const conf = JSON.parse(cm.data["10-spiderpool.conflist"]);
  assert.equal(conf.cniVersion, "1.0.0");
  assert.deepEqual(conf.plugins.map((p: Obj) => p.type), ["bridge"]);
  assert.equal(conf.plugins[0].bridge, "br-test");
  assert.deepEqual(conf.plugins[0].ipam, {
    type: "spiderpool",
    ipam_unix_socket_path: "/var/run/spidernet/spiderpool.sock",
    default_ipv4_ippool: ["pool-a"],
  });
  const pod = find(objs, "DaemonSet", "spiderpool-agent").spec.template.spec;
  assert.deepEqual(pod.initContainers.map((c: Obj) => c.name), ["install-cni", "install-cni-config"]);
  assert.equal(pod.volumes.find((v: Obj) => v.name === "cni-conf-dir").hostPath.path, "/etc/cni/net.d");
  const withCoordinator = await render({
    "spiderpoolAgent.cniConfig.install": "true",
    "spiderpoolAgent.cniConfig.coordinator": "true",
  });
  const conf2 = JSON.parse(
    find(withCoordinator, "ConfigMap", "spiderpool-agent-cni-config").data["10-spiderpool.conflist"],
  );
  assert.deepEqual(conf2.plugins.map((p: Obj) => p.type), ["bridge", "coordinator"]);
  // The uninstall Job removes the conflist it wrote.
  const cleanup = find(objs, "Job", "spiderpool-agent-cleanup");
  assert.equal(cleanup.metadata.annotations["helm.sh/hook"], "pre-delete");
  assert.match(
    cleanup.spec.template.spec.containers[0].command[2],
    /rm -fv "\/host\/cni-conf\/10-spiderpool.conflist"/,
  );
});

Deno.test("the controller: 2 replicas, ports 5720/5721/5722, probes, env, Service, webhook RBAC and uninstall hook", async () => {
  const objs = await render({ "spiderpoolController.enabled": "true" });
  const dep = find(objs, "Deployment", "spiderpool-controller");
  assert.equal(dep.spec.replicas, 2);
  const c = dep.spec.template.spec.containers[0];
  assert.deepEqual(
    c.ports.map((p: Obj) => [p.name, p.containerPort]),
    [["http", 5720], ["metrics", 5721], ["webhook", 5722]],
  );
  for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
    assert.equal(c[probe].httpGet.port, 5720, probe);
    assert.match(c[probe].httpGet.path, /^\/v1\/runtime\/(startup|liveness|readiness)$/);
  }
  const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
  assert.equal(env.SPIDERPOOL_HEALTH_PORT, "5720");
  assert.equal(env.SPIDERPOOL_METRIC_HTTP_PORT, "5721");
  assert.equal(env.SPIDERPOOL_WEBHOOK_PORT, "5722");
  assert.deepEqual(env.SPIDERPOOL_POD_NAMESPACE, { fieldRef: { fieldPath: "metadata.namespace" } });
  assert.ok(c.args.includes("--tls-method=auto"));
  const svc = find(objs, "Service", "spiderpool-controller");
  assert.deepEqual(svc.spec.ports.find((p: Obj) => p.name === "webhook"), {
    name: "webhook",
    port: 5722,
    targetPort: "webhook",
    protocol: "TCP",
  });
  // tls.method=auto: the controller itself creates and updates the webhook configurations and its Secret;
  // reads and changes only the objects named after it.
  const verbsOn = (rules: Obj[], resource: string, name?: string) =>
    new Set(
      rules.filter((r: Obj) =>
        r.resources.includes(resource) && (!r.resourceNames || r.resourceNames.includes(name))
      )
        .flatMap((r: Obj) => r.verbs),
    );
  const cr = find(objs, "ClusterRole", "spiderpool-controller");
  for (const kind of ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"]) {
    const verbs = verbsOn(cr.rules, kind, "spiderpool-controller");
    for (const verb of ["create", "get", "update", "patch"]) assert.ok(verbs.has(verb), `${kind}: ${verb}`);
    assert.ok(!verbsOn(cr.rules, kind, "someone-else").has("update"), `${kind}: update limited by name`);
  }
  const role = find(objs, "Role", "spiderpool-controller");
  const secretVerbs = verbsOn(role.rules, "secrets", "spiderpool-controller-server-certs");
  for (const verb of ["create", "get", "update"]) assert.ok(secretVerbs.has(verb), `secrets: ${verb}`);
  assert.ok(verbsOn(role.rules, "leases", "spiderpool-controller-leases").has("update"));
  find(objs, "RoleBinding", "spiderpool-controller");
  find(objs, "ServiceAccount", "spiderpool-controller");
  const hook = find(objs, "Job", "spiderpool-controller-hook-pre-delete");
  assert.equal(hook.metadata.annotations["helm.sh/hook"], "pre-delete");
  assert.equal(hook.spec.template.spec.serviceAccountName, "spiderpool-controller");
  assert.match(
    hook.spec.template.spec.containers[0].command[2],
    /admissionregistration\.k8s\.io\/v1\/\$\{kind\}\/spiderpool-controller`/,
  );
});

Deno.test("tls.method=provided renders the Secret; a missing certificate or an unknown method is refused by name", async () => {
  const objs = await render({
    "spiderpoolController.enabled": "true",
    "spiderpoolController.tls.method": "provided",
    "spiderpoolController.tls.provided.tlsCert": "Y2VydA==",
    "spiderpoolController.tls.provided.tlsKey": "a2V5",
    "spiderpoolController.tls.provided.tlsCa": "Y2E=",
  });
  const secret = find(objs, "Secret", "spiderpool-controller-server-certs");
  assert.deepEqual(secret.data, { "tls.crt": "Y2VydA==", "tls.key": "a2V5", "ca.crt": "Y2E=" });
  await assert.rejects(
    render({ "spiderpoolController.enabled": "true", "spiderpoolController.tls.method": "provided" }),
    /spiderpoolController\.tls\.provided\.tlsCert is required/,
  );
  await assert.rejects(
    render({ "spiderpoolController.enabled": "true", "spiderpoolController.tls.method": "certmanager" }),
    /spiderpoolController\.tls\.method "certmanager" is not supported: use auto or provided/,
  );
});

Deno.test("the init Job creates the default pool and coordinator with upstream's environment", async () => {
  const objs = await render({
    "clusterDefaultPool.installIPv4IPPool": "true",
    "clusterDefaultPool.ipv4Subnet": "203.0.113.0/24",
    "clusterDefaultPool.ipv4IPRanges[0]": "203.0.113.10-203.0.113.20",
    "clusterDefaultPool.ipv4Gateway": "203.0.113.1",
    "coordinator.enabled": "true",
  });
  const job = find(objs, "Job", "spiderpool-init");
  assert.match(job.metadata.annotations["helm.sh/hook"], /post-install/);
  const c = job.spec.template.spec.containers[0];
  assert.deepEqual(c.command, ["/usr/bin/spiderpool-init"]);
  // Without the controller there are no webhooks to wait for.
  assert.deepEqual(c.args, ["--timeout=300", "--skip-webhook-wait"]);
  const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value]));
  assert.equal(env.SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_NAME, "default-v4-ippool");
  assert.equal(env.SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_SUBNET, "203.0.113.0/24");
  assert.equal(env.SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_IPRANGES, '["203.0.113.10-203.0.113.20"]');
  assert.equal(env.SPIDERPOOL_INIT_DEFAULT_IPV4_IPPOOL_GATEWAY, "203.0.113.1");
  assert.equal(env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME, "default");
  assert.equal(env.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_HIJACK_CIDR, '["169.254.0.0/16"]');
  assert.equal(env.SPIDERPOOL_INIT_DEFAULT_IPV6_IPPOOL_NAME, undefined);
  await assert.rejects(
    render({ "clusterDefaultPool.installIPv4IPPool": "true" }),
    /clusterDefaultPool\.ipv4Subnet is required with installIPv4IPPool/,
  );
});

Deno.test("global.k8sServiceHost points the host-network pods at an explicit API server", async () => {
  const objs = await render({ "global.k8sServiceHost": "127.0.0.1", "global.k8sServicePort": "6443" });
  const c = find(objs, "DaemonSet", "spiderpool-agent").spec.template.spec.containers[0];
  const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value]));
  assert.equal(env.KUBERNETES_SERVICE_HOST, "127.0.0.1");
  assert.equal(env.KUBERNETES_SERVICE_PORT, "6443");
  await assert.rejects(
    render({ "global.k8sServiceHost": "127.0.0.1" }),
    /global\.k8sServicePort is required/,
  );
});

Deno.test("the chart's CRDs are the project's crds/", async () => {
  const crds = (loadAll(await helm("show", "crds", CHART_DIR)) as Obj[]).filter(Boolean);
  const files = [...Deno.readDirSync(`${REPO_ROOT}crds`)].map((e) => e.name).sort();
  assert.deepEqual(
    crds.map((c) => `${c.spec.group}_${c.spec.names.plural}.yaml`).sort(),
    files,
  );
});

Deno.test("the API server accepts every rendered object (server-side dry run)", async () => {
  const cluster = await getCluster();
  const rendered = await helm(
    "template",
    "spiderpool",
    CHART_DIR,
    "--namespace",
    "kube-system",
    ...Object.entries(ALL_ON).flatMap(([k, v]) => ["--set", `${k}=${v}`]),
  );
  const out = await run(
    `${await bin()}/kubectl`,
    ["--kubeconfig", cluster.kubeconfigPath, "create", "--dry-run=server", "-o", "name", "-f", "-"],
    undefined,
    rendered,
  );
  const created = out.trim().split("\n");
  for (
    const kind of [
      "daemonset.apps",
      "deployment.apps",
      "job.batch",
      "configmap",
      "clusterrole.rbac.authorization.k8s.io",
      "role.rbac.authorization.k8s.io",
      "service",
    ]
  ) {
    assert.ok(created.some((l) => l.startsWith(`${kind}/`)), `${kind} in ${created.join(", ")}`);
  }
});
