import assert from "node:assert/strict";
import type { IPAllocationDetail, SpiderEndpoint } from "../../src/api/types.ts";
import {
  type Candidates,
  decideRetrieval,
  EndpointOwnerError,
  nicsToAllocate,
  type PoolCandidates,
  type RetrievalInput,
  type TopController,
} from "../../src/ipam/mod.ts";

const flags = { enableStatefulSet: true, enableKubevirtStaticIP: true };
const deploy: TopController = {
  apiVersion: "apps/v1",
  kind: "Deployment",
  name: "web",
  namespace: "default",
  uid: "d",
};
const sts: TopController = {
  apiVersion: "apps/v1",
  kind: "StatefulSet",
  name: "db",
  namespace: "default",
  uid: "s",
};
const vmi: TopController = {
  apiVersion: "kubevirt.io/v1",
  kind: "VirtualMachineInstance",
  name: "vm1",
  namespace: "default",
  uid: "v",
};

const detail = (nic: string, n: number, v4Pool = "v4-a"): IPAllocationDetail => ({
  interface: nic,
  ipv4: `192.0.2.${n}/24`,
  ipv4Pool: v4Pool,
});
const endpoint = (
  uid: string,
  ips: IPAllocationDetail[],
  type = "Deployment",
  owner = type === "StatefulSet" ? sts.name : type === "VirtualMachineInstance" ? vmi.name : "x",
): SpiderEndpoint => ({
  metadata: { name: "p", namespace: "default" },
  status: { current: { uid, node: "n", ips }, ownerControllerType: type, ownerControllerName: owner },
});
const input = (o: Partial<RetrievalInput>): RetrievalInput => ({
  pod: { namespace: "default", uid: "u1" },
  endpointName: "p",
  ifName: "eth0",
  top: deploy,
  flags,
  ...o,
});
const cands = (nics: [string, string[]][], noNameMode = false): Candidates => ({
  kind: "pools",
  source: "ippools",
  noNameMode,
  nics: nics.map(([nic, ipv4], index) => ({ nic, index, ipv4, ipv6: [], cleanGateway: false })),
});

Deno.test("retrieval: no endpoint means a fresh allocation", () => {
  assert.deepEqual(decideRetrieval(input({})), { kind: "fresh" });
});

Deno.test("retrieval: same UID with this NIC recorded is reused", () => {
  assert.deepEqual(decideRetrieval(input({ endpoint: endpoint("u1", [detail("eth0", 10)]) })), {
    kind: "reuse",
  });
});

Deno.test("retrieval: same UID with an unnamed detail (no-name mode) is reused", () => {
  const ep = endpoint("u1", [detail("eth0", 10), detail("", 11)]);
  assert.deepEqual(decideRetrieval(input({ endpoint: ep, ifName: "net1" })), { kind: "reuse" });
});

Deno.test("retrieval: same UID without this NIC allocates fresh into the existing endpoint", () => {
  const ep = endpoint("u1", [detail("eth0", 10)]);
  assert.deepEqual(decideRetrieval(input({ endpoint: ep, ifName: "net1" })), { kind: "fresh", existing: ep });
});

Deno.test("retrieval: a different UID for a stateless pod replaces the stale endpoint", () => {
  const d = decideRetrieval(input({ endpoint: endpoint("old", [detail("eth0", 10)]) }));
  assert.deepEqual(d, {
    kind: "replace-stale",
    staleUid: "old",
    release: [{ pool: "v4-a", ip: "192.0.2.10" }],
  });
});

Deno.test("retrieval: a StatefulSet pod re-stamps its fixed IPs regardless of UID", () => {
  const ep = endpoint("old", [detail("eth0", 10), detail("net1", 11, "v4-b")], "StatefulSet");
  const d = decideRetrieval(input({ endpoint: ep, endpointName: "db-0", top: sts }));
  assert.deepEqual(d, {
    kind: "restamp",
    pod: "default/db-0",
    uid: "u1",
    ips: [{ pool: "v4-a", ip: "192.0.2.10" }, { pool: "v4-b", ip: "192.0.2.11" }],
  });
});

Deno.test("retrieval: a KubeVirt pod re-stamps the VM's IPs under the VMI name", () => {
  const ep = endpoint("old", [detail("eth0", 10)], "VirtualMachineInstance");
  const d = decideRetrieval(input({ endpoint: ep, endpointName: "vm1", top: vmi }));
  assert.equal(d.kind === "restamp" && d.pod, "default/vm1");
});

Deno.test("retrieval: with fixed IPs disabled, a StatefulSet pod is treated as stateless", () => {
  const ep = endpoint("old", [detail("eth0", 10)], "StatefulSet", "db");
  const d = decideRetrieval(input({ endpoint: ep, top: sts, flags: { ...flags, enableStatefulSet: false } }));
  assert.equal(d.kind, "replace-stale");
});

Deno.test("retrieval: a plain pod named like a KubeVirt VM does not take over the VM's endpoint", () => {
  const ep = endpoint("launcher", [detail("eth0", 10)], "VirtualMachineInstance", "vm1");
  const plain: TopController = {
    apiVersion: "v1",
    kind: "Pod",
    name: "vm1",
    namespace: "default",
    uid: "u1",
  };
  assert.throws(
    () => decideRetrieval(input({ endpoint: ep, endpointName: "vm1", top: plain })),
    EndpointOwnerError,
    'SpiderEndpoint default/p keeps the fixed IPs of VirtualMachineInstance "vm1", not of this pod\'s Pod "vm1"',
  );
});

