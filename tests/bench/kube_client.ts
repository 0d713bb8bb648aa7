// Benchmark of the ways the project can talk to kube-apiserver, on a real control plane: client-node 2.0.1 as
// shipped, client-node through src/kube/client.ts (one pooled dispatcher), and KubeHttp (Deno fetch).
// Usage: deno run -A tests/bench/kube_client.ts [--n 500]   (uses $SPIDERPOOL_TEST_KUBECONFIG when set)

import { parseArgs } from "node:util";
import { CustomObjectsApi, KubeConfig } from "@kubernetes/client-node";
import { KubeHttp } from "../../src/kube/client.ts";
import { closeKubeConfig, loadKubeConfig } from "../../src/kube/client_node.ts";
import { type ControlPlane, startControlPlane } from "../kube/controlplane.ts";
import { installCrds } from "../kube/crds.ts";

const GROUP = "spiderpool.spidernet.io";
const VERSION = "v2beta1";
const PLURAL = "spiderippools";
const POOLS = `/apis/${GROUP}/${VERSION}/${PLURAL}`;
const WARMUP = 20;

interface Pool {
  metadata: { name: string; resourceVersion?: string };
  status?: { allocatedIPCount?: number; totalIPCount?: number };
}

/** One client under test: a GET of the pool, and one read-modify-write of its status. */
interface Variant {
  label: string;
  get(name: string): Promise<unknown>;
  updateStatus(name: string): Promise<unknown>;
  close(): Promise<void>;
}

function clientNodeVariant(label: string, kc: KubeConfig, close: () => Promise<void>): Variant {
  const api = kc.makeApiClient(CustomObjectsApi);
  const get = (name: string) =>
    api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, name });
  return {
    label,
    get,
    async updateStatus(name) {
      const pool = await get(name) as Pool;
      const count = (pool.status?.allocatedIPCount ?? 0) + 1;
      return await api.replaceClusterCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
        name,
        body: { ...pool, status: { ...pool.status, allocatedIPCount: count, totalIPCount: 11 } },
      });
    },
    close,
  };
}

function kubeHttpVariant(http: KubeHttp): Variant {
  return {
    label: "(c) KubeHttp (Deno fetch)",
    get: (name) => http.get(`${POOLS}/${name}`),
    async updateStatus(name) {
      const { body: pool } = await http.get<Pool>(`${POOLS}/${name}`);
      const count = (pool.status?.allocatedIPCount ?? 0) + 1;
      return await http.put(`${POOLS}/${name}/status`, {
        ...pool,
        status: { ...pool.status, allocatedIPCount: count, totalIPCount: 11 },
      });
    },
    close: () => Promise.resolve(http.close()),
  };
}

interface Result {
  variant: string;
  op: string;
  n: number;
  reqPerSec: number;
  meanMs: number;
  p99Ms: number;
}

async function measure(
  variant: Variant,
  op: "get" | "updateStatus",
  name: string,
  n: number,
): Promise<Result> {
  for (let i = 0; i < WARMUP; i++) await variant[op](name);
  const latencies = new Float64Array(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await variant[op](name);
    latencies[i] = performance.now() - t;
  }
  const total = performance.now() - start;
  latencies.sort();
  return {
    variant: variant.label,
    op: op === "get" ? "GET pool" : "status update (GET+PUT)",
    n,
    reqPerSec: n / (total / 1000),
    meanMs: total / n,
    p99Ms: latencies[Math.min(n - 1, Math.ceil(n * 0.99) - 1)],
  };
}

function printTable(results: Result[]): void {
  const rows = [["variant", "operation", "n", "ops/s", "mean ms", "p99 ms", "vs (a)"]];
  for (const r of results) {
    const base = results.find((b) => b.op === r.op && b.variant.startsWith("(a)"))!;
    rows.push([
      r.variant,
      r.op,
      String(r.n),
      r.reqPerSec.toFixed(0),
      r.meanMs.toFixed(2),
      r.p99Ms.toFixed(2),
      `${(r.reqPerSec / base.reqPerSec).toFixed(1)}×`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const [i, row] of rows.entries()) {
    console.log(row.map((c, j) => (j >= 2 ? c.padStart(widths[j]) : c.padEnd(widths[j]))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: { n: { type: "string", default: "500" } },
  });
  const n = Number(values.n);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a positive integer, got ${values.n}`);

  let cp: ControlPlane | undefined;
  let kubeconfigPath = Deno.env.get("SPIDERPOOL_TEST_KUBECONFIG");
  if (!kubeconfigPath) {
    cp = await startControlPlane({ controllerManager: false });
    kubeconfigPath = cp.kubeconfigPath;
  }
  const setupKc = loadKubeConfig(kubeconfigPath);
  const http = await KubeHttp.fromKubeConfig(setupKc);
  const name = `bench-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await installCrds(http);
    await http.post(POOLS, {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: "SpiderIPPool",
      metadata: { name },
      spec: { ipVersion: 4, subnet: "198.18.0.0/24", ips: ["198.18.0.10-198.18.0.20"] },
    });

    const plain = new KubeConfig();
    plain.loadFromFile(kubeconfigPath);
    const pooled = loadKubeConfig(kubeconfigPath);
    const variants = [
      clientNodeVariant("(a) client-node 2.0.1 as shipped", plain, () => Promise.resolve()),
      clientNodeVariant("(b) client-node + pooled dispatcher", pooled, () => closeKubeConfig(pooled)),
      kubeHttpVariant(await KubeHttp.fromKubeConfig(pooled)),
    ];
    const results: Result[] = [];
    for (const op of ["get", "updateStatus"] as const) {
      for (const v of variants) results.push(await measure(v, op, name, n));
    }
    for (const v of variants) await v.close();
    console.log(
      `kube-apiserver ${(await http.get<{ gitVersion: string }>("/version")).body.gitVersion}, ` +
        `${navigator.hardwareConcurrency} CPUs, sequential requests, ${WARMUP} warm-up requests per row\n`,
    );
    printTable(results);
  } finally {
    await http.delete(`${POOLS}/${name}`).catch(() => {});
    http.close();
    await closeKubeConfig(setupKc);
    await cp?.stop();
  }
}

if (import.meta.main) await main();
