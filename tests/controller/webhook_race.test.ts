// Upstream #746: two overlapping pools submitted at the same moment through two controller replicas were both
// admitted. Here two real controller processes each register their own webhook configurations, selecting
// objects by a replica label, so in every trial the two halves of an overlapping pair are admitted by two
// different replicas, sent to the real API server at the same moment. Never may both be admitted.

import assert from "node:assert/strict";
import { scrapeMetrics } from "../e2e/node_sim.ts";
import { kubeTest, testScope } from "../kube/harness.ts";
import { API, type ControllerSet, startControllers } from "./webhook_harness.ts";

interface Trial {
  collection: string;
  a: { name: string; body: unknown };
  b: { name: string; body: unknown };
}

/** Runs the trials one after another, both creates of a trial at once; returns how many pairs raced in the ledger. */
async function race(set: ControllerSet, trials: Trial[]): Promise<void> {
  for (const [i, t] of trials.entries()) {
    const results = await Promise.allSettled([
      set.create(t.collection, t.a.body, 0),
      set.create(t.collection, t.b.body, 1),
    ]);
    const admitted = results.filter((r) => r.status === "fulfilled").length;
    const reasons = results.flatMap((r) =>
      r.status === "rejected"
        ? [(r.reason as { body?: { message?: string } }).body?.message ?? String(r.reason)]
        : []
    );
    assert.ok(admitted <= 1, `trial ${i} (${t.collection}): both ${t.a.name} and ${t.b.name} were admitted`);
    assert.equal(admitted, 1, `trial ${i}: neither was admitted: ${reasons.join(" | ")}`);
    // The refusal names the object that won, whether it was already stored or still only in the ledger.
    const loser = results[0].status === "rejected" ? t.a.name : t.b.name;
    const winner = loser === t.a.name ? t.b.name : t.a.name;
    assert.match(
      reasons[0],
      new RegExp(`"${loser}": spec\\.(ips|subnet)\\b.* overlaps .*"${winner}"`),
      reasons[0],
    );
  }
}

async function ledgerConflicts(set: ControllerSet): Promise<number> {
  let n = 0;
  for (const r of set.replicas) {
    n +=
      (await scrapeMetrics(r.metricsPort)).get("spiderpool_webhook_admission_ledger_conflict_counts_total") ??
        0;
  }
  return n;
}

function prefix(): string {
  const g = crypto.getRandomValues(new Uint16Array(1))[0] % 0xfe00 + 0x100;
  return `2001:db8:${g.toString(16)}`;
}

kubeTest(
  "two overlapping SpiderIPPools admitted at the same moment by two replicas: never both (60 trials)",
  async () => {
    await using scope = await testScope("wh-race-pool", { serviceAccount: false });
    await using set = await startControllers(scope, { replicas: 2, routing: "per-replica" });
    const base = prefix();
    const trials: Trial[] = Array.from({ length: 60 }, (_, i) => {
      const net = `${base}:${(i + 1).toString(16)}::`;
      const mk = (name: string, spec: Record<string, unknown>) => ({
        name,
        body: {
          apiVersion: "spiderpool.spidernet.io/v2beta1",
          kind: "SpiderIPPool",
          metadata: { name },
          spec,
        },
      });
      // Even trials: same subnet, overlapping ranges; odd trials: overlapping subnets of different sizes.
      return {
        collection: `${API}/spiderippools`,
        a: mk(scope.name(`a${i}`), { subnet: `${net}/64`, ips: [`${net}10-${net}20`] }),
        b: i % 2 === 0
          ? mk(scope.name(`b${i}`), { subnet: `${net}/64`, ips: [`${net}18-${net}30`] })
          : mk(scope.name(`b${i}`), { subnet: `${net}/80`, ips: [`${net}40-${net}50`] }),
      };
    });
    await race(set, trials);
    // Evidence that the admissions really overlapped in time: some pairs reached the ledger write together,
    // and the loser had to decide again (and then saw the winner).
    assert.ok(
      await ledgerConflicts(set) > 0,
      "no two admissions overlapped in time; the trials did not race",
    );
  },
);

kubeTest(
  "overlapping SpiderSubnets and SpiderReservedIPs admitted at the same moment by two replicas: never both",
  async () => {
    await using scope = await testScope("wh-race-other", { serviceAccount: false });
    await using set = await startControllers(scope, { replicas: 2, routing: "per-replica" });
    const base = prefix();
    const trials: Trial[] = [];
    for (let i = 0; i < 25; i++) {
      const net = `${base}:${(i + 1).toString(16)}::`;
      const subnet = (name: string, cidr: string) => ({
        name,
        body: {
          apiVersion: "spiderpool.spidernet.io/v2beta1",
          kind: "SpiderSubnet",
          metadata: { name },
          spec: { subnet: cidr, ips: [`${net}10-${net}20`] },
        },
      });
      trials.push({
        collection: `${API}/spidersubnets`,
        a: subnet(scope.name(`sa${i}`), `${net}/64`),
        b: subnet(scope.name(`sb${i}`), i % 2 === 0 ? `${net}/64` : `${net}/96`),
      });
      const rip = (name: string, ips: string[]) => ({
        name,
        body: {
          apiVersion: "spiderpool.spidernet.io/v2beta1",
          kind: "SpiderReservedIP",
          metadata: { name },
          spec: { ips },
        },
      });
      trials.push({
        collection: `${API}/spiderreservedips`,
        a: rip(scope.name(`ra${i}`), [`${net}100-${net}110`]),
        b: rip(scope.name(`rb${i}`), [`${net}110-${net}120`]),
      });
    }
    await race(set, trials);
    assert.ok(
      await ledgerConflicts(set) > 0,
      "no two admissions overlapped in time; the trials did not race",
    );
  },
);
