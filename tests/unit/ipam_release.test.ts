import assert from "node:assert/strict";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import { IPRangeSet } from "../../src/ip/mod.ts";
import {
  decideRelease,
  EnsureError,
  ensureIPs,
  notListedBy,
  type PodLike,
  releaseEach,
  releaseIPs,
  RestampError,
  restampIPs,
  statefulSetOrdinalValid,
} from "../../src/ipam/mod.ts";

const flags = { enableStatefulSet: true, enableKubevirtStaticIP: true };
const pool: SpiderIPPool = {
  metadata: { name: "v4-a" },
  spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] },
};

function endpoint(uid: string, type = "Deployment", name = "web-0", nics = ["eth0"]): SpiderEndpoint {
  return {
    metadata: { name, namespace: "default", finalizers: ["spiderpool.spidernet.io"] },
    status: {
      current: {
        uid,
        node: "node-1",
        ips: nics.map((nic, i) => ({
          interface: nic,
          ipv4: `192.0.2.${10 + i}/24`,
          ipv4Pool: "v4-a",
          ipv6: `2001:db8::${10 + i}/64`,
          ipv6Pool: "v6-a",
        })),
      },
      ownerControllerType: type,
      ownerControllerName: "web",
    },
  };
}
const deadPod = (uid: string, name = "web-0"): PodLike => ({
  metadata: { name, namespace: "default", uid, deletionTimestamp: "2026-01-01T00:00:00Z" },
});

Deno.test("releaseIPs removes only records of the given pod UID", () => {
  const records = {
    "192.0.2.10": { pod: "default/web-0", podUid: "old" },
    "192.0.2.11": { pod: "default/web-0", podUid: "new" },
  };
  const r = releaseIPs(records, ["192.0.2.10/24", "192.0.2.11", "192.0.2.99"], "old");
  assert.deepEqual(r.released, ["192.0.2.10"]);
  assert.deepEqual(r.records, { "192.0.2.11": { pod: "default/web-0", podUid: "new" } });
  assert.deepEqual(r.skipped.map((s) => s.ip), ["192.0.2.11", "192.0.2.99"]);
  assert.match(r.skipped[0].reason, /held by default\/web-0 with pod UID new, not old/);
  assert.equal(Object.keys(records).length, 2, "input untouched");
});

Deno.test("releaseEach releases for several pod UIDs in order, as releaseIPs one after the other would", () => {
  const records = {
    "192.0.2.10": { pod: "default/a", podUid: "ua" },
    "192.0.2.11": { pod: "default/b", podUid: "ub" },
    "192.0.2.12": { pod: "default/c", podUid: "uc" },
  };
  const requests = [
    { ips: ["192.0.2.10"], podUid: "ua" },
    { ips: ["192.0.2.11"], podUid: "stale" },
    { ips: ["192.0.2.10/24", "192.0.2.12"], podUid: "ua" },
    { ips: ["192.0.2.12"], podUid: "uc" },
  ];
  let one: Record<string, { pod: string; podUid: string }> = records;
  const sequential = requests.map(({ ips, podUid }) => {
    const r = releaseIPs(one, ips, podUid);
    one = r.records;
    return { released: r.released, skipped: r.skipped };
  });
  const all = releaseEach(records, requests);
  assert.deepEqual(all.results, sequential);
  assert.deepEqual(all.records, one);
  assert.deepEqual(all.records, { "192.0.2.11": { pod: "default/b", podUid: "ub" } });
  assert.equal(Object.keys(records).length, 3, "input untouched");
});

Deno.test("releaseIPs accepts non-canonical IPv6 spellings", () => {
  const r = releaseIPs({ "2001:db8::a": { pod: "default/a", podUid: "u" } }, ["2001:DB8:0::A/64"], "u");
  assert.deepEqual(r.released, ["2001:db8::a"]);
});

Deno.test("restampIPs hands fixed IPs to the new pod UID and recreates a missing free record", () => {
  const records = { "192.0.2.10": { pod: "default/db-0", podUid: "old" } };
  const r = restampIPs(pool, records, ["192.0.2.10/24", "192.0.2.11"], {
    pod: "default/db-0",
    podUid: "new",
  });
  assert.deepEqual(r.records, {
    "192.0.2.10": { pod: "default/db-0", podUid: "new" },
    "192.0.2.11": { pod: "default/db-0", podUid: "new" },
  });
  assert.deepEqual([r.restamped, r.recreated], [["192.0.2.10"], ["192.0.2.11"]]);
});

Deno.test("restampIPs refuses an address recorded for another pod (data broken)", () => {
  const records = { "192.0.2.10": { pod: "default/other", podUid: "x" } };
  assert.throws(
    () => restampIPs(pool, records, ["192.0.2.10"], { pod: "default/db-0", podUid: "new" }),
    (e: unknown) =>
      e instanceof RestampError && /recorded in SpiderIPPool "v4-a" for default\/other/.test(e.message),
  );
  assert.throws(
    () => restampIPs(pool, {}, ["192.0.2.99"], { pod: "default/db-0", podUid: "new" }),
    /no longer in SpiderIPPool "v4-a" spec.ips/,
  );
});

