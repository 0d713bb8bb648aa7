// IP GC scan-all against the real control plane: pods get addresses through a real agent, then are deleted,
// force-deleted, recreated, made terminating on ready and not-ready nodes, finished; StatefulSets are scaled.
// Each test checks that the GC releases exactly what it should and nothing a live pod holds, including the
// failures of other IPAMs and of upstream Spiderpool named in the spec (Whereabouts, #1187, #2442/#2526,
// #4864, #4867, #4916/#4982).

import assert from "node:assert/strict";
import { encodeAllocatedIPs } from "../../src/api/allocated.ts";
import type { SpiderIPPool } from "../../src/api/types.ts";
import type { Snapshot } from "../../src/controller/gc/mod.ts";
import { kubeTest } from "../kube/harness.ts";
import { eventually, gcWorld, podsPath, POOLS } from "./env.ts";

kubeTest(
  "gc scan: a force-deleted pod's address, endpoint and finalizer go; a live pod keeps its own",
  async () => {
    await using w = await gcWorld("gc-deleted");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    const gone = await w.runPod("gone", node, pool);
    const live = await w.runPod("live", node, pool);
    await w.forceDelete(gone);
    const report = await w.gc().scanAll("request");
    assert.deepEqual(report.errors, []);
    assert.deepEqual(report.released.map((r) => [r.ip, r.pod, r.reason]), [[
      gone.ip,
      `${w.ns}/gone`,
      "pod_not_found",
    ]]);
    assert.deepEqual(await w.records(pool), { [live.ip]: { pod: `${w.ns}/live`, podUid: live.uid } });
    await eventually(
      "endpoint of the deleted pod to be gone",
      async () => (await w.endpoint("gone")) ? undefined : true,
    );
    assert.equal((await w.endpoint("live"))?.status.current.uid, live.uid);
    // A second scan finds nothing more to do.
    const again = await w.gc().scanAll("request");
    assert.deepEqual([again.released.length, again.endpointsDeleted.length, again.errors.length], [0, 0, 0]);
    const { body } = await w.scope.cluster.http.get<{ items: { reason: string; message: string }[] }>(
      `/api/v1/namespaces/default/events?fieldSelector=involvedObject.name=${pool}`,
    );
    assert.ok(
      body.items.some((e) => e.reason === "IPReleasedByGC" && e.message.includes(gone.ip)),
      "an Event on the pool says what was released",
    );
  },
);

kubeTest(
  "gc scan: a record whose pod exists but is missing from the listed pods is kept (Whereabouts freed such IPs)",
  async () => {
    await using w = await gcWorld("gc-lag");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    const fresh = await w.runPod("fresh", node, pool);
    // The listed pods and endpoints lag behind the API server, as an informer cache can.
    const gc = w.gc({
      hooks: {
        snapshot: (s) => ({
          ...s,
          pods: s.pods.filter((p) => p.metadata.name !== "fresh"),
          endpoints: s.endpoints.filter((e) => e.metadata.name !== "fresh"),
        }),
      },
    });
    const report = await gc.scanAll("request");
    assert.deepEqual(report.released, [], "nothing a live pod holds is released");
    assert.equal(
      report.keptAfterVerification,
      1,
      "the candidate was read again from the API server and kept",
    );
    assert.deepEqual(await w.records(pool), { [fresh.ip]: { pod: `${w.ns}/fresh`, podUid: fresh.uid } });
    assert.equal((await w.endpoint("fresh"))?.status.current.uid, fresh.uid);
  },
);

