// The controller's leader-only part in one call for the daemon: the Lease elector (durations from upstream's
// environment) leading the pool and subnet reconcilers, the application controller (auto-pools) and, when
// enabled, the SpiderMultusConfig → NAD and SpiderCoordinator status controllers, plus the components listed in
// COMPONENTS (the IP GC), with their metrics on the daemon's registry.

import type { KubeConfig } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import type { KubeHttp } from "../../kube/client.ts";
import { defaultConfig, type SpiderpoolConfig } from "../../api/config.ts";
import { parseGoBool } from "../../api/annotations.ts";
import { MultusConfigController } from "../../multus/controller.ts";
import { MultusMetrics } from "../../multus/metrics.ts";
import { CoordinatorController } from "../coordinator/controller.ts";
import { CoordinatorMetrics } from "../coordinator/metrics.ts";
import { LeaderElector, type LeaderView, type LeaderWork, timingsFromEnv } from "../leader.ts";
import { ControllerMetrics } from "../metrics.ts";
import { Reconcilers } from "./reconcilers.ts";
import { autoPoolWork } from "../autopool/mod.ts";
import { ipGcComponent } from "../gc/component.ts";

export { Reconcilers, type ReconcilersOptions } from "./reconcilers.ts";

/**
 * Leader-only work as the daemon runs it: a LeaderWork, plus what runs on every replica from start-up (caches,
 * a start-up scan), the final stop, and a say in readiness.
 */
export interface ControllerComponent extends LeaderWork {
  /** Named in logs and in the readiness probe's answer. */
  name?: string;
  /** Once the controller serves its webhooks, on every replica (e.g. starts caches). */
  start?(): void;
  /** At shutdown, after leadership ended (e.g. stops caches). */
  stop?(): void | Promise<void>;
  /** False while this replica cannot yet do its part (e.g. the IP GC's pod cache not synced while leading). */
  ready?(): boolean;
  /**
   * Requests on the health port this component answers (e.g. the IP GC's `/v1/ipam/gc_ips`), on every
   * replica; undefined for a request that is not its.
   */
  route?(req: Request): Promise<Response> | undefined;
}

/** What a registered component is built from. */
export interface ComponentContext {
  http: KubeHttp;
  kubeConfig: KubeConfig;
  /** The controller's namespace. */
  namespace: string;
  /** The pod name. */
  identity: string;
  config: SpiderpoolConfig;
  registry: Registry;
  metrics: ControllerMetrics;
  /** Objects to handle, when limited by label (several controllers in one test cluster); all when absent. */
  matchLabels?: Record<string, string>;
  env: (key: string) => string | undefined;
  log: (message: string) => void;
}

/**
 * More leader-only components, one line each (e.g. the IP GC). A factory returns undefined when its feature is
 * switched off. Started in this order after the built-in ones, stopped in reverse.
 */
export const COMPONENTS: readonly ((ctx: ComponentContext) => ControllerComponent | undefined)[] = [
  ipGcComponent,
];

export interface LeaderWorkOptions {
  http: KubeHttp;
  kubeConfig: KubeConfig;
  /** The controller's namespace (`SPIDERPOOL_POD_NAMESPACE`): where the Lease lives. */
  namespace: string;
  /** The pod name (`SPIDERPOOL_POD_NAME`). */
  identity: string;
  /** ConfigMap `enableSpiderSubnet`. */
  enableSpiderSubnet: boolean;
  /** The controller's ConfigMap (the auto-pool controller's defaults and switches); defaults when absent. */
  config?: SpiderpoolConfig;
  /** The daemon's metrics registry. */
  registry?: Registry;
  /** `SPIDERPOOL_ENABLED_DEBUG_METRIC`. */
  debugMetrics?: boolean;
  /**
   * Reconcile only pools and subnets with these labels (several controllers side by side in a test cluster);
   * auto-pools are created with them.
   */
  matchLabels?: Record<string, string>;
  /**
   * Only applications (auto-pools) and SpiderMultusConfigs of this namespace are handled; all when absent
   * (several controllers side by side in a test cluster).
   */
  watchNamespace?: string;
  /** Run the SpiderMultusConfig → NAD controller; default `SPIDERPOOL_MULTUS_CONFIG_ENABLED` (else false). */
  multusConfigEnabled?: boolean;
  /** Run the SpiderCoordinator status controller; default `SPIDERPOOL_COORDINATOR_ENABLED` (else false). */
  coordinatorEnabled?: boolean;
  /** More leader-only work, after the built-in components and COMPONENTS (tests, embedders). */
  work?: readonly ControllerComponent[];
  /**
   * Components start (caches, and their leader work once elected) only after this resolves; the election itself
   * starts at once. Upstream's daemon campaigns early but starts its informers once its own webhook answers.
   */
  after?: Promise<unknown>;
  /**
   * Environment (SPIDERPOOL_LEADER_*, SPIDERPOOL_IPPOOL_INFORMER_WORKERS, SPIDERPOOL_MULTUS_CONFIG_*,
   * SPIDERPOOL_COORDINATOR_*, SPIDERPOOL_CNI_CONFIG_DIR, SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME); default
   * Deno.env.
   */
  env?: (key: string) => string | undefined;
  log?: (message: string) => void;
  /** How long stop() waits for each part (the election, each component); default STOP_WAIT_MS. */
  stopWaitMs?: number;
}

