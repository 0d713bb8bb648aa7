// Starts and stops a real Kubernetes control plane (etcd 3.6, kube-apiserver, kube-controller-manager) for the
// integration tests: PKI from openssl, loopback ports, logs and state in one temp dir. Also a CLI
// (`start --state-file F`) that the test script runs in the background for the whole test run.

import { parseArgs } from "node:util";
import { KubeHttp } from "../../src/kube/client.ts";
import { CRD_DIR, installCrds, MULTUS_CRD_DIR } from "./crds.ts";
import { freePorts } from "./ports.ts";

export interface ControlPlaneOptions {
  /** Directory holding kube-apiserver, kube-controller-manager and etcd; default: $SPIDERPOOL_KUBE_BIN, else
   * the last line printed by scripts/kube-build.sh (a cache hit is instant, a cold build takes minutes). */
  binDir?: string;
  /** Run kube-controller-manager (garbage collection, Deployments, ...). Default true. */
  controllerManager?: boolean;
  /** CRDs (a directory of YAML files, e.g. crds/) to install before kube-controller-manager starts: its garbage
   * collector then watches their objects from the start instead of after its 30 s rediscovery. */
  crdDir?: string;
  /** Bound on each component's readiness wait. Default 120 s: a first start on 2 busy cores is slow. */
  readyTimeoutMs?: number;
  /** Progress messages; default: stderr. */
  log?: (message: string) => void;
}

export interface ControlPlane {
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** Bearer token of a `system:masters` user. */
  token: string;
  caPem: string;
  /** Temp dir with PKI, etcd data, kubeconfig and one log file per component. */
  dir: string;
  pids: Record<string, number>;
  /** Resolves with a message if a component exits on its own (a crash); never resolves otherwise. */
  died: Promise<string>;
  /** Stops exactly the processes this instance started and removes `dir` unless it should be kept. */
  stop(): Promise<void>;
  /** Synchronous last resort for `unload` handlers, which cannot await: SIGKILLs the components and removes
   * `dir` under the same conditions as stop(). */
  kill(): void;
  /**
   * Ends kube-apiserver and starts it again on the same port with the same etcd, PKI and token, as a crash
   * (SIGKILL, the default) or a rolling restart (SIGTERM) would; resolves once /readyz answers ok again. This
   * exit is not a death (`died` stays pending); a restart that fails to come up is one. Calls are serialised.
   */
  restartApiServer(opts?: RestartOptions): Promise<RestartTimes>;
}

export interface RestartOptions {
  /** Default SIGKILL. */
  signal?: "SIGKILL" | "SIGTERM";
  /** How long the API server stays down after it exited, before the new process starts. Default 0. */
  downMs?: number;
}

export interface RestartTimes {
  /** From the signal until the old process had exited. */
  exitMs: number;
  /** From the signal until the new process answered /readyz with ok. */
  readyMs: number;
  /** pid of the new kube-apiserver. */
  pid: number;
}

const SERVICE_CLUSTER_IP_RANGE = "198.18.128.0/20";
const SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc";
const STOP_GRACE_MS = 10_000;
const REPO_ROOT = new URL("../../", import.meta.url).pathname;

export interface Component {
  name: string;
  child: Deno.ChildProcess;
  logPath: string;
  exited: Promise<Deno.CommandStatus>;
  done: boolean;
}

/** Raised when a component lost the race for a port picked by freePorts(); the start is simply retried. */
class PortTakenError extends Error {}

const START_ATTEMPTS = 3;

/** Starts etcd, kube-apiserver and (by default) kube-controller-manager; resolves once all are healthy. */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = opts.log ?? ((m: string) => console.error(`controlplane: ${m}`));
  const binDir = opts.binDir ?? Deno.env.get("SPIDERPOOL_KUBE_BIN") ?? await buildBinaries();
  for (const b of ["etcd", "kube-apiserver", "kube-controller-manager"]) {
    try {
      await Deno.stat(`${binDir}/${b}`);
    } catch {
      throw new Error(`${binDir}/${b} not found; run "bash scripts/kube-build.sh" and pass its bin dir`);
    }
  }
  for (let attempt = 1;; attempt++) {
    try {
      return await startOnce(binDir, opts, log);
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt === START_ATTEMPTS) throw err;
      log(`${err.message}; retrying with other ports`);
    }
  }
}

