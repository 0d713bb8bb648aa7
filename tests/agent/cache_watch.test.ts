// List + watch caches (src/kube/cache.ts) against the real control plane: caches of every kind the agent reads,
// and whole agents (in-process and the built binary), stay current after idling longer than the server-side
// watch timeout, the stall limit and the ~30 s after which client-node's Watch stopped delivering under Deno;
// a connection that goes silent is aborted and resumed; streams resume without loss or repeats; 410 Gone,
// label selectors, paged lists, the periodic re-list, stop(), and the settings read from the environment.

import assert from "node:assert/strict";
import { KubeConfig } from "@kubernetes/client-node";
import { ANNOTATION, API_VERSION, KIND, PLURAL } from "../../src/api/constants.ts";
import type { SpiderEndpoint } from "../../src/api/types.ts";
import { type AgentCaches, startAgent } from "../../src/agent/daemon.ts";
import { AgentClient } from "../../src/agentapi/client.ts";
import { CACHE_TIMING_ENV, type CacheTiming, type Meta, ResourceCache } from "../../src/kube/cache.ts";
import { KubeHttp } from "../../src/kube/client.ts";
import { readWatch, type WatchEnd, watchQuery } from "../../src/kube/watch.ts";
import { getCluster, kubeTest, type TestScope, testScope } from "../kube/harness.ts";
import { AGENT_BIN, startAgentProcess } from "../e2e/node_sim.ts";

const api = (plural: string) => `/apis/${API_VERSION}/${plural}`;
const POOLS = api(PLURAL.ippool);
const RESERVED = api(PLURAL.reservedIP);
const COORDINATORS = api(PLURAL.coordinator);
const endpointsIn = (ns: string) => `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}`;

/** Longer than client-node's ~30 s, and than the short timing's watch timeout (≤ 4 s) plus stall margin. */
const IDLE_MS = 35_000;
/** Watches end every 2–4 s on the server and count as stalled 2 s later. */
const SHORT: CacheTiming = { watchTimeoutSeconds: 2, stallMarginMs: 2_000, resyncMs: 600_000 };
/** The production defaults, with the safety-net re-list pushed out of the test's reach. */
const DEFAULTS: CacheTiming = { resyncMs: 600_000 };
/** What "within seconds" means here. */
const PROMPT_MS = 5_000;

interface KubeObject extends Meta {
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits up to `ms` for `check` to hold; returns whether it did (the caller asserts what follows). */
async function settle(ms: number, check: () => unknown): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(50);
  }
  return Boolean(check());
}

function newCache<T extends Meta>(
  scope: TestScope,
  opts: ConstructorParameters<typeof ResourceCache<T>>[2],
  http: KubeHttp = scope.cluster.http,
  kc: KubeConfig = scope.cluster.kc,
): ResourceCache<T> {
  const c = new ResourceCache<T>(kc, http, { log: () => {}, ...opts });
  c.start();
  return c;
}

// ---------------------------------------------------------------------------------------------------------
// Agents and caches that idle together

interface Agent {
  /** How it was started, for messages. */
  what: string;
  node: string;
  socketPath: string;
  /** The caches of an in-process agent; a process's are out of reach. */
  caches?: AgentCaches;
  stop(): Promise<void>;
}

async function createNode(scope: TestScope, suffix: string): Promise<string> {
  const node = scope.name(suffix);
  await scope.cluster.http.post("/api/v1/nodes", {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: node },
  });
  scope.track(`/api/v1/nodes/${node}`);
  return node;
}

/** Starts an agent in this process (startAgent) for a new Node (no kubelet) with the given cache timing. */
async function agentFor(scope: TestScope, dir: string, suffix: string, timing: CacheTiming): Promise<Agent> {
  const node = await createNode(scope, suffix);
  const running = await startAgent({
    nodeName: node,
    socketPath: `${dir}/${suffix}.sock`,
    kubeconfig: scope.cluster.kubeconfigPath,
    cacheTiming: timing,
    log: () => {},
  });
  const what = `startAgent with ${timing.watchTimeoutSeconds ? "short" : "default"} watch timeouts`;
  return { what, node, socketPath: running.socketPath, caches: running.caches, stop: running.stop };
}

