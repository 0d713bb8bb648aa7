// The controller's two halves in one process, as a Deployment runs it: real `dist/spiderpool controller`
// replicas serve the webhooks (every replica) and elect one leader on the Lease that runs the reconcilers.
// Exactly one leads and both become Ready; the leader's reconcilers write a new pool's status, emit Events the
// API server keeps, and export their metrics on the same registry as the webhooks; only the set's own pools are
// touched; a SIGKILLed leader is replaced within the lease duration, a SIGTERMed one hands over at once.
import assert from "node:assert/strict";
import { eventsAbout } from "../../src/controller/reconcile/events.ts";
import { POOL_EVENT } from "../../src/controller/reconcile/ippool.ts";
import { scrapeMetrics } from "../e2e/node_sim.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";
import { API, type ControllerSet, randomSubnets, startControllers } from "./webhook_harness.ts";

const POOLS = `${API}/spiderippools`;

/** Short election durations (upstream's are 15, 10 and 2 s), so that take-overs fit in a test. */
const LEASE = { duration: 4, renew: 3, retry: 0.5 };
const leaseEnv = (l = LEASE) => ({
  SPIDERPOOL_LEADER_DURATION: String(l.duration),
  SPIDERPOOL_LEADER_RENEW_DEADLINE: String(l.renew),
  SPIDERPOOL_LEADER_RETRY_PERIOD: String(l.retry),
});

interface Pool {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { ipVersion?: number };
  status?: { totalIPCount?: number; allocatedIPCount?: number };
}

/** A pool of `count` (≤ 20) addresses, created through the webhooks (no ipVersion, as in the guides). */
async function newPool(set: ControllerSet, scope: TestScope, suffix: string, count: number): Promise<string> {
  // One /24 per test; each pool its own block of 20 addresses in it, so pools of a test never overlap.
  const net = subnets.get(scope.namespace) ?? { ...randomSubnets(), next: 0 };
  subnets.set(scope.namespace, net);
  const first = 10 + 20 * net.next++;
  const name = scope.name(suffix);
  await set.create(POOLS, {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderIPPool",
    metadata: { name },
    spec: { subnet: net.v4, ips: [`${net.v4prefix}${first}-${net.v4prefix}${first + count - 1}`] },
  });
  return name;
}
const subnets = new Map<string, ReturnType<typeof randomSubnets> & { next: number }>();

async function poolStatus(set: ControllerSet, name: string): Promise<Pool["status"]> {
  return (await set.http.get<Pool>(`${POOLS}/${name}`)).body.status;
}

/** Waits until the leader has written the pool's counts. */
async function reconciled(set: ControllerSet, name: string, total: number, timeoutMs = 30_000) {
  return await poll(`pool ${name}: totalIPCount ${total}`, timeoutMs, async () => {
    const s = await poolStatus(set, name);
    return s?.totalIPCount === total && s.allocatedIPCount === 0 ? s : undefined;
  });
}

const metric = (m: Map<string, number>, key: string) => m.get(key);

