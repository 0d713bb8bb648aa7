// One IP GC test's world in the real control plane: a namespace, Node objects (ready or not), real agents
// (in-process, on their unix sockets) that give pods their addresses, SpiderIPPools, and IP GC components
// run in-process against the same API server. Each GC sees only this test's pools, pods and endpoints (its
// scan snapshot is narrowed to them), so tests sharing the control plane never touch each other's records.

import { Registry } from "prom-client";
import { decodeAllocatedIPs } from "../../src/api/allocated.ts";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import { type RunningAgent, startAgent } from "../../src/agent/daemon.ts";
import { AgentClient } from "../../src/agentapi/client.ts";
import type { IpamAddResponse } from "../../src/agentapi/models.ts";
import { defaultGcConfig, type GcConfig, type GcHooks, IpGc } from "../../src/controller/gc/mod.ts";
import { NotFoundError } from "../../src/kube/client.ts";
import { poll, type TestScope, testScope } from "../kube/harness.ts";

export const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
export const endpointsIn = (ns: string) => `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}`;

export interface PodRef {
  name: string;
  uid: string;
}

export interface GcWorld extends AsyncDisposable {
  scope: TestScope;
  ns: string;
  logs: string[];
  /** A Node object (Ready or NotReady, as a kubelet reports) and an agent serving it. */
  node(suffix: string, ready?: boolean): Promise<{ name: string; agent: RunningAgent; client: AgentClient }>;
  setNodeReady(name: string, ready: boolean): Promise<void>;
  pool(suffix: string, ips: string[]): Promise<string>;
  /** Creates a Pod bound to `node` whose annotation names `pool`. */
  createPod(name: string, node: string, pool: string, extra?: PodExtra): Promise<PodRef>;
  /** What a kubelet does after a successful ADD: phase Running with the addresses in status.podIPs. */
  markRunning(name: string, ips: string[]): Promise<void>;
  /** CNI ADD through the node's agent. */
  add(client: AgentClient, pod: PodRef, ifName?: string): Promise<IpamAddResponse>;
  /** createPod + ADD + markRunning; returns the pod and its first address. */
  runPod(name: string, node: { name: string; client: AgentClient }, pool: string, extra?: PodExtra): Promise<
    PodRef & { ip: string }
  >;
  /** Deletes the pod object at once, as `kubectl delete --force --grace-period=0` (no CNI DEL). */
  forceDelete(pod: PodRef | string): Promise<void>;
  records(pool: string): Promise<Record<string, { pod: string; podUid: string }>>;
  endpoint(name: string): Promise<SpiderEndpoint | undefined>;
  /** An IP GC in this process; not started (tests call scanAll, or start it for tracing). */
  gc(opts?: { config?: Partial<GcConfig>; leader?: () => boolean; hooks?: GcHooks }): IpGc;
}

export interface PodExtra {
  ownerReferences?: unknown[];
  terminationGracePeriodSeconds?: number;
  hostNetwork?: boolean;
}

export function podsPath(ns: string): string {
  return `/api/v1/namespaces/${ns}/pods`;
}

