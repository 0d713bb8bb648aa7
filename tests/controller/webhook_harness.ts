// Real `dist/spiderpool controller` processes serving admission webhooks to the test control plane: N replicas
// in one namespace sharing the generated certificate (Secret spiderpool-controller-server-certs) and the leader
// Lease, registered with the real kube-apiserver through `--webhook-url` on loopback. The test cluster is shared
// with other suites, so the webhooks only see objects carrying this set's labels (objectSelector) and the
// elected leader reconciles only pools and subnets carrying them (`--reconcile-selector`), applications and
// SpiderMultusConfigs of one namespace (`--reconcile-namespace`, none by default); objects made
// through `create` carry them and are removed (finalizers stripped) when the set is disposed.
//
// Routing of the replicas:
//   - "shared": one pair of webhook configurations pointing at a round-robin TCP forwarder on loopback that
//     spreads connections over the replicas, as a Service does (TLS passes through untouched);
//   - "per-replica": each replica registers its own configurations, selecting objects labelled with its
//     index, so a test decides which replica admits each object (the concurrent-overlap proof uses this to
//     send the two halves of each pair to two different replicas).

import { ConflictError, type KubeHttp, NotFoundError } from "../../src/kube/client.ts";
import { unregisterWebhooks } from "../../src/controller/webhook/register.ts";
import { freePorts } from "../kube/ports.ts";
import { getCluster, poll, type TestScope } from "../kube/harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
export const CONTROLLER_BIN = `${ROOT}dist/spiderpool`;

/** Label every object of a set carries; its value is the set's id. */
export const SET_LABEL = "spiderpool.spidernet.io/webhook-test";
/** Label choosing the replica in "per-replica" routing. */
export const REPLICA_LABEL = "spiderpool.spidernet.io/webhook-replica";

export const API = "/apis/spiderpool.spidernet.io/v2beta1";

export interface ControllerProcess {
  index: number;
  /** `--pod-name`: its identity in the Lease. */
  podName: string;
  pid: number;
  healthPort: number;
  webhookPort: number;
  metricsPort: number;
  logPath: string;
  exited: Promise<Deno.CommandStatus>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit status. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
  kill(): Promise<void>;
  log(): Promise<string>;
  /** GET /v1/runtime/{startup,readiness,liveness}: status and body. */
  probe(which: "startup" | "readiness" | "liveness"): Promise<[number, string]>;
  /** True until the process exited. */
  running(): boolean;
}

export interface ControllerSetOptions {
  replicas?: number;
  routing?: "shared" | "per-replica";
  /** conf.yml content; absent = defaults. */
  configYaml?: string;
  /**
   * Run the application controller (auto-pools) in the set: it watches applications in every namespace, so it is
   * off unless a test asks for it, and tests with an in-process one see only their own.
   */
  autoPools?: boolean;
  env?: Record<string, string>;
  extraArgs?: string[];
  /** kubeconfig the processes use (e.g. a ServiceAccount's token); default the cluster's admin. */
  kubeconfig?: string;
  /** Namespace the replicas run in; default the scope's. */
  namespace?: string;
  /** Name of the webhook configurations ("shared" routing); default one unique to the set. */
  webhookConfigName?: string;
  /**
   * false: the webhooks see every Spiderpool object of the cluster, not only the set's (for objects a test
   * cannot label, e.g. those `spiderpool init` creates). Only for tests that run alone: files run one at a time.
   */
  webhookSelector?: boolean;
  /** false: the leader reconciles nothing (a test of the webhooks alone); default the set's objects. */
  reconcile?: boolean;
  /**
   * The namespace whose applications (auto-pools) and SpiderMultusConfigs the leader handles
   * (`--reconcile-namespace`); false: every namespace. Default none (a namespace that does not exist), so that
   * the controllers of other tests' worlds work alone.
   */
  reconcileNamespace?: string | false;
}

