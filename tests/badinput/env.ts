// The bad-input corpus's world: a test namespace in the real control plane, one simulated node with a real
// `dist/spiderpool agent` process, a SpiderIPPool, and the real `dist/cni/spiderpool` plugin started the way a
// container runtime starts it. Every case runs against it, and each must leave the pools and SpiderEndpoints
// exactly as they were; after each batch the agent must still answer its health check and serve a good ADD.

import assert from "node:assert/strict";
import { decodeAllocatedIPs } from "../../src/api/allocated.ts";
import type { OwnerReference, SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import { errorText, parseResponse } from "../../src/agentapi/client.ts";
import type { KubeHttp } from "../../src/kube/client.ts";
import { podCniArgs, type PodRef } from "../e2e/cni.ts";
import { createPool, endpointsIn, listEndpoints, POOLS, type PoolSpec } from "../e2e/env.ts";
import { type SimNode, startSimNode } from "../e2e/node_sim.ts";
import { poll, type TestScope, testScope } from "../kube/harness.ts";

export type { PodRef } from "../e2e/cni.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** The real plugin, as a runtime finds it on CNI_PATH. */
export const PLUGIN = `${ROOT}dist/cni/spiderpool`;

/** What one malformed input produced: a CNI error (plugin) or an HTTP answer (socket). */
export interface Outcome {
  /** CNI error code, or HTTP status; 0 = the input was accepted. */
  code: number;
  /** The error text a user sees (CNI `msg` and `details`, or the HTTP error body). */
  message: string;
}

/** One malformed input and what must come back. */
export interface Case {
  name: string;
  /** CNI error code or HTTP status expected. */
  code: number;
  /** Each must match the message: together they name the object, key or field, and the value. */
  says: RegExp[];
  /** Writes the objects the case is about; the state compared afterwards is taken after this. */
  prepare?(w: World): Promise<void>;
  run(w: World): Promise<Outcome>;
}

export interface PluginRun {
  exit: number;
  stdout: string;
  stderr: string;
  json?: { code?: number; msg?: string; details?: string; ips?: { address: string }[] };
}

export interface World {
  scope: TestScope;
  http: KubeHttp;
  ns: string;
  dir: string;
  node: SimNode;
  /** The pool every good ADD (and every pod of a case that is not about pools) names. */
  pool: string;
  /** A live pod naming `pool`: cases aim at it, so that an input let through would allocate for it. */
  victim: PodRef;
  /** A Pod bound to the node and Running, with `annotations` (default: `pool` by ipam.spidernet.io/ippool). */
  createPod(name: string, annotations?: Record<string, string>, owner?: OwnerReference): Promise<PodRef>;
  /**
   * A controller owner for pods that need one (SpiderSubnet annotations refuse orphan pods): a ConfigMap of
   * this namespace, so that the garbage collector keeps the pods and no controller makes more.
   */
  owner(): Promise<OwnerReference>;
  /** A SpiderIPPool created as written (no webhook runs), deleted at the end. */
  createPool(
    suffix: string,
    spec: Record<string, unknown>,
    status?: Record<string, unknown>,
  ): Promise<string>;
  /** The network configuration of a good ADD, with `ipam` overrides. */
  conf(ipam?: Record<string, unknown>): Record<string, unknown>;
  /** The CNI_* environment of a good ADD for `pod` (a new container ID each time). */
  env(pod?: PodRef): Record<string, string>;
  /** Runs the real plugin with exactly `env` (plus PATH and HOME) and `stdin`. */
  plugin(env: Record<string, string | undefined>, stdin: string | Uint8Array): Promise<PluginRun>;
  /** A plugin run as a case outcome. */
  outcome(run: PluginRun): Outcome;
  /** ADD through the plugin for `pod` (default the victim) with `conf()` unless given. */
  add(pod?: PodRef, conf?: unknown): Promise<PluginRun>;
  /** Sends `bytes` on a new connection to the agent's socket and reads the answer until it closes. */
  socket(bytes: string | Uint8Array, timeoutMs?: number): Promise<Outcome>;
  /**
   * Every record (any pool in the cluster) held by a pod of this namespace, every SpiderEndpoint of this
   * namespace, and every pool of this test with its counts: what no bad input may change.
   */
  state(): Promise<string>;
  /** Fails unless the agent process still runs and answers its health check. */
  requireAgentUp(): Promise<void>;
  /** After a batch: the agent is up, a good ADD gets an address, its DEL gives it back. */
  checkpoint(batch: string): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Cases between two checkpoints (health check, good ADD and DEL). */
const BATCH = 20;

/**
 * Runs `cases` one by one as test steps; each must be refused as expected and change nothing, and the agent
 * must answer its health check after each. After every BATCH cases and at the end, a good ADD must still work.
 */
export async function runCases(t: Deno.TestContext, w: World, corpus: string, cases: Case[]): Promise<void> {
  for (const [i, c] of cases.entries()) {
    if (i > 0 && i % BATCH === 0) await w.checkpoint(`${corpus}, cases ${i - BATCH + 1}-${i}`);
    await t.step(c.name, async () => {
      await c.prepare?.(w);
      const before = await w.state();
      const got = await c.run(w);
      // SPIDERPOOL_BADINPUT_SHOW=1 prints what each case answered, to read the messages a user would see.
      if (Deno.env.get("SPIDERPOOL_BADINPUT_SHOW") === "1") {
        console.log(`  ${got.code}: ${got.message.trim()}`);
      }
      assert.equal(got.code, c.code, `${c.name}: expected ${c.code}, got ${got.code}: ${got.message}`);
      for (const re of c.says) {
        assert.match(got.message, re, `${c.name}: the message must name what is wrong`);
      }
      assert.equal(await w.state(), before, `${c.name}: nothing may be allocated, released or left behind`);
      await w.requireAgentUp();
    });
  }
  await w.checkpoint(`${corpus}, all ${cases.length} cases`);
}

/**
 * ADD for `pod` until the refusal says all of `says` (the agent's caches may not hold a just-written object
 * yet, and until then it refuses for another reason) or 15 s pass; an accepted ADD ends the wait at once.
 */
export async function addUntil(w: World, pod: PodRef, says: RegExp[], conf?: unknown): Promise<Outcome> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const got = w.outcome(await w.add(pod, conf));
    if (got.code === 0 || says.every((re) => re.test(got.message)) || Date.now() > deadline) return got;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Escapes `s` for use in a RegExp. */
export function lit(s: string): RegExp {
  return new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
}

let counter = 0;
/** A container ID no other case used. */
export function containerId(): string {
  return `badinput${Date.now().toString(16)}${(counter++).toString(16).padStart(6, "0")}`;
}

export async function world(prefix: string, opts: { configYaml?: string } = {}): Promise<World> {
  const scope = await testScope(prefix);
  const { http, kubeconfigPath } = scope.cluster;
  const ns = scope.namespace;
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-badinput-" });
  const pools: string[] = [];
  let node: SimNode | undefined;
  try {
    node = await startSimNode({
      http,
      kubeconfig: kubeconfigPath,
      name: `${ns}-n1`,
      dir,
      configYaml: opts.configYaml,
    });
  } catch (err) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await scope[Symbol.asyncDispose]();
    throw err;
  }
  let agentExit: Deno.CommandStatus | undefined;
  node.agent.exited.then((s) => agentExit = s);
  const podsPath = `/api/v1/namespaces/${ns}/pods`;
  let goods = 0;
  let ownerRef: OwnerReference | undefined;

  const w: World = {
    scope,
    http,
    ns,
    dir,
    node,
    pool: "",
    victim: { namespace: ns, name: "", uid: "" },
    async owner() {
      if (!ownerRef) {
        const { body } = await http.post<{ metadata: { uid: string } }>(
          `/api/v1/namespaces/${ns}/configmaps`,
          {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: "app" },
          },
        );
        ownerRef = {
          apiVersion: "v1",
          kind: "ConfigMap",
          name: "app",
          uid: body.metadata.uid,
          controller: true,
        };
      }
      return ownerRef;
    },
    async createPod(name, annotations, owner) {
      const { body } = await http.post<{ metadata: { uid: string } }>(podsPath, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name,
          annotations: annotations ?? { "ipam.spidernet.io/ippool": JSON.stringify({ ipv4: [w.pool] }) },
          ownerReferences: owner ? [owner] : undefined,
        },
        spec: {
          nodeName: node!.name,
          containers: [{ name: "c", image: "registry.invalid/pause:1" }],
          // A deleted pod stays Terminating (no kubelet confirms), so its SpiderEndpoint is not collected
          // while a later case compares the state.
          terminationGracePeriodSeconds: 30,
        },
      });
      await http.patch(`${podsPath}/${name}/status`, {
        status: {
          phase: "Running",
          conditions: [{ type: "Ready", status: "True" }],
          startTime: new Date().toISOString(),
        },
      }, "merge");
      return { namespace: ns, name, uid: body.metadata.uid };
    },
    async createPool(suffix, spec, status) {
      const name = scope.name(suffix);
      await http.post(POOLS, {
        apiVersion: "spiderpool.spidernet.io/v2beta1",
        kind: "SpiderIPPool",
        metadata: { name },
        spec,
      });
      scope.track(`${POOLS}/${name}`);
      pools.push(name);
      if (status) {
        const { body } = await http.get<SpiderIPPool>(`${POOLS}/${name}`);
        await http.put(`${POOLS}/${name}/status`, { ...body, status });
      }
      return name;
    },
    conf(ipam = {}) {
      return {
        cniVersion: "1.0.0",
        name: "badinput",
        type: "spiderpool",
        ipam: {
          type: "spiderpool",
          ipam_unix_socket_path: node!.agent.socketPath,
          log_file_path: `${dir}/plugin.log`,
          ...ipam,
        },
      };
    },
    env(pod = w.victim) {
      const id = containerId();
      return {
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: id,
        CNI_NETNS: `/var/run/netns/${id}`,
        CNI_IFNAME: "eth0",
        CNI_PATH: `${ROOT}dist/cni`,
        CNI_ARGS: podCniArgs(pod, id),
      };
    },
    async plugin(env, stdin) {
      const vars: Record<string, string> = {};
      for (const [k, v] of Object.entries(env)) if (v !== undefined) vars[k] = v;
      const child = new Deno.Command(PLUGIN, {
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          HOME: Deno.env.get("HOME") ?? "/root",
          ...vars,
        },
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(120_000),
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin).catch(() => {});
      await writer.close().catch(() => {});
      const out = await child.output();
      const stdout = new TextDecoder().decode(out.stdout);
      let json: PluginRun["json"];
      try {
        json = stdout.trim() === "" ? undefined : JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      return { exit: out.code, stdout, stderr: new TextDecoder().decode(out.stderr), json };
    },
    outcome(run) {
      if (run.exit === 0) return { code: 0, message: run.stdout };
      if (run.json?.code === undefined) {
        return { code: -1, message: `exit ${run.exit} without a CNI error: ${run.stdout} ${run.stderr}` };
      }
      return { code: run.json.code, message: `${run.json.msg ?? ""}\n${run.json.details ?? ""}` };
    },
    add(pod = w.victim, conf) {
      return w.plugin(w.env(pod), JSON.stringify(conf ?? w.conf()));
    },
    async socket(bytes, timeoutMs = 30_000) {
      const conn = await Deno.connect({ path: node!.agent.socketPath, transport: "unix" });
      const timer = setTimeout(() => conn.close(), timeoutMs);
      try {
        const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
        let off = 0;
        try {
          while (off < data.length) off += await conn.write(data.subarray(off));
          // Like a client that sends one request and waits: nothing more comes on this connection.
          await conn.closeWrite();
        } catch {
          // The agent may answer (413, 431) and close before the whole request is written.
        }
        let got: Uint8Array = new Uint8Array(0);
        const buf = new Uint8Array(64 * 1024);
        for (;;) {
          let n: number | null;
          try {
            n = await conn.read(buf);
          } catch {
            n = null;
          }
          if (n !== null) {
            const next = new Uint8Array(got.length + n);
            next.set(got);
            next.set(buf.subarray(0, n), got.length);
            got = next;
          }
          const res = got.length > 0 ? parseResponse(got, n === null) : undefined;
          if (res) return { code: res.status, message: errorText(res.body) };
          if (n === null) return { code: -1, message: "the agent closed the connection without an answer" };
        }
      } finally {
        clearTimeout(timer);
        try {
          conn.close();
        } catch { /* closed */ }
      }
    },
    async state() {
      const { body } = await http.get<{ items: SpiderIPPool[] }>(POOLS);
      const held: string[] = [];
      const mine: string[] = [];
      for (const p of body.items) {
        let records;
        try {
          records = decodeAllocatedIPs(p.status?.allocatedIPs, p.metadata.name);
        } catch {
          // A pool a case wrote broken on purpose: its status text is compared as it is.
          records = {};
        }
        for (const [ip, r] of Object.entries(records)) {
          if (r.pod.startsWith(`${ns}/`)) held.push(`${p.metadata.name} ${ip} ${r.pod} ${r.podUid}`);
        }
        if (pools.includes(p.metadata.name)) {
          mine.push(
            `${p.metadata.name} ${p.metadata.resourceVersion} ${p.status?.allocatedIPCount ?? 0} ` +
              `${p.status?.allocatedIPs ?? ""}`,
          );
        }
      }
      const eps = (await listEndpoints(http, ns)).map((e: SpiderEndpoint) =>
        `${e.metadata.name} ${e.metadata.resourceVersion} ${JSON.stringify(e.status)}`
      );
      return JSON.stringify({ held: held.sort(), pools: mine.sort(), endpoints: eps.sort() }, null, 1);
    },
    async requireAgentUp() {
      if (agentExit) {
        const log = await Deno.readTextFile(node!.agent.logPath).catch(() => "");
        throw new Error(
          `the agent exited (${JSON.stringify(agentExit)}); its log ends:\n${log.slice(-3000)}`,
        );
      }
      const health = await w.socket("GET /v1/ipam/healthy HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n");
      assert.equal(health.code, 200, `agent health check: ${health.message}`);
    },
    async checkpoint(batch) {
      await w.requireAgentUp();
      // A case's object deleted just now may still be in the agent's caches for a moment (a SpiderReservedIP
      // blocks its family until then): the good ADD gets a few seconds, never a pass without an address.
      await poll(`a good ADD and DEL after ${batch}`, 15_000, async () => {
        const problem = await goodAddDel(`good-${++goods}`);
        if (problem) throw new Error(problem);
        return true;
      });
    },
    async [Symbol.asyncDispose]() {
      await node!.agent.stop();
      await node![Symbol.asyncDispose]().catch(() => {});
      await http.delete(podsPath, { gracePeriodSeconds: 0 }).catch(() => {});
      for (const ep of await listEndpoints(http, ns).catch(() => [])) {
        if (!ep.metadata.finalizers?.length) continue;
        await http.patch(`${endpointsIn(ns)}/${ep.metadata.name}`, { metadata: { finalizers: null } })
          .catch(() => {});
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await scope[Symbol.asyncDispose]();
    },
  };
  try {
    const spec: PoolSpec = { subnet: "192.0.2.0/24", ips: ["192.0.2.10-192.0.2.200"], gateway: "192.0.2.1" };
    w.pool = scope.name("good");
    await createPool(http, w.pool, spec);
    scope.track(`${POOLS}/${w.pool}`);
    pools.push(w.pool);
    w.victim = await w.createPod("victim");
    // The agent serves ADD once its caches hold the pool.
    await poll("the agent to serve a good ADD", 30_000, async () => {
      const problem = await goodAddDel(`good-${++goods}`);
      if (problem) throw new Error(problem);
      return true;
    });
  } catch (err) {
    await Promise.resolve(w[Symbol.asyncDispose]()).catch(() => {});
    throw err;
  }
  return w;

  /**
   * A pod's life as a runtime and kubelet drive it: ADD gets an address from the good pool, the pod is
   * deleted (it stays Terminating: no kubelet confirms), DEL gives the address back. Undefined when all
   * of that happened, else what did not.
   */
  async function goodAddDel(name: string): Promise<string | undefined> {
    const pod = await w.createPod(name);
    const env = w.env(pod);
    const conf = JSON.stringify(w.conf());
    const add = await w.plugin(env, conf);
    if (add.exit !== 0) return `a good ADD failed: ${add.stdout} ${add.stderr}`;
    const ip = add.json?.ips?.[0]?.address.split("/")[0] ?? "";
    if (!/^192\.0\.2\./.test(ip)) return `the good ADD answered ${add.stdout}`;
    if ((await records(http, w.pool))[ip]?.podUid !== pod.uid) return `${ip} is not recorded for pod ${name}`;
    await http.delete(`${podsPath}/${name}`, { preconditions: { uid: pod.uid } });
    const del = await w.plugin({ ...env, CNI_COMMAND: "DEL" }, conf);
    if (del.exit !== 0) return `DEL of the good pod failed: ${del.stdout}`;
    if ((await records(http, w.pool))[ip] !== undefined) return `DEL did not give ${ip} back`;
    return undefined;
  }
}

async function records(http: KubeHttp, pool: string) {
  const { body } = await http.get<SpiderIPPool>(`${POOLS}/${pool}`);
  return decodeAllocatedIPs(body.status?.allocatedIPs, pool);
}