kubeTest(
  "gc scan: the leftover endpoint of a deleted same-name pod goes and the new pod gets an address (#4916, #4982)",
  async () => {
    await using w = await gcWorld("gc-4916");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.11"]);
    const old = await w.runPod("web", node, pool);
    await w.forceDelete(old);
    const next = await w.createPod("web", node.name, pool);
    const report = await w.gc().scanAll("request");
    assert.deepEqual(report.released.map((r) => [r.ip, r.podUid, r.reason]), [[
      old.ip,
      old.uid,
      "pod_uid_mismatch",
    ]]);
    assert.deepEqual(report.endpointsDeleted.map((e) => e.uid), [old.uid]);
    await eventually("old endpoint to be gone", async () => (await w.endpoint("web")) ? undefined : true);
    const res = await w.add(node.client, next);
    const ip = res.ips[0].address.split("/")[0];
    await w.markRunning("web", [ip]);
    assert.deepEqual(await w.records(pool), { [ip]: { pod: `${w.ns}/web`, podUid: next.uid } });
    const again = await w.gc().scanAll("request");
    assert.deepEqual(again.released, [], "the new pod keeps its address");
  },
);

kubeTest(
  "gc scan: a scan that decided on the old pod never frees the address a rapidly recreated pod now holds (#1187)",
  async () => {
    await using w = await gcWorld("gc-1187");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.11"]);
    const old = await w.runPod("web", node, pool);
    await w.forceDelete(old);
    // The snapshot was taken while only the old pod's record existed and no pod of that name did.
    let stale: Snapshot | undefined;
    await w.gc({ hooks: { snapshot: (s) => (stale = structuredClone(s), { ...s, pools: [] }) } }).scanAll(
      "request",
    );
    // The same name comes back at once and its ADD takes the same (first free) address.
    const next = await w.createPod("web", node.name, pool);
    const res = await w.add(node.client, next);
    const ip = res.ips[0].address.split("/")[0];
    assert.equal(ip, old.ip, "the recreated pod got the same address");
    const report = await w.gc({ hooks: { snapshot: () => stale! } }).scanAll("request");
    assert.deepEqual(report.released, [], "released by pod UID: the new pod's record does not match");
    assert.deepEqual(report.endpointsDeleted, []);
    assert.deepEqual(await w.records(pool), { [ip]: { pod: `${w.ns}/web`, podUid: next.uid } });
    assert.equal((await w.endpoint("web"))?.status.current.uid, next.uid);
  },
);

// ---------------------------------------------------------------------------------------------------------
// StatefulSets

async function statefulSet(
  w: Awaited<ReturnType<typeof gcWorld>>,
  pool: string,
  replicas: number,
): Promise<string> {
  const path = `/apis/apps/v1/namespaces/${w.ns}/statefulsets`;
  await w.scope.cluster.http.post(path, {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: "db" },
    spec: {
      replicas,
      serviceName: "db",
      podManagementPolicy: "Parallel",
      selector: { matchLabels: { app: "db" } },
      template: {
        metadata: {
          labels: { app: "db" },
          annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) },
        },
        spec: {
          containers: [{ name: "c", image: "registry.invalid/pause:1" }],
          terminationGracePeriodSeconds: 0,
        },
      },
    },
  });
  return `${path}/db`;
}

/** Waits for the StatefulSet controller's pod `name` (not `notUid`), binds it, ADDs, marks it Running. */
async function startMember(
  w: Awaited<ReturnType<typeof gcWorld>>,
  node: { name: string; client: import("../../src/agentapi/client.ts").AgentClient },
  name: string,
  notUid?: string,
  run = true,
): Promise<{ name: string; uid: string; ip: string }> {
  const http = w.scope.cluster.http;
  const uid = await eventually(`pod ${name} from the StatefulSet controller`, async () => {
    try {
      const { body } = await http.get<{ metadata: { uid: string; deletionTimestamp?: string } }>(
        `${podsPath(w.ns)}/${name}`,
      );
      return body.metadata.uid === notUid || body.metadata.deletionTimestamp ? undefined : body.metadata.uid;
    } catch {
      return undefined;
    }
  });
  await http.post(`${podsPath(w.ns)}/${name}/binding`, {
    apiVersion: "v1",
    kind: "Binding",
    metadata: { name },
    target: { apiVersion: "v1", kind: "Node", name: node.name },
  });
  if (!run) return { name, uid, ip: "" };
  const res = await w.add(node.client, { name, uid });
  const ip = res.ips[0].address.split("/")[0];
  await w.markRunning(name, [ip]);
  return { name, uid, ip };
}

