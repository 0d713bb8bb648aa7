// The auto-pool rules of src/ipam/autopool.ts as a specification: replica sources, sizes, names, labels,
// pre-allocation from the subnet (grow, shrink, recovery from interrupted writes), pool selection and the
// leftovers of deleted applications.
import assert from "node:assert/strict";
import { AnnotationError } from "../../src/api/annotations.ts";
import { parseConfig } from "../../src/api/config.ts";
import { FINALIZER, LABEL } from "../../src/api/constants.ts";
import type { SpiderIPPool, SpiderReservedIP, SpiderSubnet } from "../../src/api/types.ts";
import { IPRangeSet } from "../../src/ip/mod.ts";
import {
  agentAutoPool,
  AllocatedElsewhereError,
  applicationFromKey,
  applicationKey,
  appReplicas,
  appSkipReason,
  autoPoolConfig,
  autoPoolLabels,
  autoPoolName,
  type AutoPoolWant,
  autoPoolWants,
  desiredIPCount,
  InsufficientSubnetIPsError,
  ipNumberAnnotation,
  isNativeApp,
  jobPodCount,
  lowest,
  newAutoPool,
  planPreAllocation,
  poolApplication,
  PoolFreeIPsNotEnoughError,
  reclaimablePool,
  reservedAddresses,
  selectAutoPool,
  staleEntries,
  SubnetChangedError,
} from "../../src/ipam/autopool.ts";
import { looksConverged } from "../../src/ipam/autopool_ensure.ts";
import { autoPoolWaitFromEnv } from "../../src/agent/autopool.ts";
import type { TopController } from "../../src/ipam/workload.ts";

const set4 = (...items: string[]) => IPRangeSet.parse(4, items);
const APP: TopController = {
  apiVersion: "apps/v1",
  kind: "Deployment",
  namespace: "default",
  name: "nginx",
  uid: "5c1f2a4e-0d6b-4a8e-9a2b-9a2b3c4d5e6f",
};
const SUBNET: SpiderSubnet = {
  apiVersion: "spiderpool.spidernet.io/v2beta1",
  kind: "SpiderSubnet",
  metadata: { name: "s4", uid: "subnet-uid" },
  spec: {
    ipVersion: 4,
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.10-192.0.2.100"],
    gateway: "192.0.2.1",
    routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.254" }],
  },
};
const WANT: AutoPoolWant = { subnet: "s4", family: 4, ifName: "eth0" };

Deno.test("jobPodCount: upstream's table of parallelism and completions", () => {
  const table: [number | undefined, number | undefined, number][] = [
    [undefined, undefined, 1],
    [3, undefined, 3],
    [0, undefined, 1],
    [undefined, 4, 4],
    [undefined, 0, 1],
    [2, 5, 5],
    [7, 0, 1],
    [0, 6, 6],
  ];
  for (const [p, c, want] of table) {
    assert.equal(jobPodCount(p, c), want, `parallelism ${p} completions ${c}`);
  }
});

Deno.test("appReplicas: the replica source of each kind", () => {
  const meta = { name: "a" };
  assert.equal(appReplicas("Deployment", { metadata: meta, spec: { replicas: 3 } }), 3);
  assert.equal(appReplicas("Deployment", { metadata: meta, spec: {} }), 0, "nil replicas count 0");
  assert.equal(appReplicas("ReplicaSet", { metadata: meta, spec: { replicas: 2 } }), 2);
  assert.equal(appReplicas("StatefulSet", { metadata: meta, spec: { replicas: 5 } }), 5);
  assert.equal(
    appReplicas("DaemonSet", {
      metadata: meta,
      spec: { replicas: 9 },
      status: { desiredNumberScheduled: 4 },
    }),
    4,
    "DaemonSets count the nodes they are scheduled on",
  );
  assert.equal(appReplicas("DaemonSet", { metadata: meta }), 0);
  assert.equal(appReplicas("Job", { metadata: meta, spec: { parallelism: 2, completions: 6 } }), 6);
  assert.equal(
    appReplicas("CronJob", { metadata: meta, spec: { jobTemplate: { spec: { parallelism: 3 } } } }),
    3,
  );
  assert.equal(appReplicas("CronJob", { metadata: meta, spec: {} }), 1);
  assert.throws(() => appReplicas("Widget", { metadata: meta }), /not an application kind/);
});

