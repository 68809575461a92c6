/**
 * TFTP benchmark: a 32 MiB file fetched with atftp from `main.ts serve` (our server through the
 * local store, as shipped), from Debian's in.tftpd (tftpd-hpa 5.2) and from Debian's atftpd
 * (0.8, unpacked into the cache by `atftpd.ts`), each in its own pair of throwaway namespaces
 * (server ↔ client over a veth).
 *
 * Rows: lockstep (windowsize 1) at blksize 512 / 1468 / 8192 against tftpd-hpa, the common
 * server, which ignores windowsize; windowsize 4 (what OVMF asks) and 16 at the same sizes
 * against atftpd, which implements it. Then 32 transfers at once (blksize 1468, windowsize 16)
 * against atftpd (one threaded process, so its memory compares): aggregate rate and peak RSS.
 * Servers are pinned to one core, atftp to the other (unpinned figures flip by 3×); runs
 * alternate between the servers so that load from other work on the machine falls on all
 * alike. Median of 3 runs. The whole run is bounded: a fetch is stopped after 4 s and rated by
 * what it wrote.
 *
 * Run alone: `deno run --unstable-net -A tests/bench/tftp.ts [--quick]`.
 *
 * @module
 */
import { join } from "node:path";
import { type Netns, vethPair } from "../netns.ts";
import { atftpdBinary } from "./atftpd.ts";
import {
  benchNetns,
  type BenchOptions,
  type BenchProcess,
  type BenchRow,
  type BenchTable,
  benchTempDir,
  median,
  peakMemoryMiB,
  pinned,
  readMemory,
  requireCommand,
  runAlone,
  spawnAstralboot,
  spawnServer,
  waitUntil,
  writeFiller,
} from "./common.ts";

const SERVER_IP = "10.204.0.1";
const CLIENT_IP = "10.204.0.2";
const FILE = "bench.bin";
const SMALL = "small.bin";
const BLKSIZES = [512, 1468, 8192] as const;
const WINDOWSIZES = [4, 16] as const;
/** Transfers at once in the concurrency rows, and their options. */
const CONCURRENT = 32;
const CONCURRENT_OPTIONS = { blksize: 1468, windowsize: 16 };
/**
 * Longest one fetch may take: a slower transfer is stopped there and its rate is the bytes it
 * wrote so far over the time (9 rows × 2 servers × 3 runs × 4 s keeps the bench under 5 min
 * even on a loaded machine, where 512-byte lockstep runs at 1 MB/s).
 */
const CAP_S = 4;

/** One server under test with its own namespace pair. */
interface Target {
  name: string;
  client: Netns;
  process: BenchProcess;
  download: string;
}

async function pair(prefix: string): Promise<{ server: Netns; client: Netns }> {
  const server = await benchNetns(`${prefix}s`);
  const client = await benchNetns(`${prefix}c`);
  await vethPair(server, `${SERVER_IP}/24`, client, `${CLIENT_IP}/24`);
  return { server, client };
}

async function udp69Bound(ns: Netns): Promise<boolean> {
  const ss = await ns.exec(["ss", "-uln"], { check: false });
  // Our sockets are bound to the interface too: ss shows them as 10.204.0.1%eth0:69.
  return new RegExp(`${SERVER_IP.replaceAll(".", "\\.")}(%\\w+)?:69\\s`).test(ss.stdout);
}

/**
 * atftp stopped with SIGTERM after `capS`: it then sends the server an ERROR, so the server's
 * transfer ends at once; killed outright, ours would retransmit into the void for ~20 s,
 * holding a transfer slot (and disabling the single-transfer spin) during the next rows.
 */
function atftpArgv(
  file: string,
  local: string,
  blksize: number,
  windowsize: number,
  capS: number,
): string[] {
  return [
    ...["timeout", "-s", "TERM", "-k", "2", String(capS)],
    "atftp",
    ...["--option", `blksize ${blksize}`, "--option", `windowsize ${windowsize}`],
    ...["-g", "-r", file, "-l", local, SERVER_IP],
  ];
}

/** One atftp fetch, stopped at `capS`; MB/s (10^6 bytes per second) and whether it was cut. */
async function fetch(t: Target, blksize: number, windowsize: number, size: number, capS: number) {
  const argv = atftpArgv(FILE, t.download, blksize, windowsize, capS);
  const t0 = performance.now();
  // `ip netns exec` and taskset exec into timeout; run() kills at its own timeout, later.
  const r = await t.client.exec(pinned("load", argv), {
    check: false,
    timeoutMs: (capS + 5) * 1000,
  });
  const seconds = Math.min(capS, (performance.now() - t0) / 1000);
  const got = await Deno.stat(t.download).then((s) => s.size, () => -1);
  await Deno.remove(t.download).catch(() => {});
  const cut = r.code !== 0 && seconds >= capS - 0.05 && got > 0;
  if (!cut && (r.code !== 0 || got !== size)) {
    throw new Error(
      `${t.name}: atftp blksize ${blksize} windowsize ${windowsize} got ${got} of ${size} ` +
        `bytes (exit ${r.code}): ${r.stderr.trim()}\n${t.process.output().slice(-1500)}`,
    );
  }
  return { mbps: got / 1e6 / seconds, cut };
}

