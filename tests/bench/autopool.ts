// Benchmark of the application controller on a real control plane with the real admission webhooks: the time
// from scaling a Deployment (a PATCH of spec.replicas, what `kubectl scale` sends) until its auto-pool has the
// new size, seen by a watch on SpiderIPPools — for one application scaled ten times (grow and shrink) and for
// 20 applications of one subnet scaled at once, five rounds. References measured in the same run: the time
// from the same PATCH until a watch on Deployments shows it (the floor for any controller reacting to a
// scale), and from a hand-made PATCH of an ordinary pool's spec.ips (admitted by the same webhook) until the
// pool watch shows it (the floor for one pool write; a resize makes two writes, subnet status then pool).
// Usage: deno run -A tests/bench/autopool.ts [--rounds 5]   (uses $SPIDERPOOL_TEST_KUBECONFIG when set)

import { parseArgs } from "node:util";
import type { SpiderIPPool } from "../../src/api/types.ts";
import type { AppObject } from "../../src/ipam/autopool.ts";
import { ResourceCache } from "../../src/kube/cache.ts";
import { autoPoolWorld, deployment, POOLS, size, subnetAnnotation } from "../autopool/world.ts";
import { randomSubnets } from "../controller/webhook_harness.ts";

/** Resolves `waiters` as cache events arrive, with the arrival time. */
class Watcher<T extends { metadata?: { name?: string } }> {
  readonly #waiters = new Set<{ test: (o: T) => boolean; resolve: (t: number) => void }>();
  constructor(readonly cache: ResourceCache<T>) {
    cache.onChange((o, deleted) => {
      if (deleted) return;
      const t = performance.now();
      for (const w of [...this.#waiters]) {
        if (w.test(o)) {
          this.#waiters.delete(w);
          w.resolve(t);
        }
      }
    });
  }

  /** The time the first event (or the current cached object) satisfying `test` was seen. */
  until(test: (o: T) => boolean, what: string, timeoutMs = 120_000): Promise<number> {
    const now = this.cache.list().find(test);
    if (now) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const w = { test, resolve: (t: number) => (clearTimeout(timer), resolve(t)) };
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      this.#waiters.add(w);
    });
  }
}

function stats(xs: number[]): { median: number; p90: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: at(0.5), p90: at(0.9), max: s[s.length - 1] };
}

