// Benchmark of the SpiderMultusConfig controller on a real control plane: (A) N SpiderMultusConfigs created at
// once → the time until all N NetworkAttachmentDefinitions exist, and the API writes made; (B) a leader that
// starts over N converged SMCs (a restart) → the time until it has looked at all of them, with no write; (C)
// the latency from an SMC edit to its NAD's new config (median of 20). References measured in the same run:
// N NADs created by a bare loop of sequential POSTs (what the creates alone cost), and rendering one SMC
// against JSON.stringify of the same object (the renderer's own CPU cost).
// Usage: deno run -A tests/bench/multus.ts [--smcs 200]   (uses $SPIDERPOOL_TEST_KUBECONFIG when set)

import { parseArgs } from "node:util";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import { defaultMultusConfig } from "../../src/api/defaults.ts";
import type { SpiderMultusConfig } from "../../src/api/types.ts";
import { LeaderElector } from "../../src/controller/leader.ts";
import { ControllerMetrics } from "../../src/controller/metrics.ts";
import { KubeHttp } from "../../src/kube/client.ts";
import { closeKubeConfig, loadKubeConfig } from "../../src/kube/client_node.ts";
import { MultusConfigController } from "../../src/multus/controller.ts";
import { nadPath, type NetworkAttachmentDefinition } from "../../src/multus/nad.ts";
import { renderNAD } from "../../src/multus/render.ts";
import { type ControlPlane, startControlPlane } from "../kube/controlplane.ts";
import { installCrds, MULTUS_CRD_DIR } from "../kube/crds.ts";
import type { KubeConfig } from "@kubernetes/client-node";

const TIMINGS = { leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };

function smcBody(i: number): SpiderMultusConfig {
  return defaultMultusConfig({
    apiVersion: API_VERSION,
    kind: "SpiderMultusConfig",
    metadata: { name: `net-${i}`, annotations: { "cni.spidernet.io/rdma-resource-inject": "bench" } },
    spec: {
      cniType: "sriov",
      sriov: {
        resourceName: `spidernet.io/gpu${i % 8}`,
        rdmaIsolation: true,
        mtu: 9000,
        ippools: { ipv4: ["p"] },
      },
      chainCNIJsonData: ['{"type":"bandwidth","ingressRate":1000}'],
    },
  });
}

