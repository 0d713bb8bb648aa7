// The agent against a real control plane: its unix-socket API byte for byte, the objects it writes (pool
// status, SpiderEndpoint), its probes and metrics, and its concurrency guarantees (no duplicate address
// across agents, group commit within one agent).

import assert from "node:assert/strict";
import { loadAllYaml } from "@kubernetes/client-node";
import { API_VERSION, FINALIZER, PLURAL } from "../../src/api/constants.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import { decodeAllocatedIPs, encodeAllocatedIPs } from "../../src/api/allocated.ts";
import { type RunningAgent, startAgent } from "../../src/agent/daemon.ts";
import { parseAgentConfig } from "../../src/agent/config.ts";
import { AgentClient, AgentRequestError } from "../../src/agentapi/client.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";

const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
const endpointPath = (ns: string, name: string) =>
  `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}/${name}`;

// ---------------------------------------------------------------------------------------------------------
// Fixtures

interface Answer {
  status: number;
  text: string;
  json: unknown;
  headers: Headers;
}

/** One HTTP request on the agent's socket, as the plugin sends it (Connection: close). */
async function call(socket: string, method: string, path: string, body?: unknown | string): Promise<Answer> {
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  try {
    const res = await fetch(`http://localhost${path}`, {
      method,
      client,
      headers: { "content-type": "application/json", connection: "close" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json, headers: res.headers };
  } finally {
    client.close();
  }
}

interface Env {
  scope: TestScope;
  agents: RunningAgent[];
  dir: string;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A test namespace, a temp dir for sockets, and the agents started in it; all removed on dispose. */
async function environment(prefix: string): Promise<Env> {
  const scope = await testScope(prefix);
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-agent-test-" });
  const agents: RunningAgent[] = [];
  return {
    scope,
    agents,
    dir,
    async [Symbol.asyncDispose]() {
      for (const a of agents) await a.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      // No kubelet confirms pod deletion and no agent is left to drop endpoint finalizers: do both here, or
      // the namespace would stay Terminating.
      const { http } = scope.cluster;
      const ns = scope.namespace;
      await http.delete(`/api/v1/namespaces/${ns}/pods`, { gracePeriodSeconds: 0 }).catch(() => {});
      const eps = `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}`;
      const { body } = await http.get<{ items: SpiderEndpoint[] }>(eps);
      for (const ep of body.items) {
        if (!ep.metadata.finalizers?.length) continue;
        await http.patch(`${eps}/${ep.metadata.name}`, { metadata: { finalizers: null } }).catch(() => {});
      }
      await scope[Symbol.asyncDispose]();
    },
  };
}

/** Creates a Node object (no kubelet) and starts an agent for it with its own socket. */
async function agentFor(env: Env, node: string, labels: Record<string, string> = {}): Promise<RunningAgent> {
  const { http } = env.scope.cluster;
  await http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node, labels } });
  env.scope.track(`/api/v1/nodes/${node}`);
  const agent = await startAgent({
    nodeName: node,
    socketPath: `${env.dir}/${node}.sock`,
    kubeconfig: env.scope.cluster.kubeconfigPath,
    healthPort: 0,
    metricsPort: 0,
    log: () => {},
  });
  env.agents.push(agent);
  return agent;
}

interface PoolSpec {
  subnet: string;
  ips: string[];
  gateway?: string;
  routes?: { dst: string; gw: string }[];
  excludeIPs?: string[];
  default?: boolean;
}

/** Creates a SpiderIPPool (no webhook runs here, so ipVersion is set explicitly) and waits for `agents` to see it. */
async function pool(
  env: Env,
  suffix: string,
  spec: PoolSpec,
  agents: RunningAgent[] = env.agents,
): Promise<string> {
  const name = env.scope.name(suffix);
  const ipVersion = spec.subnet.includes(":") ? 6 : 4;
  await env.scope.cluster.http.post(POOLS, {
    apiVersion: API_VERSION,
    kind: "SpiderIPPool",
    metadata: { name },
    spec: { ipVersion, ...spec },
  });
  env.scope.track(`${POOLS}/${name}`);
  for (const a of agents) {
    await poll(
      `agent ${a.socketPath} to cache pool ${name}`,
      10_000,
      () => Promise.resolve(a.caches.pools.get(name) ? true : undefined),
    );
  }
  return name;
}

async function readPool(env: Env, name: string): Promise<SpiderIPPool> {
  return (await env.scope.cluster.http.get<SpiderIPPool>(`${POOLS}/${name}`)).body;
}

async function allocatedOf(env: Env, name: string) {
  return decodeAllocatedIPs((await readPool(env, name)).status?.allocatedIPs, name);
}

interface PodInfo {
  name: string;
  uid: string;
}

/** Creates a Pod bound to `node` (as a scheduler would) whose pool annotation names `pools`. */
async function podOn(
  env: Env,
  name: string,
  node: string,
  annotations: Record<string, string>,
  extra: { ownerReferences?: unknown[] } = {},
): Promise<PodInfo> {
  const { body } = await env.scope.cluster.http.post<{ metadata: { uid: string } }>(
    `/api/v1/namespaces/${env.scope.namespace}/pods`,
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, annotations, ...extra },
      spec: { nodeName: node, containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
    },
  );
  return { name, uid: body.metadata.uid };
}

function ippoolAnnotation(v4: string[], v6: string[] = []): Record<string, string> {
  return { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: v4, ipv6: v6 }) };
}

function addArgs(env: Env, pod: PodInfo, ifName = "eth0") {
  return {
    containerID: `cid-${pod.uid}`,
    ifName,
    netNamespace: `/var/run/netns/${pod.name}`,
    podNamespace: env.scope.namespace,
    podName: pod.name,
    podUID: pod.uid,
  };
}

function delArgs(env: Env, pod: PodInfo, ifName = "eth0") {
  return addArgs(env, pod, ifName);
}

async function getEndpoint(env: Env, name: string): Promise<SpiderEndpoint | undefined> {
  try {
    return (await env.scope.cluster.http.get<SpiderEndpoint>(endpointPath(env.scope.namespace, name))).body;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Socket API basics

kubeTest("agent: GET /v1/ipam/healthy answers 200 with an empty body once caches are synced", async () => {
  await using env = await environment("agent-health");
  const agent = await agentFor(env, env.scope.name("node"));
  const res = await call(agent.socketPath, "GET", "/v1/ipam/healthy");
  assert.equal(res.status, 200);
  assert.equal(res.text, "");
});

kubeTest("agent: health port serves startup, readiness and liveness through the socket", async () => {
  await using env = await environment("agent-probes");
  const agent = await agentFor(env, env.scope.name("node"));
  for (const probe of ["startup", "readiness", "liveness"]) {
    const res = await fetch(`http://127.0.0.1:${agent.healthPort}/v1/runtime/${probe}`);
    await res.body?.cancel();
    assert.equal(res.status, 200, probe);
  }
});

kubeTest("agent: POST /v1/ipam/ips is a no-op 200; unknown paths are 404 with a JSON string", async () => {
  await using env = await environment("agent-stub");
  const agent = await agentFor(env, env.scope.name("node"));
  assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ips")).status, 200);
  const res = await call(agent.socketPath, "GET", "/v1/nope");
  assert.equal(res.status, 404);
  assert.equal(typeof res.json, "string");
});

kubeTest(
  "agent: GET /v1/workloadendpoint needs both query parameters (400) and a SpiderEndpoint (404)",
  async () => {
    await using env = await environment("agent-wep");
    const agent = await agentFor(env, env.scope.name("node"));
    const missing = await call(
      agent.socketPath,
      "GET",
      `/v1/workloadendpoint?podNamespace=${env.scope.namespace}`,
    );
    assert.equal(missing.status, 400);
    assert.match(missing.json as string, /podName/);
    const none = await call(
      agent.socketPath,
      "GET",
      `/v1/workloadendpoint?podNamespace=${env.scope.namespace}&podName=ghost`,
    );
    assert.equal(none.status, 404);
    assert.equal(typeof none.json, "string");
  },
);

kubeTest(
  "agent: malformed ADD bodies get 500 with a JSON string naming the field, and allocate nothing",
  async () => {
    await using env = await environment("agent-bad");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    const good = addArgs(env, pod);
    const cases: [unknown, RegExp][] = [
      ["{not json", /not valid JSON/],
      [{ ...good, podUID: undefined }, /podUID in body is required/],
      [{ ...good, ifName: 7 }, /ifName in body must be of type string/],
      [{ ...good, cleanGateway: "yes" }, /cleanGateway in body must be of type boolean/],
      [{ ...good, defaultIPv4IPPool: "p" }, /defaultIPv4IPPool in body must be of type array of string/],
      [[good], /must be a JSON object/],
    ];
    for (const [body, message] of cases) {
      const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", body as string);
      assert.equal(res.status, 500, JSON.stringify(body));
      assert.equal(typeof res.json, "string");
      assert.match(res.json as string, message);
      assert.ok(res.text.endsWith("\n"));
    }
    assert.deepEqual(await allocatedOf(env, p), {});
    assert.equal(await getEndpoint(env, "web"), undefined);
    assert.equal(agent.metrics.poolStatusWrites, 0);
  },
);

kubeTest("agent: /metrics exposes the spiderpool_ipam_* counters", async () => {
  await using env = await environment("agent-metrics");
  const agent = await agentFor(env, env.scope.name("node"));
  const text = await (await fetch(`http://127.0.0.1:${agent.metricsPort}/metrics`)).text();
  for (
    const name of [
      "spiderpool_ipam_allocation_counts_total",
      "spiderpool_ipam_allocation_failure_counts_total",
      "spiderpool_ipam_allocation_update_ippool_conflict_counts_total",
      "spiderpool_ipam_allocation_err_ip_used_out_counts_total",
      "spiderpool_ipam_release_counts_total",
      "spiderpool_ipam_allocation_duration_seconds_bucket",
      "spiderpool_ipam_allocation_average_duration_seconds",
    ]
  ) {
    assert.match(text, new RegExp(`^${name}`, "m"), name);
  }
});

// ---------------------------------------------------------------------------------------------------------
// ADD and DEL

async function deletePodNow(env: Env, name: string): Promise<void> {
  await env.scope.cluster.http.delete(`/api/v1/namespaces/${env.scope.namespace}/pods/${name}`, {
    gracePeriodSeconds: 0,
  });
}

kubeTest(
  "agent: ADD gives the first free IP with gateway and routes, and records it in the pool and a SpiderEndpoint",
  async () => {
    await using env = await environment("agent-add");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", {
      subnet: "192.0.2.0/24",
      ips: ["192.0.2.10-192.0.2.20"],
      gateway: "192.0.2.1",
      routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }],
    });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, {
      ips: [{
        version: 4,
        address: "192.0.2.10/24",
        ipPool: p,
        gateway: "192.0.2.1",
        nic: "eth0",
        vlan: 0,
        enableGatewayDetection: false,
        enableIPConflictDetection: false,
      }],
      routes: [
        { ifName: "eth0", dst: "198.51.100.0/24", gw: "192.0.2.1" },
        { ifName: "eth0", dst: "0.0.0.0/0", gw: "192.0.2.1" },
      ],
    });

    const stored = await readPool(env, p);
    assert.deepEqual(decodeAllocatedIPs(stored.status?.allocatedIPs, p), {
      "192.0.2.10": { pod: `${env.scope.namespace}/web`, podUid: pod.uid },
    });
    assert.equal(stored.status?.allocatedIPCount, 1);

    const ep = await getEndpoint(env, "web");
    assert.ok(ep, "SpiderEndpoint web exists");
    assert.deepEqual(ep.metadata.finalizers, [FINALIZER]);
    assert.deepEqual(
      ep.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid, o.controller]),
      [["Pod", "web", pod.uid, true]],
    );
    assert.equal(ep.status.ownerControllerType, "Pod");
    assert.equal(ep.status.ownerControllerName, "web");
    assert.deepEqual(ep.status.current, {
      uid: pod.uid,
      node,
      ips: [{
        interface: "eth0",
        ipv4: "192.0.2.10/24",
        ipv4Pool: p,
        ipv4Gateway: "192.0.2.1",
        vlan: 0,
        cleanGateway: false,
        routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }],
      }],
    });

    const wep = await call(
      agent.socketPath,
      "GET",
      `/v1/workloadendpoint?podNamespace=${env.scope.namespace}&podName=web`,
    );
    assert.equal(wep.status, 200);
    assert.deepEqual(wep.json, {
      podNamespace: env.scope.namespace,
      podName: "web",
      podUID: pod.uid,
      node,
      interfaces: [{
        interface: "eth0",
        ipv4: "192.0.2.10/24",
        ipv4Pool: p,
        ipv4Gateway: "192.0.2.1",
        routes: [{ ifName: "eth0", dst: "198.51.100.0/24", gw: "192.0.2.1" }],
      }],
    });
  },
);

