// The IP GC as a component of the controller process (reconcile/mod.ts COMPONENTS): settings from upstream's
// environment and the ConfigMap, one scan-all at start on every replica, tracing and the periodic scan-all only
// during this replica's terms (stopped the moment a term ends), readiness, metrics on the daemon's registry,
// and `/v1/ipam/gc_ips` on the health port behind TokenReview and SubjectAccessReview.

import type { LeaderView } from "../leader.ts";
import type { ComponentContext, ControllerComponent } from "../reconcile/mod.ts";
import { gcConfigFrom } from "./config.ts";
import { IpGc } from "./gc.ts";
import { apiServerAuthorizer, gcHandler } from "./http.ts";

/** The running GC behind a component (tests and embedders reach it through the component). */
export interface IpGcComponent extends ControllerComponent {
  gc: IpGc;
}

/**
 * The IP GC component, or undefined when `SPIDERPOOL_GC_IP_ENABLED` is false. A malformed GC variable throws
 * GcConfigError naming it.
 *
 * ```ts
 * export const COMPONENTS = [ipGcComponent];
 * ```
 */
export function ipGcComponent(ctx: ComponentContext): IpGcComponent | undefined {
  const config = gcConfigFrom(ctx.env, ctx.config);
  const log = (m: string) => ctx.log(`ip gc: ${m}`);
  if (!config.enabled) {
    log("disabled (SPIDERPOOL_GC_IP_ENABLED=false)");
    return undefined;
  }
  let term: { signal: AbortSignal; leader: LeaderView } | undefined;
  const gc = new IpGc({
    http: ctx.http,
    kubeConfig: ctx.kubeConfig,
    config,
    // Asked before the leader-only work writes: false the moment the term's signal aborts.
    isLeader: () => term !== undefined && !term.signal.aborted && term.leader.isLeader(),
    registry: ctx.registry,
    identity: ctx.identity,
    leaderPollMs: 0,
    poolSelector: ctx.matchLabels,
    log,
  });
  const route = gcHandler(gc, apiServerAuthorizer(ctx.http), log);
  return {
    name: "IP GC",
    gc,
    start: () => gc.start(),
    stop: () => gc.stop(),
    ready: () => gc.ready(),
    route,
    startLeading(signal, leader) {
      term = { signal, leader };
      gc.startLeading(signal);
    },
    async stopLeading() {
      await gc.stopLeading();
      term = undefined;
    },
  };
}