Deno.test("retrieval: a pod of another controller does not take over a StatefulSet member's endpoint", () => {
  const ep = endpoint("old", [detail("eth0", 10)], "StatefulSet", "db");
  assert.throws(
    () =>
      decideRetrieval(input({ endpoint: ep, top: deploy, flags: { ...flags, enableStatefulSet: false } })),
    EndpointOwnerError,
    'StatefulSet "db"',
  );
  const other = { ...sts, name: "db2" };
  assert.throws(() => decideRetrieval(input({ endpoint: ep, top: other })), /StatefulSet "db"/);
});

Deno.test("retrieval: an endpoint of a stateless owner is replaced whatever that owner was", () => {
  const ep = endpoint("old", [detail("eth0", 10)], "Deployment", "old-web");
  const plain: TopController = { apiVersion: "v1", kind: "Pod", name: "p", namespace: "default", uid: "u1" };
  assert.equal(decideRetrieval(input({ endpoint: ep, top: plain })).kind, "replace-stale");
});

Deno.test("retrieval: StatefulSet with unchanged pools is re-stamped", () => {
  const ep = endpoint("old", [detail("eth0", 10)], "StatefulSet");
  const d = decideRetrieval(
    input({ endpoint: ep, top: sts, candidates: cands([["eth0", ["v4-x", "v4-a"]]]) }),
  );
  assert.equal(d.kind, "restamp");
});

Deno.test("retrieval: StatefulSet whose only NIC changed pool deletes the endpoint and releases all", () => {
  const ep = endpoint("old", [detail("eth0", 10)], "StatefulSet");
  const d = decideRetrieval(
    input({ endpoint: ep, top: sts, endpointName: "db-0", candidates: cands([["eth0", ["v4-new"]]]) }),
  );
  assert.deepEqual(d, {
    kind: "pool-changed",
    releaseUid: "old",
    release: [{ pool: "v4-a", ip: "192.0.2.10" }],
    deleteEndpoint: true,
    keep: [],
    pod: "default/db-0",
    restamp: [],
  });
});

Deno.test("retrieval: StatefulSet with one of two NICs changed keeps and re-stamps the other", () => {
  const ep = endpoint("old", [detail("eth0", 10), detail("net1", 11, "v4-b")], "StatefulSet");
  const d = decideRetrieval(input({
    endpoint: ep,
    top: sts,
    endpointName: "db-0",
    candidates: cands([["eth0", ["v4-a"]], ["net1", ["v4-c"]]]),
  }));
  assert.equal(d.kind, "pool-changed");
  if (d.kind !== "pool-changed") return;
  assert.equal(d.deleteEndpoint, false);
  assert.deepEqual(d.release, [{ pool: "v4-b", ip: "192.0.2.11" }]);
  assert.deepEqual(d.keep.map((k) => k.interface), ["eth0"]);
  assert.deepEqual(d.restamp, [{ pool: "v4-a", ip: "192.0.2.10" }]);
});

Deno.test("retrieval: StatefulSet in no-name mode with any NIC changed deletes the whole endpoint", () => {
  const ep = endpoint("old", [detail("eth0", 10), detail("", 11, "v4-b")], "StatefulSet");
  const d = decideRetrieval(
    input({ endpoint: ep, top: sts, candidates: cands([["eth0", ["v4-a"]], ["", ["v4-c"]]], true) }),
  );
  assert.equal(d.kind === "pool-changed" && d.deleteEndpoint, true);
  assert.equal(d.kind === "pool-changed" && d.release.length, 2);
});

Deno.test("nicsToAllocate: named mode skips NICs the endpoint already records", () => {
  const c = cands([["eth0", ["v4-a"]], ["net1", ["v4-b"]]]) as PoolCandidates;
  assert.deepEqual(nicsToAllocate(c, undefined, "eth0").map((n) => n.nic), ["eth0", "net1"]);
  assert.deepEqual(nicsToAllocate(c, endpoint("u1", [detail("eth0", 10)]), "net1").map((n) => n.nic), [
    "net1",
  ]);
});

Deno.test("nicsToAllocate: no-name mode skips NICs by position, even once later ADDs named them", () => {
  const c = cands([["eth0", ["v4-a"]], ["", ["v4-b"]], ["", ["v4-c"]]], true) as PoolCandidates;
  const ep = endpoint("u1", [detail("eth0", 10), detail("net1", 11, "v4-b")]);
  assert.deepEqual(nicsToAllocate(c, ep, "net2").map((n) => n.index), [2]);
});

Deno.test("nicsToAllocate: nothing left for this NIC is an error naming the annotation", () => {
  const c = cands([["eth0", ["v4-a"]], ["", ["v4-b"]]], true) as PoolCandidates;
  const ep = endpoint("u1", [detail("eth0", 10), detail("net1", 11, "v4-b")]);
  assert.throws(
    () => nicsToAllocate(c, ep, "net2"),
    /no IPPool left for interface "net2".*ipam.spidernet.io\/ippools/,
  );
});