Deno.test("isNativeApp: the six kinds at their API group version; anything else is third-party", () => {
  for (const [kind, gv] of Object.entries({ Deployment: "apps/v1", Job: "batch/v1", CronJob: "batch/v1" })) {
    assert.equal(isNativeApp({ apiVersion: gv, kind }), true);
  }
  assert.equal(isNativeApp({ apiVersion: "apps/v1beta1", kind: "Deployment" }), false);
  assert.equal(isNativeApp({ apiVersion: "example.com/v1", kind: "Widget" }), false);
  assert.equal(isNativeApp({ apiVersion: "v1", kind: "Pod" }), false);
});

const subnetAnno = { "ipam.spidernet.io/subnet": '{"ipv4":["s4"]}' };

Deno.test("appSkipReason: hostNetwork, owned ReplicaSets and Jobs, and templates without subnet annotations", () => {
  const template = (annotations: Record<string, string>, hostNetwork = false) => ({
    metadata: { annotations },
    spec: { hostNetwork },
  });
  const owner = (
    apiVersion: string,
    kind: string,
  ) => [{ apiVersion, kind, name: "top", uid: "u", controller: true }];
  assert.equal(
    appSkipReason("Deployment", { metadata: { name: "a" }, spec: { template: template(subnetAnno) } }),
    undefined,
  );
  assert.match(
    appSkipReason("Deployment", { metadata: { name: "a" }, spec: { template: template(subnetAnno, true) } })!,
    /host network/,
  );
  assert.match(
    appSkipReason("Deployment", { metadata: { name: "a" }, spec: { template: template({}) } })!,
    /no/,
  );
  assert.match(
    appSkipReason("ReplicaSet", {
      metadata: { name: "a", ownerReferences: owner("apps/v1", "Deployment") },
      spec: { template: template(subnetAnno) },
    })!,
    /owned by Deployment top/,
  );
  // A ReplicaSet of something else (or of nobody) is sized itself.
  assert.equal(
    appSkipReason("ReplicaSet", {
      metadata: { name: "a", ownerReferences: owner("example.com/v1", "Rollout") },
      spec: { template: template(subnetAnno) },
    }),
    undefined,
  );
  assert.match(
    appSkipReason("Job", {
      metadata: { name: "a", ownerReferences: owner("batch/v1", "CronJob") },
      spec: { template: template(subnetAnno) },
    })!,
    /owned by CronJob/,
  );
  assert.equal(
    appSkipReason("CronJob", {
      metadata: { name: "a" },
      spec: { jobTemplate: { spec: { template: template(subnetAnno) } } },
    }),
    undefined,
    "a CronJob's template is in its jobTemplate",
  );
});

