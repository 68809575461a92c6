/**
 * `deno task bench`: every benchmark in sequence, each printed as a table of our figure beside
 * a reference server's (ratio ours/reference), then a summary of all rows.
 *
 *   deno task bench [-- --quick] [-- --only http,dhcp,tftp,ipfs,boot]
 *
 * `--quick` is a smoke run (one short run per figure, small files). Every namespace, process
 * and temp folder is removed on exit, also on Ctrl-C or when the time limit (15 min, quick
 * 4 min) is hit. See tests/bench/README.md for what each row means.
 *
 * @module
 */
import { join } from "node:path";
import { LocalStore } from "../../content/local.ts";
import { run } from "../netns.ts";
import {
  type BenchOptions,
  type BenchRow,
  type BenchTable,
  benchTempDir,
  formatFigure,
  formatTable,
  median,
  ratio,
  runCleanups,
  writeFiller,
} from "./common.ts";
import { benchBoot } from "./boot.ts";
import { benchDhcp } from "./dhcp.ts";
import { benchHttp } from "./http.ts";
import { benchIpfs } from "./ipfs.ts";
import { benchTftp } from "./tftp.ts";

const NAMES = ["http", "dhcp", "tftp", "ipfs", "boot"] as const;
type BenchName = typeof NAMES[number];

/** Parsed command line of the bench runner. */
export interface BenchArgs {
  quick: boolean;
  only: BenchName[];
}

/** Parses `--quick` and `--only a,b`; throws a RangeError naming a bad flag or bench. */
export function parseBenchArgs(args: readonly string[]): BenchArgs {
  const out: BenchArgs = { quick: false, only: [...NAMES] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") continue;
    if (a === "--quick") out.quick = true;
    else if (a === "--only" || a.startsWith("--only=")) {
      const list = a === "--only" ? args[++i] : a.slice("--only=".length);
      if (!list) throw new RangeError("--only needs a list, e.g. --only http,dhcp");
      const names = list.split(",").map((s) => s.trim()).filter(Boolean);
      for (const n of names) {
        if (!(NAMES as readonly string[]).includes(n)) {
          throw new RangeError(`--only: unknown bench ${n}; known: ${NAMES.join(", ")}`);
        }
      }
      out.only = NAMES.filter((n) => names.includes(n));
    } else {throw new RangeError(
        `unknown argument ${a}; use --quick and --only http,dhcp,tftp,ipfs,boot`,
      );}
  }
  return out;
}

/** IPFS: cold fetch (no reference) and warm serve against reading the same size from `-l DIR`. */
async function ipfsTable(o: BenchOptions): Promise<BenchTable> {
  const sizeMiB = o.quick ? 8 : 64;
  const warmRuns = o.quick ? 3 : 5;
  const results = await benchIpfs({ sizeMiB, warmRuns, print: (l) => o.print(`  ${l}`) });
  const local = await localReadMBps(sizeMiB, warmRuns);
  o.print(`  local store read: ${local.toFixed(1)} MB/s`);
  return {
    title: `IPFS store (${sizeMiB} MiB file, local trustless gateway on 127.0.0.1)`,
    oursName: "ipfs store",
    referenceName: "local dir",
    rows: results.map((r): BenchRow => {
      const warm = r.name.includes("warm");
      return {
        name: r.name.replace(/^ipfs /, ""),
        unit: "MB/s",
        ours: r.mbPerSecond,
        reference: warm ? local : null,
      };
    }),
    notes: [
      "cold fetch: gateway → verify → cache, no reference server (the test gateway sets the pace)",
      `warm serve: reading from the cache vs the same size read through LocalStore (-l DIR), ` +
      `median of ${warmRuns}`,
    ],
  };
}

async function localReadMBps(sizeMiB: number, runs: number): Promise<number> {
  await using dir = await benchTempDir("abb-local-");
  const size = sizeMiB * 1024 * 1024;
  await writeFiller(join(dir.path, "big.img"), size);
  const store = new LocalStore(dir.path);
  const rates: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    let n = 0;
    for await (const chunk of await store.read("big.img")) n += chunk.length;
    const s = (performance.now() - t0) / 1000;
    if (n !== size) throw new Error(`local read gave ${n} bytes, expected ${size}`);
    rates.push(size / 1e6 / s);
  }
  return median(rates);
}