export interface ControllerSet extends AsyncDisposable {
  id: string;
  /** Name of the webhook configurations ("shared" routing). */
  configName: string;
  /** Namespace the replicas run in (their Secret and admission ledgers live there). */
  namespace: string;
  replicas: ControllerProcess[];
  http: KubeHttp;
  /** Labels an object needs to reach the webhooks (of replica `i` in "per-replica" routing). */
  labels(replica?: number): Record<string, string>;
  /** `obj` with the set's labels added. */
  labelled<T extends { metadata?: { labels?: Record<string, string> } }>(obj: T, replica?: number): T;
  /** POSTs `obj` (labelled) to `collection` through the API server, tracked for removal. */
  create<T>(collection: string, obj: unknown, replica?: number): Promise<T>;
  /** Registers an object path for removal at dispose (finalizers stripped). */
  track(path: string): void;
  /** Removes every tracked object now (webhooks stay registered). */
  cleanup(): Promise<void>;
  /** The Lease's holder now ("" when released, undefined when there is no Lease yet). */
  holder(): Promise<string | undefined>;
  /** Waits until a running replica (other than `not`) holds the Lease; returns it. */
  leader(timeoutMs?: number, not?: ControllerProcess): Promise<ControllerProcess>;
  /** Waits until `replica` answers its readiness probe with 200. */
  ready(replica: ControllerProcess, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `replicas` controller processes in `scope`'s namespace, registered and answering. */
export async function startControllers(
  scope: TestScope,
  opts: ControllerSetOptions = {},
): Promise<ControllerSet> {
  const { http, kubeconfigPath } = await getCluster();
  const n = opts.replicas ?? 1;
  const routing = opts.routing ?? "shared";
  const id = crypto.randomUUID().slice(0, 8);
  const namespace = opts.namespace ?? scope.namespace;
  const sharedConfigName = opts.webhookConfigName ?? `wh-${id}`;
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-controller-" });
  const configPath = `${dir}/conf.yml`;
  const autoPools = opts.autoPools || opts.configYaml?.includes("enableAutoPoolForApplication")
    ? ""
    : "enableAutoPoolForApplication: false\n";
  await Deno.writeTextFile(configPath, (opts.configYaml ?? "") + autoPools);
  const configNames: string[] = [];
  const tracked: string[] = [];
  const replicas: ControllerProcess[] = [];
  let forwarder: Forwarder | undefined;
  const ports = freePorts(3 * n);
  if (routing === "shared") forwarder = startForwarder(ports.slice(0, n).map((_, i) => ports[3 * i + 1]));

  const labels = (replica?: number): Record<string, string> =>
    routing === "per-replica"
      ? { [SET_LABEL]: id, [REPLICA_LABEL]: String(replica ?? 0) }
      : { [SET_LABEL]: id };

  const stopAll = async () => {
    for (const name of configNames) await unregisterWebhooks(http, name);
    await Promise.all(replicas.map((r) => r.stop()));
    forwarder?.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  const cleanup = async () => {
    const paths = tracked.splice(0).reverse();
    for (const path of paths) await forceDelete(http, path);
  };

  try {
    // Replicas start one after another: the first creates the Secret, the others reuse it (they would also
    // agree when started together, through the Secret's optimistic concurrency).
    for (let i = 0; i < n; i++) {
      const [health, webhook, metrics] = ports.slice(3 * i, 3 * i + 3);
      const configName = routing === "per-replica" ? `wh-${id}-${i}` : sharedConfigName;
      if (!configNames.includes(configName)) configNames.push(configName);
      const selector = Object.entries(labels(i)).map(([k, v]) => `${k}=${v}`).join(",");
      // A label value no object carries when the set reconciles nothing.
      const reconciled = `${SET_LABEL}=${opts.reconcile === false ? `${id}-none` : id}`;
      const url = forwarder ? `https://127.0.0.1:${forwarder.port}` : `https://127.0.0.1:${webhook}`;
      replicas.push(
        await startControllerProcess({
          index: i,
          dir,
          kubeconfig: opts.kubeconfig ?? kubeconfigPath,
          args: [
            "--namespace",
            namespace,
            "--pod-name",
            `controller-${id}-${i}`,
            "--config-path",
            configPath,
            "--health-port",
            String(health),
            "--webhook-port",
            String(webhook),
            "--metrics-port",
            String(metrics),
            "--bind-address",
            "127.0.0.1",
            "--webhook-url",
            url,
            "--webhook-config-name",
            configName,
            ...(opts.webhookSelector === false ? [] : ["--webhook-object-selector", selector]),
            "--reconcile-selector",
            reconciled,
            ...(opts.reconcileNamespace === false
              ? []
              : ["--reconcile-namespace", opts.reconcileNamespace ?? `none-${id}`]),
            ...(opts.extraArgs ?? []),
          ],
          // The SpiderCoordinator status controller keeps one coordinator by name: one of the set's own, unless
          // the test names one (the shared cluster's "default" belongs to the tests of spiderpool init).
          env: {
            SPIDERPOOL_ENABLED_METRIC: "true",
            SPIDERPOOL_COORDINATOR_DEAFULT_NAME: `coord-${id}`,
            ...opts.env,
          },
          ports: { health, webhook, metrics },
        }),
      );
    }
  } catch (err) {
    await stopAll();
    throw err;
  }

  const leasePath =
    `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases/spiderpool-controller-leases`;
  const holder = async () => {
    try {
      return (await http.get<{ spec?: { holderIdentity?: string } }>(leasePath)).body.spec?.holderIdentity ??
        "";
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  };

  const set: ControllerSet = {
    id,
    configName: sharedConfigName,
    namespace,
    replicas,
    http,
    labels,
    labelled<T extends { metadata?: { labels?: Record<string, string> } }>(obj: T, replica?: number): T {
      const out = structuredClone(obj);
      out.metadata = { ...out.metadata, labels: { ...out.metadata?.labels, ...labels(replica) } };
      return out;
    },
    async create<T>(collection: string, obj: unknown, replica?: number): Promise<T> {
      const o = set.labelled(
        obj as { metadata?: { name?: string; labels?: Record<string, string> } },
        replica,
      );
      const name = (o as { metadata?: { name?: string } }).metadata?.name ?? "";
      // Tracked before the request: a create that the client sees fail may still have been stored.
      tracked.push(`${collection}/${name}`);
      return (await http.post<T>(collection, o)).body;
    },
    track: (path) => tracked.push(path),
    cleanup,
    holder,
    leader(timeoutMs = 60_000, not) {
      return poll("a controller replica to hold the Lease", timeoutMs, async () => {
        const h = await holder();
        return replicas.find((r) => r !== not && r.running() && r.podName === h);
      });
    },
    async ready(replica, timeoutMs = 60_000) {
      await poll(`controller ${replica.index} to be ready`, timeoutMs, async () => {
        const [code] = await replica.probe("readiness");
        return code === 200 || undefined;
      });
    },
    async stop() {
      // Webhooks go first: the test's objects may be ones the webhooks would refuse to delete (in use).
      try {
        for (const name of configNames) await unregisterWebhooks(http, name);
        await cleanup();
      } finally {
        await stopAll();
      }
    },
    async [Symbol.asyncDispose]() {
      await set.stop();
    },
  };
  return set;
}

/** Deletes `path`, then strips its finalizers so nothing is left terminating for the next test. */
export async function forceDelete(http: KubeHttp, path: string): Promise<void> {
  try {
    await http.delete(path);
  } catch (err) {
    if (err instanceof NotFoundError) return;
    throw err;
  }
  for (let i = 0; i < 10; i++) {
    try {
      await http.patch(path, { metadata: { finalizers: null } });
      return;
    } catch (err) {
      if (err instanceof NotFoundError) return;
      if (!(err instanceof ConflictError)) throw err;
    }
  }
}

interface StartOptions {
  index: number;
  podName?: string;
  dir: string;
  kubeconfig: string;
  args: string[];
  env: Record<string, string>;
  ports: { health: number; webhook: number; metrics: number };
  readyTimeoutMs?: number;
}

/** Starts one `dist/spiderpool controller` and waits for its startup probe. */
export async function startControllerProcess(o: StartOptions): Promise<ControllerProcess> {
  const logPath = `${o.dir}/controller-${o.index}.log`;
  // The shell only redirects output and execs, so the pid is the controller's own; setpriv's parent-death
  // signal ends it if this test process dies without stopping it.
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'exec setpriv --pdeathsig KILL -- "$@" >>"$CONTROLLER_LOG" 2>&1',
      "sh",
      CONTROLLER_BIN,
      "controller",
      "--kubeconfig",
      o.kubeconfig,
      ...o.args,
    ],
    env: { ...o.env, CONTROLLER_LOG: logPath },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let done = false;
  const exited = child.status.then((s) => {
    done = true;
    return s;
  });
  const signal = (sig: Deno.Signal) => {
    if (done) return;
    try {
      Deno.kill(child.pid, sig);
    } catch { /* already gone */ }
  };
  const log = async () => {
    try {
      return await Deno.readTextFile(logPath);
    } catch {
      return "(no log)";
    }
  };
  const probe = async (which: string): Promise<[number, string]> => {
    const res = await fetch(`http://127.0.0.1:${o.ports.health}/v1/runtime/${which}`, {
      signal: AbortSignal.timeout(5_000),
    });
    return [res.status, await res.text()];
  };
  const at = o.args.indexOf("--pod-name");
  const podName = o.podName ?? (at >= 0 ? o.args[at + 1] : "");
  const proc: ControllerProcess = {
    index: o.index,
    podName,
    pid: child.pid,
    healthPort: o.ports.health,
    webhookPort: o.ports.webhook,
    metricsPort: o.ports.metrics,
    logPath,
    exited,
    log,
    probe,
    running: () => !done,
    async kill() {
      signal("SIGKILL");
      await exited;
    },
    async stop(graceMs = 15_000) {
      signal("SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), graceMs));
      const r = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (r === "timeout") await proc.kill();
      return await exited;
    },
  };
  try {
    const outcome = await poll(
      `controller ${o.index} startup probe on port ${o.ports.health}`,
      o.readyTimeoutMs ?? 90_000,
      async () => {
        // A replica that died (a bad flag, a port taken) fails the start at once, not at the poll's deadline.
        if (done) return "exited";
        const res = await fetch(`http://127.0.0.1:${o.ports.health}/v1/runtime/startup`, {
          signal: AbortSignal.timeout(2_000),
        });
        await res.body?.cancel();
        return res.status === 200 ? "started" : undefined;
      },
    );
    if (outcome === "exited") {
      throw new Error(`controller ${o.index} exited during start-up (code ${(await exited).code})`);
    }
  } catch (err) {
    await proc.kill();
    throw new Error(`${(err as Error).message}; controller log:\n${(await log()).slice(-3000)}`);
  }
  return proc;
}

interface Forwarder {
  port: number;
  close(): void;
}

/** A TCP forwarder on loopback that sends each new connection to the next backend port that accepts it. */
function startForwarder(backends: number[]): Forwarder {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let next = 0;
  (async () => {
    for await (const inbound of listener) {
      conns.add(inbound);
      const first = next++;
      (async () => {
        let outbound: Deno.Conn | undefined;
        try {
          // A backend that refuses connections (a replica that was killed) is skipped, as a Service drops an
          // endpoint whose pod is gone.
          for (let i = 0; i < backends.length && !outbound; i++) {
            const port = backends[(first + i) % backends.length];
            outbound = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => undefined);
          }
          if (!outbound) throw new Error("no backend answers");
          conns.add(outbound);
          await Promise.all([
            inbound.readable.pipeTo(outbound.writable).catch(() => {}),
            outbound.readable.pipeTo(inbound.writable).catch(() => {}),
          ]);
        } catch { /* backend down: the API server sees a reset and retries or fails the admission */ }
        for (const c of [inbound, outbound]) {
          if (!c) continue;
          conns.delete(c);
          try {
            c.close();
          } catch { /* already closed by pipeTo */ }
        }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

/** The Status an API request failed with (`kubectl` prints its message after "Error from server"). */
export async function failure(
  p: Promise<unknown>,
): Promise<{ code: number; reason: string; message: string }> {
  try {
    await p;
  } catch (err) {
    const body = (err as { body?: { code?: number; reason?: string; message?: string } }).body;
    if (body && typeof body === "object") {
      return { code: body.code ?? 0, reason: body.reason ?? "", message: body.message ?? "" };
    }
    throw err;
  }
  throw new Error("the request was expected to be refused, but the API server accepted it");
}

/** A random IPv4 /24 in 198.19.0.0/16 and IPv6 /64 in 2001:db8::/32 (groups ≥ 0x100), for disjoint tests. */
export function randomSubnets(): { v4: string; v4prefix: string; v6: string; v6prefix: string } {
  const b = crypto.getRandomValues(new Uint16Array(3));
  const third = 16 + (b[0] % 224);
  const g3 = (0x100 + (b[1] % 0xfe00)).toString(16);
  const g4 = (0x100 + (b[2] % 0xfe00)).toString(16);
  return {
    v4: `198.19.${third}.0/24`,
    v4prefix: `198.19.${third}.`,
    v6: `2001:db8:${g3}:${g4}::/64`,
    v6prefix: `2001:db8:${g3}:${g4}::`,
  };
}