Deno.test("autoPoolConfig: sources, flexible and fixed numbers, the cluster default and reclaim", () => {
  assert.equal(autoPoolConfig({ "ipam.spidernet.io/ippool": '{"ipv4":["a"]}' }, 1), undefined);
  assert.deepEqual(autoPoolConfig(subnetAnno, 1), {
    annotation: "ipam.spidernet.io/subnet",
    sources: [{ interface: "eth0", ipv4: "s4" }],
    ipNumber: { flexible: true, n: 1 },
    defaulted: true,
    reclaim: true,
  });
  assert.deepEqual(
    autoPoolConfig({ ...subnetAnno, "ipam.spidernet.io/ippool-ip-number": "+3" }, 1)?.ipNumber,
    {
      flexible: true,
      n: 3,
    },
  );
  assert.deepEqual(
    autoPoolConfig({ ...subnetAnno, "ipam.spidernet.io/ippool-ip-number": "5" }, 1)?.ipNumber,
    {
      flexible: false,
      n: 5,
    },
  );
  assert.equal(
    autoPoolConfig({ ...subnetAnno, "ipam.spidernet.io/ippool-reclaim": "false" }, 1)?.reclaim,
    false,
  );
  assert.equal(autoPoolConfig(subnetAnno, 0)?.ipNumber.n, 0, "the cluster default is used when absent");
  // subnets wins over subnet.
  const both = autoPoolConfig({
    ...subnetAnno,
    "ipam.spidernet.io/subnets":
      '[{"interface":"eth0","ipv4":["a4"],"ipv6":["a6"]},{"interface":"net1","ipv4":["b4"]}]',
  }, 1);
  assert.equal(both?.annotation, "ipam.spidernet.io/subnets");
  assert.deepEqual(both?.sources, [{ interface: "eth0", ipv4: "a4", ipv6: "a6" }, {
    interface: "net1",
    ipv4: "b4",
  }]);
  for (const bad of ["++1", "-1", "x", "+"]) {
    assert.throws(
      () => autoPoolConfig({ ...subnetAnno, "ipam.spidernet.io/ippool-ip-number": bad }, 1),
      AnnotationError,
      bad,
    );
  }
  assert.throws(
    () => autoPoolConfig({ ...subnetAnno, "ipam.spidernet.io/ippool-reclaim": "maybe" }, 1),
    AnnotationError,
  );
});

Deno.test("the cluster default +N: both ConfigMap keys, the first wins, default 1", () => {
  assert.equal(parseConfig("enableIPv4: true\n").clusterSubnetDefaultFlexibleIPNumber, 1);
  assert.equal(
    parseConfig("clusterSubnetDefaultFlexibleIPNumber: 4\n").clusterSubnetDefaultFlexibleIPNumber,
    4,
  );
  assert.equal(
    parseConfig("clusterSubnetAutoPoolDefaultRedundantIPNumber: 2\n").clusterSubnetDefaultFlexibleIPNumber,
    2,
  );
  assert.equal(
    parseConfig("clusterSubnetDefaultFlexibleIPNumber: 0\nclusterSubnetAutoPoolDefaultRedundantIPNumber: 2\n")
      .clusterSubnetDefaultFlexibleIPNumber,
    0,
  );
});

Deno.test("desiredIPCount and the pool annotation: +N is replicas + N, N is N", () => {
  assert.equal(desiredIPCount({ flexible: true, n: 1 }, 3), 4);
  assert.equal(desiredIPCount({ flexible: true, n: 0 }, 0), 0);
  assert.equal(desiredIPCount({ flexible: false, n: 5 }, 30), 5);
  assert.equal(ipNumberAnnotation({ flexible: true, n: 2 }), "+2");
  assert.equal(ipNumberAnnotation({ flexible: false, n: 7 }), "7");
});

Deno.test("autoPoolWants: one pool per NIC and enabled family", () => {
  const sources = [{ interface: "eth0", ipv4: "a4", ipv6: "a6" }, { interface: "net1", ipv6: "b6" }];
  assert.deepEqual(autoPoolWants({ sources }, { enableIPv4: true, enableIPv6: true }), [
    { subnet: "a4", family: 4, ifName: "eth0" },
    { subnet: "a6", family: 6, ifName: "eth0" },
    { subnet: "b6", family: 6, ifName: "net1" },
  ]);
  assert.deepEqual(autoPoolWants({ sources }, { enableIPv4: true, enableIPv6: false }), [
    { subnet: "a4", family: 4, ifName: "eth0" },
  ]);
});