/** Starts the built `dist/spiderpool agent` for a new Node, its cache timing set through the environment. */
async function agentProcessFor(
  scope: TestScope,
  dir: string,
  suffix: string,
  env: Record<string, string>,
): Promise<Agent> {
  const node = await createNode(scope, suffix);
  const proc = await startAgentProcess({ node, kubeconfig: scope.cluster.kubeconfigPath, dir, env });
  return { what: "dist/spiderpool agent", node, socketPath: proc.socketPath, stop: () => proc.stop() };
}

async function createPool(scope: TestScope, suffix: string, spec: Record<string, unknown>): Promise<string> {
  const name = scope.name(suffix);
  await scope.cluster.http.post(POOLS, {
    apiVersion: API_VERSION,
    kind: KIND.ippool,
    metadata: { name },
    spec: { ipVersion: 4, ...spec },
  });
  scope.track(`${POOLS}/${name}`);
  return name;
}

let podCount = 0;

/** Creates a pod bound to the agent's node, asks the agent for its address, and returns the IPv4 address. */
async function addPod(
  scope: TestScope,
  agent: Agent,
  annotations: Record<string, string> = {},
): Promise<{ ip: string; pool: string }> {
  const name = `pod-${++podCount}`;
  const { body } = await scope.cluster.http.post<{ metadata: { uid: string } }>(
    `/api/v1/namespaces/${scope.namespace}/pods`,
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name, annotations },
      spec: { nodeName: agent.node, containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
    },
  );
  const client = new AgentClient(agent.socketPath);
  const res = await client.allocate({
    containerID: `cid-${body.metadata.uid}`,
    ifName: "eth0",
    netNamespace: `/var/run/netns/${name}`,
    podNamespace: scope.namespace,
    podName: name,
    podUID: body.metadata.uid,
  });
  const v4 = res.ips.find((i) => String(i.version) === "4");
  assert.ok(v4?.address, `ADD of ${name} gave no IPv4 address: ${JSON.stringify(res)}`);
  return { ip: v4.address.split("/")[0], pool: v4.ipPool ?? "" };
}

function lastOctet(ip: string): number {
  return Number(ip.split(".")[3]);
}

/** A step that runs while the caches' streams open and close in the background, so without sanitizers. */
const step = (t: Deno.TestContext, name: string, fn: () => void | Promise<void>) =>
  t.step({ name, fn, sanitizeOps: false, sanitizeResources: false, sanitizeExit: false });

