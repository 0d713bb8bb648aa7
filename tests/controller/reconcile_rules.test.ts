// The pure rules of the pool and subnet reconcilers (src/controller/reconcile/{ippool,subnet}.ts) and the work
// queue: each case a starting state, the writes planned for it, and that applying them converges.
import assert from "node:assert/strict";
import { FINALIZER, LABEL } from "../../src/api/constants.ts";
import type { SpiderIPPool, SpiderSubnet } from "../../src/api/types.ts";
import {
  countNumber,
  finalizerPatch,
  planPool,
  POOL_EVENT,
  poolStatusPatch,
} from "../../src/controller/reconcile/ippool.ts";
import { backoffDelay, WorkQueue } from "../../src/controller/reconcile/queue.ts";
import {
  applicationOf,
  FOREGROUND_DELETION,
  planSubnet,
  SUBNET_EVENT,
} from "../../src/controller/reconcile/subnet.ts";

const SUBNET_UID = "11111111-2222-3333-4444-555555555555";

function pool(
  name: string,
  spec: Partial<SpiderIPPool["spec"]>,
  extra: Partial<SpiderIPPool> = {},
): SpiderIPPool {
  return {
    metadata: { name, resourceVersion: "7", finalizers: [FINALIZER], ...extra.metadata },
    spec: {
      ipVersion: 4,
      subnet: "192.0.2.0/24",
      ips: ["192.0.2.10-192.0.2.19"],
      ...spec,
    } as SpiderIPPool["spec"],
    ...(extra.status ? { status: extra.status } : {}),
  };
}

const records = (...ips: string[]) =>
  JSON.stringify(Object.fromEntries(ips.map((ip, i) => [ip, { pod: `default/p${i}`, podUid: `u${i}` }])));

/** The pool as the API server holds it after the plan's writes. */
function applyPoolPlan(p: SpiderIPPool): SpiderIPPool {
  const plan = planPool(p);
  if (plan.removeFinalizer) return { ...p, metadata: { ...p.metadata, ...finalizerPatch(p).metadata } };
  if (!plan.status) return p;
  return { ...p, status: { ...p.status, ...poolStatusPatch("7", plan.status).status } };
}

Deno.test("planPool: a new pool gets totalIPCount = |ips − excludeIPs| and allocatedIPCount 0", () => {
  const plan = planPool(pool("a", { excludeIPs: ["192.0.2.15"] }));
  assert.deepEqual(plan, {
    status: { totalIPCount: 9, allocatedIPCount: 0 },
    removeFinalizer: false,
    events: [],
    total: 9,
    allocated: 0,
  });
});

Deno.test("planPool: a converged pool plans nothing", () => {
  const p = pool("a", {}, {
    status: { totalIPCount: 10, allocatedIPCount: 2, allocatedIPs: records("192.0.2.10", "192.0.2.11") },
  });
  const plan = planPool(p);
  assert.equal(plan.status, undefined);
  assert.equal(plan.removeFinalizer, false);
  assert.deepEqual(plan.events, []);
});

Deno.test("planPool: the counts follow spec and records; allocatedIPs is never part of the write", () => {
  const p = pool("a", { ips: ["192.0.2.10-192.0.2.40"] }, {
    status: { totalIPCount: 10, allocatedIPCount: 5, allocatedIPs: records("192.0.2.10", "192.0.2.30") },
  });
  const plan = planPool(p);
  assert.deepEqual(plan.status, { totalIPCount: 31, allocatedIPCount: 2 });
  assert.deepEqual(Object.keys(poolStatusPatch("7", plan.status!).status), [
    "totalIPCount",
    "allocatedIPCount",
  ]);
  assert.deepEqual(poolStatusPatch("7", plan.status!).metadata, { resourceVersion: "7" });
});