async function parallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function leadingController(http: KubeHttp, kc: KubeConfig, namespace: string) {
  const metrics = new ControllerMetrics();
  const controller = new MultusConfigController({
    http,
    kubeConfig: kc,
    identity: "bench",
    metrics,
    namespace,
    log: () => {},
  });
  const elector = new LeaderElector({
    http,
    namespace,
    identity: "bench",
    timings: TIMINGS,
    work: [controller],
    metrics,
    log: () => {},
  });
  controller.start();
  await controller.synced;
  elector.start();
  await until("leadership", () => Promise.resolve(elector.isLeader()));
  return {
    controller,
    metrics,
    async stop() {
      await elector.stop();
      await controller.stop();
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: { smcs: { type: "string", default: "200" } },
  });
  const n = Number(values.smcs);
  if (!Number.isInteger(n) || n < 1 || n > 5_000) {
    throw new Error(`--smcs must be 1-5000, got ${values.smcs}`);
  }
  let cp: ControlPlane | undefined;
  let kubeconfigPath = Deno.env.get("SPIDERPOOL_TEST_KUBECONFIG");
  if (!kubeconfigPath) {
    cp = await startControlPlane({ controllerManager: false });
    kubeconfigPath = cp.kubeconfigPath;
  }
  const kc = loadKubeConfig(kubeconfigPath);
  const http = await KubeHttp.fromKubeConfig(kc);
  const run = crypto.randomUUID().slice(0, 6);
  const namespace = `bench-smc-${run}`;
  const refNamespace = `bench-nad-${run}`;
  const smcs = `/apis/${API_VERSION}/namespaces/${namespace}/${PLURAL.multusConfig}`;
  try {
    await installCrds(http);
    await installCrds(http, MULTUS_CRD_DIR);
    for (const ns of [namespace, refNamespace]) {
      await http.post("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    }

    // Reference: the NADs themselves, created by a bare loop.
    const rendered = Array.from(
      { length: n },
      (_, i) => renderNAD({ ...smcBody(i), metadata: { ...smcBody(i).metadata, namespace, uid: "u" } }),
    );
    let t = performance.now();
    for (const r of rendered) {
      await http.post(nadPath(refNamespace), {
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name: r.name, annotations: r.annotations },
        spec: { config: r.config },
      });
    }
    const refMs = performance.now() - t;

    // (A) N SMCs created at once, controller leading.
    const a = await leadingController(http, kc, namespace);
    t = performance.now();
    await parallel(Array.from({ length: n }, (_, i) => i), 8, async (i) => {
      await http.post(smcs, smcBody(i));
    });
    const createdMs = performance.now() - t;
    await until("every NAD", async () => {
      const { body } = await http.get<{ items: NetworkAttachmentDefinition[] }>(nadPath(namespace));
      return body.items.length === n;
    });
    const allMs = performance.now() - t;
    await a.controller.settled();
    const writesA = a.metrics.writes.nad_create + a.metrics.writes.nad_update;

    // (C) edit → NAD latency, median of 20.
    const latencies: number[] = [];
    for (let k = 0; k < 20; k++) {
      const name = `net-${k}`;
      const t0 = performance.now();
      await http.patch(`${smcs}/${name}`, { spec: { sriov: { mtu: 1500 + k } } }, "merge");
      await until(`NAD ${name} updated`, async () => {
        const { body } = await http.get<NetworkAttachmentDefinition>(nadPath(namespace, name));
        return body.spec?.config?.includes(`"mtu":${1500 + k}}`) === true;
      });
      latencies.push(performance.now() - t0);
    }
    latencies.sort((x, y) => x - y);
    await a.stop();

    // (B) a restart over N converged SMCs.
    t = performance.now();
    const b = await leadingController(http, kc, namespace);
    await b.controller.settled();
    const restartMs = performance.now() - t;
    const writesB = b.metrics.writes.nad_create + b.metrics.writes.nad_update;
    const reconcilesB = (await b.metrics.reconciles.get()).values.reduce((s, v) => s + v.value, 0);
    await b.stop();

    // Rendering cost against JSON.stringify of the same object.
    const one = { ...smcBody(1), metadata: { ...smcBody(1).metadata, namespace, uid: "u" } };
    const per = (fn: () => unknown) => {
      for (let i = 0; i < 1000; i++) fn();
      const s = performance.now();
      let runs = 0;
      do {
        for (let i = 0; i < 1000; i++) fn();
        runs += 1000;
      } while (performance.now() - s < 300);
      return ((performance.now() - s) * 1000) / runs;
    };
    const renderUs = per(() => renderNAD(one));
    const stringifyUs = per(() => JSON.stringify(one));

    console.log(`${n} SpiderMultusConfigs (sriov + rdma + chained bandwidth + coordinator + tuning)`);
    console.log(`reference: ${n} NADs created by a bare sequential loop: ${(refMs / 1000).toFixed(2)} s`);
    console.log(
      `(A) created at once (8 clients, ${(createdMs / 1000).toFixed(2)} s), all NADs present after ` +
        `${(allMs / 1000).toFixed(2)} s = ${
          (allMs / refMs).toFixed(2)
        }× the reference; NAD writes ${writesA} ` +
        `(${(writesA / n).toFixed(2)} per SMC)`,
    );
    console.log(
      `(B) restart over ${n} converged SMCs: settled after ${(restartMs / 1000).toFixed(2)} s ` +
        `(${reconcilesB} reconciles), NAD writes ${writesB}`,
    );
    console.log(
      `(C) SMC edit → NAD config: median ${latencies[10].toFixed(0)} ms, max ${
        latencies[19].toFixed(0)
      } ms (20 edits)`,
    );
    console.log(
      `render one SMC: ${renderUs.toFixed(1)} µs; JSON.stringify of it: ${stringifyUs.toFixed(1)} µs ` +
        `(ratio ${(renderUs / stringifyUs).toFixed(1)})`,
    );
  } finally {
    for (const ns of [namespace, refNamespace]) await http.delete(`/api/v1/namespaces/${ns}`).catch(() => {});
    http.close();
    await closeKubeConfig(kc);
    await cp?.stop();
  }
}

await main();
