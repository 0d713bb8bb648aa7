// The short fault-injection run of the normal suite (the long one is `deno task bench:chaos`): 5 simulated
// nodes with real agents, 2 controller replicas with the IP GC, a few hundred CNI operations through the real
// plugin while agents are SIGKILLed and SIGSTOPped, the leader is SIGKILLed and etcd is paused. No address may
// be held by two live pods, and once the operations stop, every record and SpiderEndpoint must be reclaimed.

import assert from "node:assert/strict";
import { kubeTest } from "../kube/harness.ts";
import { formatChaos, runChaos } from "./world.ts";

kubeTest(
  "chaos: 5 agents, 2 controllers, churn with agent and leader SIGKILLs, SIGSTOP and etcd pauses: no duplicate, no leak, no crash",
  async () => {
    const report = await runChaos({
      nodes: 5,
      ops: Number(Deno.env.get("SPIDERPOOL_CHAOS_OPS") ?? 300),
      concurrency: 5,
      poolSize: 8,
      faultEveryMs: 3_000,
      faults: ["agent-kill", "agent-stop", "leader-kill", "etcd-pause"],
      reclaimTimeoutMs: 120_000,
      gcEnv: {
        SPIDERPOOL_GC_TRACE_POD_GAP_DURATION: "0.5",
        SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION: "10",
        SPIDERPOOL_GC_UNCONFIRMED_RECORD_GRACE_DURATION: "5",
      },
      log: (m) => console.log(`chaos: ${m}`),
    });
    console.log(formatChaos(report));
    assert.deepEqual(report.duplicates, []);
    assert.deepEqual(report.leaks, { records: 0, endpoints: 0, finalizers: 0, countMismatch: 0 });
    assert.deepEqual(report.crashes, []);
    assert.ok(report.ops >= 300 || Deno.env.get("SPIDERPOOL_CHAOS_OPS"), `${report.ops} operations`);
    const injected = Object.values(report.faults).reduce((a, b) => a + b, 0);
    assert.ok(injected >= 3, `${injected} faults injected`);
    assert.ok(report.forceDeletes > 0, "some pods were force-deleted without a DEL");
  },
);