kubeTest(
  "agent: a repeated ADD for the same pod UID returns the same answer and writes nothing",
  async () => {
    await using env = await environment("agent-again");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", {
      subnet: "192.0.2.0/24",
      ips: ["192.0.2.10-192.0.2.20"],
      gateway: "192.0.2.1",
    });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    const first = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(first.status, 200, first.text);
    const writes = [agent.metrics.poolStatusWrites, agent.metrics.endpointWrites];
    const again = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(again.status, 200, again.text);
    assert.equal(again.text, first.text);
    assert.deepEqual([agent.metrics.poolStatusWrites, agent.metrics.endpointWrites], writes);
    assert.equal(Object.keys(await allocatedOf(env, p)).length, 1);
  },
);

kubeTest(
  "agent: DEL frees the address once the pod is gone; repeating it and DEL of an unknown pod succeed",
  async () => {
    await using env = await environment("agent-del");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod))).status, 200);

    // The pod is alive: DEL keeps its address (the runtime may be retrying a sandbox).
    assert.equal((await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, pod))).status, 200);
    assert.equal(Object.keys(await allocatedOf(env, p)).length, 1);

    await deletePodNow(env, "web");
    const del = await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, pod));
    assert.equal(del.status, 200, del.text);
    assert.equal(del.text, "");
    assert.deepEqual(await allocatedOf(env, p), {});
    assert.equal((await readPool(env, p)).status?.allocatedIPCount, 0);
    // The finalizer is gone, so the garbage collector removes the endpoint of the deleted pod.
    await poll(
      "SpiderEndpoint web to be deleted",
      20_000,
      async () => (await getEndpoint(env, "web")) ? undefined : true,
    );

    assert.equal((await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, pod))).status, 200);
    const ghost = { ...delArgs(env, pod), podName: "ghost", podUID: crypto.randomUUID() };
    assert.equal((await call(agent.socketPath, "DELETE", "/v1/ipam/ip", ghost)).status, 200);
  },
);

kubeTest("agent: an exhausted pool fails ADD with 500 naming the pool and leaves no record", async () => {
  await using env = await environment("agent-full");
  const node = env.scope.name("node");
  const agent = await agentFor(env, node);
  const p = await pool(env, "tiny", { subnet: "192.0.2.0/24", ips: ["192.0.2.10"] });
  const a = await podOn(env, "a", node, ippoolAnnotation([p]));
  const b = await podOn(env, "b", node, ippoolAnnotation([p]));
  assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, a))).status, 200);
  const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, b));
  assert.equal(res.status, 500);
  assert.equal(typeof res.json, "string");
  assert.match(res.json as string, new RegExp(`SpiderIPPool "${p}"`));
  assert.match(res.json as string, /1 of 1 allocated/);
  assert.deepEqual(Object.values(await allocatedOf(env, p)).map((r) => r.podUid), [a.uid]);
  assert.equal(await getEndpoint(env, "b"), undefined);
});

kubeTest(
  "agent: POST /v1/ipam/status answers 500 naming a full default pool, and 200 once an address is freed",
  async () => {
    await using env = await environment("agent-status");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.11"] });
    const status = () => call(agent.socketPath, "POST", "/v1/ipam/status", { defaultIPv4IPPool: [p] });
    const empty = await status();
    assert.equal(empty.status, 200, empty.text);
    assert.equal(empty.text, "");
    const bad = await call(agent.socketPath, "POST", "/v1/ipam/status", { defaultIPv4IPPool: p });
    assert.equal(bad.status, 500);
    assert.match(bad.json as string, /defaultIPv4IPPool in body must be of type array of string/);

    const a = await podOn(env, "a", node, ippoolAnnotation([p]));
    const b = await podOn(env, "b", node, ippoolAnnotation([p]));
    for (const pod of [a, b]) {
      assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod))).status, 200);
    }
    const full = await poll("the agent to report the pool full", 10_000, async () => {
      const res = await status();
      return res.status === 200 ? undefined : res;
    });
    assert.equal(full.status, 500);
    assert.equal(
      full.json,
      `no free IPv4 address in the CNI config's default_ipv4_ippool pools: "${p}" 2 of 2 allocated; ` +
        "add ips to them or another pool to default_ipv4_ippool",
    );

    await deletePodNow(env, "a");
    assert.equal((await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, a))).status, 200);
    const freed = await poll("the agent to see the freed address", 10_000, async () => {
      const res = await status();
      return res.status === 200 ? res : undefined;
    });
    assert.equal(freed.text, "");
  },
);

kubeTest(
  "agent: an ADD naming a pool its cache has not seen waits for the cache, then allocates from the spec it holds",
  async () => {
    await using env = await environment("agent-lag");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    // The pool cache stops, so the pool below exists in the API server only: the ADD reads it to filter, but
    // must not decide which address is free before its cache holds that spec (an overlapping pool it has not
    // seen could be handing out the same addresses).
    agent.caches.pools.stop();
    const name = env.scope.name("late");
    await env.scope.cluster.http.post(POOLS, {
      apiVersion: API_VERSION,
      kind: "SpiderIPPool",
      metadata: { name },
      spec: { subnet: "192.0.2.0/24", ips: ["192.0.2.70-192.0.2.71"] },
    });
    env.scope.track(`${POOLS}/${name}`);
    const pod = await podOn(env, "a", node, ippoolAnnotation([name]));
    let answered = false;
    const add = call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod)).finally(() =>
      answered = true
    );
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(answered, false, "answered before the cache held the pool");
    assert.deepEqual(await allocatedOf(env, name), {});
    agent.caches.pools.start();
    const res = await add;
    assert.equal(res.status, 200, res.text);
    assert.equal((res.json as { ips: { address: string }[] }).ips[0].address, "192.0.2.70/24");
    assert.deepEqual(Object.keys(await allocatedOf(env, name)), ["192.0.2.70"]);
  },
);

