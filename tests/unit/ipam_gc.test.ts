// The IP GC rules of spec §6, one behaviour per case: tracing (mechanism A), scan-all verdicts per holder
// (mechanism B), the unconfirmed-record grace, and enableCleanOutdatedEndpoint.

import assert from "node:assert/strict";
import { encodeAllocatedIPs } from "../../src/api/allocated.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import {
  afterFailure,
  decideHolder,
  endpointFixedIPOwner,
  endpointOutdated,
  finishedStopAt,
  type GcPod,
  type GcSwitches,
  type Holder,
  type HolderFacts,
  holdersOf,
  isNodeReady,
  type Membership,
  memberValid,
  outdatedEndpointCandidates,
  pendingUnconfirmed,
  podFixedIPOwner,
  terminatingStopAt,
  type TraceEntry,
  traceEntryFor,
  type TraceInput,
} from "../../src/ipam/gc.ts";
import { decideRelease, kubevirtVMWanted } from "../../src/ipam/release.ts";

const NOW = Date.parse("2026-12-01T12:00:00Z");
const iso = (ms: number) => new Date(ms).toISOString();

const switches: GcSwitches = {
  terminatingOnReadyNode: true,
  terminatingOnNotReadyNode: true,
  runningOnEmptyPodIPs: false,
  enableStatefulSet: true,
  enableKubevirtStaticIP: true,
  additionalGraceDelayMs: 0,
};

const STS_OWNER = [{ apiVersion: "apps/v1", kind: "StatefulSet", name: "db", uid: "sts", controller: true }];
const VMI_OWNER = [{
  apiVersion: "kubevirt.io/v1",
  kind: "VirtualMachineInstance",
  name: "vm1",
  uid: "v",
  controller: true,
}];

interface PodOpts {
  name?: string;
  uid?: string;
  phase?: string;
  ips?: string[];
  deletedAt?: number;
  grace?: number;
  finishedAt?: number;
  terminationGrace?: number;
  owners?: typeof STS_OWNER;
  hostNetwork?: boolean;
}

function pod(o: PodOpts = {}): GcPod {
  return {
    metadata: {
      name: o.name ?? "a",
      namespace: "ns",
      uid: o.uid ?? "u1",
      ownerReferences: o.owners,
      deletionTimestamp: o.deletedAt === undefined ? undefined : iso(o.deletedAt),
      deletionGracePeriodSeconds: o.deletedAt === undefined ? undefined : o.grace ?? 30,
    },
    spec: {
      nodeName: "n1",
      hostNetwork: o.hostNetwork,
      terminationGracePeriodSeconds: o.terminationGrace ?? 30,
    },
    status: {
      phase: o.phase ?? "Running",
      podIPs: (o.ips ?? ["192.0.2.10"]).map((ip) => ({ ip })),
      containerStatuses: o.finishedAt === undefined
        ? []
        : [{ state: { terminated: { finishedAt: iso(o.finishedAt) } } }, { state: {} }],
    },
  };
}

function endpoint(uid: string, type = "Deployment", name = "a", ips = ["192.0.2.10"]): SpiderEndpoint {
  return {
    metadata: {
      name,
      namespace: "ns",
      uid: `ep-${uid}`,
      resourceVersion: "7",
      finalizers: ["spiderpool.spidernet.io"],
    },
    status: {
      current: {
        uid,
        node: "n1",
        ips: ips.map((ip) => ({ interface: "eth0", ipv4: `${ip}/24`, ipv4Pool: "p4" })),
      },
      ownerControllerType: type,
      ownerControllerName: type === "StatefulSet" ? "db" : "a",
    },
  };
}

const holder = (uid = "u1", ips = ["192.0.2.10"], name = "a"): Holder => ({
  namespace: "ns",
  name,
  uid,
  records: ips.map((ip) => ({ pool: "p4", ip })),
});

function facts(o: Partial<HolderFacts> = {}): HolderFacts {
  return { holder: holder(), nodeReady: true, now: NOW, switches, ...o };
}

const valid = (kind: Membership["kind"] = "StatefulSet"): Membership => ({ kind, owner: "db", valid: true });
const invalid = (kind: Membership["kind"] = "StatefulSet"): Membership => ({
  kind,
  owner: "db",
  valid: false,
});

