// End to end on a real node: kubelet, containerd and runc on this machine run the chart's agent DaemonSet and
// controller Deployment from the image built here; the install step puts our binary into the node's CNI dir;
// the controller's webhooks check and default what kubectl applies; real pods get addresses from SpiderIPPools
// through the node's main plugin (macvlan where the kernel has it, else Debian's bridge) with our IPAM plugin,
// and the coordinator gives them a veth to the host and their routes; then upgrade, uninstall and stop leave
// the machine as it was. The tests run in order on one node (each builds on the state the previous one left).

import assert from "node:assert/strict";
import { poll } from "../kube/poll.ts";
import {
  buildImages,
  cgroupsOf,
  chartValues,
  iptablesChains,
  lastLine,
  linkExists,
  type LocalNode,
  mountsUnder,
  pidsMentioning,
  readSysctls,
  REPO_ROOT,
  run,
  startNode,
} from "./node.ts";

// deno-lint-ignore no-explicit-any
type Obj = any;

const CHART = `${REPO_ROOT}charts/spiderpool`;
const NS = "default";
const POOL_ANNOTATION = "ipam.spidernet.io/ippool";
const opts = { sanitizeOps: false, sanitizeResources: false };

interface Env {
  node: LocalNode;
  chainsBefore: Set<string>;
  sysctlsBefore: Record<string, string>;
  valuesFile: string;
}

