// charts/spiderpool: helm lint and helm template pass (Helm built from its Go module), the rendered objects
// carry what the agent, the controller and the node need, the README's values table matches values.yaml, and
// the API server accepts every rendered object (server-side dry run on the real control plane).

import assert from "node:assert/strict";
import { loadAll } from "js-yaml";
import { SINGULAR } from "../../src/api/constants.ts";
import { webhookConfigurations } from "../../src/controller/webhook/register.ts";
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
  // As upstream's chart: the controller with its webhooks, and the init Job that makes the default
  // SpiderCoordinator; the node's conflist only when asked (a cluster usually has its own network already).
  assert.equal(values.get("spiderpoolController.enabled"), true);
  assert.equal(values.get("coordinator.enabled"), true);
  const dep = find(objs, "Deployment", values.get("spiderpoolController.name") as string);
  assert.equal(dep.spec.replicas, values.get("spiderpoolController.replicas"));
  find(objs, "MutatingWebhookConfiguration", "spiderpool-controller");
  find(objs, "ValidatingWebhookConfiguration", "spiderpool-controller");
  const init = find(objs, "Job", values.get("spiderpoolInit.name") as string);
  const initEnv = Object.fromEntries(
    init.spec.template.spec.containers[0].env.map((e: Obj) => [e.name, e.value]),
  );
  assert.equal(initEnv.SPIDERPOOL_INIT_DEFAULT_COORDINATOR_NAME, values.get("coordinator.name"));
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

Deno.test("cniConfig writes a bridge conflist with spiderpool as IPAM and coordinator after it, unless switched off", async () => {
  const objs = await render({
    "spiderpoolAgent.cniConfig.install": "true",
    "spiderpoolAgent.cniConfig.bridgeName": "br-test",
    "spiderpoolAgent.cniConfig.defaultIPv4IPPool[0]": "pool-a",
  });
  const cm = find(objs, "ConfigMap", "spiderpool-agent-cni-config");
  const conf = JSON.parse(cm.data["10-spiderpool.conflist"]);
  assert.equal(conf.cniVersion, "1.0.0");
  assert.deepEqual(conf.plugins.map((p: Obj) => p.type), ["bridge", "coordinator"]);
  assert.equal(conf.plugins[0].bridge, "br-test");
  // The coordinator asks the same agent socket as the IPAM plugin.
  assert.equal(conf.plugins[1].ipamUnixSocketPath, "/var/run/spidernet/spiderpool.sock");
  assert.deepEqual(conf.plugins[0].ipam, {
    type: "spiderpool",
    ipam_unix_socket_path: "/var/run/spidernet/spiderpool.sock",
    default_ipv4_ippool: ["pool-a"],
  });
  const pod = find(objs, "DaemonSet", "spiderpool-agent").spec.template.spec;
  assert.deepEqual(pod.initContainers.map((c: Obj) => c.name), ["install-cni", "install-cni-config"]);
  assert.equal(pod.volumes.find((v: Obj) => v.name === "cni-conf-dir").hostPath.path, "/etc/cni/net.d");
  // No coordinator in the chain when asked, or when there is no SpiderCoordinator for it to read.
  for (
    const off of [{ "spiderpoolAgent.cniConfig.coordinator": "false" }, {
      "coordinator.enabled": "false",
    }] as Record<string, string>[]
  ) {
    const without = await render({ "spiderpoolAgent.cniConfig.install": "true", ...off });
    const conf2 = JSON.parse(
      find(without, "ConfigMap", "spiderpool-agent-cni-config").data["10-spiderpool.conflist"],
    );
    assert.deepEqual(conf2.plugins.map((p: Obj) => p.type), ["bridge"], JSON.stringify(off));
  }
  // The uninstall Job removes the conflist it wrote.
  const cleanup = find(objs, "Job", "spiderpool-agent-cleanup");
  assert.equal(cleanup.metadata.annotations["helm.sh/hook"], "pre-delete");
  assert.match(
    cleanup.spec.template.spec.containers[0].command[2],
    /rm -fv "\/host\/cni-conf\/10-spiderpool.conflist"/,
  );
});