const RUNNERS: Record<BenchName, (o: BenchOptions) => Promise<BenchTable>> = {
  http: benchHttp,
  dhcp: benchDhcp,
  tftp: benchTftp,
  ipfs: ipfsTable,
  boot: benchBoot,
};

/** Namespaces present now. */
async function namespaces(): Promise<Set<string>> {
  const r = await run(["ip", "netns", "list"], { check: false });
  return new Set(r.stdout.split("\n").map((l) => l.split(" ")[0]!).filter(Boolean));
}

/** True when `pid` descends from this process (it was started by one of the benches). */
function isOurs(pid: number): boolean {
  for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
    if (p === Deno.pid) return true;
    try {
      const stat = Deno.readTextFileSync(`/proc/${p}/stat`);
      p = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * After an interruption: removes namespaces made during this run that hold one of our processes
 * or carry our prefix (the other benches' own `finally` blocks do not run on exit).
 */
async function sweep(before: Set<string>): Promise<void> {
  for (const name of await namespaces()) {
    if (before.has(name)) continue;
    const pids = (await run(["ip", "netns", "pids", name], { check: false })).stdout
      .split(/\s+/).filter(Boolean).map(Number);
    if (!name.startsWith("abb-") && !pids.some(isOurs)) continue;
    for (const pid of pids) await run(["kill", "-9", String(pid)], { check: false });
    await run(["ip", "netns", "del", name], { check: false });
  }
}

function summary(tables: Map<BenchName, BenchTable | Error>, seconds: number): string[] {
  const out = ["== summary (ratio = ours/reference; for memory lower is better)"];
  for (const [name, t] of tables) {
    if (t instanceof Error) {
      out.push(`${name.padEnd(5)} FAILED: ${t.message.split("\n")[0]}`);
      continue;
    }
    for (const r of t.rows) {
      const q = ratio(r);
      const figs = `${formatFigure(r.ours)} vs ${formatFigure(r.reference)} ${r.unit}`;
      out.push(
        `${name.padEnd(5)} ${r.name.padEnd(34)} ${
          (q === null ? "-" : q.toFixed(2) + "x").padStart(7)
        }` +
          `  (${figs}${q === null ? "" : `, ${r.referenceName ?? t.referenceName}`})`,
      );
    }
  }
  out.push(`total ${seconds.toFixed(0)} s on ${navigator.hardwareConcurrency} cores`);
  return out;
}

async function main(): Promise<number> {
  let args: BenchArgs;
  try {
    args = parseBenchArgs(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const print = (l: string) => console.log(l);
  const o: BenchOptions = { quick: args.quick, print };
  const before = await namespaces();
  const limitMs = (args.quick ? 4 : 15) * 60_000;
  const t0 = performance.now();
  const tables = new Map<BenchName, BenchTable | Error>();

  let aborting: Promise<void> | null = null;
  const abort = (why: string, code: number) => aborting ??= stopAll(why, code);
  const stopAll = async (why: string, code: number) => {
    print(`\n${why}: removing namespaces, processes and folders`);
    await runCleanups();
    await sweep(before);
    for (const line of summary(tables, (performance.now() - t0) / 1000)) print(line);
    Deno.exit(code);
  };
  for (const s of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(s, () => abort(`${s}`, 130));
  }
  const watchdog = setTimeout(
    () => abort(`time limit of ${limitMs / 60_000} min reached`, 1),
    limitMs,
  );

  print(`astralboot benchmarks${args.quick ? " (quick)" : ""}: ${args.only.join(", ")}`);
  for (const name of args.only) {
    // A bench that failed because the abort killed its processes must not start the next one.
    if (aborting) await aborting;
    const t1 = performance.now();
    print(`\n-- ${name}`);
    try {
      const table = await RUNNERS[name](o);
      tables.set(name, table);
      for (const line of formatTable(table)) print(line);
    } catch (e) {
      tables.set(name, e as Error);
      print(`${name} FAILED: ${(e as Error).stack ?? e}`);
    } finally {
      await runCleanups();
    }
    print(`(${name}: ${((performance.now() - t1) / 1000).toFixed(0)} s)`);
  }
  if (aborting) await aborting;
  clearTimeout(watchdog);
  print("");
  for (const line of summary(tables, (performance.now() - t0) / 1000)) print(line);
  return [...tables.values()].some((t) => t instanceof Error) ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
