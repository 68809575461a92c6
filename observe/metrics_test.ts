import assert from "node:assert/strict";
import {
  escapeHelp,
  escapeLabelValue,
  formatValue,
  MetricsRegistry,
  PROMETHEUS_CONTENT_TYPE,
} from "./metrics.ts";

Deno.test("a registry renders the text exposition format 0.0.4 (golden)", () => {
  const r = new MetricsRegistry();
  const replies = r.counter("t_replies_total", "Replies sent.", ["type", "client"]);
  const up = r.gauge("t_up", "Whether it runs.");
  const secs = r.histogram("t_seconds", "Durations.", [0.5, 0.1, 1], ["op"]);
  r.counter("t_unused_total", "Never touched.");
  replies.inc({ type: "offer", client: "pxe" });
  replies.inc({ client: "pxe", type: "offer" }, 2);
  replies.inc({ type: "ack", client: 'say "hi"\\\n' });
  up.set({}, 1);
  for (const v of [0.1, 0.3, 0.7, 5]) secs.observe({ op: "get" }, v);
  assert.equal(
    r.render(),
    `# HELP t_replies_total Replies sent.
# TYPE t_replies_total counter
t_replies_total{type="offer",client="pxe"} 3
t_replies_total{type="ack",client="say \\"hi\\"\\\\\\n"} 1
# HELP t_up Whether it runs.
# TYPE t_up gauge
t_up 1
# HELP t_seconds Durations.
# TYPE t_seconds histogram
t_seconds_bucket{op="get",le="0.1"} 1
t_seconds_bucket{op="get",le="0.5"} 2
t_seconds_bucket{op="get",le="1"} 3
t_seconds_bucket{op="get",le="+Inf"} 4
t_seconds_sum{op="get"} 6.1
t_seconds_count{op="get"} 4
# HELP t_unused_total Never touched.
# TYPE t_unused_total counter
`,
  );
  assert.equal(PROMETHEUS_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
});

Deno.test("escaping follows the format: label values and HELP text differ", async (t) => {
  const cases: [string, string, string][] = [
    // input, as a label value, as HELP text
    ["plain", "plain", "plain"],
    ['a "quoted" word', 'a \\"quoted\\" word', 'a "quoted" word'],
    ["back\\slash", "back\\\\slash", "back\\\\slash"],
    ["two\nlines", "two\\nlines", "two\\nlines"],
    ["tab\tstays", "tab\tstays", "tab\tstays"],
    ["ünïcode ✓", "ünïcode ✓", "ünïcode ✓"],
  ];
  for (const [input, label, help] of cases) {
    await t.step(JSON.stringify(input), () => {
      assert.equal(escapeLabelValue(input), label);
      assert.equal(escapeHelp(input), help);
    });
  }
});

Deno.test("values are written the way Prometheus parses them", async (t) => {
  const cases: [number, string][] = [
    [0, "0"],
    [42, "42"],
    [-3, "-3"],
    [0.25, "0.25"],
    [1e21, "1e+21"],
    [NaN, "NaN"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
  ];
  for (const [value, text] of cases) {
    await t.step(`${value} → ${text}`, () => assert.equal(formatValue(value), text));
  }
});

Deno.test("a histogram bucket includes its upper bound (le is ≤)", () => {
  const r = new MetricsRegistry();
  const h = r.histogram("t_h", "h", [1, 2]);
  h.observe({}, 1);
  h.observe({}, 2);
  h.observe({}, 2.0001);
  const lines = r.render().split("\n");
  assert.ok(lines.includes('t_h_bucket{le="1"} 1'));
  assert.ok(lines.includes('t_h_bucket{le="2"} 2'));
  assert.ok(lines.includes('t_h_bucket{le="+Inf"} 3'));
  assert.deepEqual(h.get(), { count: 3, sum: 5.0001 });
});

Deno.test("misuse is refused with a RangeError naming the metric", async (t) => {
  const r = new MetricsRegistry();
  const c = r.counter("t_c_total", "c", ["kind"]);
  const cases: [string, () => unknown, RegExp][] = [
    ["metric name with a dash", () => r.counter("t-bad", "x"), /Invalid metric name: t-bad/],
    ["label name with a dash", () => r.gauge("t_g", "x", ["a-b"]), /Invalid label name/],
    ["reserved label name", () => r.gauge("t_g2", "x", ["__x"]), /Invalid label name/],
    ["le on a histogram", () => r.histogram("t_h", "x", [1], ["le"]), /Invalid label name/],
    ["registered twice", () => r.counter("t_c_total", "again"), /registered already/],
    ["missing label", () => c.inc({}), /t_c_total takes labels \[kind\], got \[\]/],
    ["extra label", () => c.inc({ kind: "a", more: "b" }), /takes labels/],
    ["counter going down", () => c.inc({ kind: "a" }, -1), /cannot go down/],
    ["NaN increment", () => c.inc({ kind: "a" }, NaN), /cannot go down/],
    ["no buckets", () => r.histogram("t_h2", "x", []), /buckets must be finite/],
    ["NaN bucket", () => r.histogram("t_h3", "x", [NaN]), /buckets must be finite/],
  ];
  for (const [what, fn, message] of cases) {
    await t.step(
      what,
      () => assert.throws(fn, (e) => e instanceof RangeError && message.test(e.message)),
    );
  }
  assert.equal(c.get({ kind: "a" }), 0);
  await t.step("an extra label on a series that exists already", () => {
    c.inc({ kind: "b" });
    assert.throws(
      () => c.inc({ kind: "b", more: "c" }),
      /takes labels \[kind\], got \[kind, more\]/,
    );
    assert.equal(c.get({ kind: "b" }), 1);
  });
});

Deno.test("a metric keeps at most maxSeries label combinations; the rest is counted", () => {
  const r = new MetricsRegistry({ maxSeries: 3 });
  const c = r.counter("t_c_total", "c", ["status"]);
  for (let i = 0; i < 10; i++) c.inc({ status: 200 + i });
  c.inc({ status: 200 });
  assert.equal(c.get({ status: 200 }), 2);
  assert.equal(c.get({ status: 209 }), 0);
  assert.equal(r.render().split("\n").filter((l) => l.startsWith("t_c_total{")).length, 3);
  assert.equal(r.dropped, 7);
  assert.equal(c.total(), 4);
});

Deno.test("collectors run before every render; reset gauges lose old series", () => {
  const r = new MetricsRegistry();
  const g = r.gauge("t_rows", "rows", ["state"]);
  let rows = [["bound", 2], ["offered", 1]] as const;
  r.onCollect(() => {
    g.reset();
    for (const [state, n] of rows) g.set({ state }, n);
  });
  assert.match(r.render(), /t_rows\{state="offered"\} 1/);
  rows = [["bound", 3]] as unknown as typeof rows;
  const text = r.render();
  assert.match(text, /^t_rows\{state="bound"\} 3$/m);
  assert.doesNotMatch(text, /offered/);
});
