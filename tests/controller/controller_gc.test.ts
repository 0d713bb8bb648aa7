// The IP GC inside real `dist/spiderpool controller` processes, two replicas running as the controller's
// ServiceAccount under deploy/rbac.yaml with deploy/controller.yaml's environment, against the real API server;
// a real `dist/spiderpool agent` gives the pods their addresses. A pod deleted with grace 0 whose DEL never ran
// gets its address freed and its SpiderEndpoint removed by the leader's GC; a live pod keeps its address; after
// the leader is SIGKILLed the other replica's GC takes over; the on-demand scan on the health port refuses a
// caller without a token or without the RBAC verb and runs for one with it (also through `spiderpool gc`).

import assert from "node:assert/strict";
import { decodeAllocatedIPs } from "../../src/api/allocated.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import { AgentClient } from "../../src/agentapi/client.ts";
import { NotFoundError } from "../../src/kube/client.ts";
import { type AgentProcess, scrapeMetrics, startAgentProcess } from "../e2e/node_sim.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";
import { run } from "../binary/run.ts";
import {
  API,
  CONTROLLER_BIN,
  type ControllerProcess,
  type ControllerSet,
  randomSubnets,
} from "./webhook_harness.ts";
import { controllerAsServiceAccount, underRbac } from "../integration/under_rbac.ts";

const RBAC = "/apis/rbac.authorization.k8s.io/v1";
/** Short trace gap and scan period so that a test sees the GC act in seconds (upstream: 5 s and 600 s). */
const GC_ENV = {
  SPIDERPOOL_GC_TRACE_POD_GAP_DURATION: "0.5",
  SPIDERPOOL_GC_DEFAULT_INTERVAL_DURATION: "5",
  SPIDERPOOL_GC_UNCONFIRMED_RECORD_GRACE_DURATION: "5",
};

interface World extends AsyncDisposable {
  scope: TestScope;
  set: ControllerSet;
  pool: string;
  client: AgentClient;
  agent: AgentProcess;
  /** A Pod bound to the node, given an address by the agent and marked Running with it. */
  runPod(name: string): Promise<{ name: string; uid: string; ip: string }>;
  forceDelete(name: string): Promise<void>;
  records(): Promise<Record<string, { pod: string; podUid: string }>>;
  endpoint(name: string): Promise<SpiderEndpoint | undefined>;
}

