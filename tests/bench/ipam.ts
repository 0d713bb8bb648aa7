// IPAM benchmark through the real pieces: N pods spread over K simulated nodes (one `dist/spiderpool agent`
// each) allocate from ONE shared SpiderIPPool through Debian's bridge plugin delegating to `dist/cni/spiderpool`,
// one network namespace per pod; an ADD burst, then a DEL burst. The same workload then runs with Debian's
// node-local `host-local` IPAM (no API server) as the reference, and the ratio is printed.
//
// Usage: deno run -A tests/bench/ipam.ts [--pods 300] [--agents 3] [--concurrency 16]   (after scripts/build.sh)
// Uses the control plane of $SPIDERPOOL_TEST_KUBECONFIG when set, else starts one (tests/kube/harness.ts).

import { parseArgs } from "node:util";
import type { KubeHttp } from "../../src/kube/client.ts";
import { type CniRun, execCni, hostLocalBridgeConf, resultAddresses } from "../e2e/cni.ts";
import { consistencyProblems, e2e, listEndpoints, poolRecords, type Sandbox } from "../e2e/env.ts";
import { netnsPath } from "../e2e/netns.ts";
import { scrapeMetrics, type SimNode } from "../e2e/node_sim.ts";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "300" },
    agents: { type: "string", default: "3" },
    concurrency: { type: "string", default: "16" },
  },
  strict: true,
});
const PODS = positive("--pods", values.pods);
const AGENTS = positive("--agents", values.agents);
const CONCURRENCY = positive("--concurrency", values.concurrency);
if (AGENTS > 16) {
  throw new Error(`--agents ${AGENTS}: at most 16 (host-local gets a /20 of 198.19.0.0/16 each)`);
}
if (PODS > 4000) throw new Error(`--pods ${PODS}: at most 4000 (the pool spans 198.18.0.10-198.18.15.254)`);