kubeTest(
  "gc scan: a StatefulSet member restarting keeps its IP; one scaled away loses IP and endpoint (#2442, #2526)",
  async () => {
    await using w = await gcWorld("gc-sts");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    const sts = await statefulSet(w, pool, 2);
    const m0 = await startMember(w, node, "db-0");
    const m1 = await startMember(w, node, "db-1");

    // db-0 restarts: the controller recreates it with a new UID that has no address yet.
    await w.forceDelete({ name: "db-0", uid: m0.uid });
    const restarted = await startMember(w, node, "db-0", m0.uid, false);
    let report = await w.gc().scanAll("request");
    assert.deepEqual(report.released, [], "nothing released while a member restarts");
    assert.equal((await w.records(pool))[m0.ip]?.podUid, m0.uid);
    const res = await w.add(node.client, restarted);
    assert.equal(res.ips[0].address.split("/")[0], m0.ip, "the new pod takes the member's address over");
    await w.markRunning("db-0", [m0.ip]);

    // Scaled to one replica: db-1 is no longer wanted.
    await w.scope.cluster.http.patch(sts, { spec: { replicas: 1 } });
    await eventually("db-1 to be deleted by the StatefulSet controller", async () => {
      try {
        await w.scope.cluster.http.get(`${podsPath(w.ns)}/db-1`);
        return undefined;
      } catch {
        return true;
      }
    });
    report = await w.gc().scanAll("request");
    assert.deepEqual(report.released.map((r) => [r.ip, r.reason]), [[m1.ip, "fixed_ip_member_invalid"]]);
    await eventually("db-1's endpoint to be gone", async () => (await w.endpoint("db-1")) ? undefined : true);
    assert.deepEqual(await w.records(pool), { [m0.ip]: { pod: `${w.ns}/db-0`, podUid: restarted.uid } });
  },
);

kubeTest(
  "gc scan: a StatefulSet scaled down and up again during a scan keeps the member's new IP and endpoint (#2526)",
  async () => {
    await using w = await gcWorld("gc-sts-race");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    const sts = await statefulSet(w, pool, 1);
    const m0 = await startMember(w, node, "db-0");
    await w.scope.cluster.http.patch(sts, { spec: { replicas: 0 } });
    await eventually("db-0 to be deleted", async () => {
      try {
        await w.scope.cluster.http.get(`${podsPath(w.ns)}/db-0`);
        return undefined;
      } catch {
        return true;
      }
    });
    let back: { uid: string } | undefined;
    const gc = w.gc({
      hooks: {
        // Between the GC's verification and its writes, the StatefulSet is scaled up again and the new pod's
        // ADD takes the member's endpoint and address over.
        beforeApply: async () => {
          await w.scope.cluster.http.patch(sts, { spec: { replicas: 1 } });
          back = await startMember(w, node, "db-0", m0.uid);
        },
      },
    });
    const report = await gc.scanAll("request");
    assert.deepEqual(report.released, [], "the endpoint changed since it was read: nothing is released");
    assert.match(report.errors.join("\n"), /changed since it was read/);
    assert.deepEqual(await w.records(pool), { [m0.ip]: { pod: `${w.ns}/db-0`, podUid: back!.uid } });
    assert.equal((await w.endpoint("db-0"))?.status.current.uid, back!.uid);
    const again = await w.gc().scanAll("request");
    assert.deepEqual([again.released, again.endpointsDeleted], [[], []]);
  },
);

// ---------------------------------------------------------------------------------------------------------
// Terminating, finished and address-less pods; switches

async function deleteGracefully(w: Awaited<ReturnType<typeof gcWorld>>, name: string, seconds: number) {
  await w.scope.cluster.http.delete(`${podsPath(w.ns)}/${name}`, { gracePeriodSeconds: seconds });
}

