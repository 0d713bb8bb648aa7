// The IP GC's Prometheus metrics under Spiderpool's snake_case names (spec §10): releases and failures
// (`spiderpool_ip_gc_counts`, `spiderpool_ip_gc_failure_counts`), releases by reason, traced pods, records
// waiting out the unconfirmed grace, and scan-all durations, on the registry the controller passes in.

import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { GcReason } from "../../ipam/gc.ts";

/** A scan of 10,000 records takes seconds, not the sub-second buckets of the IPAM metrics. */
const SCAN_BUCKETS = [0.1, 0.3, 0.5, 1, 3, 5, 7, 10, 15, 30, 60, 120];

export type ScanTrigger = "startup" | "interval" | "request" | "leader";

export class GcMetrics {
  readonly released: Counter;
  readonly failures: Counter;
  readonly byReason: Counter<"reason">;
  readonly endpointsDeleted: Counter<"reason">;
  readonly poolConflicts: Counter;
  readonly scans: Counter<"trigger">;
  readonly scanDuration: Histogram<"trigger">;
  readonly traced: Gauge;
  readonly deferred: Gauge;

  constructor(registry: Registry, sizes: { traced: () => number; deferred: () => number }) {
    const registers = [registry];
    // prom-client appends nothing; Prometheus exposition of counters conventionally ends in _total.
    this.released = new Counter({
      name: "spiderpool_ip_gc_counts_total",
      help: "IP addresses released by the IP GC",
      registers,
    });
    this.failures = new Counter({
      name: "spiderpool_ip_gc_failure_counts_total",
      help: "IP GC release attempts that failed (retried later)",
      registers,
    });
    this.byReason = new Counter({
      name: "spiderpool_ip_gc_release_counts_total",
      help: "IP addresses released by the IP GC, by reason",
      labelNames: ["reason"],
      registers,
    });
    this.endpointsDeleted = new Counter({
      name: "spiderpool_ip_gc_endpoint_deletion_counts_total",
      help: "SpiderEndpoints deleted by the IP GC, by reason",
      labelNames: ["reason"],
      registers,
    });
    this.poolConflicts = new Counter({
      name: "spiderpool_ipam_release_update_ippool_conflict_counts_total",
      help: "IP GC pool status updates that lost to a concurrent writer (409) and were retried",
      registers,
    });
    this.scans = new Counter({
      name: "spiderpool_ip_gc_scan_counts_total",
      help: "scan-all runs of the IP GC, by trigger",
      labelNames: ["trigger"],
      registers,
    });
    this.scanDuration = new Histogram({
      name: "spiderpool_ip_gc_scan_duration_seconds",
      help: "duration of one IP GC scan-all",
      labelNames: ["trigger"],
      buckets: SCAN_BUCKETS,
      registers,
    });
    this.traced = new Gauge({
      name: "spiderpool_ip_gc_traced_entries",
      help: "pods the IP GC traces (terminating, finished or deleted, waiting for their stop time)",
      registers,
      collect() {
        this.set(sizes.traced());
      },
    });
    this.deferred = new Gauge({
      name: "spiderpool_ip_gc_deferred_records",
      help:
        "pool records no SpiderEndpoint confirms, waiting out SPIDERPOOL_GC_UNCONFIRMED_RECORD_GRACE_DURATION",
      registers,
      collect() {
        this.set(sizes.deferred());
      },
    });
  }

  releasedIPs(reason: GcReason, n: number): void {
    if (n === 0) return;
    this.released.inc(n);
    this.byReason.inc({ reason }, n);
  }
}
