// Prometheus metrics of the application controller (auto-pools), snake_case like the rest of the controller:
// reconciles by application kind and result, pool changes by action, failures by reason, API writes and
// conflicts, the auto-pools in the cluster and the work queue's depth. Registered on the daemon's registry.

import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Reconciles are usually far below 0.1 s; finer buckets first, then upstream's (§10). */
const BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.3, 0.5, 1, 3, 5, 7, 10, 15];

/** How one reconcile of an application ended. */
export type AppReconcileResult = "converged" | "written" | "failed" | "not_leader";

/** What happened to a pool. */
export type PoolAction = "created" | "grown" | "shrunk" | "relabelled" | "deleted";

/** Why a pool could not be made or resized. */
export type ScaleFailure =
  | "insufficient_subnet_ips"
  | "pool_free_ips_not_enough"
  | "subnet_changed"
  | "subnet_unavailable"
  | "invalid_annotation"
  | "conflict"
  | "other";

/** The writes of the application controller, for the `kind` label. */
export type AutoPoolWrite = "subnet_status" | "ippool_create" | "ippool_update" | "ippool_delete";

export class AutoPoolMetrics {
  readonly registry: Registry;
  readonly reconciles: Counter;
  readonly reconcileDuration: Histogram;
  readonly poolChanges: Counter;
  readonly failures: Counter;
  readonly writes: Counter;
  readonly conflicts: Counter;
  readonly pools: Gauge;
  readonly queueDepth: Gauge;
  /** Writes and conflicts as plain numbers (tests and benchmarks). */
  readonly counted = { writes: 0, conflicts: 0 };
  #poolCount?: () => number;
  #depth?: () => number;

  constructor(registry?: Registry) {
    const registers = [this.registry = registry ?? new Registry()];
    this.reconciles = new Counter({
      name: "spiderpool_auto_pool_reconcile_counts_total",
      help: "reconciles of applications by the application controller, by application kind and result",
      labelNames: ["kind", "result"],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: "spiderpool_auto_pool_reconcile_duration_seconds",
      help: "time one reconcile of an application took, by application kind",
      labelNames: ["kind"],
      buckets: BUCKETS,
      registers,
    });
    this.poolChanges = new Counter({
      name: "spiderpool_auto_pool_changes_total",
      help: "auto-created SpiderIPPools created, grown, shrunk, relabelled or deleted",
      labelNames: ["action"],
      registers,
    });
    this.failures = new Counter({
      name: "spiderpool_auto_pool_failure_counts_total",
      help: "auto-created SpiderIPPools that could not be made or resized, by reason",
      labelNames: ["reason"],
      registers,
    });
    this.writes = new Counter({
      name: "spiderpool_auto_pool_api_writes_total",
      help: "writes of the application controller to the API server, by what they wrote",
      labelNames: ["kind"],
      registers,
    });
    this.conflicts = new Counter({
      name: "spiderpool_auto_pool_api_write_conflicts_total",
      help: "writes of the application controller answered 409 Conflict (re-read and retried)",
      labelNames: ["kind"],
      registers,
    });
    const poolCount = () => this.#poolCount;
    this.pools = new Gauge({
      name: "spiderpool_auto_pool_counts",
      help: "auto-created SpiderIPPools in the cluster (as the leader's cache shows them)",
      registers,
      collect() {
        const f = poolCount();
        if (f) this.set(f());
      },
    });
    const depth = () => this.#depth;
    this.queueDepth = new Gauge({
      name: "spiderpool_auto_pool_queue_depth",
      help: "applications waiting in the application controller's work queue",
      registers,
      collect() {
        const f = depth();
        this.set(f ? f() : 0);
      },
    });
  }

  /** Where the gauges read their values at scrape time. */
  observe(poolCount: () => number, depth: () => number): void {
    this.#poolCount = poolCount;
    this.#depth = depth;
  }

  reconciled(kind: string, result: AppReconcileResult, seconds: number): void {
    this.reconciles.inc({ kind, result });
    this.reconcileDuration.observe({ kind }, seconds);
  }

  changed(action: PoolAction): void {
    this.poolChanges.inc({ action });
  }

  failed(reason: ScaleFailure): void {
    this.failures.inc({ reason });
  }

  wrote(kind: AutoPoolWrite): void {
    this.counted.writes++;
    this.writes.inc({ kind });
  }

  conflicted(kind: AutoPoolWrite): void {
    this.counted.conflicts++;
    this.conflicts.inc({ kind });
  }
}