export async function gcWorld(prefix: string): Promise<GcWorld> {
  const scope = await testScope(prefix);
  const { http, kc } = scope.cluster;
  const ns = scope.namespace;
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-gc-test-" });
  const agents: RunningAgent[] = [];
  const gcs: IpGc[] = [];
  const pools: string[] = [];
  const logs: string[] = [];

  const world: GcWorld = {
    scope,
    ns,
    logs,
    async node(suffix, ready = true) {
      const name = scope.name(suffix);
      await http.post("/api/v1/nodes", { apiVersion: "v1", kind: "Node", metadata: { name } });
      scope.track(`/api/v1/nodes/${name}`);
      await world.setNodeReady(name, ready);
      const agent = await startAgent({
        nodeName: name,
        socketPath: `${dir}/${suffix}.sock`,
        kubeconfig: scope.cluster.kubeconfigPath,
        log: () => {},
      });
      agents.push(agent);
      return { name, agent, client: new AgentClient(agent.socketPath, { timeoutMs: 60_000 }) };
    },
    async setNodeReady(name, ready) {
      const now = new Date().toISOString();
      await http.patch(`/api/v1/nodes/${name}/status`, {
        status: {
          conditions: [{
            type: "Ready",
            status: ready ? "True" : "Unknown",
            reason: ready ? "KubeletReady" : "NodeStatusUnknown",
            lastHeartbeatTime: now,
            lastTransitionTime: now,
          }],
        },
      }, "strategic");
    },
    async pool(suffix, ips) {
      const name = scope.name(suffix);
      await http.post(POOLS, {
        apiVersion: API_VERSION,
        kind: "SpiderIPPool",
        metadata: { name },
        spec: { ipVersion: 4, subnet: "192.0.2.0/24", ips },
      });
      scope.track(`${POOLS}/${name}`);
      pools.push(name);
      for (const a of agents) {
        await poll(
          `agent to cache pool ${name}`,
          10_000,
          () => Promise.resolve(a.caches.pools.get(name) ? true : undefined),
        );
      }
      return name;
    },
    async createPod(name, node, pool, extra = {}) {
      const { body } = await http.post<{ metadata: { uid: string } }>(podsPath(ns), {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name,
          annotations: { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [pool] }) },
          ownerReferences: extra.ownerReferences,
        },
        spec: {
          nodeName: node,
          hostNetwork: extra.hostNetwork,
          containers: [{ name: "c", image: "registry.invalid/pause:1" }],
          terminationGracePeriodSeconds: extra.terminationGracePeriodSeconds ?? 30,
        },
      });
      return { name, uid: body.metadata.uid };
    },
    async markRunning(name, ips) {
      await http.patch(`${podsPath(ns)}/${name}/status`, {
        status: {
          phase: "Running",
          conditions: [{ type: "Ready", status: "True" }],
          podIP: ips[0],
          podIPs: ips.map((ip) => ({ ip })),
          startTime: new Date().toISOString(),
        },
      }, "merge");
    },
    add(client, pod, ifName = "eth0") {
      return client.allocate({
        containerID: `cid-${pod.uid}`,
        ifName,
        netNamespace: `/var/run/netns/${pod.name}`,
        podNamespace: ns,
        podName: pod.name,
        podUID: pod.uid,
      });
    },
    async runPod(name, node, pool, extra) {
      const pod = await world.createPod(name, node.name, pool, extra);
      const res = await world.add(node.client, pod);
      const ip = res.ips[0].address.split("/")[0];
      await world.markRunning(name, [ip]);
      return { ...pod, ip };
    },
    async forceDelete(pod) {
      const name = typeof pod === "string" ? pod : pod.name;
      const preconditions = typeof pod === "string" ? undefined : { uid: pod.uid };
      await http.delete(`${podsPath(ns)}/${name}`, { gracePeriodSeconds: 0, preconditions }).catch((err) => {
        if (!(err instanceof NotFoundError)) throw err;
      });
      await poll(`pod ${name} to be gone`, 20_000, async () => {
        try {
          const { body } = await http.get<{ metadata: { uid: string } }>(`${podsPath(ns)}/${name}`);
          return typeof pod !== "string" && body.metadata.uid !== pod.uid ? true : undefined;
        } catch (err) {
          if (err instanceof NotFoundError) return true;
          throw err;
        }
      });
    },
    async records(pool) {
      const { body } = await http.get<SpiderIPPool>(`${POOLS}/${pool}`);
      return decodeAllocatedIPs(body.status?.allocatedIPs, pool);
    },
    async endpoint(name) {
      try {
        return (await http.get<SpiderEndpoint>(`${endpointsIn(ns)}/${name}`)).body;
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    },
    gc(opts = {}) {
      const config: GcConfig = {
        ...defaultGcConfig(),
        unconfirmedGraceMs: 0,
        requestGapMs: 0,
        traceGapMs: 200,
        ...opts.config,
      };
      const gc = new IpGc({
        http,
        kubeConfig: kc,
        config,
        isLeader: opts.leader ?? (() => true),
        registry: new Registry(),
        identity: `${ns}-gc`,
        leaderPollMs: 100,
        log: (m) => logs.push(m),
        hooks: {
          ...opts.hooks,
          // Only this test's objects: other tests share the control plane.
          snapshot: async (s) => {
            const mine = {
              pools: s.pools.filter((p) => pools.includes(p.metadata.name)),
              pods: s.pods.filter((p) => p.metadata.namespace === ns),
              endpoints: s.endpoints.filter((e) => e.metadata.namespace === ns),
              nodes: s.nodes,
            };
            return opts.hooks?.snapshot ? await opts.hooks.snapshot(mine) : mine;
          },
        },
      });
      gcs.push(gc);
      return gc;
    },
    async [Symbol.asyncDispose]() {
      for (const gc of gcs) await gc.stop();
      for (const a of agents) await a.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await http.delete(podsPath(ns), { gracePeriodSeconds: 0 }).catch(() => {});
      const { body } = await http.get<{ items: SpiderEndpoint[] }>(endpointsIn(ns));
      for (const ep of body.items) {
        if (!ep.metadata.finalizers?.length) continue;
        await http.patch(`${endpointsIn(ns)}/${ep.metadata.name}`, { metadata: { finalizers: null } }).catch(
          () => {},
        );
      }
      await scope[Symbol.asyncDispose]();
    },
  };
  return world;
}

/** Waits (bounded) until `check` answers. */
export function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  return poll(what, timeoutMs, check);
}