Deno.test("autoPoolName: auto{4|6}-{app}-{if}-{uid5}, lower case, at most 253 characters", () => {
  assert.equal(autoPoolName("nginx", 4, "eth0", APP.uid), "auto4-nginx-eth0-9a2b3");
  assert.equal(autoPoolName("web", 6, "NET1", "ABC-DEF"), "auto6-web-net1-def");
  assert.equal(autoPoolName("web", 4, "eth0", "abcdefgh"), "auto4-web-eth0-abcde", "a UID without dashes");
  const long = "a".repeat(253);
  const name = autoPoolName(long, 4, "eth0", APP.uid);
  assert.equal(name.length, 253);
  assert.ok(name.endsWith("-eth0-9a2b3"));
  assert.equal(autoPoolName("a".repeat(240), 4, "eth0", APP.uid).length, 253);
  assert.equal(autoPoolName("a".repeat(200), 4, "eth0", APP.uid), `auto4-${"a".repeat(200)}-eth0-9a2b3`);
});

Deno.test("application keys: apps_v1_Deployment_ns_name, v1 without a group, and back", () => {
  assert.equal(applicationKey(APP), "apps_v1_Deployment_default_nginx");
  assert.equal(applicationKey({ apiVersion: "v1", kind: "Pod", namespace: "n", name: "p" }), "v1_Pod_n_p");
  assert.deepEqual(applicationFromKey("batch_v1_CronJob_ns_nightly"), {
    apiVersion: "batch/v1",
    kind: "CronJob",
    namespace: "ns",
    name: "nightly",
  });
  assert.equal(applicationFromKey("garbage"), undefined);
});

Deno.test("newAutoPool: spec, labels, annotation, podAffinity, owner reference and finalizer as upstream", () => {
  const pool = newAutoPool({
    app: APP,
    subnet: SUBNET,
    want: WANT,
    reclaim: true,
    ipNumber: { flexible: true, n: 1 },
    ips: ["192.0.2.10-192.0.2.12"],
  });
  assert.deepEqual(pool.metadata, {
    name: "auto4-nginx-eth0-9a2b3",
    labels: {
      "ipam.spidernet.io/owner-spider-subnet": "s4",
      "ipam.spidernet.io/owner-application-gv": "apps_v1",
      "ipam.spidernet.io/owner-application-kind": "Deployment",
      "ipam.spidernet.io/owner-application-namespace": "default",
      "ipam.spidernet.io/owner-application-name": "nginx",
      "ipam.spidernet.io/owner-application-uid": APP.uid,
      "ipam.spidernet.io/interface": "eth0",
      "ipam.spidernet.io/ippool-reclaim": "true",
      "ipam.spidernet.io/ip-version": "IPv4",
      "ipam.spidernet.io/ippool-cidr": "192-0-2-0-24",
    },
    annotations: { "ipam.spidernet.io/ippool-ip-number": "+1" },
    finalizers: [FINALIZER],
    ownerReferences: [{
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderSubnet",
      name: "s4",
      uid: "subnet-uid",
      controller: true,
      blockOwnerDeletion: true,
    }],
  });
  assert.deepEqual(pool.spec, {
    ipVersion: 4,
    subnet: "192.0.2.0/24",
    ips: ["192.0.2.10-192.0.2.12"],
    gateway: "192.0.2.1",
    routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.254" }],
    podAffinity: {
      matchLabels: {
        "ipam.spidernet.io/app-api-group": "apps",
        "ipam.spidernet.io/app-api-version": "v1",
        "ipam.spidernet.io/app-kind": "Deployment",
        "ipam.spidernet.io/app-namespace": "default",
        "ipam.spidernet.io/app-name": "nginx",
      },
    },
  });
  assert.deepEqual(poolApplication(pool), { ...APP });
  const core = newAutoPool({
    app: { ...APP, apiVersion: "v1", kind: "ReplicationController" },
    subnet: { ...SUBNET, spec: { ...SUBNET.spec, gateway: undefined, routes: undefined } },
    want: { ...WANT, family: 6 },
    reclaim: false,
    ipNumber: { flexible: false, n: 2 },
    ips: [],
  });
  assert.equal(core.metadata.labels?.[LABEL.ownerApplicationGV], "v1");
  assert.equal(core.metadata.labels?.[LABEL.ippoolReclaim], "false");
  assert.equal(core.metadata.labels?.[LABEL.ipVersion], "IPv6");
  assert.equal(core.spec.podAffinity?.matchLabels?.[LABEL.appAPIGroup], "");
  assert.equal("gateway" in core.spec, false);
  assert.equal(core.metadata.annotations?.["ipam.spidernet.io/ippool-ip-number"], "2");
});

