// IP GC event tracing against the real control plane: only the leader watches pods; a deleted or
// terminating pod is released by the trace workers once its stop time has passed, without waiting for a scan.

import assert from "node:assert/strict";
import { kubeTest } from "../kube/harness.ts";
import { eventually, gcWorld, podsPath } from "./env.ts";
import type { IpGc } from "../../src/controller/gc/mod.ts";

/** Waits until the GC leads with a synced pod watch and its post-election scan has run. */
async function leading(gc: IpGc): Promise<void> {
  await eventually(
    "the GC to trace pods",
    () => Promise.resolve(gc.tracing && gc.ready() ? true : undefined),
  );
  await eventually(
    "the scan after the election",
    () => Promise.resolve(gc.lastReport?.trigger === "leader" ? true : undefined),
  );
}

async function counter(gc: IpGc, name: string): Promise<number> {
  const m = await gc.metrics.byReason.get();
  return m.values.filter((v) => v.labels.reason === name).reduce((a, v) => a + v.value, 0);
}

kubeTest(
  "gc trace: the leader releases a force-deleted pod's address from its pod watch, without a scan",
  async () => {
    await using w = await gcWorld("gc-trace-del");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    const gc = w.gc({ config: { intervalMs: 3_600_000 } });
    gc.start();
    await leading(gc);
    const scans = gc.lastReport;
    const pod = await w.runPod("a", node, pool);
    const keep = await w.runPod("b", node, pool);
    await w.forceDelete(pod);
    await eventually(
      "the traced pod's record to be released",
      async () => (await w.records(pool))[pod.ip] ? undefined : true,
    );
    assert.equal(gc.lastReport, scans, "no scan ran: the trace worker released it");
    assert.equal(await counter(gc, "pod_deleted"), 1);
    await eventually("its endpoint to be gone", async () => (await w.endpoint("a")) ? undefined : true);
    assert.deepEqual(await w.records(pool), { [keep.ip]: { pod: `${w.ns}/b`, podUid: keep.uid } });
    // The entry is dropped when its handling ends, just after the endpoint's deletion the test saw.
    await eventually(
      "the traced entry to leave the database",
      () => Promise.resolve(gc.traced === 0 || undefined),
    );
    assert.equal(gc.traced, 0, "the entry leaves the database once handled");
  },
);

kubeTest(
  "gc trace: a replica that does not lead traces nothing; once it leads, a terminating pod goes after its grace",
  async () => {
    await using w = await gcWorld("gc-trace-lead");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    let leader = false;
    const gc = w.gc({ config: { intervalMs: 3_600_000 }, leader: () => leader });
    gc.start();
    await eventually("the start-up scan", () => Promise.resolve(gc.lastReport ? true : undefined));
    const pod = await w.runPod("t", node, pool);
    await w.scope.cluster.http.delete(`${podsPath(w.ns)}/t`, { gracePeriodSeconds: 1 });
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal(gc.tracing, false);
    assert.equal(
      (await w.records(pool))[pod.ip]?.podUid,
      pod.uid,
      "a replica that does not lead releases nothing",
    );

    leader = true;
    await eventually(
      "the record to be released once leading",
      async () => (await w.records(pool))[pod.ip] ? undefined : true,
    );
    assert.equal(gc.tracing, true);
    assert.equal(await counter(gc, "pod_terminating_timeout"), 1);
  },
);
