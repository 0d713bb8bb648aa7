// IPAM benchmark through the real pieces: N pods spread over K simulated nodes (one `dist/spiderpool agent`
// each) allocate from ONE shared SpiderIPPool through Debian's bridge plugin delegating to `dist/cni/spiderpool`,
// one network namespace per pod; an ADD burst, then a DEL burst. The same workload then runs with Debian's
// node-local `host-local` IPAM (no API server) as the reference, and the ratios are printed.
//
// Per burst it reports pods/s, p50/p99 latency, the CPU of the whole CNI chain per call (every process the
// runtime would start: bridge, our plugin and its launcher), the agents' CPU, the API server's requests per pod
// by verb and resource (from its own `apiserver_request_total`) and its CPU (`process_cpu_seconds_total`), the
// agents' peak RSS, failures and leftovers.
//
// Usage: deno run -A tests/bench/ipam.ts [--pods 300] [--agents 3] [--concurrency 16]
//        deno run -A tests/bench/ipam.ts --scale   (100 and 1,000 pods over 1 and 10 nodes, then a summary)
// (after scripts/build.sh). Uses the control plane of $SPIDERPOOL_TEST_KUBECONFIG when set, else starts one, and
// the build in dist/, or the one $SPIDERPOOL_DIST names (to compare two builds under the same machine load).

import { parseArgs } from "node:util";
import type { KubeHttp } from "../../src/kube/client.ts";
import { type CniRun, DIST, execCni, hostLocalBridgeConf, resultAddresses } from "../e2e/cni.ts";
import { consistencyProblems, e2e, listEndpoints, poolRecords, type Sandbox } from "../e2e/env.ts";
import { netnsPath } from "../e2e/netns.ts";
import { scrapeMetrics, type SimNode } from "../e2e/node_sim.ts";
import { childrenCpu } from "./rusage.ts";

const { values } = parseArgs({
  options: {
    pods: { type: "string", default: "300" },
    agents: { type: "string", default: "3" },
    concurrency: { type: "string", default: "16" },
    scale: { type: "boolean", default: false },
  },
  strict: true,
});
const CONCURRENCY = positive("--concurrency", values.concurrency);

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
  /** CPU of every process the burst started (the whole chain), per call, ms. */
  chainCpuMs: number;
  failures: string[];
  runs: CniRun[];
}

