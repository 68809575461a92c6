/**
 * Shared pieces of the benchmarks: medians, the ours/reference table, CPU pinning, peak memory
 * from /proc, namespaces and processes that are removed on any exit (also on Ctrl-C).
 *
 * @module
 */
import { join } from "node:path";
import { Netns, run } from "../netns.ts";
import { repoPath } from "../dhcp_harness.ts";

/** How long and how often each figure is measured. */
export interface BenchOptions {
  /** A short smoke run: one run per figure, short durations, small files. */
  quick: boolean;
  /** Where progress lines go. */
  print: (line: string) => void;
}

/** One row of a result table: our figure beside the reference server's. */
export interface BenchRow {
  /** What was measured, e.g. "1 KiB file". */
  name: string;
  /** Unit of both figures, e.g. "req/s". */
  unit: string;
  ours: number | null;
  reference: number | null;
  /** The reference server of this row when a table has several; default the table's. */
  referenceName?: string;
  /** For a unit where less is better (memory), the ratio still reads ours/reference. */
  lowerIsBetter?: boolean;
  /** Why a row has no reference or what its reference really is. */
  note?: string;
}

/** A titled table of rows: one per benchmark. */
export interface BenchTable {
  title: string;
  /** Names of the two columns, e.g. "astralboot", "nginx". */
  oursName: string;
  referenceName: string;
  rows: BenchRow[];
  /** Lines printed under the table (conditions, caveats). */
  notes?: string[];
}

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of an empty list");
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** ours/reference, or null when either is missing or the reference is 0. */
export function ratio(row: BenchRow): number | null {
  if (row.ours === null || row.reference === null || row.reference === 0) return null;
  return row.ours / row.reference;
}

/** A figure with 3 significant digits and thousands grouped; "-" for none. */
export function formatFigure(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return "-";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  return Number(v.toPrecision(3)).toString();
}

/** Renders a table as aligned text lines (ratio = ours/reference). */
export function formatTable(table: BenchTable): string[] {
  const head = ["", table.oursName, table.referenceName, "unit", "ours/ref"];
  const body = table.rows.map((r) => {
    const q = ratio(r);
    return [
      r.name,
      formatFigure(r.ours),
      formatFigure(r.reference),
      r.unit,
      q === null ? "-" : `${q.toFixed(2)}x${r.lowerIsBetter ? " (lower is better)" : ""}`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 || i === 3 || i === 4 ? c.padEnd(widths[i]!) : c.padStart(
      widths[i]!,
    ))).join("  ").trimEnd();
  const out = [`== ${table.title}`, line(head), line(widths.map((w) => "-".repeat(w)))];
  for (const b of body) out.push(line(b));
  for (const r of table.rows) if (r.note) out.push(`  ${r.name}: ${r.note}`);
  for (const n of table.notes ?? []) out.push(`  ${n}`);
  return out;
}

/** CPU cores for the server under test and for the load generator (unpinned UDP figures flip by 3× on 2-core machines: pin both). */
export const CORES: { server: string; load: string } | null = navigator.hardwareConcurrency >= 2
  ? { server: "0", load: "1" }
  : null;

/** Prefixes argv with `taskset -c CORE` for "server" or "load"; unchanged on one core. */
export function pinned(role: "server" | "load", argv: string[]): string[] {
  return CORES ? ["taskset", "-c", CORES[role], ...argv] : argv;
}

/** Peak (VmHWM) and current (VmRSS) resident memory of a process, in KiB. */
export interface ProcessMemory {
  hwmKiB: number;
  rssKiB: number;
  /** Of VmRSS: anonymous pages (heaps, stacks) and file-backed ones (the executable's). */
  anonKiB: number;
  fileKiB: number;
}

/** Reads VmHWM, VmRSS and its parts from /proc/PID/status; null when the process is gone. */
export function readMemory(pid: number): ProcessMemory | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  const kib = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
  return {
    hwmKiB: kib("VmHWM"),
    rssKiB: kib("VmRSS"),
    anonKiB: kib("RssAnon"),
    fileKiB: kib("RssFile"),
  };
}