Deno.test("autoPoolLabels: an application name too long for a label is refused with the fix", () => {
  assert.throws(
    () =>
      autoPoolLabels({ app: { ...APP, name: "n".repeat(64) }, subnet: SUBNET, want: WANT, reclaim: true }),
    /at most 63 characters/,
  );
});

function autoPool(
  name: string,
  labels: Record<string, string>,
  ips: string[],
  extra: Partial<SpiderIPPool["metadata"]> = {},
): SpiderIPPool {
  const p = newAutoPool({
    app: APP,
    subnet: SUBNET,
    want: WANT,
    reclaim: true,
    ipNumber: { flexible: true, n: 1 },
    ips,
  });
  return { ...p, metadata: { ...p.metadata, name, labels: { ...p.metadata.labels, ...labels }, ...extra } };
}

Deno.test("selectAutoPool: own UID first, reclaim-false pools reused, reclaimable pools of a deleted namesake skipped", () => {
  const own = autoPool("own", {}, ["192.0.2.10"]);
  const kept = autoPool("kept", { [LABEL.ownerApplicationUID]: "old", [LABEL.ippoolReclaim]: "false" }, []);
  const dying = autoPool("dying", { [LABEL.ownerApplicationUID]: "older" }, []);
  const otherNIC = autoPool("net1", { [LABEL.interface]: "net1" }, []);
  const otherApp = autoPool("other", { [LABEL.ownerApplicationName]: "apache" }, []);
  assert.equal(selectAutoPool([kept, own, dying, otherNIC, otherApp], APP, WANT)?.metadata.name, "own");
  assert.equal(selectAutoPool([kept, dying, otherNIC], APP, WANT)?.metadata.name, "kept");
  assert.equal(selectAutoPool([dying, otherApp], APP, WANT), undefined);
  const terminating = autoPool("t", {}, [], { deletionTimestamp: "2026-01-01T00:00:00Z" });
  assert.equal(selectAutoPool([terminating], APP, WANT), undefined);
});

Deno.test("selectAutoPool: a pool of another SpiderSubnet is ApplicationSubnetChanged, with the fix", () => {
  const own = autoPool("own", {}, ["192.0.2.10"]);
  assert.throws(
    () => selectAutoPool([own], APP, { ...WANT, subnet: "s4-new" }),
    (e: Error) =>
      e instanceof SubnetChangedError &&
      /belongs to SpiderSubnet "s4"; an auto-created pool cannot move/.test(e.message) &&
      /set the annotation back to "s4"/.test(e.message),
  );
  // Same name, re-created with another CIDR.
  const moved = { ...SUBNET, spec: { ...SUBNET.spec, subnet: "198.51.100.0/24" } };
  assert.throws(() => selectAutoPool([own], APP, WANT, moved), SubnetChangedError);
});

Deno.test("agentAutoPool: exact labels with UID and subnet; several is an error", () => {
  const own = autoPool("own", {}, ["192.0.2.10"]);
  const kept = autoPool("kept", { [LABEL.ownerApplicationUID]: "old", [LABEL.ippoolReclaim]: "false" }, []);
  assert.equal(agentAutoPool([own, kept], APP, WANT)?.metadata.name, "own");
  assert.equal(agentAutoPool([kept], APP, WANT), undefined, "the controller refreshes the UID label first");
  assert.equal(agentAutoPool([own], APP, { ...WANT, subnet: "s4-new" }), undefined);
  assert.throws(
    () => agentAutoPool([own, { ...own, metadata: { ...own.metadata, name: "twin" } }], APP, WANT),
    /delete the extra/,
  );
});