Deno.test("the controller: ports 5720/5721/5722, probes, env, the cni conf dir, Service and uninstall hook", async () => {
  const objs = await render();
  const dep = find(objs, "Deployment", "spiderpool-controller");
  assert.equal(dep.spec.replicas, 1);
  const pod = dep.spec.template.spec;
  assert.equal(pod.hostNetwork, true);
  const c = pod.containers[0];
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
  assert.deepEqual(env.SPIDERPOOL_POD_NAME, { fieldRef: { fieldPath: "metadata.name" } });
  assert.equal(env.SPIDERPOOL_COORDINATOR_ENABLED, "true");
  assert.deepEqual(c.args, [
    "--config-path=/tmp/spiderpool/config-map/conf.yml",
    "--tls-method=auto",
    "--service-name=spiderpool-controller",
    "--webhook-config-name=spiderpool-controller",
  ]);
  // The coordinator controller reads the node's default CNI where SPIDERPOOL_CNI_CONFIG_DIR says.
  const confMount = c.volumeMounts.find((m: Obj) => m.name === "cni-conf-dir");
  assert.equal(confMount.mountPath, env.SPIDERPOOL_CNI_CONFIG_DIR);
  assert.equal(pod.volumes.find((v: Obj) => v.name === "cni-conf-dir").hostPath.path, "/etc/cni/net.d");
  const svc = find(objs, "Service", "spiderpool-controller");
  assert.deepEqual(svc.spec.ports.find((p: Obj) => p.name === "webhook"), {
    name: "webhook",
    port: 5722,
    targetPort: "webhook",
    protocol: "TCP",
  });
  assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
  // Uninstall: a Job with its own identity deletes what the controller created itself, by name.
  const hook = find(objs, "Job", "spiderpool-controller-hook-post-delete");
  assert.equal(hook.metadata.annotations["helm.sh/hook"], "post-delete");
  assert.equal(hook.spec.template.spec.serviceAccountName, "spiderpool-controller-hook-post-delete");
  const hookRole = objs.find((o) =>
    o.kind === "Role" && o.metadata.name === "spiderpool-controller-hook-post-delete"
  );
  assert.deepEqual(
    hookRole.rules.map((r: Obj) => `${r.resources[0]}/${r.resourceNames[0]}:${r.verbs}`).sort(),
    [
      "configmaps/spiderpool-controller-admission-ippools:delete",
      "configmaps/spiderpool-controller-admission-reservedips:delete",
      "leases/spiderpool-controller-leases:delete",
      "secrets/spiderpool-controller-server-certs:delete",
    ],
  );
  assert.match(hook.spec.template.spec.containers[0].command[2], /spiderpool-controller-server-certs/);
});

Deno.test("the controller is passed only flags and environment it reads", async () => {
  const c = find(await render(), "Deployment", "spiderpool-controller").spec.template.spec.containers[0];
  const help = await run(`${REPO_ROOT}dist/spiderpool`, ["controller", "--help"]);
  for (const arg of c.args) {
    const flag = String(arg).split("=")[0];
    assert.ok(help.includes(`  ${flag} `), `${flag} is a flag of spiderpool controller`);
  }
  let code = "";
  const read = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await read(`${dir}/${e.name}`);
      else if (e.name.endsWith(".ts")) code += await Deno.readTextFile(`${dir}/${e.name}`);
    }
  };
  await read(`${REPO_ROOT}src/controller`);
  code += await Deno.readTextFile(`${REPO_ROOT}src/cmd/controller.ts`);
  for (const e of c.env) assert.ok(code.includes(`"${e.name}"`), `the controller reads ${e.name}`);
});

/** The webhooks the controller registers for `kinds`, at the chart's Service, without the CA. */
function registered(kinds: string[]) {
  const all = webhookConfigurations({
    endpoint: { service: { namespace: "kube-system", name: "spiderpool-controller", port: 5722 } },
    caPem: "",
    kinds,
  });
  const strip = (hooks: Obj[]) =>
    hooks.map((h) => {
      const { caBundle: _, ...clientConfig } = h.clientConfig;
      return { ...h, clientConfig };
    });
  return {
    mutating: strip(all.MutatingWebhookConfiguration.webhooks),
    validating: strip(all.ValidatingWebhookConfiguration.webhooks),
  };
}