Deno.test("ensureIPs accepts addresses recorded for the pod's UID and changes nothing", () => {
  const records = { "192.0.2.10": { pod: "default/web", podUid: "u1" } };
  const r = ensureIPs(pool, records, ["192.0.2.10/24"], { pod: "default/web", podUid: "u1" });
  assert.deepEqual(r, { records, recreated: [] });
});

Deno.test("ensureIPs recreates the record of a free address the endpoint still lists", () => {
  const r = ensureIPs(pool, {}, ["192.0.2.11/24"], { pod: "default/web", podUid: "u1" });
  assert.deepEqual(r.records, { "192.0.2.11": { pod: "default/web", podUid: "u1" } });
  assert.deepEqual(r.recreated, ["192.0.2.11"]);
});

Deno.test("ensureIPs refuses an address recorded for another pod, naming the address and its holder", () => {
  // Same pod name, another UID: a recreated stateless pod is another pod.
  const records = { "192.0.2.10": { pod: "default/web", podUid: "u2" } };
  assert.throws(
    () => ensureIPs(pool, records, ["192.0.2.10"], { pod: "default/web", podUid: "u1" }),
    (e: unknown) =>
      e instanceof EnsureError &&
      e.message.includes(
        "IP 192.0.2.10 of SpiderEndpoint default/web (pod UID u1) is recorded in SpiderIPPool " +
          '"v4-a" for default/web with pod UID u2',
      ),
  );
});

Deno.test("ensureIPs refuses to recreate an address no longer usable (outside spec.ips, or reserved)", () => {
  const req = { pod: "default/web", podUid: "u1" };
  assert.throws(() => ensureIPs(pool, {}, ["192.0.2.99"], req), EnsureError, "not recorded");
  const reserved = IPRangeSet.parse(4, ["192.0.2.12"], "reserved");
  assert.throws(() => ensureIPs(pool, {}, ["192.0.2.12"], req, reserved), EnsureError, "reserved");
});

Deno.test("notListedBy keeps what the stored endpoint lists for the pod UID out of a rollback", () => {
  const taken = [{ pool: "v4-a", ip: "192.0.2.10" }, { pool: "v6-a", ip: "2001:db8::10" }, {
    pool: "v4-a",
    ip: "192.0.2.30",
  }];
  // The write looked failed but landed: the endpoint lists .10 and ::10, so only .30 may go back.
  assert.deepEqual(notListedBy(taken, endpoint("u1"), "u1"), [{ pool: "v4-a", ip: "192.0.2.30" }]);
  // An endpoint of another pod UID, or none, claims nothing of ours.
  assert.deepEqual(notListedBy(taken, endpoint("u2"), "u1"), taken);
  assert.deepEqual(notListedBy(taken, undefined, "u1"), taken);
});

Deno.test("statefulSetOrdinalValid: ordinal within [start, start+replicas-1] (table)", () => {
  const rows: [string, { replicas: number; ordinalsStart?: number } | undefined, boolean][] = [
    ["db-0", { replicas: 3 }, true],
    ["db-2", { replicas: 3 }, true],
    ["db-3", { replicas: 3 }, false],
    ["db-0", { replicas: 0 }, false],
    ["db-5", { replicas: 2, ordinalsStart: 5 }, true],
    ["db-7", { replicas: 2, ordinalsStart: 5 }, false],
    ["db-4", { replicas: 2, ordinalsStart: 5 }, false],
    ["db-1", undefined, false],
    ["db", { replicas: 3 }, false],
    ["db-01", { replicas: 3 }, false],
  ];
  for (const [name, sts, want] of rows) assert.equal(statefulSetOrdinalValid(name, sts), want, `${name}`);
});

Deno.test("decideRelease keeps the IPs of a live pod", () => {
  const d = decideRelease({
    pod: { metadata: { name: "web-0", uid: "u1" } },
    ifName: "eth0",
    endpoint: endpoint("u1"),
    flags,
  });
  assert.equal(d.kind, "nothing");
});

Deno.test("decideRelease does nothing without a pod UID or without an endpoint", () => {
  assert.match(
    (decideRelease({ ifName: "eth0", endpoint: endpoint("u1"), flags }) as { reason: string }).reason,
    /GC/,
  );
  assert.equal(decideRelease({ requestUid: "u1", ifName: "eth0", flags }).kind, "nothing");
});