const base = {
  subnetName: "s4",
  poolName: "auto4-nginx-eth0-9a2b3",
  family: 4 as const,
  subnetTotal: set4("192.0.2.10-192.0.2.29"),
  reserved: IPRangeSet.empty(4),
  others: IPRangeSet.empty(4),
  allocated: IPRangeSet.empty(4),
};

Deno.test("planPreAllocation: a new pool takes the lowest free addresses (others and reserved skipped)", () => {
  const plan = planPreAllocation({
    ...base,
    others: set4("192.0.2.10-192.0.2.11", "192.0.2.14"),
    reserved: set4("192.0.2.13"),
    desired: 3,
  });
  assert.deepEqual(plan.ips.toStrings(), ["192.0.2.12", "192.0.2.15-192.0.2.16"]);
  assert.deepEqual(plan.added.toStrings(), plan.ips.toStrings());
  assert.equal(plan.removed.isEmpty(), true);
});

Deno.test("planPreAllocation: growing keeps what the pool has and appends the lowest free", () => {
  const plan = planPreAllocation({
    ...base,
    entry: set4("192.0.2.20-192.0.2.21"),
    poolIPs: set4("192.0.2.20-192.0.2.21"),
    others: set4("192.0.2.10-192.0.2.11"),
    desired: 4,
  });
  assert.deepEqual(plan.ips.toStrings(), ["192.0.2.12-192.0.2.13", "192.0.2.20-192.0.2.21"]);
  assert.deepEqual(plan.added.toStrings(), ["192.0.2.12-192.0.2.13"]);
});

Deno.test("planPreAllocation: not enough free addresses is upstream's error, naming required and left", () => {
  assert.throws(
    () => planPreAllocation({ ...base, others: set4("192.0.2.10-192.0.2.27"), desired: 5 }),
    (e: Error) =>
      e instanceof InsufficientSubnetIPsError && e.required === 5n && e.left === 2n &&
      /insufficient subnet FreeIPs, required '5' but only left '2'/.test(e.message),
  );
});

Deno.test("planPreAllocation: shrinking gives back the lowest unallocated addresses", () => {
  const plan = planPreAllocation({
    ...base,
    entry: set4("192.0.2.10-192.0.2.14"),
    poolIPs: set4("192.0.2.10-192.0.2.14"),
    allocated: set4("192.0.2.10", "192.0.2.12"),
    desired: 3,
  });
  assert.deepEqual(plan.removed.toStrings(), ["192.0.2.11", "192.0.2.13"]);
  assert.deepEqual(plan.ips.toStrings(), ["192.0.2.10", "192.0.2.12", "192.0.2.14"]);
});

Deno.test("planPreAllocation: a shrink that would drop allocated addresses is upstream's error", () => {
  assert.throws(
    () =>
      planPreAllocation({
        ...base,
        entry: set4("192.0.2.10-192.0.2.12"),
        poolIPs: set4("192.0.2.10-192.0.2.12"),
        allocated: set4("192.0.2.10-192.0.2.11"),
        desired: 1,
      }),
    (e: Error) =>
      e instanceof PoolFreeIPsNotEnoughError &&
      /IPPool available free IPs are not enough \(2 to give back, 1 not allocated\)/.test(e.message),
  );
});

Deno.test("planPreAllocation: the right size changes nothing (idempotent)", () => {
  const plan = planPreAllocation({
    ...base,
    entry: set4("192.0.2.15-192.0.2.16"),
    poolIPs: set4("192.0.2.15-192.0.2.16"),
    desired: 2,
  });
  assert.deepEqual(plan.ips.toStrings(), ["192.0.2.15-192.0.2.16"]);
  assert.equal(plan.added.isEmpty() && plan.removed.isEmpty(), true);
});

