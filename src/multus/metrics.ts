// Prometheus metrics of the SpiderMultusConfig controller and of the pod resource-injection webhook
// (snake_case, as decided for the project), registered on the daemon's registry next to the reconcilers'.

import { Counter, Gauge, Registry } from "prom-client";

/** How one SpiderMultusConfig sync ended. */
export type NADSyncResult =
  | "created"
  | "updated"
  | "adopted"
  | "unchanged"
  | "waiting"
  | "foreign_owner"
  | "invalid_spec"
  | "multus_missing"
  | "error";

export class MultusMetrics {
  readonly registry: Registry;
  readonly syncs: Counter;
  readonly configs: Gauge;
  #count?: () => number;

  constructor(registry?: Registry) {
    const registers = [this.registry = registry ?? new Registry()];
    this.syncs = new Counter({
      name: "spiderpool_multusconfig_nad_sync_counts_total",
      help:
        "SpiderMultusConfig syncs of their NetworkAttachmentDefinition, by result (created, updated, adopted, " +
        "unchanged, waiting for an old NAD to go, foreign_owner: the NAD is another object's, invalid_spec, " +
        "multus_missing: the NAD API is not served, error)",
      labelNames: ["result"],
      registers,
    });
    const count = () => this.#count;
    this.configs = new Gauge({
      name: "spiderpool_multusconfig_counts",
      help: "SpiderMultusConfigs the controller sees",
      registers,
      collect() {
        const c = count();
        if (c) this.set(c());
      },
    });
  }

  synced(result: NADSyncResult): void {
    this.syncs.inc({ result });
  }

  countConfigs(fn: () => number): void {
    this.#count = fn;
  }
}

/** How one pod admission of the resource-injection webhook ended. */
export type InjectionResult = "injected" | "unchanged" | "refused" | "not_requested" | "error";

export class PodInjectionMetrics {
  readonly admissions: Counter;

  constructor(registry?: Registry) {
    this.admissions = new Counter({
      name: "spiderpool_pod_resource_inject_counts_total",
      help:
        "pods admitted by the resource-injection webhook (/mutate--v1-pod), by the annotation that asked " +
        "for it and result (injected, unchanged, refused, not_requested, error)",
      labelNames: ["annotation", "result"],
      registers: [registry ?? new Registry()],
    });
  }

  admitted(annotation: string, result: InjectionResult): void {
    this.admissions.inc({ annotation, result });
  }
}