function action(f: HolderFacts): string {
  const v = decideHolder(f);
  if (v.action !== "release") return v.action;
  const ep = v.deleteEndpoint ? "+endpoint" : "";
  const fin = v.removeFinalizer ? "+finalizer" : "";
  return `release:${v.code}:${v.records.map((r) => r.ip).join(",")}${ep}${fin}`;
}

// ---------------------------------------------------------------------------------------------------------
// Facts

Deno.test("gc: a node is ready only with condition Ready=True; a missing node is not ready", () => {
  assert.equal(isNodeReady({ status: { conditions: [{ type: "Ready", status: "True" }] } }), true);
  assert.equal(isNodeReady({ status: { conditions: [{ type: "Ready", status: "Unknown" }] } }), false);
  assert.equal(isNodeReady({ status: { conditions: [{ type: "MemoryPressure", status: "True" }] } }), false);
  assert.equal(isNodeReady(undefined), false);
});

Deno.test("gc: fixed-IP owners come from the pod's controller and the endpoint's type, each behind its switch", () => {
  assert.deepEqual(podFixedIPOwner(pod({ owners: STS_OWNER }), switches), {
    kind: "StatefulSet",
    owner: "db",
  });
  assert.deepEqual(podFixedIPOwner(pod({ owners: VMI_OWNER }), switches), {
    kind: "VirtualMachineInstance",
    owner: "vm1",
  });
  assert.equal(
    podFixedIPOwner(pod({ owners: STS_OWNER }), { ...switches, enableStatefulSet: false }),
    undefined,
  );
  assert.equal(podFixedIPOwner(pod(), switches), undefined);
  assert.deepEqual(endpointFixedIPOwner(endpoint("u1", "StatefulSet"), switches), {
    kind: "StatefulSet",
    owner: "db",
  });
  assert.deepEqual(endpointFixedIPOwner(endpoint("u1", "VirtualMachineInstance", "vm1"), switches), {
    kind: "VirtualMachineInstance",
    owner: "vm1",
  });
  assert.equal(
    endpointFixedIPOwner(endpoint("u1", "VirtualMachineInstance"), {
      ...switches,
      enableKubevirtStaticIP: false,
    }),
    undefined,
  );
  assert.equal(endpointFixedIPOwner(endpoint("u1"), switches), undefined);
});

Deno.test("gc: member validity uses the StatefulSet ordinal range and the VM's liveness", () => {
  const sts = { kind: "StatefulSet", owner: "db" } as const;
  assert.equal(memberValid(sts, "db-1", { statefulSet: { replicas: 2 } }).valid, true);
  assert.equal(memberValid(sts, "db-2", { statefulSet: { replicas: 2 } }).valid, false);
  assert.equal(memberValid(sts, "db-2", { statefulSet: { replicas: 2, ordinalsStart: 1 } }).valid, true);
  assert.equal(memberValid(sts, "db-0", {}).valid, false, "a deleted StatefulSet wants no member");
  const vm = { kind: "VirtualMachineInstance", owner: "vm1" } as const;
  assert.equal(memberValid(vm, "vm1", { kubevirt: { vmiAlive: true, ownedByLiveVM: false } }).valid, true);
  assert.equal(memberValid(vm, "vm1", { kubevirt: { vmiAlive: false, ownedByLiveVM: true } }).valid, true);
  assert.equal(memberValid(vm, "vm1", { kubevirt: { vmiAlive: false, ownedByLiveVM: false } }).valid, false);
  assert.equal(memberValid(vm, "vm1", {}).valid, false);
});

Deno.test("gc and DEL keep a KubeVirt VM's addresses under the same rule", () => {
  const vm = { kind: "VirtualMachineInstance", owner: "vm1" } as const;
  const ep = endpoint("u1", "VirtualMachineInstance", "vm1");
  const states = [
    undefined,
    ...[false, true].flatMap((a) => [false, true].map((o) => ({ vmiAlive: a, ownedByLiveVM: o }))),
  ];
  for (const kv of states) {
    const del = decideRelease({
      pod: {
        metadata: { name: "virt-launcher-vm1", namespace: "ns", uid: "u1", deletionTimestamp: iso(NOW) },
      },
      ifName: "eth0",
      endpoint: ep,
      kubevirt: kv,
      flags: { enableStatefulSet: true, enableKubevirtStaticIP: true },
    });
    const wanted = kubevirtVMWanted(kv);
    assert.equal(memberValid(vm, "vm1", { kubevirt: kv }).valid, wanted, JSON.stringify(kv));
    assert.equal(del.kind === "nothing" && del.kept === true, wanted, JSON.stringify(kv));
  }
});

