// `deno task bench:chaos`: the long fault-injection run (tests/chaos/world.ts): 5 simulated nodes with real
// agents, 2 controller replicas with the IP GC, ≥ 10,000 CNI operations through the real plugin while agents
// and the leader are SIGKILLed, agents SIGSTOPped and etcd paused. Prints operations, faults, duplicates (must
// be 0), leaks (must be 0), crashes, reclaim and recovery times, and the resident memory and open descriptors
// of one agent (never killed) after warm-up and at the end. Exits 1 when a duplicate, leak or crash was seen.
// Flags: --ops N (default 10000), --nodes N (5), --concurrency N (6), --pool N (addresses, default 10).

import { parseArgs } from "node:util";
import { formatChaos, runChaos } from "../chaos/world.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    ops: { type: "string", default: "10000" },
    nodes: { type: "string", default: "5" },
    concurrency: { type: "string", default: "6" },
    pool: { type: "string", default: "10" },
  },
  strict: true,
});
// Ctrl-C ends the operations early; the run still quiesces, reports and removes what it created.
const interrupt = new AbortController();
Deno.addSignalListener("SIGINT", () => interrupt.abort());
const load = () => Deno.loadavg().map((x) => x.toFixed(2)).join(" ");
console.log(`load average before: ${load()}`);
const report = await runChaos({
  nodes: Number(values.nodes),
  ops: Number(values.ops),
  concurrency: Number(values.concurrency),
  poolSize: Number(values.pool),
  faultEveryMs: 4_000,
  faults: ["agent-kill", "agent-stop", "leader-kill", "etcd-pause"],
  reclaimTimeoutMs: 180_000,
  gcEnv: {
    SPIDERPOOL_GC_TRACE_POD_GAP_DURATION: "1",
    SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION: "20",
    SPIDERPOOL_GC_UNCONFIRMED_RECORD_GRACE_DURATION: "10",
  },
  observeAgent: true,
  signal: interrupt.signal,
  log: (m) => console.error(`chaos: ${m}`),
});
console.log(formatChaos(report));
console.log(`load average after: ${load()}`);
const l = report.leaks;
const bad = report.duplicates.length + l.records + l.endpoints + l.finalizers + l.countMismatch +
  report.crashes.length;
Deno.exit(bad === 0 ? 0 : 1);