let envP: Promise<Env> | undefined;
function env(): Promise<Env> {
  envP ??= (async () => {
    const started = performance.now();
    const chainsBefore = await iptablesChains();
    const sysctlsBefore = await readSysctls();
    const binDir = Deno.env.get("SPIDERPOOL_NODE_BIN") ?? await lastLine("scripts/node-build.sh");
    const images = await buildImages(binDir);
    const node = await startNode({ binDir, images: Object.values(images) });
    // If a test fails half-way, the node still goes away with the test process.
    globalThis.addEventListener("unload", () => void node.stop());
    const valuesFile = `${node.dir}/values.json`;
    await Deno.writeTextFile(valuesFile, JSON.stringify(chartValues(node), null, 2));
    console.error(`node ${node.nodeName} up in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return { node, chainsBefore, sysctlsBefore, valuesFile };
  })();
  return envP;
}

async function kjson(node: LocalNode, ...args: string[]): Promise<Obj> {
  return JSON.parse(await node.kubectl(...args, "-o", "json"));
}

async function apply(node: LocalNode, objects: Obj[]): Promise<void> {
  await run(
    `${node.binDir}/kubectl`,
    ["--kubeconfig", node.kubeconfigPath, "apply", "-f", "-"],
    undefined,
    JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }),
  );
}

function pool(name: string, ips: string[]): Obj {
  // ipVersion is normally set by the controller's mutating webhook; the agent alone needs it written.
  return {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderIPPool",
    metadata: { name },
    spec: { ipVersion: 4, subnet: "203.0.113.0/24", ips },
  };
}

function podTemplate(app: string, poolName: string): Obj {
  return {
    metadata: { labels: { app }, annotations: { [POOL_ANNOTATION]: JSON.stringify({ ipv4: [poolName] }) } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{
        name: "main",
        image: "localhost/spiderpool-ts/busybox:1.35.0",
        command: ["sleep", "86400"],
      }],
    },
  };
}

function deployment(name: string, replicas: number, poolName: string): Obj {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: NS },
    spec: { replicas, selector: { matchLabels: { app: name } }, template: podTemplate(name, poolName) },
  };
}

async function podsOf(node: LocalNode, app: string): Promise<Obj[]> {
  return (await kjson(node, "-n", NS, "get", "pods", "-l", `app=${app}`)).items;
}

/** Waits until `n` pods of the app run with an address (and no others are left). */
async function runningPods(node: LocalNode, app: string, n: number, timeoutMs = 180_000): Promise<Obj[]> {
  return await poll(`${n} running pods of ${app} with addresses`, timeoutMs, async () => {
    const pods = await podsOf(node, app);
    const ok = pods.filter((p) =>
      p.status.phase === "Running" && p.status.podIP && !p.metadata.deletionTimestamp
    );
    return ok.length === n && pods.length === n ? ok : undefined;
  });
}

async function poolStatus(node: LocalNode, name: string): Promise<{ count: number; ips: string[] }> {
  const p = await kjson(node, "get", "spiderippool", name);
  const allocated = p.status?.allocatedIPs ? Object.keys(JSON.parse(p.status.allocatedIPs)) : [];
  return { count: p.status?.allocatedIPCount ?? 0, ips: allocated.sort() };
}

function inRange(ip: string, from: number, to: number): boolean {
  const m = ip.match(/^203\.0\.113\.(\d+)$/);
  return m !== null && Number(m[1]) >= from && Number(m[1]) <= to;
}

async function ping(node: LocalNode, pod: string, ip: string): Promise<void> {
  const out = await node.kubectl("-n", NS, "exec", pod, "--", "ping", "-c", "1", "-W", "3", ip);
  assert.match(out, /1 packets received/, `${pod} -> ${ip}: ${out}`);
}

async function installedBuild(node: LocalNode): Promise<string> {
  const target = await Deno.readLink(`${node.cniBinDir}/spiderpool`);
  assert.ok(
    target.startsWith(`${node.libDir}/`),
    `${node.cniBinDir}/spiderpool -> ${target} is not in ${node.libDir}`,
  );
  return target.slice(node.libDir.length + 1).split("/")[0];
}

Deno.test({
  name:
    "helm install: the agent pod becomes Ready, its install step links our plugins into the node's CNI dir",
  ...opts,
  fn: async () => {
    const { node, valuesFile } = await env();
    const started = performance.now();
    // helm install returns once the post-install Job (spiderpool init) has made the default SpiderCoordinator,
    // which it does only after the controller's webhooks are registered and answer.
    await node.helm("install", "spiderpool", CHART, "-n", "kube-system", "-f", valuesFile);
    for (const workload of ["daemonset/spiderpool-agent", "deployment/spiderpool-controller"]) {
      await node.kubectl("-n", "kube-system", "rollout", "status", workload, "--timeout=300s");
    }
    const [agent] = (await kjson(
      node,
      "-n",
      "kube-system",
      "get",
      "pods",
      "-l",
      "app.kubernetes.io/component=spiderpool-agent",
    )).items;
    assert.ok(agent.status.conditions.some((c: Obj) => c.type === "Ready" && c.status === "True"));
    console.error(`agent Ready ${((performance.now() - started) / 1000).toFixed(1)} s after helm install`);

    // Every plugin name is a link into one build copied to the node; the build runs on the host.
    const build = await installedBuild(node);
    assert.match(build, /^0\.1\.0-[0-9a-f]{12}$/);
    for (const plugin of ["spiderpool", "coordinator", "ifacer"]) {
      assert.equal(await Deno.readLink(`${node.cniBinDir}/${plugin}`), `${node.libDir}/${build}/spiderpool`);
    }
    const version = await run(`${node.cniBinDir}/spiderpool`, [], { CNI_COMMAND: "VERSION" }, "{}");
    assert.deepEqual(JSON.parse(version).supportedVersions.includes("1.0.0"), true);
    const conflist = JSON.parse(await Deno.readTextFile(`${node.cniConfDir}/10-spiderpool.conflist`));
    assert.deepEqual(conflist.plugins.map((p: Obj) => [p.type, p.ipam?.type]), [
      [node.mainPlugin, "spiderpool"],
      ["coordinator", undefined],
    ]);
    // With a network configured the kubelet reports the node Ready.
    await poll("the node Ready", 60_000, async () => {
      const n = await kjson(node, "get", "node", node.nodeName);
      return n.status.conditions.some((c: Obj) => c.type === "Ready" && c.status === "True") || undefined;
    });
  },
});

Deno.test({
  name:
    "the controller pod is Ready, its webhooks are registered with the CA of its Secret, the default SpiderCoordinator is Synced",
  ...opts,
  fn: async () => {
    const { node } = await env();
    const [controller] = (await kjson(
      node,
      "-n",
      "kube-system",
      "get",
      "pods",
      "-l",
      "app.kubernetes.io/component=spiderpool-controller",
    )).items;
    assert.ok(controller.status.conditions.some((c: Obj) => c.type === "Ready" && c.status === "True"));
    const secret = await kjson(
      node,
      "-n",
      "kube-system",
      "get",
      "secret",
      "spiderpool-controller-server-certs",
    );
    const ca = secret.data["ca.crt"];
    assert.ok(ca, "the Secret holds the CA");
    for (const kind of ["mutatingwebhookconfiguration", "validatingwebhookconfiguration"]) {
      const cfg = await kjson(node, "get", kind, "spiderpool-controller");
      assert.ok(cfg.webhooks.length >= 5, `${kind}: ${cfg.webhooks.length} webhooks`);
      for (const h of cfg.webhooks) {
        assert.equal(h.clientConfig.caBundle, ca, `${kind} ${h.name}: the CA of the Secret`);
        assert.deepEqual(
          [h.clientConfig.service.namespace, h.clientConfig.service.name, h.clientConfig.service.port],
          ["kube-system", "spiderpool-controller", 5722],
        );
      }
    }
    // Made by the init Job; its status is written by the controller's leader.
    const coordinator = await poll("SpiderCoordinator default Synced", 120_000, async () => {
      const c = await kjson(node, "get", "spidercoordinator", "default");
      return c.status?.phase === "Synced" ? c : undefined;
    });
    assert.equal(coordinator.spec.mode, "auto");
    assert.ok(coordinator.status.serviceCIDR.length > 0, JSON.stringify(coordinator.status));
  },
});

Deno.test({
  name: "a Deployment of 3 real pods gets addresses from a SpiderIPPool and the pods ping each other",
  ...opts,
  fn: async () => {
    const { node } = await env();
    await apply(node, [pool("e2e-web", ["203.0.113.10-203.0.113.19"]), deployment("web", 3, "e2e-web")]);
    const pods = await runningPods(node, "web", 3);
    const ips = pods.map((p) => p.status.podIP);
    assert.equal(new Set(ips).size, 3, `distinct addresses: ${ips}`);
    for (const ip of ips) assert.ok(inRange(ip, 10, 19), `${ip} from e2e-web`);
    assert.deepEqual((await poolStatus(node, "e2e-web")).ips, [...ips].sort());
    for (const p of pods) {
      const ep = await kjson(node, "-n", NS, "get", "spiderendpoint", p.metadata.name);
      assert.equal(ep.status.current.ips[0].ipv4, `${p.status.podIP}/24`);
      assert.equal(ep.status.current.uid, p.metadata.uid);
    }
    // The address is on the pod's eth0, and the pods reach each other across the node's bridge.
    const addr = await node.kubectl(
      "-n",
      NS,
      "exec",
      pods[0].metadata.name,
      "--",
      "ip",
      "-4",
      "addr",
      "show",
      "eth0",
    );
    assert.match(addr, new RegExp(`inet ${pods[0].status.podIP.replaceAll(".", "\\.")}/24`));
    for (const from of pods) {
      for (const to of pods) if (from !== to) await ping(node, from.metadata.name, to.status.podIP);
    }
  },
});

Deno.test({
  name:
    "the coordinator gives each pod a veth to the host and routes to the node and the Services through it",
  ...opts,
  fn: async () => {
    const { node } = await env();
    const pods = await runningPods(node, "web", 3);
    const coordinator = await kjson(node, "get", "spidercoordinator", "default");
    const n = await kjson(node, "get", "node", node.nodeName);
    const nodeIP = n.status.addresses.find((a: Obj) => a.type === "InternalIP").address;
    for (const p of pods) {
      const name = p.metadata.name;
      const links = await node.kubectl("-n", NS, "exec", name, "--", "ip", "-o", "link", "show");
      assert.match(links, /\bveth0@/, `${name} has the coordinator's veth0: ${links}`);
      const routes = await node.kubectl("-n", NS, "exec", name, "--", "ip", "-4", "route", "show");
      const via = (dst: string) =>
        routes.split("\n").some((l) => l.startsWith(`${dst} `) && /\bdev veth0\b/.test(l));
      assert.ok(via(nodeIP), `${name}: a route to the node ${nodeIP} through veth0:\n${routes}`);
      for (const cidr of [...coordinator.status.serviceCIDR, ...coordinator.spec.hijackCIDR]) {
        if (cidr.includes(":")) continue;
        assert.ok(via(cidr), `${name}: ${cidr} through veth0:\n${routes}`);
      }
      // Node and pod reach each other over the veth pair (with macvlan the parent cannot carry that traffic).
      const out = await node.kubectl("-n", NS, "exec", name, "--", "ping", "-c", "1", "-W", "3", nodeIP);
      assert.match(out, /1 packets received/, `${name} -> node ${nodeIP}: ${out}`);
      const back = await run("ping", ["-c", "1", "-W", "3", p.status.podIP]);
      // (Debian's ping says "1 received", busybox's "1 packets received".)
      assert.match(back, /1 received/, `node -> ${name} ${p.status.podIP}: ${back}`);
    }
  },
});

