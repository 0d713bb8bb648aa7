// Fault injection against the whole system: simulated nodes (a network namespace each, with a real
// `dist/spiderpool agent`), two real `dist/spiderpool controller` replicas with the IP GC, the real API server,
// and pods churned like a container runtime does: Pod objects created and deleted (gracefully, with grace 0, or
// force-deleted while their ADD is in flight), CNI ADD and DEL through Debian's `bridge` calling the real
// `spiderpool` plugin in a fresh sandbox namespace, a failed ADD followed by a DEL, DELs retried while the agent
// is down, and a CNI GC at the end. Meanwhile a fault loop SIGKILLs agents (mid-ADD, as ADDs never stop) and
// restarts them, SIGSTOPs an agent for a while, SIGKILLs the controller leader and starts a new replica, and
// pauses etcd (SIGSTOP, so the API server stalls).
//
// What is checked: every successful ADD's address against the addresses live pods hold (a pod is live from its
// ADD until its teardown begins), and periodically the SpiderEndpoints of existing pods for an address claimed
// twice; at the end, once everything is deleted, that the GC (and the DELs) bring the pool to 0 records and the
// namespace to 0 SpiderEndpoints (and finalizers), with allocatedIPCount equal to the records, within a bound.

import { decodeAllocatedIPs } from "../../src/api/allocated.ts";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import { type KubeHttp, NotFoundError } from "../../src/kube/client.ts";
import { unregisterWebhooks } from "../../src/controller/webhook/register.ts";
import { type ControllerProcess, startControllerProcess } from "../controller/webhook_harness.ts";
import { DIST_CNI, execCni, type PodRef, resultAddresses, spiderpoolBridgeConf } from "../e2e/cni.ts";
import { addNetns, delNetns, netnsPath, shortId } from "../e2e/netns.ts";
import { freePorts, type SimNode, startSimNode } from "../e2e/node_sim.ts";
import { type TestScope, testScope } from "../kube/harness.ts";

const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
const endpointsIn = (ns: string) => `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}`;
const LEASE = (ns: string) =>
  `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/spiderpool-controller-leases`;

export type Fault = "agent-kill" | "agent-stop" | "leader-kill" | "etcd-pause";

export interface ChaosOptions {
  /** Simulated nodes, each with its agent (≥ 5). */
  nodes: number;
  /** CNI operations (ADD and DEL through the plugin) to run before quiescing. */
  ops: number;
  /** Pods in flight at once. */
  concurrency: number;
  /** Addresses in the pool; a little above `concurrency` keeps it close to exhaustion. */
  poolSize: number;
  /** Pause between faults. */
  faultEveryMs: number;
  faults: readonly Fault[];
  /** How long the system may take to reclaim everything after the last operation. */
  reclaimTimeoutMs: number;
  /** Environment of the controllers' IP GC (SPIDERPOOL_GC_*). */
  gcEnv: Record<string, string>;
  /**
   * Sample the first node's agent (never SIGKILLed then) for resident memory and open descriptors once a tenth
   * of the operations ran and again after the reclaim.
   */
  observeAgent?: boolean;
  /** Aborting it stops the operations early; the run then quiesces, checks and cleans up as usual. */
  signal?: AbortSignal;
  log?: (message: string) => void;
}

/** Resident memory and open file descriptors of one process. */
export interface ProcessResources {
  rssMiB: number;
  fds: number;
}

export interface ChaosReport {
  ops: number;
  adds: number;
  addFailures: number;
  /** ADD failures that said the pool has no free address. */
  exhausted: number;
  dels: number;
  delFailures: number;
  pods: number;
  forceDeletes: number;
  /** Force deletes sent while the pod's ADD was running. */
  forceDeletesInFlight: number;
  faults: Record<Fault, number>;
  /** Descriptions of every address seen held by two live pods (must be empty). */
  duplicates: string[];
  /** What was left after the reclaim bound (must be all 0). */
  leaks: { records: number; endpoints: number; finalizers: number; countMismatch: number };
  /** From the last operation until 0 records and 0 endpoints. */
  reclaimMs: number;
  /** Processes that exited without being killed by the fault loop. */
  crashes: string[];
  /** Time from a leader's SIGKILL until another replica held the Lease, per kill. */
  leaderTakeoverMs: number[];
  /** Time from an agent's SIGKILL until its replacement served its socket, per kill. */
  agentRecoveryMs: number[];
  durationMs: number;
  /** Records the pool still held when the operations stopped (what DELs and the GC then had to reclaim). */
  recordsAtQuiescence: number;
  /** The observed agent after warm-up and at the end (observeAgent). */
  agentResources?: { pid: number; warm: ProcessResources; end: ProcessResources; ops: number };
}