kubeTest("agent: ADD falls through to the next pool when the first is exhausted", async () => {
  await using env = await environment("agent-next");
  const node = env.scope.name("node");
  const agent = await agentFor(env, node);
  const first = await pool(env, "first", { subnet: "192.0.2.0/24", ips: ["192.0.2.10"] });
  const second = await pool(env, "second", { subnet: "198.51.100.0/24", ips: ["198.51.100.5-198.51.100.9"] });
  const a = await podOn(env, "a", node, ippoolAnnotation([first, second]));
  const b = await podOn(env, "b", node, ippoolAnnotation([first, second]));
  const ra = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, a));
  const rb = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, b));
  assert.equal(ra.status, 200, ra.text);
  assert.equal(rb.status, 200, rb.text);
  const ipOf = (r: Answer) => (r.json as { ips: { address: string; ipPool: string }[] }).ips[0];
  assert.deepEqual(ipOf(ra), { ...ipOf(ra), address: "192.0.2.10/24", ipPool: first });
  assert.deepEqual(ipOf(rb), { ...ipOf(rb), address: "198.51.100.5/24", ipPool: second });
});

kubeTest("agent: a dual-stack ADD gets one IPv4 and one IPv6 address on the same NIC", async () => {
  await using env = await environment("agent-dual");
  const node = env.scope.name("node");
  const agent = await agentFor(env, node);
  const v4 = await pool(env, "v4", {
    subnet: "203.0.113.0/24",
    ips: ["203.0.113.100-203.0.113.110"],
    gateway: "203.0.113.1",
  });
  const v6 = await pool(env, "v6", {
    subnet: "2001:db8:1::/64",
    ips: ["2001:db8:1::10-2001:db8:1::20"],
    gateway: "2001:db8:1::1",
  });
  const pod = await podOn(env, "web", node, ippoolAnnotation([v4], [v6]));
  const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
  assert.equal(res.status, 200, res.text);
  const body = res.json as { ips: { version: number; address: string; nic: string }[]; routes: unknown[] };
  assert.deepEqual(body.ips.map((i) => [i.version, i.address, i.nic]), [
    [4, "203.0.113.100/24", "eth0"],
    [6, "2001:db8:1::10/64", "eth0"],
  ]);
  assert.deepEqual(body.routes, [
    { ifName: "eth0", dst: "0.0.0.0/0", gw: "203.0.113.1" },
    { ifName: "eth0", dst: "::/0", gw: "2001:db8:1::1" },
  ]);
  const ep = await getEndpoint(env, "web");
  assert.equal(ep?.status.current.ips[0].ipv4, "203.0.113.100/24");
  assert.equal(ep?.status.current.ips[0].ipv6, "2001:db8:1::10/64");
  assert.deepEqual(Object.keys(await allocatedOf(env, v6)), ["2001:db8:1::10"]);
});

kubeTest(
  "agent: DELETE /v1/ipam/ips releases a conflicting pod's addresses and empties its endpoint",
  async () => {
    await using env = await environment("agent-batch");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod))).status, 200);
    const { ifName: _, ...batch } = delArgs(env, pod);
    const res = await call(agent.socketPath, "DELETE", "/v1/ipam/ips", {
      ...batch,
      isReleaseConflictIPs: true,
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(await allocatedOf(env, p), {});
    assert.deepEqual((await getEndpoint(env, "web"))?.status.current.ips, []);
  },
);

kubeTest(
  "agent: POST /v1/ipam/gc releases this node's endpoints whose attachments the runtime no longer has",
  async () => {
    await using env = await environment("agent-gc");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const keep = await podOn(env, "keep", node, ippoolAnnotation([p]));
    const gone = await podOn(env, "gone", node, ippoolAnnotation([p]));
    for (const pod of [keep, gone]) {
      const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", {
        ...addArgs(env, pod),
        networkName: "net-a",
      });
      assert.equal(res.status, 200);
    }
    await deletePodNow(env, "gone");
    await cachedEndpoints(env, agent, 2);
    const res = await call(agent.socketPath, "POST", "/v1/ipam/gc", {
      networkName: "net-a",
      validAttachments: [{ containerID: `cid-${keep.uid}`, ifName: "eth0" }],
    });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(
      Object.values(await allocatedOf(env, p)).map((r) => r.podUid),
      [keep.uid],
    );
    await poll(
      "SpiderEndpoint gone to be deleted",
      20_000,
      async () => (await getEndpoint(env, "gone")) ? undefined : true,
    );
    assert.ok(await getEndpoint(env, "keep"));
  },
);

/** Waits until `agent`'s cache holds `count` endpoints of the test namespace. */
async function cachedEndpoints(env: Env, agent: RunningAgent, count: number): Promise<void> {
  await poll(`agent to cache ${count} endpoints`, 10_000, () =>
    Promise.resolve(
      agent.caches.endpoints.list().filter((e) => e.metadata.namespace === env.scope.namespace).length ===
          count || undefined,
    ));
}

kubeTest(
  "agent: a GC for one network releases only NICs attached through it, and nothing of a pod within its grace period",
  async () => {
    await using env = await environment("agent-gcnet");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const gc = (networkName: string) =>
      call(agent.socketPath, "POST", "/v1/ipam/gc", { networkName, validAttachments: [] });
    const add = async (pod: PodInfo, ifName: string, networkName: string) => {
      const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", {
        ...addArgs(env, pod, ifName),
        networkName,
      });
      assert.equal(res.status, 200, res.text);
    };
    // "a" is attached through net-a only, "b" through net-b only, "c" has eth0 through net-a and net1 through
    // net-b (a Multus pod with a secondary network).
    const a = await podOn(env, "a", node, ippoolAnnotation([p]));
    const b = await podOn(env, "b", node, ippoolAnnotation([p]));
    const c = await podOn(env, "c", node, {
      "ipam.spidernet.io/ippools": JSON.stringify([{ interface: "eth0", ipv4: [p] }, {
        interface: "net1",
        ipv4: [p],
      }]),
    });
    await add(a, "eth0", "net-a");
    await add(b, "eth0", "net-b");
    await add(c, "eth0", "net-a");
    await add(c, "net1", "net-b");
    assert.equal(
      (await getEndpoint(env, "c"))?.metadata.annotations?.["ipam.spidernet.io/nic-networks"],
      '{"eth0":"net-a","net1":"net-b"}',
    );
    const held = async () =>
      Object.entries(await allocatedOf(env, p)).map(([ip, r]) => `${r.pod.split("/")[1]} ${ip}`).sort();
    const before = await held();
    assert.equal(before.length, 4);
    const ipOf = (pod: string, nic: string) =>
      getEndpoint(env, pod).then((ep) =>
        ep?.status.current.ips.find((d) => d.interface === nic)?.ipv4?.split("/")[0]
      );
    const cNet1 = await ipOf("c", "net1");

    // "a" is terminating within its grace period (its sandbox may still run); "b" and "c" are gone.
    await env.scope.cluster.http.delete(`/api/v1/namespaces/${env.scope.namespace}/pods/a`);
    await deletePodNow(env, "b");
    await deletePodNow(env, "c");
    await cachedEndpoints(env, agent, 3);

    assert.equal((await gc("net-b")).status, 200);
    assert.deepEqual(
      await held(),
      before.filter((h) => !h.startsWith("b ") && h !== `c ${cNet1}`),
      "net-b's GC releases b and c's net1 only",
    );
    const cEp = await getEndpoint(env, "c");
    assert.deepEqual(cEp?.status.current.ips.map((d) => d.interface), ["eth0"]);
    assert.equal(cEp?.metadata.annotations?.["ipam.spidernet.io/nic-networks"], '{"eth0":"net-a"}');

    assert.equal((await gc("net-a")).status, 200);
    assert.deepEqual(
      (await held()).map((h) => h.split(" ")[0]),
      ["a"],
      "net-a's GC releases c's eth0; a is within its grace period",
    );
    assert.equal((await getEndpoint(env, "c"))?.metadata.finalizers?.length ?? 0, 0);

    // Once a's grace period (1 s, shortened) and the clock-skew allowance are over, its sandbox is done.
    await env.scope.cluster.http.delete(`/api/v1/namespaces/${env.scope.namespace}/pods/a`, {
      gracePeriodSeconds: 1,
    });
    await new Promise((r) => setTimeout(r, 7_000));
    assert.equal((await gc("net-a")).status, 200);
    assert.deepEqual(await held(), []);
  },
);

kubeTest("agent: a GC that names no network is refused and releases nothing", async () => {
  await using env = await environment("agent-gcnonet");
  const node = env.scope.name("node");
  const agent = await agentFor(env, node);
  const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
  const pod = await podOn(env, "gone", node, ippoolAnnotation([p]));
  const add = await call(agent.socketPath, "POST", "/v1/ipam/ip", {
    ...addArgs(env, pod),
    networkName: "net-a",
  });
  assert.equal(add.status, 200);
  await deletePodNow(env, "gone");
  await cachedEndpoints(env, agent, 1);
  const res = await call(agent.socketPath, "POST", "/v1/ipam/gc", { validAttachments: [] });
  assert.equal(res.status, 500);
  assert.equal(res.json, "networkName in body is required");
  assert.equal(Object.keys(await allocatedOf(env, p)).length, 1);
});

kubeTest(
  "agent: DEL says in X-Spiderpool-Release what it did: kept for a live pod, released with the addresses, then none",
  async () => {
    await using env = await environment("agent-delres");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod))).status, 200);
    const del = () => call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, pod));
    const outcome = (
      a: Answer,
    ) => [
      a.status,
      a.headers.get("x-spiderpool-release"),
      a.headers.get("x-spiderpool-release-detail"),
      a.text,
    ];

    assert.deepEqual(outcome(await del()), [200, "kept", "pod is alive; its IPs are kept", ""]);
    assert.equal(Object.keys(await allocatedOf(env, p)).length, 1);
    await deletePodNow(env, "web");
    assert.deepEqual(outcome(await del()), [200, "released", "192.0.2.10", ""]);
    assert.deepEqual(await allocatedOf(env, p), {});
    const again = await del();
    assert.equal(again.headers.get("x-spiderpool-release"), "none");
  },
);

