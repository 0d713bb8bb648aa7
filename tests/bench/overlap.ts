// Benchmark of the overlap rule's cost in the commit plan: one batch plan (planPoolBatch: decode, cache view
// over every cached pool, choose, encode) against the same plan given a cache holding only its own pool
// (the reference, timed in the same run), for 10, 100 and 1,000 cached pools of 200 records each. "status
// churn": every other pool's status changed since the last plan (new objects, same spec generation: the
// claims are remembered per generation), the common case of a busy cluster; "spec churn": every other pool's
// spec changed since (each pool's records are decoded again), the rare worst case.
// Usage: deno run -A tests/bench/overlap.ts [--min-ms 300]
import { parseArgs } from "node:util";
import { encodeAllocatedIPs } from "../../src/api/allocated.ts";
import type { SpiderIPPool } from "../../src/api/types.ts";
import { formatIP, IPRangeSet } from "../../src/ip/mod.ts";
import { planPoolBatch, type PoolOp } from "../../src/ipam/pool_ops.ts";
import { PoolClaims } from "../../src/ipam/mod.ts";

const { values } = parseArgs({ options: { "min-ms": { type: "string", default: "300" } }, strict: true });
const MIN_MS = Number(values["min-ms"]);
const RECORDS = 200;

/** Mean time of `fn` in µs over as many runs as fit in MIN_MS (at least 3, after one warm-up run). */
function time(fn: () => unknown): number {
  fn();
  let runs = 0;
  const started = performance.now();
  do {
    fn();
    runs++;
  } while (runs < 3 || performance.now() - started < MIN_MS);
  return ((performance.now() - started) * 1000) / runs;
}

/** Pool `i` of 198.18.0.0/15: 256 addresses each, the first RECORDS of them allocated. */
function pool(i: number): SpiderIPPool {
  const base = (198n << 24n) + (18n << 16n) + BigInt(i) * 256n;
  const records: Record<string, { pod: string; podUid: string }> = {};
  for (let k = 0; k < RECORDS; k++) {
    records[formatIP(4, base + BigInt(k))] = { pod: `ns/p${i}-${k}`, podUid: `u${i}-${k}` };
  }
  return {
    metadata: { name: `pool-${i}`, uid: `uid-${i}`, generation: 1 },
    spec: {
      ipVersion: 4,
      subnet: "198.18.0.0/15",
      ips: [`${formatIP(4, base)}-${formatIP(4, base + 255n)}`],
    },
    status: { allocatedIPs: encodeAllocatedIPs(records), allocatedIPCount: RECORDS },
  };
}

const ops: PoolOp[] = Array.from({ length: 8 }, (_, k) => ({
  kind: "allocate",
  requests: [{ pod: `ns/new-${k}`, podUid: `new-${k}` }],
  hold: [],
  spec: { uid: "uid-0", generation: 1 },
}));
const none = IPRangeSet.empty(4);

console.log(`one plan of 8 allocations on a pool of ${RECORDS} records (µs)`);
console.log("cached pools | alone (ref) | status churn | ratio | spec churn | ratio");
for (const n of [10, 100, 1000]) {
  const pools = Array.from({ length: n }, (_, i) => pool(i));
  const mine = pools[0];
  const claims = new PoolClaims();
  const alone = time(() =>
    planPoolBatch(mine, ops, { reservedFor: () => none, cachedPools: () => [mine], claims })
  );
  // Fresh copies of every other pool, as the watch delivers them after status writes: same generation.
  const statusChurn = time(() => {
    const copies = pools.map((p, i) => (i === 0 ? p : { ...p, metadata: { ...p.metadata } }));
    planPoolBatch(mine, ops, { reservedFor: () => none, cachedPools: () => copies, claims });
  });
  // Every other pool at a new generation: nothing is remembered.
  let generation = 1;
  const specChurn = time(() => {
    generation++;
    const copies = pools.map((p, i) => (i === 0 ? p : { ...p, metadata: { ...p.metadata, generation } }));
    planPoolBatch(mine, ops, { reservedFor: () => none, cachedPools: () => copies, claims });
  });
  const cols = [
    String(n).padStart(12),
    alone.toFixed(0).padStart(11),
    statusChurn.toFixed(0).padStart(12),
    (statusChurn / alone).toFixed(1).padStart(5),
    specChurn.toFixed(0).padStart(10),
    (specChurn / alone).toFixed(1).padStart(5),
  ];
  console.log(cols.join(" | "));
}