Deno.test("gc: stop times add the grace period and the additional delay", () => {
  const s = { ...switches, additionalGraceDelayMs: 5_000 };
  assert.equal(terminatingStopAt(pod({ deletedAt: NOW, grace: 10 }), s), NOW + 15_000);
  assert.equal(terminatingStopAt(pod(), s), undefined);
  const p = pod({ phase: "Succeeded", finishedAt: NOW - 1_000, terminationGrace: 2 });
  p.status!.containerStatuses!.push({ state: { terminated: { finishedAt: iso(NOW - 9_000) } } });
  assert.equal(finishedStopAt(p, s), NOW - 1_000 + 2_000 + 5_000, "the latest finishedAt counts");
  assert.equal(finishedStopAt(pod({ phase: "Failed" }), s), undefined);
});

// ---------------------------------------------------------------------------------------------------------
// Mechanism A: tracing

Deno.test("gc trace: table of pod events", () => {
  const cases: [string, Partial<TraceInput> & { pod: GcPod }, string][] = [
    ["deleted pod", { pod: pod(), deleted: true }, `Deleted@${NOW}`],
    ["deleted pod, delay 5 s", {
      pod: pod(),
      deleted: true,
      switches: { ...switches, additionalGraceDelayMs: 5_000 },
    }, `Deleted@${NOW + 5_000}`],
    ["running pod", { pod: pod() }, "ignore"],
    ["pending pod", { pod: pod({ phase: "Pending" }) }, "ignore"],
    ["terminating on ready node", { pod: pod({ deletedAt: NOW, grace: 10 }) }, `Terminating@${NOW + 10_000}`],
    [
      "terminating on not-ready node",
      { pod: pod({ deletedAt: NOW, grace: 10 }), nodeReady: false },
      `Terminating@${NOW + 10_000}`,
    ],
    ["terminating on ready node, switch off", {
      pod: pod({ deletedAt: NOW }),
      switches: { ...switches, terminatingOnReadyNode: false },
    }, "ignore"],
    ["terminating on not-ready node, switch off", {
      pod: pod({ deletedAt: NOW }),
      nodeReady: false,
      switches: { ...switches, terminatingOnNotReadyNode: false },
    }, "ignore"],
    ["terminating on ready node, not-ready switch off", {
      pod: pod({ deletedAt: NOW, grace: 1 }),
      switches: { ...switches, terminatingOnNotReadyNode: false },
    }, `Terminating@${NOW + 1_000}`],
    [
      "succeeded",
      { pod: pod({ phase: "Succeeded", finishedAt: NOW, terminationGrace: 3 }) },
      `Succeeded@${NOW + 3_000}`,
    ],
    ["failed", { pod: pod({ phase: "Failed", finishedAt: NOW, terminationGrace: 0 }) }, `Failed@${NOW}`],
    ["failed without finishedAt", { pod: pod({ phase: "Failed" }) }, "ignore"],
    ["succeeded on not-ready node, switch off", {
      pod: pod({ phase: "Succeeded", finishedAt: NOW }),
      nodeReady: false,
      switches: { ...switches, terminatingOnNotReadyNode: false },
    }, "ignore"],
    ["hostNetwork pod deleted", { pod: pod({ hostNetwork: true }), deleted: true }, "ignore"],
    [
      "valid StatefulSet member deleted",
      { pod: pod({ owners: STS_OWNER }), deleted: true, member: valid() },
      "ignore",
    ],
    ["invalid StatefulSet member deleted", {
      pod: pod({ owners: STS_OWNER }),
      deleted: true,
      member: invalid(),
    }, `Deleted@${NOW}`],
    ["valid VM pod terminating", {
      pod: pod({ owners: VMI_OWNER, deletedAt: NOW }),
      member: valid("VirtualMachineInstance"),
    }, "ignore"],
  ];
  for (const [name, partial, want] of cases) {
    const d = traceEntryFor({
      endpointName: "a",
      deleted: false,
      now: NOW,
      nodeReady: true,
      switches,
      ...partial,
    });
    const got = d.kind === "trace" ? `${d.entry.reason}@${d.entry.stopAt}` : "ignore";
    assert.equal(got, want, name);
  }
});