export interface LeaderWorkHandle {
  elector: LeaderElector;
  reconcilers: Reconcilers;
  /** The SpiderMultusConfig controller, when SPIDERPOOL_MULTUS_CONFIG_ENABLED is true. */
  multusConfig?: MultusConfigController;
  /** The SpiderCoordinator status controller, when SPIDERPOOL_COORDINATOR_ENABLED is true. */
  coordinator?: CoordinatorController;
  metrics: ControllerMetrics;
  /** Every component, the reconcilers first. */
  components: readonly ControllerComponent[];
  /** Why this replica is not ready (no leader known, a component not ready); undefined when it is. */
  notReady(): string | undefined;
  /** Ends the term (work stopped first, then the lease released) and stops the caches. */
  stop(): Promise<void>;
}

/**
 * Starts the election and (at once, or once `after` resolves) the components' caches; the leader-only work runs
 * while this replica leads. Readiness: `handle.notReady() === undefined`. `SPIDERPOOL_LEADER_RETRY_GAP` is not
 * needed: leadership loss stops the work synchronously instead of being polled for.
 */
export function startLeaderWork(opts: LeaderWorkOptions): LeaderWorkHandle {
  const env = opts.env ?? ((k: string) => Deno.env.get(k));
  const log = opts.log ?? ((m: string) => console.error(m));
  const timings = timingsFromEnv(env);
  const workers = Number(env("SPIDERPOOL_IPPOOL_INFORMER_WORKERS") || "3");
  if (!Number.isInteger(workers) || workers < 1) {
    throw new Error(
      `SPIDERPOOL_IPPOOL_INFORMER_WORKERS=${
        JSON.stringify(env("SPIDERPOOL_IPPOOL_INFORMER_WORKERS"))
      } must be ` +
        `a whole number ≥ 1`,
    );
  }
  const registry = opts.registry ?? new Registry();
  const metrics = new ControllerMetrics({ registry, debug: opts.debugMetrics });
  const reconcilers = new Reconcilers({
    http: opts.http,
    kubeConfig: opts.kubeConfig,
    identity: opts.identity,
    metrics,
    enableSpiderSubnet: opts.enableSpiderSubnet,
    poolWorkers: workers,
    matchLabels: opts.matchLabels,
    log: (m) => log(`reconcile: ${m}`),
  });
  // Components with caches of their own start them with the controller (a new leader then starts from a synced
  // cache) and stop them with it; the others set up their state when they start leading.
  const components: ControllerComponent[] = [
    {
      name: "pool and subnet reconcilers",
      start: () => reconcilers.start(),
      stop: () => reconcilers.stop(),
      startLeading: (signal, leader) => reconcilers.startLeading(signal, leader),
      stopLeading: () => reconcilers.stopLeading(),
    },
    ...autoPoolWork({ ...opts, registry, controllerMetrics: metrics, log }),
  ];
  let multusConfig: MultusConfigController | undefined;
  if (opts.multusConfigEnabled ?? envBool(env, "SPIDERPOOL_MULTUS_CONFIG_ENABLED", false)) {
    multusConfig = new MultusConfigController({
      http: opts.http,
      kubeConfig: opts.kubeConfig,
      identity: opts.identity,
      metrics,
      multusMetrics: new MultusMetrics(metrics.registry),
      namespace: opts.watchNamespace,
      resyncMs: envSeconds(env, "SPIDERPOOL_MULTUS_CONFIG_INFORMER_RESYNC_PERIOD", 60),
      log: (m) => log(`multus config: ${m}`),
    });
    components.push(multusConfig);
  }
  let coordinator: CoordinatorController | undefined;
  if (opts.coordinatorEnabled ?? envBool(env, "SPIDERPOOL_COORDINATOR_ENABLED", false)) {
    coordinator = new CoordinatorController({
      http: opts.http,
      kubeConfig: opts.kubeConfig,
      identity: opts.identity,
      // Upstream's spelling of the variable.
      name: env("SPIDERPOOL_COORDINATOR_DEAFULT_NAME") || undefined,
      cniConfigDir: env("SPIDERPOOL_CNI_CONFIG_DIR") || undefined,
      ciliumConfigMap: env("SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME") || undefined,
      metrics,
      coordinatorMetrics: new CoordinatorMetrics(metrics.registry),
      resyncMs: envSeconds(env, "SPIDERPOOL_COORDINATOR_INFORMER_RESYNC_PERIOD", 60),
      log: (m) => log(`coordinator: ${m}`),
    });
    components.push(coordinator);
  }
  const ctx: ComponentContext = {
    http: opts.http,
    kubeConfig: opts.kubeConfig,
    namespace: opts.namespace,
    identity: opts.identity,
    config: opts.config ?? { ...defaultConfig(), enableSpiderSubnet: opts.enableSpiderSubnet },
    registry,
    metrics,
    matchLabels: opts.matchLabels,
    env,
    log,
  };
  for (const make of COMPONENTS) {
    const c = make(ctx);
    if (c) components.push(c);
  }
  components.push(...(opts.work ?? []));

  // The gate: until it opens, a term that starts is not handed to the components; once open, each component
  // starts, then gets the current term (if any, and not yet ended).
  let open = opts.after === undefined;
  let stopped = false;
  const opened = (opts.after ?? Promise.resolve()).then(() => {
    if (stopped) return false;
    if (!open) {
      open = true;
      for (const c of components) c.start?.();
    }
    return true;
  }, () => false);
  if (open) { for (const c of components) c.start?.(); }
  const work: LeaderWork[] = components.map((c) => {
    // A term that ended before the gate opened never reached the component, and is not ended for it either.
    let leading = false;
    const lead = (signal: AbortSignal, leader: LeaderView) => {
      leading = true;
      c.startLeading(signal, leader);
    };
    return {
      startLeading(signal, leader) {
        if (open) return lead(signal, leader);
        void opened.then((ok) => {
          if (ok && !signal.aborted) lead(signal, leader);
        });
      },
      stopLeading() {
        if (!leading) return Promise.resolve();
        leading = false;
        return c.stopLeading();
      },
    };
  });
  const elector = new LeaderElector({
    http: opts.http,
    namespace: opts.namespace,
    identity: opts.identity,
    timings,
    work,
    metrics,
    log: (m) => log(`leader election: ${m}`),
  });
  elector.start();
  let stopping: Promise<void> | undefined;
  return {
    elector,
    reconcilers,
    multusConfig,
    coordinator,
    metrics,
    components,
    notReady() {
      if (!elector.leaderKnown()) return "no leader is known";
      const c = components.find((c) => c.ready?.() === false);
      return c ? `${c.name ?? "a leader-only component"} is not ready` : undefined;
    },
    stop() {
      return stopping ??= (async () => {
        stopped = true;
        const waitMs = opts.stopWaitMs ?? STOP_WAIT_MS;
        await bounded("leader election (and the components' end of term)", elector.stop(), waitMs, log);
        for (const c of [...components].reverse()) {
          try {
            await bounded(c.name ?? "a leader-only component", c.stop?.(), waitMs, log);
          } catch (err) {
            log(`${c.name ?? "component"}: stop failed: ${(err as Error).message}`);
          }
        }
      })();
    },
  };
}

