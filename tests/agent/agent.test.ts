// The agent against a real control plane: its unix-socket API byte for byte, the objects it writes (pool
// status, SpiderEndpoint), its probes and metrics, and its concurrency guarantees (no duplicate address
// across agents, group commit within one agent).

import assert from "node:assert/strict";
import { API_VERSION, FINALIZER, PLURAL } from "../../src/api/constants.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import { decodeAllocatedIPs } from "../../src/api/allocated.ts";
import { type RunningAgent, startAgent } from "../../src/agent/daemon.ts";
import { kubeTest, poll, type TestScope, testScope } from "../kube/harness.ts";

const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
const endpointPath = (ns: string, name: string) => `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}/${name}`;

// ---------------------------------------------------------------------------------------------------------
// Fixtures

interface Answer {
  status: number;
  text: string;
  json: unknown;
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
    return { status: res.status, text, json };
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
    kubeConfig: env.scope.cluster.kc,
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
async function pool(env: Env, suffix: string, spec: PoolSpec, agents: RunningAgent[] = env.agents): Promise<string> {
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
    await poll(`agent ${a.socketPath} to cache pool ${name}`, 10_000, () =>
      Promise.resolve(a.caches.pools.get(name) ? true : undefined));
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

kubeTest("agent: GET /v1/workloadendpoint needs both query parameters (400) and a SpiderEndpoint (404)", async () => {
  await using env = await environment("agent-wep");
  const agent = await agentFor(env, env.scope.name("node"));
  const missing = await call(agent.socketPath, "GET", `/v1/workloadendpoint?podNamespace=${env.scope.namespace}`);
  assert.equal(missing.status, 400);
  assert.match(missing.json as string, /podName/);
  const none = await call(
    agent.socketPath,
    "GET",
    `/v1/workloadendpoint?podNamespace=${env.scope.namespace}&podName=ghost`,
  );
  assert.equal(none.status, 404);
  assert.equal(typeof none.json, "string");
});

kubeTest("agent: malformed ADD bodies get 500 with a JSON string naming the field, and allocate nothing", async () => {
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
});

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
