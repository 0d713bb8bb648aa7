// The Prometheus text exposition (format 0.0.4) of the agent's counters, gauges and histograms, in a few
// dozen lines instead of prom-client (≈ 11 MiB of the agent's memory at rest). Metrics are declared with
// prom-client's options (`name`, `help`, `labelNames`, `buckets`, `registers`) and the text is byte for byte
// what prom-client 15 writes for the same metrics (tests/unit/agent_exposition.test.ts compares the two), so
// dashboards and the controller, which keeps prom-client, read the same series.

export type Labels = Record<string, string | number>;

/** The options of a metric, as prom-client takes them. */
export interface MetricOptions {
  name: string;
  help: string;
  labelNames?: readonly string[];
  /** The registries it is exposed in. */
  registers: Registry[];
  /** Called before each scrape (`Registry.scrape`) to bring the series up to date, as prom-client's `collect`. */
  collect?: () => void | Promise<void>;
}

/** One labelled series: the labels as first given (their order is the output order) and its state. */
interface Series<S> {
  labels: Labels;
  state: S;
}

abstract class Metric<S> {
  readonly #series = new Map<string, Series<S>>();

  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly collect?: () => void | Promise<void>;

  constructor(o: MetricOptions, readonly type: "counter" | "gauge" | "histogram") {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(o.name)) {
      throw new Error(`invalid metric name ${JSON.stringify(o.name)}`);
    }
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    this.collect = o.collect;
    for (const r of o.registers) r.register(this);
    this.reset();
  }

  /** Forgets every series (a metric without labels keeps its one series, at zero, as prom-client prints it). */
  reset(): void {
    this.#series.clear();
    if (this.labelNames.length === 0) this.#series.set("", { labels: {}, state: this.initial() });
  }

  protected abstract initial(): S;

  /** The series of `labels`, created on first use; throws for a label name the metric does not declare. */
  protected series(labels: Labels): S {
    for (const k of Object.keys(labels)) {
      if (!this.labelNames.includes(k)) {
        throw new Error(`metric ${this.name} has no label "${k}" (labels: ${this.labelNames.join(", ")})`);
      }
    }
    const key = Object.keys(labels).sort().map((k) => `${k}:${labels[k]}`).join(",");
    let s = this.#series.get(key);
    if (!s) this.#series.set(key, s = { labels, state: this.initial() });
    return s.state;
  }

  /** The state of the series of `labels`, undefined when it was never used (for tests and benchmarks). */
  protected peek(labels: Labels = {}): S | undefined {
    const key = Object.keys(labels).sort().map((k) => `${k}:${labels[k]}`).join(",");
    return this.#series.get(key)?.state;
  }

  /** The sample lines of one series. */
  protected abstract samples(labels: Labels, state: S): string[];

  /** HELP, TYPE and every sample, without a trailing newline. */
  render(): string {
    const lines = [`# HELP ${this.name} ${escape(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const { labels, state } of this.#series.values()) lines.push(...this.samples(labels, state));
    return lines.join("\n");
  }
}

/** A number as prom-client prints it. */
function value(v: number): string {
  if (Number.isNaN(v)) return "Nan";
  if (!Number.isFinite(v)) return v < 0 ? "-Inf" : "+Inf";
  return `${v}`;
}

function escape(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function labelText(...parts: Labels[]): string {
  const text = parts.flatMap((p) =>
    Object.entries(p).map(([k, v]) => `${k}="${typeof v === "string" ? escape(v).replace(/"/g, '\\"') : v}"`)
  );
  return text.length > 0 ? `{${text.join(",")}}` : "";
}

function splitArgs(a?: Labels | number, b?: number): [Labels, number | undefined] {
  return typeof a === "object" ? [a, b] : [{}, a];
}