Deno.test("planPreAllocation: a pod given an address between the subnet write and the pool write keeps it", () => {
  // The entry already shrank to .10-.11, the pool write failed because a pod took .12 meanwhile.
  const plan = planPreAllocation({
    ...base,
    entry: set4("192.0.2.10-192.0.2.11"),
    poolIPs: set4("192.0.2.10-192.0.2.13"),
    allocated: set4("192.0.2.10", "192.0.2.12"),
    desired: 2,
  });
  assert.deepEqual(plan.ips.toStrings(), ["192.0.2.10", "192.0.2.12"]);
});

Deno.test("planPreAllocation: a missing entry is rebuilt from the pool (created before a crash)", () => {
  const plan = planPreAllocation({
    ...base,
    poolIPs: set4("192.0.2.20-192.0.2.22"),
    allocated: set4("192.0.2.20"),
    desired: 3,
  });
  assert.deepEqual(plan.ips.toStrings(), ["192.0.2.20-192.0.2.22"]);
  assert.equal(plan.added.isEmpty() && plan.removed.isEmpty(), true, "no address moves");
});

Deno.test("planPreAllocation: addresses another pool has are dropped from the entry unless a pod holds them", () => {
  const plan = planPreAllocation({
    ...base,
    entry: set4("192.0.2.10-192.0.2.12"),
    poolIPs: set4("192.0.2.10-192.0.2.12"),
    others: set4("192.0.2.11"),
    desired: 3,
  });
  assert.equal(plan.ips.has(set4("192.0.2.11").first()!), false);
  assert.equal(plan.ips.count(), 3n);
  assert.throws(
    () =>
      planPreAllocation({
        ...base,
        poolIPs: set4("192.0.2.10-192.0.2.12"),
        entry: set4("192.0.2.10"),
        allocated: set4("192.0.2.11"),
        others: set4("192.0.2.11"),
        desired: 3,
      }),
    AllocatedElsewhereError,
  );
});

Deno.test("planPreAllocation: an IPv6 subnet of 2^64 addresses is planned by ranges", () => {
  const plan = planPreAllocation({
    ...base,
    family: 6,
    subnetTotal: IPRangeSet.parse(6, ["2001:db8::-2001:db8::ffff:ffff:ffff:ffff"]),
    reserved: IPRangeSet.empty(6),
    others: IPRangeSet.parse(6, ["2001:db8::-2001:db8::ff"]),
    allocated: IPRangeSet.empty(6),
    desired: 1000,
  });
  assert.deepEqual(plan.ips.toStrings(), ["2001:db8::100-2001:db8::4e7"]);
});

Deno.test("lowest: takes across ranges and stops at the count", () => {
  assert.deepEqual(lowest(set4("192.0.2.1-192.0.2.2", "192.0.2.5-192.0.2.9"), 4n).toStrings(), [
    "192.0.2.1-192.0.2.2",
    "192.0.2.5-192.0.2.6",
  ]);
  assert.equal(lowest(set4("192.0.2.1"), 5n).count(), 1n);
  assert.equal(lowest(set4("192.0.2.1"), 0n).isEmpty(), true);
});

Deno.test("reservedAddresses: non-terminating SpiderReservedIPs of the family", () => {
  const r = (name: string, ips: string[], extra: Record<string, unknown> = {}): SpiderReservedIP => ({
    metadata: { name, ...extra },
    spec: { ips },
  } as SpiderReservedIP);
  const got = reservedAddresses([
    r("a", ["192.0.2.5", "192.0.2.7-192.0.2.8"]),
    r("b", ["2001:db8::1"]),
    r("c", ["192.0.2.9"], { deletionTimestamp: "2026-01-01T00:00:00Z" }),
  ], 4);
  assert.deepEqual(got.toStrings(), ["192.0.2.5", "192.0.2.7-192.0.2.8"]);
});