Deno.test({
  name:
    "kubectl apply of a SpiderIPPool that overlaps another is refused with the webhook's message; nothing is made",
  ...opts,
  fn: async () => {
    const { node } = await env();
    await assert.rejects(
      apply(node, [pool("e2e-overlap", ["203.0.113.15-203.0.113.16"])]),
      (e: Error) => {
        // The API server words a webhook's field errors as it does its own; only the webhook can know that
        // another pool holds these addresses.
        assert.match(e.message, /The SpiderIPPool "e2e-overlap" is invalid: spec\.ips: /);
        assert.match(
          e.message,
          /spec\.ips overlaps SpiderIPPool "e2e-web" at 203\.0\.113\.15-203\.0\.113\.16; remove those addresses/,
        );
        return true;
      },
    );
    await assert.rejects(node.kubectl("get", "spiderippool", "e2e-overlap"), /NotFound|not found/);
  },
});

Deno.test({
  name:
    "a pool written as in Spiderpool's guide (no spec.ipVersion) is defaulted by the webhook and a pod uses it",
  ...opts,
  fn: async () => {
    const { node } = await env();
    await apply(node, [{
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: { name: "e2e-guide" },
      spec: { subnet: "198.51.100.0/24", ips: ["198.51.100.10-198.51.100.19"] },
    }, deployment("guide", 1, "e2e-guide")]);
    const p = await kjson(node, "get", "spiderippool", "e2e-guide");
    assert.equal(p.spec.ipVersion, 4, "the mutating webhook set spec.ipVersion");
    const [pod] = await runningPods(node, "guide", 1);
    assert.match(pod.status.podIP, /^198\.51\.100\.1\d$/);
    const status = await poll("e2e-guide counted by the controller", 60_000, async () => {
      const s = (await kjson(node, "get", "spiderippool", "e2e-guide")).status;
      return s?.totalIPCount === 10 && s?.allocatedIPCount === 1 ? s : undefined;
    });
    assert.deepEqual(Object.keys(JSON.parse(status.allocatedIPs)), [pod.status.podIP]);
    await node.kubectl("-n", NS, "delete", "deployment", "guide", "--wait=true");
    await poll(
      "e2e-guide empty",
      120_000,
      async () => (await poolStatus(node, "e2e-guide")).count === 0 || undefined,
    );
  },
});