/**
 * Our server's JS heap in use and reserved and what ArrayBuffers hold outside it, in MiB, as
 * one line read from its /metrics (asked from `ns` at `base` with the admin token in `dataDir`).
 */
export async function heapLine(ns: Netns, base: string, dataDir: string): Promise<string> {
  const token = (await Deno.readTextFile(join(dataDir, "api-token")).catch(() => "")).trim();
  const r = await ns.exec(
    ["curl", "-s", "-H", `Authorization: Bearer ${token}`, `${base}/metrics`],
    { check: false },
  );
  const mib = (name: string) => {
    const v = new RegExp(`^${name} (\\S+)`, "m").exec(r.stdout)?.[1];
    return v === undefined ? "?" : (Number(v) / 1048576).toFixed(1);
  };
  return `heap ${mib("astralboot_heap_used_bytes")} of ${mib("astralboot_heap_total_bytes")}, ` +
    `external ${mib("astralboot_external_memory_bytes")} MiB`;
}

/** Direct children of a process (e.g. nginx's workers), from /proc/PID/task/ * /children. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const text = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`);
      out.push(...text.split(/\s+/).filter(Boolean).map(Number));
    }
  } catch { /* gone */ }
  return out;
}

/** Sum of VmHWM over a process and its direct children, in MiB (nginx: master + workers). */
export function peakMemoryMiB(pid: number, withChildren = false): number | null {
  const pids = withChildren ? [pid, ...childPids(pid)] : [pid];
  let total = 0;
  for (const p of pids) {
    const m = readMemory(p);
    if (!m) return null;
    total += m.hwmKiB;
  }
  return total / 1024;
}