kubeTest(
  "agent: ADD or DEL with an ifName the plugin would refuse (100 characters, ../eth0) is refused naming it, and nothing is allocated",
  async () => {
    await using env = await environment("agent-ifname");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    for (const ifName of ["x".repeat(100), "../eth0", "eth0:1", "", ".."]) {
      for (const method of ["POST", "DELETE"]) {
        const res = await call(agent.socketPath, method, "/v1/ipam/ip", addArgs(env, pod, ifName));
        assert.equal(res.status, 500, `${method} ${JSON.stringify(ifName)}: ${res.text}`);
        assert.match(
          res.json as string,
          ifName === ""
            ? /^ifName in body is required$/
            : /^ifName in body .* (bytes long|contains|is "\.\.")/,
        );
      }
    }
    const badId = await call(agent.socketPath, "POST", "/v1/ipam/ip", {
      ...addArgs(env, pod),
      containerID: "../x",
    });
    assert.equal(badId.status, 500);
    assert.match(badId.json as string, /^containerID in body "\.\.\/x" has invalid characters/);
    const badNet = await call(agent.socketPath, "POST", "/v1/ipam/ip", {
      ...addArgs(env, pod),
      networkName: "a b",
    });
    assert.equal(badNet.status, 500);
    assert.match(badNet.json as string, /^networkName in body "a b" has invalid characters/);
    assert.deepEqual(await allocatedOf(env, p), {});
    assert.equal(await getEndpoint(env, "web"), undefined);
  },
);

// ---------------------------------------------------------------------------------------------------------
// Concurrency

/** Creates `n` pods named `<prefix>-<i>` on `node`, all naming `pools`. */
async function pods(env: Env, prefix: string, n: number, node: string, pools: string[]): Promise<PodInfo[]> {
  return await Promise.all(
    Array.from({ length: n }, (_, i) => podOn(env, `${prefix}-${i}`, node, ippoolAnnotation(pools))),
  );
}

/** Every record of the pool has a SpiderEndpoint of the same pod UID listing that address, and vice versa. */
async function assertPoolMatchesEndpoints(env: Env, poolName: string, expected: number): Promise<void> {
  const records = await allocatedOf(env, poolName);
  assert.equal(Object.keys(records).length, expected);
  const { body } = await env.scope.cluster.http.get<{ items: SpiderEndpoint[] }>(
    `/apis/${API_VERSION}/namespaces/${env.scope.namespace}/${PLURAL.endpoint}`,
  );
  const byIP = new Map<string, SpiderEndpoint>();
  for (const ep of body.items) {
    for (const d of ep.status.current.ips) {
      if (d.ipv4Pool === poolName && d.ipv4) byIP.set(d.ipv4.split("/")[0], ep);
    }
  }
  assert.equal(byIP.size, expected, "each endpoint lists a distinct address");
  for (const [ip, rec] of Object.entries(records)) {
    const ep = byIP.get(ip);
    assert.ok(ep, `record ${ip} (${rec.pod}) has a SpiderEndpoint`);
    assert.equal(ep.status.current.uid, rec.podUid, `${ip}: endpoint and record agree on the pod UID`);
    assert.equal(`${ep.metadata.namespace}/${ep.metadata.name}`, rec.pod);
  }
}

kubeTest(
  "agent: two agents allocating concurrently from one pool never hand out the same address",
  async () => {
    await using env = await environment("agent-race");
    const nodeA = env.scope.name("node-a");
    const nodeB = env.scope.name("node-b");
    const a = await agentFor(env, nodeA);
    const b = await agentFor(env, nodeB);
    const p = await pool(env, "shared", { subnet: "198.18.0.0/15", ips: ["198.18.0.10-198.18.0.49"] });
    const onA = await pods(env, "a", 15, nodeA, [p]);
    const onB = await pods(env, "b", 15, nodeB, [p]);
    const results = await Promise.all([
      ...onA.map((pod) => call(a.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod))),
      ...onB.map((pod) => call(b.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod))),
    ]);
    for (const r of results) assert.equal(r.status, 200, r.text);
    const addresses = results.map((r) => (r.json as { ips: { address: string }[] }).ips[0].address);
    assert.equal(new Set(addresses).size, 30, `distinct addresses: ${addresses.join(" ")}`);
    await assertPoolMatchesEndpoints(env, p, 30);
    const conflicts = (agent: RunningAgent) => agent.metrics.allocationConflicts.value();
    console.log(
      `two agents: 30 ADDs → ${a.metrics.poolStatusWrites + b.metrics.poolStatusWrites} status writes, ` +
        `${conflicts(a) + conflicts(b)} conflict(s) retried`,
    );
  },
);

kubeTest(
  "agent: group commit serves 20 concurrent ADDs on one pool with far fewer than 20 status writes",
  async () => {
    await using env = await environment("agent-group");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "busy", { subnet: "198.18.0.0/15", ips: ["198.18.1.0-198.18.1.255"] });
    const list = await pods(env, "w", 20, node, [p]);
    const before = agent.metrics.poolStatusWrites;
    const results = await Promise.all(
      list.map((pod) => call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod))),
    );
    for (const r of results) assert.equal(r.status, 200, r.text);
    const writes = agent.metrics.poolStatusWrites - before;
    console.log(
      `group commit: 20 ADDs → ${writes} pool status writes (${(writes / 20).toFixed(2)} per pod), ` +
        `largest batch ${agent.ipam.maxBatch}, ${agent.metrics.endpointWrites} endpoint writes`,
    );
    assert.ok(writes <= 6, `expected at most 6 status writes for 20 ADDs, got ${writes}`);
    await assertPoolMatchesEndpoints(env, p, 20);
  },
);

kubeTest(
  "agent: ADDs of new pods read no endpoint (the cache says absent) and write each pool status on the last write's result",
  async () => {
    await using env = await environment("agent-reads");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "reads", { subnet: "198.18.0.0/15", ips: ["198.18.2.0-198.18.2.255"] });
    const list = await pods(env, "r", 5, node, [p]);
    const reads = agent.metrics.endpointReads;
    const bases = { ...agent.ipam.poolBases.stats };
    for (const pod of list) {
      const r = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
      assert.equal(r.status, 200, r.text);
    }
    assert.equal(agent.metrics.endpointReads - reads, 0, "endpoint GETs for new pods");
    const stats = agent.ipam.poolBases.stats;
    assert.equal(stats.read - bases.read, 1, "only the first status write read the pool");
    assert.equal(stats.written + stats.cache - bases.written - bases.cache, 4);
    await assertPoolMatchesEndpoints(env, p, 5);
    // A second interface of a pod whose endpoint this agent just wrote: the endpoint is read, not assumed absent.
    const again = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, list[0]));
    assert.equal(again.status, 200, again.text);
    assert.equal(agent.metrics.endpointReads - reads, 1);
  },
);

kubeTest(
  "agent: an endpoint the cache did not list is found when creating it (409), and the ADD decides on the stored one",
  async () => {
    await using env = await environment("agent-epmiss");
    const [na, nb] = [env.scope.name("node-a"), env.scope.name("node-b")];
    const a = await agentFor(env, na);
    const b = await agentFor(env, nb);
    const p = await pool(env, "miss", { subnet: "198.18.0.0/15", ips: ["198.18.3.0-198.18.3.255"] });
    // Agent b's endpoint cache stops before a writes the endpoint: b never lists it.
    b.caches.endpoints.stop();
    const pod = await podOn(env, "m", na, ippoolAnnotation([p]));
    const first = await call(a.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(first.status, 200, first.text);
    const writesB = b.metrics.endpointWrites;
    // The same sandbox's ADD reaches b (as a retried ADD would): it must answer the address a recorded.
    const second = await call(b.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(second.status, 200, second.text);
    const ip = (r: Answer) => (r.json as { ips: { address: string }[] }).ips[0].address;
    assert.equal(ip(second), ip(first));
    assert.equal(b.metrics.endpointWrites - writesB, 1, "b tried to create the endpoint once");
    assert.deepEqual(Object.keys(await allocatedOf(env, p)), [ip(first).split("/")[0]]);
    await assertPoolMatchesEndpoints(env, p, 1);
  },
);

// ---------------------------------------------------------------------------------------------------------
// Wire format, multi-NIC, recreated pods, StatefulSets, configuration

/** Sends raw bytes on the socket the way the Go plugin client does and returns the whole answer. */
async function rawHTTP(socket: string, request: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(new TextEncoder().encode(request));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16384);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  } finally {
    conn.close();
  }
}

kubeTest("agent: 1,100 idle connections on the socket do not starve the health check or an ADD", async () => {
  await using env = await environment("agent-idle");
  const node = env.scope.name("node");
  const agent = await agentFor(env, node);
  const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
  const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
  const idle: Deno.UnixConn[] = [];
  try {
    for (let i = 0; i < 1_100; i++) {
      idle.push(await Deno.connect({ transport: "unix", path: agent.socketPath }));
    }
    const client = new AgentClient(agent.socketPath, { timeoutMs: 20_000, healthTimeoutMs: 5_000 });
    await client.healthy();
    const res = await client.allocate(addArgs(env, pod));
    assert.equal(res.ips[0].address, "192.0.2.10/24");
  } finally {
    for (const c of idle) c.close();
  }
});

