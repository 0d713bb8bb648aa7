// The agent's Prometheus writer (src/agent/exposition.ts) against prom-client, which it replaced in the agent
// and which the controller still uses: the same metrics and the same operations must give byte-identical
// exposition text, and the agent's metric names and types are those it always exposed.

import assert from "node:assert/strict";
import * as prom from "prom-client";
import * as ours from "../../src/agent/exposition.ts";
import { AgentMetrics } from "../../src/agent/metrics.ts";

/** A tiny deterministic generator, so that a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

type Op =
  | { m: number; kind: "inc"; labels?: Record<string, string>; by?: number }
  | { m: number; kind: "set"; labels?: Record<string, string>; v: number }
  | { m: number; kind: "dec"; labels?: Record<string, string>; by?: number }
  | { m: number; kind: "observe"; labels?: Record<string, string>; v: number };

interface Def {
  type: "counter" | "gauge" | "histogram";
  name: string;
  help: string;
  labelNames: string[];
  buckets?: number[];
}

const DEFS: Def[] = [
  { type: "counter", name: "c_plain_total", help: "a counter", labelNames: [] },
  {
    type: "counter",
    name: "c_labels_total",
    help: 'two labels, help with \\ and\nnewline and "quotes"',
    labelNames: ["kind", "pool"],
  },
  { type: "gauge", name: "g_plain", help: "a gauge", labelNames: [] },
  { type: "gauge", name: "g_labels", help: "labelled gauge", labelNames: ["nic"] },
  {
    type: "histogram",
    name: "h_plain_seconds",
    help: "a histogram",
    labelNames: [],
    buckets: [0.1, 0.3, 1, 5],
  },
  {
    type: "histogram",
    name: "h_labels_seconds",
    help: "labelled histogram",
    labelNames: ["verb"],
    buckets: [0.005, 0.5, 2.5],
  },
  { type: "counter", name: "c_never_total", help: "labelled, never used", labelNames: ["x"] },
];

const LABEL_VALUES = ["a", "b", 'quote"d', "back\\slash", "new\nline", ""];
const NUMBERS = [0, 1, 0.1, 0.25, 2.5, 1e-7, 123456789.125, 3, 7.75, 1 / 3];

function randomOps(seed: number, count: number): Op[] {
  const r = rng(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    const m = Math.floor(r() * (DEFS.length - 1));
    const def = DEFS[m];
    let labels: Record<string, string> | undefined;
    if (def.labelNames.length > 0) {
      // Keys in a random order: the first order seen is the output order.
      const names = r() < 0.5 ? def.labelNames : [...def.labelNames].reverse();
      labels = Object.fromEntries(names.map((n) => [n, pick(LABEL_VALUES)]));
    }
    if (def.type === "counter") {
      ops.push({ m, kind: "inc", labels, by: r() < 0.5 ? undefined : pick(NUMBERS) });
    } else if (def.type === "histogram") {
      ops.push({ m, kind: "observe", labels, v: pick(NUMBERS) * (r() * 10) });
    } else {
      const roll = r();
      if (roll < 0.4) {
        ops.push({ m, kind: "set", labels, v: pick([...NUMBERS, -2.5, Infinity, -Infinity, NaN]) });
      } else if (roll < 0.7) ops.push({ m, kind: "inc", labels, by: pick(NUMBERS) });
      else ops.push({ m, kind: "dec", labels, by: pick(NUMBERS) });
    }
  }
  return ops;
}

// deno-lint-ignore no-explicit-any
type AnyMetric = any;

async function promText(ops: Op[]): Promise<string> {
  const registry = new prom.Registry();
  const metrics: AnyMetric[] = DEFS.map((d) => {
    const base = { name: d.name, help: d.help, labelNames: d.labelNames, registers: [registry] };
    if (d.type === "counter") return new prom.Counter(base);
    if (d.type === "gauge") return new prom.Gauge(base);
    return new prom.Histogram({ ...base, buckets: d.buckets });
  });
  apply(metrics, ops);
  return await registry.metrics();
}

function oursText(ops: Op[]): string {
  const registry = new ours.Registry();
  const metrics: AnyMetric[] = DEFS.map((d) => {
    const base = { name: d.name, help: d.help, labelNames: d.labelNames, registers: [registry] };
    if (d.type === "counter") return new ours.Counter(base);
    if (d.type === "gauge") return new ours.Gauge(base);
    return new ours.Histogram({ ...base, buckets: d.buckets! });
  });
  apply(metrics, ops);
  return registry.metrics();
}

function apply(metrics: AnyMetric[], ops: Op[]): void {
  for (const op of ops) {
    const m = metrics[op.m];
    const args = (x: number | undefined) =>
      op.labels ? (x === undefined ? [op.labels] : [op.labels, x]) : (x === undefined ? [] : [x]);
    if (op.kind === "inc") m.inc(...args(op.by));
    else if (op.kind === "dec") m.dec(...args(op.by));
    else if (op.kind === "set") m.set(...args(op.v));
    else m.observe(...args(op.v));
  }
}

Deno.test("the exposition of unused metrics is prom-client's, byte for byte", async () => {
  assert.equal(oursText([]), await promText([]));
});

for (const seed of [1, 2, 3, 42, 1234]) {
  Deno.test(`the exposition after 300 random operations (seed ${seed}) is prom-client's, byte for byte`, async () => {
    const ops = randomOps(seed, 300);
    assert.equal(oursText(ops), await promText(ops));
  });
}

Deno.test("the content type is prom-client's", () => {
  assert.equal(new ours.Registry().contentType, new prom.Registry().contentType);
});

Deno.test("a label the metric does not declare, a negative counter increment and a non-finite observation throw", () => {
  const registry = new ours.Registry();
  const c = new ours.Counter({ name: "x_total", help: "x", labelNames: ["kind"], registers: [registry] });
  assert.throws(() => c.inc({ other: "a" }), /has no label "other"/);
  assert.throws(() => c.inc({ kind: "a" }, -1), /cannot be increased by -1/);
  const h = new ours.Histogram({ name: "h", help: "h", buckets: [1], registers: [registry] });
  assert.throws(() => h.observe(NaN), /not a number/);
  assert.throws(
    () => new ours.Gauge({ name: "x_total", help: "dup", registers: [registry] }),
    /already registered/,
  );
});

/** The agent's series as it exposed them with prom-client (names and types must not change). */
const AGENT_TYPES = [
  ...[
    "allocation_counts",
    "allocation_failure_counts",
    "allocation_update_ippool_conflict_counts",
    "allocation_err_internal_counts",
    "allocation_err_no_available_pool_counts",
    "allocation_err_retries_exhausted_counts",
    "allocation_err_ip_used_out_counts",
    "release_counts",
    "release_failure_counts",
    "release_update_ippool_conflict_counts",
    "release_err_internal_counts",
    "release_err_retries_exhausted_counts",
  ].map((n) => `spiderpool_ipam_${n}_total counter`),
  ...["allocation_", "allocation_limit_", "release_", "release_limit_"].flatMap((p) => {
    const [verb, limit] = p.split("_");
    const what = limit === "limit" ? "limit_duration" : "duration";
    return [
      ...["average", "max", "min", "latest"].map((s) => `spiderpool_ipam_${verb}_${s}_${what}_seconds gauge`),
      `spiderpool_ipam_${verb}_${what}_seconds histogram`,
    ];
  }),
  "spiderpool_agent_api_writes_total counter",
];

Deno.test("the agent exposes the metric names and types it exposed with prom-client", () => {
  const m = new AgentMetrics();
  m.allocationDuration.observe(0.2);
  m.poolStatusWritten();
  const types = m.registry.metrics().split("\n").filter((l) => l.startsWith("# TYPE ")).map((l) =>
    l.slice(7)
  );
  assert.deepEqual(types, AGENT_TYPES);
  assert.match(m.registry.metrics(), /^spiderpool_agent_api_writes_total\{kind="ippool_status"\} 1$/m);
  assert.match(m.registry.metrics(), /^spiderpool_ipam_allocation_duration_seconds_bucket\{le="0.3"\} 1$/m);
});
