import assert from "node:assert/strict";
import { MetricsRegistry } from "./metrics.ts";
import { parseMaxFds, parseProcStat, registerProcessMetrics } from "./process_metrics.ts";

function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

Deno.test("parseProcStat: CPU seconds and virtual size, even with spaces in the name", () => {
  const stat = "4242 (deno (main) x) S 1 4242 4242 0 -1 4194560 9083 0 0 0 " +
    "250 75 0 0 20 0 12 0 1234567 3221225472 20000 18446744073709551615";
  assert.deepEqual(parseProcStat(stat), { cpuSeconds: 3.25, virtualBytes: 3221225472 });
  assert.equal(parseProcStat("garbage"), null);
  assert.equal(parseProcStat("1 (x) S 1 2"), null);
});

Deno.test("parseMaxFds: the soft limit, none when unlimited", () => {
  const limits = "Limit                     Soft Limit           Hard Limit           Units\n" +
    "Max open files            1024                 524288               files\n";
  assert.equal(parseMaxFds(limits), 1024);
  assert.equal(parseMaxFds(limits.replace("1024  ", "unlimited")), null);
  assert.equal(parseMaxFds(""), null);
});

Deno.test("process metrics under their standard names, read from this process", async () => {
  const r = new MetricsRegistry();
  const p = registerProcessMetrics(r);
  try {
    let text = r.render();
    assert.ok(sample(text, "process_resident_memory_bytes")! > 1e6);
    assert.ok(sample(text, "process_virtual_memory_bytes")! > 1e6);
    assert.ok(sample(text, "process_open_fds")! >= 3);
    assert.ok(sample(text, "process_max_fds")! >= 64);
    assert.ok(sample(text, "astralboot_heap_used_bytes")! > 1e5);
    assert.ok(
      sample(text, "astralboot_heap_total_bytes")! >= sample(text, "astralboot_heap_used_bytes")!,
    );
    assert.ok(sample(text, "astralboot_external_memory_bytes")! > 0);
    assert.ok(
      Math.abs(sample(text, "process_start_time_seconds")! - performance.timeOrigin / 1000) < 1,
    );
    const cpu = sample(text, "process_cpu_seconds_total")!;
    assert.ok(cpu > 0);
    // Without the sampler there is no lag figure rather than a made-up zero.
    assert.equal(sample(text, "astralboot_event_loop_lag_seconds"), undefined);
    p.sampleEventLoop();
    await new Promise((r) => setTimeout(r, 300));
    // Blocked 700 ms: the sampler, ticking every 250 ms, sees at least 450 ms of it.
    const until = performance.now() + 700;
    while (performance.now() < until) { /* the event loop is blocked */ }
    await new Promise((r) => setTimeout(r, 300));
    text = r.render();
    const blocked = sample(text, "astralboot_event_loop_lag_seconds")!;
    assert.ok(blocked >= 0.4, text);
    // The busy loop spent CPU (less than its 0.7 s when the machine is shared).
    assert.ok(sample(text, "process_cpu_seconds_total")! > cpu);
    // Read once per scrape: the next one starts from nothing blocked.
    assert.ok(sample(r.render(), "astralboot_event_loop_lag_seconds")! < blocked);
  } finally {
    p.close();
  }
});