/** A self-signed serving certificate for 127.0.0.1 (an admission webhook the API server calls). */
async function selfSigned(dir: string): Promise<{ cert: string; key: string }> {
  const out = await new Deno.Command("openssl", {
    args: [
      ..."req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1"
        .split(" "),
      ...["-keyout", `${dir}/key.pem`, "-out", `${dir}/cert.pem`, "-addext", "subjectAltName=IP:127.0.0.1"],
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`openssl: ${new TextDecoder().decode(out.stderr)}`);
  return { cert: await Deno.readTextFile(`${dir}/cert.pem`), key: await Deno.readTextFile(`${dir}/key.pem`) };
}

kubeTest(
  "agent: while ADDs wait on a slow API server, the socket's health check and the liveness probe answer at once",
  async () => {
    await using env = await environment("agent-busy");
    const { http } = env.scope.cluster;
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "busy", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.30"] });
    const list = await pods(env, "b", 6, node, [p]);
    // An admission webhook holds every SpiderEndpoint CREATE of this namespace until the test lets go.
    const tls = await selfSigned(env.dir);
    let letGo!: () => void;
    const released = new Promise<void>((r) => letGo = r);
    let heldCount = 0;
    const webhook = Deno.serve(
      { hostname: "127.0.0.1", port: 0, cert: tls.cert, key: tls.key, onListen: () => {} },
      async (req) => {
        const review = await req.json();
        heldCount++;
        await released;
        return Response.json({
          apiVersion: "admission.k8s.io/v1",
          kind: "AdmissionReview",
          response: { uid: review.request.uid, allowed: true },
        });
      },
    );
    const path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
    const name = env.scope.name("hold");
    try {
      await http.post(path, {
        apiVersion: "admissionregistration.k8s.io/v1",
        kind: "ValidatingWebhookConfiguration",
        metadata: { name },
        webhooks: [{
          name: "hold.agent-test.spidernet.io",
          clientConfig: { url: `https://127.0.0.1:${webhook.addr.port}/hold`, caBundle: btoa(tls.cert) },
          rules: [{
            apiGroups: ["spiderpool.spidernet.io"],
            apiVersions: ["v2beta1"],
            operations: ["CREATE"],
            resources: ["spiderendpoints"],
          }],
          namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": env.scope.namespace } },
          failurePolicy: "Fail",
          sideEffects: "None",
          admissionReviewVersions: ["v1"],
          timeoutSeconds: 30,
        }],
      });
      env.scope.track(`${path}/${name}`);
      // The API server takes the new webhook up within about a second.
      await new Promise((r) => setTimeout(r, 2_000));
      const adds = list.map((pod) => call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod)));
      await poll(
        "ADDs to wait in the webhook",
        20_000,
        () => Promise.resolve(heldCount >= 1 ? true : undefined),
      );
      const client = new AgentClient(agent.socketPath, { healthTimeoutMs: 2_000 });
      for (let i = 0; i < 5; i++) await client.healthy();
      const live = await fetch(`http://127.0.0.1:${agent.healthPort}/v1/runtime/liveness`);
      assert.equal(live.status, 200);
      letGo();
      for (const r of await Promise.all(adds)) assert.equal(r.status, 200, r.text);
      await assertPoolMatchesEndpoints(env, p, 6);
    } finally {
      letGo();
      await webhook.shutdown();
    }
  },
);

kubeTest(
  "agent: raw HTTP/1.1 with Host = socket path or empty and Connection: close gets status line and JSON string body",
  async () => {
    await using env = await environment("agent-raw");
    const agent = await agentFor(env, env.scope.name("node"));
    // Older Go clients sent the socket path as Host; Go since 1.20.6 (and our plugin) send it empty.
    for (const host of [agent.socketPath, ""]) {
      const healthy = await rawHTTP(
        agent.socketPath,
        `GET /v1/ipam/healthy HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      );
      assert.match(healthy, /^HTTP\/1\.1 200 OK\r\n/, `Host: ${host}`);
    }
    const body = JSON.stringify({ containerID: "c", ifName: "eth0" });
    const bad = await rawHTTP(
      agent.socketPath,
      `POST /v1/ipam/ip HTTP/1.1\r\nHost: ${agent.socketPath}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    assert.match(bad, /^HTTP\/1\.1 500 Internal Server Error\r\n/);
    assert.match(bad, /content-type: application\/json/i);
    assert.ok(bad.endsWith(`\r\n\r\n"netNamespace in body is required"\n`), bad);
  },
);

kubeTest(
  "agent: an ippools annotation for two NICs from one pool gives each NIC its own address, then serves net1 from the endpoint",
  async () => {
    await using env = await environment("agent-nics");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", {
      subnet: "192.0.2.0/24",
      ips: ["192.0.2.10-192.0.2.20"],
      gateway: "192.0.2.1",
    });
    const pod = await podOn(env, "multi", node, {
      "ipam.spidernet.io/ippools": JSON.stringify([
        { interface: "eth0", ipv4: [p] },
        { interface: "net1", ipv4: [p], cleangateway: true },
      ]),
    });
    const first = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod, "eth0"));
    assert.equal(first.status, 200, first.text);
    const ips = (first.json as { ips: { address: string; nic: string }[] }).ips;
    assert.deepEqual(ips.map((i) => [i.nic, i.address]), [["eth0", "192.0.2.10/24"], [
      "net1",
      "192.0.2.11/24",
    ]]);
    assert.deepEqual((first.json as { routes: unknown[] }).routes, [
      { ifName: "eth0", dst: "0.0.0.0/0", gw: "192.0.2.1" },
    ]);
    const writes = agent.metrics.poolStatusWrites;
    assert.equal(writes, 1, "both NICs' addresses are written in one status update");
    const second = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod, "net1"));
    assert.equal(second.status, 200, second.text);
    assert.equal(second.text, first.text);
    assert.equal(agent.metrics.poolStatusWrites, writes);
    assert.equal(Object.keys(await allocatedOf(env, p)).length, 2);
  },
);

kubeTest(
  "agent: a recreated pod of the same name replaces the stale endpoint and the old pod's records",
  async () => {
    await using env = await environment("agent-stale");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const old = await podOn(env, "web", node, ippoolAnnotation([p]));
    assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, old))).status, 200);
    // The old pod goes away without a CNI DEL; its endpoint lingers (finalizer), its record stays in the pool.
    await deletePodNow(env, "web");
    const fresh = await podOn(env, "web", node, ippoolAnnotation([p]));
    const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, fresh));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.values(await allocatedOf(env, p)).map((r) => r.podUid), [fresh.uid]);
    const ep = await poll("the new pod's endpoint", 20_000, async () => {
      const e = await getEndpoint(env, "web");
      return e?.status.current.uid === fresh.uid ? e : undefined;
    });
    assert.deepEqual(ep.metadata.ownerReferences?.map((o) => o.uid), [fresh.uid]);
    // A late DEL of the old pod must not touch the new pod's address.
    assert.equal((await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, old))).status, 200);
    assert.deepEqual(Object.values(await allocatedOf(env, p)).map((r) => r.podUid), [fresh.uid]);
  },
);

kubeTest(
  "agent: a late ADD for a deleted pod's UID fails and leaves the live same-name pod's endpoint and address",
  async () => {
    await using env = await environment("agent-late");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const old = await podOn(env, "web", node, ippoolAnnotation([p]));
    assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, old))).status, 200);
    // The agent's pod cache still has the old pod (its watch lags) while the pod is deleted and recreated.
    await poll("the agent to cache the old pod", 10_000, () =>
      Promise.resolve(
        agent.caches.pods.get("web", env.scope.namespace)?.metadata.uid === old.uid || undefined,
      ));
    agent.caches.pods.stop();
    await deletePodNow(env, "web");
    const live = await podOn(env, "web", node, ippoolAnnotation([p]));
    const ok = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, live));
    assert.equal(ok.status, 200, ok.text);
    const before = await allocatedOf(env, p);
    assert.deepEqual(Object.values(before).map((r) => r.podUid), [live.uid]);

    const late = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, old));
    assert.equal(late.status, 500, late.text);
    assert.match(
      late.json as string,
      new RegExp(`sandbox belongs to pod UID ${old.uid}, a pod that no longer`),
    );
    assert.deepEqual(await allocatedOf(env, p), before);
    const ep = await getEndpoint(env, "web");
    assert.equal(ep?.status.current.uid, live.uid);
    assert.equal(ep?.metadata.deletionTimestamp, undefined);
  },
);

kubeTest(
  "agent: a first ADD for a deleted pod's UID, still in the agent's cache, fails and allocates nothing",
  async () => {
    await using env = await environment("agent-late-first");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const old = await podOn(env, "web", node, ippoolAnnotation([p]));
    await poll("the agent to cache the pod", 10_000, () =>
      Promise.resolve(
        agent.caches.pods.get("web", env.scope.namespace)?.metadata.uid === old.uid || undefined,
      ));
    agent.caches.pods.stop();
    await deletePodNow(env, "web");
    const live = await podOn(env, "web", node, ippoolAnnotation([p]));

    const late = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, old));
    assert.equal(late.status, 500, late.text);
    assert.match(
      late.json as string,
      new RegExp(`sandbox belongs to pod UID ${old.uid}, a pod that no longer`),
    );
    assert.deepEqual(await allocatedOf(env, p), {});
    assert.equal(await getEndpoint(env, "web"), undefined);
    const ok = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, live));
    assert.equal(ok.status, 200, ok.text);
  },
);

