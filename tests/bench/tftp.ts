/**
 * TFTP benchmark: a 32 MiB file fetched with atftp from `main.ts serve` (our server through the
 * local store, as shipped) and from Debian's in.tftpd (tftpd-hpa 5.2), each in its own pair of
 * throwaway namespaces (server ↔ client over a veth).
 *
 * Rows: blksize 512 / 1468 / 8192 × windowsize 1 / 4 / 16. tftpd-hpa ignores windowsize (it
 * does not acknowledge the option, so atftp runs lockstep against it): its three rows per
 * blksize measure the same thing and show the noise. Servers are pinned to one core, atftp to
 * the other (unpinned figures flip by 3×); runs alternate between the two servers
 * so that load from other work on the machine falls on both alike. Median of 3 runs.
 * The whole run is bounded: a fetch is stopped after 4 s and rated by what it wrote.
 *
 * Run alone: `deno run --unstable-net -A tests/bench/tftp.ts [--quick]`.
 *
 * @module
 */
import { join } from "node:path";
import { type Netns, vethPair } from "../netns.ts";
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
const BLKSIZES = [512, 1468, 8192] as const;
const WINDOWSIZES = [1, 4, 16] as const;
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
  return ss.stdout.includes(`${SERVER_IP}:69`);
}

/** One atftp fetch, stopped at `capS`; MB/s (10^6 bytes per second) and whether it was cut. */
async function fetch(t: Target, blksize: number, windowsize: number, size: number, capS: number) {
  const argv = [
    "atftp",
    ...["--option", `blksize ${blksize}`, "--option", `windowsize ${windowsize}`],
    ...["-g", "-r", FILE, "-l", t.download, SERVER_IP],
  ];
  const t0 = performance.now();
  // run() kills with SIGKILL at the timeout; `ip netns exec` and taskset exec into atftp.
  const r = await t.client.exec(pinned("load", argv), { check: false, timeoutMs: capS * 1000 });
  const seconds = (performance.now() - t0) / 1000;
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

/** Runs the benchmark; see the module doc. */
export async function benchTftp(o: BenchOptions): Promise<BenchTable> {
  await requireCommand("atftp", "atftp");
  await requireCommand("in.tftpd", "tftpd-hpa");
  const started = Date.now();
  const size = (o.quick ? 8 : 32) * 1024 * 1024;
  const runs = o.quick ? 1 : 3;
  await using tmp = await benchTempDir("abt-bench-tftp-");
  const tree = join(tmp.path, "tree");
  await Deno.mkdir(join(tree, "tftp"), { recursive: true });
  await writeFiller(join(tree, "tftp", FILE), size);

  const ours = await pair("abt-bo");
  const hpa = await pair("abt-bh");
  // 8192-byte blocks exceed the MTU: allow them (IP fragments) as tftpd-hpa does.
  const config = `interface = "eth0"\ndata_dir = "${tmp.path}/data"\n[dhcp]\nmode = "off"\n` +
    `[http]\nport = 8080\n[tftp]\nmax_blksize = 65464\nwindowsize = 64\n`;
  await using oursProcess = await spawnAstralboot(ours.server, tmp.path, config, tree);
  await using hpaProcess = spawnServer(
    hpa.server,
    ["in.tftpd", "-L", "-4", "-u", "root", "-s", join(tree, "tftp"), "-a", `${SERVER_IP}:69`],
    join(tmp.path, "in.tftpd.log"),
  );
  await waitUntil(() => udp69Bound(ours.server), 90_000, "astralboot TFTP", oursProcess.output);
  await waitUntil(() => udp69Bound(hpa.server), 10_000, "in.tftpd", hpaProcess.output);
  const targets: [Target, Target] = [
    {
      name: "astralboot",
      client: ours.client,
      process: oursProcess,
      download: join(tmp.path, "o"),
    },
    { name: "tftpd-hpa", client: hpa.client, process: hpaProcess, download: join(tmp.path, "h") },
  ];
  o.print(`  tftp: ${size / 1048576} MiB, atftp, ${runs} run(s) per row, alternating servers`);

  const capS = o.quick ? 2 : CAP_S;
  const rows: BenchRow[] = [];
  const cut = [0, 0];
  for (const blksize of BLKSIZES) {
    for (const windowsize of WINDOWSIZES) {
      const figures: [number[], number[]] = [[], []];
      for (let i = 0; i < runs; i++) {
        for (const [k, t] of targets.entries()) {
          const f = await fetch(t, blksize, windowsize, size, capS);
          figures[k]!.push(f.mbps);
          if (f.cut) cut[k]!++;
        }
      }
      const row: BenchRow = {
        name: `blksize ${blksize}, windowsize ${windowsize}`,
        unit: "MB/s",
        ours: median(figures[0]),
        reference: median(figures[1]),
      };
      o.print(`  ${row.name}: ${row.ours!.toFixed(1)} vs ${row.reference!.toFixed(1)} MB/s`);
      rows.push(row);
    }
  }
  rows.push({
    name: "peak RSS (VmHWM)",
    unit: "MiB",
    ours: peakMemoryMiB(oursProcess.pid),
    reference: null,
    lowerIsBetter: true,
    note: "astralboot: the whole program (DHCP off, TFTP, HTTP); in.tftpd forks one " +
      "short-lived child per transfer, so it has no comparable figure",
  });
  return {
    title: "TFTP: astralboot (main.ts serve) vs tftpd-hpa (in.tftpd), atftp client",
    oursName: "astralboot",
    referenceName: "tftpd-hpa",
    rows,
    notes: [
      `${size / 1048576} MiB file, median of ${runs} run(s); server pinned to one core, atftp ` +
      "to the other; veth between two namespaces",
      `a fetch still running after ${capS} s is stopped and rated by the bytes it wrote ` +
      `(stopped: astralboot ${cut[0]}, tftpd-hpa ${cut[1]} of ${9 * runs} each)`,
      "tftpd-hpa does not acknowledge windowsize: its rows per blksize are all lockstep",
      `total ${((Date.now() - started) / 1000).toFixed(0)} s`,
    ],
  };
}

if (import.meta.main) await runAlone(benchTftp);