kubeTest(
  "gc scan: terminating pods go after grace on ready and not-ready nodes, each only with its switch on (#4864)",
  async () => {
    await using w = await gcWorld("gc-term");
    const ready = await w.node("ready");
    const lost = await w.node("lost");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    const r = await w.runPod("r", ready, pool);
    const n = await w.runPod("n", lost, pool);
    await w.setNodeReady(lost.name, false);
    // No kubelet confirms the deletion: both stay Terminating, as on a dead node.
    await deleteGracefully(w, "r", 1);
    await deleteGracefully(w, "n", 1);
    const within = await w.gc().scanAll("request");
    assert.deepEqual(within.released, [], "within the grace period (deletionTimestamp + grace) nothing goes");
    assert.equal(within.traced, 2, "the leader traces both");
    await new Promise((res) => setTimeout(res, 2_500));

    const off = { terminatingOnReadyNode: false, terminatingOnNotReadyNode: false };
    assert.deepEqual((await w.gc({ config: off }).scanAll("request")).released, [], "both switches off");
    const readyOnly = await w.gc({ config: { terminatingOnNotReadyNode: false } }).scanAll("request");
    assert.deepEqual(readyOnly.released.map((x) => [x.ip, x.reason]), [[r.ip, "pod_terminating_timeout"]]);
    const all = await w.gc().scanAll("request");
    assert.deepEqual(all.released.map((x) => [x.ip, x.reason]), [[n.ip, "pod_terminating_timeout"]]);
    assert.deepEqual(await w.records(pool), {});
  },
);

kubeTest(
  "gc scan: a Succeeded pod goes after finishedAt + grace; a Failed one within its grace stays",
  async () => {
    await using w = await gcWorld("gc-finished");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    const done = await w.runPod("done", node, pool, { terminationGracePeriodSeconds: 1 });
    const failed = await w.runPod("failed", node, pool, { terminationGracePeriodSeconds: 30 });
    const finish = async (name: string, phase: string, at: number) =>
      await w.scope.cluster.http.patch(`${podsPath(w.ns)}/${name}/status`, {
        status: {
          phase,
          containerStatuses: [{
            name: "c",
            image: "registry.invalid/pause:1",
            imageID: "",
            ready: false,
            restartCount: 0,
            state: {
              terminated: { exitCode: phase === "Failed" ? 1 : 0, finishedAt: new Date(at).toISOString() },
            },
          }],
        },
      }, "merge");
    await finish("done", "Succeeded", Date.now() - 5_000);
    await finish("failed", "Failed", Date.now());
    const report = await w.gc().scanAll("request");
    assert.deepEqual(report.released.map((x) => [x.ip, x.reason]), [[done.ip, "pod_finished"]]);
    assert.equal(report.traced, 1, "the Failed pod is traced until its grace ends");
    assert.deepEqual(Object.keys(await w.records(pool)), [failed.ip]);
    await eventually(
      "the finished pod's endpoint to be gone",
      async () => (await w.endpoint("done")) ? undefined : true,
    );
  },
);

kubeTest(
  "gc scan: a Running pod without status.podIPs keeps its IP unless the switch says otherwise",
  async () => {
    await using w = await gcWorld("gc-noips");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    const pod = await w.createPod("p", node.name, pool);
    const ip = (await w.add(node.client, pod)).ips[0].address.split("/")[0];
    await w.scope.cluster.http.patch(`${podsPath(w.ns)}/p/status`, { status: { phase: "Running" } }, "merge");
    assert.deepEqual((await w.gc().scanAll("request")).released, []);
    const on = await w.gc({ config: { runningOnEmptyPodIPs: true } }).scanAll("request");
    assert.deepEqual(on.released.map((x) => [x.ip, x.reason]), [[ip, "pod_running_no_ips"]]);
  },
);

