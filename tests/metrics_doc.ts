/**
 * The metrics reference of docs/OPERATING.md, generated from what `observe/watch.ts` registers
 * (a registry that records each registration), so the document cannot drift from the program:
 * tests/operating_doc_test.ts fails when they differ.
 *
 *   deno run -A tests/metrics_doc.ts           # print the table
 *   deno run -A tests/metrics_doc.ts --write   # put it into docs/OPERATING.md
 *
 * @module
 */
import { BootWatch } from "../observe/watch.ts";
import { type Counter, type Gauge, type Histogram, MetricsRegistry } from "../observe/metrics.ts";

/** One registered metric. */
export interface MetricRow {
  name: string;
  type: "counter" | "gauge" | "histogram";
  help: string;
  labels: readonly string[];
}

/** A registry that remembers what was registered, in order. */
class RecordingRegistry extends MetricsRegistry {
  readonly rows: MetricRow[] = [];

  override counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    this.rows.push({ name, type: "counter", help, labels: labelNames });
    return super.counter(name, help, labelNames);
  }

  override gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    this.rows.push({ name, type: "gauge", help, labels: labelNames });
    return super.gauge(name, help, labelNames);
  }

  override histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    labelNames: readonly string[] = [],
  ): Histogram {
    this.rows.push({ name, type: "histogram", help, labels: labelNames });
    return super.histogram(name, help, buckets, labelNames);
  }
}

/** Every metric a running server exports, as the watch registers them. */
export function registeredMetrics(): MetricRow[] {
  const registry = new RecordingRegistry();
  const watch = new BootWatch({ version: "0", metrics: registry });
  watch.close();
  return registry.rows;
}

/** The first line of the generated block in docs/OPERATING.md. */
export const BEGIN =
  "<!-- metrics: made by `deno run -A tests/metrics_doc.ts --write`; checked by tests/operating_doc_test.ts -->";
/** The line after the generated block. */
export const END = "<!-- metrics end -->";

/** The Markdown table of `rows`, between {@linkcode BEGIN} and {@linkcode END}. */
export function metricsTable(rows: readonly MetricRow[]): string {
  const cell = (s: string) => s.replaceAll("|", "\\|");
  return [
    BEGIN,
    "",
    "| metric | type | labels | meaning |",
    "| ------ | ---- | ------ | ------- |",
    ...rows.map((r) =>
      `| \`${r.name}\` | ${r.type} | ${r.labels.map((l) => `\`${l}\``).join(", ") || "-"} | ${
        cell(r.help)
      } |`
    ),
    "",
    END,
  ].join("\n");
}

/** The generated block of `doc`, or null when it has none. */
export function generatedBlock(doc: string): string | null {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  return start < 0 || end < start ? null : doc.slice(start, end + END.length);
}

/** The path of docs/OPERATING.md. */
export const OPERATING = new URL("../docs/OPERATING.md", import.meta.url);

if (import.meta.main) {
  const table = metricsTable(registeredMetrics());
  if (Deno.args[0] === "--write") {
    const doc = await Deno.readTextFile(OPERATING);
    const block = generatedBlock(doc);
    if (block === null) throw new Error(`docs/OPERATING.md has no ${BEGIN} … ${END} block`);
    await Deno.writeTextFile(OPERATING, doc.replace(block, table));
    // deno fmt pads the table's columns; the check compares the cells, not the padding.
    await new Deno.Command(Deno.execPath(), { args: ["fmt", OPERATING.pathname] }).output();
  } else {
    console.log(table);
  }
}
