// One test per allocation bug reported against upstream Spiderpool: each must be impossible here.
import assert from "node:assert/strict";
import type { AllocatedIPs } from "../../src/api/allocated.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import { formatIP, IPRangeSet, parseIP } from "../../src/ip/mod.ts";
import {
  chooseIP,
  chooseIPs,
  decideRelease,
  decideRetrieval,
  poolCandidates,
  PoolExhaustedError,
  releaseIPs,
  requireUsablePools,
  restampIPs,
  type TopController,
} from "../../src/ipam/mod.ts";

const flags = { enableStatefulSet: true, enableKubevirtStaticIP: true };
const none4 = IPRangeSet.empty(4);
const pool = (name: string, ips: string[], subnet = "192.0.2.0/24", ipVersion: 4 | 6 = 4): SpiderIPPool => ({
  metadata: { name },
  spec: { ipVersion, subnet, ips },
});
const sts: TopController = {
  apiVersion: "apps/v1",
  kind: "StatefulSet",
  name: "db",
  namespace: "default",
  uid: "s",
};
const deploy: TopController = {
  apiVersion: "apps/v1",
  kind: "Deployment",
  name: "web",
  namespace: "default",
  uid: "d",
};
const endpoint = (uid: string, type: string, ip: string, pool = "v4-a"): SpiderEndpoint => ({
  metadata: { name: "db-0", namespace: "default" },
  status: {
    current: { uid, node: "n", ips: [{ interface: "eth0", ipv4: `${ip}/24`, ipv4Pool: pool }] },
    ownerControllerType: type,
    ownerControllerName: "db",
  },
});

Deno.test("Retried ADDs of a multi-NIC pod whose second pool is full never drain the first pool (upstream #4295)", () => {
  const nic1 = pool("nic1-pool", ["192.0.2.10-192.0.2.20"]);
  const nic2 = pool("nic2-pool", ["198.51.100.10"], "198.51.100.0/24");
  let records1: AllocatedIPs = {};
  const records2 = { "198.51.100.10": { pod: "default/other", podUid: "x" } };
  const me = { pod: "default/multi", podUid: "u1" };
  for (let retry = 0; retry < 10; retry++) {
    const r = chooseIP(nic1, none4, records1, me);
    records1 = r.records;
    assert.equal(r.ip, "192.0.2.10");
    assert.throws(() => chooseIP(nic2, none4, records2, me), PoolExhaustedError);
  }
  assert.deepEqual(Object.keys(records1), ["192.0.2.10"]);
});

Deno.test("A late release for the deleted same-name pod cannot free the new pod's address (upstream #1187)", () => {
  // The new pod (new UID) was given the address the old pod had.
  const records = { "192.0.2.10": { pod: "default/web-0", podUid: "new" } };
  const r = releaseIPs(records, ["192.0.2.10"], "old");
  assert.deepEqual(r.records, records);
  assert.deepEqual(r.released, []);
  // And so the next pod cannot be handed the same address.
  assert.equal(
    chooseIP(pool("v4-a", ["192.0.2.10-192.0.2.11"]), none4, r.records, { pod: "default/x", podUid: "x" }).ip,
    "192.0.2.11",
  );
  // A DEL carrying the old UID against the new pod's endpoint decides to do nothing.
  const d = decideRelease({
    requestUid: "old",
    ifName: "eth0",
    endpoint: endpoint("new", "Deployment", "192.0.2.10"),
    flags,
  });
  assert.equal(d.kind, "nothing");
});

Deno.test("A leftover endpoint of a deleted same-name pod is replaced, its IPs released by old UID (upstream #4916/#4982)", () => {
  const stale = endpoint("old", "Deployment", "192.0.2.10");
  const d = decideRetrieval({
    endpoint: stale,
    pod: { namespace: "default", uid: "new" },
    endpointName: "db-0",
    ifName: "eth0",
    top: deploy,
    flags,
  });
  assert.equal(d.kind, "replace-stale");
  if (d.kind !== "replace-stale") return;
  const records = { "192.0.2.10": { pod: "default/db-0", podUid: "old" } };
  assert.deepEqual(releaseIPs(records, d.release.map((x) => x.ip), d.staleUid).records, {});
});

Deno.test("A restarted StatefulSet pod keeps its IP and the old UID can no longer release it (upstream #2442/#2526)", () => {
  const p = pool("v4-a", ["192.0.2.10-192.0.2.20"]);
  const before = { "192.0.2.10": { pod: "default/db-0", podUid: "old" } };
  const d = decideRetrieval({
    endpoint: endpoint("old", "StatefulSet", "192.0.2.10"),
    pod: { namespace: "default", uid: "new" },
    endpointName: "db-0",
    ifName: "eth0",
    top: sts,
    flags,
  });
  assert.equal(d.kind, "restamp");
  if (d.kind !== "restamp") return;
  const { records } = restampIPs(p, before, d.ips.map((x) => x.ip), { pod: d.pod, podUid: d.uid });
  assert.deepEqual(records, { "192.0.2.10": { pod: "default/db-0", podUid: "new" } });
  // A GC pass or late DEL that still thinks in terms of the old pod releases nothing.
  assert.deepEqual(releaseIPs(records, ["192.0.2.10"], "old").released, []);
  // If a scan released the record meanwhile, the re-stamp recreates it instead of losing the fixed IP.
  assert.deepEqual(restampIPs(p, {}, ["192.0.2.10"], { pod: "default/db-0", podUid: "new" }).recreated, [
    "192.0.2.10",
  ]);
});

