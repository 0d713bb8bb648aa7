// The pool and subnet reconcilers against the real API server, led by a real LeaderElector: status converges
// from arbitrary starting states, nothing is written once converged, agents writing the same status at the same
// time never lose a record, terminating pools and subnets are finalised, Events reach the API server, and a
// replica that does not lead writes nothing.
import assert from "node:assert/strict";
import { decodeAllocatedIPs, encodeAllocatedIPs } from "../../src/api/allocated.ts";
import { FINALIZER, LABEL } from "../../src/api/constants.ts";
import type { SpiderIPPool, SpiderSubnet } from "../../src/api/types.ts";
import { PoolCommitter, RetriesExhaustedError } from "../../src/kube/pool_commit.ts";
import { LeaderElector } from "../../src/controller/leader.ts";
import { ControllerMetrics } from "../../src/controller/metrics.ts";
import { eventsAbout } from "../../src/controller/reconcile/events.ts";
import { POOLS, SUBNETS } from "../../src/controller/reconcile/kube.ts";
import { Reconcilers } from "../../src/controller/reconcile/reconcilers.ts";
import { startLeaderWork } from "../../src/controller/reconcile/mod.ts";
import { Registry } from "prom-client";
import { poolStatusWith } from "../../src/ipam/choose.ts";
import { NotFoundError } from "../../src/kube/client.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";

const SCOPE_LABEL = "spiderpool.spidernet.io/test-scope";
const TIMINGS = { leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 500 };

/** One controller replica: an elector and the reconcilers, limited to this test's objects. */
async function controller(scope: TestScope, identity: string, opts: { resyncMs?: number } = {}) {
  const { http, kc } = scope.cluster;
  const metrics = new ControllerMetrics({ debug: true });
  const reconcilers = new Reconcilers({
    http,
    kubeConfig: kc,
    identity,
    metrics,
    matchLabels: { [SCOPE_LABEL]: scope.namespace },
    resyncMs: opts.resyncMs,
    log: () => {},
  });
  const elector = new LeaderElector({
    http,
    namespace: scope.namespace,
    identity,
    leaseName: "spiderpool-controller-leases",
    timings: TIMINGS,
    work: [reconcilers],
    metrics,
    log: () => {},
  });
  reconcilers.start();
  await reconcilers.synced;
  elector.start();
  return {
    elector,
    reconcilers,
    metrics,
    async leading() {
      await poll(`${identity} to lead`, 30_000, () => Promise.resolve(elector.isLeader() || undefined));
    },
    async [Symbol.asyncDispose]() {
      await elector.stop();
      await reconcilers.stop();
    },
  };
}

function poolBody(
  scope: TestScope,
  name: string,
  spec: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  return {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderIPPool",
    metadata: { name, labels: { [SCOPE_LABEL]: scope.namespace }, finalizers: [FINALIZER], ...extra },
    spec: { ipVersion: 4, subnet: "192.0.2.0/24", ...spec },
  };
}

async function createPool(
  scope: TestScope,
  suffix: string,
  spec: Record<string, unknown>,
  status?: Record<string, unknown>,
): Promise<SpiderIPPool> {
  const name = scope.name(suffix);
  const path = `${POOLS}/${name}`;
  scope.track(path);
  let { body } = await scope.cluster.http.post<SpiderIPPool>(POOLS, poolBody(scope, name, spec));
  if (status) {
    body = (await scope.cluster.http.put<SpiderIPPool>(`${path}/status`, { ...body, status })).body;
  }
  return body;
}