Deno.test({
  name: "a StatefulSet pod deleted comes back with its address",
  ...opts,
  fn: async () => {
    const { node } = await env();
    await apply(node, [pool("e2e-sts", ["203.0.113.20-203.0.113.29"]), {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: "db", namespace: NS },
      spec: {
        replicas: 1,
        serviceName: "db",
        selector: { matchLabels: { app: "db" } },
        template: podTemplate("db", "e2e-sts"),
      },
    }]);
    const [first] = await runningPods(node, "db", 1);
    assert.ok(inRange(first.status.podIP, 20, 29));
    await node.kubectl("-n", NS, "delete", "pod", "db-0", "--wait=true");
    const again = await poll("db-0 back with a new UID", 180_000, async () => {
      const [p] = await podsOf(node, "db");
      return p && p.metadata.uid !== first.metadata.uid && p.status.phase === "Running" && p.status.podIP
        ? p
        : undefined;
    });
    assert.equal(again.status.podIP, first.status.podIP);
    assert.deepEqual((await poolStatus(node, "e2e-sts")).ips, [first.status.podIP]);
  },
});

Deno.test({
  name: "deleting the pods frees every address in the pools",
  ...opts,
  fn: async () => {
    const { node } = await env();
    await node.kubectl("-n", NS, "delete", "deployment", "web", "--wait=true");
    await node.kubectl("-n", NS, "delete", "statefulset", "db", "--wait=true");
    await poll("the pods of web and db gone", 120_000, async () => {
      const pods = (await kjson(node, "-n", NS, "get", "pods")).items;
      return pods.length === 0 || undefined;
    });
    for (const name of ["e2e-web", "e2e-sts"]) {
      const status = await poll(`no address allocated in ${name}`, 60_000, async () => {
        const s = await poolStatus(node, name);
        return s.count === 0 && s.ips.length === 0 ? s : undefined;
      });
      assert.deepEqual(status, { count: 0, ips: [] });
    }
    const eps = (await kjson(node, "-n", NS, "get", "spiderendpoints")).items;
    assert.deepEqual(eps.map((e: Obj) => e.metadata.name), []);
  },
});