Deno.test("A StatefulSet pod whose pool annotation changed moves to the new pool (upstream #3543)", () => {
  const d = decideRetrieval({
    endpoint: endpoint("old", "StatefulSet", "192.0.2.10", "v4-old"),
    pod: { namespace: "default", uid: "new" },
    endpointName: "db-0",
    ifName: "eth0",
    top: sts,
    flags,
    candidates: {
      kind: "pools",
      source: "ippool",
      noNameMode: false,
      nics: [{ nic: "eth0", index: 0, ipv4: ["v4-new"], ipv6: [], cleanGateway: false }],
    },
  });
  assert.equal(d.kind, "pool-changed");
  assert.deepEqual(d.kind === "pool-changed" && d.release, [{ pool: "v4-old", ip: "192.0.2.10" }]);
});

// Speed itself is measured by `deno task bench:ip`; this test holds the rule that makes it fast: the work
// depends on the records, never on the pool's size, so an IPv6 /32 (2^96 addresses, which no enumeration could
// finish) answers at once. The bound is far above the real cost so that a loaded machine cannot fail it.
Deno.test("Allocation in huge pools (a /8-sized and a /32 IPv6 pool, 5000 records) does not enumerate the pool (upstream #3541)", () => {
  const cases: [SpiderIPPool, string][] = [
    [pool("v6-slash104", ["2001:db8::-2001:db8::ff:ffff"], "2001:db8::/104", 6), "2001:db8::"],
    [
      pool("v6-slash32", ["2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"], "2001:db8::/32", 6),
      "2001:db8::",
    ],
    [pool("v4-slash15", ["198.18.0.0-198.19.255.255"], "198.18.0.0/15"), "198.18.0.0"],
  ];
  for (const [p, first] of cases) {
    const fam = p.spec.ipVersion as 4 | 6;
    const base = parseIP(first).value;
    const records: AllocatedIPs = {};
    for (let i = 0; i < 4999; i++) {
      records[formatIP(fam, base + BigInt(i))] = { pod: `default/p${i}`, podUid: `u${i}` };
    }
    const t = performance.now();
    const { outcomes } = chooseIPs(p, IPRangeSet.empty(fam), records, [{
      pod: "default/new",
      podUid: "new",
    }]);
    const ms = performance.now() - t;
    assert.equal(outcomes[0].ok && outcomes[0].value.ip, formatIP(fam, base + 4999n), p.metadata.name);
    assert.ok(ms < 10_000, `${p.metadata.name}: ${ms.toFixed(0)} ms`);
  }
});

Deno.test("A pod that already holds an address of a full pool gets it back (upstream #2517)", () => {
  const p = pool("v4-a", ["192.0.2.10-192.0.2.11"]);
  const records = {
    "192.0.2.10": { pod: "default/other", podUid: "x" },
    "192.0.2.11": { pod: "default/me", podUid: "me" },
  };
  assert.deepEqual(chooseIP(p, none4, records, { pod: "default/me", podUid: "me" }).ip, "192.0.2.11");
});

Deno.test("A dual-stack cluster with only an IPv4 pool named allocates IPv4 only, without error (upstream #1938)", () => {
  const v4 = pool("v4-a", ["192.0.2.10-192.0.2.20"]);
  const c = poolCandidates({
    pod: {
      name: "web-0",
      namespace: "default",
      annotations: { "ipam.spidernet.io/ippool": '{"ipv4":["v4-a"]}' },
    },
    namespace: { name: "default" },
    ifName: "eth0",
    cniDefaults: { ipv4: [], ipv6: [], cleanGateway: false },
    pools: [v4],
    flags: {
      enableIPv4: true,
      enableIPv6: true,
      enableSpiderSubnet: true,
      enableAutoPoolForApplication: true,
    },
  });
  assert.equal(c.kind, "pools");
  if (c.kind !== "pools") return;
  assert.deepEqual(c.nics[0].ipv6, []);
  const ctx = {
    family: 6 as const,
    nic: "eth0",
    pod: { namespace: "default" },
    namespace: { name: "default" },
    node: { name: "n" },
    agentNamespace: "kube-system",
    top: deploy,
  };
  assert.deepEqual(requireUsablePools(c.nics[0].ipv6, [v4], ctx), []);
  assert.deepEqual(
    requireUsablePools(c.nics[0].ipv4, [v4], { ...ctx, family: 4 }).map((p) => p.metadata.name),
    ["v4-a"],
  );
});
