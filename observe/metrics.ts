/**
 * Counters, gauges and histograms with labels, written out in the Prometheus text exposition
 * format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * ```
 * # HELP astralboot_dhcp_replies_total DHCP replies sent, by message type and client kind.
 * # TYPE astralboot_dhcp_replies_total counter
 * astralboot_dhcp_replies_total{type="offer",client="pxe"} 3
 * ```
 *
 * Series appear in the order they were first touched, so a scrape is deterministic. Each
 * metric keeps at most `maxSeries` label combinations: labels come from the wire (status
 * codes, client kinds), and a client must not be able to grow the server's memory without
 * bound; past the limit new combinations are counted in {@linkcode MetricsRegistry.dropped}
 * instead.
 *
 * @module
 */

/** Label values of one series, by label name. */
export type Labels = Readonly<Record<string, string | number>>;

/** The Content-Type of {@linkcode MetricsRegistry.render}'s output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes a label value: backslash, double quote and line feed (format 0.0.4). */
export function escapeLabelValue(value: string): string {
  return value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
}

/** Escapes `# HELP` text: backslash and line feed only (quotes stay as they are). */
export function escapeHelp(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

/** A sample value as Prometheus parses it: `+Inf`, `-Inf`, `NaN`, else the shortest decimal. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

function labelText(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return "";
  return `{${names.map((n, i) => `${n}="${escapeLabelValue(values[i]!)}"`).join(",")}}`;
}

/** What every metric kind shares: name, help, label names and the series table. */
abstract class Metric<S> {
  readonly #series = new Map<string, { values: string[]; state: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly type: "counter" | "gauge" | "histogram",
    readonly registry: MetricsRegistry,
  ) {
    if (!METRIC_NAME.test(name)) throw new RangeError(`Invalid metric name: ${name}`);
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith("__") || l === "le") {
        throw new RangeError(`Invalid label name for ${name}: ${l}`);
      }
    }
  }

  protected abstract fresh(): S;

  #wrongLabels(labels: Labels): never {
    throw new RangeError(
      `${this.name} takes labels [${this.labelNames.join(", ")}], got [${
        Object.keys(labels).join(", ")
      }]`,
    );
  }

  /** The state of the series `labels` names, created on first use (null past the limit). */
  protected series(labels: Labels): S | null {
    // Every request counts a few series: the key is built without intermediate arrays.
    const names = this.labelNames;
    let key = "";
    for (let i = 0; i < names.length; i++) {
      const v = labels[names[i]!];
      if (v === undefined) return this.#wrongLabels(labels);
      key = i === 0 ? String(v) : `${key}\u0000${v}`;
    }
    // Extra labels are a mistake too (counted without building an array).
    let given = 0;
    for (const _ in labels) given++;
    if (given !== names.length) return this.#wrongLabels(labels);
    let s = this.#series.get(key);
    if (!s) {
      const values = names.map((n) => String(labels[n]));
      if (this.#series.size >= this.registry.maxSeries) {
        this.registry.dropped++;
        return null;
      }
      this.#series.set(key, s = { values, state: this.fresh() });
    }
    return s.state;
  }

  /** Every series: label values in label-name order and the state. */
  protected entries(): { values: string[]; state: S }[] {
    return [...this.#series.values()];
  }

  /** Forgets every series (gauges rebuilt on each scrape). */
  reset(): void {
    this.#series.clear();
  }

  /** The sample lines of this metric (without HELP and TYPE). */
  abstract samples(): string[];

  /** HELP, TYPE and samples; a metric without series still announces itself. */
  render(): string {
    const head = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${this.type}\n`;
    const lines = this.samples();
    return head + (lines.length ? lines.join("\n") + "\n" : "");
  }
}

/** Counter and gauge: one number per series. */
abstract class Scalar extends Metric<{ v: number }> {
  protected fresh(): { v: number } {
    return { v: 0 };
  }

  /** The current value of a series (0 when never touched). */
  get(labels: Labels = {}): number {
    return this.entries().find((e) => same(this.labelNames, e.values, labels))?.state.v ?? 0;
  }

  /** The sum over every series: a headline number. */
  total(): number {
    return this.entries().reduce((n, e) => n + e.state.v, 0);
  }

  protected add(labels: Labels, by: number): void {
    const s = this.series(labels);
    if (s) s.v += by;
  }

  samples(): string[] {
    return this.entries().map((e) =>
      `${this.name}${labelText(this.labelNames, e.values)} ${formatValue(e.state.v)}`
    );
  }
}

/** A value that only goes up (restarts reset it; Prometheus' rate() handles that). */
export class Counter extends Scalar {
  /** Adds `by` (default 1, never negative) to the series `labels` names. */
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0)) throw new RangeError(`${this.name}: a counter cannot go down (${by})`);
    this.add(labels, by);
  }
}

/** A value that goes up and down: set directly, or computed on scrape. */
export class Gauge extends Scalar {
  /** Sets the series `labels` names to `value`. */
  set(labels: Labels, value: number): void {
    const s = this.series(labels);
    if (s) s.v = value;
  }

  /** Adds `by` (may be negative) to the series. */
  inc(labels: Labels = {}, by = 1): void {
    this.add(labels, by);
  }
}

interface HistogramState {
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into cumulative `le` buckets, with their sum and count. */
export class Histogram extends Metric<HistogramState> {
  /** Upper bounds, ascending, without +Inf (always added). */
  readonly buckets: readonly number[];

  constructor(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly string[],
    registry: MetricsRegistry,
  ) {
    super(name, help, labelNames, "histogram", registry);
    const sorted = [...new Set(buckets.filter((b) => b !== Infinity))].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b) => !Number.isFinite(b))) {
      throw new RangeError(`${name}: buckets must be finite numbers, got [${buckets.join(", ")}]`);
    }
    this.buckets = sorted;
  }

  protected fresh(): HistogramState {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  /** Counts one observation into the series `labels` names. */
  observe(labels: Labels, value: number): void {
    const s = this.series(labels);
    if (!s) return;
    // Stored per bucket and summed on output: one increment per observation.
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** Count and sum of a series (zeros when never touched). */
  get(labels: Labels = {}): { count: number; sum: number } {
    const s = this.entries().find((e) => same(this.labelNames, e.values, labels))?.state;
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  samples(): string[] {
    const out: string[] = [];
    const names = [...this.labelNames, "le"];
    for (const e of this.entries()) {
      let cumulative = 0;
      this.buckets.forEach((b, i) => {
        cumulative += e.state.counts[i]!;
        const labels = labelText(names, [...e.values, formatValue(b)]);
        out.push(`${this.name}_bucket${labels} ${cumulative}`);
      });
      out.push(`${this.name}_bucket${labelText(names, [...e.values, "+Inf"])} ${e.state.count}`);
      const plain = labelText(this.labelNames, e.values);
      out.push(`${this.name}_sum${plain} ${formatValue(e.state.sum)}`);
      out.push(`${this.name}_count${plain} ${e.state.count}`);
    }
    return out;
  }
}

function same(names: readonly string[], values: readonly string[], labels: Labels): boolean {
  return names.every((n, i) => String(labels[n]) === values[i]);
}

/** Options for {@linkcode MetricsRegistry}. */
export interface MetricsRegistryOptions {
  /** Most label combinations one metric keeps; default 500. */
  maxSeries?: number;
}

/** The metrics of one process, rendered together for a scrape. */
export class MetricsRegistry {
  readonly maxSeries: number;
  /** Label combinations refused because a metric had `maxSeries` already. */
  dropped = 0;
  readonly #metrics = new Map<string, Metric<unknown>>();
  readonly #collectors: (() => void)[] = [];

  constructor(options: MetricsRegistryOptions = {}) {
    this.maxSeries = options.maxSeries ?? 500;
  }

  #add<M extends Metric<unknown>>(metric: M): M {
    if (this.#metrics.has(metric.name)) {
      throw new RangeError(`Metric ${metric.name} is registered already`);
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  /** Registers a counter; by convention its name ends in `_total`. */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames, "counter", this));
  }

  /** Registers a gauge. */
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames, "gauge", this));
  }

  /** Registers a histogram with the given upper bucket bounds (+Inf is implied). */
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly string[] = [],
  ): Histogram {
    return this.#add(new Histogram(name, help, buckets, labelNames, this));
  }

  /** Runs `fn` before every render: gauges read from elsewhere (lease table, memory). */
  onCollect(fn: () => void): void {
    this.#collectors.push(fn);
  }

  /** The whole exposition, metrics in registration order; collectors run first. */
  render(): string {
    for (const fn of this.#collectors) fn();
    return [...this.#metrics.values()].map((m) => m.render()).join("");
  }
}