kubeTest(
  "gc scan: with enableCleanOutdatedEndpoint an endpoint no pool records is deleted; without, it stays (#4867)",
  async () => {
    await using w = await gcWorld("gc-4867");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.20"]);
    const leaked = await w.runPod("leaked", node, pool);
    const live = await w.runPod("live", node, pool);
    await w.forceDelete(leaked);
    // The records were reclaimed (e.g. by an earlier release whose endpoint clean-up failed): only the
    // endpoint is left, holding its finalizer.
    const { body } = await w.scope.cluster.http.get<SpiderIPPool>(`${POOLS}/${pool}`);
    const records = await w.records(pool);
    delete records[leaked.ip];
    await w.scope.cluster.http.put(`${POOLS}/${pool}/status`, {
      ...body,
      status: { ...body.status, allocatedIPs: encodeAllocatedIPs(records), allocatedIPCount: 1 },
    });
    const off = await w.gc().scanAll("request");
    assert.deepEqual(off.endpointsDeleted, []);
    assert.ok(await w.endpoint("leaked"), "kept while enableCleanOutdatedEndpoint is false");
    const on = await w.gc({ config: { cleanOutdatedEndpoint: true } }).scanAll("request");
    assert.deepEqual(on.endpointsDeleted.map((e) => [e.name, e.reason]), [["leaked", "outdated_endpoint"]]);
    await eventually(
      "the outdated endpoint to be gone",
      async () => (await w.endpoint("leaked")) ? undefined : true,
    );
    assert.equal((await w.endpoint("live"))?.status.current.uid, live.uid, "a referenced endpoint stays");
  },
);

kubeTest(
  "gc scan: many leaked records of a namespace are verified by one LIST of its pods and endpoints; a live pod missing from the snapshot keeps its address",
  async () => {
    await using w = await gcWorld("gc-batch");
    const node = await w.node("n1");
    const pool = await w.pool("v4", ["192.0.2.10-192.0.2.120"]);
    const live = await w.runPod("live", node, pool);
    // Records of pods that never got (or already lost) their endpoint and no longer exist, as a crashed agent
    // leaves them.
    const leaked = Array.from({ length: 12 }, (_, i) => ({
      ip: `192.0.2.${100 + i}`,
      pod: `${w.ns}/leak-${i}`,
      podUid: crypto.randomUUID(),
    }));
    const { body } = await w.scope.cluster.http.get<SpiderIPPool>(`${POOLS}/${pool}`);
    const records = await w.records(pool);
    for (const l of leaked) records[l.ip] = { pod: l.pod, podUid: l.podUid };
    await w.scope.cluster.http.put(`${POOLS}/${pool}/status`, {
      ...body,
      status: { ...body.status, allocatedIPs: encodeAllocatedIPs(records), allocatedIPCount: 13 },
    });
    const verified: [string, number, string][] = [];
    const gc = w.gc({
      hooks: {
        // The listed pods and endpoints lag: the live pod is missing, so it is a candidate too.
        snapshot: (s) => ({
          ...s,
          pods: s.pods.filter((p) => p.metadata.name !== "live"),
          endpoints: s.endpoints.filter((e) => e.metadata.name !== "live"),
        }),
        verifying: (ns, holders, by) => verified.push([ns, holders, by]),
      },
    });
    const report = await gc.scanAll("request");
    assert.deepEqual(report.errors, []);
    assert.deepEqual(verified, [[w.ns, 13, "list"]], "13 candidates of one namespace, read again by LIST");
    assert.deepEqual(
      report.released.map((r) => [r.ip, r.pod, r.podUid, r.reason]).sort(),
      leaked.map((l) => [l.ip, l.pod, l.podUid, "pod_not_found"]).sort(),
    );
    assert.equal(report.keptAfterVerification, 1, "the live pod was read again and kept");
    assert.deepEqual(await w.records(pool), { [live.ip]: { pod: `${w.ns}/live`, podUid: live.uid } });
    assert.equal((await w.endpoint("live"))?.status.current.uid, live.uid);
    const events = await w.scope.cluster.http.get<{ items: { reason: string; message: string }[] }>(
      `/api/v1/namespaces/default/events?fieldSelector=involvedObject.name=${pool}`,
    );
    const message = events.body.items.find((e) => e.reason === "IPReleasedByGC")?.message ?? "";
    assert.match(message, /^released 12 addresses of 12 pods: /, "one Event on the pool for the whole batch");
    assert.ok(message.includes(`${leaked[0].ip} of ${leaked[0].pod} (pod UID ${leaked[0].podUid})`), message);
  },
);
