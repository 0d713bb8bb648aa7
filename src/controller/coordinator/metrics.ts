// Prometheus metrics of the SpiderCoordinator status controller (snake_case, as decided for the project).

import { Counter, Gauge, Registry } from "prom-client";

export class CoordinatorMetrics {
  readonly registry: Registry;
  readonly phase: Gauge;
  readonly overlayCIDRs: Gauge;
  readonly serviceCIDRs: Gauge;
  readonly syncs: Counter;

  constructor(registry?: Registry) {
    const registers = [this.registry = registry ?? new Registry()];
    this.phase = new Gauge({
      name: "spiderpool_coordinator_phase",
      help: "1 for the current status phase (Synced or NotReady) of a SpiderCoordinator, 0 for the other",
      labelNames: ["SpiderCoordinator", "phase"],
      registers,
    });
    this.overlayCIDRs = new Gauge({
      name: "spiderpool_coordinator_overlay_pod_cidr_counts",
      help: "pod CIDRs of the cluster's default CNI in a SpiderCoordinator's status",
      labelNames: ["SpiderCoordinator"],
      registers,
    });
    this.serviceCIDRs = new Gauge({
      name: "spiderpool_coordinator_service_cidr_counts",
      help: "service CIDRs in a SpiderCoordinator's status",
      labelNames: ["SpiderCoordinator"],
      registers,
    });
    this.syncs = new Counter({
      name: "spiderpool_coordinator_status_sync_counts_total",
      help: "SpiderCoordinator status syncs, by resulting phase and whether the status was written",
      labelNames: ["phase", "written"],
      registers,
    });
  }

  synced(
    name: string,
    phase: "Synced" | "NotReady",
    overlay: number,
    service: number,
    written: boolean,
  ): void {
    this.phase.set({ SpiderCoordinator: name, phase }, 1);
    this.phase.set({ SpiderCoordinator: name, phase: phase === "Synced" ? "NotReady" : "Synced" }, 0);
    this.overlayCIDRs.set({ SpiderCoordinator: name }, overlay);
    this.serviceCIDRs.set({ SpiderCoordinator: name }, service);
    this.syncs.inc({ phase, written: String(written) });
  }

  gone(name: string): void {
    for (const phase of ["Synced", "NotReady"]) this.phase.remove({ SpiderCoordinator: name, phase });
    this.overlayCIDRs.remove({ SpiderCoordinator: name });
    this.serviceCIDRs.remove({ SpiderCoordinator: name });
  }
}
