// Prometheus metrics of the admission webhooks, snake_case like the rest of Spiderpool's metrics: how many
// admissions each webhook answered and how long they took, by kind, operation and verdict.

import { Counter, Histogram, type Registry } from "prom-client";

/** `allowed`, `denied` (a rule refused the object) or `error` (the controller could not decide). */
export type Verdict = "allowed" | "denied" | "error";

const LABELS = ["webhook", "kind", "operation", "verdict"] as const;
/** Admission takes milliseconds; upstream's 0.1–15 s buckets would put every answer in the first one. */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class WebhookMetrics {
  readonly #counts: Counter<typeof LABELS[number]>;
  readonly #duration: Histogram<typeof LABELS[number]>;
  readonly #ledgerConflicts: Counter;

  constructor(registry: Registry) {
    this.#counts = new Counter({
      // prom-client appends nothing; Prometheus exposition of counters conventionally ends in _total.
      name: "spiderpool_webhook_admission_counts_total",
      help: "admission requests answered, by webhook (mutating/validating), kind, operation and verdict",
      labelNames: LABELS,
      registers: [registry],
    });
    this.#duration = new Histogram({
      name: "spiderpool_webhook_admission_duration_seconds",
      help: "time to answer an admission request, by webhook, kind, operation and verdict",
      labelNames: LABELS,
      buckets: BUCKETS,
      registers: [registry],
    });
    this.#ledgerConflicts = new Counter({
      name: "spiderpool_webhook_admission_ledger_conflict_counts_total",
      help: "admission ledger writes that lost to a concurrent admission and were decided again",
      registers: [registry],
    });
  }

  observe(
    labels: { webhook: "mutating" | "validating"; kind: string; operation: string; verdict: Verdict },
    seconds: number,
  ): void {
    this.#counts.inc(labels);
    this.#duration.observe(labels, seconds);
  }

  ledgerConflict(): void {
    this.#ledgerConflicts.inc();
  }
}