Deno.test("reclaimablePool: reclaim-true pools of a gone application or of another UID", () => {
  const pool = autoPool("p", {}, []);
  assert.equal(reclaimablePool(pool, { exists: false }), true);
  assert.equal(reclaimablePool(pool, { exists: true, uid: "someone-else" }), true);
  assert.equal(reclaimablePool(pool, { exists: true, uid: APP.uid }), false);
  assert.equal(reclaimablePool(pool, { exists: "unknown" }), false);
  const kept = autoPool("k", { [LABEL.ippoolReclaim]: "false" }, []);
  assert.equal(reclaimablePool(kept, { exists: false }), false);
  const dying = autoPool("d", {}, [], { deletionTimestamp: "2026-01-01T00:00:00Z" });
  assert.equal(reclaimablePool(dying, { exists: false }), false);
});

Deno.test("staleEntries: the application's entries whose pool is gone and that it does not want", () => {
  const app = "apps_v1_Deployment_default_nginx";
  const entries = {
    gone: { application: app },
    wanted: { application: app },
    live: { application: app },
    manual: {},
    theirs: { application: "apps_v1_Deployment_default_apache" },
  };
  const exists = (n: string) => n === "live";
  assert.deepEqual(staleEntries(entries, app, exists, new Set(["wanted"])), ["gone"]);
});

Deno.test("looksConverged: only a cached pool and subnet that already show the result skip the API", () => {
  const ips = ["192.0.2.10-192.0.2.12"];
  const pool = {
    ...autoPool("p", {}, ips),
    spec: { ...autoPool("p", {}, ips).spec, subnet: "192.0.2.0/24" },
  };
  const subnet = (entry?: { ips: string[]; application?: string }): SpiderSubnet => ({
    ...SUBNET,
    status: { controlledIPPools: entry ? JSON.stringify({ p: entry }) : undefined },
  });
  const input = {
    app: APP,
    want: WANT,
    desired: 3,
    ipNumber: { flexible: true, n: 1 },
    reclaim: true,
  };
  const mine = { ips, application: "apps_v1_Deployment_default_nginx" };
  assert.equal(looksConverged(input, pool, subnet(mine)), true);
  assert.equal(looksConverged({ ...input, desired: 4 }, pool, subnet(mine)), false, "another size");
  assert.equal(
    looksConverged(input, pool, subnet({ ...mine, ips: ["192.0.2.10-192.0.2.11", "192.0.2.20"] })),
    false,
  );
  assert.equal(looksConverged(input, pool, subnet({ ips })), false, "entry without its application");
  assert.equal(looksConverged(input, pool, subnet()), false, "no entry");
  assert.equal(
    looksConverged({ ...input, reclaim: false }, pool, subnet(mine)),
    false,
    "reclaim label to refresh",
  );
  assert.equal(looksConverged({ ...input, ipNumber: { flexible: false, n: 3 } }, pool, subnet(mine)), false);
  assert.equal(looksConverged({ ...input, app: { ...APP, uid: "new" } }, pool, subnet(mine)), false);
  assert.equal(looksConverged(input, undefined, subnet(mine)), false);
  assert.equal(looksConverged(input, pool, undefined), false);
});

Deno.test("autoPoolWaitFromEnv: upstream's 25 × 2 s, overridable, malformed values named", () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  assert.deepEqual(autoPoolWaitFromEnv(env({})), { maxRetries: 25, intervalMs: 2_000 });
  assert.deepEqual(
    autoPoolWaitFromEnv(env({
      SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES: "3",
      SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND: "0.5",
    })),
    { maxRetries: 3, intervalMs: 500 },
  );
  assert.deepEqual(autoPoolWaitFromEnv(env({ SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES: " " })).maxRetries, 25);
  for (
    const [k, v] of [
      ["SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES", "0"],
      ["SPIDERPOOL_WAIT_SUBNET_POOL_MAX_RETRIES", "ten"],
      ["SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND", "0"],
      ["SPIDERPOOL_WAIT_SUBNET_POOL_TIME_IN_SECOND", "2s"],
    ]
  ) {
    assert.throws(() => autoPoolWaitFromEnv(env({ [k]: v })), new RegExp(`${k}="${v}" is not`));
  }
});