async function world(prefix: string, env: Record<string, string> = {}): Promise<World> {
  const scope = await testScope(prefix);
  const { http, kubeconfigPath } = scope.cluster;
  const ns = scope.namespace;
  const stack = new AsyncDisposableStack();
  stack.defer(() => scope[Symbol.asyncDispose]());
  try {
    const sa = stack.use(await underRbac(scope, true));
    const set = stack.use(
      await controllerAsServiceAccount(scope, sa.controller, true, {
        replicas: 2,
        env: { ...GC_ENV, ...env },
      }),
    );
    const node = scope.name("node");
    await http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
    scope.track(`/api/v1/nodes/${node}`);
    const now = new Date().toISOString();
    await http.patch(`/api/v1/nodes/${node}/status`, {
      status: {
        conditions: [{ type: "Ready", status: "True", lastHeartbeatTime: now, lastTransitionTime: now }],
      },
    }, "strategic");
    const dir = await Deno.makeTempDir({ prefix: "spiderpool-ctl-gc-" });
    stack.defer(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    const agent = await startAgentProcess({ node, kubeconfig: kubeconfigPath, dir });
    stack.defer(() => agent.stop());
    // The pool goes through the controllers' webhooks and carries the set's label: their GC scans only it.
    const { v4, v4prefix } = randomSubnets();
    const pool = scope.name("v4");
    await set.create(`${API}/spiderippools`, {
      apiVersion: "spiderpool.spidernet.io/v2beta1",
      kind: "SpiderIPPool",
      metadata: { name: pool },
      spec: { subnet: v4, ips: [`${v4prefix}10-${v4prefix}30`] },
    });
    const client = new AgentClient(agent.socketPath, { timeoutMs: 60_000 });
    const pods = `/api/v1/namespaces/${ns}/pods`;
    const w: World = {
      scope,
      set,
      pool,
      client,
      agent,
      async runPod(name) {
        const { body } = await http.post<{ metadata: { uid: string } }>(pods, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name, annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) } },
          spec: { nodeName: node, containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
        });
        const uid = body.metadata.uid;
        const res = await poll(`the agent to allocate for ${name}`, 30_000, async () => {
          try {
            return await client.allocate({
              containerID: `cid-${uid}`,
              ifName: "eth0",
              netNamespace: `/var/run/netns/${name}`,
              podNamespace: ns,
              podName: name,
              podUID: uid,
            });
          } catch (err) {
            // The agent's pool cache may not have the new pool yet.
            if (/no pool|not found|SpiderIPPool/i.test((err as Error).message)) return undefined;
            throw err;
          }
        });
        const ip = res.ips[0].address.split("/")[0];
        await http.patch(`${pods}/${name}/status`, {
          status: {
            phase: "Running",
            podIP: ip,
            podIPs: [{ ip }],
            conditions: [{ type: "Ready", status: "True" }],
          },
        }, "merge");
        return { name, uid, ip };
      },
      async forceDelete(name) {
        await http.delete(`${pods}/${name}`, { gracePeriodSeconds: 0 });
      },
      async records() {
        const { body } = await http.get<SpiderIPPool>(`${API}/spiderippools/${pool}`);
        return decodeAllocatedIPs(body.status?.allocatedIPs, pool);
      },
      async endpoint(name) {
        try {
          return (await http.get<SpiderEndpoint>(`${API}/namespaces/${ns}/spiderendpoints/${name}`)).body;
        } catch (err) {
          if (err instanceof NotFoundError) return undefined;
          throw err;
        }
      },
      async [Symbol.asyncDispose]() {
        await http.delete(pods, { gracePeriodSeconds: 0 }).catch(() => {});
        const { body } = await http.get<{ items: SpiderEndpoint[] }>(
          `${API}/namespaces/${ns}/spiderendpoints`,
        );
        for (const ep of body.items) {
          await http.patch(`${API}/namespaces/${ns}/spiderendpoints/${ep.metadata.name}`, {
            metadata: { finalizers: null },
          }).catch(() => {});
        }
        await stack.disposeAsync();
      },
    };
    return w;
  } catch (err) {
    await stack.disposeAsync();
    throw err;
  }
}

const released = async (w: World, ip: string) => (await w.records())[ip] ? undefined : true;
/** Waits for the GC's log line naming the release of `ip`: it is written after the release it reports. */
const releaseLogged = (w: World, replica: ControllerProcess, pod: string, ip: string) =>
  poll(
    `the release of pod ${pod} in the log`,
    30_000,
    async () =>
      new RegExp(`released ${ip.replaceAll(".", "\\.")} \\(${w.pool}\\)`).test(await replica.log()) ||
      undefined,
  );
const gcCount = async (port: number) => (await scrapeMetrics(port)).get("spiderpool_ip_gc_counts_total") ?? 0;

kubeTest(
  "controller IP GC: the leader frees a force-deleted pod's address and SpiderEndpoint, never a live pod's; after SIGKILL of the leader the other replica's GC takes over",
  async () => {
    await using w = await world("ctl-gc");
    const leader = await w.set.leader();
    for (const r of w.set.replicas) await w.set.ready(r);
    const a = await w.runPod("a");
    const live = await w.runPod("live");
    assert.equal((await w.endpoint("a"))?.status.current.uid, a.uid);

    await w.forceDelete("a");
    await poll("the leader's GC to free pod a's address", 30_000, () => released(w, a.ip));
    await poll(
      "pod a's SpiderEndpoint to be removed",
      30_000,
      async () => (await w.endpoint("a")) ? undefined : true,
    );
    assert.ok((await gcCount(leader.metricsPort)) >= 1, "the leader's GC counted the release");
    await releaseLogged(w, leader, "a", a.ip);

    // A periodic scan on the leader has run since (5 s), and the start-up scans on both: the live pod keeps it.
    await poll(
      "a periodic scan-all on the leader",
      30_000,
      async () => /scan-all \(interval\)/.test(await leader.log()) || undefined,
    );
    assert.deepEqual(await w.records(), {
      [live.ip]: { pod: `${w.scope.namespace}/live`, podUid: live.uid },
    });
    assert.equal((await w.endpoint("live"))?.status.current.uid, live.uid);
    for (const r of w.set.replicas) assert.match(await r.log(), /scan-all \(startup\)/);

    await leader.kill();
    const next = await w.set.leader(60_000, leader);
    await w.set.ready(next);
    const b = await w.runPod("b");
    await w.forceDelete("b");
    await poll("the new leader's GC to free pod b's address", 60_000, () => released(w, b.ip));
    await poll(
      "pod b's SpiderEndpoint to be removed",
      30_000,
      async () => (await w.endpoint("b")) ? undefined : true,
    );
    assert.ok((await gcCount(next.metricsPort)) >= 1, "the new leader's GC released it");
    await releaseLogged(w, next, "b", b.ip);
    assert.equal((await w.records())[live.ip]?.podUid, live.uid, "the live pod still holds its address");
  },
);