export class Counter extends Metric<{ v: number }> {
  constructor(o: MetricOptions) {
    super(o, "counter");
  }
  protected initial() {
    return { v: 0 };
  }
  /** Adds `by` (default 1, never negative) to the series of `labels`. */
  inc(labels?: Labels | number, by?: number): void {
    const [l, n = 1] = splitArgs(labels, by);
    if (!(n >= 0)) throw new Error(`counter ${this.name} cannot be increased by ${n}`);
    this.series(l).v += n;
  }
  /** The current value of the series of `labels` (0 when never increased). */
  value(labels?: Labels): number {
    return this.peek(labels)?.v ?? 0;
  }
  protected samples(labels: Labels, s: { v: number }) {
    return [`${this.name}${labelText(labels)} ${value(s.v)}`];
  }
}

export class Gauge extends Metric<{ v: number }> {
  constructor(o: MetricOptions) {
    super(o, "gauge");
  }
  protected initial() {
    return { v: 0 };
  }
  set(labels: Labels | number, v?: number): void {
    const [l, n] = splitArgs(labels, v);
    this.series(l).v = n ?? 0;
  }
  inc(labels?: Labels | number, by?: number): void {
    const [l, n = 1] = splitArgs(labels, by);
    this.series(l).v += n;
  }
  dec(labels?: Labels | number, by?: number): void {
    const [l, n = 1] = splitArgs(labels, by);
    this.series(l).v -= n;
  }
  /** The current value of the series of `labels` (0 when never set). */
  value(labels?: Labels): number {
    return this.peek(labels)?.v ?? 0;
  }
  protected samples(labels: Labels, s: { v: number }) {
    return [`${this.name}${labelText(labels)} ${value(s.v)}`];
  }
}

interface HistogramState {
  /** Observations per bucket (not cumulative), in bucket order. */
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Metric<HistogramState> {
  readonly buckets: readonly number[];

  constructor(o: MetricOptions & { buckets: number[] }) {
    if (o.labelNames?.includes("le")) throw new Error(`histogram ${o.name}: "le" is a reserved label`);
    super(o, "histogram");
    this.buckets = [...o.buckets];
  }
  protected initial(): HistogramState {
    return { counts: [], sum: 0, count: 0 };
  }
  observe(labels: Labels | number, v?: number): void {
    const [l, n] = splitArgs(labels, v);
    if (n === undefined || !Number.isFinite(n)) {
      throw new Error(`histogram ${this.name}: ${n} is not a number`);
    }
    const s = this.series(l);
    s.sum += n;
    s.count += 1;
    const i = this.buckets.findIndex((b) => n <= b);
    if (i >= 0) s.counts[i] = (s.counts[i] ?? 0) + 1;
  }
  protected samples(labels: Labels, s: HistogramState) {
    // As prom-client: `le` comes before the series' own labels.
    let acc = 0;
    const lines = this.buckets.map((b, i) => {
      acc += s.counts[i] ?? 0;
      return `${this.name}_bucket${labelText({ le: b }, labels)} ${value(acc)}`;
    });
    lines.push(`${this.name}_bucket${labelText({ le: "+Inf" }, labels)} ${value(s.count)}`);
    lines.push(`${this.name}_sum${labelText(labels)} ${value(s.sum)}`);
    lines.push(`${this.name}_count${labelText(labels)} ${value(s.count)}`);
    return lines;
  }
}

/** A set of metrics exposed together, in the order they were created. */
export class Registry {
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #metrics = new Map<string, { render(): string; collect?: () => void | Promise<void> }>();

  register(m: { name: string; render(): string; collect?: () => void | Promise<void> }): void {
    if (this.#metrics.has(m.name)) throw new Error(`a metric named ${m.name} is already registered`);
    this.#metrics.set(m.name, m);
  }

  /** The exposition text, as prom-client's `Registry.metrics()` writes it. */
  metrics(): string {
    return `${[...this.#metrics.values()].map((m) => m.render()).join("\n\n")}\n`;
  }

  /** The exposition text after every metric's `collect` ran (what `/metrics` serves). */
  async scrape(): Promise<string> {
    for (const m of this.#metrics.values()) await m.collect?.();
    return this.metrics();
  }
}