kubeTest(
  "agent: a plain pod named like a KubeVirt VMI fails ADD and leaves the VM's endpoint and address alone",
  async () => {
    await using env = await environment("agent-vmi-name");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const vmiOwner = {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstance",
      name: "vm1",
      uid: crypto.randomUUID(),
      controller: true,
    };
    const launcher = await podOn(env, "virt-launcher-vm1-x", node, ippoolAnnotation([p]), {
      ownerReferences: [vmiOwner],
    });
    const vm = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, launcher));
    assert.equal(vm.status, 200, vm.text);
    assert.equal((await getEndpoint(env, "vm1"))?.status.ownerControllerType, "VirtualMachineInstance");
    const before = await allocatedOf(env, p);

    const plain = await podOn(env, "vm1", node, ippoolAnnotation([p]));
    const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, plain));
    assert.equal(res.status, 500, res.text);
    assert.match(
      res.json as string,
      /keeps the fixed IPs of VirtualMachineInstance "vm1", not of this pod's Pod/,
    );
    assert.deepEqual(await allocatedOf(env, p), before);
    assert.equal((await getEndpoint(env, "vm1"))?.status.current.uid, launcher.uid);
  },
);

/** Replaces a pool's records by writing its status directly, as another writer (or a bug) could. */
async function writeRecords(
  env: Env,
  name: string,
  records: Record<string, { pod: string; podUid: string }>,
) {
  const stored = await readPool(env, name);
  await env.scope.cluster.http.put(`${POOLS}/${name}/status`, {
    ...stored,
    status: {
      ...stored.status,
      allocatedIPs: encodeAllocatedIPs(records),
      allocatedIPCount: Object.keys(records).length,
    },
  });
}

kubeTest(
  "agent: a repeated ADD answered from the endpoint restores a pool record that went missing",
  async () => {
    await using env = await environment("agent-ensure");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    const first = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(first.status, 200, first.text);
    const recorded = await allocatedOf(env, p);
    await writeRecords(env, p, {});
    const again = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(again.status, 200, again.text);
    assert.equal(again.text, first.text);
    assert.deepEqual(await allocatedOf(env, p), recorded);
  },
);

kubeTest(
  "agent: a repeated ADD fails, naming the address and its holder, when the pool gave the endpoint's IP away",
  async () => {
    await using env = await environment("agent-ensure-taken");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod))).status, 200);
    const other = { "192.0.2.10": { pod: `${env.scope.namespace}/other`, podUid: "uid-other" } };
    await writeRecords(env, p, other);
    const again = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(again.status, 500, again.text);
    assert.match(
      again.json as string,
      new RegExp(`IP 192\\.0\\.2\\.10 .* for ${env.scope.namespace}/other with pod UID uid-other`),
    );
    assert.deepEqual(await allocatedOf(env, p), other);
  },
);

kubeTest(
  "agent: with a no-name ippools annotation of two items, ADD of a third NIC fails and allocates nothing",
  async () => {
    await using env = await environment("agent-noname");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const a = await pool(env, "a", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const b = await pool(env, "b", { subnet: "198.51.100.0/24", ips: ["198.51.100.10-198.51.100.20"] });
    const pod = await podOn(env, "multi", node, {
      "ipam.spidernet.io/ippools": JSON.stringify([{ ipv4: [a] }, { ipv4: [b] }]),
    });
    for (const nic of ["eth0", "net1"]) {
      const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod, nic));
      assert.equal(res.status, 200, `${nic}: ${res.text}`);
    }
    const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod, "net2"));
    assert.equal(res.status, 500, res.text);
    assert.match(res.json as string, /no IPPool left for interface "net2"/);
    assert.deepEqual([Object.keys(await allocatedOf(env, a)), Object.keys(await allocatedOf(env, b))], [
      ["192.0.2.10"],
      ["198.51.100.10"],
    ]);
    assert.deepEqual(
      (await getEndpoint(env, "multi"))?.status.current.ips.map((d) => [d.interface, d.ipv4]),
      [["eth0", "192.0.2.10/24"], ["net1", "198.51.100.10/24"]],
    );
  },
);

/** Binds a pod to a node through the binding subresource, as the scheduler does. */
async function bind(env: Env, pod: string, node: string): Promise<void> {
  await env.scope.cluster.http.post(`/api/v1/namespaces/${env.scope.namespace}/pods/${pod}/binding`, {
    apiVersion: "v1",
    kind: "Binding",
    metadata: { name: pod },
    target: { apiVersion: "v1", kind: "Node", name: node },
  });
}

/** The pod template of the test StatefulSet "db": its pods take addresses from `pool`. */
function statefulSetTemplate(pool: string) {
  return {
    metadata: { labels: { app: "db" }, annotations: ippoolAnnotation([pool]) },
    spec: {
      containers: [{ name: "c", image: "registry.invalid/pause:1" }],
      terminationGracePeriodSeconds: 0,
    },
  };
}

/** Creates StatefulSet "db" with one replica whose pods use `pool`; returns its API path. */
async function createStatefulSet(env: Env, pool: string): Promise<string> {
  const path = `/apis/apps/v1/namespaces/${env.scope.namespace}/statefulsets`;
  await env.scope.cluster.http.post(path, {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: "db" },
    spec: {
      replicas: 1,
      serviceName: "db",
      selector: { matchLabels: { app: "db" } },
      template: statefulSetTemplate(pool),
    },
  });
  return `${path}/db`;
}

async function podUID(env: Env, name: string, not?: string): Promise<PodInfo> {
  return await poll(`pod ${name}${not ? ` with a UID other than ${not}` : ""}`, 30_000, async () => {
    try {
      const { body } = await env.scope.cluster.http.get<
        { metadata: { uid: string; deletionTimestamp?: string } }
      >(
        `/api/v1/namespaces/${env.scope.namespace}/pods/${name}`,
      );
      if (body.metadata.uid === not || body.metadata.deletionTimestamp) return undefined;
      return { name, uid: body.metadata.uid };
    } catch {
      return undefined;
    }
  });
}

kubeTest(
  "agent: a StatefulSet member keeps its IP across pod recreation and loses it when scaled away",
  async () => {
    await using env = await environment("agent-sts");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const stsPath = await createStatefulSet(env, p);
    const first = await podUID(env, "db-0");
    await bind(env, "db-0", node);
    const a = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, first));
    assert.equal(a.status, 200, a.text);
    const ep = await getEndpoint(env, "db-0");
    assert.equal(ep?.status.ownerControllerType, "StatefulSet");
    assert.equal(ep?.metadata.ownerReferences, undefined, "a StatefulSet endpoint outlives its pod");

    // The pod is recreated by the StatefulSet controller with a new UID and gets the same address back.
    await deletePodNow(env, "db-0");
    assert.equal((await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, first))).status, 200);
    assert.equal(Object.keys(await allocatedOf(env, p)).length, 1, "DEL keeps a wanted member's IP");
    const second = await podUID(env, "db-0", first.uid);
    await bind(env, "db-0", node);
    const b = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, second));
    assert.equal(b.status, 200, b.text);
    assert.deepEqual(
      (b.json as { ips: { address: string }[] }).ips.map((i) => i.address),
      (a.json as { ips: { address: string }[] }).ips.map((i) => i.address),
    );
    assert.deepEqual(Object.values(await allocatedOf(env, p)).map((r) => r.podUid), [second.uid]);
    assert.equal((await getEndpoint(env, "db-0"))?.status.current.uid, second.uid);

    // Scaled to zero: the member is no longer wanted, DEL releases the IP and removes the endpoint.
    await env.scope.cluster.http.patch(stsPath, { spec: { replicas: 0 } });
    await deletePodNow(env, "db-0").catch(() => {});
    assert.equal((await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, second))).status, 200);
    assert.deepEqual(await allocatedOf(env, p), {});
    await poll(
      "SpiderEndpoint db-0 to be deleted",
      20_000,
      async () => (await getEndpoint(env, "db-0")) ? undefined : true,
    );
  },
);

kubeTest(
  "agent: a recreated StatefulSet member whose pool was deleted fails ADD naming the pool",
  async () => {
    await using env = await environment("agent-sts-gone");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    await createStatefulSet(env, p);
    const first = await podUID(env, "db-0");
    await bind(env, "db-0", node);
    assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, first))).status, 200);
    await deletePodNow(env, "db-0");
    await env.scope.cluster.http.delete(`${POOLS}/${p}`);
    await poll(
      "the pool to be gone",
      10_000,
      async () => (await readPool(env, p).catch(() => undefined)) ? undefined : true,
    );
    const second = await podUID(env, "db-0", first.uid);
    await bind(env, "db-0", node);
    const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, second));
    assert.equal(res.status, 500, res.text);
    assert.match(res.json as string, new RegExp(`SpiderIPPool "${p}" not found`));
    assert.equal((await getEndpoint(env, "db-0"))?.status.current.uid, first.uid);
  },
);