Deno.test("gc trace: the entry names pod, endpoint, UID and node", () => {
  const d = traceEntryFor({
    pod: pod({ owners: VMI_OWNER }),
    endpointName: "vm1",
    deleted: true,
    now: NOW,
    nodeReady: true,
    switches,
    member: invalid("VirtualMachineInstance"),
  });
  assert.equal(d.kind, "trace");
  if (d.kind !== "trace") return;
  assert.deepEqual(d.entry, {
    namespace: "ns",
    pod: "a",
    endpoint: "vm1",
    uid: "u1",
    node: "n1",
    reason: "Deleted",
    stopAt: NOW,
    requeues: 0,
  });
});

Deno.test("gc trace: a failed entry is retried up to the maximum, then dropped", () => {
  let entry: TraceEntry = {
    namespace: "ns",
    pod: "a",
    endpoint: "a",
    uid: "u1",
    node: "n1",
    reason: "Deleted",
    stopAt: NOW,
    requeues: 0,
  };
  for (let i = 1; i <= 5; i++) {
    const r = afterFailure(entry, 5);
    assert.ok("retry" in r, `attempt ${i} is retried`);
    entry = r.retry;
    assert.equal(entry.requeues, i);
  }
  assert.ok("drop" in afterFailure(entry, 5));
});

// ---------------------------------------------------------------------------------------------------------
// Mechanism B: scan-all verdicts

Deno.test("gc scan: pod missing", () => {
  assert.equal(action(facts()), "release:pod_not_found:192.0.2.10", "no endpoint: the record only");
  assert.equal(
    action(facts({ endpoint: endpoint("u1") })),
    "release:pod_not_found:192.0.2.10+endpoint+finalizer",
    "stateless endpoint: record and endpoint",
  );
  assert.equal(
    action(facts({ endpoint: endpoint("u0") })),
    "release:pod_not_found:192.0.2.10+endpoint+finalizer",
    "an endpoint of another UID goes too: no pod of that name exists",
  );
  assert.equal(action(facts({ endpoint: endpoint("u1", "StatefulSet"), endpointMember: valid() })), "keep");
  assert.equal(
    action(facts({ endpoint: endpoint("u1", "StatefulSet"), endpointMember: invalid() })),
    "release:fixed_ip_member_invalid:192.0.2.10+endpoint+finalizer",
  );
  assert.equal(
    action(
      facts({
        endpoint: endpoint("u1", "VirtualMachineInstance"),
        endpointMember: valid("VirtualMachineInstance"),
      }),
    ),
    "keep",
  );
});

