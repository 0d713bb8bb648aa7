// Benchmark of the SpiderIPPool reconciler on a real control plane: the time for a freshly started controller
// (elected leader, caches listed, every pool reconciled) to settle N pools, and the API writes it made —
// (A) after an upgrade from a release that never wrote the counts (every pool needs one status write), and
// (B) after a plain restart (everything converged: no write at all). References measured in the same run: one
// LIST of the N pools (what any restart must read) and N sequential status patches by a bare loop (what the
// writes alone cost).
// Usage: deno run -A tests/bench/reconcile.ts [--pools 1000]   (uses $SPIDERPOOL_TEST_KUBECONFIG when set)

import { parseArgs } from "node:util";
import { cpuUsage } from "node:process";
import { LeaderElector } from "../../src/controller/leader.ts";
import { ControllerMetrics } from "../../src/controller/metrics.ts";
import { POOLS } from "../../src/controller/reconcile/kube.ts";
import { Reconcilers } from "../../src/controller/reconcile/reconcilers.ts";
import { KubeHttp } from "../../src/kube/client.ts";
import { closeKubeConfig, loadKubeConfig } from "../../src/kube/client_node.ts";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { type ControlPlane, startControlPlane } from "../kube/controlplane.ts";
import { installCrds } from "../kube/crds.ts";

const LABEL = "spiderpool.spidernet.io/bench";

interface Phase {
  label: string;
  ms: number;
  writes: number;
  conflicts: number;
  cpuMs: number;
  electedMs: number;
  reconciles: number;
}

