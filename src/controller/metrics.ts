// Prometheus metrics of the controller's leader election and reconcilers, snake_case as decided for the project:
// leader status, reconcile counts, failures and durations by kind, per-pool and per-subnet IP gauges, and
// upstream's `spiderpool_total_ippool_counts` / `spiderpool_total_subnet_counts`. The webhook's admission metrics
// live with the webhook; both register on the registry the daemon serves.

import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Upstream's histogram buckets (§10), in seconds. */
const BUCKETS = [0.1, 0.3, 0.5, 1, 3, 5, 7, 10, 15];
/** Reconciles are usually far below 0.1 s; finer buckets first, then upstream's. */
const RECONCILE_BUCKETS = [0.001, 0.005, 0.01, 0.05, ...BUCKETS];

/** The kinds a reconciler handles; the `kind` label of the reconcile metrics. */
export type ReconcileKind = "SpiderIPPool" | "SpiderSubnet" | "SpiderMultusConfig" | "SpiderCoordinator";

/** How one reconcile ended. */
export type ReconcileResult = "converged" | "written" | "conflict" | "error" | "not_leader";

/** What the controller writes to the API server, for the `kind` label of `spiderpool_controller_api_writes_total`. */
export type WriteKind =
  | "ippool_status"
  | "ippool_metadata"
  | "subnet_status"
  | "subnet_metadata"
  | "subnet_delete"
  | "nad_create"
  | "nad_update"
  | "coordinator_status"
  | "event";

export interface ControllerMetricsOptions {
  /** Registry to register on (the daemon's); a new one when absent. */
  registry?: Registry;
  /** Upstream's `spiderpool_debug_*` per-pool and per-subnet gauges (`SPIDERPOOL_ENABLED_DEBUG_METRIC`). */
  debug?: boolean;
}

/** Where the object-count gauges read their values when scraped. */
export interface ObjectCounts {
  pools(): number;
  subnets(): number;
}

export class ControllerMetrics {
  readonly registry: Registry;
  readonly #debug: boolean;
  readonly isLeader: Gauge;
  readonly leadershipChanges: Counter;
  readonly reconciles: Counter;
  readonly reconcileFailures: Counter;
  readonly reconcileDuration: Histogram;
  readonly apiWrites: Counter;
  readonly writeConflicts: Counter;
  /** Writes answered 409 Conflict, as a plain number for tests and benchmarks. */
  conflicts = 0;
  readonly totalPools: Gauge;
  readonly totalSubnets: Gauge;
  readonly poolTotalIPs: Gauge;
  readonly poolAllocatedIPs: Gauge;
  readonly #debugPool?: { total: Gauge; available: Gauge };
  readonly #debugSubnet?: { pools: Gauge; total: Gauge; available: Gauge };
  #counts?: ObjectCounts;
  /** Writes sent (including those answered 409), as plain numbers for tests and benchmarks. */
  readonly writes: Record<WriteKind, number> = {
    ippool_status: 0,
    ippool_metadata: 0,
    subnet_status: 0,
    subnet_metadata: 0,
    subnet_delete: 0,
    nad_create: 0,
    nad_update: 0,
    coordinator_status: 0,
    event: 0,
  };

