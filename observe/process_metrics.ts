/**
 * The standard process metrics under their standard names (`process_*`, as the Prometheus
 * client libraries export them), so that stock dashboards and restart alerts find them, plus
 * what a JavaScript server needs beside them: heap in use and event-loop lag.
 *
 * Linux only, read from /proc/self at scrape time; a value that cannot be read is left out
 * rather than made up.
 *
 * @module
 */
import type { MetricsRegistry } from "./metrics.ts";

// USER_HZ: the unit of /proc/<pid>/stat times, 100 on every Linux architecture Deno runs on.
const TICKS_PER_SECOND = 100;
// How often the event loop is sampled: short enough to see a stall, cheap enough to ignore.
const LAG_SAMPLE_MS = 250;

/** Fields 14, 15 (utime, stime) and 23 (vsize) of /proc/self/stat, or null. */
export function parseProcStat(text: string): { cpuSeconds: number; virtualBytes: number } | null {
  // The command name (field 2) is in parentheses and may hold spaces: split after its end.
  const end = text.lastIndexOf(")");
  if (end < 0) return null;
  const fields = text.slice(end + 2).trim().split(/\s+/);
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  const utime = Number(fields[11]), stime = Number(fields[12]), vsize = Number(fields[20]);
  if (![utime, stime, vsize].every(Number.isFinite)) return null;
  return { cpuSeconds: (utime + stime) / TICKS_PER_SECOND, virtualBytes: vsize };
}

/** The soft limit of "Max open files" in /proc/self/limits, or null. */
export function parseMaxFds(text: string): number | null {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  if (!m || m[1] === "unlimited") return null;
  return Number(m[1]);
}

function read(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

function openFds(): number | null {
  try {
    let n = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) n++;
    return n;
  } catch {
    return null;
  }
}

/** What {@linkcode registerProcessMetrics} returns. */
export interface ProcessMetrics {
  /** Starts sampling the event loop's lag (a server calls it; tests need not). */
  sampleEventLoop(): void;
  /** Stops the sampler. */
  close(): void;
}

/** Registers the process metrics in `r`. */
export function registerProcessMetrics(r: MetricsRegistry): ProcessMetrics {
  const cpu = r.counter("process_cpu_seconds_total", "Total user and system CPU time spent.");
  const rss = r.gauge("process_resident_memory_bytes", "Resident memory size in bytes.");
  const vsize = r.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.");
  const start = r.gauge(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
  );
  const fds = r.gauge("process_open_fds", "Number of open file descriptors.");
  const maxFds = r.gauge("process_max_fds", "Maximum number of open file descriptors.");
  const heap = r.gauge("astralboot_heap_used_bytes", "JavaScript heap in use.");
  const heapTotal = r.gauge(
    "astralboot_heap_total_bytes",
    "JavaScript heap reserved: in use, and garbage the next collection frees.",
  );
  const external = r.gauge(
    "astralboot_external_memory_bytes",
    "Memory of JavaScript objects held outside the heap (ArrayBuffers).",
  );
  const lag = r.gauge(
    "astralboot_event_loop_lag_seconds",
    "Longest delay of a timer since the last scrape: how long the event loop was blocked.",
  );
  start.set({}, Math.round(performance.timeOrigin) / 1000);

  let worst = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  const sampleEventLoop = () => {
    if (timer !== undefined) return;
    let expected = performance.now() + LAG_SAMPLE_MS;
    const t = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - expected);
      expected = now + LAG_SAMPLE_MS;
    }, LAG_SAMPLE_MS);
    // Sampling must never keep the process alive on its own.
    Deno.unrefTimer(t as unknown as number);
    timer = t;
  };

  let cpuSeen = 0;
  r.onCollect(() => {
    const mem = Deno.memoryUsage();
    rss.set({}, mem.rss);
    heap.set({}, mem.heapUsed);
    heapTotal.set({}, mem.heapTotal);
    external.set({}, mem.external);
    if (timer !== undefined) {
      lag.set({}, Math.round(Math.max(0, worst)) / 1000);
      worst = 0;
    }
    const stat = parseProcStat(read("/proc/self/stat") ?? "");
    if (stat) {
      // A counter only goes up: add what was spent since the last scrape.
      cpu.inc({}, Math.max(0, stat.cpuSeconds - cpuSeen));
      cpuSeen = Math.max(cpuSeen, stat.cpuSeconds);
      vsize.set({}, stat.virtualBytes);
    }
    const open = openFds();
    if (open !== null) fds.set({}, open);
    const max = parseMaxFds(read("/proc/self/limits") ?? "");
    if (max !== null) maxFds.set({}, max);
  });
  return {
    sampleEventLoop,
    close: () => {
      clearInterval(timer);
      timer = undefined;
    },
  };
}