/** utime + stime of a process (and of its direct children: nginx's workers) in seconds. */
export function cpuSeconds(pid: number, withChildren = false): number {
  let total = 0;
  for (const p of withChildren ? [pid, ...childPids(pid)] : [pid]) {
    const stat = Deno.readTextFileSync(`/proc/${p}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 of proc(5), counted from the state (field 3) here.
    total += (Number(f[11]) + Number(f[12])) / 100;
  }
  return total;
}

const cleanups = new Set<() => Promise<void>>();

/**
 * Registers an undo step that {@linkcode runCleanups} runs (last registered first). The returned
 * function runs it once; every caller, also a concurrent one, waits for that one run (a bench's
 * own `await using` and a signal handler may both be undoing at the same moment).
 */
export function onCleanup(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | null = null;
  const once = () =>
    running ??= (async () => {
      cleanups.delete(once);
      await fn();
    })();
  cleanups.add(once);
  return once;
}

/** Runs every registered undo step; for a signal handler (each step also runs on its own). */
export async function runCleanups(): Promise<void> {
  for (const fn of [...cleanups].reverse()) {
    await fn().catch(() => {});
  }
}

/** A namespace that is removed with everything inside on dispose, or by runCleanups(). */
export async function benchNetns(prefix: string): Promise<Netns & AsyncDisposable> {
  const ns = await Netns.create(prefix);
  const undo = onCleanup(() => ns.dispose());
  return Object.assign(ns, { [Symbol.asyncDispose]: undo });
}

/** A temporary folder removed on dispose or by runCleanups(). */
export async function benchTempDir(
  prefix: string,
): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  const undo = onCleanup(() => Deno.remove(path, { recursive: true }).catch(() => {}));
  return { path, [Symbol.asyncDispose]: undo };
}

/** A long-running process started in a namespace whose output goes to a log file. */
export interface BenchProcess extends AsyncDisposable {
  /** The process itself: `ip netns exec`, taskset and sh all exec into it. */
  pid: number;
  log: string;
  child: Deno.ChildProcess;
  /** Sends SIGTERM, then SIGKILL after 5 s; resolves when it is gone. */
  stop(): Promise<void>;
  /** The log file's text; for error messages. */
  output(): string;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Starts argv pinned to the server core inside `ns`, stdout and stderr into `log` (a pipe read
 * by this process would cost CPU on the load core and change what is measured).
 */
export function spawnServer(ns: Netns, argv: string[], log: string): BenchProcess {
  const script = `exec ${argv.map(shellQuote).join(" ")} >${shellQuote(log)} 2>&1`;
  const [bin, ...args] = ns.wrap(pinned("server", ["sh", "-c", script]));
  const child = new Deno.Command(bin!, { args, stdin: "null", stdout: "null", stderr: "null" })
    .spawn();
  let exited = false;
  child.status.then(() => exited = true);
  const stop = onCleanup(async () => {
    if (exited) return;
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    await child.status;
    clearTimeout(timer);
  });
  const output = () => {
    try {
      return Deno.readTextFileSync(log);
    } catch {
      return "";
    }
  };
  return { pid: child.pid, log, child, stop, output, [Symbol.asyncDispose]: stop };
}

/**
 * Starts Astral Boot as shipped (`main.ts serve -c DIR/config.toml -l TREE` with the run-time
 * flags of its `tools/build.ts`, JSON log lines into DIR/astralboot.log) pinned to the server
 * core inside `ns`. `root` is the checkout to run (an A/B run starts two); default this one.
 */
export async function spawnAstralboot(
  ns: Netns,
  dir: string,
  configToml: string,
  tree: string,
  root = repoPath(""),
  denoFlags: readonly string[] = [],
): Promise<BenchProcess> {
  const config = `${dir}/config.toml`;
  await Deno.writeTextFile(config, configToml);
  const base = root.replace(/\/+$/, "");
  const { RUN_FLAGS } = await import(`${base}/tools/build.ts`) as { RUN_FLAGS: string[] };
  const argv = [
    "deno",
    "run",
    ...RUN_FLAGS,
    ...denoFlags,
    `${base}/main.ts`,
    "serve",
    "-c",
    config,
  ];
  return spawnServer(ns, [...argv, "-l", tree, "--log-format", "json"], `${dir}/astralboot.log`);
}

/** Polls `check` every 200 ms until it returns true; throws `what` (and `detail()`) after `ms`. */
export async function waitUntil(
  check: () => Promise<boolean> | boolean,
  ms: number,
  what: string,
  detail: () => string = () => "",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}\n${detail()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** True once `url` answers any HTTP status from inside `ns` (curl, 1 s timeout). */
export async function httpAnswers(ns: Netns, url: string): Promise<boolean> {
  const r = await ns.exec(["curl", "-s", "-o", "/dev/null", "-m", "1", url], { check: false });
  return r.code === 0;
}

/** Writes `size` bytes of pseudo-random data (incompressible, not all zeros) to `path`. */
export async function writeFiller(path: string, size: number): Promise<void> {
  const chunk = new Uint8Array(Math.min(size, 1 << 20));
  let x = 0x9e3779b9;
  for (let i = 0; i < chunk.length; i++) {
    x ^= x << 13, x ^= x >>> 17, x ^= x << 5;
    chunk[i] = x & 0xff;
  }
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let left = size; left > 0; left -= chunk.length) {
    const n = Math.min(left, chunk.length);
    let off = 0;
    while (off < n) off += await f.write(chunk.subarray(off, n));
  }
}

/** Throws when a required command is not installed, naming the Debian package to add. */
export async function requireCommand(cmd: string, pkg: string): Promise<void> {
  const r = await run(["sh", "-c", `command -v ${cmd}`], { check: false });
  if (r.code !== 0) {
    throw new Error(`${cmd} not found: apt-get install -y ${pkg} (or run tests/setup.sh)`);
  }
}

/** Runs one bench as a script (`--quick` from argv), prints its table, cleans up on any exit. */
export async function runAlone(bench: (o: BenchOptions) => Promise<BenchTable>): Promise<void> {
  Deno.addSignalListener("SIGINT", () => runCleanups().finally(() => Deno.exit(130)));
  const o: BenchOptions = { quick: Deno.args.includes("--quick"), print: (l) => console.log(l) };
  try {
    for (const line of formatTable(await bench(o))) console.log(line);
  } finally {
    await runCleanups();
  }
}
