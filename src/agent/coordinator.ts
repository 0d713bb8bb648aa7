// `GET /v1/coordinator/config`: the coordinator plugin's settings, taken from the SpiderCoordinator (spec and
// the CIDRs its controller discovered) with the pod's `ipam.spidernet.io/default-route-nic` override.

import { parseDefaultRouteNIC } from "../api/annotations.ts";
import { ANNOTATION, COORDINATOR_DEFAULTS, DEFAULT_COORDINATOR_NAME, KIND } from "../api/constants.ts";
import type { SpiderCoordinator } from "../api/types.ts";
import type { CoordinatorConfig } from "../agentapi/models.ts";

/**
 * The coordinator to serve: the one named `default` (the singleton spiderpool-init creates), else the first by
 * name. One being deleted is skipped: its settings are on their way out, and a pod set up from them would keep
 * routes nobody maintains.
 */
export function pickCoordinator(list: readonly SpiderCoordinator[]): SpiderCoordinator | undefined {
  const live = list.filter((c) => !c.metadata.deletionTimestamp);
  return live.find((c) => c.metadata.name === DEFAULT_COORDINATOR_NAME) ??
    [...live].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))[0];
}

/**
 * The socket API answer for a pod. Throws when the coordinator is not `Synced` (its pod and service CIDRs
 * are not known yet) so the plugin fails instead of routing with missing CIDRs.
 */
export function coordinatorConfigFor(
  coord: SpiderCoordinator | undefined,
  podAnnotations: Record<string, string> | undefined,
  /** Every coordinator the agent sees, to say why none was picked. */
  all: readonly SpiderCoordinator[] = [],
): CoordinatorConfig {
  if (!coord) {
    const deleting = all.filter((c) => c.metadata.deletionTimestamp).map((c) => `"${c.metadata.name}"`);
    if (deleting.length > 0) {
      throw new Error(
        `${KIND.coordinator} ${deleting.join(", ")} ${deleting.length > 1 ? "are" : "is"} being deleted; ` +
          `create ${KIND.coordinator} "${DEFAULT_COORDINATOR_NAME}" again`,
      );
    }
    throw new Error(
      `there is no ${KIND.coordinator}; create ${KIND.coordinator} "${DEFAULT_COORDINATOR_NAME}"`,
    );
  }
  const where = `${KIND.coordinator} "${coord.metadata.name}"`;
  if (coord.status?.phase !== "Synced") {
    const reason = coord.status?.reason ? `: ${coord.status.reason}` : "";
    throw new Error(`${where} is not ready (phase ${coord.status?.phase ?? "unset"})${reason}`);
  }
  const spec = coord.spec ?? {};
  const override = podAnnotations?.[ANNOTATION.defaultRouteNIC];
  return {
    mode: spec.mode ?? COORDINATOR_DEFAULTS.mode,
    overlayPodCIDR: coord.status.overlayPodCIDR ?? [],
    serviceCIDR: coord.status.serviceCIDR ?? [],
    hijackCIDR: spec.hijackCIDR ?? [],
    policyRoutes: (spec.policyRoutes ?? []).map((r) => ({ dst: r.dst, gw: r.gw })),
    podMACPrefix: spec.podMACPrefix ?? COORDINATOR_DEFAULTS.podMACPrefix,
    tunePodRoutes: spec.tunePodRoutes ?? COORDINATOR_DEFAULTS.tunePodRoutes,
    podDefaultRouteNIC: override !== undefined && override !== ""
      ? parseDefaultRouteNIC(override)
      : spec.podDefaultRouteNIC ?? COORDINATOR_DEFAULTS.podDefaultRouteNIC,
    hostRuleTable: spec.hostRuleTable ?? COORDINATOR_DEFAULTS.hostRuleTable,
    podRPFilter: spec.podRPFilter ?? COORDINATOR_DEFAULTS.podRPFilter,
    txQueueLen: spec.txQueueLen ?? COORDINATOR_DEFAULTS.txQueueLen,
    vethLinkAddress: spec.vethLinkAddress ?? COORDINATOR_DEFAULTS.vethLinkAddress,
    vethMTU: spec.vethMTU ?? COORDINATOR_DEFAULTS.vethMTU,
  };
}
