// The controller's leader-only part in one call for the daemon: the Lease elector (durations from upstream's
// environment) leading the pool and subnet reconcilers and the other registered components (COMPONENTS below),
// with their metrics on the daemon's registry.

import type { KubeConfig } from "@kubernetes/client-node";
import { Registry } from "prom-client";
import { defaultConfig, type SpiderpoolConfig } from "../../api/config.ts";
import type { KubeHttp } from "../../kube/client.ts";
import { LeaderElector, type LeaderView, type LeaderWork, timingsFromEnv } from "../leader.ts";
import { ControllerMetrics } from "../metrics.ts";
import { Reconcilers } from "./reconcilers.ts";

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
  /** Objects to handle, when limited by label (several controllers in one test cluster); all when absent. */
  matchLabels?: Record<string, string>;
  env: (key: string) => string | undefined;
  log: (message: string) => void;
}

/**
 * Leader-only components besides the pool and subnet reconcilers, one line each (IP GC, SpiderMultusConfig and
 * SpiderCoordinator controllers). A factory returns undefined when its feature is switched off. Started in this
 * order after the reconcilers, stopped in reverse.
 */
export const COMPONENTS: readonly ((ctx: ComponentContext) => ControllerComponent | undefined)[] = [];

export interface LeaderWorkOptions {
  http: KubeHttp;
  kubeConfig: KubeConfig;
  /** The controller's namespace (`SPIDERPOOL_POD_NAMESPACE`): where the Lease lives. */
  namespace: string;
  /** The pod name (`SPIDERPOOL_POD_NAME`). */
  identity: string;
  /** ConfigMap `enableSpiderSubnet`. */
  enableSpiderSubnet: boolean;
  /** The ConfigMap, for the registered components; default the defaults (with `enableSpiderSubnet`). */
  config?: SpiderpoolConfig;
  /** The daemon's metrics registry. */
  registry?: Registry;
  /** `SPIDERPOOL_ENABLED_DEBUG_METRIC`. */
  debugMetrics?: boolean;
  /** Reconcile only objects with these labels (several controllers side by side in a test cluster). */
  matchLabels?: Record<string, string>;
  /** More leader-only work, after the registered COMPONENTS (tests, embedders). */
  work?: readonly ControllerComponent[];
  /**
   * Components start (caches, and their leader work once elected) only after this resolves; the election itself
   * starts at once. Upstream's daemon campaigns early but starts its informers once its own webhook answers.
   */
  after?: Promise<unknown>;
  /** Environment (SPIDERPOOL_LEADER_*, SPIDERPOOL_IPPOOL_INFORMER_WORKERS); default Deno.env. */
  env?: (key: string) => string | undefined;
  log?: (message: string) => void;
}

export interface LeaderWorkHandle {
  elector: LeaderElector;
  reconcilers: Reconcilers;
  metrics: ControllerMetrics;
  /** Every component, the reconcilers first. */
  components: readonly ControllerComponent[];
  /** Why this replica is not ready (no leader known, a component not ready); undefined when it is. */
  notReady(): string | undefined;
  /** Ends the term (work stopped first, then the lease released) and stops the caches. */
  stop(): Promise<void>;
}

/**
 * Starts the reconcilers' caches and the election; the reconcilers run while this replica leads. Readiness:
 * `handle.notReady() === undefined`. `SPIDERPOOL_LEADER_RETRY_GAP` is not needed: leadership loss stops the work
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
  const ctx: ComponentContext = {
    http: opts.http,
    kubeConfig: opts.kubeConfig,
    namespace: opts.namespace,
    identity: opts.identity,
    config: opts.config ?? { ...defaultConfig(), enableSpiderSubnet: opts.enableSpiderSubnet },
    registry,
    matchLabels: opts.matchLabels,
    env,
    log,
  };
  const components: ControllerComponent[] = [
    {
      name: "pool and subnet reconcilers",
      start: () => reconcilers.start(),
      stop: () => reconcilers.stop(),
      startLeading: (signal, leader) => reconcilers.startLeading(signal, leader),
      stopLeading: () => reconcilers.stopLeading(),
    },
    ...COMPONENTS.map((make) => make(ctx)).filter((c) => c !== undefined),
    ...(opts.work ?? []),
  ];
  // The gate: until it opens, a term that starts records nothing; once open, each component starts, and the
  // current term (if any, and not yet ended) is handed to it.
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
        await elector.stop();
        for (const c of [...components].reverse()) {
          try {
            await c.stop?.();
          } catch (err) {
            log(`${c.name ?? "component"}: stop failed: ${(err as Error).message}`);
          }
        }
      })();
    },
  };
}