Deno.test("the chart's webhook configurations are deploy/webhooks.yaml, at its Service, as the controller registers them", async () => {
  // One list: the chart reads deploy/webhooks.yaml through a link.
  const link = `${CHART_DIR}files/webhooks.yaml`;
  assert.equal(Deno.realPathSync(link), Deno.realPathSync(`${REPO_ROOT}deploy/webhooks.yaml`));
  const deploy = (loadAll(await Deno.readTextFile(`${REPO_ROOT}deploy/webhooks.yaml`)) as Obj[]).filter(
    Boolean,
  );
  const strip = (hooks: Obj[]) =>
    hooks.map((h) => {
      const { caBundle: _, ...clientConfig } = h.clientConfig;
      return { ...h, clientConfig };
    });
  const all = [
    SINGULAR.ippool,
    SINGULAR.subnet,
    SINGULAR.reservedIP,
    SINGULAR.coordinator,
    SINGULAR.multusConfig,
  ];
  const cases: [Record<string, string>, string[]][] = [
    [{}, all],
    [{ "coordinator.enabled": "false" }, all.filter((k) => k !== SINGULAR.coordinator)],
    [{ "multus.enableMultusConfig": "false" }, all.filter((k) => k !== SINGULAR.multusConfig)],
  ];
  for (const [set, kinds] of cases) {
    const objs = await render(set);
    const mutating = find(objs, "MutatingWebhookConfiguration", "spiderpool-controller");
    const validating = find(objs, "ValidatingWebhookConfiguration", "spiderpool-controller");
    // No caBundle in the manifest: the controller patches it in, and helm upgrade leaves it alone.
    for (const h of [...mutating.webhooks, ...validating.webhooks]) {
      assert.equal(h.clientConfig.caBundle, undefined, h.name);
    }
    assert.deepEqual(
      { mutating: mutating.webhooks, validating: validating.webhooks },
      registered(kinds),
      JSON.stringify(set),
    );
    if (kinds === all) {
      // Every webhook of deploy/webhooks.yaml, unchanged apart from the CA.
      assert.deepEqual(
        mutating.webhooks,
        strip(find(deploy, "MutatingWebhookConfiguration", "spiderpool-controller").webhooks),
      );
      assert.deepEqual(
        validating.webhooks,
        strip(find(deploy, "ValidatingWebhookConfiguration", "spiderpool-controller").webhooks),
      );
    }
  }
  // Another namespace, Service name and port reach the configurations.
  const moved = await render(
    { "spiderpoolController.name": "sp-ctl", "spiderpoolController.webhookPort": "6722" },
    "--namespace",
    "net",
  );
  const hook = find(moved, "ValidatingWebhookConfiguration", "sp-ctl").webhooks[0];
  assert.deepEqual(
    [hook.clientConfig.service.namespace, hook.clientConfig.service.name, hook.clientConfig.service.port],
    ["net", "sp-ctl", 6722],
  );
});

Deno.test("the chart grants agent, controller and init exactly the rules of deploy/rbac.yaml", async () => {
  const deploy = (loadAll(await Deno.readTextFile(`${REPO_ROOT}deploy/rbac.yaml`)) as Obj[]).filter(Boolean);
  const objs = await render({
    "clusterDefaultPool.installIPv4IPPool": "true",
    "clusterDefaultPool.ipv4Subnet": "203.0.113.0/24",
  });
  const rules = (o: Obj) => JSON.stringify(o.rules);
  for (const kind of ["ClusterRole", "Role"]) {
    for (const d of deploy.filter((x) => x.kind === kind)) {
      assert.equal(rules(find(objs, kind, d.metadata.name)), rules(d), `${kind} ${d.metadata.name}`);
    }
  }
  for (const sa of ["spiderpool-agent", "spiderpool-controller", "spiderpool-init"]) {
    find(objs, "ServiceAccount", sa);
  }
});