Deno.test("planPool: ipVersion absent (pools from upstream's guides) is derived from the subnet", () => {
  const p = pool("a", { ipVersion: undefined, subnet: "2001:db8::/64", ips: ["2001:db8::10-2001:db8::1f"] });
  assert.equal(planPool(p).status?.totalIPCount, 16);
});

Deno.test("planPool: reserved IPs are not subtracted from totalIPCount (upstream)", () => {
  assert.equal(planPool(pool("a", {})).total, 10);
});

Deno.test("planPool: an IPv6 pool larger than 2^53 reports 2^53 − 1", () => {
  const p = pool("a", {
    ipVersion: 6,
    subnet: "2001:db8::/32",
    ips: ["2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"],
  });
  assert.equal(planPool(p).total, Number.MAX_SAFE_INTEGER);
  assert.equal(countNumber(5n), 5);
});

Deno.test("planPool: malformed spec.ips: an event naming the field, allocatedIPCount still kept right", () => {
  const p = pool("a", { ips: ["192.0.2.300"] }, { status: { allocatedIPs: records("192.0.2.10") } });
  const plan = planPool(p);
  assert.deepEqual(plan.status, { allocatedIPCount: 1 });
  assert.equal(plan.events.length, 1);
  assert.equal(plan.events[0].reason, POOL_EVENT.invalidSpec);
  assert.match(plan.events[0].message, /spec\.ips\[0\].*192\.0\.2\.300/);
});

Deno.test("planPool: unreadable status.allocatedIPs: event, count and finalizer left alone", () => {
  for (
    const bad of [
      "{not json",
      '{"192.0.2.10":{"pod":1}}',
      '["192.0.2.10"]',
      '{"x":{"pod":"a/b","podUid":"u"}}',
    ]
  ) {
    const p = pool("a", {}, {
      metadata: { name: "a", deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: [FINALIZER] },
      status: { allocatedIPs: bad, allocatedIPCount: 3, totalIPCount: 10 },
    });
    const plan = planPool(p);
    assert.equal(plan.status, undefined, bad);
    assert.equal(plan.removeFinalizer, false, bad);
    assert.equal(plan.events[0].reason, POOL_EVENT.invalidAllocatedIPs, bad);
    assert.match(plan.events[0].message, /SpiderIPPool "a": status\.allocatedIPs/);
  }
});

Deno.test("planPool: records outside ips − excludeIPs raise an event naming them", () => {
  const p = pool("a", { excludeIPs: ["192.0.2.11"] }, {
    status: { allocatedIPs: records("192.0.2.11", "192.0.2.99") },
  });
  const ev = planPool(p).events.find((e) => e.reason === POOL_EVENT.allocatedOutsidePool);
  assert.ok(ev);
  assert.match(ev.message, /192\.0\.2\.11, 192\.0\.2\.99/);
});

Deno.test("planPool: a terminating empty pool loses the finalizer (and nothing else is written)", () => {
  const p = pool("a", {}, {
    metadata: {
      name: "a",
      deletionTimestamp: "2026-01-01T00:00:00Z",
      finalizers: ["x", FINALIZER],
      resourceVersion: "9",
    },
  });
  const plan = planPool(p);
  assert.equal(plan.removeFinalizer, true);
  assert.equal(plan.status, undefined);
  assert.deepEqual(finalizerPatch(p), { metadata: { resourceVersion: "9", finalizers: ["x"] } });
});

Deno.test("planPool: a terminating pool with records keeps its finalizer and says why", () => {
  const p = pool("a", {}, {
    metadata: { name: "a", deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: [FINALIZER] },
    status: { allocatedIPs: records("192.0.2.10"), allocatedIPCount: 1, totalIPCount: 10 },
  });
  const plan = planPool(p);
  assert.equal(plan.removeFinalizer, false);
  assert.equal(plan.events[0].reason, POOL_EVENT.deletionBlocked);
  assert.match(plan.events[0].message, /1 IP\(s\) are still allocated \(192\.0\.2\.10\)/);
});