kubeTest(
  "controller replicas: exactly one leads, both are Ready, the leader reconciles its pools with Events and metrics on one registry",
  async () => {
    await using scope = await testScope("ctl-two", { serviceAccount: false });
    await using set = await startControllers(scope, {
      replicas: 2,
      env: { ...leaseEnv(), SPIDERPOOL_ENABLED_DEBUG_METRIC: "true" },
    });
    const leader = await set.leader();
    const other = set.replicas.find((r) => r !== leader)!;
    for (const r of set.replicas) await set.ready(r);
    assert.equal(await set.holder(), leader.podName);
    // The first replica created the webhook configurations (the admin may), the second patched them.
    assert.match(await set.replicas[0].log(), /\(mutating created, validating created; https:/);
    assert.match(await set.replicas[1].log(), /\(mutating patched, validating patched; https:/);

    const name = await newPool(set, scope, "p", 7);
    await reconciled(set, name, 7);
    // A pool the set does not own (no set label, so no webhook either) is left alone by this set's leader.
    const { v4, v4prefix } = subnets.get(scope.namespace)!;
    const foreign = scope.name("foreign");
    scope.track(`${POOLS}/${foreign}`);
    await set.http.post(POOLS, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: { name: foreign },
      spec: { ipVersion: 4, subnet: v4, ips: [`${v4prefix}200-${v4prefix}202`] },
    });
    const second = await newPool(set, scope, "q", 3);
    await reconciled(set, second, 3);
    assert.equal((await poolStatus(set, foreign))?.totalIPCount, undefined, "a pool of nobody's set");

    // A pool whose records no longer parse (as a broken writer would leave it): the leader says so in an Event.
    await set.http.patch(`${POOLS}/${second}/status`, { status: { allocatedIPs: "{not json" } });
    const events = await poll(`an ${POOL_EVENT.invalidAllocatedIPs} Event`, 30_000, async () => {
      const evs = await eventsAbout(set.http, { kind: "SpiderIPPool", name: second });
      return evs.some((e) => e.reason === POOL_EVENT.invalidAllocatedIPs) ? evs : undefined;
    });
    const ev = events.find((e) => e.reason === POOL_EVENT.invalidAllocatedIPs)!;
    assert.equal(ev.type, "Warning");
    assert.match(ev.message, new RegExp(second));

    // One registry per process: the reconcilers' and the webhooks' metrics side by side.
    const lm = await scrapeMetrics(leader.metricsPort);
    const om = await scrapeMetrics(other.metricsPort);
    assert.equal(metric(lm, "spiderpool_controller_is_leader"), 1);
    assert.equal(metric(om, "spiderpool_controller_is_leader"), 0);
    assert.equal(metric(lm, `spiderpool_ippool_total_ip_counts{SpiderIPPool="${name}"}`), 7);
    assert.equal(metric(lm, `spiderpool_ippool_allocated_ip_counts{SpiderIPPool="${name}"}`), 0);
    assert.equal(metric(om, `spiderpool_ippool_total_ip_counts{SpiderIPPool="${name}"}`), undefined);
    assert.equal(metric(lm, `spiderpool_debug_ippool_available_ip_counts{SpiderIPPool="${name}"}`), 7);
    assert.ok((metric(lm, "spiderpool_total_ippool_counts") ?? 0) >= 3, "pools in the cluster");
    assert.ok(
      (metric(lm, `spiderpool_controller_reconcile_counts_total{kind="SpiderIPPool",result="written"}`) ??
        0) >=
        2,
    );
    assert.ok((metric(lm, `spiderpool_controller_api_writes_total{kind="event"}`) ?? 0) >= 1);
    // Admissions went to both replicas (round robin); each counts its own.
    const admitted = (m: Map<string, number>) =>
      metric(
        m,
        `spiderpool_webhook_admission_counts_total{webhook="mutating",kind="SpiderIPPool",operation="CREATE",verdict="allowed"}`,
      ) ?? 0;
    assert.equal(admitted(lm) + admitted(om), 2);
  },
);

kubeTest(
  "controller replicas: a SIGKILLed leader is replaced within the lease duration and the new leader reconciles the next pool",
  async () => {
    await using scope = await testScope("ctl-kill", { serviceAccount: false });
    await using set = await startControllers(scope, { replicas: 2, env: leaseEnv() });
    const old = await set.leader();
    await reconciled(set, await newPool(set, scope, "before", 4), 4);
    const killedAt = Date.now();
    await old.kill();
    const next = await set.leader(30_000, old);
    const took = Date.now() - killedAt;
    console.log(
      `leader SIGKILLed; ${next.podName} holds the Lease after ${took} ms (lease ${LEASE.duration} s)`,
    );
    // The survivor's expiry clock started at the last renewal it saw; it polls every retry period (×1.2
    // jitter), and this test polls the Lease at most every 500 ms. The rest is slack for a loaded machine.
    assert.ok(
      took <= (LEASE.duration + 1.2 * LEASE.retry) * 1000 + 3_000,
      `took over after ${took} ms, more than the lease duration`,
    );
    // The webhooks are still served (by the survivor) and the new leader reconciles.
    await reconciled(set, await newPool(set, scope, "after", 5), 5);
    await set.ready(next);
    assert.match(await next.log(), /started leading \(took over from "controller-/);
  },
);

kubeTest(
  "controller replicas: a SIGTERMed leader releases the Lease, closes its watches and exits 0; the other leads at once",
  async () => {
    await using scope = await testScope("ctl-term", { serviceAccount: false });
    // A long lease: a take-over well before it expires can only come from the release.
    const lease = { duration: 20, renew: 15, retry: 0.5 };
    await using set = await startControllers(scope, { replicas: 2, env: leaseEnv(lease) });
    const old = await set.leader();
    await reconciled(set, await newPool(set, scope, "before", 2), 2);
    const termAt = Date.now();
    const status = await old.stop();
    const log = await old.log();
    assert.equal(status.code, 0, log);
    assert.match(log, /leader election: released the lease/);
    assert.match(log, /leader-only work stopped and its watches closed/);
    // The lease is handed over, not left to expire.
    assert.ok((await set.holder()) !== old.podName);
    const next = await set.leader(lease.duration * 1000 / 2, old);
    const took = Date.now() - termAt;
    console.log(`leader SIGTERMed; ${next.podName} leads after ${took} ms (lease ${lease.duration} s)`);
    assert.ok(took < lease.duration * 1000 / 2, `handed over after ${took} ms`);
    await reconciled(set, await newPool(set, scope, "after", 3), 3);
  },
);