/** Deletes the test's pools and subnets after dropping their finalizers (the reconcilers are gone by then). */
async function cleanUp(scope: TestScope): Promise<void> {
  const { http } = scope.cluster;
  for (const base of [POOLS, SUBNETS]) {
    const { body } = await http.get<{ items: SpiderIPPool[] }>(
      `${base}?labelSelector=${encodeURIComponent(`${SCOPE_LABEL}=${scope.namespace}`)}`,
    );
    for (const o of body.items) {
      try {
        await http.patch(`${base}/${o.metadata.name}`, { metadata: { finalizers: null } }, "merge");
        await http.delete(`${base}/${o.metadata.name}`);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
  }
}

async function getPool(scope: TestScope, name: string): Promise<SpiderIPPool> {
  return (await scope.cluster.http.get<SpiderIPPool>(`${POOLS}/${name}`)).body;
}

const records = (...ips: string[]) =>
  JSON.stringify(Object.fromEntries(ips.map((ip, i) => [ip, { pod: `default/p${i}`, podUid: `u${i}` }])));

kubeTest(
  "reconcile: pool status converges from arbitrary states; a resync of converged pools writes nothing",
  async () => {
    await using scope = await testScope("rec-pools", { serviceAccount: false });
    try {
      const pools = [
        await createPool(scope, "fresh", { ips: ["192.0.2.10-192.0.2.19"] }),
        await createPool(scope, "no-version", {
          ipVersion: undefined,
          ips: ["192.0.2.20-192.0.2.29"],
          excludeIPs: ["192.0.2.29"],
        }),
        await createPool(scope, "stale-total", { ips: ["192.0.2.30-192.0.2.49"] }, {
          totalIPCount: 3,
          allocatedIPCount: 0,
        }),
        await createPool(scope, "stale-count", { ips: ["192.0.2.50-192.0.2.59"] }, {
          allocatedIPs: records("192.0.2.50", "192.0.2.51", "192.0.2.52"),
          allocatedIPCount: 7,
          totalIPCount: 10,
        }),
        await createPool(scope, "right", { ips: ["192.0.2.60-192.0.2.61"] }, {
          allocatedIPCount: 0,
          totalIPCount: 2,
        }),
      ];
      await using c = await controller(scope, "only");
      await c.leading();
      await c.reconcilers.settled();
      const want: Record<string, [number, number]> = {
        fresh: [10, 0],
        "no-version": [9, 0],
        "stale-total": [20, 0],
        "stale-count": [10, 3],
        right: [2, 0],
      };
      for (const p of pools) {
        const now = await getPool(scope, p.metadata.name);
        const suffix = p.metadata.name.slice(scope.namespace.length + 1);
        assert.deepEqual([now.status?.totalIPCount, now.status?.allocatedIPCount], want[suffix], suffix);
        assert.equal(now.status?.allocatedIPs, p.status?.allocatedIPs, `${suffix}: allocatedIPs untouched`);
      }
      assert.equal(c.metrics.writes.ippool_status, 4, "one status write per pool that needed one");
      const rvs = await Promise.all(
        pools.map(async (p) => (await getPool(scope, p.metadata.name)).metadata.resourceVersion),
      );

      c.reconcilers.resync();
      await c.reconcilers.settled();
      assert.equal(c.metrics.totalWrites(), 4, "a resync of converged pools writes nothing");
      const after = await Promise.all(
        pools.map(async (p) => (await getPool(scope, p.metadata.name)).metadata.resourceVersion),
      );
      assert.deepEqual(after, rvs);
      const text = await c.metrics.registry.metrics();
      assert.match(
        text,
        new RegExp(`spiderpool_ippool_total_ip_counts\\{SpiderIPPool="${pools[2].metadata.name}"\\} 20`),
      );
      assert.match(text, /spiderpool_controller_is_leader 1/);
      assert.match(
        text,
        /spiderpool_controller_reconcile_counts_total\{kind="SpiderIPPool",result="converged"\} \d+/,
      );
      assert.match(text, /spiderpool_total_ippool_counts \d+/);

      // A spec change is followed.
      await scope.cluster.http.patch(`${POOLS}/${pools[0].metadata.name}`, {
        spec: { ips: ["192.0.2.10-192.0.2.14"] },
      });
      await poll(
        "totalIPCount to follow spec.ips",
        10_000,
        async () => (await getPool(scope, pools[0].metadata.name)).status?.totalIPCount === 5 || undefined,
      );
    } finally {
      await cleanUp(scope);
    }
  },
);

kubeTest("reconcile: agents writing the same pool status concurrently never lose a record", async () => {
  await using scope = await testScope("rec-race", { serviceAccount: false });
  try {
    const pool = await createPool(scope, "busy", { ips: ["192.0.2.1-192.0.2.100"] });
    const name = pool.metadata.name;
    await using c = await controller(scope, "only");
    await c.leading();
    const { http } = scope.cluster;
    // The agent's own committer (read, plan, write status with the read resourceVersion, retry on 409).
    const io = {
      read: async (n: string) => (await http.get<SpiderIPPool>(`${POOLS}/${n}`)).body,
      writeStatus: async (p: SpiderIPPool) => {
        await http.put(`${POOLS}/${p.metadata.name}/status`, p);
      },
    };
    type Op = { ip: string; pod: string; keepCount: boolean };
    const plan = (p: SpiderIPPool, ops: Op[]) => {
      const recs = decodeAllocatedIPs(p.status?.allocatedIPs, name);
      for (const op of ops) recs[op.ip] = { pod: op.pod, podUid: `uid-${op.ip}` };
      // Half the writers behave like agents of older releases: they add records but leave the count alone.
      const status = ops[0].keepCount
        ? { ...p.status, allocatedIPs: encodeAllocatedIPs(recs) }
        : poolStatusWith(p, recs);
      return { status, outcomes: ops.map(() => ({ ok: true as const, value: undefined })) };
    };
    const agents = [0, 1, 2, 3].map(() => new PoolCommitter<Op, void>(io, plan));
    const N = 96;
    const ips = Array.from({ length: N }, (_, i) => `192.0.2.${i + 1}`);
    let specChanges = 0;
    let agentsDone = false;
    const admin = (async () => {
      // Meanwhile an administrator keeps changing spec.ips, so the reconciler has a count to write each time.
      for (let top = 101; !agentsDone && top <= 200; top++) {
        await http.patch(`${POOLS}/${name}`, { spec: { ips: [`192.0.2.1-192.0.2.${top}`] } });
        specChanges++;
        await new Promise((r) => setTimeout(r, 60));
      }
    })();
    // Each agent allocates one address after another, so allocations go on for as long as the reconciler works.
    // An allocation that loses every retry to the other writers fails, and the runtime retries the ADD.
    let exhausted = 0;
    await Promise.all(agents.map(async (agent, a) => {
      for (let i = a; i < N; i += agents.length) {
        for (;;) {
          try {
            const op = { ip: ips[i], pod: `${scope.namespace}/p${i}`, keepCount: a >= 2 };
            await agent.submit(name, op, Date.now() + 60_000);
            break;
          } catch (err) {
            if (!(err instanceof RetriesExhaustedError)) throw err;
            exhausted++;
          }
        }
        await new Promise((r) => setTimeout(r, 15));
      }
    }));
    agentsDone = true;
    await admin;
    await c.reconcilers.settled();
    await poll("the counts to converge", 20_000, async () => {
      const p = await getPool(scope, name);
      const n = Object.keys(decodeAllocatedIPs(p.status?.allocatedIPs, name)).length;
      return p.status?.allocatedIPCount === n && p.status?.totalIPCount === 100 + specChanges ? p : undefined;
    });
    const final = await getPool(scope, name);
    const recs = decodeAllocatedIPs(final.status?.allocatedIPs, name);
    assert.deepEqual(Object.keys(recs).sort(), [...ips].sort(), "every agent's record is there");
    assert.equal(final.status?.allocatedIPCount, N);
    console.log(
      `${N} records by 4 writers, ${specChanges} spec changes: ${c.metrics.writes.ippool_status} reconciler status ` +
        `writes, ${c.metrics.conflicts} answered 409 (re-read and retried); ${exhausted} agent commits ran out ` +
        `of retries and were submitted again`,
    );
    assert.ok(c.metrics.writes.ippool_status >= 2, "the reconciler wrote while the agents did");
  } finally {
    await cleanUp(scope);
  }
});

kubeTest("reconcile: a terminating pool keeps its finalizer while IPs are allocated, then goes", async () => {
  await using scope = await testScope("rec-final", { serviceAccount: false });
  try {
    const pool = await createPool(scope, "leaving", { ips: ["192.0.2.10-192.0.2.19"] }, {
      allocatedIPs: records("192.0.2.10"),
      allocatedIPCount: 1,
      totalIPCount: 10,
    });
    const name = pool.metadata.name;
    await using c = await controller(scope, "only");
    await c.leading();
    await scope.cluster.http.delete(`${POOLS}/${name}`);
    await c.reconcilers.settled();
    const still = await getPool(scope, name);
    assert.ok(still.metadata.deletionTimestamp);
    assert.deepEqual(still.metadata.finalizers, [FINALIZER]);
    const events = await poll("the DeletionBlocked event", 10_000, async () => {
      const evs = await eventsAbout(scope.cluster.http, { kind: "SpiderIPPool", name });
      return evs.some((e) => e.reason === "DeletionBlocked") ? evs : undefined;
    });
    assert.match(events.find((e) => e.reason === "DeletionBlocked")!.message, /192\.0\.2\.10/);
    // The agent releases the last IP.
    await scope.cluster.http.put(`${POOLS}/${name}/status`, {
      ...still,
      status: { totalIPCount: 10, allocatedIPCount: 0 },
    });
    await poll("the pool to be deleted", 10_000, async () => {
      try {
        await getPool(scope, name);
        return undefined;
      } catch (err) {
        if (err instanceof NotFoundError) return true;
        throw err;
      }
    });
  } finally {
    await cleanUp(scope);
  }
});

kubeTest(
  "reconcile: a pool whose allocatedIPs no longer parses gets a Warning Event once, not a write",
  async () => {
    await using scope = await testScope("rec-event", { serviceAccount: false });
    try {
      const pool = await createPool(scope, "broken", { ips: ["192.0.2.10-192.0.2.19"] }, {
        allocatedIPs: '{"192.0.2.10":',
        allocatedIPCount: 1,
        totalIPCount: 10,
      });
      await using c = await controller(scope, "only");
      await c.leading();
      await c.reconcilers.settled();
      c.reconcilers.resync();
      await c.reconcilers.settled();
      const evs = await eventsAbout(scope.cluster.http, { kind: "SpiderIPPool", name: pool.metadata.name });
      assert.equal(evs.length, 1, JSON.stringify(evs));
      assert.equal(evs[0].type, "Warning");
      assert.equal(evs[0].reason, "InvalidAllocatedIPs");
      assert.match(evs[0].message, /status\.allocatedIPs is not valid JSON/);
      assert.equal(c.metrics.writes.ippool_status, 0);
      assert.equal((await getPool(scope, pool.metadata.name)).status?.allocatedIPCount, 1);
    } finally {
      await cleanUp(scope);
    }
  },
);

async function createSubnet(
  scope: TestScope,
  suffix: string,
  spec: Record<string, unknown>,
): Promise<SpiderSubnet> {
  const name = scope.name(suffix);
  scope.track(`${SUBNETS}/${name}`);
  const { body } = await scope.cluster.http.post<SpiderSubnet>(SUBNETS, {
    apiVersion: "spiderpool.spidernet.io/v2beta1",
    kind: "SpiderSubnet",
    metadata: { name, labels: { [SCOPE_LABEL]: scope.namespace }, finalizers: [FINALIZER] },
    spec: { ipVersion: 4, ...spec },
  });
  return body;
}

kubeTest(
  "reconcile: a subnet adopts the pools of its CIDR and keeps its status; converged, it writes nothing",
  async () => {
    await using scope = await testScope("rec-subnet", { serviceAccount: false });
    try {
      const subnet = await createSubnet(scope, "net", {
        subnet: "198.51.100.0/24",
        ips: ["198.51.100.1-198.51.100.100"],
      });
      const a = await createPool(scope, "a", {
        subnet: "198.51.100.0/24",
        ips: ["198.51.100.10-198.51.100.19"],
      });
      const b = await createPool(scope, "b", {
        subnet: "198.51.100.0/24",
        ips: ["198.51.100.95-198.51.100.104"],
      });
      const other = await createPool(scope, "other", { subnet: "203.0.113.0/24", ips: ["203.0.113.1"] });
      await using c = await controller(scope, "only");
      await c.leading();
      await c.reconcilers.settled();
      const { http } = scope.cluster;
      for (const p of [a, b]) {
        const now = await getPool(scope, p.metadata.name);
        assert.equal(now.metadata.labels?.[LABEL.ownerSpiderSubnet], subnet.metadata.name);
        assert.deepEqual(now.metadata.ownerReferences, [{
          apiVersion: "spiderpool.spidernet.io/v2beta1",
          kind: "SpiderSubnet",
          name: subnet.metadata.name,
          uid: subnet.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        }]);
      }
      assert.equal((await getPool(scope, other.metadata.name)).metadata.ownerReferences, undefined);
      const s = (await http.get<SpiderSubnet>(`${SUBNETS}/${subnet.metadata.name}`)).body;
      assert.equal(s.metadata.labels?.[LABEL.subnetCIDR], "198-51-100-0-24");
      assert.equal(s.status?.totalIPCount, 100);
      assert.equal(s.status?.allocatedIPCount, 16);
      assert.deepEqual(JSON.parse(s.status!.controlledIPPools!), {
        [a.metadata.name]: { ips: ["198.51.100.10-198.51.100.19"] },
        [b.metadata.name]: { ips: ["198.51.100.95-198.51.100.100"] },
      });
      const evs = await eventsAbout(http, { kind: "SpiderIPPool", name: b.metadata.name });
      assert.ok(
        evs.some((e) =>
          e.reason === "OutsideSubnet" && /198\.51\.100\.101-198\.51\.100\.104/.test(e.message)
        ),
      );

      const writes = c.metrics.totalWrites();
      c.reconcilers.resync();
      await c.reconcilers.settled();
      assert.equal(c.metrics.totalWrites(), writes, "converged: a resync writes nothing");

      // A pool leaving the subnet's range is reflected.
      await http.patch(`${POOLS}/${a.metadata.name}`, { spec: { ips: ["198.51.100.10-198.51.100.11"] } });
      await poll("allocatedIPCount to follow", 10_000, async () => {
        const now = (await http.get<SpiderSubnet>(`${SUBNETS}/${subnet.metadata.name}`)).body;
        return now.status?.allocatedIPCount === 8 || undefined;
      });
    } finally {
      await cleanUp(scope);
    }
  },
);

kubeTest("reconcile: a deleted subnet deletes its pools first (foreground), then itself", async () => {
  await using scope = await testScope("rec-subdel", { serviceAccount: false });
  try {
    const subnet = await createSubnet(scope, "net", {
      subnet: "198.51.100.0/24",
      ips: ["198.51.100.1-198.51.100.100"],
    });
    const a = await createPool(scope, "a", {
      subnet: "198.51.100.0/24",
      ips: ["198.51.100.10-198.51.100.19"],
    });
    await using c = await controller(scope, "only");
    await c.leading();
    await c.reconcilers.settled();
    const { http } = scope.cluster;
    assert.ok((await getPool(scope, a.metadata.name)).metadata.ownerReferences?.length);
    await http.delete(`${SUBNETS}/${subnet.metadata.name}`); // kubectl's default: background propagation
    const gone = (path: string) =>
      poll(`${path} to be deleted`, 60_000, async () => {
        try {
          await http.get(path);
          return undefined;
        } catch (err) {
          if (err instanceof NotFoundError) return true;
          throw err;
        }
      });
    await gone(`${POOLS}/${a.metadata.name}`);
    await gone(`${SUBNETS}/${subnet.metadata.name}`);
    assert.equal(c.metrics.writes.subnet_delete, 1);
  } finally {
    await cleanUp(scope);
  }
});

kubeTest(
  "reconcile: only the leader writes; after a graceful hand-over the new leader takes over the work",
  async () => {
    await using scope = await testScope("rec-leader", { serviceAccount: false });
    try {
      const first = await createPool(scope, "first", { ips: ["192.0.2.10-192.0.2.19"] });
      await using a = await controller(scope, "a");
      await a.leading();
      await using b = await controller(scope, "b");
      await a.reconcilers.settled();
      assert.equal((await getPool(scope, first.metadata.name)).status?.totalIPCount, 10);
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(b.elector.isLeader(), false);
      assert.equal(b.elector.leaderKnown(), true);
      assert.equal(b.metrics.totalWrites(), 0, "the follower wrote nothing");

      await a.elector.stop();
      await b.leading();
      const second = await createPool(scope, "second", { ips: ["192.0.2.20-192.0.2.22"] });
      await poll(
        "the new leader to reconcile a new pool",
        15_000,
        async () => (await getPool(scope, second.metadata.name)).status?.totalIPCount === 3 || undefined,
      );
      const aWrites = a.metrics.totalWrites();
      await b.reconcilers.settled();
      assert.equal(a.metrics.totalWrites(), aWrites, "the old leader writes no more");
      assert.ok(b.metrics.writes.ippool_status >= 1);
    } finally {
      await cleanUp(scope);
    }
  },
);

kubeTest(
  "startLeaderWork: the daemon's one call elects, reconciles, reports on its registry and releases on stop",
  async () => {
    await using scope = await testScope("rec-start", { serviceAccount: false });
    try {
      const registry = new Registry();
      const env: Record<string, string> = {
        SPIDERPOOL_LEADER_DURATION: "4",
        SPIDERPOOL_LEADER_RENEW_DEADLINE: "3",
        SPIDERPOOL_LEADER_RETRY_PERIOD: "0.5",
        SPIDERPOOL_IPPOOL_INFORMER_WORKERS: "2",
      };
      const pool = await createPool(scope, "p", { ips: ["192.0.2.10-192.0.2.12"] });
      const handle = startLeaderWork({
        http: scope.cluster.http,
        kubeConfig: scope.cluster.kc,
        namespace: scope.namespace,
        identity: "pod-a",
        enableSpiderSubnet: true,
        registry,
        // This test's pools only: the shared cluster's other pools (and their records) are other tests'.
        matchLabels: { [SCOPE_LABEL]: scope.namespace },
        env: (k) => env[k],
        log: () => {},
      });
      try {
        await poll(
          "the pool's totalIPCount",
          30_000,
          async () => (await getPool(scope, pool.metadata.name)).status?.totalIPCount === 3 || undefined,
        );
        assert.equal(handle.elector.leaderKnown(), true);
        assert.match(await registry.metrics(), /spiderpool_controller_is_leader 1/);
        const lease =
          `/apis/coordination.k8s.io/v1/namespaces/${scope.namespace}/leases/spiderpool-controller-leases`;
        const { body } = await scope.cluster.http.get<
          { spec: { holderIdentity?: string; leaseDurationSeconds: number } }
        >(lease);
        assert.deepEqual([body.spec.holderIdentity, body.spec.leaseDurationSeconds], ["pod-a", 4]);
        await handle.stop();
        const { body: released } = await scope.cluster.http.get<{ spec: { holderIdentity?: string } }>(lease);
        assert.equal(released.spec.holderIdentity, undefined, "released on stop");
        assert.match(await registry.metrics(), /spiderpool_controller_is_leader 0/);
      } finally {
        await handle.stop();
      }
    } finally {
      await cleanUp(scope);
    }
  },
);