Deno.test("planPool: a terminating pool without our finalizer plans no finalizer removal", () => {
  const p = pool("a", {}, {
    metadata: { name: "a", deletionTimestamp: "2026-01-01T00:00:00Z", finalizers: [] },
  });
  assert.equal(planPool(p).removeFinalizer, false);
});

Deno.test("planPool: from arbitrary states, applying the plan once converges (nothing planned after)", () => {
  const states: NonNullable<SpiderIPPool["status"]>[] = [
    {},
    { totalIPCount: 0 },
    { totalIPCount: 99, allocatedIPCount: -1 },
    { allocatedIPs: records("192.0.2.10", "192.0.2.12"), allocatedIPCount: 0 },
    { allocatedIPs: "", allocatedIPCount: 4, totalIPCount: 10 },
    { allocatedIPs: "null", allocatedIPCount: 1 },
  ];
  for (const status of states) {
    for (const spec of [{}, { excludeIPs: ["192.0.2.10-192.0.2.12"] }, { ipVersion: undefined }]) {
      const once = applyPoolPlan(pool("a", spec, { status: status as SpiderIPPool["status"] }));
      const again = planPool(once);
      assert.equal(again.status, undefined, JSON.stringify({ status, spec }));
      assert.equal(once.status?.allocatedIPs, status.allocatedIPs, "allocatedIPs unchanged");
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------

function subnet(spec: Partial<SpiderSubnet["spec"]> = {}, extra: Partial<SpiderSubnet> = {}): SpiderSubnet {
  return {
    metadata: {
      name: "s",
      uid: SUBNET_UID,
      resourceVersion: "3",
      finalizers: [FINALIZER],
      labels: { [LABEL.subnetCIDR]: "192-0-2-0-24" },
      ...extra.metadata,
    },
    spec: {
      ipVersion: 4,
      subnet: "192.0.2.0/24",
      ips: ["192.0.2.1-192.0.2.200"],
      ...spec,
    } as SpiderSubnet["spec"],
    ...(extra.status ? { status: extra.status } : {}),
  };
}

const ownerRef = (uid = SUBNET_UID) => ({
  apiVersion: "spiderpool.spidernet.io/v2beta1",
  kind: "SpiderSubnet",
  name: "s",
  uid,
  controller: true,
  blockOwnerDeletion: true,
});

const owned = (name: string, ips: string[], extra: Record<string, unknown> = {}) =>
  pool(name, { ips }, {
    metadata: {
      name,
      resourceVersion: "7",
      labels: { [LABEL.ownerSpiderSubnet]: "s" },
      ownerReferences: [ownerRef()],
      ...extra,
    },
  });

Deno.test("planSubnet: a new subnet: label, totalIPCount, allocatedIPCount 0, no controlledIPPools", () => {
  const plan = planSubnet(subnet({}, { metadata: { name: "s", uid: SUBNET_UID, labels: {} } }), []);
  assert.deepEqual(plan.labels, { [LABEL.subnetCIDR]: "192-0-2-0-24" });
  assert.deepEqual(plan.status, { totalIPCount: 200, allocatedIPCount: 0 });
  assert.deepEqual(plan.adopt, []);
});

Deno.test("planSubnet: adopts a pool of its CIDR: controller ownerReference and owner label, guarded by its resourceVersion", () => {
  const other = { apiVersion: "v1", kind: "ConfigMap", name: "keep", uid: "u-cm" };
  const p = pool("p1", { ips: ["192.0.2.10-192.0.2.19"] }, {
    metadata: { name: "p1", resourceVersion: "41", ownerReferences: [other] },
  });
  const plan = planSubnet(subnet(), [p]);
  assert.deepEqual(plan.adopt, [{
    pool: "p1",
    patch: {
      metadata: {
        resourceVersion: "41",
        labels: { [LABEL.ownerSpiderSubnet]: "s" },
        ownerReferences: [other, ownerRef()],
      },
    },
  }]);
  assert.equal(plan.status?.controlledIPPools, JSON.stringify({ p1: { ips: ["192.0.2.10-192.0.2.19"] } }));
  assert.equal(plan.status?.allocatedIPCount, 10);
});

Deno.test("planSubnet: pools of another CIDR or family are neither adopted nor counted", () => {
  const plan = planSubnet(subnet(), [
    pool("x", { subnet: "198.51.100.0/24", ips: ["198.51.100.1"] }),
    pool("y", { ipVersion: 6, subnet: "2001:db8::/64", ips: ["2001:db8::1"] }),
  ]);
  assert.deepEqual(plan.adopt, []);
  assert.equal(plan.pools, 0);
});

Deno.test("planSubnet: a pool controlled by something else is not taken; an event says what to do", () => {
  const p = pool("p1", {}, {
    metadata: {
      name: "p1",
      ownerReferences: [{ apiVersion: "apps/v1", kind: "Deployment", name: "d", uid: "u", controller: true }],
    },
  });
  const plan = planSubnet(subnet(), [p]);
  assert.deepEqual(plan.adopt, []);
  assert.equal(plan.events[0].reason, SUBNET_EVENT.adoptionRefused);
  assert.equal(plan.events[0].pool, "p1");
  assert.match(plan.events[0].message, /controlled by Deployment "d"/);
});

Deno.test("planSubnet: a controller reference left by a deleted subnet of the same name is replaced", () => {
  const p = pool("p1", {}, {
    metadata: {
      name: "p1",
      ownerReferences: [ownerRef("old-uid")],
      labels: { [LABEL.ownerSpiderSubnet]: "s" },
    },
  });
  const plan = planSubnet(subnet(), [p]);
  assert.deepEqual(plan.adopt[0].patch.metadata.ownerReferences, [ownerRef()]);
});

Deno.test("planSubnet: IPs of a pool outside the subnet's ips raise an event on the pool; only the inside counts", () => {
  const plan = planSubnet(subnet({ ips: ["192.0.2.1-192.0.2.15"] }), [
    owned("p1", ["192.0.2.10-192.0.2.19"]),
  ]);
  const ev = plan.events.find((e) => e.reason === SUBNET_EVENT.outsideSubnet);
  assert.ok(ev);
  assert.equal(ev.pool, "p1");
  assert.match(ev.message, /192\.0\.2\.16-192\.0\.2\.19/);
  assert.equal(plan.status?.controlledIPPools, JSON.stringify({ p1: { ips: ["192.0.2.10-192.0.2.15"] } }));
  assert.equal(plan.allocated, 6);
});

Deno.test("planSubnet: auto-pool entries are kept (even before their pool exists); a missing one is rebuilt", () => {
  const labels = {
    [LABEL.ownerSpiderSubnet]: "s",
    [LABEL.ownerApplicationGV]: "apps_v1",
    [LABEL.ownerApplicationKind]: "Deployment",
    [LABEL.ownerApplicationNamespace]: "default",
    [LABEL.ownerApplicationName]: "web",
    [LABEL.ownerApplicationUID]: "u-web",
  };
  const auto = pool("auto4-web-eth0-1a2b3", { ips: ["192.0.2.50-192.0.2.52"] }, {
    metadata: { name: "auto4-web-eth0-1a2b3", labels, ownerReferences: [ownerRef()] },
  });
  assert.equal(applicationOf(auto), "apps_v1_Deployment_default_web");
  const pending = {
    "auto4-db-eth0-99999": { ips: ["192.0.2.60-192.0.2.61"], application: "apps_v1_StatefulSet_default_db" },
  };
  const plan = planSubnet(subnet({}, { status: { controlledIPPools: JSON.stringify(pending) } }), [auto]);
  assert.deepEqual(JSON.parse(plan.status!.controlledIPPools!), {
    "auto4-db-eth0-99999": pending["auto4-db-eth0-99999"],
    "auto4-web-eth0-1a2b3": { ips: ["192.0.2.50-192.0.2.52"], application: "apps_v1_Deployment_default_web" },
  });
  assert.equal(plan.allocated, 5);
});

Deno.test("planSubnet: the entry of a deleted manual pool is dropped", () => {
  const prev = { gone: { ips: ["192.0.2.10"] }, p1: { ips: ["192.0.2.20"] } };
  const plan = planSubnet(subnet({}, { status: { controlledIPPools: JSON.stringify(prev) } }), [
    owned("p1", ["192.0.2.20"]),
  ]);
  assert.equal(plan.status?.controlledIPPools, JSON.stringify({ p1: { ips: ["192.0.2.20"] } }));
});

Deno.test("planSubnet: unreadable controlledIPPools: an event, and it is rebuilt from the pools", () => {
  const plan = planSubnet(subnet({}, { status: { controlledIPPools: "{oops" } }), [
    owned("p1", ["192.0.2.20"]),
  ]);
  assert.equal(plan.events[0].reason, SUBNET_EVENT.invalidControlledIPPools);
  assert.equal(plan.status?.controlledIPPools, JSON.stringify({ p1: { ips: ["192.0.2.20"] } }));
});

Deno.test("planSubnet: an invalid spec only raises an event", () => {
  for (const s of [subnet({ subnet: "nonsense" }), subnet({ ips: ["192.0.2.1-192.0.2"] })]) {
    const plan = planSubnet(s, [owned("p1", ["192.0.2.20"])]);
    assert.equal(plan.events[0].reason, SUBNET_EVENT.invalidSpec);
    assert.equal(plan.status, undefined);
    assert.deepEqual(plan.adopt, []);
  }
});

Deno.test("planSubnet: deletion: foreground first, waits for its pools, then drops the finalizer", () => {
  const deleting = (finalizers: string[], status = {}) =>
    subnet({}, {
      metadata: { name: "s", uid: SUBNET_UID, deletionTimestamp: "2026-01-01T00:00:00Z", finalizers },
      status,
    });
  const withPool = planSubnet(deleting([FINALIZER]), [owned("p1", ["192.0.2.20"])]);
  assert.equal(withPool.foregroundDelete, true);
  assert.equal(withPool.removeFinalizer, false);
  assert.ok(withPool.events.some((e) => e.reason === SUBNET_EVENT.waitingForIPPools && /p1/.test(e.message)));
  const fg = planSubnet(deleting([FINALIZER, FOREGROUND_DELETION]), [owned("p1", ["192.0.2.20"])]);
  assert.equal(fg.foregroundDelete, false);
  // The garbage collector deleted the pools and took foregroundDeletion off; a cache behind still shows them,
  // terminating: no second foreground delete, the subnet waits for them to go.
  const terminatingPool = owned("p1", ["192.0.2.20"]);
  terminatingPool.metadata = { ...terminatingPool.metadata, deletionTimestamp: "2026-01-01T00:00:01Z" };
  const afterGc = planSubnet(deleting([FINALIZER]), [terminatingPool]);
  assert.equal(afterGc.foregroundDelete, false);
  assert.equal(afterGc.removeFinalizer, false);
  // Orphaning (kubectl delete --cascade=orphan) is respected: no foreground, and orphaned pools stop counting.
  const orphan = planSubnet(deleting([FINALIZER, "orphan"]), [
    pool("p1", { ips: ["192.0.2.20"] }, {
      metadata: { name: "p1", labels: { [LABEL.ownerSpiderSubnet]: "s" } },
    }),
  ]);
  assert.equal(orphan.foregroundDelete, false);
  assert.equal(orphan.removeFinalizer, true);
  const empty = planSubnet(
    deleting([FINALIZER, FOREGROUND_DELETION], {
      controlledIPPools: JSON.stringify({ p1: { ips: ["192.0.2.20"] } }),
    }),
    [],
  );
  assert.equal(empty.removeFinalizer, true);
  assert.deepEqual(empty.adopt, []);
  const noPoolsAdopted = planSubnet(deleting([FINALIZER, FOREGROUND_DELETION]), [pool("p9", {})]);
  assert.deepEqual(noPoolsAdopted.adopt, []);
});

Deno.test("planSubnet: from arbitrary states, applying the plan once converges", () => {
  const pools = [
    pool("free", { ips: ["192.0.2.30-192.0.2.39"] }, { metadata: { name: "free", resourceVersion: "1" } }),
    owned("mine", ["192.0.2.40", "192.0.2.41"]),
    pool("other-net", { subnet: "198.51.100.0/24", ips: ["198.51.100.1"] }),
  ];
  for (
    const status of [{}, {
      totalIPCount: 1,
      allocatedIPCount: 99,
      controlledIPPools: '{"x":{"ips":["192.0.2.1"]}}',
    }]
  ) {
    let s = subnet({}, { status });
    let ps = pools;
    const plan = planSubnet(s, ps);
    ps = ps.map((p) => {
      const a = plan.adopt.find((x) => x.pool === p.metadata?.name);
      if (!a) return p;
      const { labels, ownerReferences } = a.patch.metadata;
      return {
        ...p,
        metadata: { ...p.metadata, labels: { ...p.metadata?.labels, ...labels }, ownerReferences },
      };
    });
    s = { ...s, status: { ...s.status, ...plan.status } as SpiderSubnet["status"] };
    if (s.status?.controlledIPPools === null) delete s.status.controlledIPPools;
    const again = planSubnet(s, ps);
    assert.deepEqual(
      [again.adopt, again.status, again.labels],
      [[], undefined, undefined],
      JSON.stringify(status),
    );
    assert.equal(again.allocated, 12);
  }
});

// ---------------------------------------------------------------------------------------------------------------

Deno.test("WorkQueue: a key is queued once however often it is added, in FIFO order", async () => {
  const q = new WorkQueue();
  for (const k of ["a", "b", "a", "c", "b"]) q.add(k);
  assert.equal(q.length, 3);
  assert.deepEqual([await q.get(), await q.get(), await q.get()], ["a", "b", "c"]);
});

Deno.test("WorkQueue: a key added while processed is handed out again only after done", async () => {
  const q = new WorkQueue();
  q.add("a");
  const k = await q.get();
  q.add("a");
  assert.equal(q.length, 0, "not handed to a second worker");
  q.done(k!);
  assert.equal(q.length, 1);
  assert.equal(await q.get(), "a");
  q.done("a");
  assert.ok(q.idle());
});

Deno.test("WorkQueue: failed keys come back after a doubling backoff, reset by forget", async () => {
  assert.deepEqual([1, 2, 3, 20].map((n) => backoffDelay(n)), [10, 20, 40, 30_000]);
  const q = new WorkQueue({ baseMs: 5, maxMs: 50 });
  q.addRateLimited("a");
  q.addRateLimited("a");
  assert.equal(q.failures("a"), 2);
  assert.equal(q.delayed, 1);
  assert.equal(await q.get(), "a");
  q.forget("a");
  assert.equal(q.failures("a"), 0);
  q.done("a");
});

Deno.test("WorkQueue: whenIdle resolves after the last key is done; shutDown releases waiting workers", async () => {
  const q = new WorkQueue();
  q.add("a");
  let idle = false;
  const p = q.whenIdle().then(() => idle = true);
  const k = await q.get();
  await Promise.resolve();
  assert.equal(idle, false);
  q.done(k!);
  await p;
  const waiting = q.get();
  q.shutDown();
  assert.equal(await waiting, undefined);
  q.add("b");
  assert.equal(q.length, 0);
});