Deno.test("decideRelease releases every NIC's addresses of the endpoint when the UID matches", () => {
  const d = decideRelease({
    pod: deadPod("u1"),
    ifName: "eth0",
    endpoint: endpoint("u1", "Deployment", "web-0", ["eth0", "net1"]),
    flags,
  });
  assert.equal(d.kind, "release");
  if (d.kind !== "release") return;
  assert.equal(d.uid, "u1");
  assert.equal(d.deleteEndpoint, false);
  assert.deepEqual(d.ips.map((x) => `${x.pool}:${x.ip}`), [
    "v4-a:192.0.2.10",
    "v6-a:2001:db8::10",
    "v4-a:192.0.2.11",
    "v6-a:2001:db8::11",
  ]);
});

Deno.test("decideRelease uses the request UID when the pod is gone", () => {
  const d = decideRelease({ requestUid: "u1", ifName: "eth0", endpoint: endpoint("u1"), flags });
  assert.equal(d.kind, "release");
});

Deno.test("decideRelease leaves an endpoint of another pod UID alone", () => {
  const d = decideRelease({ requestUid: "old", ifName: "eth0", endpoint: endpoint("new"), flags });
  assert.deepEqual(d, { kind: "nothing", reason: "SpiderEndpoint belongs to pod UID new, not old" });
});

Deno.test("decideRelease: a later DEL for a NIC whose addresses are gone does nothing", () => {
  const d = decideRelease({ requestUid: "u1", ifName: "net2", endpoint: endpoint("u1"), flags });
  assert.equal(d.kind, "nothing");
});

Deno.test("decideRelease keeps a StatefulSet member's IPs while the StatefulSet wants it", () => {
  const ep = endpoint("u1", "StatefulSet", "db-1");
  const d = decideRelease({
    pod: deadPod("u1", "db-1"),
    ifName: "eth0",
    endpoint: ep,
    statefulSet: { replicas: 2 },
    flags,
  });
  assert.equal(d.kind, "nothing");
});

Deno.test("decideRelease releases a scaled-down StatefulSet member and deletes its endpoint", () => {
  const ep = endpoint("u1", "StatefulSet", "db-2");
  const d = decideRelease({
    pod: deadPod("u1", "db-2"),
    ifName: "eth0",
    endpoint: ep,
    statefulSet: { replicas: 2 },
    flags,
  });
  assert.equal(d.kind === "release" && d.deleteEndpoint, true);
  const gone = decideRelease({
    requestUid: "u1",
    ifName: "eth0",
    endpoint: ep,
    statefulSet: undefined,
    flags,
  });
  assert.equal(gone.kind === "release" && gone.deleteEndpoint, true);
});

Deno.test("decideRelease: StatefulSet rules are off when enableStatefulSet is false", () => {
  const ep = endpoint("u1", "StatefulSet", "db-1");
  const d = decideRelease({
    pod: deadPod("u1", "db-1"),
    ifName: "eth0",
    endpoint: ep,
    statefulSet: { replicas: 2 },
    flags: { ...flags, enableStatefulSet: false },
  });
  assert.equal(d.kind === "release" && d.deleteEndpoint, false);
});

Deno.test("decideRelease keeps a KubeVirt VM's IPs while the VMI lives or its VM restarts it", () => {
  const ep = endpoint("u1", "VirtualMachineInstance", "vm1");
  for (const kv of [{ vmiAlive: true, ownedByLiveVM: false }, { vmiAlive: false, ownedByLiveVM: true }]) {
    assert.equal(
      decideRelease({
        pod: deadPod("u1", "virt-launcher-vm1"),
        ifName: "eth0",
        endpoint: ep,
        kubevirt: kv,
        flags,
      }).kind,
      "nothing",
    );
  }
  const d = decideRelease({
    pod: deadPod("u1", "virt-launcher-vm1"),
    ifName: "eth0",
    endpoint: ep,
    kubevirt: { vmiAlive: false, ownedByLiveVM: false },
    flags,
  });
  assert.equal(d.kind === "release" && d.deleteEndpoint, true);
});

Deno.test("decideRelease deletes an unwanted fixed-IP endpoint of another UID without releasing", () => {
  const ep = endpoint("new", "StatefulSet", "db-5");
  const d = decideRelease({
    requestUid: "old",
    ifName: "eth0",
    endpoint: ep,
    statefulSet: { replicas: 2 },
    flags,
  });
  assert.equal(d.kind, "delete-endpoint");
});

Deno.test("decideRelease: a DEL for an older same-name pod is decided by its own UID, not the live new pod", () => {
  const livePod: PodLike = { metadata: { name: "web-0", namespace: "default", uid: "new" } };
  const d = decideRelease({
    pod: livePod,
    requestUid: "old",
    ifName: "eth0",
    endpoint: endpoint("old"),
    flags,
  });
  assert.equal(d.kind === "release" && d.uid, "old");
  const other = decideRelease({
    pod: livePod,
    requestUid: "old",
    ifName: "eth0",
    endpoint: endpoint("new"),
    flags,
  });
  assert.equal(other.kind, "nothing");
});