/** Runs one CNI command per sandbox, `CONCURRENCY` at a time; latency is the whole plugin chain's wall time. */
async function burst(sandboxes: Sandbox[], run: (sb: Sandbox) => Promise<CniRun>): Promise<Burst> {
  const cpuBefore = childrenCpu().total;
  const started = performance.now();
  const runs = await pooled(sandboxes, CONCURRENCY, run);
  const wallMs = performance.now() - started;
  const chainCpuMs = (childrenCpu().total - cpuBefore) / sandboxes.length;
  const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
  const failures = runs.flatMap((r, i) =>
    r.code === 0 ? [] : [`${sandboxes[i].pod.name}: ${r.stdout.trim()}`]
  );
  return {
    wallMs,
    podsPerSec: (sandboxes.length * 1000) / wallMs,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    chainCpuMs,
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
    allocWaitSeconds: 0,
    allocWaits: 0,
    releaseWaitSeconds: 0,
    releaseWaits: 0,
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
    sum.allocWaitSeconds += m.get("spiderpool_ipam_allocation_limit_duration_seconds_sum") ?? 0;
    sum.allocWaits += m.get("spiderpool_ipam_allocation_limit_duration_seconds_count") ?? 0;
    sum.releaseWaitSeconds += m.get("spiderpool_ipam_release_limit_duration_seconds_sum") ?? 0;
    sum.releaseWaits += m.get("spiderpool_ipam_release_limit_duration_seconds_count") ?? 0;
  }
  return sum;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds of a process so far (utime + stime from /proc/PID/stat); 0 when it is gone. */
async function processCpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** Peak and current resident set of a process, MiB (VmHWM, VmRSS). */
async function processMemory(pid: number): Promise<{ peakMiB: number; rssMiB: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  const kib = (key: string) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return { peakMiB: kib("VmHWM") / 1024, rssMiB: kib("VmRSS") / 1024 };
}

async function agentsCpuSeconds(nodes: SimNode[]): Promise<number> {
  let sum = 0;
  for (const n of nodes) sum += await processCpuSeconds(n.agent.pid);
  return sum;
}

/** The API server's request counters (`VERB resource[/sub] code`) for the resources IPAM touches, and its CPU. */
async function apiserver(http: KubeHttp): Promise<{ requests: Map<string, number>; cpuSeconds: number }> {
  const { body } = await http.get<string>("/metrics", { accept: "text/plain" });
  const requests = new Map<string, number>();
  let cpuSeconds = NaN;
  for (const line of String(body).split("\n")) {
    if (line.startsWith("process_cpu_seconds_total ")) cpuSeconds = Number(line.split(" ")[1]);
    if (!line.startsWith("apiserver_request_total{")) continue;
    const label = (k: string) => line.match(new RegExp(`[{,]${k}="([^"]*)"`))?.[1] ?? "";
    const resource = label("resource");
    if (!["spiderippools", "spiderendpoints", "pods", "nodes", "namespaces"].includes(resource)) continue;
    const sub = label("subresource") ? `/${label("subresource")}` : "";
    const key = `${label("verb")} ${resource}${sub} ${label("code")}`;
    requests.set(key, (requests.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return { requests, cpuSeconds };
}

function diff(after: Map<string, number>, before: Map<string, number>): [string, number][] {
  return [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as [string, number])
    .filter(([, v]) => v > 0).sort();
}

/** CPU of `ip netns exec NS true`: what the simulated runtime adds to every chain (a real one calls bridge directly). */
async function netnsExecCpuMs(netns: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 10; i++) {
    const before = childrenCpu().total;
    await new Deno.Command("ip", { args: ["netns", "exec", netns, "true"], stdout: "null", stderr: "null" })
      .output();
    samples.push(childrenCpu().total - before);
  }
  return samples.sort((a, b) => a - b)[5];
}

const fmt = (n: number, digits = 1) => Number.isFinite(n) ? n.toFixed(digits) : "-";

interface ScenarioResult {
  pods: number;
  agents: number;
  add: Burst;
  del: Burst;
  hlAdd: Burst;
  hlDel: Burst;
  agentPeakMiB: number;
  apiPerAdd: number;
  apiPerDel: number;
  apiserverCpuPerPodMs: [number, number];
  agentCpuPerPodMs: [number, number];
  netnsExecMs: number;
  leftovers: number;
}

async function scenario(PODS: number, AGENTS: number): Promise<ScenarioResult> {
  if (AGENTS > 16) {
    throw new Error(`--agents ${AGENTS}: at most 16 (host-local gets a /20 of 198.19.0.0/16 each)`);
  }
  if (PODS > 4000) throw new Error(`--pods ${PODS}: at most 4000 (the pool spans 198.18.0.10-198.18.15.254)`);
  await using env = await e2e("bench-ipam");
  const { http, namespace } = env;
  console.log(
    `\nIPAM benchmark: ${PODS} pods, ${AGENTS} agents, ${CONCURRENCY} CNI calls at a time; build ${DIST}; ` +
      `load average ${Deno.loadavg().map((l) => l.toFixed(1)).join(" ")}`,
  );
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
  const netnsExecMs = await netnsExecCpuMs(nodes[0].netns);

  // --- spiderpool: ADD burst ---
  const m0 = await agentCounters(nodes);
  const r0 = await apiserver(http);
  const c0 = await agentsCpuSeconds(nodes);
  const add = await burst(sandboxes, (sb) => env.add(sb));
  const c1 = await agentsCpuSeconds(nodes);
  const m1 = await agentCounters(nodes);
  const r1 = await apiserver(http);
  const given = new Set(add.runs.flatMap(resultAddresses));
  const recorded = Object.keys(await poolRecords(http, pool)).length;
  const consistency = await consistencyProblems(http, namespace, [pool]);

  // --- spiderpool: DEL burst (the pods are being deleted, as when a kubelet tears them down) ---
  await pooled(sandboxes, 8, (sb) => http.delete(`/api/v1/namespaces/${namespace}/pods/${sb.pod.name}`));
  const m1d = await agentCounters(nodes);
  const r1d = await apiserver(http);
  const c1d = await agentsCpuSeconds(nodes);
  const del = await burst(sandboxes, (sb) => env.del(sb));
  const c2 = await agentsCpuSeconds(nodes);
  const m2 = await agentCounters(nodes);
  const r2 = await apiserver(http);
  const leftRecords = Object.keys(await poolRecords(http, pool)).length;
  const leftFinalizers =
    (await listEndpoints(http, namespace)).filter((e) => e.metadata.finalizers?.length).length;
  const memory = await Promise.all(nodes.map((n) => processMemory(n.agent.pid)));
  const agentPeakMiB = Math.max(...memory.map((m) => m.peakMiB));

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

  const rows: string[][] = [
    ["", "pods/s", "p50 ms", "p99 ms", "chain CPU ms", "failed"],
    ...([["spiderpool ADD", add], ["spiderpool DEL", del], ["host-local ADD", hlAdd], [
      "host-local DEL",
      hlDel,
    ]] as [string, Burst][]).map(([name, b]) => [
      name,
      fmt(b.podsPerSec),
      fmt(b.p50, 0),
      fmt(b.p99, 0),
      fmt(b.chainCpuMs),
      `${b.failures.length}`,
    ]),
  ];
  console.log();
  for (const r of rows) console.log(`${r[0].padEnd(16)}${r.slice(1).map((c) => c.padStart(13)).join("")}`);
  console.log();
  console.log(
    `spiderpool / host-local: ADD throughput ×${fmt(add.podsPerSec / hlAdd.podsPerSec, 2)}, ` +
      `ADD p50 ×${fmt(add.p50 / hlAdd.p50, 2)}, p99 ×${fmt(add.p99 / hlAdd.p99, 2)}; ` +
      `DEL throughput ×${fmt(del.podsPerSec / hlDel.podsPerSec, 2)}; ` +
      `chain CPU ADD ×${fmt(add.chainCpuMs / hlAdd.chainCpuMs, 2)}, DEL ×${
        fmt(del.chainCpuMs / hlDel.chainCpuMs, 2)
      }`,
  );
  console.log(
    `chain CPU includes the simulated runtime's \`ip netns exec\` (${
      fmt(netnsExecMs)
    } ms per call, both chains); ` +
      `ours minus host-local's: ADD ${fmt(add.chainCpuMs - hlAdd.chainCpuMs)} ms, ` +
      `DEL ${fmt(del.chainCpuMs - hlDel.chainCpuMs)} ms`,
  );
  const perPodMs = (secs: number) => (secs * 1000) / PODS;
  const agentCpuPerPodMs: [number, number] = [perPodMs(c1 - c0), perPodMs(c2 - c1d)];
  const apiserverCpuPerPodMs: [number, number] = [
    perPodMs(r1.cpuSeconds - r0.cpuSeconds),
    perPodMs(r2.cpuSeconds - r1d.cpuSeconds),
  ];
  console.log(
    `CPU per pod elsewhere: agents ADD ${fmt(agentCpuPerPodMs[0])} ms, DEL ${fmt(agentCpuPerPodMs[1])} ms; ` +
      `kube-apiserver ADD ${fmt(apiserverCpuPerPodMs[0])} ms, DEL ${fmt(apiserverCpuPerPodMs[1])} ms`,
  );
  console.log(
    `agent memory: peak RSS ${memory.map((m) => fmt(m.peakMiB, 0)).join(", ")} MiB, ` +
      `now ${memory.map((m) => fmt(m.rssMiB, 0)).join(", ")} MiB`,
  );
  const addWrites = (m1.poolWrites - m0.poolWrites) + (m1.endpointWrites - m0.endpointWrites);
  const delWrites = (m2.poolWrites - m1d.poolWrites) + (m2.endpointWrites - m1d.endpointWrites);
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
    } ms, DEL ${avgMs(m2.releaseSeconds - m1d.releaseSeconds, m2.releases - m1d.releases)} ms; ` +
      `of which waiting for the pool's committer (mean per pool request): ADD ${
        avgMs(m1.allocWaitSeconds - m0.allocWaitSeconds, m1.allocWaits - m0.allocWaits)
      } ms, DEL ${
        avgMs(m2.releaseWaitSeconds - m1d.releaseWaitSeconds, m2.releaseWaits - m1d.releaseWaits)
      } ms`,
  );
  const addRequests = diff(r1.requests, r0.requests);
  const delRequests = diff(r2.requests, r1d.requests);
  const total = (d: [string, number][]) => d.reduce((s, [, v]) => s + v, 0) / PODS;
  console.log(
    `API server requests per ADD (apiserver_request_total, all clients): ${fmt(total(addRequests), 2)}`,
  );
  for (const [k, v] of addRequests) console.log(`  ${k.padEnd(44)}${fmt(v / PODS, 2).padStart(7)}`);
  console.log(`API server requests per DEL: ${fmt(total(delRequests), 2)}`);
  for (const [k, v] of delRequests) console.log(`  ${k.padEnd(44)}${fmt(v / PODS, 2).padStart(7)}`);
  console.log(
    `correctness: after ADD ${given.size} distinct addresses for ${PODS} pods, ${recorded} pool records, ` +
      `${consistency.length} record/endpoint mismatches; after DEL ${leftRecords} records and ` +
      `${leftFinalizers} endpoint finalizers left`,
  );
  for (const f of [...add.failures, ...del.failures, ...hlAdd.failures, ...hlDel.failures].slice(0, 5)) {
    console.log(`  failure: ${f.slice(0, 300)}`);
  }
  for (const p of consistency.slice(0, 5)) console.log(`  mismatch: ${p}`);
  return {
    pods: PODS,
    agents: AGENTS,
    add,
    del,
    hlAdd,
    hlDel,
    agentPeakMiB,
    apiPerAdd: total(addRequests),
    apiPerDel: total(delRequests),
    apiserverCpuPerPodMs,
    agentCpuPerPodMs,
    netnsExecMs,
    leftovers: leftRecords + leftFinalizers,
  };
}

/** One line per scenario, so that growth with pods and with nodes reads down a column. */
function summary(results: ScenarioResult[]): void {
  console.log("\nscale summary (ours, and host-local in the same run):");
  const head = [
    "pods",
    "nodes",
    "ADD/s",
    "hl ADD/s",
    "DEL/s",
    "hl DEL/s",
    "ADD p50",
    "ADD p99",
    "DEL p99",
    "API/ADD",
    "API/DEL",
    "chain CPU",
    "agent CPU",
    "apisrv CPU",
    "agent MiB",
    "failed",
    "left",
  ];
  console.log(head.map((h, i) => i < 2 ? h.padStart(6) : h.padStart(11)).join(""));
  for (const r of results) {
    const cells = [
      `${r.pods}`,
      `${r.agents}`,
      fmt(r.add.podsPerSec),
      fmt(r.hlAdd.podsPerSec),
      fmt(r.del.podsPerSec),
      fmt(r.hlDel.podsPerSec),
      fmt(r.add.p50, 0),
      fmt(r.add.p99, 0),
      fmt(r.del.p99, 0),
      fmt(r.apiPerAdd, 2),
      fmt(r.apiPerDel, 2),
      `${fmt(r.add.chainCpuMs, 0)}/${fmt(r.del.chainCpuMs, 0)}`,
      `${fmt(r.agentCpuPerPodMs[0], 0)}/${fmt(r.agentCpuPerPodMs[1], 0)}`,
      `${fmt(r.apiserverCpuPerPodMs[0], 0)}/${fmt(r.apiserverCpuPerPodMs[1], 0)}`,
      fmt(r.agentPeakMiB, 0),
      `${r.add.failures.length + r.del.failures.length}`,
      `${r.leftovers}`,
    ];
    console.log(cells.map((c, i) => i < 2 ? c.padStart(6) : c.padStart(11)).join(""));
  }
  console.log(
    "(latencies in ms; API requests per pod from apiserver_request_total; CPU in ms per pod, ADD/DEL: chain = " +
      "every process of the CNI call, agent = all agents, apisrv = kube-apiserver; agent MiB = highest peak RSS)",
  );
}

async function main(): Promise<void> {
  if (values.scale) {
    // Spiderpool's published scenario is 1,000 pods over 10 nodes; the other three show what grows with what.
    const results: ScenarioResult[] = [];
    for (const [pods, agents] of [[100, 1], [100, 10], [1000, 1], [1000, 10]]) {
      results.push(await scenario(pods, agents));
    }
    summary(results);
  } else {
    summary([await scenario(positive("--pods", values.pods), positive("--agents", values.agents))]);
  }
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