kubeTest(
  "agent: with enableIPv6: false in conf.yml a dual-stack pod gets only its IPv4 address",
  async () => {
    await using env = await environment("agent-conf");
    const node = env.scope.name("node");
    const { http } = env.scope.cluster;
    await http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
    env.scope.track(`/api/v1/nodes/${node}`);
    const agent = await startAgent({
      nodeName: node,
      socketPath: `${env.dir}/conf.sock`,
      kubeconfig: env.scope.cluster.kubeconfigPath,
      config: parseAgentConfig("enableIPv6: false\nenableStatefulSet: true\n"),
      log: () => {},
    });
    env.agents.push(agent);
    const v4 = await pool(env, "v4", { subnet: "203.0.113.0/24", ips: ["203.0.113.10-203.0.113.20"] });
    const v6 = await pool(env, "v6", { subnet: "2001:db8:2::/64", ips: ["2001:db8:2::10-2001:db8:2::20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([v4], [v6]));
    const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual((res.json as { ips: { version: number }[] }).ips.map((i) => i.version), [4]);
    assert.deepEqual(await allocatedOf(env, v6), {});
  },
);

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** `spiderpool agent <args>` from the sources, as a child process with `env` added. */
function agentProcess(args: string[], env: Record<string, string>): Deno.ChildProcess {
  const entry = new URL("../../src/cmd/agent.ts", import.meta.url).href;
  const code = `const { main } = await import(${JSON.stringify(entry)}); Deno.exit(await main(${
    JSON.stringify(args)
  }));`;
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

/** A ConfigMap file with only `tuneSysctlConfig: false`: an agent process of a test shares this machine's network
 * namespace and must not tune it. */
async function noTuningConf(dir: string): Promise<string> {
  await Deno.writeTextFile(`${dir}/conf.yml`, "tuneSysctlConfig: false\n");
  return `${dir}/conf.yml`;
}

kubeTest(
  "agent: metrics are off unless SPIDERPOOL_ENABLED_METRIC=true, as upstream; a malformed value stops the start",
  async () => {
    await using env = await environment("agent-nometrics");
    const node = env.scope.name("node");
    const [healthPort, metricsPort] = [freePort(), freePort()];
    const args = [
      "--node-name",
      node,
      "--kubeconfig",
      env.scope.cluster.kubeconfigPath,
      "--socket-path",
      `${env.dir}/nometrics.sock`,
      "--config-path",
      await noTuningConf(env.dir),
      "--health-port",
      String(healthPort),
      "--metrics-port",
      String(metricsPort),
    ];
    const child = agentProcess(args, { SPIDERPOOL_ENABLED_METRIC: "" });
    try {
      await poll("the agent's readiness probe", 30_000, async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${healthPort}/v1/runtime/readiness`);
          await res.body?.cancel();
          return res.status === 200 ? true : undefined;
        } catch {
          return undefined;
        }
      });
      // Ready, yet nothing listens on the metrics port.
      await assert.rejects(
        Deno.connect({ hostname: "127.0.0.1", port: metricsPort }),
        Deno.errors.ConnectionRefused,
      );
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal((await child.status).code, 0);

    const bad = agentProcess(args, { SPIDERPOOL_ENABLED_METRIC: "yes" });
    const out = await bad.output();
    assert.equal(out.code, 1);
    assert.match(
      new TextDecoder().decode(out.stderr),
      /SPIDERPOOL_ENABLED_METRIC must be true or false, got "yes"/,
    );
  },
);

kubeTest(
  "agent: `spiderpool agent` runs as a process, serves its socket and probes, and exits 0 on SIGTERM",
  async () => {
    await using env = await environment("agent-proc");
    const node = env.scope.name("node");
    const socket = `${env.dir}/proc.sock`;
    const [healthPort, metricsPort] = [freePort(), freePort()];
    const args = [
      "--node-name",
      node,
      "--kubeconfig",
      env.scope.cluster.kubeconfigPath,
      "--socket-path",
      socket,
      "--config-path",
      await noTuningConf(env.dir),
      "--health-port",
      String(healthPort),
      "--metrics-port",
      String(metricsPort),
    ];
    const child = agentProcess(args, { SPIDERPOOL_ENABLED_METRIC: "true" });
    try {
      await poll("the agent's readiness probe", 30_000, async () => {
        try {
          const res = await fetch(`http://127.0.0.1:${healthPort}/v1/runtime/readiness`);
          await res.body?.cancel();
          return res.status === 200 ? true : undefined;
        } catch {
          return undefined;
        }
      });
      assert.equal((await call(socket, "GET", "/v1/ipam/healthy")).status, 200);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.match(metrics, /^spiderpool_ipam_allocation_counts_total 0$/m);
    } finally {
      child.kill("SIGTERM");
    }
    const status = await child.status;
    const stderr = new TextDecoder().decode(
      (await child.output().catch(() => ({ stderr: new Uint8Array() }))).stderr,
    );
    assert.equal(status.code, 0, stderr);
    await assert.rejects(Deno.stat(socket), Deno.errors.NotFound);
  },
);

kubeTest(
  "agent: GET /v1/coordinator/config (JSON body) serves the Synced SpiderCoordinator with the pod's route-NIC override",
  async () => {
    await using env = await environment("agent-coord");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const { http } = env.scope.cluster;
    const coords = `/apis/${API_VERSION}/${PLURAL.coordinator}`;
    const name = env.scope.name("coord");
    const { body: created } = await http.post<{ metadata: { resourceVersion: string } }>(coords, {
      apiVersion: API_VERSION,
      kind: "SpiderCoordinator",
      metadata: { name },
      spec: { mode: "underlay", podCIDRType: "cluster", hijackCIDR: ["169.254.0.0/16"], hostRuleTable: 600 },
    });
    env.scope.track(`${coords}/${name}`);
    await http.put(`${coords}/${name}/status`, {
      apiVersion: API_VERSION,
      kind: "SpiderCoordinator",
      metadata: { name, resourceVersion: created.metadata.resourceVersion },
      status: { phase: "NotReady", reason: "no kubeadm-config" },
    });
    const pod = await podOn(env, "web", node, { "ipam.spidernet.io/default-route-nic": "net1" });
    const ask = async () => {
      const body = JSON.stringify({ podName: pod.name, podNamespace: env.scope.namespace });
      const raw = await rawHTTP(
        agent.socketPath,
        `GET /v1/coordinator/config HTTP/1.1\r\nHost: ${agent.socketPath}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      return { status: Number(raw.split(" ")[1]), json: JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4)) };
    };
    await poll(
      "agent to see the coordinator",
      10_000,
      () => Promise.resolve(agent.caches.coordinators.get(name)?.status?.phase === "NotReady" || undefined),
    );
    const notReady = await ask();
    assert.equal(notReady.status, 500);
    assert.match(notReady.json, /is not ready \(phase NotReady\): no kubeadm-config/);

    const { body: current } = await http.get<{ metadata: { resourceVersion: string } }>(`${coords}/${name}`);
    await http.put(`${coords}/${name}/status`, {
      apiVersion: API_VERSION,
      kind: "SpiderCoordinator",
      metadata: { name, resourceVersion: current.metadata.resourceVersion },
      status: { phase: "Synced", overlayPodCIDR: ["198.18.0.0/16"], serviceCIDR: ["198.19.0.0/16"] },
    });
    await poll(
      "agent to see the Synced coordinator",
      10_000,
      () => Promise.resolve(agent.caches.coordinators.get(name)?.status?.phase === "Synced" || undefined),
    );
    const ok = await ask();
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
    assert.deepEqual(ok.json, {
      mode: "underlay",
      overlayPodCIDR: ["198.18.0.0/16"],
      serviceCIDR: ["198.19.0.0/16"],
      hijackCIDR: ["169.254.0.0/16"],
      policyRoutes: [],
      podMACPrefix: "",
      tunePodRoutes: true,
      podDefaultRouteNIC: "net1",
      hostRuleTable: 600,
      podRPFilter: 0,
      txQueueLen: 0,
      vethLinkAddress: "",
      vethMTU: 1500,
    });
  },
);

kubeTest(
  "agent: the plugins' AgentClient talks to the agent: health, ADD, endpoint query, errors, DEL",
  async () => {
    await using env = await environment("agent-client");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const client = new AgentClient(agent.socketPath, { timeoutMs: 30_000 });
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.30"], gateway: "192.0.2.1" });
    const a = await podOn(env, "a", node, ippoolAnnotation([p]));
    const b = await podOn(env, "b", node, ippoolAnnotation([p]));
    await client.healthy();
    const res = await client.allocate(addArgs(env, a));
    assert.deepEqual(res.ips.map((i) => i.address), ["192.0.2.30/24"]);
    const wep = await client.workloadEndpoint(env.scope.namespace, "a");
    assert.equal(wep.podUID, a.uid);
    const err = await client.allocate(addArgs(env, b)).catch((e) => e);
    assert.ok(err instanceof AgentRequestError, String(err));
    assert.equal(err.kind, "http");
    assert.equal(err.status, 500);
    assert.match(err.message, new RegExp(`no free IP in SpiderIPPool "${p}"`));
    await deletePodNow(env, "a");
    await client.release(delArgs(env, a));
    assert.deepEqual(await allocatedOf(env, p), {});
    const again = await client.allocate(addArgs(env, b));
    assert.deepEqual(again.ips.map((i) => i.address), ["192.0.2.30/24"]);
  },
);

kubeTest(
  "agent: three agents racing for the last addresses fill the pool exactly; the losers get 500 and leave nothing",
  async () => {
    await using env = await environment("agent-fill");
    const nodes = [env.scope.name("n1"), env.scope.name("n2"), env.scope.name("n3")];
    const agents: RunningAgent[] = [];
    for (const n of nodes) agents.push(await agentFor(env, n));
    const p = await pool(env, "last", { subnet: "198.18.0.0/15", ips: ["198.18.2.0-198.18.2.49"] });
    const perNode = await Promise.all(nodes.map((n, i) => pods(env, `p${i}`, 20, n, [p])));
    const results = await Promise.all(
      perNode.flatMap((list, i) =>
        list.map((pod) => call(agents[i].socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod)))
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const failed = results.filter((r) => r.status !== 200);
    assert.equal(ok.length, 50, failed.map((r) => r.text).join("\n"));
    for (const r of failed) {
      assert.equal(r.status, 500);
      assert.match(
        r.json as string,
        new RegExp(`no free IP in SpiderIPPool "${p}" \\(50 of 50 allocated\\)`),
      );
    }
    const addresses = ok.map((r) => (r.json as { ips: { address: string }[] }).ips[0].address);
    assert.equal(new Set(addresses).size, 50);
    await assertPoolMatchesEndpoints(env, p, 50);
    let conflicts = 0;
    for (const a of agents) conflicts += a.metrics.allocationConflicts.value();
    const writes = agents.reduce((n, a) => n + a.metrics.poolStatusWrites, 0);
    console.log(
      `three agents: 60 ADDs for 50 addresses → ${writes} status writes, ${conflicts} conflict(s) retried`,
    );
  },
);

kubeTest(
  "agent: concurrent ADDs of the same pod (runtime retries) all get the one recorded address",
  async () => {
    await using env = await environment("agent-dup");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    const results = await Promise.all(
      Array.from({ length: 5 }, () => call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod))),
    );
    for (const r of results) assert.equal(r.status, 200, r.text);
    assert.equal(new Set(results.map((r) => r.text)).size, 1, results.map((r) => r.text).join("\n"));
    const records = await allocatedOf(env, p);
    assert.deepEqual(Object.values(records).map((r) => r.podUid), [pod.uid]);
    const address = (results[0].json as { ips: { address: string }[] }).ips[0].address;
    assert.equal((await getEndpoint(env, "web"))?.status.current.ips[0].ipv4, address);
    assert.equal(`${Object.keys(records)[0]}/24`, address);
  },
);

kubeTest(
  "agent: a StatefulSet member whose pool annotation changed moves to the new pool on recreation",
  async () => {
    await using env = await environment("agent-move");
    const node = env.scope.name("node");
    const agent = await agentFor(env, node);
    const oldPool = await pool(env, "old", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const newPool = await pool(env, "new", {
      subnet: "198.51.100.0/24",
      ips: ["198.51.100.10-198.51.100.20"],
    });
    const stsPath = await createStatefulSet(env, oldPool);
    const first = await podUID(env, "db-0");
    await bind(env, "db-0", node);
    assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, first))).status, 200);
    assert.equal(Object.keys(await allocatedOf(env, oldPool)).length, 1);

    await env.scope.cluster.http.patch(stsPath, { spec: { template: statefulSetTemplate(newPool) } });
    await deletePodNow(env, "db-0");
    const second = await poll("db-0 with the new template", 30_000, async () => {
      const p = await podUID(env, "db-0", first.uid);
      const { body } = await env.scope.cluster.http.get<
        { metadata: { annotations?: Record<string, string> } }
      >(
        `/api/v1/namespaces/${env.scope.namespace}/pods/db-0`,
      );
      if (body.metadata.annotations?.["ipam.spidernet.io/ippool"]?.includes(newPool)) return p;
      await deletePodNow(env, "db-0").catch(() => {});
      return undefined;
    });
    await bind(env, "db-0", node);
    const res = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, second));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual((res.json as { ips: { ipPool: string }[] }).ips.map((i) => i.ipPool), [newPool]);
    assert.deepEqual(await allocatedOf(env, oldPool), {});
    assert.deepEqual(Object.values(await allocatedOf(env, newPool)).map((r) => r.podUid), [second.uid]);
    const ep = await getEndpoint(env, "db-0");
    assert.equal(ep?.status.current.uid, second.uid);
    assert.equal(ep?.status.current.ips[0].ipv4Pool, newPool);
  },
);

/** The rules of deploy/rbac.yaml's ClusterRole spiderpool-agent. */
async function shippedAgentRules(): Promise<{ apiGroups: string[]; resources: string[]; verbs: string[] }[]> {
  const docs = loadAllYaml(await Deno.readTextFile(new URL("../../deploy/rbac.yaml", import.meta.url)));
  const role = docs.find((d) => d?.kind === "ClusterRole" && d.metadata?.name === "spiderpool-agent");
  assert.ok(role, "deploy/rbac.yaml has ClusterRole spiderpool-agent");
  return role.rules;
}

/** Starts an agent (and its Node) that runs as a ServiceAccount bound to a ClusterRole with `rules`. */
async function agentAs(env: Env, rules: unknown[]): Promise<{ agent: RunningAgent; node: string }> {
  const { http } = env.scope.cluster;
  const ns = env.scope.namespace;
  // Under names of this test so that nothing shared is touched.
  const name = env.scope.name("agent");
  await http.post(`/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name: "agent" } });
  await http.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", { metadata: { name }, rules });
  env.scope.track(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${name}`);
  await http.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    metadata: { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
    subjects: [{ kind: "ServiceAccount", name: "agent", namespace: ns }],
  });
  env.scope.track(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${name}`);
  const { body: token } = await http.post<{ status: { token: string } }>(
    `/api/v1/namespaces/${ns}/serviceaccounts/agent/token`,
    { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } },
  );
  const admin = JSON.parse(await Deno.readTextFile(env.scope.cluster.kubeconfigPath));
  const kubeconfig = `${env.dir}/agent.kubeconfig`;
  await Deno.writeTextFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: admin.clusters,
      users: [{ name: "agent", user: { token: token.status.token } }],
      contexts: [{ name: "agent", context: { cluster: admin.clusters[0].name, user: "agent" } }],
      "current-context": "agent",
    }),
  );

  const node = env.scope.name("node");
  await http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name: node } });
  env.scope.track(`/api/v1/nodes/${node}`);
  const agent = await startAgent({
    nodeName: node,
    socketPath: `${env.dir}/rbac.sock`,
    kubeconfig,
    log: () => {},
  });
  env.agents.push(agent);
  return { agent, node };
}