function positive(flag: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a whole number ≥ 1, got ${v}`);
  return n;
}

/** Set by Ctrl-C: no new CNI call starts, and the run skips to cleaning up what it created. */
let interrupted = false;
Deno.addSignalListener("SIGINT", () => {
  if (interrupted) Deno.exit(130);
  interrupted = true;
  console.error("bench ipam: interrupted; cleaning up (Ctrl-C again to exit at once)");
});

class Interrupted extends Error {}

/** Runs `fn` over `items` with at most `limit` at a time; resolves in input order. */
async function pooled<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      if (interrupted) throw new Interrupted("interrupted");
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

interface Burst {
  wallMs: number;
  podsPerSec: number;
  p50: number;
  p99: number;
  failures: string[];
  runs: CniRun[];
}

/** Runs one CNI command per sandbox, `CONCURRENCY` at a time; latency is the whole plugin chain's wall time. */
async function burst(sandboxes: Sandbox[], run: (sb: Sandbox) => Promise<CniRun>): Promise<Burst> {
  const started = performance.now();
  const runs = await pooled(sandboxes, CONCURRENCY, run);
  const wallMs = performance.now() - started;
  const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
  const failures = runs.flatMap((r, i) =>
    r.code === 0 ? [] : [`${sandboxes[i].pod.name}: ${r.stdout.trim()}`]
  );
  return {
    wallMs,
    podsPerSec: (sandboxes.length * 1000) / wallMs,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    failures,
    runs,
  };
}

/** Sum over agents of the metrics this benchmark reports. */
async function agentCounters(nodes: SimNode[]) {
  const sum = {
    poolWrites: 0,
    endpointWrites: 0,
    allocConflicts: 0,
    releaseConflicts: 0,
    allocSeconds: 0,
    allocs: 0,
    releaseSeconds: 0,
    releases: 0,
  };
  for (const n of nodes) {
    const m = await scrapeMetrics(n.agent.metricsPort);
    sum.poolWrites += m.get('spiderpool_agent_api_writes_total{kind="ippool_status"}') ?? 0;
    sum.endpointWrites += m.get('spiderpool_agent_api_writes_total{kind="endpoint"}') ?? 0;
    sum.allocConflicts += m.get("spiderpool_ipam_allocation_update_ippool_conflict_counts_total") ?? 0;
    sum.releaseConflicts += m.get("spiderpool_ipam_release_update_ippool_conflict_counts_total") ?? 0;
    sum.allocSeconds += m.get("spiderpool_ipam_allocation_duration_seconds_sum") ?? 0;
    sum.allocs += m.get("spiderpool_ipam_allocation_duration_seconds_count") ?? 0;
    sum.releaseSeconds += m.get("spiderpool_ipam_release_duration_seconds_sum") ?? 0;
    sum.releases += m.get("spiderpool_ipam_release_duration_seconds_count") ?? 0;
  }
  return sum;
}

/** The API server's own request counters for the resources IPAM touches, by `VERB resource[/sub] code`. */
async function apiserverRequests(http: KubeHttp): Promise<Map<string, number>> {
  const { body } = await http.get<string>("/metrics", { accept: "text/plain" });
  const out = new Map<string, number>();
  for (const line of String(body).split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const label = (k: string) => line.match(new RegExp(`[{,]${k}="([^"]*)"`))?.[1] ?? "";
    const resource = label("resource");
    if (!["spiderippools", "spiderendpoints", "pods"].includes(resource)) continue;
    const sub = label("subresource") ? `/${label("subresource")}` : "";
    const key = `${label("verb")} ${resource}${sub} ${label("code")}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return out;
}

function diff(after: Map<string, number>, before: Map<string, number>): [string, number][] {
  return [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as [string, number]).filter(([, v]) =>
    v > 0
  )
    .sort();
}

const fmt = (n: number, digits = 1) => Number.isFinite(n) ? n.toFixed(digits) : "-";

async function main(): Promise<void> {
  await using env = await e2e("bench-ipam");
  const { http, namespace } = env;
  console.log(`IPAM benchmark: ${PODS} pods, ${AGENTS} agents, ${CONCURRENCY} CNI calls at a time`);
  const nodes = await env.startNodes(AGENTS);
  const pool = await env.pool("shared", {
    subnet: "198.18.0.0/20",
    ips: ["198.18.0.10-198.18.15.254"],
    gateway: "198.18.0.1",
  });
  const annotations = { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) };
  const sandboxes = await pooled(Array.from({ length: PODS }, (_, i) => i), 8, async (i) => {
    const node = nodes[i % nodes.length];
    return await env.sandbox(await env.createPod(`bench-${i}`, node, { annotations }), node);
  });

  // --- spiderpool: ADD burst ---
  const m0 = await agentCounters(nodes);
  const r0 = await apiserverRequests(http);
  const add = await burst(sandboxes, (sb) => env.add(sb));
  const m1 = await agentCounters(nodes);
  const r1 = await apiserverRequests(http);
  const given = new Set(add.runs.flatMap(resultAddresses));
  const recorded = Object.keys(await poolRecords(http, pool)).length;
  const consistency = await consistencyProblems(http, namespace, [pool]);

  // --- spiderpool: DEL burst (the pods are being deleted, as when a kubelet tears them down) ---
  await pooled(sandboxes, 8, (sb) => http.delete(`/api/v1/namespaces/${namespace}/pods/${sb.pod.name}`));
  const m1d = await agentCounters(nodes);
  const r1d = await apiserverRequests(http);
  const del = await burst(sandboxes, (sb) => env.del(sb));
  const m2 = await agentCounters(nodes);
  const r2 = await apiserverRequests(http);
  const leftRecords = Object.keys(await poolRecords(http, pool)).length;
  const leftFinalizers =
    (await listEndpoints(http, namespace)).filter((e) => e.metadata.finalizers?.length).length;

  // --- host-local reference: the same chain and sandboxes, a node-local range per node ---
  const dataDir = `${env.dir}/host-local`;
  const hostLocal = (sb: Sandbox, command: "ADD" | "DEL") => {
    const k = nodes.indexOf(sb.node);
    return execCni({
      command,
      conf: hostLocalBridgeConf({
        name: "bench-host-local",
        bridge: `hl${sb.node.bridge.slice(-8)}`,
        subnet: `198.19.${k * 16}.0/20`,
        dataDir: `${dataDir}/${sb.node.name}`,
      }),
      containerId: `hl${sb.containerId}`,
      netns: netnsPath(sb.netns),
      pod: sb.pod,
      nodeNetns: sb.node.netns,
    });
  };
  const hlAdd = await burst(sandboxes, (sb) => hostLocal(sb, "ADD"));
  const hlDel = await burst(sandboxes, (sb) => hostLocal(sb, "DEL"));

  const addWrites = (m1.poolWrites - m0.poolWrites) + (m1.endpointWrites - m0.endpointWrites);
  const delWrites = (m2.poolWrites - m1d.poolWrites) + (m2.endpointWrites - m1d.endpointWrites);
  const rows: [string, string, string, string, string][] = [
    ["", "pods/s", "p50 ms", "p99 ms", "failed"],
    ["spiderpool ADD", fmt(add.podsPerSec), fmt(add.p50, 0), fmt(add.p99, 0), `${add.failures.length}`],
    ["spiderpool DEL", fmt(del.podsPerSec), fmt(del.p50, 0), fmt(del.p99, 0), `${del.failures.length}`],
    [
      "host-local ADD",
      fmt(hlAdd.podsPerSec),
      fmt(hlAdd.p50, 0),
      fmt(hlAdd.p99, 0),
      `${hlAdd.failures.length}`,
    ],
    [
      "host-local DEL",
      fmt(hlDel.podsPerSec),
      fmt(hlDel.p50, 0),
      fmt(hlDel.p99, 0),
      `${hlDel.failures.length}`,
    ],
  ];
  console.log();
  for (const r of rows) console.log(`${r[0].padEnd(16)}${r.slice(1).map((c) => c.padStart(10)).join("")}`);
  console.log();
  console.log(
    `spiderpool / host-local: ADD throughput ×${fmt(add.podsPerSec / hlAdd.podsPerSec, 2)}, ` +
      `ADD p50 ×${fmt(add.p50 / hlAdd.p50, 2)}, p99 ×${fmt(add.p99 / hlAdd.p99, 2)}; ` +
      `DEL throughput ×${fmt(del.podsPerSec / hlDel.podsPerSec, 2)}`,
  );
  console.log(
    `agent API write requests per pod (409s included): ADD ${fmt(addWrites / PODS, 2)} ` +
      `(pool status ${fmt((m1.poolWrites - m0.poolWrites) / PODS, 2)}, endpoint ${
        fmt((m1.endpointWrites - m0.endpointWrites) / PODS, 2)
      }), DEL ${fmt(delWrites / PODS, 2)} ` +
      `(pool status ${fmt((m2.poolWrites - m1d.poolWrites) / PODS, 2)}, endpoint ${
        fmt((m2.endpointWrites - m1d.endpointWrites) / PODS, 2)
      })`,
  );
  console.log(
    `pool status conflicts (409): ADD ${m1.allocConflicts - m0.allocConflicts}, DEL ${
      m2.releaseConflicts - m1d.releaseConflicts
    }`,
  );
  const avgMs = (secs: number, n: number) => fmt((secs * 1000) / n, 0);
  console.log(
    `time inside the agents (mean per request): ADD ${
      avgMs(m1.allocSeconds - m0.allocSeconds, m1.allocs - m0.allocs)
    } ms, DEL ${avgMs(m2.releaseSeconds - m1d.releaseSeconds, m2.releases - m1d.releases)} ms`,
  );
  const perPod = (d: [string, number][]) => d.map(([k, v]) => `${k} ${fmt(v / PODS, 2)}`).join(", ");
  console.log(`API server requests per pod (all clients), ADD burst: ${perPod(diff(r1, r0))}`);
  console.log(`API server requests per pod (all clients), DEL burst: ${perPod(diff(r2, r1d))}`);
  console.log(
    `correctness: after ADD ${given.size} distinct addresses for ${PODS} pods, ${recorded} pool records, ` +
      `${consistency.length} record/endpoint mismatches; after DEL ${leftRecords} records and ` +
      `${leftFinalizers} endpoint finalizers left`,
  );
  for (const f of [...add.failures, ...del.failures, ...hlAdd.failures, ...hlDel.failures].slice(0, 5)) {
    console.log(`  failure: ${f.slice(0, 300)}`);
  }
  for (const p of consistency.slice(0, 5)) console.log(`  mismatch: ${p}`);
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    if (err instanceof Interrupted) Deno.exit(130);
    console.error(`bench ipam: ${(err as Error).stack ?? err}`);
    Deno.exitCode = 1;
  }
  Deno.exit();
}