Deno.test("cniConfig.mainPlugin macvlan: pods on the underlay NIC, coordinator after it; bad values refused by name", async () => {
  const objs = await render({
    "spiderpoolAgent.cniConfig.install": "true",
    "spiderpoolAgent.cniConfig.mainPlugin": "macvlan",
    "spiderpoolAgent.cniConfig.macvlanMaster": "ens5",
  });
  const conf = JSON.parse(
    find(objs, "ConfigMap", "spiderpool-agent-cni-config").data["10-spiderpool.conflist"],
  );
  assert.deepEqual(conf.plugins.map((p: Obj) => p.type), ["macvlan", "coordinator"]);
  assert.equal(conf.plugins[0].master, "ens5");
  assert.equal(conf.plugins[0].mode, "bridge");
  assert.equal(conf.plugins[0].ipam.type, "spiderpool");
  assert.equal(conf.plugins[1].ipamUnixSocketPath, conf.plugins[0].ipam.ipam_unix_socket_path);
  await assert.rejects(
    render({
      "spiderpoolAgent.cniConfig.install": "true",
      "spiderpoolAgent.cniConfig.mainPlugin": "macvlan",
    }),
    /spiderpoolAgent\.cniConfig\.macvlanMaster is required with mainPlugin macvlan/,
  );
  await assert.rejects(
    render({ "spiderpoolAgent.cniConfig.install": "true", "spiderpoolAgent.cniConfig.mainPlugin": "ipvlan" }),
    /spiderpoolAgent\.cniConfig\.mainPlugin "ipvlan" is not supported: use bridge or macvlan/,
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
  // It waits for the controller's webhooks; without the controller there are none to wait for.
  assert.deepEqual(c.args, ["--timeout=300"]);
  const noController = find(
    await render({ "spiderpoolController.enabled": "false" }),
    "Job",
    "spiderpool-init",
  );
  assert.deepEqual(noController.spec.template.spec.containers[0].args, [
    "--timeout=300",
    "--skip-webhook-wait",
  ]);
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
      "mutatingwebhookconfiguration.admissionregistration.k8s.io",
      "validatingwebhookconfiguration.admissionregistration.k8s.io",
    ]
  ) {
    assert.ok(created.some((l) => l.startsWith(`${kind}/`)), `${kind} in ${created.join(", ")}`);
  }
});

/** What a workload's containers run with, as far as the two install paths must agree. */
function shape(o: Obj): Obj {
  const spec = o.spec.template.spec;
  const containers = [...(spec.initContainers ?? []), ...spec.containers];
  return {
    hostNetwork: spec.hostNetwork ?? false,
    containers: containers.map((c: Obj) => ({
      name: c.name,
      flags: [...(c.command ?? []), ...(c.args ?? [])].map(String).filter((a) => a.startsWith("--"))
        .map((a) => a.split("=")[0]).sort(),
      env: (c.env ?? []).map((e: Obj) => e.name).sort(),
      ports: (c.ports ?? []).map((p: Obj) => p.containerPort).sort(),
      probes: ["startupProbe", "livenessProbe", "readinessProbe"].map((p) => c[p]?.httpGet?.path ?? null),
      mounts: (c.volumeMounts ?? []).map((m: Obj) => m.mountPath).sort(),
    })),
  };
}

Deno.test("deploy/'s agent DaemonSet, controller Deployment and init Job run as the chart's do", async () => {
  // The chart with what deploy/ switches on: agent metrics served.
  const chart = await render({ "spiderpoolAgent.prometheus.enabled": "true" });
  for (
    const [file, kind, name] of [
      ["agent.yaml", "DaemonSet", "spiderpool-agent"],
      ["controller.yaml", "Deployment", "spiderpool-controller"],
      ["init.yaml", "Job", "spiderpool-init"],
    ]
  ) {
    const plain = (loadAll(await Deno.readTextFile(`${REPO_ROOT}deploy/${file}`)) as Obj[])
      .find((o) => o?.kind === kind && o.metadata?.name === name);
    assert.ok(plain, `deploy/${file} has the ${kind} ${name}`);
    assert.deepEqual(
      shape(plain),
      shape(find(chart, kind, name)),
      `deploy/${file} and the chart's ${kind} ${name}`,
    );
  }
});
