// The controller's leader-only part in one call for the daemon: the Lease elector (durations from upstream's
// environment) leading the pool and subnet reconcilers, with their metrics on the daemon's registry.

import type { KubeConfig } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import type { KubeHttp } from "../../kube/client.ts";
import { LeaderElector, timingsFromEnv } from "../leader.ts";
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
  /** The daemon's metrics registry. */
  registry?: Registry;
  /** `SPIDERPOOL_ENABLED_DEBUG_METRIC`. */
  debugMetrics?: boolean;
  /** Environment (SPIDERPOOL_LEADER_*, SPIDERPOOL_IPPOOL_INFORMER_WORKERS); default Deno.env. */
  env?: (key: string) => string | undefined;
  log?: (message: string) => void;
}

export interface LeaderWorkHandle {
  elector: LeaderElector;
  reconcilers: Reconcilers;
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
  const elector = new LeaderElector({
    http: opts.http,
    namespace: opts.namespace,
    identity: opts.identity,
    timings,
    work: [reconcilers, ...autoPoolWork({ ...opts, controllerMetrics: metrics, log })],
    metrics,
    log: (m) => log(`leader election: ${m}`),
  });
  reconcilers.start();
  elector.start();
  return {
    elector,
    reconcilers,
    metrics,
    async stop() {
      await elector.stop();
      await reconcilers.stop();
    },
  };
}