Deno.test({
  name: "a pod whose pool is exhausted shows the pool's name in its events",
  ...opts,
  fn: async () => {
    const { node } = await env();
    await apply(node, [pool("e2e-tiny", ["203.0.113.40"]), deployment("tiny", 1, "e2e-tiny")]);
    await runningPods(node, "tiny", 1);
    await node.kubectl("-n", NS, "scale", "deployment", "tiny", "--replicas=2");
    const event = await poll("a FailedCreatePodSandBox event naming e2e-tiny", 120_000, async () => {
      const events =
        (await kjson(node, "-n", NS, "get", "events", "--field-selector", "reason=FailedCreatePodSandBox"))
          .items;
      return events.find((e: Obj) => e.message.includes('"e2e-tiny"'));
    });
    assert.match(event.message, /e2e-tiny/);
    const describe = await node.kubectl("-n", NS, "describe", "pod", event.involvedObject.name);
    assert.match(describe, /FailedCreatePodSandBox/);
    assert.match(describe, /e2e-tiny/);
    console.error(`event: ${event.message}`);
    await node.kubectl("-n", NS, "delete", "deployment", "tiny", "--wait=true");
    await poll(
      "e2e-tiny empty",
      120_000,
      async () => (await poolStatus(node, "e2e-tiny")).count === 0 || undefined,
    );
  },
});

Deno.test({
  name: "helm upgrade to a new build replaces the binary on the node while pods keep running",
  ...opts,
  fn: async () => {
    const { node } = await env();
    await apply(node, [pool("e2e-keep", ["203.0.113.50-203.0.113.59"]), deployment("keep", 2, "e2e-keep")]);
    const before = await runningPods(node, "keep", 2);
    const oldBuild = await installedBuild(node);

    // A new build: the same dist/ with one more file, so its content hash (and the image tag) differ.
    const dist = await Deno.makeTempDir({ prefix: "spiderpool-dist-" });
    try {
      await run("cp", ["-a", `${REPO_ROOT}dist/.`, dist]);
      await Deno.writeTextFile(`${dist}/lib/build-note.txt`, `rebuilt ${new Date().toISOString()}\n`);
      // Built into the node's dir: a one-off image, gone with the node.
      const images = await buildImages(node.binDir, { dist, cacheDir: `${node.dir}/images` });
      await node.importImage(images.spiderpool.tar);
      const values = `${node.dir}/values-upgrade.json`;
      await Deno.writeTextFile(values, JSON.stringify(chartValues(node, images.spiderpool.ref)));
      await node.helm("upgrade", "spiderpool", CHART, "-n", "kube-system", "-f", values);
      await node.kubectl(
        "-n",
        "kube-system",
        "rollout",
        "status",
        "daemonset/spiderpool-agent",
        "--timeout=180s",
      );
    } finally {
      await Deno.remove(dist, { recursive: true });
    }
    const newBuild = await installedBuild(node);
    assert.notEqual(newBuild, oldBuild);
    await Deno.stat(`${node.libDir}/${newBuild}/lib/build-note.txt`);

    // The running pods were not touched, and still reach each other; a new pod gets its address through the
    // new binary; every address comes back when they go.
    const after = await runningPods(node, "keep", 2);
    assert.deepEqual(
      after.map((p) => [p.metadata.uid, p.status.podIP, p.status.containerStatuses[0].restartCount]).sort(),
      before.map((p) => [p.metadata.uid, p.status.podIP, 0]).sort(),
    );
    await ping(node, after[0].metadata.name, after[1].status.podIP);
    await node.kubectl("-n", NS, "scale", "deployment", "keep", "--replicas=3");
    const three = await runningPods(node, "keep", 3);
    assert.equal(new Set(three.map((p) => p.status.podIP)).size, 3);
    await node.kubectl("-n", NS, "delete", "deployment", "keep", "--wait=true");
    await poll(
      "e2e-keep empty",
      120_000,
      async () => (await poolStatus(node, "e2e-keep")).count === 0 || undefined,
    );
  },
});