/**
 * `CONCURRENT` fetches of the small file at once from one client namespace: aggregate MB/s
 * and the server's peak resident memory meanwhile (VmRSS sampled every 20 ms), with its RSS
 * just before. A fetch that fails counts with the bytes it got: on a loaded machine 32 atftp
 * processes on one core may answer an OACK later than our 250 ms first timeout, and atftp
 * aborts on the repeated OACK ("unexpected OACK") where a client should ACK it again.
 */
async function fetchMany(t: Target, size: number, capS: number) {
  const { blksize, windowsize } = CONCURRENT_OPTIONS;
  const before = readMemory(t.process.pid)?.rssKiB ?? 0;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, readMemory(t.process.pid)?.rssKiB ?? 0);
  }, 20);
  const t0 = performance.now();
  try {
    const results = await Promise.all(
      Array.from({ length: CONCURRENT }, async (_, i) => {
        const local = `${t.download}.${i}`;
        const argv = atftpArgv(SMALL, local, blksize, windowsize, capS);
        const r = await t.client.exec(pinned("load", argv), {
          check: false,
          timeoutMs: (capS + 5) * 1000,
        });
        const got = await Deno.stat(local).then((s) => s.size, () => -1);
        await Deno.remove(local).catch(() => {});
        return { ok: r.code === 0 && got === size, got: Math.max(0, got), err: r.stderr.trim() };
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const failed = results.filter((r) => !r.ok);
    if (failed.length === CONCURRENT) {
      throw new Error(`${t.name}: every concurrent fetch failed (${failed[0]!.err})`);
    }
    const bytes = results.reduce((n, r) => n + r.got, 0);
    return {
      mbps: bytes / 1e6 / seconds,
      peakMiB: peak / 1024,
      beforeMiB: before / 1024,
      failed: failed.length,
      why: failed.map((f) => f.err.split("\n").pop() ?? "").filter(Boolean),
    };
  } finally {
    clearInterval(sampler);
  }
}

function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

/** Runs the benchmark; see the module doc. */
export async function benchTftp(o: BenchOptions): Promise<BenchTable> {
  await requireCommand("atftp", "atftp");
  await requireCommand("in.tftpd", "tftpd-hpa");
  const atftpd = await atftpdBinary(undefined, o.print);
  const started = Date.now();
  const loadBefore = loadAverage();
  const size = (o.quick ? 8 : 32) * 1024 * 1024;
  const smallSize = (o.quick ? 1 : 4) * 1024 * 1024;
  const runs = o.quick ? 1 : 3;
  await using tmp = await benchTempDir("abt-bench-tftp-");
  const tree = join(tmp.path, "tree");
  await Deno.mkdir(join(tree, "tftp"), { recursive: true });
  await writeFiller(join(tree, "tftp", FILE), size);
  await writeFiller(join(tree, "tftp", SMALL), smallSize);

  const ours = await pair("abt-bo");
  const hpa = await pair("abt-bh");
  const at = await pair("abt-ba");
  // 8192-byte blocks exceed the veth's MTU: allow them (IP fragments) as the others do; the
  // concurrency rows come from one client address.
  const config = `interface = "eth0"\ndata_dir = "${tmp.path}/data"\n[dhcp]\nmode = "off"\n` +
    `[http]\nport = 8080\n[tftp]\nmax_blksize = 65464\nwindowsize = 64\n` +
    `max_per_client = ${CONCURRENT * 2}\n`;
  await using oursProcess = await spawnAstralboot(ours.server, tmp.path, config, tree);
  await using hpaProcess = spawnServer(
    hpa.server,
    ["in.tftpd", "-L", "-4", "-u", "root", "-s", join(tree, "tftp"), "-a", `${SERVER_IP}:69`],
    join(tmp.path, "in.tftpd.log"),
  );
  await using atftpdProcess = spawnServer(
    at.server,
    [
      atftpd,
      ...["--daemon", "--no-fork", "--user", "root", "--group", "root"],
      ...["--port", "69", "--bind-address", SERVER_IP, "--maxthread", String(CONCURRENT * 2)],
      ...["--logfile", join(tmp.path, "atftpd.log"), join(tree, "tftp")],
    ],
    join(tmp.path, "atftpd.out"),
  );
  await waitUntil(() => udp69Bound(ours.server), 90_000, "astralboot TFTP", oursProcess.output);
  await waitUntil(() => udp69Bound(hpa.server), 10_000, "in.tftpd", hpaProcess.output);
  await waitUntil(() => udp69Bound(at.server), 10_000, "atftpd", atftpdProcess.output);
  const target = (name: string, client: Netns, process: BenchProcess): Target => ({
    name,
    client,
    process,
    download: join(tmp.path, `dl-${name}`),
  });
  const oursT = target("astralboot", ours.client, oursProcess);
  const hpaT = target("tftpd-hpa", hpa.client, hpaProcess);
  const atT = target("atftpd", at.client, atftpdProcess);
  o.print(
    `  tftp: ${size / 1048576} MiB, atftp, ${runs} run(s) per row, alternating servers ` +
      `(load average ${loadBefore})`,
  );

  const capS = o.quick ? 2 : CAP_S;
  const rows: BenchRow[] = [];
  const cut: Record<string, number> = { astralboot: 0, "tftpd-hpa": 0, atftpd: 0 };
  const measure = async (name: string, ref: Target, blksize: number, windowsize: number) => {
    const figures: [number[], number[]] = [[], []];
    for (let i = 0; i < runs; i++) {
      for (const [k, t] of [oursT, ref].entries()) {
        const f = await fetch(t, blksize, windowsize, size, capS);
        figures[k]!.push(f.mbps);
        if (f.cut) cut[t.name]!++;
      }
    }
    const row: BenchRow = {
      name,
      unit: "MB/s",
      ours: median(figures[0]),
      reference: median(figures[1]),
    };
    o.print(`  ${name}: ${row.ours!.toFixed(1)} vs ${ref.name} ${row.reference!.toFixed(1)} MB/s`);
    rows.push(row);
  };
  for (const blksize of BLKSIZES) {
    await measure(`blksize ${blksize}, lockstep (vs tftpd-hpa)`, hpaT, blksize, 1);
  }
  for (const blksize of BLKSIZES) {
    for (const windowsize of WINDOWSIZES) {
      await measure(
        `blksize ${blksize}, windowsize ${windowsize} (vs atftpd)`,
        atT,
        blksize,
        windowsize,
      );
    }
  }

  const many: Awaited<ReturnType<typeof fetchMany>>[][] = [[], []];
  for (let i = 0; i < runs; i++) {
    for (const [k, t] of [oursT, atT].entries()) {
      many[k]!.push(await fetchMany(t, smallSize, o.quick ? 20 : 40));
    }
  }
  const { blksize: cb, windowsize: cw } = CONCURRENT_OPTIONS;
  const failures = (m: Awaited<ReturnType<typeof fetchMany>>[]) => {
    const why = [...new Set(m.flatMap((x) => x.why))];
    return `${m.reduce((n, x) => n + x.failed, 0)}${why.length ? ` (${why.join("; ")})` : ""}`;
  };
  const manyName = `${CONCURRENT} transfers at once, blksize ${cb}, windowsize ${cw}`;
  rows.push({
    name: `${manyName} (vs atftpd)`,
    unit: "MB/s",
    ours: median(many[0]!.map((m) => m.mbps)),
    reference: median(many[1]!.map((m) => m.mbps)),
    note: `aggregate: ${CONCURRENT} × ${smallSize / 1048576} MiB over the time until the ` +
      `last ended; fetches that failed: astralboot ${failures(many[0]!)}, atftpd ` +
      `${failures(many[1]!)} of ${CONCURRENT * runs}`,
  });
  const growth = (m: { peakMiB: number; beforeMiB: number }[]) =>
    Math.max(...m.map((x) => x.peakMiB - x.beforeMiB));
  rows.push({
    name: `peak RSS, ${CONCURRENT} transfers at once (vs atftpd)`,
    unit: "MiB",
    ours: Math.max(...many[0]!.map((m) => m.peakMiB)),
    reference: Math.max(...many[1]!.map((m) => m.peakMiB)),
    lowerIsBetter: true,
    note: `VmRSS sampled every 20 ms; growth over the RSS before: astralboot ` +
      `${growth(many[0]!).toFixed(1)} MiB, atftpd ${growth(many[1]!).toFixed(1)} MiB`,
  });
  rows.push({
    name: "peak RSS (VmHWM), whole run (vs atftpd)",
    unit: "MiB",
    ours: peakMemoryMiB(oursProcess.pid),
    reference: peakMemoryMiB(atftpdProcess.pid),
    lowerIsBetter: true,
    note: "astralboot: the whole program (DHCP off, TFTP, HTTP); in.tftpd forks one " +
      "short-lived child per transfer, so it has no comparable figure",
  });
  const loadAfter = loadAverage();
  return {
    title: "TFTP: astralboot (main.ts serve) vs tftpd-hpa (in.tftpd) and atftpd, atftp client",
    oursName: "astralboot",
    referenceName: "reference",
    rows,
    notes: [
      `${size / 1048576} MiB file, median of ${runs} run(s); server pinned to one core, atftp ` +
      "to the other; veth between two namespaces",
      `a fetch still running after ${capS} s is stopped and rated by the bytes it wrote ` +
      `(stopped: astralboot ${cut.astralboot}, tftpd-hpa ${cut["tftpd-hpa"]}, atftpd ` +
      `${cut.atftpd})`,
      "tftpd-hpa does not acknowledge windowsize: the windowed rows compare with atftpd",
      `load average before ${loadBefore}, after ${loadAfter}`,
      `total ${((Date.now() - started) / 1000).toFixed(0)} s`,
    ],
  };
}

if (import.meta.main) await runAlone(benchTftp);
