// The application controller (SpiderSubnet auto-pools) as the leader-only work of the controller daemon: one
// call gives the components startLeaderWork runs, none when the ConfigMap turns the feature off.

import type { KubeConfig } from "@kubernetes/client-node";
import type { Registry } from "prom-client";
import { defaultConfig, type SpiderpoolConfig } from "../../api/config.ts";
import type { KubeHttp } from "../../kube/client.ts";
import type { LeaderWork } from "../leader.ts";
import type { ControllerMetrics } from "../metrics.ts";
import { AutoPoolController } from "./controller.ts";

export { AUTO_POOL_EVENT, AutoPoolController, type AutoPoolControllerOptions } from "./controller.ts";
export { AutoPoolMetrics } from "./metrics.ts";

export interface AutoPoolWorkOptions {
  http: KubeHttp;
  kubeConfig: KubeConfig;
  identity: string;
  /** ConfigMap `enableSpiderSubnet` (when `config` is absent). */
  enableSpiderSubnet?: boolean;
  /** The controller's ConfigMap; defaults when absent. */
  config?: SpiderpoolConfig;
  registry?: Registry;
  controllerMetrics?: ControllerMetrics;
  /** Only applications of this namespace; all when absent (controllers side by side in a test cluster). */
  watchNamespace?: string;
  /** Labels added to every auto-pool (the reconcilers' label selector, when limited). */
  matchLabels?: Record<string, string>;
  log?: (message: string) => void;
}

/**
 * The application controller when `enableSpiderSubnet` and `enableAutoPoolForApplication` are on (upstream
 * runs it only then), else nothing.
 *
 * ```ts
 * new LeaderElector({ ..., work: [reconcilers, ...autoPoolWork({ http, kubeConfig, identity, config })] });
 * ```
 */
export function autoPoolWork(opts: AutoPoolWorkOptions): LeaderWork[] {
  const config = opts.config ?? { ...defaultConfig(), enableSpiderSubnet: opts.enableSpiderSubnet ?? true };
  if (!config.enableSpiderSubnet || !config.enableAutoPoolForApplication) return [];
  const log = opts.log ?? ((m: string) => console.error(m));
  return [
    new AutoPoolController({
      http: opts.http,
      kubeConfig: opts.kubeConfig,
      identity: opts.identity,
      config,
      registry: opts.registry,
      controllerMetrics: opts.controllerMetrics,
      namespaces: opts.watchNamespace === undefined ? undefined : [opts.watchNamespace],
      extraPoolLabels: opts.matchLabels,
      log: (m) => log(`auto-pool: ${m}`),
    }),
  ];
}
