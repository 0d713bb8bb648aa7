// Benchmark: IP GC scan-all over 10,000 pool records in a real control plane. Four pools of 2,500 records
// each; first every record's pod exists (nothing to release: the cost of reading and deciding), then every
// pod is gone (10,000 releases through the group committer). Reference measured in the same run: the four
// LISTs a scan starts from, alone.
//
//   deno task bench:gc    (or: scripts/bench.sh gc)

import { Registry } from "prom-client";
import { encodeAllocatedIPs } from "../../src/api/allocated.ts";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { defaultGcConfig, IpGc } from "../../src/controller/gc/mod.ts";
import { GcKube } from "../../src/controller/gc/kube.ts";
import type { KubeHttp, RequestOptions } from "../../src/kube/client.ts";
import { testScope } from "../kube/harness.ts";

const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
const RECORDS = Number(Deno.env.get("GC_BENCH_RECORDS") ?? 10_000);
const PER_POOL = 2_500;

async function eachLimited<T>(items: T[], limit: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

// Every API call the GC makes, by verb and kind of object, with the time spent waiting for it: where a scan's
// time goes.
const calls = new Map<string, { n: number; ms: number }>();

/** `http` with every request counted in `calls`. */
function counting(http: KubeHttp): KubeHttp {
  const counted = Object.create(http) as KubeHttp;
  counted.request = async function <T>(method: string, path: string, opts?: RequestOptions) {
    const t = performance.now();
    try {
      return await http.request<T>(method, path, opts);
    } finally {
      const key = callKind(method, path);
      const c = calls.get(key) ?? { n: 0, ms: 0 };
      c.n++;
      c.ms += performance.now() - t;
      calls.set(key, c);
    }
  };
  return counted;
}

/** `GET pods (one)`, `PUT spiderippools/status`, `GET pods (list)`, ... */
function callKind(method: string, path: string): string {
  const parts = path.split("?")[0].split("/").filter((x) => x);
  const at = parts.findIndex((x, i) => i > 0 && (parts[i - 1] === "namespaces" ? false : isResource(x)));
  const resource = parts[at] ?? path;
  const rest = parts.slice(at + 1);
  const what = rest.length === 0
    ? "(collection)"
    : rest.length === 1
    ? "(one)"
    : `/${rest.slice(1).join("/")}`;
  return `${method} ${resource} ${what}`;
}

function isResource(x: string): boolean {
  return ["pods", "nodes", "events", PLURAL.ippool, PLURAL.endpoint, "statefulsets"].includes(x);
}

function printCalls(title: string): void {
  console.log(`  API calls of ${title} (count, summed wait):`);
  for (const [k, c] of [...calls].sort((a, b) => b[1].ms - a[1].ms)) {
    console.log(`    ${k.padEnd(36)} ${String(c.n).padStart(6)}  ${(c.ms / 1000).toFixed(1).padStart(7)} s`);
  }
  calls.clear();
}

async function run(): Promise<void> {
  await using scope = await testScope("gc-bench");
  const { http, kc } = scope.cluster;
  const ns = scope.namespace;
  const pools = Math.ceil(RECORDS / PER_POOL);
  console.log(`creating ${RECORDS} pods in ${ns} ...`);
  const t0 = performance.now();
  const uids: string[] = new Array(RECORDS);
  await eachLimited([...Array(RECORDS).keys()], 32, async (i) => {
    const { body } = await http.post<{ metadata: { uid: string } }>(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: `p${i}` },
      spec: { containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
    });
    uids[i] = body.metadata.uid;
  });
  console.log(`  ${Math.round(performance.now() - t0)} ms`);

  // 198.18.0.0/15 (benchmark range): pool k holds 198.18.(16k).0/20, records for pods k*2500 ... k*2500+2499.
  const names: string[] = [];
  for (let k = 0; k < pools; k++) {
    const name = scope.name(`p${k}`);
    names.push(name);
    const base = 16 * k;
    await http.post(POOLS, {
      apiVersion: API_VERSION,
      kind: "SpiderIPPool",
      metadata: { name },
      spec: {
        ipVersion: 4,
        subnet: `198.18.${base}.0/20`,
        ips: [`198.18.${base}.1-198.18.${base + 15}.254`],
      },
    });
    scope.track(`${POOLS}/${name}`);
    const records: Record<string, { pod: string; podUid: string }> = {};
    for (let j = 0; j < PER_POOL && k * PER_POOL + j < RECORDS; j++) {
      const i = k * PER_POOL + j;
      records[`198.18.${base + Math.floor((j + 1) / 256)}.${(j + 1) % 256}`] = {
        pod: `${ns}/p${i}`,
        podUid: uids[i],
      };
    }
    const { body } = await http.get<SpiderIPPool>(`${POOLS}/${name}`);
    await http.put(`${POOLS}/${name}/status`, {
      ...body,
      status: { allocatedIPs: encodeAllocatedIPs(records), allocatedIPCount: Object.keys(records).length },
    });
  }

  const gc = new IpGc({
    http: counting(http),
    kubeConfig: kc,
    config: { ...defaultGcConfig(), unconfirmedGraceMs: 0, requestGapMs: 0 },
    isLeader: () => false,
    registry: new Registry(),
    log: () => {},
  });
  const kube = new GcKube(http);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  const lists: number[] = [];
  const keeps: number[] = [];
  for (let round = 0; round < 3; round++) {
    let t = performance.now();
    await Promise.all([kube.listPools(), kube.listPods(), kube.listEndpoints(), kube.listNodes()]);
    lists.push(performance.now() - t);
    t = performance.now();
    const r = await gc.scanAll("request");
    keeps.push(performance.now() - t);
    if (r.released.length !== 0 || r.records < RECORDS) {
      throw new Error(`healthy scan: released ${r.released.length}, saw ${r.records} records`);
    }
  }
  calls.clear();

  const f = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`\nIP GC scan-all, ${RECORDS} records in ${pools} pools (median of 3 rounds)`);
  console.log(`  the scan's four LISTs alone (reference):        ${f(median(lists))}`);
  console.log(
    `  scan-all, every pod alive (nothing released):   ${f(median(keeps))}  (${
      (median(keeps) / median(lists)).toFixed(2)
    }× the LISTs)`,
  );

  // Deleting 10,000 pods in one call takes the API server longer than a request's default deadline.
  await http.delete(`/api/v1/namespaces/${ns}/pods`, { gracePeriodSeconds: 0 }, { timeoutMs: 600_000 });
  const tr = performance.now();
  const report = await gc.scanAll("request");
  const releaseMs = performance.now() - tr;
  const left = (await Promise.all(names.map((n) => kube.getPool(n)))).reduce(
    (a, p) => a + (p.status?.allocatedIPCount ?? 0),
    0,
  );
  await gc.stop();

  console.log(
    `  scan-all, every pod gone (${report.released.length} released):     ${f(releaseMs)}  (${
      (RECORDS / (releaseMs / 1000)).toFixed(0)
    } records/s, ${(releaseMs / median(keeps)).toFixed(1)}× the healthy scan, ${left} left)`,
  );
  printCalls("the releasing scan");
  if (report.errors.length) console.log(`  errors: ${report.errors.slice(0, 3).join("; ")}`);
}

try {
  await run();
} catch (err) {
  console.error(err);
  Deno.exitCode = 1;
}
// The control plane's processes would keep this process alive; exiting stops them.
Deno.exit();
