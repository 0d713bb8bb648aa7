// Fault injection against the whole system: simulated nodes (a network namespace each, with a real
// `dist/spiderpool agent`), two real `dist/spiderpool controller` replicas with the IP GC, the real API server,
// and pods churned like a container runtime does: Pod objects created and deleted (gracefully, with grace 0, or
// force-deleted while their ADD is in flight), CNI ADD and DEL through Debian's `bridge` calling the real
// `spiderpool` plugin in a fresh sandbox namespace, a failed ADD followed by a DEL, DELs retried while the agent
// is down, and a CNI GC at the end. Meanwhile a fault loop SIGKILLs agents (mid-ADD, as ADDs never stop) and
// restarts them, SIGSTOPs an agent for a while, SIGKILLs the controller leader and starts a new replica, pauses
// etcd (SIGSTOP, so the API server stalls) and restarts kube-apiserver (SIGKILL or SIGTERM, down for a moment,
// back on the same port: the run then has a control plane of its own). Once during the run, pods are held until
// the pool refuses an ADD for want of a free address, then all let go (the pool run to exhaustion).
//
// What is checked: every successful ADD's address against the addresses live pods hold (a pod is live from its
// ADD until its teardown begins), and periodically the SpiderEndpoints of existing pods for an address claimed
// twice; at the end, once everything is deleted, that the GC (and the DELs) bring the pool to 0 records and the
// namespace to 0 SpiderEndpoints (and finalizers), with allocatedIPCount equal to the records, within a bound.
// The harness's own API calls ride through the outages like any client (retried while the server is away).

import { decodeAllocatedIPs } from "../../src/api/allocated.ts";
import { API_VERSION, PLURAL } from "../../src/api/constants.ts";
import type { SpiderEndpoint, SpiderIPPool } from "../../src/api/types.ts";
import {
  ConflictError,
  KubeHttp,
  KubeHttpError,
  KubeTimeoutError,
  NotFoundError,
} from "../../src/kube/client.ts";
import { unregisterWebhooks } from "../../src/controller/webhook/register.ts";
import { type ControllerProcess, startControllerProcess } from "../controller/webhook_harness.ts";
import {
  type CniRun,
  DIST_CNI,
  execCni,
  type PodRef,
  resultAddresses,
  spiderpoolBridgeConf,
} from "../e2e/cni.ts";
import { addNetns, delNetns, netnsPath, shortId } from "../e2e/netns.ts";
import { type SimNode, startSimNode } from "../e2e/node_sim.ts";
import { freePorts } from "../kube/ports.ts";
import { type ControlPlane, startControlPlane } from "../kube/controlplane.ts";
import { CRD_DIR } from "../kube/crds.ts";
import { poll, testScope } from "../kube/harness.ts";

const POOLS = `/apis/${API_VERSION}/${PLURAL.ippool}`;
const endpointsIn = (ns: string) => `/apis/${API_VERSION}/namespaces/${ns}/${PLURAL.endpoint}`;
const LEASE = (ns: string) =>
  `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/spiderpool-controller-leases`;

export const FAULTS = ["agent-kill", "agent-stop", "leader-kill", "etcd-pause", "apiserver-restart"] as const;
export type Fault = typeof FAULTS[number];

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
  /** Injected in shuffled rounds, so every kind comes up once per round. "apiserver-restart" makes the run
   * start a control plane of its own (the shared one of the test run must not go away under other tests). */
  faults: readonly Fault[];
  /** Least time between two injections of a kind (a kind whose gap has not passed sits out its round), e.g.
   * to restart kube-apiserver less often than agents are killed in a long run. */
  minGapMs?: Partial<Record<Fault, number>>;
  /** Keep churning past `ops` (for at most 5 more minutes) until every fault kind was injected once. */
  everyFault?: boolean;
  /** Hold pods until the pool refuses an ADD for want of an address, once `exhaustAt` of the operations ran
   * (e.g. 0.4); the churn goes on meanwhile. */
  exhaustAt?: number;
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

/** One injected fault: how long the disturbance lasted and how long until ADDs worked again. */
export interface FaultRecovery {
  /** From the injection until the fault was lifted: the process back (kills), SIGCONT (pauses), the Lease held
   * by another replica (leader kill), /readyz ok (API server restart). */
  outageMs: number;
  /** From the lift until the first successful ADD begun after it (on the affected node for agent faults);
   * absent when no such ADD came before the operations stopped. */
  firstAddMs?: number;
  /** How it was injected, where that varies (the API server's signal). */
  via?: string;
}