kubeTest(
  "agent: running as a ServiceAccount with the ClusterRole of deploy/rbac.yaml, ADD, queries, DEL and GC are allowed",
  async () => {
    await using env = await environment("agent-rbac");
    const ns = env.scope.namespace;
    const { agent, node } = await agentAs(env, await shippedAgentRules());
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const pod = await podOn(env, "web", node, ippoolAnnotation([p]));
    const add = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, pod));
    assert.equal(add.status, 200, add.text);
    const wep = await call(agent.socketPath, "GET", `/v1/workloadendpoint?podNamespace=${ns}&podName=web`);
    assert.equal(wep.status, 200, wep.text);
    await deletePodNow(env, "web");
    const del = await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, pod));
    assert.equal(del.status, 200, del.text);
    assert.deepEqual(await allocatedOf(env, p), {});
    const gc = await call(agent.socketPath, "POST", "/v1/ipam/gc", {
      networkName: "net-a",
      validAttachments: [],
    });
    assert.equal(gc.status, 200, gc.text);
  },
);

kubeTest(
  "agent: a KubeVirt DEL that cannot read the VMI fails and keeps the VM's fixed IP and endpoint",
  async () => {
    await using env = await environment("agent-vmi-err");
    // Reading kubevirt.io objects is forbidden (403): the agent cannot tell whether the VM still exists.
    const rules = (await shippedAgentRules()).filter((r) => !r.apiGroups.includes("kubevirt.io"));
    const { agent, node } = await agentAs(env, rules);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const vmiOwner = {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachineInstance",
      name: "vm1",
      uid: crypto.randomUUID(),
      controller: true,
    };
    const launcher = await podOn(env, "virt-launcher-vm1-x", node, ippoolAnnotation([p]), {
      ownerReferences: [vmiOwner],
    });
    const add = await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, launcher));
    assert.equal(add.status, 200, add.text);
    const before = await allocatedOf(env, p);
    // The launcher pod terminates (no kubelet confirms it, so it stays Terminating).
    await env.scope.cluster.http.delete(`/api/v1/namespaces/${env.scope.namespace}/pods/${launcher.name}`, {
      gracePeriodSeconds: 30,
    });
    const del = await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, launcher));
    assert.equal(del.status, 500, del.text);
    assert.match(del.json as string, /403/);
    assert.deepEqual(await allocatedOf(env, p), before);
    assert.equal((await getEndpoint(env, "vm1"))?.status.current.uid, launcher.uid);
  },
);

kubeTest(
  "agent: a scaled-away StatefulSet member's DEL keeps its records while its endpoint cannot be deleted",
  async () => {
    await using env = await environment("agent-sts-order");
    // Deleting SpiderEndpoints is forbidden (403): the endpoint keeps claiming the address, so the pool must too.
    const rules = (await shippedAgentRules()).map((r) =>
      r.resources.includes("spiderendpoints") ? { ...r, verbs: r.verbs.filter((v) => v !== "delete") } : r
    );
    const { agent, node } = await agentAs(env, rules);
    const p = await pool(env, "v4", { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.20"] });
    const stsPath = await createStatefulSet(env, p);
    const member = await podUID(env, "db-0");
    await bind(env, "db-0", node);
    assert.equal((await call(agent.socketPath, "POST", "/v1/ipam/ip", addArgs(env, member))).status, 200);
    const before = await allocatedOf(env, p);

    await env.scope.cluster.http.patch(stsPath, { spec: { replicas: 0 } });
    await deletePodNow(env, "db-0").catch(() => {});
    const del = await call(agent.socketPath, "DELETE", "/v1/ipam/ip", delArgs(env, member));
    assert.equal(del.status, 500, del.text);
    assert.match(del.json as string, /403/);
    assert.deepEqual(await allocatedOf(env, p), before);
    const ep = await getEndpoint(env, "db-0");
    assert.deepEqual(ep?.status.current.ips.map((d) => d.ipv4), ["192.0.2.10/24"]);
  },
);
