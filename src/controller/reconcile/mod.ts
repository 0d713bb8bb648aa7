// The controller's leader-only part in one call for the daemon: the Lease elector (durations from upstream's
// environment) leading the pool and subnet reconcilers and, when enabled, the SpiderMultusConfig → NAD and
// SpiderCoordinator status controllers, with their metrics on the daemon's registry.

import type { KubeConfig } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import type { KubeHttp } from "../../kube/client.ts";
import type { SpiderpoolConfig } from "../../api/config.ts";
import { parseGoBool } from "../../api/annotations.ts";
import { MultusConfigController } from "../../multus/controller.ts";
import { MultusMetrics } from "../../multus/metrics.ts";
import { CoordinatorController } from "../coordinator/controller.ts";
import { CoordinatorMetrics } from "../coordinator/metrics.ts";
import { LeaderElector, type LeaderWork, timingsFromEnv } from "../leader.ts";
import { ControllerMetrics } from "../metrics.ts";
import { Reconcilers } from "./reconcilers.ts";
import { autoPoolWork } from "../autopool/mod.ts";

export { Reconcilers, type ReconcilersOptions } from "./reconcilers.ts";

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
   * Environment (SPIDERPOOL_LEADER_*, SPIDERPOOL_IPPOOL_INFORMER_WORKERS, SPIDERPOOL_MULTUS_CONFIG_*,
   * SPIDERPOOL_COORDINATOR_*, SPIDERPOOL_CNI_CONFIG_DIR, SPIDERPOOL_CILIUM_CONFIGMAP_NAMESPACE_NAME); default
   * Deno.env.
   */
  env?: (key: string) => string | undefined;
  log?: (message: string) => void;
}

export interface LeaderWorkHandle {
  elector: LeaderElector;
  reconcilers: Reconcilers;
  /** The SpiderMultusConfig controller, when SPIDERPOOL_MULTUS_CONFIG_ENABLED is true. */
  multusConfig?: MultusConfigController;
  /** The SpiderCoordinator status controller, when SPIDERPOOL_COORDINATOR_ENABLED is true. */
  coordinator?: CoordinatorController;
  metrics: ControllerMetrics;
  /** Ends the term (work stopped first, then the lease released) and stops the caches. */
  stop(): Promise<void>;
}

/**
 * Starts the reconcilers' caches and the election; the reconcilers run while this replica leads. Readiness:
 * `handle.elector.leaderKnown()`. `SPIDERPOOL_LEADER_RETRY_GAP` is not needed: leadership loss stops the work
 * synchronously instead of being polled for.
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
  const metrics = new ControllerMetrics({ registry: opts.registry, debug: opts.debugMetrics });
  const reconcilers = new Reconcilers({
    http: opts.http,
    kubeConfig: opts.kubeConfig,
    identity: opts.identity,
    metrics,
    enableSpiderSubnet: opts.enableSpiderSubnet,
    poolWorkers: workers,
    log: (m) => log(`reconcile: ${m}`),
  });
  // Components with caches of their own start them now (a new leader then starts from a synced cache) and stop
  // them with the controller; the others set up their state when they start leading.
  const work: (LeaderWork & { start?(): void; stop?(): Promise<void> })[] = [
    reconcilers,
    ...autoPoolWork({ ...opts, controllerMetrics: metrics, log }),
  ];
  let multusConfig: MultusConfigController | undefined;
  if (envBool(env, "SPIDERPOOL_MULTUS_CONFIG_ENABLED", false)) {
    multusConfig = new MultusConfigController({
      http: opts.http,
      kubeConfig: opts.kubeConfig,
      identity: opts.identity,
      metrics,
      multusMetrics: new MultusMetrics(metrics.registry),
      resyncMs: envSeconds(env, "SPIDERPOOL_MULTUS_CONFIG_INFORMER_RESYNC_PERIOD", 60),
      log: (m) => log(`multus config: ${m}`),
    });
    work.push(multusConfig);
  }
  let coordinator: CoordinatorController | undefined;
  if (envBool(env, "SPIDERPOOL_COORDINATOR_ENABLED", false)) {
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
    work.push(coordinator);
  }
  const elector = new LeaderElector({
    http: opts.http,
    namespace: opts.namespace,
    identity: opts.identity,
    timings,
    work,
    metrics,
    log: (m) => log(`leader election: ${m}`),
  });
  for (const w of work) w.start?.();
  elector.start();
  return {
    elector,
    reconcilers,
    multusConfig,
    coordinator,
    metrics,
    async stop() {
      await elector.stop();
      for (const w of work) await w.stop?.();
    },
  };
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