Deno.test({
  name:
    "after 35 s without traffic (longer than the watch timeout, the stall limit and client-node's 30 s), " +
    "caches and agents see each change within seconds",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using scope = await testScope("idle-watch");
    const dir = await Deno.makeTempDir({ prefix: "spiderpool-idle-" });
    const { http } = scope.cluster;
    const ns = scope.namespace;
    const started: { stop(): unknown }[] = [];
    try {
      // --- Agents: in this process with short and with default watch timeouts, and the built binary with
      // short ones set through its environment.
      const agents: Agent[] = [];
      for (
        const start of [
          () => agentFor(scope, dir, "short", SHORT),
          () => agentFor(scope, dir, "defaults", DEFAULTS),
          () =>
            agentProcessFor(scope, dir, "binary", {
              [CACHE_TIMING_ENV.watchTimeoutSeconds]: String(SHORT.watchTimeoutSeconds),
              [CACHE_TIMING_ENV.stallMarginMs]: String(SHORT.stallMarginMs! / 1000),
              [CACHE_TIMING_ENV.resyncMs]: String(SHORT.resyncMs! / 1000),
            }),
        ]
      ) {
        const a = await start();
        started.push(a);
        agents.push(a);
      }
      /** Waits until the in-process agents have seen a change, and at least 1 s for the process. */
      const seen = async (check: (caches: AgentCaches) => unknown) => {
        const changed = Date.now();
        await settle(PROMPT_MS, () => agents.every((a) => !a.caches || check(a.caches)));
        await sleep(changed + 1_000 - Date.now());
        return changed;
      };
      // Pods that name this pool get its first free address; the namespace's default pool is A, later B.
      const reservePool = await createPool(scope, "reserve", {
        subnet: "198.51.100.0/24",
        ips: ["198.51.100.10-198.51.100.40"],
      });
      const poolA = await createPool(scope, "a", {
        subnet: "203.0.113.0/24",
        ips: ["203.0.113.100-203.0.113.109"],
      });
      const poolB = await createPool(scope, "b", {
        subnet: "203.0.113.0/24",
        ips: ["203.0.113.110-203.0.113.119"],
      });
      await http.patch(`/api/v1/namespaces/${ns}`, {
        metadata: { annotations: { [ANNOTATION.defaultIPv4IPPool]: JSON.stringify([poolA]) } },
      });
      const defaultPoolOf = (caches: AgentCaches) =>
        caches.namespaces.get(ns)?.metadata.annotations?.[ANNOTATION.defaultIPv4IPPool];
      await seen((c) => [reservePool, poolA, poolB].every((p) => c.pools.get(p)) && defaultPoolOf(c));
      const reservation = { [ANNOTATION.ippool]: JSON.stringify({ ipv4: [reservePool] }) };
      // Before the silence: the first free addresses go out, and the namespace's default pool is A.
      const before: string[] = [];
      for (const a of agents) before.push((await addPod(scope, a, reservation)).ip);
      assert.deepEqual(before.sort(), ["198.51.100.10", "198.51.100.11", "198.51.100.12"]);
      for (const a of agents) assert.equal((await addPod(scope, a)).pool, poolA, a.what);

      // --- Caches of each kind the agent reads, scoped to this test by label, namespace or node.
      const label = "spiderpool.spidernet.io/idle-test";
      const id = ns;
      const selector = { labelSelector: `${label}=${id}` };
      const labels = { [label]: id };
      const ns2 = scope.name("kinds");
      await http.post("/api/v1/namespaces", { metadata: { name: ns2, labels } });
      scope.track(`/api/v1/namespaces/${ns2}`);
      const node = scope.name("kinds-node");
      await http.post("/api/v1/nodes", { metadata: { name: node, labels } });
      scope.track(`/api/v1/nodes/${node}`);
      const pool = scope.name("kinds-pool");
      await http.post(POOLS, {
        apiVersion: API_VERSION,
        kind: KIND.ippool,
        metadata: { name: pool, labels },
        spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips: ["192.0.2.10"] },
      });
      scope.track(`${POOLS}/${pool}`);
      const coordinator = scope.name("kinds-coord");
      await http.post(COORDINATORS, {
        apiVersion: API_VERSION,
        kind: KIND.coordinator,
        metadata: { name: coordinator, labels },
        spec: {},
      });
      scope.track(`${COORDINATORS}/${coordinator}`);
      const caches = {
        pools: newCache<KubeObject>(scope, { ...SHORT, ...selector, path: POOLS }),
        reservedIPs: newCache<KubeObject>(scope, { ...SHORT, ...selector, path: RESERVED }),
        endpoints: newCache<KubeObject>(scope, { ...SHORT, path: endpointsIn(ns2) }),
        namespaces: newCache<KubeObject>(scope, { ...SHORT, ...selector, path: "/api/v1/namespaces" }),
        nodes: newCache<KubeObject>(scope, { ...SHORT, ...selector, path: "/api/v1/nodes" }),
        pods: newCache<KubeObject>(scope, {
          ...SHORT,
          path: "/api/v1/pods",
          fieldSelector: `spec.nodeName=${node}`,
        }),
        coordinators: newCache<KubeObject>(scope, { ...SHORT, ...selector, path: COORDINATORS }),
      };
      started.push(...Object.values(caches));
      // One cache with the production watch timeout: its first stream must outlive the silence.
      // (Selected by label: kube-controller-manager adds kube-root-ca.crt to the namespace whenever it gets to it.)
      const longStream = newCache<KubeObject>(scope, {
        ...DEFAULTS,
        ...selector,
        path: `/api/v1/namespaces/${ns2}/configmaps`,
      });
      started.push(longStream);
      await Promise.all([...Object.values(caches), longStream].map((c) => c.synced));
      assert.ok(caches.pools.get(pool) && caches.coordinators.get(coordinator) && caches.nodes.get(node));

      await sleep(IDLE_MS);

      const reserved = scope.name("reserved");
      await step(t, "agents: the next ADD avoids a SpiderReservedIP created after the silence", async () => {
        await http.post(RESERVED, {
          apiVersion: API_VERSION,
          kind: KIND.reservedIP,
          metadata: { name: reserved },
          spec: { ipVersion: 4, ips: ["198.51.100.13-198.51.100.30"] },
        });
        scope.track(`${RESERVED}/${reserved}`);
        const changed = await seen((c) => c.reservedIPs.get(reserved));
        const wrong: string[] = [];
        for (const a of agents) {
          const got = await addPod(scope, a, reservation);
          if (lastOctet(got.ip) <= 30) {
            wrong.push(`${a.what} handed out ${got.ip} ${Date.now() - changed} ms after the reservation`);
          }
        }
        assert.deepEqual(wrong, [], `${reserved} reserves 198.51.100.13-30:\n${wrong.join("\n")}`);
      });

      await step(
        t,
        "agents: the next ADD takes the default pool a Namespace names since after the silence",
        async () => {
          await http.patch(`/api/v1/namespaces/${ns}`, {
            metadata: { annotations: { [ANNOTATION.defaultIPv4IPPool]: JSON.stringify([poolB]) } },
          });
          const changed = await seen((c) => defaultPoolOf(c)?.includes(poolB));
          const wrong: string[] = [];
          for (const a of agents) {
            const got = await addPod(scope, a);
            if (got.pool !== poolB) {
              wrong.push(
                `${a.what} took ${got.ip} from ${got.pool} ${Date.now() - changed} ms after the change`,
              );
            }
          }
          assert.deepEqual(wrong, [], `the namespace's default pool is ${poolB}:\n${wrong.join("\n")}`);
        },
      );

      await step(t, "caches: a change of each kind the agent caches arrives within 5 s", async () => {
        const reserved2 = scope.name("kinds-reserved");
        const endpoint = "ep-1";
        const pod = "pod-kinds";
        await Promise.all([
          http.patch(`${POOLS}/${pool}`, { metadata: { annotations: { changed: "yes" } } }),
          http.post(RESERVED, {
            apiVersion: API_VERSION,
            kind: KIND.reservedIP,
            metadata: { name: reserved2, labels },
            spec: { ipVersion: 4, ips: ["192.0.2.200"] },
          }).then(() => scope.track(`${RESERVED}/${reserved2}`)),
          http.post(endpointsIn(ns2), {
            apiVersion: API_VERSION,
            kind: KIND.endpoint,
            metadata: { name: endpoint },
            status: {
              current: {
                uid: "uid-1",
                node,
                ips: [{ interface: "eth0", ipv4: "192.0.2.10/24", ipv4Pool: pool }],
              },
              ownerControllerType: "Pod",
              ownerControllerName: endpoint,
            },
          }),
          http.patch(`/api/v1/namespaces/${ns2}`, { metadata: { annotations: { changed: "yes" } } }),
          http.patch(`/api/v1/nodes/${node}`, { metadata: { labels: { changed: "yes" } } }),
          http.post(`/api/v1/namespaces/${ns2}/pods`, {
            metadata: { name: pod },
            spec: { nodeName: node, containers: [{ name: "c", image: "registry.invalid/pause:1" }] },
          }),
          http.delete(`${COORDINATORS}/${coordinator}`),
          http.post(`/api/v1/namespaces/${ns2}/configmaps`, {
            metadata: { name: "late", labels },
            data: { a: "b" },
          }),
        ]);
        const annotated = (o?: KubeObject & { metadata: { annotations?: Record<string, string> } }) =>
          o?.metadata.annotations?.changed === "yes";
        const checks: [string, () => unknown][] = [
          ["SpiderIPPool annotation", () => annotated(caches.pools.get(pool))],
          ["new SpiderReservedIP", () => caches.reservedIPs.get(reserved2)],
          ["new SpiderEndpoint", () => caches.endpoints.get(endpoint, ns2)],
          ["Namespace annotation", () => annotated(caches.namespaces.get(ns2))],
          ["Node label", () => caches.nodes.get(node)?.metadata.labels?.changed === "yes"],
          ["new Pod on the node", () => caches.pods.get(pod, ns2)],
          ["deleted SpiderCoordinator", () => !caches.coordinators.get(coordinator)],
          ["ConfigMap on the stream opened before the silence", () => longStream.get("late", ns2)],
        ];
        const late = (await Promise.all(checks.map(async ([what, check]) =>
          (await settle(PROMPT_MS, check)) ? [] : [what]
        )))
          .flat();
        assert.deepEqual(late, [], `not in the cache ${PROMPT_MS} ms after the change: ${late.join(", ")}`);
        // The label selector kept the agents' pools and reserved IPs out of the scoped caches.
        assert.equal(caches.pools.get(poolA), undefined);
        assert.equal(caches.reservedIPs.get(reserved), undefined);
      });

      await step(
        t,
        "the short watches were reopened through the silence, the default one lasted through it",
        () => {
          for (const [kind, cache] of Object.entries(caches)) {
            const { watches, ends, lists } = cache.status();
            assert.equal(lists, 1, `${kind}: listed again instead of resuming: ${JSON.stringify(ends)}`);
            assert.ok(
              watches >= 5,
              `${kind}: only ${watches} watch streams in ${IDLE_MS} ms with a 2–4 s timeout`,
            );
            assert.ok(
              ends.closed >= 4,
              `${kind}: the server ended only ${ends.closed} streams: ${JSON.stringify(ends)}`,
            );
          }
          assert.equal(longStream.status().watches, 1, "the stream with the 5–10 min timeout was reopened");
        },
      );
    } finally {
      for (const s of started.reverse()) await s.stop();
      await cleanUpPods(scope);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

/** No kubelet confirms pod deletion and no agent is left to drop endpoint finalizers: do both. */
async function cleanUpPods(scope: TestScope): Promise<void> {
  const { http } = scope.cluster;
  for (const ns of [scope.namespace, scope.name("kinds")]) {
    await http.delete(`/api/v1/namespaces/${ns}/pods`, { gracePeriodSeconds: 0 }).catch(() => {});
    const eps = endpointsIn(ns);
    const list = await http.get<{ items: SpiderEndpoint[] }>(eps).catch(() => undefined);
    for (const ep of list?.body.items ?? []) {
      if (!ep.metadata.finalizers?.length) continue;
      await http.patch(`${eps}/${ep.metadata.name}`, { metadata: { finalizers: null } }).catch(() => {});
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// A connection that goes silent

/**
 * A TCP proxy on loopback to the API server whose open connections can be frozen: they stay open but pass no
 * more bytes either way, as a connection through a NAT or load balancer that dropped its state, or the
 * silent watch of client-node. New connections pass normally.
 */
class FreezableProxy {
  readonly #listener: Deno.TcpListener;
  readonly #conns = new Set<{ client: Deno.Conn; upstream: Deno.Conn; frozen: boolean }>();
  readonly port: number;

  constructor(target: { hostname: string; port: number }) {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    void this.#accept(target);
  }

  /** Connections opened so far. */
  opened = 0;

  async #accept(target: { hostname: string; port: number }): Promise<void> {
    for await (const client of this.#listener) {
      this.opened++;
      const upstream = await Deno.connect(target).catch(() => undefined);
      if (!upstream) {
        client.close();
        continue;
      }
      const c = { client, upstream, frozen: false };
      this.#conns.add(c);
      const close = () => {
        if (!this.#conns.delete(c)) return;
        for (const conn of [client, upstream]) {
          try {
            conn.close();
          } catch { /* already closed */ }
        }
      };
      void this.#pump(c, client, upstream).finally(close);
      void this.#pump(c, upstream, client).finally(close);
    }
  }

  async #pump(c: { frozen: boolean }, from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    while (true) {
      const n = await from.read(buf).catch(() => null);
      if (n === null) return;
      // Frozen: keep both sockets open, forward nothing, read nothing more.
      if (c.frozen) return await new Promise<void>((resolve) => this.#thaw.push(resolve));
      let off = 0;
      while (off < n) off += await to.write(buf.subarray(off, n));
    }
  }

  #thaw: (() => void)[] = [];

  /** Every connection open now passes no more bytes, in either direction, until close(). */
  freeze(): number {
    for (const c of this.#conns) c.frozen = true;
    return this.#conns.size;
  }

  close(): void {
    this.#listener.close();
    for (const resolve of this.#thaw) resolve();
    for (const c of [...this.#conns]) {
      this.#conns.delete(c);
      for (const conn of [c.client, c.upstream]) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
    }
  }
}

/** A copy of `kc` whose cluster server is `server`. */
function kubeConfigVia(kc: KubeConfig, server: string): KubeConfig {
  const copy = new KubeConfig();
  copy.loadFromOptions({
    clusters: kc.clusters.map((c) => ({ ...c, server })),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return copy;
}

kubeTest(
  "a watch whose connection goes silent is aborted after its stall limit and resumed; the change made meanwhile arrives",
  async () => {
    await using scope = await testScope("watch-stall", { serviceAccount: false });
    const { http } = scope.cluster;
    const server = new URL(scope.cluster.kc.getCurrentCluster()!.server);
    const proxy = new FreezableProxy({ hostname: server.hostname, port: Number(server.port) });
    const kc = kubeConfigVia(scope.cluster.kc, `https://127.0.0.1:${proxy.port}`);
    const viaProxy = await KubeHttp.fromKubeConfig(kc);
    // The server would end this stream after 60–120 s; the stall limit ends it 3 s after the last byte.
    const cache = newCache<KubeObject>(
      scope,
      {
        path: `/api/v1/namespaces/${scope.namespace}/configmaps`,
        watchTimeoutSeconds: 60,
        watchdogMs: 3_000,
      },
      viaProxy,
      kc,
    );
    try {
      await cache.synced;
      assert.ok(await settle(PROMPT_MS, () => cache.status().watching), "the watch did not open");
      assert.ok(proxy.freeze() >= 1, "no connection to freeze");
      await http.post(`/api/v1/namespaces/${scope.namespace}/configmaps`, { metadata: { name: "during" } });
      const arrived = await settle(15_000, () => cache.get("during", scope.namespace));
      assert.ok(arrived, "the ConfigMap created while the stream was frozen never reached the cache");
      assert.ok(cache.status().ends.stalled >= 1, JSON.stringify(cache.status()));
    } finally {
      cache.stop();
      viaProxy.close();
      proxy.close();
    }
  },
);

// ---------------------------------------------------------------------------------------------------------
// 410 Gone, label selectors, pages, stop

kubeTest("a watch from a resourceVersion older than the server's history ends as gone (410)", async () => {
  const { http } = await getCluster();
  const events: unknown[] = [];
  const end: WatchEnd = await readWatch(http, {
    url: `${RESERVED}${watchQuery({}, "1", 5)}`,
    stallMs: 10_000,
    signal: new AbortController().signal,
    onEvent: (e) => events.push(e),
  });
  assert.equal(end.kind, "gone", JSON.stringify(end));
  assert.deepEqual(events, []);
});

kubeTest("a cache lists in pages and keeps only the objects its label selector matches", async () => {
  await using scope = await testScope("cache-pages", { serviceAccount: false });
  const { http } = scope.cluster;
  const path = `/api/v1/namespaces/${scope.namespace}/configmaps`;
  for (let i = 0; i < 7; i++) {
    await http.post(path, {
      metadata: { name: `cm-${i}`, labels: i < 5 ? { pick: "yes" } : { pick: "no" } },
    });
  }
  const cache = newCache<KubeObject>(scope, { path, labelSelector: "pick=yes", pageSize: 2 });
  try {
    await cache.synced;
    assert.deepEqual(cache.list().map((o) => o.metadata.name).sort(), [
      "cm-0",
      "cm-1",
      "cm-2",
      "cm-3",
      "cm-4",
    ]);
    // The watch keeps to the selector too: an object relabelled out of it leaves the cache.
    await http.patch(`${path}/cm-0`, { metadata: { labels: { pick: "no" } } });
    await http.patch(`${path}/cm-5`, { metadata: { labels: { pick: "yes" } } });
    const moved = await settle(
      PROMPT_MS,
      () => !cache.get("cm-0", scope.namespace) && cache.get("cm-5", scope.namespace),
    );
    assert.ok(moved, `after relabelling: ${cache.list().map((o) => o.metadata.name).sort()}`);
  } finally {
    cache.stop();
  }
});

kubeTest(
  "the agent's caches keep no managedFields, and of Nodes and Namespaces only their metadata",
  async () => {
    await using scope = await testScope("cache-trim", { serviceAccount: false });
    const dir = await Deno.makeTempDir({ prefix: "spiderpool-cache-trim-" });
    const agent = await agentFor(scope, dir, "a", DEFAULTS);
    try {
      const caches = agent.caches!;
      const { http } = scope.cluster;
      // A Node with a status (as a kubelet writes it) and a label, created after the caches listed: a watch event.
      await http.patch(`/api/v1/nodes/${agent.node}`, { metadata: { labels: { zone: "z1" } } });
      await http.patch(`/api/v1/nodes/${agent.node}/status`, {
        status: { images: [{ names: ["registry.example/app:1"], sizeBytes: 1 }] },
      });
      const pod = `pod-trim`;
      await http.post(`/api/v1/namespaces/${scope.namespace}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: pod, labels: { app: "x" } },
        spec: { nodeName: agent.node, containers: [{ name: "c", image: "registry.example/app:1" }] },
      });
      const arrived = await settle(
        PROMPT_MS,
        () =>
          caches.nodes.get(agent.node)?.metadata.labels?.zone === "z1" &&
          caches.pods.get(pod, scope.namespace) && caches.namespaces.get(scope.namespace),
      );
      assert.ok(arrived, "the node label, the pod or the namespace never reached the caches");
      // The API server keeps managedFields on every object written; the caches drop them.
      const stored = (await http.get<{ metadata: { managedFields?: unknown[] } }>(
        `/api/v1/namespaces/${scope.namespace}/pods/${pod}`,
      )).body;
      assert.ok(stored.metadata.managedFields?.length, "the API server wrote no managedFields to drop");
      const node = caches.nodes.get(agent.node) as unknown as Record<string, unknown> & { metadata: object };
      assert.equal(node.status, undefined);
      assert.equal("managedFields" in node.metadata, false);
      assert.equal("managedFields" in caches.namespaces.get(scope.namespace)!.metadata, false);
      const cachedPod = caches.pods.get(pod, scope.namespace)!;
      assert.equal("managedFields" in cachedPod.metadata, false);
      assert.deepEqual(cachedPod.metadata.labels, { app: "x" });
      assert.equal(cachedPod.spec?.nodeName, agent.node);
    } finally {
      await agent.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kubeTest("after stop() a cache applies nothing and its stream is closed", async () => {
  await using scope = await testScope("cache-stop", { serviceAccount: false });
  const { http } = scope.cluster;
  const path = `/api/v1/namespaces/${scope.namespace}/configmaps`;
  const cache = newCache<KubeObject>(scope, { path, watchTimeoutSeconds: 2, stallMarginMs: 1_000 });
  const seen: string[] = [];
  cache.onChange((o) => seen.push(o.metadata.name));
  await cache.synced;
  await http.post(path, { metadata: { name: "before" } });
  assert.ok(await settle(PROMPT_MS, () => cache.get("before", scope.namespace)));
  cache.stop();
  await http.post(path, { metadata: { name: "after" } });
  await sleep(3_000);
  assert.equal(cache.get("after", scope.namespace), undefined);
  assert.ok(!seen.includes("after"), seen.join(","));
  assert.equal(cache.status().watching, false);
});

kubeTest(
  "the built agent refuses a cache setting in its environment that is not a number, naming it",
  async () => {
    const { kubeconfigPath } = await getCluster();
    const dir = await Deno.makeTempDir({ prefix: "spiderpool-env-" });
    // It runs in this machine's network namespace: no host tuning.
    await Deno.writeTextFile(`${dir}/conf.yml`, "tuneSysctlConfig: false\n");
    const child = new Deno.Command(AGENT_BIN, {
      args: [
        "agent",
        "--node-name",
        "no-node",
        "--kubeconfig",
        kubeconfigPath,
        "--socket-path",
        `${dir}/a.sock`,
        "--health-port",
        "0",
        "--config-path",
        `${dir}/conf.yml`,
      ],
      env: { [CACHE_TIMING_ENV.watchTimeoutSeconds]: "ten", SPIDERPOOL_ENABLED_METRIC: "false" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // An agent that ignored the setting would serve until stopped: give it 30 s, then end it by pid.
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited meanwhile */ }
    }, 30_000);
    try {
      const out = await child.output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.signal, null, `the agent kept running with an invalid setting:\n${stderr}`);
      assert.equal(out.code, 1, stderr);
      assert.match(stderr, /SPIDERPOOL_WATCH_TIMEOUT_SECONDS="ten" is not a positive number of seconds/);
    } finally {
      clearTimeout(timer);
      await Deno.remove(dir, { recursive: true });
    }
  },
);

kubeTest(
  "a periodic re-list of an unchanged collection emits nothing, and the watch resumes after it",
  async () => {
    await using scope = await testScope("cache-resync", { serviceAccount: false });
    const { http } = scope.cluster;
    const path = `/api/v1/namespaces/${scope.namespace}/configmaps`;
    // Only our ConfigMaps: kube-controller-manager adds kube-root-ca.crt to new namespaces when it gets to it.
    const labels = { owner: "test" };
    await http.post(path, { metadata: { name: "steady", labels } });
    const cache = newCache<KubeObject>(scope, { path, labelSelector: "owner=test", resyncMs: 700 });
    try {
      await cache.synced;
      const seen: string[] = [];
      cache.onChange((o, deleted) => seen.push(`${deleted ? "-" : "+"}${o.metadata.name}`));
      await settle(10_000, () => cache.status().lists >= 4);
      const { lists, ends } = cache.status();
      assert.ok(lists >= 4 && ends.resync >= 3, JSON.stringify(cache.status()));
      assert.deepEqual(seen, []);
      await http.post(path, { metadata: { name: "later", labels } });
      await http.delete(`${path}/steady`);
      assert.ok(
        await settle(
          PROMPT_MS,
          () => cache.get("later", scope.namespace) && !cache.get("steady", scope.namespace),
        ),
      );
      assert.deepEqual(seen.sort(), ["+later", "-steady"]);
    } finally {
      cache.stop();
    }
  },
);

kubeTest(
  "writes during many watch restarts reach the cache once each, in order, without a re-list",
  async () => {
    await using scope = await testScope("cache-resume", { serviceAccount: false });
    const { http } = scope.cluster;
    const path = `/api/v1/namespaces/${scope.namespace}/configmaps`;
    // Streams end every 1–2 s; each resumes from the resourceVersion the previous one reached.
    const cache = newCache<KubeObject>(scope, { path, watchTimeoutSeconds: 1, stallMarginMs: 2_000 });
    const applied: { name: string; rv: number }[] = [];
    try {
      await cache.synced;
      // (kube-controller-manager adds its kube-root-ca.crt to the new namespace at some point: not ours.)
      cache.onChange((o) => {
        if (o.metadata.name.startsWith("cm-")) {
          applied.push({ name: o.metadata.name, rv: Number(o.metadata.resourceVersion) });
        }
      });
      const names: string[] = [];
      const until = Date.now() + 6_000;
      for (let i = 0; Date.now() < until; i++) {
        names.push(`cm-${i}`);
        await http.post(path, { metadata: { name: `cm-${i}` } });
        await sleep(20);
      }
      assert.ok(await settle(PROMPT_MS, () => names.every((n) => cache.get(n, scope.namespace))));
      const { lists, watches, ends } = cache.status();
      assert.ok(
        watches >= 4 && ends.closed >= 3,
        `streams did not restart: ${JSON.stringify(cache.status())}`,
      );
      assert.equal(lists, 1, "the cache listed again instead of resuming");
      // etcd's resourceVersions grow with every write: each event once, in the order of the writes.
      assert.deepEqual(applied.map((a) => a.name), names);
      for (let i = 1; i < applied.length; i++) assert.ok(applied[i].rv > applied[i - 1].rv, `${i}`);
    } finally {
      cache.stop();
    }
  },
);
