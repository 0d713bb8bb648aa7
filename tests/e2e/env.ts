// One end-to-end test's world: a test namespace in the real control plane, simulated nodes with their agents,
// SpiderIPPools, Pod objects bound to nodes, and one network namespace per pod sandbox driven through the
// bridge + spiderpool chain. Disposing it sends the DELs a runtime would, then removes every namespace, link,
// process and API object it created.

import { decodeAllocatedIPs } from "../../src/api/allocated.ts";
import type { AllocationRecord } from "../../src/api/allocated.ts";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import { type KubeHttp, NotFoundError } from "../../src/kube/client.ts";
import { poll, type TestScope, testScope } from "../kube/harness.ts";
import { type CniRun, execCni, type PodRef, spiderpoolBridgeConf } from "./cni.ts";
import { addNetns, delNetns, netnsPath, shortId } from "./netns.ts";
import { type SimNode, startSimNode } from "./node_sim.ts";

export const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
export const endpointsIn = (ns: string) => `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}`;

export interface PoolSpec {
  subnet: string;
  ips: string[];
  gateway?: string;
  excludeIPs?: string[];
  routes?: { dst: string; gw: string }[];
  default?: boolean;
  nodeName?: string[];
  nodeAffinity?: LabelSelector;
  namespaceName?: string[];
  namespaceAffinity?: LabelSelector;
  podAffinity?: LabelSelector;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Creates a SpiderIPPool (no webhook runs, so `ipVersion` is set here as the webhook would). */
export async function createPool(http: KubeHttp, name: string, spec: PoolSpec): Promise<void> {
  await http.post(POOLS, {
    apiVersion: API_VERSION,
    kind: "SpiderIPPool",
    metadata: { name },
    spec: { ipVersion: spec.subnet.includes(":") ? 6 : 4, ...spec },
  });
}

export async function readPool(http: KubeHttp, name: string): Promise<SpiderIPPool> {
  return (await http.get<SpiderIPPool>(`${POOLS}/${name}`)).body;
}

/** `status.allocatedIPs` of a pool, decoded: IP → {pod, podUid}. */
export async function poolRecords(http: KubeHttp, name: string): Promise<Record<string, AllocationRecord>> {
  return decodeAllocatedIPs((await readPool(http, name)).status?.allocatedIPs, name);
}

export async function listEndpoints(http: KubeHttp, ns: string): Promise<SpiderEndpoint[]> {
  return (await http.get<{ items: SpiderEndpoint[] }>(endpointsIn(ns))).body.items;
}

export async function getEndpoint(
  http: KubeHttp,
  ns: string,
  name: string,
): Promise<SpiderEndpoint | undefined> {
  try {
    return (await http.get<SpiderEndpoint>(`${endpointsIn(ns)}/${name}`)).body;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** The address (without prefix) of one `ipv4`/`ipv6` field of an endpoint detail. */
export function bareIP(addr: string | undefined): string | undefined {
  return addr?.split("/")[0];
}

/** Every (pool, IP, pod UID) an endpoint claims, from `status.current`. */
export function endpointClaims(ep: SpiderEndpoint): { pool: string; ip: string; uid: string; pod: string }[] {
  const cur = ep.status?.current;
  const out: { pool: string; ip: string; uid: string; pod: string }[] = [];
  for (const d of cur?.ips ?? []) {
    const pod = `${ep.metadata.namespace}/${ep.metadata.name}`;
    if (d.ipv4 && d.ipv4Pool) out.push({ pool: d.ipv4Pool, ip: bareIP(d.ipv4)!, uid: cur.uid, pod });
    if (d.ipv6 && d.ipv6Pool) out.push({ pool: d.ipv6Pool, ip: bareIP(d.ipv6)!, uid: cur.uid, pod });
  }
  return out;
}

/**
 * Compares the records of `pools` held by pods of `namespace` with the namespace's SpiderEndpoints; returns
 * one line per mismatch (a record without endpoint, an endpoint address without record, a UID disagreement).
 */
export async function consistencyProblems(
  http: KubeHttp,
  namespace: string,
  pools: string[],
): Promise<string[]> {
  const problems: string[] = [];
  const records = new Map<string, AllocationRecord>();
  for (const p of pools) {
    for (const [ip, r] of Object.entries(await poolRecords(http, p))) {
      if (r.pod.startsWith(`${namespace}/`)) records.set(`${p} ${ip}`, r);
    }
  }
  const claimed = new Map<string, { uid: string; pod: string }>();
  for (const ep of await listEndpoints(http, namespace)) {
    for (const c of endpointClaims(ep)) {
      const key = `${c.pool} ${c.ip}`;
      const twice = claimed.get(key);
      if (twice) problems.push(`${key} claimed by two endpoints: ${twice.pod} and ${c.pod}`);
      claimed.set(key, c);
    }
  }
  for (const [key, r] of records) {
    const c = claimed.get(key);
    if (!c) problems.push(`pool record ${key} (${r.pod} uid ${r.podUid}) has no SpiderEndpoint`);
    else if (c.uid !== r.podUid || c.pod !== r.pod) {
      problems.push(
        `pool record ${key} is ${r.pod} uid ${r.podUid}, its endpoint says ${c.pod} uid ${c.uid}`,
      );
    }
  }
  for (const [key, c] of claimed) {
    if (!records.has(key)) {
      problems.push(`SpiderEndpoint ${c.pod} claims ${key} (uid ${c.uid}) with no pool record`);
    }
  }
  return problems;
}

/** A pod sandbox: the Pod object, the node it is bound to, its network namespace and container id. */
export interface Sandbox {
  pod: PodRef;
  node: SimNode;
  netns: string;
  containerId: string;
  /** Interfaces set up by a successful ADD (name → the configuration used), until their DEL. */
  attached: Map<string, unknown>;
}

export interface E2E extends AsyncDisposable {
  scope: TestScope;
  http: KubeHttp;
  namespace: string;
  dir: string;
  nodes: SimNode[];
  /** Starts `count` simulated nodes (in parallel), each with its agent. */
  startNodes(count: number): Promise<SimNode[]>;
  /** A cluster-scoped SpiderIPPool named after this test, deleted at the end. */
  pool(suffix: string, spec: PoolSpec): Promise<string>;
  /** Creates a Pod bound to `node` (as the scheduler would) and marks it Running (as the kubelet would). */
  createPod(
    name: string,
    node: SimNode,
    opts?: { annotations?: Record<string, string>; ownerReferences?: unknown[] },
  ): Promise<PodRef>;
  /** Binds an existing (e.g. controller-made) Pod to `node` and marks it Running. */
  bindPod(name: string, node: SimNode): Promise<PodRef>;
  /** A new sandbox (network namespace + container id) for `pod` on `node`. */
  sandbox(pod: PodRef, node: SimNode): Promise<Sandbox>;
  /** The bridge + spiderpool network configuration of `node`, with `ipam` overrides. */
  conf(node: SimNode, ipam?: Record<string, unknown>): Record<string, unknown>;
  /** CNI ADD for one interface of `sb` (default eth0, with `conf(sb.node)`). */
  add(sb: Sandbox, opts?: AttachOptions): Promise<CniRun>;
  /** CNI DEL for one interface of `sb`; by default with the configuration its ADD used. */
  del(sb: Sandbox, opts?: AttachOptions): Promise<CniRun>;
  /** What a kubelet does when a pod is deleted: graceful delete, CNI DEL, then the final delete. */
  deletePod(sb: Sandbox): Promise<CniRun>;
}

export interface AttachOptions {
  /** The network configuration (object, or raw text); default the node's bridge + spiderpool. */
  conf?: unknown;
  ifName?: string;
  /** The pod identity put in CNI_ARGS; default the sandbox's pod (e.g. a late DEL names an older UID). */
  pod?: PodRef;
}

const KUBELET_PHASE = { phase: "Running", conditions: [{ type: "Ready", status: "True" }] };

/** Opens an end-to-end world named after `prefix`. */
export async function e2e(prefix: string): Promise<E2E> {
  const scope = await testScope(prefix);
  const { http, kubeconfigPath } = scope.cluster;
  const namespace = scope.namespace;
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-e2e-" });
  const nodes: SimNode[] = [];
  const sandboxes: Sandbox[] = [];
  const podsPath = `/api/v1/namespaces/${namespace}/pods`;

  const markRunning = async (name: string) => {
    const now = new Date().toISOString();
    await http.patch(`${podsPath}/${name}/status`, {
      status: { ...KUBELET_PHASE, startTime: now },
    }, "merge");
  };

  const env: E2E = {
    scope,
    http,
    namespace,
    dir,
    nodes,
    async startNodes(count) {
      const base = nodes.length;
      const started = await Promise.allSettled(
        Array.from(
          { length: count },
          (_, i) =>
            startSimNode({ http, kubeconfig: kubeconfigPath, name: `${namespace}-n${base + i + 1}`, dir }),
        ),
      );
      const ok = started.filter((s): s is PromiseFulfilledResult<SimNode> => s.status === "fulfilled");
      nodes.push(...ok.map((s) => s.value));
      const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
      if (failed) throw failed.reason;
      return ok.map((s) => s.value);
    },
    async pool(suffix, spec) {
      const name = scope.name(suffix);
      await createPool(http, name, spec);
      scope.track(`${POOLS}/${name}`);
      return name;
    },
    async createPod(name, node, opts = {}) {
      const { body } = await http.post<{ metadata: { uid: string } }>(podsPath, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, annotations: opts.annotations, ownerReferences: opts.ownerReferences },
        spec: {
          nodeName: node.name,
          containers: [{ name: "c", image: "registry.invalid/pause:1" }],
          terminationGracePeriodSeconds: 30,
        },
      });
      await markRunning(name);
      return { namespace, name, uid: body.metadata.uid };
    },
    async bindPod(name, node) {
      await http.post(`${podsPath}/${name}/binding`, {
        apiVersion: "v1",
        kind: "Binding",
        metadata: { name },
        target: { apiVersion: "v1", kind: "Node", name: node.name },
      });
      await markRunning(name);
      const { body } = await http.get<{ metadata: { uid: string } }>(`${podsPath}/${name}`);
      return { namespace, name, uid: body.metadata.uid };
    },
    async sandbox(pod, node) {
      const id = shortId(8);
      const netns = `${namespace}-${id}`;
      await addNetns(netns);
      const sb: Sandbox = { pod, node, netns, containerId: `${id}${shortId(24)}`, attached: new Map() };
      sandboxes.push(sb);
      return sb;
    },
    conf(node, ipam = {}) {
      return spiderpoolBridgeConf({
        name: "e2e-bridge",
        bridge: node.bridge,
        ipam: {
          ipam_unix_socket_path: node.agent.socketPath,
          log_file_path: `${dir}/plugin.log`,
          ...ipam,
        },
      });
    },
    async add(sb, opts = {}) {
      const ifName = opts.ifName ?? "eth0";
      const conf = opts.conf ?? env.conf(sb.node);
      const run = await execCni({
        command: "ADD",
        conf,
        containerId: sb.containerId,
        netns: netnsPath(sb.netns),
        ifName,
        pod: opts.pod ?? sb.pod,
        nodeNetns: sb.node.netns,
      });
      if (run.code === 0) sb.attached.set(ifName, conf);
      return run;
    },
    async del(sb, opts = {}) {
      const ifName = opts.ifName ?? "eth0";
      const run = await execCni({
        command: "DEL",
        conf: opts.conf ?? sb.attached.get(ifName) ?? env.conf(sb.node),
        containerId: sb.containerId,
        netns: netnsPath(sb.netns),
        ifName,
        pod: opts.pod ?? sb.pod,
        nodeNetns: sb.node.netns,
      });
      if (run.code === 0) sb.attached.delete(ifName);
      return run;
    },
    async deletePod(sb) {
      await http.delete(`${podsPath}/${sb.pod.name}`, { preconditions: { uid: sb.pod.uid } });
      const run = await env.del(sb);
      await http.delete(`${podsPath}/${sb.pod.name}`, {
        gracePeriodSeconds: 0,
        preconditions: { uid: sb.pod.uid },
      }).catch((err) => {
        if (!(err instanceof NotFoundError)) throw err;
      });
      return run;
    },
    async [Symbol.asyncDispose]() {
      const errors: string[] = [];
      const attempt = async (what: string, fn: () => PromiseLike<unknown>) => {
        try {
          await fn();
        } catch (err) {
          errors.push(`${what}: ${(err as Error).message}`);
        }
      };
      // A runtime tears down every sandbox it set up before the node goes away. Best effort: a test may have
      // left an agent dead, and deleting the namespace removes the links anyway.
      for (const sb of sandboxes) {
        for (const ifName of [...sb.attached.keys()].reverse()) await env.del(sb, { ifName }).catch(() => {});
        await delNetns(sb.netns);
      }
      for (const node of nodes) await attempt(`stop node ${node.name}`, () => node[Symbol.asyncDispose]());
      await attempt("force-delete pods", () => http.delete(podsPath, { gracePeriodSeconds: 0 }));
      // No agent is left to drop endpoint finalizers; without this the namespace would stay Terminating.
      await attempt("drop endpoint finalizers", async () => {
        for (const ep of await listEndpoints(http, namespace)) {
          if (!ep.metadata.finalizers?.length) continue;
          await http.patch(`${endpointsIn(namespace)}/${ep.metadata.name}`, {
            metadata: { finalizers: null },
          })
            .catch(() => {});
        }
      });
      // SPIDERPOOL_E2E_KEEP=1 keeps the agents' and the plugin's logs for a post-mortem.
      if (Deno.env.get("SPIDERPOOL_E2E_KEEP") === "1") console.error(`e2e: logs kept in ${dir}`);
      else await Deno.remove(dir, { recursive: true }).catch(() => {});
      await attempt("delete test scope", () => scope[Symbol.asyncDispose]());
      if (errors.length > 0) {
        throw new Error(`end-to-end clean-up of ${namespace} failed:\n${errors.join("\n")}`);
      }
    },
  };
  return env;
}

/** Waits (bounded) until `check` holds; `what` names the condition in the timeout error. */
export function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  return poll(what, timeoutMs, check);
}