/** The pool run to exhaustion (exhaustAt). */
export interface ExhaustionReport {
  /** Pods held (ADD succeeded) when the pool refused. */
  held: number;
  /** Records the pool held right after the refusal. */
  recordsAtRefusal: number;
  /** The refusal the plugin returned. */
  message: string;
  /** From letting the held pods go until the next successful ADD. */
  addAfterReleaseMs?: number;
}

export interface ChaosReport {
  ops: number;
  adds: number;
  addFailures: number;
  /** ADD failures that said the pool has no free address. */
  exhausted: number;
  /** ADDs repeated with a new sandbox after a failed ADD and its DEL, as kubelet does. */
  addRetries: number;
  /** Failed ADDs by CNI error code (the plugin's JSON `code`; "exit N" when it printed none). */
  addFailureCodes: Record<string, number>;
  /** The first failed ADD while kube-apiserver was down, as the runtime saw it. */
  addFailureDuringApiOutage?: string;
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
  /** Per fault kind, per injection. */
  recovery: Record<Fault, FaultRecovery[]>;
  /** Pool size, the most records seen in it (sampled every second) and how many samples were at most one
   * address short of full. */
  pool: { size: number; peakRecords: number; samples: number; nearFull: number };
  exhaustion?: ExhaustionReport;
  /** How the run's API server was restarted: by signal. */
  apiServerRestarts: { SIGKILL: number; SIGTERM: number };
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

/** The calls the harness makes; `patient` retries them while the API server is away. */
type Api = Pick<KubeHttp, "get" | "post" | "patch" | "delete">;

/** Whether a failed call may succeed when repeated: no answer at all, a timeout, or a 5xx/429 answer. */
function transient(err: unknown): boolean {
  if (err instanceof KubeTimeoutError) return true;
  if (err instanceof KubeHttpError) return err.status >= 500 || err.status === 429;
  // fetch's own failures (connection refused or reset) are TypeErrors.
  return err instanceof TypeError;
}

/** `http` with each call repeated (with backoff, for up to `budgetMs`) while it fails transiently. A repeated
 * POST or DELETE may meet its own earlier success: callers treat AlreadyExists and NotFound accordingly. */
function patient(http: KubeHttp, budgetMs = 180_000): Api {
  const retry = async <T>(call: () => Promise<T>): Promise<T> => {
    const deadline = performance.now() + budgetMs;
    for (let attempt = 1;; attempt++) {
      try {
        return await call();
      } catch (err) {
        if (!transient(err) || performance.now() > deadline) throw err;
        await sleep(Math.min(2_000, 100 * 2 ** attempt));
      }
    }
  };
  return {
    get: (path, opts) => retry(() => http.get(path, opts)),
    post: (path, body, opts) => retry(() => http.post(path, body, opts)),
    patch: (path, body, type, opts) => retry(() => http.patch(path, body, type, opts)),
    delete: (path, body, opts) => retry(() => http.delete(path, body, opts)),
  };
}

/** Where a run happens: a namespace of the shared test cluster, or a control plane of its own. */
interface World extends AsyncDisposable {
  http: KubeHttp;
  kubeconfigPath: string;
  ns: string;
  track(path: string): void;
  /** Only with a control plane of its own. */
  cp?: ControlPlane;
}

async function openWorld(own: boolean, log: (m: string) => void): Promise<World> {
  if (!own) {
    const scope = await testScope("chaos");
    return {
      http: scope.cluster.http,
      kubeconfigPath: scope.cluster.kubeconfigPath,
      ns: scope.namespace,
      track: scope.track,
      [Symbol.asyncDispose]: () => scope[Symbol.asyncDispose](),
    };
  }
  const cp = await startControlPlane({ crdDir: CRD_DIR, log: (m) => log(`control plane: ${m}`) });
  const http = new KubeHttp({
    server: cp.server,
    caPem: cp.caPem,
    authorization: () => Promise.resolve(`Bearer ${cp.token}`),
  });
  const dispose = async () => {
    http.close();
    await cp.stop();
  };
  try {
    const ns = `chaos-${crypto.randomUUID().slice(0, 8)}`;
    await http.post("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    // Pods need the namespace's default ServiceAccount, which kube-controller-manager creates.
    await poll(`ServiceAccount ${ns}/default`, 60_000, async () => {
      try {
        return await http.get(`/api/v1/namespaces/${ns}/serviceaccounts/default`);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    });
    // Everything goes with the control plane.
    return {
      http,
      kubeconfigPath: cp.kubeconfigPath,
      ns,
      track: () => {},
      cp,
      [Symbol.asyncDispose]: dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}

/** Runs one chaos session in a fresh test namespace and returns what it measured; cleans up everything. */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => {});
  const world = await openWorld(o.faults.includes("apiserver-restart"), log);
  const { http, kubeconfigPath, ns } = world;
  const api = patient(http);
  const id = shortId(8);
  const label = { "spiderpool.spidernet.io/chaos": id };
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-chaos-" });
  const report: ChaosReport = {
    ops: 0,
    adds: 0,
    addFailures: 0,
    exhausted: 0,
    addRetries: 0,
    addFailureCodes: {},
    dels: 0,
    delFailures: 0,
    pods: 0,
    forceDeletes: 0,
    forceDeletesInFlight: 0,
    faults: Object.fromEntries(FAULTS.map((f) => [f, 0])) as Record<Fault, number>,
    duplicates: [],
    leaks: { records: 0, endpoints: 0, finalizers: 0, countMismatch: 0 },
    reclaimMs: 0,
    crashes: [],
    leaderTakeoverMs: [],
    agentRecoveryMs: [],
    recovery: Object.fromEntries(FAULTS.map((f) => [f, []])) as unknown as Record<Fault, FaultRecovery[]>,
    pool: { size: o.poolSize, peakRecords: 0, samples: 0, nearFull: 0 },
    apiServerRestarts: { SIGKILL: 0, SIGTERM: 0 },
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
  /** Set while kube-apiserver is down or not yet ready again. */
  let apiDown = false;
  const started = performance.now();

  const watchExit = (what: string, p: { pid: number; exited: Promise<Deno.CommandStatus> }) => {
    void p.exited.then((s) => {
      if (!killing.has(p.pid) && !stopping) {
        report.crashes.push(`${what} (pid ${p.pid}) exited with ${s.code}`);
      }
    });
  };
  let stopping = false;
  void world.cp?.died.then((m) => {
    if (!stopping) report.crashes.push(`control plane: ${m}`);
  });

  /** Faults waiting for the first successful ADD begun after they were lifted. */
  const awaitingAdd: { lifted: number; node?: SimNode; rec: FaultRecovery }[] = [];
  const addSucceeded = (node: SimNode, begun: number) => {
    for (let i = awaitingAdd.length - 1; i >= 0; i--) {
      const w = awaitingAdd[i];
      if (begun < w.lifted || (w.node && w.node !== node)) continue;
      w.rec.firstAddMs = Math.round(performance.now() - w.lifted);
      awaitingAdd.splice(i, 1);
    }
  };
  const recovered = (f: Fault, injected: number, node?: SimNode, via?: string) => {
    const lifted = performance.now();
    const rec: FaultRecovery = { outageMs: Math.round(lifted - injected), ...(via ? { via } : {}) };
    report.recovery[f].push(rec);
    awaitingAdd.push({ lifted, node, rec });
  };

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
      return (await api.get<{ spec?: { holderIdentity?: string } }>(LEASE(ns))).body.spec?.holderIdentity;
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
    if (!world.cp) {
      await http.delete(`/api/v1/namespaces/${ns}/pods`, { gracePeriodSeconds: 0 }).catch(() => {});
      const eps = await listEndpoints(http, ns).catch(() => []);
      for (const ep of eps) {
        await http.patch(`${endpointsIn(ns)}/${ep.metadata.name}`, { metadata: { finalizers: null } })
          .catch(() => {});
      }
    }
    if (Deno.env.get("SPIDERPOOL_CHAOS_KEEP") === "1") console.error(`chaos: logs kept in ${dir}`);
    else await Deno.remove(dir, { recursive: true }).catch(() => {});
    try {
      await world[Symbol.asyncDispose]();
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
    world.track(`${POOLS}/${pool}`);
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
      const deadline = performance.now() + 60_000;
      for (let attempt = 1;; attempt++) {
        const r = await cni("DEL", l);
        if (r.code === 0) return true;
        report.delFailures++;
        if (performance.now() > deadline) return false;
        await sleep(Math.min(3_000, 500 * attempt));
      }
    };
    const forceDelete = async (pod: PodRef) => {
      report.forceDeletes++;
      await api.delete(`${podsPath}/${pod.name}`, { gracePeriodSeconds: 0, preconditions: { uid: pod.uid } })
        .catch((err) => {
          if (!(err instanceof NotFoundError)) throw err;
        });
    };
    const forget = (l: Live) => {
      for (const [ip, x] of live) if (x === l) live.delete(ip);
    };
    /** A fresh pod sandbox (network namespace and container ID), as the runtime makes for each attempt. */
    const sandbox = async (pod: PodRef, node: SimNode): Promise<Live> => {
      const sid = shortId(8);
      const netns = `${ns.slice(-8)}-${sid}`;
      await addNetns(netns);
      netnses.add(netns);
      return { pod, node, netns, containerId: `${sid}${shortId(24)}`, conf: conf(node) };
    };
    const dropSandbox = async (l: Live) => {
      await delNetns(l.netns);
      netnses.delete(l.netns);
    };
    const createPod = async (name: string, node: SimNode): Promise<string> => {
      try {
        return (await api.post<{ metadata: { uid: string } }>(podsPath, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name },
          spec: {
            nodeName: node.name,
            containers: [{ name: "c", image: "registry.invalid/pause:1" }],
            terminationGracePeriodSeconds: 30,
          },
        })).body.metadata.uid;
      } catch (err) {
        // A repeated create whose first attempt went through before the server went away.
        if (!(err instanceof ConflictError)) throw err;
        return (await api.get<{ metadata: { uid: string } }>(`${podsPath}/${name}`)).body.metadata.uid;
      }
    };
    const failedAdd = (add: CniRun) => {
      report.addFailures++;
      const code = typeof add.json?.code === "number" ? `code ${add.json.code}` : `exit ${add.code}`;
      report.addFailureCodes[code] = (report.addFailureCodes[code] ?? 0) + 1;
      if (apiDown && !report.addFailureDuringApiOutage) {
        report.addFailureDuringApiOutage = `${code}: ${String(add.json?.msg ?? add.stdout).slice(0, 300)} (${
          String(add.json?.details ?? "").slice(0, 300)
        })`;
      }
      const exhausted = /no free IP/.test(add.stdout);
      if (exhausted) report.exhausted++;
      return exhausted;
    };

    type AddOutcome = { kind: "ok" } | { kind: "exhausted"; message: string } | { kind: "failed" };
    interface LifeOptions {
      /** Keep the pod running until this settles (instead of a moment). */
      hold?: Promise<void>;
      /** Told how the pod's ADD ended, once. */
      onAdd?: (outcome: AddOutcome) => void;
      /** Sandboxes to try; default 3 (kubelet retries a failed sandbox with a new one). */
      attempts?: number;
    }

    /** One pod's life, as kubelet and the runtime live it. */
    const podLife = async (seq: number, lo: LifeOptions = {}) => {
      const node = pick(nodes);
      const name = `p${seq}`;
      let uid: string;
      try {
        uid = await createPod(name, node);
      } catch (err) {
        log(`create pod ${name}: ${(err as Error).message}`);
        lo.onAdd?.({ kind: "failed" });
        await sleep(500);
        return;
      }
      report.pods++;
      const pod: PodRef = { namespace: ns, name, uid };
      // About one pod in ten is force-deleted while its first ADD runs.
      const inFlight = !lo.hold && Math.random() < 0.1;
      let podGone = false;
      let l: Live | undefined;
      let add: CniRun | undefined;
      let outcome: AddOutcome = { kind: "failed" };
      const attempts = lo.attempts ?? 3;
      for (let attempt = 1; attempt <= attempts; attempt++) {
        if (attempt > 1) {
          report.addRetries++;
          await sleep(1_000 * (attempt - 1) + Math.random() * 500);
        }
        l = await sandbox(pod, node);
        const begun = performance.now();
        const adding = cni("ADD", l);
        if (inFlight && attempt === 1) {
          await sleep(Math.random() * 300);
          report.forceDeletesInFlight++;
          await forceDelete(pod);
          podGone = true;
        }
        add = await adding;
        if (add.code === 0) {
          addSucceeded(node, begun);
          outcome = { kind: "ok" };
          break;
        }
        outcome = failedAdd(add)
          ? { kind: "exhausted", message: String(add.json?.msg ?? add.stdout).slice(0, 500) }
          : { kind: "failed" };
        // A failed ADD is followed by a DEL; the sandbox goes, and a new one is tried while the pod exists.
        await del(l);
        await dropSandbox(l);
        l = undefined;
        if (podGone) break;
      }
      lo.onAdd?.(outcome);
      if (l && add?.code === 0) {
        const ip = resultAddresses(add)[0]?.split("/")[0];
        const holderNow = ip ? live.get(ip) : undefined;
        if (!ip) report.duplicates.push(`ADD for ${name} returned no address: ${add.stdout}`);
        else if (holderNow) {
          report.duplicates.push(
            `${ip} given to ${name} (uid ${pod.uid}) while ${holderNow.pod.name} (uid ${holderNow.pod.uid}) holds it`,
          );
        } else if (!podGone) live.set(ip, l);
        if (!podGone) {
          await api.patch(`${podsPath}/${name}/status`, {
            status: { phase: "Running", podIP: ip, podIPs: ip ? [{ ip }] : [] },
          }, "merge").catch(() => {});
          await (lo.hold ?? sleep(Math.random() * 500));
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
          await api.delete(`${podsPath}/${name}`, { preconditions: { uid: pod.uid } }).catch(() => {});
          await del(l);
        }
        await dropSandbox(l);
      }
      if (!podGone) {
        await api.delete(`${podsPath}/${name}`, { gracePeriodSeconds: 0, preconditions: { uid: pod.uid } })
          .catch(() => {});
      }
    };

    // --- continuous check through the API: no address claimed by the endpoints of two existing pods.
    // A pod counts from Running until its deletion starts: a terminating pod's DEL may already have given its
    // address back while its SpiderEndpoint is still there (an agent killed between the two writes; the DEL is
    // retried, and releases by UID only what is still its own).
    const apiCheck = async () => {
      const pods = (await api.get<{
        items: { metadata: { uid: string; deletionTimestamp?: string }; status?: { phase?: string } }[];
      }>(podsPath)).body.items;
      const uids = new Set(
        pods.filter((p) => p.status?.phase === "Running" && !p.metadata.deletionTimestamp).map((p) =>
          p.metadata.uid
        ),
      );
      const claimed = new Map<string, string>();
      for (const ep of await listEndpoints(api, ns)) {
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

    // --- faults, in shuffled rounds: every kind once per round.
    let running = true;
    let round: Fault[] = [];
    const lastAt: Partial<Record<Fault, number>> = {};
    const nextFault = (): Fault => {
      if (round.length === 0) {
        const now = performance.now();
        round = o.faults.filter((f) => lastAt[f] === undefined || now - lastAt[f]! >= (o.minGapMs?.[f] ?? 0));
        if (round.length === 0) round = [...o.faults];
        for (let i = round.length - 1; i > 0; i--) {
          const j = Math.floor(Math.random() * (i + 1));
          [round[i], round[j]] = [round[j], round[i]];
        }
      }
      return round.pop()!;
    };
    const faultLoop = async () => {
      while (running) {
        await sleep(o.faultEveryMs * (0.5 + Math.random()));
        if (!running) break;
        const f = nextFault();
        try {
          const t0 = performance.now();
          if (f === "agent-kill") {
            const n = pick(o.observeAgent ? nodes.slice(1) : nodes);
            killing.add(n.agent.pid);
            await sleep(Math.random() * 1000);
            const agent = await n.restartAgent();
            report.agentRecoveryMs.push(Math.round(performance.now() - t0));
            watchExit(`agent of ${n.name}`, agent);
            recovered(f, t0, n);
          } else if (f === "agent-stop") {
            const n = pick(nodes);
            Deno.kill(n.agent.pid, "SIGSTOP");
            await sleep(1000 + Math.random() * 2000);
            Deno.kill(n.agent.pid, "SIGCONT");
            recovered(f, t0, n);
          } else if (f === "leader-kill") {
            const h = await holder();
            const leader = controllers.find((c) => c.podName === h && c.running());
            if (!leader) {
              round.push(f); // no leader right now: try again next time
              continue;
            }
            killing.add(leader.pid);
            const killed = performance.now();
            await leader.kill();
            for (let i = 0; i < 200; i++) {
              const now = await holder().catch(() => undefined);
              if (now && now !== leader.podName) break;
              await sleep(100);
            }
            report.leaderTakeoverMs.push(Math.round(performance.now() - killed));
            recovered(f, killed);
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
            recovered(f, t0);
          } else if (f === "apiserver-restart") {
            const signal = pick(["SIGKILL", "SIGTERM"] as const);
            apiDown = true;
            try {
              await world.cp!.restartApiServer({ signal, downMs: 1000 + Math.random() * 2000 });
            } finally {
              apiDown = false;
            }
            report.apiServerRestarts[signal]++;
            recovered(f, t0, undefined, signal);
          }
          report.faults[f]++;
          lastAt[f] = performance.now();
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
    /** How full the pool gets: records counted every second. */
    const poolLoop = async () => {
      while (running) {
        await sleep(1_000);
        const n = await records(http, pool).then((r) => Object.keys(r).length).catch(() => undefined);
        if (n === undefined) continue;
        report.pool.samples++;
        report.pool.peakRecords = Math.max(report.pool.peakRecords, n);
        if (n >= o.poolSize - 1) report.pool.nearFull++;
      }
    };

    let seq = 0;
    /** Pods are started and held one after another until the pool refuses one; then all are let go. */
    const exhaust = async () => {
      let release!: () => void;
      const hold = new Promise<void>((r) => release = r);
      const lives: Promise<void>[] = [];
      let held = 0;
      let refusal: string | undefined;
      const deadline = performance.now() + 300_000;
      while (!refusal && lives.length < o.poolSize * 4 && performance.now() < deadline) {
        let told!: (x: AddOutcome) => void;
        const outcome = new Promise<AddOutcome>((r) => told = r);
        const life = podLife(seq++, { hold, onAdd: told, attempts: 1 })
          .catch((err) => log(`held pod: ${(err as Error).message}`));
        lives.push(life);
        // A pod whose life failed before its ADD never tells.
        const x = await Promise.race([outcome, life.then((): AddOutcome => ({ kind: "failed" }))]);
        if (x.kind === "ok") held++;
        else if (x.kind === "exhausted") refusal = x.message;
      }
      if (refusal) {
        const recordsAtRefusal = await records(api, pool).then((r) => Object.keys(r).length);
        report.exhaustion = { held, recordsAtRefusal, message: refusal };
        log(`pool exhausted with ${held} pods held: ${refusal}`);
      } else {
        log(`the pool never refused an ADD (${held} pods held)`);
      }
      await sleep(1_000);
      const released = performance.now();
      release();
      await Promise.all(lives);
      if (report.exhaustion) {
        // The next ADD after the release that succeeds (the churn goes on meanwhile).
        const rec: FaultRecovery = { outageMs: 0 };
        awaitingAdd.push({ lifted: released, rec });
        for (let i = 0; i < 600 && rec.firstAddMs === undefined && running; i++) await sleep(100);
        const i = awaitingAdd.findIndex((w) => w.rec === rec);
        if (i >= 0) awaitingAdd.splice(i, 1);
        report.exhaustion.addAfterReleaseMs = rec.firstAddMs;
      }
    };

    let warm: { pid: number; at: ProcessResources; ops: number } | undefined;
    let warmTaken = false;
    let exhaustTaken = false;
    let overtime: number | undefined;
    const missingFault = () => o.faults.some((f) => report.faults[f] === 0);
    const more = () => {
      if (o.signal?.aborted) return false;
      if (report.ops < o.ops) return true;
      if (!o.everyFault || !missingFault()) return false;
      overtime ??= performance.now() + 300_000;
      return performance.now() < overtime;
    };
    const worker = async () => {
      while (more()) {
        if (o.observeAgent && !warmTaken && report.ops >= o.ops / 10) {
          warmTaken = true;
          const pid = nodes[0].agent.pid;
          warm = { pid, at: await resourcesOf(pid), ops: report.ops };
        }
        try {
          if (o.exhaustAt !== undefined && !exhaustTaken && report.ops >= o.ops * o.exhaustAt) {
            exhaustTaken = true;
            await exhaust();
          } else {
            await podLife(seq++);
          }
        } catch (err) {
          log(`pod: ${(err as Error).message}`);
        }
      }
    };
    const faults = faultLoop();
    const checks = checkLoop();
    const fill = poolLoop();
    const progress = setInterval(
      () => log(`${report.ops} ops, ${report.pods} pods, ${live.size} live`),
      10_000,
    );
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    clearInterval(progress);
    running = false;
    await faults;
    await checks;
    await fill;
    await apiCheck();

    // --- quiescence: every agent up, a CNI GC on every node (nothing is valid any more), then wait for 0.
    for (const n of nodes) {
      try {
        Deno.kill(n.agent.pid, "SIGCONT");
      } catch { /* gone */ }
    }
    const quiet = performance.now();
    report.recordsAtQuiescence = Object.keys(await records(api, pool)).length;
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
      const recs = await records(api, pool);
      const p = (await api.get<SpiderIPPool>(`${POOLS}/${pool}`)).body;
      const eps = await listEndpoints(api, ns);
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

async function listEndpoints(http: Api, ns: string): Promise<SpiderEndpoint[]> {
  return (await http.get<{ items: SpiderEndpoint[] }>(endpointsIn(ns))).body.items;
}

async function records(http: Api, pool: string) {
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
  const codes = Object.entries(r.addFailureCodes).map(([k, v]) => `${k}: ${v}`).join(", ");
  const outage: Record<Fault, string> = {
    "agent-kill": "agent killed → new agent serving",
    "agent-stop": "agent stopped (SIGSTOP → SIGCONT)",
    "leader-kill": "leader killed → Lease held by another replica",
    "etcd-pause": "etcd paused (SIGSTOP → SIGCONT)",
    "apiserver-restart": "kube-apiserver signalled → /readyz ok again",
  };
  // One line per kind, and per way of injecting it where that varies (the API server's signal).
  const recovery = FAULTS.flatMap((k) => {
    const vias = [...new Set(r.recovery[k].map((x) => x.via))];
    return vias.map((via) => {
      const xs = r.recovery[k].filter((x) => x.via === via);
      const firsts = xs.flatMap((x) => x.firstAddMs === undefined ? [] : [x.firstAddMs]);
      const what = via ? outage[k].replace("signalled", via) : outage[k];
      return `  ${k.padEnd(18)} ×${xs.length}: ${what} ${
        stat(xs.map((x) => x.outageMs))
      }; then first ADD ok ` +
        `${stat(firsts)}${firsts.length < xs.length ? ` (${xs.length - firsts.length} without)` : ""}`;
    });
  });
  const e = r.exhaustion;
  return [
    `operations     ${r.ops} CNI calls (${r.adds} ADD, ${r.addFailures} failed of which ${r.exhausted} pool exhausted, ` +
    `${r.addRetries} retried with a new sandbox; ${r.dels} DEL, ${r.delFailures} failed and retried) in ` +
    `${(r.durationMs / 1000).toFixed(1)} s`,
    `ADD failures   ${codes || "none"}`,
    ...(r.addFailureDuringApiOutage ? [`  during an API server outage: ${r.addFailureDuringApiOutage}`] : []),
    `pods           ${r.pods} created, ${r.forceDeletes} force-deleted (${r.forceDeletesInFlight} with the ADD in flight)`,
    `faults         ${f}; API server restarts by SIGKILL ${r.apiServerRestarts.SIGKILL}, SIGTERM ${r.apiServerRestarts.SIGTERM}`,
    `pool           ${r.pool.size} addresses; peak ${r.pool.peakRecords} records; ${r.pool.nearFull} of ${r.pool.samples} ` +
    `one-second samples at most one address short of full`,
    e
      ? `exhaustion     refused with ${e.held} pods held and ${e.recordsAtRefusal} records: "${e.message}"; ` +
        `next ADD ok ${
          e.addAfterReleaseMs === undefined ? "-" : `${e.addAfterReleaseMs} ms`
        } after the release`
      : `exhaustion     not reached`,
    `duplicates     ${r.duplicates.length}${
      r.duplicates.length ? `: ${r.duplicates.slice(0, 5).join("; ")}` : ""
    }`,
    `leaks          records ${r.leaks.records}, SpiderEndpoints ${r.leaks.endpoints}, finalizers ${r.leaks.finalizers}, ` +
    `allocatedIPCount off by ${r.leaks.countMismatch}`,
    `crashes        ${r.crashes.length}${r.crashes.length ? `: ${r.crashes.join("; ")}` : ""}`,
    `reclaim        ${r.recordsAtQuiescence} records left when the operations stopped; 0 records and endpoints ` +
    `after ${(r.reclaimMs / 1000).toFixed(1)} s`,
    `recovery       leader take-over ${stat(r.leaderTakeoverMs)}; agent back ${stat(r.agentRecoveryMs)}`,
    ...recovery,
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