Deno.test("gc scan: the holder's own pod, by phase", () => {
  const ep = endpoint("u1");
  const cases: [string, Partial<HolderFacts>, string][] = [
    ["running with podIPs", { pod: pod() }, "keep"],
    ["pending", { pod: pod({ phase: "Pending", ips: [] }) }, "keep"],
    ["pending and terminating", {
      pod: pod({ phase: "Pending", ips: [], deletedAt: NOW - 100_000, grace: 1 }),
    }, "keep"],
    ["no phase yet", { pod: pod({ phase: "", ips: [] }) }, "keep"],
    ["running without podIPs, switch off", { pod: pod({ ips: [] }) }, "keep"],
    ["running without podIPs, switch on", {
      pod: pod({ ips: [] }),
      switches: { ...switches, runningOnEmptyPodIPs: true },
    }, "release:pod_running_no_ips:192.0.2.10"],
    [
      "unknown phase without podIPs",
      { pod: pod({ phase: "Unknown", ips: [] }) },
      "release:pod_no_ips:192.0.2.10",
    ],
    ["unknown phase with podIPs", { pod: pod({ phase: "Unknown" }) }, "keep"],
    [
      "terminating past grace",
      { pod: pod({ deletedAt: NOW - 11_000, grace: 10 }), endpoint: ep },
      "release:pod_terminating_timeout:192.0.2.10+endpoint+finalizer",
    ],
    ["terminating past grace but not past the delay", {
      pod: pod({ deletedAt: NOW - 11_000, grace: 10 }),
      switches: { ...switches, additionalGraceDelayMs: 5_000 },
    }, "trace"],
    ["terminating within grace with podIPs", { pod: pod({ deletedAt: NOW, grace: 10 }) }, "trace"],
    [
      "terminating within grace without podIPs",
      { pod: pod({ deletedAt: NOW, grace: 10, ips: [] }) },
      "release:pod_terminating_no_ips:192.0.2.10",
    ],
    ["terminating past grace, ready-node switch off", {
      pod: pod({ deletedAt: NOW - 11_000, grace: 10 }),
      switches: { ...switches, terminatingOnReadyNode: false },
    }, "keep"],
    ["terminating past grace on not-ready node, switch off", {
      pod: pod({ deletedAt: NOW - 11_000, grace: 10 }),
      nodeReady: false,
      switches: { ...switches, terminatingOnNotReadyNode: false },
    }, "keep"],
    ["terminating without podIPs, switch off", {
      pod: pod({ deletedAt: NOW, ips: [] }),
      switches: { ...switches, terminatingOnReadyNode: false },
    }, "keep"],
    ["terminating past grace on not-ready node, ready switch off", {
      pod: pod({ deletedAt: NOW - 11_000, grace: 10 }),
      nodeReady: false,
      switches: { ...switches, terminatingOnReadyNode: false },
    }, "release:pod_terminating_timeout:192.0.2.10"],
    [
      "succeeded past grace",
      { pod: pod({ phase: "Succeeded", finishedAt: NOW - 31_000 }), endpoint: ep },
      "release:pod_finished:192.0.2.10+endpoint+finalizer",
    ],
    ["failed within grace with podIPs", { pod: pod({ phase: "Failed", finishedAt: NOW }) }, "trace"],
    [
      "failed within grace without podIPs",
      { pod: pod({ phase: "Failed", finishedAt: NOW, ips: [] }) },
      "release:pod_no_ips:192.0.2.10",
    ],
    ["failed without finishedAt, with podIPs", { pod: pod({ phase: "Failed" }) }, "keep"],
    ["succeeded past grace, not-ready node switch off", {
      pod: pod({ phase: "Succeeded", finishedAt: NOW - 31_000 }),
      nodeReady: false,
      switches: { ...switches, terminatingOnNotReadyNode: false },
    }, "keep"],
    ["succeeded and terminating: the deletion grace counts", {
      pod: pod({ phase: "Succeeded", finishedAt: NOW - 100_000, deletedAt: NOW, grace: 30 }),
    }, "trace"],
  ];
  for (const [name, f, want] of cases) assert.equal(action(facts(f)), want, name);
});

Deno.test("gc scan: fixed-IP members keep their addresses while their workload wants them", () => {
  const sts = { owners: STS_OWNER, name: "db-0" };
  const h = holder("u1", ["192.0.2.10"], "db-0");
  const cases: [string, Partial<HolderFacts>, string][] = [
    ["valid member running", { pod: pod(sts), podMember: valid() }, "keep"],
    ["valid member failed (restarting)", {
      pod: pod({ ...sts, phase: "Failed", finishedAt: NOW - 100_000 }),
      podMember: valid(),
    }, "keep"],
    ["valid member terminating past grace", {
      pod: pod({ ...sts, deletedAt: NOW - 100_000, grace: 1 }),
      podMember: valid(),
    }, "keep"],
    ["valid member without podIPs", { pod: pod({ ...sts, ips: [] }), podMember: valid() }, "keep"],
    [
      "invalid member succeeded",
      { pod: pod({ ...sts, phase: "Succeeded" }), podMember: invalid() },
      "release:fixed_ip_member_invalid:192.0.2.10",
    ],
    [
      "invalid member without podIPs",
      { pod: pod({ ...sts, ips: [] }), podMember: invalid() },
      "release:fixed_ip_member_invalid:192.0.2.10",
    ],
    ["invalid member running with podIPs", { pod: pod(sts), podMember: invalid() }, "keep"],
    ["invalid member terminating past grace", {
      pod: pod({ ...sts, deletedAt: NOW - 100_000, grace: 1 }),
      podMember: invalid(),
    }, "release:pod_terminating_timeout:192.0.2.10"],
  ];
  for (const [name, f, want] of cases) assert.equal(action(facts({ holder: h, ...f })), want, name);
});