async function startOnce(
  binDir: string,
  opts: ControlPlaneOptions,
  log: (message: string) => void,
): Promise<ControlPlane> {
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  const withControllerManager = opts.controllerManager ?? true;
  const dir = await Deno.makeTempDir({ prefix: "spiderpool-kube-" });
  const components: Component[] = [];
  let failed = false;
  let stopped = false;
  let reportDeath: (message: string) => void = () => {};
  const died = new Promise<string>((r) => reportDeath = r);
  /** Components ended on purpose by restartApiServer(): their exit is not a crash. */
  const expectedExit = new Set<Component>();
  const onExit = (c: Component, status: Deno.CommandStatus) => {
    if (stopped || expectedExit.has(c)) return;
    failed = true;
    reportDeath(`${c.name} (pid ${c.child.pid}) exited with code ${status.code}; see ${c.logPath}`);
  };

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Reverse start order: the controller-manager and apiserver would otherwise log storms about etcd going away.
    for (const c of [...components].reverse()) await stopComponent(c);
    if (keepDir()) {
      log(`kept ${dir} (logs: ${components.map((c) => c.logPath).join(", ")})`);
    } else {
      await Deno.remove(dir, { recursive: true });
    }
  };

  let portTaken = false;
  const keepDir = () => !portTaken && (failed || Boolean(Deno.env.get("SPIDERPOOL_KEEP_KUBE_DIR")));
  const kill = () => {
    if (stopped) return;
    stopped = true;
    for (const c of components) {
      if (c.done) continue;
      try {
        c.child.kill("SIGKILL");
      } catch { /* already gone */ }
    }
    if (keepDir()) return;
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch (err) {
      // A component killed a moment ago may still be writing into it.
      console.error(`controlplane: could not remove ${dir}: ${errorMessage(err)}`);
    }
  };

  try {
    const pki = await makePki(dir);
    const token = crypto.randomUUID().replaceAll("-", "");
    await Deno.writeTextFile(`${dir}/tokens.csv`, `${token},admin,admin,"system:masters"\n`);
    const [etcdClient, etcdPeer, apiPort, kcmPort] = freePorts(4);
    const server = `https://127.0.0.1:${apiPort}`;

    const etcdUrl = `http://127.0.0.1:${etcdClient}`;
    const etcd = spawn(dir, components, "etcd", `${binDir}/etcd`, [
      "--name=test",
      `--data-dir=${dir}/etcd`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=test=http://127.0.0.1:${etcdPeer}`,
      // Test data is thrown away: fsync only costs time.
      "--unsafe-no-fsync",
      "--log-level=warn",
    ], onExit);
    await waitHealthy(
      etcd,
      `${etcdUrl}/health`,
      undefined,
      readyTimeoutMs,
      (body) => body.includes('"true"'),
    );
    log(`etcd ready at ${etcdUrl}`);

    const apiArgs = [
      `--etcd-servers=${etcdUrl}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--cert-dir=${dir}/apiserver-certs`,
      `--tls-cert-file=${pki.servingCert}`,
      `--tls-private-key-file=${pki.servingKey}`,
      `--client-ca-file=${pki.caCert}`,
      `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
      `--service-account-key-file=${pki.saKey}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      `--token-auth-file=${dir}/tokens.csv`,
      "--authorization-mode=RBAC",
      `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
      // No real nodes serve the kubernetes Service, and the reconciler would otherwise keep rewriting it.
      "--endpoint-reconciler-type=none",
      "--allow-privileged=true",
      // A real node registers under a made-up host name: reach kubelets by address, never by a DNS lookup.
      "--kubelet-preferred-address-types=InternalIP",
      // Webhooks behind a Service are called at its endpoints' addresses, not through the ClusterIP: nothing on
      // this machine routes the service range, so such a call could only leave through the default route.
      "--enable-aggregator-routing=true",
      "--profiling=false",
    ];
    // Without the controller-manager nobody creates the default ServiceAccount, and the admission plugin would
    // then reject every Pod.
    if (!withControllerManager) apiArgs.push("--disable-admission-plugins=ServiceAccount");
    const startApiServer = async () => {
      const c = spawn(dir, components, "kube-apiserver", `${binDir}/kube-apiserver`, apiArgs, onExit);
      const client = Deno.createHttpClient({ caCerts: [pki.caPem] });
      try {
        await waitHealthy(c, `${server}/readyz`, { client, token }, readyTimeoutMs, (b) => b === "ok");
      } finally {
        client.close();
      }
      return c;
    };
    let apiserver = await startApiServer();
    log(`kube-apiserver ready at ${server}`);

    const kubeconfigPath = `${dir}/kubeconfig`;
    await Deno.writeTextFile(kubeconfigPath, kubeconfig(server, pki.caPem, token));

    if (opts.crdDir) {
      const http = new KubeHttp({
        server,
        caPem: pki.caPem,
        authorization: () => Promise.resolve(`Bearer ${token}`),
      });
      try {
        const crds = await installCrds(http, opts.crdDir, readyTimeoutMs);
        log(`installed ${crds.length} CRDs from ${opts.crdDir}`);
        // As a cluster with Multus has it: the SpiderMultusConfig controller writes NetworkAttachmentDefinitions.
        await installCrds(http, MULTUS_CRD_DIR, readyTimeoutMs);
      } finally {
        http.close();
      }
    }

    if (withControllerManager) {
      const kcm = spawn(dir, components, "kube-controller-manager", `${binDir}/kube-controller-manager`, [
        `--kubeconfig=${kubeconfigPath}`,
        "--leader-elect=false",
        "--controllers=*",
        `--service-account-private-key-file=${pki.saKey}`,
        `--root-ca-file=${pki.caCert}`,
        "--use-service-account-credentials=false",
        `--cluster-signing-cert-file=${pki.caCert}`,
        `--cluster-signing-key-file=${pki.caKey}`,
        "--bind-address=127.0.0.1",
        `--secure-port=${kcmPort}`,
        `--cert-dir=${dir}/kcm-certs`,
        // Our CA signs this serving cert, so the health check can verify it like any other client.
        `--tls-cert-file=${pki.servingCert}`,
        `--tls-private-key-file=${pki.servingKey}`,
        "--profiling=false",
      ], onExit);
      const kcmClient = Deno.createHttpClient({ caCerts: [pki.caPem] });
      try {
        await waitHealthy(
          kcm,
          `https://127.0.0.1:${kcmPort}/healthz`,
          { client: kcmClient },
          readyTimeoutMs,
          (b) => b === "ok",
        );
      } finally {
        kcmClient.close();
      }
      log(`kube-controller-manager ready (healthz on 127.0.0.1:${kcmPort})`);
    }

    const pids = Object.fromEntries(components.map((c) => [c.name, c.child.pid]));
    let restarts: Promise<unknown> = Promise.resolve();
    const restartApiServer = (o: RestartOptions = {}): Promise<RestartTimes> => {
      const run = async (): Promise<RestartTimes> => {
        if (stopped) throw new Error("the control plane is stopped");
        const old = apiserver;
        expectedExit.add(old);
        const t0 = performance.now();
        try {
          old.child.kill(o.signal ?? "SIGKILL");
        } catch { /* exited on its own a moment ago */ }
        await old.exited;
        const exitMs = performance.now() - t0;
        const at = components.indexOf(old);
        components.splice(at, 1);
        if (o.downMs) await new Promise((r) => setTimeout(r, o.downMs));
        try {
          apiserver = await startApiServer();
        } catch (err) {
          // The cluster is now without its API server: as fatal to its users as a crash.
          failed = true;
          reportDeath(`kube-apiserver did not come back after a restart: ${errorMessage(err)}`);
          throw err;
        }
        // Back in its place in the start order, so stop() still ends it after kube-controller-manager.
        components.splice(components.indexOf(apiserver), 1);
        components.splice(at, 0, apiserver);
        pids["kube-apiserver"] = apiserver.child.pid;
        log(`kube-apiserver restarted (pid ${apiserver.child.pid}, ${o.signal ?? "SIGKILL"})`);
        return { exitMs, readyMs: performance.now() - t0, pid: apiserver.child.pid };
      };
      const next = restarts.then(run, run);
      restarts = next.catch(() => {});
      return next;
    };

    return {
      kubeconfigPath,
      server,
      token,
      caPem: pki.caPem,
      dir,
      pids,
      died,
      stop,
      kill,
      restartApiServer,
    };
  } catch (err) {
    const logs = await Promise.all(components.map((c) => tail(c.logPath, 20)));
    if (logs.some((l) => l.includes("address already in use"))) {
      // Another process took a port between freePorts() and the bind: not a failure worth keeping logs of.
      portTaken = true;
      await stop();
      throw new PortTakenError(`a port picked for the control plane in ${dir} was taken meanwhile`);
    }
    failed = true;
    for (const [i, c] of components.entries()) {
      console.error(`--- last lines of ${c.logPath} ---\n${logs[i]}`);
    }
    await stop();
    throw new Error(`control plane failed to start (logs kept in ${dir}): ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

/** Runs scripts/kube-build.sh and returns the bin dir it prints last. */
async function buildBinaries(): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: [`${REPO_ROOT}scripts/kube-build.sh`],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  if (!out.success || lines.at(-1) === "") {
    throw new Error(`scripts/kube-build.sh failed with exit code ${out.code}`);
  }
  return lines.at(-1)!;
}

interface Pki {
  caCert: string;
  caKey: string;
  caPem: string;
  servingCert: string;
  servingKey: string;
  saKey: string;
}

async function makePki(dir: string): Promise<Pki> {
  const p = (name: string) => `${dir}/pki/${name}`;
  await Deno.mkdir(`${dir}/pki`);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
    "-days",
    "3650",
    "-subj",
    "/CN=spiderpool-test-ca",
  );
  await openssl(
    "req",
    ...ec,
    "-keyout",
    p("serving.key"),
    "-out",
    p("serving.csr"),
    "-subj",
    "/CN=kube-apiserver",
  );
  // The first address of the service range is the in-cluster kubernetes Service; pods reach the API through it.
  await Deno.writeTextFile(
    p("serving.ext"),
    [
      "subjectAltName=IP:127.0.0.1,IP:198.18.128.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default," +
      "DNS:kubernetes.default.svc",
      "extendedKeyUsage=serverAuth",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "",
    ].join("\n"),
  );
  await openssl(
    "x509",
    "-req",
    "-in",
    p("serving.csr"),
    "-CA",
    p("ca.crt"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-days",
    "365",
    "-extfile",
    p("serving.ext"),
    "-out",
    p("serving.crt"),
  );
  // One key both signs service-account tokens and verifies them (apiserver and controller-manager share it).
  // SEC1 ("EC PRIVATE KEY"): --service-account-key-file does not read public keys out of PKCS#8 files.
  await openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", p("sa.key"));
  return {
    caCert: p("ca.crt"),
    caKey: p("ca.key"),
    caPem: await Deno.readTextFile(p("ca.crt")),
    servingCert: p("serving.crt"),
    servingKey: p("serving.key"),
    saKey: p("sa.key"),
  };
}

async function openssl(...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

let setprivAvailable: boolean | undefined;

export function spawn(
  dir: string,
  components: Component[],
  name: string,
  bin: string,
  args: string[],
  onExit: (c: Component, status: Deno.CommandStatus) => void,
): Component {
  const logPath = `${dir}/${name}.log`;
  setprivAvailable ??= (() => {
    try {
      Deno.statSync("/usr/bin/setpriv");
      return true;
    } catch {
      return false;
    }
  })();
  // The shell only redirects output to the log and execs, so the pid we get is the component's own. setpriv's
  // parent-death signal kills the component if this process dies without calling stop(): no orphans.
  const exec = setprivAvailable ? 'exec setpriv --pdeathsig KILL -- "$@"' : 'exec "$@"';
  const child = new Deno.Command("sh", {
    args: ["-c", `${exec} >>"$SPIDERPOOL_COMPONENT_LOG" 2>&1`, "sh", bin, ...args],
    env: { SPIDERPOOL_COMPONENT_LOG: logPath },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const component: Component = { name, child, logPath, exited: child.status, done: false };
  component.exited.then((status) => {
    component.done = true;
    onExit(component, status);
  });
  components.push(component);
  return component;
}

export async function stopComponent(c: Component): Promise<void> {
  if (c.done) return;
  try {
    c.child.kill("SIGTERM");
  } catch { /* exited between the check and the signal */ }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = await Promise.race([
    c.exited.then(() => false),
    new Promise<boolean>((r) => timer = setTimeout(() => r(true), STOP_GRACE_MS)),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    console.error(
      `controlplane: ${c.name} (pid ${c.child.pid}) ignored SIGTERM for ${STOP_GRACE_MS} ms; killing`,
    );
    try {
      c.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await c.exited;
  }
}

/** Polls `url` until `ok(body)` holds, the component exits, or the timeout passes. */
export async function waitHealthy(
  c: Component,
  url: string,
  auth: { client?: Deno.HttpClient; token?: string } | undefined,
  timeoutMs: number,
  ok: (body: string) => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no response yet";
  while (Date.now() < deadline) {
    if (c.done) {
      const status = await c.exited;
      throw new Error(`${c.name} exited with code ${status.code} before becoming ready; see ${c.logPath}`);
    }
    try {
      const res = await fetch(url, {
        client: auth?.client,
        headers: auth?.token ? { authorization: `Bearer ${auth.token}` } : {},
        signal: AbortSignal.timeout(2_000),
      });
      const body = (await res.text()).trim();
      if (res.ok && ok(body)) return;
      last = `HTTP ${res.status}: ${body.slice(0, 300)}`;
    } catch (err) {
      last = errorMessage(err);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${c.name} not ready at ${url} after ${timeoutMs} ms (last: ${last}); see ${c.logPath}`);
}

