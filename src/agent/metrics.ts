// The agent's Prometheus metrics under Spiderpool's snake_case names (`spiderpool_ipam_*`), on a registry per
// agent so that two agents in one process (tests) do not share counters. Also counts API writes, which the
// benchmark reports per pod. Exposed by the small writer of exposition.ts (the text prom-client would write).

import { Counter, Gauge, Histogram, Registry } from "./exposition.ts";

const BUCKETS = [0.1, 0.3, 0.5, 1, 3, 5, 7, 10, 15];

/** average/max/min/latest gauges plus a histogram for one duration, named like upstream's. */
class DurationSet {
  #count = 0;
  #sum = 0;
  #max = 0;
  #min = Number.POSITIVE_INFINITY;
  readonly #avg: Gauge;
  readonly #maxG: Gauge;
  readonly #minG: Gauge;
  readonly #latest: Gauge;
  readonly #hist: Histogram;

  /** Names are `<base>_<stat>_<what>_seconds` and the histogram `<base>_<what>_seconds`. */
  constructor(registry: Registry, base: string, what: string, help: string) {
    const g = (stat: string) =>
      new Gauge({ name: `${base}_${stat}_${what}_seconds`, help: `${stat} ${help}`, registers: [registry] });
    this.#avg = g("average");
    this.#maxG = g("max");
    this.#minG = g("min");
    this.#latest = g("latest");
    this.#hist = new Histogram({
      name: `${base}_${what}_seconds`,
      help,
      buckets: BUCKETS,
      registers: [registry],
    });
  }

  observe(seconds: number): void {
    this.#count++;
    this.#sum += seconds;
    this.#max = Math.max(this.#max, seconds);
    this.#min = Math.min(this.#min, seconds);
    this.#avg.set(this.#sum / this.#count);
    this.#maxG.set(this.#max);
    this.#minG.set(this.#min);
    this.#latest.set(seconds);
    this.#hist.observe(seconds);
  }
}

/** Why an allocation failed, as upstream's per-reason counters split it. */
export type AllocationFailure = "internal" | "no_available_pool" | "retries_exhausted" | "ip_used_out";
/** Why a release failed. */
export type ReleaseFailure = "internal" | "retries_exhausted";

export class AgentMetrics {
  readonly registry = new Registry();
  readonly allocations = this.#counter("spiderpool_ipam_allocation_counts", "IP allocation requests");
  readonly allocationFailures = this.#counter(
    "spiderpool_ipam_allocation_failure_counts",
    "failed allocations",
  );
  readonly allocationConflicts = this.#counter(
    "spiderpool_ipam_allocation_update_ippool_conflict_counts",
    "SpiderIPPool status updates during allocation that hit a resourceVersion conflict",
  );
  readonly #allocationErrors: Record<AllocationFailure, Counter> = {
    internal: this.#counter(
      "spiderpool_ipam_allocation_err_internal_counts",
      "allocations failed internally",
    ),
    no_available_pool: this.#counter(
      "spiderpool_ipam_allocation_err_no_available_pool_counts",
      "allocations failed because no pool was a candidate",
    ),
    retries_exhausted: this.#counter(
      "spiderpool_ipam_allocation_err_retries_exhausted_counts",
      "allocations failed after exhausting conflict retries",
    ),
    ip_used_out: this.#counter(
      "spiderpool_ipam_allocation_err_ip_used_out_counts",
      "allocations failed because every candidate pool was exhausted",
    ),
  };
  readonly releases = this.#counter("spiderpool_ipam_release_counts", "IP release requests");
  readonly releaseFailures = this.#counter("spiderpool_ipam_release_failure_counts", "failed releases");
  readonly releaseConflicts = this.#counter(
    "spiderpool_ipam_release_update_ippool_conflict_counts",
    "SpiderIPPool status updates during release that hit a resourceVersion conflict",
  );
  readonly #releaseErrors: Record<ReleaseFailure, Counter> = {
    internal: this.#counter("spiderpool_ipam_release_err_internal_counts", "releases failed internally"),
    retries_exhausted: this.#counter(
      "spiderpool_ipam_release_err_retries_exhausted_counts",
      "releases failed after exhausting conflict retries",
    ),
  };
  readonly allocationDuration = new DurationSet(
    this.registry,
    "spiderpool_ipam_allocation",
    "duration",
    "IP allocation duration",
  );
  readonly allocationLimitDuration = new DurationSet(
    this.registry,
    "spiderpool_ipam_allocation",
    "limit_duration",
    "time allocations waited for their pool's committer",
  );
  readonly releaseDuration = new DurationSet(
    this.registry,
    "spiderpool_ipam_release",
    "duration",
    "IP release duration",
  );
  readonly releaseLimitDuration = new DurationSet(
    this.registry,
    "spiderpool_ipam_release",
    "limit_duration",
    "time releases waited for their pool's committer",
  );
  /** Writes to the API server by object kind: `ippool_status`, `endpoint`. */
  readonly apiWrites = new Counter({
    name: "spiderpool_agent_api_writes_total",
    help: "create/update/patch/delete requests the agent sent to the API server",
    labelNames: ["kind"],
    registers: [this.registry],
  });
  /** Pool status update requests (conflicts included), also as plain numbers for tests and benchmarks. */
  poolStatusWrites = 0;
  endpointWrites = 0;
  /** SpiderEndpoint reads from the API server (not exposed: for tests and benchmarks). */
  endpointReads = 0;

  allocationFailed(reason: AllocationFailure): void {
    this.allocationFailures.inc();
    this.#allocationErrors[reason].inc();
  }

  releaseFailed(reason: ReleaseFailure): void {
    this.releaseFailures.inc();
    this.#releaseErrors[reason].inc();
  }

  poolStatusWritten(): void {
    this.poolStatusWrites++;
    this.apiWrites.inc({ kind: "ippool_status" });
  }

  endpointWritten(): void {
    this.endpointWrites++;
    this.apiWrites.inc({ kind: "endpoint" });
  }

  #counter(name: string, help: string): Counter {
    // prom-client appends nothing; Prometheus exposition of counters conventionally ends in _total.
    return new Counter({ name: `${name}_total`, help, registers: [this.registry] });
  }
}