async function parallel<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/** Pool i: ten addresses of 198.18.0.0/15; every fourth has three allocation records. */
function poolBody(run: string, i: number) {
  const base = 10 * i;
  const ip = (n: number) => `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
  return {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderIPPool",
    metadata: { name: `bench-${run}-${i}`, labels: { [LABEL]: run } },
    spec: { ipVersion: 4, subnet: "198.18.0.0/15", ips: [`${ip(base)}-${ip(base + 9)}`] },
    records: i % 4 === 0
      ? JSON.stringify(
        Object.fromEntries(
          [0, 1, 2].map((k) => [ip(base + k), { pod: `ns/p${i}-${k}`, podUid: `u${i}${k}` }]),
        ),
      )
      : undefined,
  };
}

async function runController(
  label: string,
  http: KubeHttp,
  kubeconfigPath: string,
  namespace: string,
  run: string,
): Promise<Phase> {
  const kc = loadKubeConfig(kubeconfigPath);
  const metrics = new ControllerMetrics();
  const identity = `bench-${crypto.randomUUID().slice(0, 6)}`;
  const cpu0 = cpuUsage();
  const t0 = performance.now();
  let elected = 0;
  const reconcilers = new Reconcilers({
    http,
    kubeConfig: kc,
    identity,
    metrics,
    matchLabels: { [LABEL]: run },
    enableSpiderSubnet: false,
    log: () => {},
  });
  const elector = new LeaderElector({
    http,
    namespace,
    identity,
    leaseName: `bench-${run}`,
    work: [reconcilers],
    onStartedLeading: () => elected = performance.now() - t0,
    log: () => {},
  });
  reconcilers.start();
  elector.start();
  while (!elector.isLeader()) await new Promise((r) => setTimeout(r, 5));
  await reconcilers.settled();
  const ms = performance.now() - t0;
  const cpu = cpuUsage(cpu0);
  await elector.stop();
  await reconcilers.stop();
  await closeKubeConfig(kc);
  const reconciles = (await metrics.reconciles.get()).values.reduce((sum, v) => sum + v.value, 0);
  return {
    label,
    reconciles,
    ms,
    writes: metrics.totalWrites(),
    conflicts: metrics.conflicts,
    cpuMs: (cpu.user + cpu.system) / 1000,
    electedMs: elected,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: { pools: { type: "string", default: "1000" } },
  });
  const n = Number(values.pools);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) {
    throw new Error(`--pools must be 1-10000, got ${values.pools}`);
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
  const namespace = `bench-${run}`;
  const selector = `labelSelector=${encodeURIComponent(`${LABEL}=${run}`)}`;
  try {
    await installCrds(http);
    await http.post("/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: namespace },
    });
    const t = performance.now();
    await parallel(Array.from({ length: n }, (_, i) => i), 8, async (i) => {
      const { records, ...body } = poolBody(run, i);
      const { body: created } = await http.post<SpiderIPPool>(POOLS, body);
      // Status as an older release left it: records, but no counts.
      if (records) {
        await http.put(`${POOLS}/${created.metadata.name}/status`, {
          ...created,
          status: { allocatedIPs: records },
        });
      }
    });
    console.log(`created ${n} pools in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    // References.
    let t1 = performance.now();
    const { body: list } = await http.get<{ items: SpiderIPPool[] }>(`${POOLS}?${selector}`);
    const listMs = performance.now() - t1;
    if (list.items.length !== n) throw new Error(`listed ${list.items.length} pools, expected ${n}`);

    const a = await runController(
      "(A) start, every pool needs its counts",
      http,
      kubeconfigPath,
      namespace,
      run,
    );
    const { body: after } = await http.get<{ items: SpiderIPPool[] }>(`${POOLS}?${selector}`);
    const wrong = after.items.filter((p) =>
      p.status?.totalIPCount !== 10 || p.status?.allocatedIPCount !== (p.status?.allocatedIPs ? 3 : 0)
    );
    if (wrong.length) {
      throw new Error(`${wrong.length} pools did not converge, e.g. ${JSON.stringify(wrong[0].status)}`);
    }
    const b = await runController("(B) restart, all converged", http, kubeconfigPath, namespace, run);
    for (const p of [a, b]) {
      if (p.reconciles < n) throw new Error(`${p.label}: only ${p.reconciles} of ${n} pools were reconciled`);
    }

    // The bare cost of N status writes, one after another (rewriting the same counts: each still a real update
    // because the resourceVersion precondition is checked and a no-op patch is still processed).
    t1 = performance.now();
    for (const p of after.items) {
      await http.patch(`${POOLS}/${p.metadata.name}/status`, {
        metadata: { resourceVersion: p.metadata.resourceVersion },
        status: { totalIPCount: 10 },
      }, "merge");
    }
    const patchMs = performance.now() - t1;

    console.log(
      `\nkube-apiserver ${(await http.get<{ gitVersion: string }>("/version")).body.gitVersion}, ` +
        `${navigator.hardwareConcurrency} CPUs, ${n} SpiderIPPools, 3 reconcile workers\n`,
    );
    const rows = [
      ["phase", "settled", "elected after", "reconciles", "API writes", "409s", "controller CPU"],
      ...[a, b].map((p) => [
        p.label,
        `${(p.ms / 1000).toFixed(2)} s`,
        `${p.electedMs.toFixed(0)} ms`,
        String(p.reconciles),
        String(p.writes),
        String(p.conflicts),
        `${(p.cpuMs / 1000).toFixed(2)} s`,
      ]),
    ];
    const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const [i, r] of rows.entries()) {
      console.log(r.map((c, j) => c.padEnd(w[j])).join("  "));
      if (i === 0) console.log(w.map((x) => "-".repeat(x)).join("  "));
    }
    console.log(`\nreference: one LIST of the ${n} pools        ${listMs.toFixed(0)} ms`);
    console.log(`reference: ${n} sequential status patches  ${(patchMs / 1000).toFixed(2)} s`);
    console.log(`(A) / (LIST + sequential patches) = ${(a.ms / (listMs + patchMs)).toFixed(2)}`);
    console.log(
      `(B) / LIST = ${(b.ms / listMs).toFixed(1)}; writes per pool: (A) ${(a.writes / n).toFixed(2)}, (B) ${
        (b.writes / n).toFixed(2)
      }`,
    );
  } finally {
    await http.delete(`${POOLS}?${selector}`).catch((e) => console.error(`clean-up: ${e.message}`));
    await http.delete(`/api/v1/namespaces/${namespace}`).catch(() => {});
    http.close();
    await closeKubeConfig(kc);
    await cp?.stop();
  }
}

if (import.meta.main) await main();