/** How long stop() waits for one part to stop before it goes on without it. */
export const STOP_WAIT_MS = 20_000;

/**
 * Waits for `stopping` for at most `waitMs`. A part that does not stop in that time (a request the API server
 * does not answer, a bug) is logged and left behind, so that a replica asked to stop still stops, and releases
 * its Lease, long before the kubelet's SIGKILL.
 */
async function bounded(
  what: string,
  stopping: void | Promise<void>,
  waitMs: number,
  log: (m: string) => void,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), waitMs));
  try {
    const r = await Promise.race([Promise.resolve(stopping).then(() => "stopped" as const), late]);
    if (r === "late") log(`${what} did not stop within ${waitMs / 1000} s; stopping without it`);
  } finally {
    clearTimeout(timer);
  }
}

/** A bad value of one of the controller's environment variables; the message names it and the fix. */
export class LeaderWorkConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LeaderWorkConfigError";
  }
}

/** A boolean in Go's syntax (upstream parses these with strconv.ParseBool); unset or empty is `fallback`. */
function envBool(env: (key: string) => string | undefined, key: string, fallback: boolean): boolean {
  const v = env(key);
  if (v === undefined || v === "") return fallback;
  const b = parseGoBool(v);
  if (b === undefined) {
    throw new LeaderWorkConfigError(`${key}=${JSON.stringify(v)} is not a boolean; use "true" or "false"`);
  }
  return b;
}

/** A whole number of seconds ≥ 1 as milliseconds; unset or empty is `fallback` seconds. */
function envSeconds(env: (key: string) => string | undefined, key: string, fallback: number): number {
  const v = env(key);
  if (v === undefined || v === "") return fallback * 1000;
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n < 1) {
    throw new LeaderWorkConfigError(`${key}=${JSON.stringify(v)} must be a whole number of seconds ≥ 1`);
  }
  return n * 1000;
}