const ms = (x: number) => `${x.toFixed(0)} ms`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: { rounds: { type: "string", default: "5" } },
  });
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) throw new Error(`--rounds must be 1-50`);
  await using w = await autoPoolWorld("bench-ap");
  const { kc } = w.scope.cluster;
  const subnet = await w.subnet("s", 240);
  const pools = new Watcher(new ResourceCache<SpiderIPPool>(kc, w.http, { path: POOLS, log: () => {} }));
  const deps = `/apis/apps/v1/namespaces/${w.namespace}/deployments`;
  const apps = new Watcher(new ResourceCache<AppObject>(kc, w.http, { path: deps, log: () => {} }));
  for (const c of [pools.cache, apps.cache]) c.start();
  await Promise.all([pools.cache.synced, apps.cache.synced]);
  const poolOf = (name: string) => (p: SpiderIPPool) =>
    p.metadata.labels?.["ipam.spidernet.io/owner-application-name"] === name &&
    p.metadata.labels?.["ipam.spidernet.io/owner-application-namespace"] === w.namespace;

  /** PATCHes the replicas of each app at once; per app: ms until the watch shows the Deployment and the pool. */
  async function scaleAll(
    targets: [string, number][],
  ): Promise<{ ref: number[]; pool: number[]; all: number }> {
    const t0 = performance.now();
    const seen = targets.map(([name, n]) => ({
      app: apps.until(
        (d) => d.metadata.name === name && d.spec?.replicas === n,
        `Deployment ${name} at ${n}`,
      ),
      pool: pools.until((p) => poolOf(name)(p) && size(p) === n + 1, `the pool of ${name} at ${n + 1} IPs`),
    }));
    await Promise.all(
      targets.map(([name, n]) => w.http.patch(`${deps}/${name}`, { spec: { replicas: n } }, "merge")),
    );
    const ref = await Promise.all(seen.map((s) => s.app));
    const pool = await Promise.all(seen.map((s) => s.pool));
    return { ref: ref.map((t) => t - t0), pool: pool.map((t) => t - t0), all: Math.max(...pool) - t0 };
  }

  try {
    // One application, scaled up and down.
    await w.http.post(deps, deployment("solo", 1, subnetAnnotation(subnet.name)));
    await pools.until((p) => poolOf("solo")(p) && size(p) === 2, "the solo pool");
    await w.apps.settled();
    const soloRef: number[] = [];
    const soloPool: number[] = [];
    const writes0 = w.apps.metrics.counted.writes;
    const sequence = [4, 2, 6, 3, 8, 1, 5, 2, 7, 3];
    for (const n of sequence) {
      const r = await scaleAll([["solo", n]]);
      soloRef.push(r.ref[0]);
      soloPool.push(r.pool[0]);
      await w.apps.settled();
    }
    const soloWrites = (w.apps.metrics.counted.writes - writes0) / sequence.length;

    // Twenty applications of one subnet, scaled at once.
    const names = Array.from({ length: 20 }, (_, i) => `app${i}`);
    await Promise.all(names.map((n) => w.http.post(deps, deployment(n, 1, subnetAnnotation(subnet.name)))));
    await Promise.all(
      names.map((n) => pools.until((p) => poolOf(n)(p) && size(p) === 2, `the pool of ${n}`)),
    );
    await w.apps.settled();
    const manyRef: number[] = [];
    const manyPool: number[] = [];
    const totals: number[] = [];
    const before = { ...w.apps.metrics.counted };
    for (let r = 0; r < rounds; r++) {
      const targets = names.map((n, i): [string, number] => [n, 1 + ((i * 3 + r * 5) % 8)]);
      const res = await scaleAll(targets);
      manyRef.push(...res.ref);
      manyPool.push(...res.pool);
      totals.push(res.all);
      await w.apps.settled();
    }
    const manyWrites = (w.apps.metrics.counted.writes - before.writes) / (rounds * names.length);
    const manyConflicts = w.apps.metrics.counted.conflicts - before.conflicts;

    // Reference: ordinary pools (another /24, no SpiderSubnet) resized by hand, through the same webhook.
    const plain = randomSubnets();
    const refNames = names.map((_, i) => w.scope.name(`ref${i}`));
    const ipsOf = (i: number, n: number) => [
      `${plain.v4prefix}${10 + i * 10}-${plain.v4prefix}${10 + i * 10 + n - 1}`,
    ];
    await Promise.all(refNames.map((name, i) =>
      w.set.create(POOLS, {
        apiVersion: "spiderpool.spidernet.io/v2beta1",
        kind: "SpiderIPPool",
        metadata: { name },
        spec: { subnet: plain.v4, ips: ipsOf(i, 1) },
      })
    ));
    await Promise.all(refNames.map((name) => pools.until((p) => p.metadata.name === name, `pool ${name}`)));
    const resizeRef = async (targets: [number, number][]) => {
      const t0 = performance.now();
      const seen = targets.map(([i, n]) =>
        pools.until((p) => p.metadata.name === refNames[i] && size(p) === n, `${refNames[i]} at ${n}`)
      );
      await Promise.all(
        targets.map(([i, n]) =>
          w.http.patch(`${POOLS}/${refNames[i]}`, { spec: { ips: ipsOf(i, n) } }, "merge")
        ),
      );
      return (await Promise.all(seen)).map((t) => t - t0);
    };
    const refOne: number[] = [];
    for (const n of [2, 1, 3, 1, 4, 2, 5, 1, 3, 2]) refOne.push(...await resizeRef([[0, n]]));
    const refMany: number[] = [];
    for (let r = 0; r < rounds; r++) {
      refMany.push(...await resizeRef(names.map((_, i): [number, number] => [i, 1 + ((i * 3 + r * 5) % 8)])));
    }

    const version = (await w.http.get<{ gitVersion: string }>("/version")).body.gitVersion;
    console.log(
      `\nkube-apiserver ${version}, ${navigator.hardwareConcurrency} CPUs, pool writes admitted by the real ` +
        `webhook, 5 workers\n`,
    );
    const s1 = stats(soloPool);
    const r1 = stats(soloRef);
    const s20 = stats(manyPool);
    const r20 = stats(manyRef);
    const t20 = stats(totals);
    const h1 = stats(refOne);
    const h20 = stats(refMany);
    const rows = [
      [
        "case",
        "scale → pool resized (median / p90 / max)",
        "ref: scale → Deployment event",
        "ref: hand pool PATCH → pool event",
      ],
      [
        `1 application, ${sequence.length} scales`,
        `${ms(s1.median)} / ${ms(s1.p90)} / ${ms(s1.max)}`,
        ms(r1.median),
        ms(h1.median),
      ],
      [
        `20 applications at once, ${rounds} rounds (per app)`,
        `${ms(s20.median)} / ${ms(s20.p90)} / ${ms(s20.max)}`,
        ms(r20.median),
        ms(h20.median),
      ],
      [
        `20 applications at once: all 20 resized`,
        `${ms(t20.median)} / ${ms(t20.p90)} / ${ms(t20.max)}`,
        "",
        "",
      ],
    ];
    const width = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const [i, r] of rows.entries()) {
      console.log(r.map((c, j) => c.padEnd(width[j])).join("  "));
      if (i === 0) console.log(width.map((x) => "-".repeat(x)).join("  "));
    }
    console.log(
      `\nratio (median resize / median hand pool write): 1 app ${(s1.median / h1.median).toFixed(1)}, ` +
        `20 apps ${(s20.median / h20.median).toFixed(1)} (a resize is two writes: subnet status, then pool)`,
    );
    console.log(
      `API writes per resize: 1 app ${soloWrites.toFixed(2)}, 20 apps ${manyWrites.toFixed(2)} ` +
        `(${manyConflicts} answered 409 and were retried)`,
    );
  } finally {
    pools.cache.stop();
    apps.cache.stop();
  }
}

if (import.meta.main) {
  await main();
  // A control plane this process started (no $SPIDERPOOL_TEST_KUBECONFIG) keeps the event loop alive; exiting
  // runs the harness's unload handler, which stops it.
  Deno.exit(0);
}