Deno.test("gc scan: a record of an older pod of the same name", () => {
  const newer = { uid: "u2" };
  const cases: [string, Partial<HolderFacts>, string][] = [
    ["stateless (#1187)", { pod: pod(newer) }, "release:pod_uid_mismatch:192.0.2.10"],
    [
      "stateless, old endpoint left (#4916)",
      { pod: pod({ ...newer, ips: [] }), endpoint: endpoint("u1") },
      "release:pod_uid_mismatch:192.0.2.10+endpoint+finalizer",
    ],
    [
      "stateless, the new pod's endpoint stays",
      { pod: pod(newer), endpoint: endpoint("u2") },
      "release:pod_uid_mismatch:192.0.2.10",
    ],
    ["StatefulSet pod restarting, no podIPs yet (#2442)", {
      pod: pod({ ...newer, owners: STS_OWNER, ips: [] }),
      podMember: valid(),
      endpoint: endpoint("u1", "StatefulSet"),
    }, "keep"],
    ["StatefulSet pod already running with its addresses", {
      pod: pod({ ...newer, owners: STS_OWNER }),
      podMember: valid(),
      endpoint: endpoint("u1", "StatefulSet"),
    }, "release:pod_uid_mismatch:192.0.2.10+endpoint+finalizer"],
    ["StatefulSet scaled away, new pod pending", {
      pod: pod({ ...newer, owners: STS_OWNER, ips: [] }),
      podMember: invalid(),
    }, "release:fixed_ip_member_invalid:192.0.2.10"],
  ];
  for (const [name, f, want] of cases) assert.equal(action(facts(f)), want, name);
});

Deno.test("gc scan: an endpoint of an older pod next to a live pod goes, the live pod's records stay", () => {
  const cases: [string, Partial<HolderFacts>, string][] = [
    [
      "stateless",
      { pod: pod(), endpoint: endpoint("u0") },
      "release:endpoint_uid_mismatch:+endpoint+finalizer",
    ],
    ["StatefulSet, new pod without podIPs", {
      pod: pod({ owners: STS_OWNER, ips: [] }),
      podMember: valid(),
      endpoint: endpoint("u0", "StatefulSet"),
    }, "keep"],
    ["StatefulSet, new pod running with podIPs", {
      pod: pod({ owners: STS_OWNER }),
      podMember: valid(),
      endpoint: endpoint("u0", "StatefulSet"),
    }, "release:endpoint_uid_mismatch:+endpoint+finalizer"],
    ["StatefulSet member scaled away", {
      pod: pod({ owners: STS_OWNER }),
      podMember: invalid(),
      endpoint: endpoint("u0", "StatefulSet"),
    }, "release:endpoint_uid_mismatch:+endpoint+finalizer"],
  ];
  for (const [name, f, want] of cases) assert.equal(action(facts(f)), want, name);
});

Deno.test("gc scan: a live pod's record its own endpoint does not list goes, without touching the endpoint", () => {
  const f = facts({
    holder: holder("u1", ["192.0.2.10", "192.0.2.11"]),
    pod: pod(),
    endpoint: endpoint("u1"),
  });
  assert.equal(action(f), "release:not_in_endpoint:192.0.2.11");
  assert.equal(action(facts({ pod: pod(), endpoint: endpoint("u1") })), "keep");
  assert.equal(action(facts({ pod: pod() })), "keep", "no endpoint yet: an ADD may be writing it");
});

Deno.test("gc scan: a traced verdict carries the entry the leader traces", () => {
  const v = decideHolder(facts({ pod: pod({ deletedAt: NOW, grace: 10 }) }));
  assert.equal(v.action, "trace");
  if (v.action === "trace") assert.equal(v.entry.stopAt, NOW + 10_000);
});