kubeTest(
  "controller IP GC: POST /v1/ipam/gc_ips on the health port refuses callers without a token or the RBAC verb, and runs scan-all for one with it",
  async () => {
    // A long extra grace keeps the trace workers away: only the requested scan frees the deleted pod's address.
    await using w = await world("ctl-gc-http", { SPIDERPOOL_GC_ADDITIONAL_GRACE_DELAY: "600" });
    const http = w.scope.cluster.http;
    const ns = w.scope.namespace;
    for (const r of w.set.replicas) await w.set.ready(r);
    const gone = await w.runPod("gone");
    const live = await w.runPod("live");
    await w.forceDelete("gone");

    const role = w.scope.name("gc-caller");
    await http.post(`${RBAC}/clusterroles`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: role },
      rules: [{
        apiGroups: ["spiderpool.spidernet.io"],
        resources: ["spiderippools/gc"],
        verbs: ["create", "get"],
      }],
    });
    w.scope.track(`${RBAC}/clusterroles/${role}`);
    await http.post(`${RBAC}/clusterrolebindings`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: role },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ kind: "ServiceAccount", name: "caller", namespace: ns }],
    });
    w.scope.track(`${RBAC}/clusterrolebindings/${role}`);
    const token = async (name: string) => {
      await http.post(`/api/v1/namespaces/${ns}/serviceaccounts`, {
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: { name },
      });
      return (await http.post<{ status: { token: string } }>(
        `/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`,
        { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 600 } },
      )).body.status.token;
    };
    const allowed = await token("caller");
    const denied = await token("nobody");

    // The replica that does not lead: the on-demand scan runs on any replica.
    const leader = await w.set.leader();
    const other = w.set.replicas.find((r) => r !== leader)!;
    const url = `http://127.0.0.1:${other.healthPort}/v1/ipam/gc_ips`;
    const call = async (t?: string) => {
      const res = await fetch(url, { method: "POST", headers: t ? { authorization: `Bearer ${t}` } : {} });
      return { status: res.status, body: await res.json() };
    };
    const none = await call();
    assert.equal(none.status, 401);
    assert.match(none.body, /Authorization: Bearer/);
    assert.equal((await call("not-a-token")).status, 401);
    const forbidden = await call(denied);
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.body, new RegExp(`system:serviceaccount:${ns}:nobody.*create spiderippools/gc`));
    assert.equal((await w.records())[gone.ip]?.podUid, gone.uid, "a refused caller released nothing");

    // New bindings reach the authorizer asynchronously.
    const ok = await poll("the caller's binding to be in force", 30_000, async () => {
      const r = await call(allowed);
      return r.status === 403 ? undefined : r;
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.trigger, "request");
    assert.equal(ok.body.replica, other.podName);
    assert.equal(ok.body.leader, false);
    assert.deepEqual(
      ok.body.released.map((x: { ip: string; pod: string; reason: string }) => [x.ip, x.pod, x.reason]),
      [[gone.ip, `${ns}/gone`, "pod_not_found"]],
    );
    assert.equal((await w.records())[gone.ip], undefined);
    assert.equal(await w.endpoint("gone"), undefined, "its SpiderEndpoint went with it");
    assert.equal((await w.records())[live.ip]?.podUid, live.uid, "the live pod keeps its address");

    // `spiderpool gc` prints the same for the last report, with the token from a file.
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/token`, allowed);
      const r = await run(CONTROLLER_BIN, [
        "gc",
        "--controller",
        `http://127.0.0.1:${other.healthPort}`,
        "--token-file",
        `${dir}/token`,
        "--last",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        new RegExp(`released  ${gone.ip.replaceAll(".", "\\.")}  pool ${w.pool}  ${ns}/gone`),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