  constructor(opts: ControllerMetricsOptions = {}) {
    const registers = [this.registry = opts.registry ?? new Registry()];
    this.#debug = opts.debug ?? false;
    this.isLeader = new Gauge({
      name: "spiderpool_controller_is_leader",
      help: "1 while this controller replica holds the leader lease, else 0",
      registers,
    });
    this.isLeader.set(0);
    this.leadershipChanges = new Counter({
      name: "spiderpool_controller_leadership_changes_total",
      help: "times this replica started or stopped leading",
      labelNames: ["change"],
      registers,
    });
    this.reconciles = new Counter({
      name: "spiderpool_controller_reconcile_counts_total",
      help: "reconciles run, by kind and result (converged: nothing to write; written; conflict; error)",
      labelNames: ["kind", "result"],
      registers,
    });
    this.reconcileFailures = new Counter({
      name: "spiderpool_controller_reconcile_failure_counts_total",
      help: "reconciles that failed and were requeued, by kind",
      labelNames: ["kind"],
      registers,
    });
    this.reconcileDuration = new Histogram({
      name: "spiderpool_controller_reconcile_duration_seconds",
      help: "time one reconcile took, by kind",
      labelNames: ["kind"],
      buckets: RECONCILE_BUCKETS,
      registers,
    });
    this.apiWrites = new Counter({
      name: "spiderpool_controller_api_writes_total",
      help: "create/update/patch/delete requests the reconcilers sent to the API server, by what they wrote",
      labelNames: ["kind"],
      registers,
    });
    // Read from the informer caches at scrape time rather than on every pool change (upstream renews them on a
    // timer, SPIDERPOOL_METRIC_RENEW_PERIOD).
    const counts = () => this.#counts;
    this.writeConflicts = new Counter({
      name: "spiderpool_controller_api_write_conflicts_total",
      help:
        "conditional writes of the reconcilers answered 409 Conflict (re-read and retried), by what they wrote",
      labelNames: ["kind"],
      registers,
    });
    this.totalPools = new Gauge({
      name: "spiderpool_total_ippool_counts",
      help: "SpiderIPPools in the cluster",
      registers,
      collect() {
        const c = counts();
        if (c) this.set(c.pools());
      },
    });
    this.totalSubnets = new Gauge({
      name: "spiderpool_total_subnet_counts",
      help: "SpiderSubnets in the cluster",
      registers,
      collect() {
        const c = counts();
        if (c) this.set(c.subnets());
      },
    });
    this.poolTotalIPs = new Gauge({
      name: "spiderpool_ippool_total_ip_counts",
      help: "addresses of a SpiderIPPool (spec.ips minus spec.excludeIPs)",
      labelNames: ["SpiderIPPool"],
      registers,
    });
    this.poolAllocatedIPs = new Gauge({
      name: "spiderpool_ippool_allocated_ip_counts",
      help: "addresses of a SpiderIPPool allocated to pods",
      labelNames: ["SpiderIPPool"],
      registers,
    });
    if (this.#debug) {
      const g = (name: string, help: string, label: string) =>
        new Gauge({ name, help, labelNames: [label], registers });
      this.#debugPool = {
        total: g("spiderpool_debug_ippool_total_ip_counts", "total IPs of a SpiderIPPool", "SpiderIPPool"),
        available: g(
          "spiderpool_debug_ippool_available_ip_counts",
          "IPs of a SpiderIPPool not allocated",
          "SpiderIPPool",
        ),
      };
      this.#debugSubnet = {
        pools: g(
          "spiderpool_debug_subnet_ippool_counts",
          "SpiderIPPools a SpiderSubnet controls",
          "SpiderSubnet",
        ),
        total: g("spiderpool_debug_subnet_total_ip_counts", "total IPs of a SpiderSubnet", "SpiderSubnet"),
        available: g(
          "spiderpool_debug_subnet_available_ip_counts",
          "IPs of a SpiderSubnet not given to any pool",
          "SpiderSubnet",
        ),
      };
    }
  }

  /** Makes `spiderpool_total_ippool_counts` and `spiderpool_total_subnet_counts` read from `counts`. */
  countObjects(counts: ObjectCounts): void {
    this.#counts = counts;
  }

  leadership(leading: boolean): void {
    this.isLeader.set(leading ? 1 : 0);
    this.leadershipChanges.inc({ change: leading ? "started" : "stopped" });
  }

  reconciled(kind: ReconcileKind, result: ReconcileResult, seconds: number): void {
    this.reconciles.inc({ kind, result });
    if (result === "error" || result === "conflict") this.reconcileFailures.inc({ kind });
    this.reconcileDuration.observe({ kind }, seconds);
  }

  wrote(kind: WriteKind): void {
    this.writes[kind]++;
    this.apiWrites.inc({ kind });
  }

  conflicted(kind: WriteKind): void {
    this.conflicts++;
    this.writeConflicts.inc({ kind });
  }

  /** Total writes of every kind (for tests and benchmarks). */
  totalWrites(): number {
    return Object.values(this.writes).reduce((a, b) => a + b, 0);
  }

  pool(name: string, total: number | undefined, allocated: number | undefined): void {
    if (total !== undefined) this.poolTotalIPs.set({ SpiderIPPool: name }, total);
    if (allocated !== undefined) this.poolAllocatedIPs.set({ SpiderIPPool: name }, allocated);
    if (this.#debugPool && total !== undefined) {
      this.#debugPool.total.set({ SpiderIPPool: name }, total);
      if (allocated !== undefined) this.#debugPool.available.set({ SpiderIPPool: name }, total - allocated);
    }
  }

  poolGone(name: string): void {
    this.poolTotalIPs.remove({ SpiderIPPool: name });
    this.poolAllocatedIPs.remove({ SpiderIPPool: name });
    this.#debugPool?.total.remove({ SpiderIPPool: name });
    this.#debugPool?.available.remove({ SpiderIPPool: name });
  }

  subnet(name: string, pools: number, total: number, allocated: number): void {
    if (!this.#debugSubnet) return;
    this.#debugSubnet.pools.set({ SpiderSubnet: name }, pools);
    this.#debugSubnet.total.set({ SpiderSubnet: name }, total);
    this.#debugSubnet.available.set({ SpiderSubnet: name }, total - allocated);
  }

  subnetGone(name: string): void {
    this.#debugSubnet?.pools.remove({ SpiderSubnet: name });
    this.#debugSubnet?.total.remove({ SpiderSubnet: name });
    this.#debugSubnet?.available.remove({ SpiderSubnet: name });
  }
}