interface Live {
  pod: PodRef;
  node: SimNode;
  netns: string;
  containerId: string;
  conf: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)];

/** The pid of the etcd of the control plane whose kubeconfig is `kubeconfigPath` (its data dir is beside it). */
async function etcdPid(kubeconfigPath: string): Promise<number | undefined> {
  const dir = kubeconfigPath.slice(0, kubeconfigPath.lastIndexOf("/"));
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const args = (await Deno.readTextFile(`/proc/${e.name}/cmdline`)).split("\0");
      if (args[0].endsWith("/etcd") && args.includes(`--data-dir=${dir}/etcd`)) return Number(e.name);
    } catch { /* exited meanwhile */ }
  }
  return undefined;
}

/** VmRSS and the number of entries in /proc/PID/fd. */
export async function resourcesOf(pid: number): Promise<ProcessResources> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = Number(status.match(/^VmRSS:\s+(\d+) kB/m)?.[1] ?? NaN);
  let fds = 0;
  for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) fds++;
  return { rssMiB: kib / 1024, fds };
}

/** Runs one chaos session in a fresh test namespace and returns what it measured; cleans up everything. */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => {});
  const scope: TestScope = await testScope("chaos");
  const { http, kubeconfigPath } = scope.cluster;
  const ns = scope.namespace;
  const id = shortId(8);
  const label = { "spiderpool.spidernet.io/chaos": id };
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-chaos-" });
  const report: ChaosReport = {
    ops: 0,
    adds: 0,
    addFailures: 0,
    exhausted: 0,
    dels: 0,
    delFailures: 0,
    pods: 0,
    forceDeletes: 0,
    forceDeletesInFlight: 0,
    faults: { "agent-kill": 0, "agent-stop": 0, "leader-kill": 0, "etcd-pause": 0 },
    duplicates: [],
    leaks: { records: 0, endpoints: 0, finalizers: 0, countMismatch: 0 },
    reclaimMs: 0,
    crashes: [],
    leaderTakeoverMs: [],
    agentRecoveryMs: [],
    durationMs: 0,
    recordsAtQuiescence: 0,
  };
  const nodes: SimNode[] = [];
  const controllers: ControllerProcess[] = [];
  const configNames: string[] = [];
  const netnses = new Set<string>();
  /** Processes the fault loop ends on purpose; any other exit is a crash. */
  const killing = new Set<number>();
  let etcdStopped: number | undefined;
  const started = performance.now();

  const watchExit = (what: string, p: { pid: number; exited: Promise<Deno.CommandStatus> }) => {
    void p.exited.then((s) => {
      if (!killing.has(p.pid) && !stopping) {
        report.crashes.push(`${what} (pid ${p.pid}) exited with ${s.code}`);
      }
    });
  };
  let stopping = false;

  // --- the controllers: their own webhook configurations select nothing; they reconcile and GC the chaos pool.
  let replicaSeq = 0;
  const startReplica = async () => {
    const i = replicaSeq++;
    const [health, webhook, metrics] = freePorts(3);
    const configName = `wh-chaos-${id}-${i}`;
    configNames.push(configName);
    const c = await startControllerProcess({
      index: i,
      dir,
      kubeconfig: kubeconfigPath,
      args: [
        "--namespace",
        ns,
        "--pod-name",
        `chaos-${id}-${i}`,
        "--config-path",
        `${dir}/none.yml`,
        "--health-port",
        String(health),
        "--webhook-port",
        String(webhook),
        "--metrics-port",
        String(metrics),
        "--bind-address",
        "127.0.0.1",
        "--webhook-url",
        `https://127.0.0.1:${webhook}`,
        "--webhook-config-name",
        configName,
        "--webhook-object-selector",
        `spiderpool.spidernet.io/chaos=${id}-none`,
        "--reconcile-selector",
        `spiderpool.spidernet.io/chaos=${id}`,
      ],
      env: {
        SPIDERPOOL_ENABLED_METRIC: "true",
        SPIDERPOOL_LEADER_DURATION: "4",
        SPIDERPOOL_LEADER_RENEW_DEADLINE: "3",
        SPIDERPOOL_LEADER_RETRY_PERIOD: "0.5",
        ...o.gcEnv,
      },
      ports: { health, webhook, metrics },
    });
    controllers.push(c);
    watchExit(`controller ${c.podName}`, c);
    return c;
  };
  const holder = async () => {
    try {
      return (await http.get<{ spec?: { holderIdentity?: string } }>(LEASE(ns))).body.spec?.holderIdentity;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  };

  const cleanup = async () => {
    stopping = true;
    if (etcdStopped) Deno.kill(etcdStopped, "SIGCONT");
    for (const n of nodes) {
      try {
        Deno.kill(n.agent.pid, "SIGCONT");
      } catch { /* gone */ }
    }
    for (const name of configNames) await unregisterWebhooks(http, name).catch(() => {});
    await Promise.all(controllers.map((c) => c.stop()));
    for (const n of netnses) await delNetns(n);
    for (const n of nodes) await n[Symbol.asyncDispose]().catch(() => {});
    await http.delete(`/api/v1/namespaces/${ns}/pods`, { gracePeriodSeconds: 0 }).catch(() => {});
    const eps = await listEndpoints(http, ns).catch(() => []);
    for (const ep of eps) {
      await http.patch(`${endpointsIn(ns)}/${ep.metadata.name}`, { metadata: { finalizers: null } })
        .catch(() => {});
    }
    if (Deno.env.get("SPIDERPOOL_CHAOS_KEEP") === "1") console.error(`chaos: logs kept in ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
    try {
      await scope[Symbol.asyncDispose]();
    } catch (err) {
      log(`clean-up: ${(err as Error).message}`);
    }
  };

  try {
    await startReplica();
    await startReplica();
    const sims = await Promise.all(
      Array.from(
        { length: o.nodes },
        (_, i) => startSimNode({ http, kubeconfig: kubeconfigPath, name: `${ns}-n${i + 1}`, dir }),
      ),
    );
    nodes.push(...sims);
    for (const n of nodes) watchExit(`agent of ${n.name}`, n.agent);

    // The pool: documentation range, labelled for these controllers, just above the pods in flight.
    const third = 16 + Math.floor(Math.random() * 224);
    const pool = `${ns}-pool`;
    await http.post(POOLS, {
      apiVersion: API_VERSION,
      kind: "SpiderIPPool",
      metadata: { name: pool, labels: label },
      spec: {
        ipVersion: 4,
        subnet: `198.19.${third}.0/24`,
        ips: [`198.19.${third}.10-198.19.${third}.${9 + o.poolSize}`],
      },
    });
    scope.track(`${POOLS}/${pool}`);
    const podsPath = `/api/v1/namespaces/${ns}/pods`;

    const live = new Map<string, Live>(); // ip → the pod holding it
    const conf = (node: SimNode) =>
      spiderpoolBridgeConf({
        name: "chaos",
        bridge: node.bridge,
        ipam: {
          default_ipv4_ippool: [pool],
          ipam_unix_socket_path: node.agent.socketPath,
          log_file_path: `${dir}/plugin.log`,
        },
      });
    const cni = async (command: "ADD" | "DEL", l: Live, timeoutMs = 60_000) => {
      report.ops++;
      if (command === "ADD") report.adds++;
      else report.dels++;
      return await execCni({
        command,
        conf: l.conf,
        containerId: l.containerId,
        netns: netnsPath(l.netns),
        pod: l.pod,
        nodeNetns: l.node.netns,
        timeoutMs,
      });
    };
    /** DEL as a runtime retries it until the agent answers (bounded); false when it never succeeded. */
    const del = async (l: Live): Promise<boolean> => {
      for (let attempt = 0; attempt < 6; attempt++) {
        const r = await cni("DEL", l);
        if (r.code === 0) return true;
        report.delFailures++;
        await sleep(500 * (attempt + 1));
      }
      return false;
    };
    const forceDelete = async (pod: PodRef) => {
      report.forceDeletes++;
      await http.delete(`${podsPath}/${pod.name}`, { gracePeriodSeconds: 0, preconditions: { uid: pod.uid } })
        .catch((err) => {
          if (!(err instanceof NotFoundError)) throw err;
        });
    };
    const forget = (l: Live) => {
      for (const [ip, x] of live) if (x === l) live.delete(ip);
    };

    /** One pod's life, as kubelet and the runtime live it. */
    const podLife = async (seq: number) => {
      const node = pick(nodes);
      const name = `p${seq}`;
      let body;
      try {
        body = (await http.post<{ metadata: { uid: string } }>(podsPath, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name },
          spec: {
            nodeName: node.name,
            containers: [{ name: "c", image: "registry.invalid/pause:1" }],
            terminationGracePeriodSeconds: 30,
          },
        })).body;
      } catch (err) {
        log(`create pod ${name}: ${(err as Error).message}`);
        await sleep(500);
        return;
      }
      report.pods++;
      const pod: PodRef = { namespace: ns, name, uid: body.metadata.uid };
      const sid = shortId(8);
      const netns = `${ns.slice(-8)}-${sid}`;
      await addNetns(netns);
      netnses.add(netns);
      const l: Live = { pod, node, netns, containerId: `${sid}${shortId(24)}`, conf: conf(node) };
      const r = Math.random();
      // About one pod in ten is force-deleted while its ADD runs.
      const inFlight = r < 0.1;
      const adding = cni("ADD", l);
      if (inFlight) {
        await sleep(Math.random() * 300);
        report.forceDeletesInFlight++;
        await forceDelete(pod);
      }
      const add = await adding;
      let podGone = inFlight;
      if (add.code !== 0) {
        report.addFailures++;
        if (/no free IP/.test(add.stdout)) report.exhausted++;
        // A failed ADD is followed by a DEL.
        await del(l);
      } else {
        const ip = resultAddresses(add)[0]?.split("/")[0];
        const holderNow = ip ? live.get(ip) : undefined;
        if (!ip) report.duplicates.push(`ADD for ${name} returned no address: ${add.stdout}`);
        else if (holderNow) {
          report.duplicates.push(
            `${ip} given to ${name} (uid ${pod.uid}) while ${holderNow.pod.name} (uid ${holderNow.pod.uid}) holds it`,
          );
        } else if (!podGone) live.set(ip, l);
        if (!podGone) {
          await http.patch(`${podsPath}/${name}/status`, {
            status: { phase: "Running", podIP: ip, podIPs: ip ? [{ ip }] : [] },
          }, "merge").catch(() => {});
          await sleep(Math.random() * 500);
        }
        const end = Math.random();
        if (podGone || end < 0.2) {
          // The node "crashed": no DEL ever comes, only the API object goes. The GC must reclaim the address.
          forget(l);
          if (!podGone) await forceDelete(pod);
          podGone = true;
          if (end < 0.05) await del(l); // a late DEL from a runtime that came back
        } else {
          // kubelet: graceful delete, teardown, final delete.
          forget(l);
          await http.delete(`${podsPath}/${name}`, { preconditions: { uid: pod.uid } }).catch(() => {});
          await del(l);
        }
      }
      if (!podGone) {
        await http.delete(`${podsPath}/${name}`, { gracePeriodSeconds: 0, preconditions: { uid: pod.uid } })
          .catch(() => {});
      }
      await delNetns(netns);
      netnses.delete(netns);
    };

    // --- continuous check through the API: no address claimed by the endpoints of two existing pods.
    // A pod counts from Running until its deletion starts: a terminating pod's DEL may already have given its
    // address back while its SpiderEndpoint is still there (an agent killed between the two writes; the DEL is
    // retried, and releases by UID only what is still its own).
    const apiCheck = async () => {
      const pods = (await http.get<{
        items: { metadata: { uid: string; deletionTimestamp?: string }; status?: { phase?: string } }[];
      }>(podsPath)).body.items;
      const uids = new Set(
        pods.filter((p) => p.status?.phase === "Running" && !p.metadata.deletionTimestamp).map((p) =>
          p.metadata.uid
        ),
      );
      const claimed = new Map<string, string>();
      for (const ep of await listEndpoints(http, ns)) {
        const cur = ep.status?.current;
        if (!cur || !uids.has(cur.uid)) continue;
        for (const d of cur.ips ?? []) {
          const ip = d.ipv4?.split("/")[0];
          if (!ip) continue;
          const other = claimed.get(ip);
          if (other) {
            report.duplicates.push(
              `${ip} claimed by the endpoints of live pods ${other} and ${ep.metadata.name}`,
            );
          }
          claimed.set(ip, ep.metadata.name);
        }
      }
    };

    // --- faults
    let running = true;
    const faultLoop = async () => {
      while (running) {
        await sleep(o.faultEveryMs * (0.5 + Math.random()));
        if (!running) break;
        const f = pick(o.faults);
        try {
          if (f === "agent-kill") {
            const n = pick(o.observeAgent ? nodes.slice(1) : nodes);
            killing.add(n.agent.pid);
            const t0 = performance.now();
            await sleep(Math.random() * 1000);
            const agent = await n.restartAgent();
            report.agentRecoveryMs.push(Math.round(performance.now() - t0));
            watchExit(`agent of ${n.name}`, agent);
          } else if (f === "agent-stop") {
            const n = pick(nodes);
            Deno.kill(n.agent.pid, "SIGSTOP");
            await sleep(1000 + Math.random() * 2000);
            Deno.kill(n.agent.pid, "SIGCONT");
          } else if (f === "leader-kill") {
            const h = await holder();
            const leader = controllers.find((c) => c.podName === h && c.running());
            if (!leader) continue;
            killing.add(leader.pid);
            const t0 = performance.now();
            await leader.kill();
            for (let i = 0; i < 200; i++) {
              const now = await holder().catch(() => undefined);
              if (now && now !== leader.podName) break;
              await sleep(100);
            }
            report.leaderTakeoverMs.push(Math.round(performance.now() - t0));
            await startReplica();
          } else if (f === "etcd-pause") {
            const pid = await etcdPid(kubeconfigPath);
            if (!pid) {
              log("etcd of this control plane not found; pause skipped");
              continue;
            }
            etcdStopped = pid;
            Deno.kill(pid, "SIGSTOP");
            await sleep(1000 + Math.random() * 1500);
            Deno.kill(pid, "SIGCONT");
            etcdStopped = undefined;
          }
          report.faults[f]++;
          log(`fault ${f} (${report.ops} ops so far)`);
        } catch (err) {
          log(`fault ${f}: ${(err as Error).message}`);
        }
      }
    };
    const checkLoop = async () => {
      while (running) {
        await sleep(3_000);
        await apiCheck().catch((err) => log(`check: ${(err as Error).message}`));
      }
    };

    let seq = 0;
    let warm: { pid: number; at: ProcessResources; ops: number } | undefined;
    let warmTaken = false;
    const worker = async () => {
      while (report.ops < o.ops && !o.signal?.aborted) {
        if (o.observeAgent && !warmTaken && report.ops >= o.ops / 10) {
          warmTaken = true;
          const pid = nodes[0].agent.pid;
          warm = { pid, at: await resourcesOf(pid), ops: report.ops };
        }
        try {
          await podLife(seq++);
        } catch (err) {
          log(`pod: ${(err as Error).message}`);
        }
      }
    };
    const faults = faultLoop();
    const checks = checkLoop();
    const progress = setInterval(
      () => log(`${report.ops} ops, ${report.pods} pods, ${live.size} live`),
      10_000,
    );
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    clearInterval(progress);
    running = false;
    await faults;
    await checks;
    await apiCheck();

    // --- quiescence: every agent up, a CNI GC on every node (nothing is valid any more), then wait for 0.
    for (const n of nodes) {
      try {
        Deno.kill(n.agent.pid, "SIGCONT");
      } catch { /* gone */ }
    }
    const quiet = performance.now();
    report.recordsAtQuiescence = Object.keys(await records(http, pool)).length;
    for (const n of nodes) {
      const r = await execCni({
        command: "GC",
        plugin: `${DIST_CNI}/spiderpool`,
        conf: {
          cniVersion: "1.1.0",
          name: "chaos",
          type: "spiderpool",
          ipam: { ipam_unix_socket_path: n.agent.socketPath, log_file_path: `${dir}/plugin.log` },
          "cni.dev/valid-attachments": [],
        },
        containerId: "",
        netns: "",
        pod: { namespace: "", name: "", uid: "" },
      });
      if (r.code !== 0) log(`CNI GC on ${n.name}: exit ${r.code} ${r.stdout}`);
    }
    const deadline = quiet + o.reclaimTimeoutMs;
    while (true) {
      const recs = await records(http, pool);
      const p = (await http.get<SpiderIPPool>(`${POOLS}/${pool}`)).body;
      const eps = await listEndpoints(http, ns);
      report.leaks = {
        records: Object.keys(recs).length,
        endpoints: eps.length,
        finalizers: eps.filter((e) => (e.metadata.finalizers ?? []).length > 0).length,
        countMismatch: Math.abs((p.status?.allocatedIPCount ?? 0) - Object.keys(recs).length),
      };
      const l = report.leaks;
      if (l.records + l.endpoints + l.finalizers + l.countMismatch === 0) break;
      if (performance.now() > deadline) {
        log(
          `left after ${o.reclaimTimeoutMs} ms: ${JSON.stringify(recs)} endpoints ${
            eps.map((e) => e.metadata.name)
          }`,
        );
        break;
      }
      await sleep(500);
    }
    report.reclaimMs = Math.round(performance.now() - quiet);
    if (warm && nodes[0].agent.pid === warm.pid) {
      report.agentResources = {
        pid: warm.pid,
        warm: warm.at,
        end: await resourcesOf(warm.pid),
        ops: report.ops - warm.ops,
      };
    }
    report.durationMs = Math.round(performance.now() - started);
    return report;
  } finally {
    await cleanup();
  }
}

async function listEndpoints(http: KubeHttp, ns: string): Promise<SpiderEndpoint[]> {
  return (await http.get<{ items: SpiderEndpoint[] }>(endpointsIn(ns))).body.items;
}

async function records(http: KubeHttp, pool: string) {
  const { body } = await http.get<SpiderIPPool>(`${POOLS}/${pool}`);
  return decodeAllocatedIPs(body.status?.allocatedIPs, pool);
}

/** The report as lines for a person. */
export function formatChaos(r: ChaosReport): string {
  const f = Object.entries(r.faults).map(([k, v]) => `${k} ${v}`).join(", ");
  const stat = (xs: number[]) =>
    xs.length === 0
      ? "-"
      : `mean ${Math.round(xs.reduce((a, b) => a + b, 0) / xs.length)} ms, max ${Math.max(...xs)} ms`;
  return [
    `operations     ${r.ops} CNI calls (${r.adds} ADD, ${r.addFailures} failed of which ${r.exhausted} pool exhausted; ` +
    `${r.dels} DEL, ${r.delFailures} failed and retried) in ${(r.durationMs / 1000).toFixed(1)} s`,
    `pods           ${r.pods} created, ${r.forceDeletes} force-deleted (${r.forceDeletesInFlight} with the ADD in flight)`,
    `faults         ${f}`,
    `duplicates     ${r.duplicates.length}${
      r.duplicates.length ? `: ${r.duplicates.slice(0, 5).join("; ")}` : ""
    }`,
    `leaks          records ${r.leaks.records}, SpiderEndpoints ${r.leaks.endpoints}, finalizers ${r.leaks.finalizers}, ` +
    `allocatedIPCount off by ${r.leaks.countMismatch}`,
    `crashes        ${r.crashes.length}${r.crashes.length ? `: ${r.crashes.join("; ")}` : ""}`,
    `reclaim        ${r.recordsAtQuiescence} records left when the operations stopped; 0 records and endpoints ` +
    `after ${(r.reclaimMs / 1000).toFixed(1)} s`,
    `recovery       leader take-over ${stat(r.leaderTakeoverMs)}; agent back ${stat(r.agentRecoveryMs)}`,
    ...(r.agentResources
      ? [
        `agent n1       over the last ${r.agentResources.ops} operations: RSS ${
          r.agentResources.warm.rssMiB.toFixed(1)
        } → ${
          r.agentResources.end.rssMiB.toFixed(1)
        } MiB, open fds ${r.agentResources.warm.fds} → ${r.agentResources.end.fds}`,
      ]
      : []),
  ].join("\n");
}