// ---------------------------------------------------------------------------------------------------------
// Grouping, grace and outdated endpoints

function poolWith(name: string, records: Record<string, { pod: string; podUid: string }>): SpiderIPPool {
  return {
    metadata: { name },
    spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.1-192.0.2.200"] },
    status: { allocatedIPs: encodeAllocatedIPs(records) },
  };
}

Deno.test("gc: holders group records by name and UID across pools; unreadable records are reported", () => {
  const { holders, records, problems } = holdersOf([
    poolWith("p4", {
      "192.0.2.10": { pod: "ns/a", podUid: "u1" },
      "192.0.2.11": { pod: "ns/a", podUid: "u0" },
      "192.0.2.12": { pod: "nonamespace", podUid: "u9" },
    }),
    poolWith("p4b", { "192.0.2.20": { pod: "ns/a", podUid: "u1" } }),
    {
      metadata: { name: "broken" },
      spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: [] },
      status: { allocatedIPs: "{" },
    },
  ]);
  assert.equal(records, 4);
  assert.deepEqual(holders.map((h) => [h.name, h.uid, h.records.map((r) => `${r.pool}/${r.ip}`)]), [
    ["a", "u1", ["p4/192.0.2.10", "p4b/192.0.2.20"]],
    ["a", "u0", ["p4/192.0.2.11"]],
  ]);
  assert.equal(problems.length, 2);
  assert.match(problems.join("\n"), /nonamespace/);
  assert.match(problems.join("\n"), /broken/);
});

Deno.test("gc: an unconfirmed record waits out the grace period; a confirmed one goes at once", () => {
  const records = [{ pool: "p4", ip: "192.0.2.10" }, { pool: "p4", ip: "192.0.2.11" }];
  const seen = (r: { ip: string }) => (r.ip === "192.0.2.11" ? NOW - 1_000 : undefined);
  const r = pendingUnconfirmed(records, endpoint("u1"), "u1", seen, NOW, 3_000);
  assert.deepEqual(r.due.map((x) => x.ip), ["192.0.2.10"]);
  assert.deepEqual(r.waiting, [{ record: records[1], until: NOW + 2_000 }]);
  const later = pendingUnconfirmed(records, endpoint("u1"), "u1", seen, NOW + 2_000, 3_000);
  assert.deepEqual(later.due.map((x) => x.ip), ["192.0.2.10", "192.0.2.11"]);
  const otherUid = pendingUnconfirmed(records, endpoint("u0"), "u1", () => undefined, NOW, 3_000);
  assert.equal(otherUid.due.length, 0, "an endpoint of another UID confirms nothing");
  assert.equal(
    pendingUnconfirmed(records, undefined, "u1", () => undefined, NOW, 0).due.length,
    2,
    "grace 0",
  );
});

Deno.test("gc: outdated endpoints are those no record names, checked against their pools and pod", () => {
  const eps = [endpoint("u1", "Deployment", "a"), endpoint("u2", "Deployment", "b")];
  const h = holdersOf([poolWith("p4", { "192.0.2.10": { pod: "ns/a", podUid: "u1" } })]).holders;
  assert.deepEqual(outdatedEndpointCandidates(eps, h).map((e) => e.metadata.name), ["b"]);
  const b = eps[1];
  assert.equal(endpointOutdated(b, [poolWith("p4", {})], undefined).outdated, true);
  assert.equal(
    endpointOutdated(b, [poolWith("p4", { "192.0.2.10": { pod: "ns/b", podUid: "u9" } })], undefined)
      .outdated,
    false,
    "a record written since the scan read the pool",
  );
  assert.equal(
    endpointOutdated(b, [poolWith("p4", {})], pod({ name: "b", uid: "u2" })).outdated,
    false,
    "live pod",
  );
  assert.equal(
    endpointOutdated(b, [poolWith("p4", {})], pod({ name: "b", uid: "u2", phase: "Succeeded" })).outdated,
    true,
    "finished pod",
  );
  assert.equal(endpointOutdated(b, [], undefined).outdated, true, "an endpoint listing no pool");
});