Deno.test({
  name: "helm uninstall leaves the node's CNI dirs clean",
  ...opts,
  fn: async () => {
    const { node } = await env();
    await node.helm("uninstall", "spiderpool", "-n", "kube-system", "--wait", "--timeout", "3m");
    await poll("the agent pod gone", 120_000, async () => {
      const pods = (await kjson(node, "-n", "kube-system", "get", "pods")).items;
      return pods.length === 0 || undefined;
    });
    assert.deepEqual([...Deno.readDirSync(node.cniBinDir)].map((e) => e.name), []);
    assert.deepEqual([...Deno.readDirSync(node.cniConfDir)].map((e) => e.name), []);
    assert.deepEqual([...Deno.readDirSync(node.libDir)].map((e) => e.name), []);
    await assert.rejects(Deno.lstat(node.socketPath), Deno.errors.NotFound);
    // The webhook configurations went with the release; what the controller made itself went with the
    // pre-delete Job; the hooks' own identities went after them.
    for (const kind of ["mutatingwebhookconfiguration", "validatingwebhookconfiguration"]) {
      await assert.rejects(node.kubectl("get", kind, "spiderpool-controller"), /NotFound|not found/);
    }
    const left =
      (await kjson(node, "-n", "kube-system", "get", "secrets,configmaps,leases,serviceaccounts,jobs"))
        .items.map((o: Obj) => `${o.kind}/${o.metadata.name}`).filter((n: string) =>
          n.includes("spiderpool")
        );
    assert.deepEqual(left, []);
    // Helm keeps CRDs (and so the pools) by design.
    assert.ok((await kjson(node, "get", "spiderippools")).items.length > 0);
  },
});

Deno.test({
  name:
    "stopping the node leaves no process, mount, network namespace, cgroup, link or iptables chain behind",
  ...opts,
  fn: async () => {
    const { node, chainsBefore, sysctlsBefore } = await env();
    await node.stop();
    // By what they were started with, not by pid: pids are reused quickly on a busy machine (pid_max 32768).
    const controlPlaneDir = node.kubeconfigPath.slice(0, node.kubeconfigPath.lastIndexOf("/"));
    assert.deepEqual(await pidsMentioning(node.dir), [], `processes started for ${node.dir} still run`);
    assert.deepEqual(
      await pidsMentioning(controlPlaneDir),
      [],
      `processes started for ${controlPlaneDir} still run`,
    );
    assert.deepEqual(await pidsMentioning(node.containerdSocket), [], "containerd shims still running");
    assert.deepEqual(await mountsUnder(node.dir), []);
    await assert.rejects(Deno.stat(node.dir), Deno.errors.NotFound);
    assert.deepEqual(await cgroupsOf(node.cgroupRoot), []);
    assert.equal(await linkExists(node.bridgeName), false);
    const added = [...await iptablesChains()].filter((c) => !chainsBefore.has(c));
    assert.deepEqual(added, []);
    assert.deepEqual(await readSysctls(), sysctlsBefore);
  },
});