function kubeconfig(server: string, caPem: string, token: string): string {
  const caData = btoa(caPem);
  // JSON is valid YAML, and every kubeconfig reader accepts it.
  return JSON.stringify(
    {
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "test", cluster: { server, "certificate-authority-data": caData } }],
      users: [{ name: "admin", user: { token } }],
      contexts: [{ name: "test", context: { cluster: "test", user: "admin" } }],
      "current-context": "test",
    },
    null,
    2,
  ) + "\n";
}

export async function tail(path: string, lines: number): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch (err) {
    return `(cannot read: ${errorMessage(err)})`;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** State written by the CLI for the test script and for getCluster() in other processes. */
export interface ControlPlaneState {
  kubeconfigPath: string;
  server: string;
  dir: string;
  pids: Record<string, number>;
  /** pid of the CLI process itself: send it SIGTERM to stop everything. */
  pid: number;
}

const USAGE = `usage: deno run -A tests/kube/controlplane.ts start --state-file FILE [--bin-dir DIR]
           [--crds DIR | --no-crds] [--no-controller-manager]

Starts etcd, kube-apiserver and kube-controller-manager, installs the CRDs (default: crds/ of this repository),
writes FILE (JSON: kubeconfigPath, server, dir, pids, pid) once all are ready, and stays in the foreground until
SIGTERM or SIGINT, then stops them.`;

async function main(args: string[]): Promise<number> {
  if (args[0] !== "start") {
    console.error(USAGE);
    return 2;
  }
  const { values } = parseArgs({
    args: args.slice(1),
    strict: true,
    options: {
      "state-file": { type: "string" },
      "bin-dir": { type: "string" },
      "no-controller-manager": { type: "boolean", default: false },
      crds: { type: "string", default: CRD_DIR },
      "no-crds": { type: "boolean", default: false },
    },
  });
  const stateFile = values["state-file"];
  if (!stateFile) {
    console.error(`missing --state-file\n${USAGE}`);
    return 2;
  }

  let stopRequested: (signal: string) => void = () => {};
  const stopSignal = new Promise<string>((r) => stopRequested = r);
  const onSignal = (s: Deno.Signal) => () => stopRequested(s);
  const handlers = (["SIGTERM", "SIGINT"] as const).map((s) => [s, onSignal(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);

  const cp = await startControlPlane({
    binDir: values["bin-dir"],
    controllerManager: !values["no-controller-manager"],
    crdDir: values["no-crds"] ? undefined : values.crds,
  });
  const state: ControlPlaneState = {
    kubeconfigPath: cp.kubeconfigPath,
    server: cp.server,
    dir: cp.dir,
    pids: cp.pids,
    pid: Deno.pid,
  };
  // Written atomically: the test script polls for the file and must never read half of it.
  await Deno.writeTextFile(`${stateFile}.tmp`, JSON.stringify(state, null, 2) + "\n");
  await Deno.rename(`${stateFile}.tmp`, stateFile);
  console.error(`controlplane: running; kubeconfig ${cp.kubeconfigPath}; SIGTERM pid ${Deno.pid} to stop`);

  const reason = await Promise.race([stopSignal.then((s) => `received ${s}`), cp.died]);
  console.error(`controlplane: ${reason}; stopping`);
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  await cp.stop();
  await Deno.remove(stateFile).catch(() => {});
  return reason.startsWith("received") ? 0 : 1;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    console.error(`controlplane: ${errorMessage(err)}`);
    Deno.exit(1);
  }
}
