// Admission latency through the real API server, per kind, with and without the controller's webhooks, in the
// same run against the same kube-apiserver: one `dist/spiderpool controller` registered with an object
// selector, so labelled creates go through its mutating and validating webhooks and unlabelled ones do not.
// The two are interleaved, so load on the machine affects both alike. Then a burst of concurrent pool creates,
// where the admission ledger serialises the overlap checks.
//
//   deno task bench:admission          (or: scripts/bench.sh admission)

import { testScope } from "../kube/harness.ts";
import { API, forceDelete, startControllers } from "../controller/webhook_harness.ts";

const N = Number(Deno.env.get("BENCH_ADMISSION_N") ?? 150);
const BURST = Number(Deno.env.get("BENCH_ADMISSION_BURST") ?? 200);
const CONCURRENCY = 8;

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const fmt = (ms: number) => ms.toFixed(1).padStart(7);

async function main(): Promise<void> {
  await using scope = await testScope("bench-adm", { serviceAccount: false });
  // One replica called directly (no forwarder in between), as the API server calls a Service endpoint.
  await using set = await startControllers(scope, { routing: "per-replica" });
  const ns = scope.namespace;
  const g3 = (0x100 + crypto.getRandomValues(new Uint16Array(1))[0] % 0xfe00).toString(16);
  let seq = 0;
  const cleanup: string[] = [];

  type Make = (name: string, i: number) => { collection: string; body: Record<string, unknown> };
  const kinds: [string, Make][] = [
    ["SpiderIPPool", (name, i) => {
      const net = `2001:db8:${g3}:${(i + 1).toString(16)}::`;
      return {
        collection: `${API}/spiderippools`,
        body: {
          kind: "SpiderIPPool",
          metadata: { name },
          spec: { subnet: `${net}/64`, ips: [`${net}10-${net}ff`] },
        },
      };
    }],
    ["SpiderSubnet", (name, i) => {
      const net = `2001:db8:${g3}:${(0x8000 + i).toString(16)}::`;
      return {
        collection: `${API}/spidersubnets`,
        body: {
          kind: "SpiderSubnet",
          metadata: { name },
          spec: { subnet: `${net}/64`, ips: [`${net}10-${net}ff`] },
        },
      };
    }],
    ["SpiderReservedIP", (name, i) => {
      const net = `2001:db8:${g3}:${(0xc000 + i).toString(16)}::`;
      return {
        collection: `${API}/spiderreservedips`,
        body: { kind: "SpiderReservedIP", metadata: { name }, spec: { ips: [`${net}1-${net}9`] } },
      };
    }],
    ["SpiderCoordinator", (name) => ({
      collection: `${API}/spidercoordinators`,
      body: { kind: "SpiderCoordinator", metadata: { name }, spec: { podCIDRType: "none" } },
    })],
    ["SpiderMultusConfig", (name) => ({
      collection: `${API}/namespaces/${ns}/spidermultusconfigs`,
      body: {
        kind: "SpiderMultusConfig",
        metadata: { name, namespace: ns },
        spec: { cniType: "macvlan", macvlan: { master: ["ens192"] } },
      },
    })],
  ];

  async function create(make: Make, webhook: boolean): Promise<number> {
    const i = seq++;
    const name = `${scope.name("b")}-${i}`;
    const { collection, body } = make(name, i);
    const obj = { apiVersion: "spiderpool.spidernet.io/v2beta1", ...body };
    const sent = webhook
      ? set.labelled(obj as unknown as { metadata: { labels?: Record<string, string> } })
      : obj;
    cleanup.push(`${collection}/${name}`);
    const t0 = performance.now();
    await set.http.post(collection, sent);
    return performance.now() - t0;
  }

  console.log(`admission latency, ${N} creates per kind and mode, one at a time (ms)`);
  console.log(
    `${"kind".padEnd(20)} ${"p50 off".padStart(7)} ${"p99 off".padStart(7)} ${"p50 on".padStart(7)} ${
      "p99 on".padStart(7)
    }  p50 ratio`,
  );
  try {
    for (const [kind, make] of kinds) {
      // Warm-up: connections, caches and the first ledger write.
      for (let i = 0; i < 5; i++) await create(make, i % 2 === 0);
      const off: number[] = [];
      const on: number[] = [];
      for (let i = 0; i < N; i++) {
        off.push(await create(make, false));
        on.push(await create(make, true));
      }
      off.sort((a, b) => a - b);
      on.sort((a, b) => a - b);
      console.log(
        `${kind.padEnd(20)} ${fmt(quantile(off, 0.5))} ${fmt(quantile(off, 0.99))} ${
          fmt(quantile(on, 0.5))
        } ${fmt(quantile(on, 0.99))}  ${(quantile(on, 0.5) / quantile(off, 0.5)).toFixed(2)}×`,
      );
    }

    // A burst: CONCURRENCY creators, BURST pools each mode; with the webhook every create passes the ledger.
    const make = kinds[0][1];
    for (const webhook of [false, true]) {
      let left = BURST;
      const lat: number[] = [];
      const t0 = performance.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (left-- > 0) lat.push(await create(make, webhook));
      }));
      const secs = (performance.now() - t0) / 1000;
      lat.sort((a, b) => a - b);
      console.log(
        `burst of ${BURST} SpiderIPPools, ${CONCURRENCY} at a time, webhook ${webhook ? "on " : "off"}: ${
          (BURST / secs).toFixed(0)
        } creates/s, p50 ${quantile(lat, 0.5).toFixed(1)} ms, p99 ${quantile(lat, 0.99).toFixed(1)} ms`,
      );
    }
    const metrics = await fetch(`http://127.0.0.1:${set.replicas[0].metricsPort}/metrics`).then((r) =>
      r.text()
    );
    const conflicts =
      /^spiderpool_webhook_admission_ledger_conflict_counts_total (\d+)/m.exec(metrics)?.[1] ??
        "0";
    console.log(`admission ledger conflicts (decided again): ${conflicts}`);
  } finally {
    for (const path of cleanup) await forceDelete(set.http, path).catch(() => {});
  }
}

await main();
// A control plane this process started (no $SPIDERPOOL_TEST_KUBECONFIG) keeps the event loop alive; exiting runs
// the harness's unload handler, which stops it.
Deno.exit(0);
