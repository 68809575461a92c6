/**
 * DHCP benchmark: sustained DORA/s of `main.ts serve` against dnsmasq, each in its own pair of
 * throwaway namespaces (server ↔ client over a veth), both persisting leases to disk.
 *
 * The load is Kea's perfdhcp (Debian package kea-admin). It always acts as a relay: it sends
 * from port 67 with giaddr set to its own address. Its address lies in the server's subnet, so
 * both servers take the requests as relayed from their own link and answer to giaddr.
 *
 * "Sustained" is the highest offered rate at which at least 98 % of the exchanges complete
 * (DISCOVER → OFFER → REQUEST → ACK within perfdhcp's 1 s drop time): rates double from 100/s
 * until a trial fails, then a few bisection steps between the last pass and the first failure.
 * The figure is ACKs received per second at that rate. Searches alternate between the two
 * servers so that load from other work on the machine falls on both alike.
 *
 * dnsmasq runs with `--no-ping`: by default it pings each new address and waits ~3 s for an
 * answer (under 1 DORA/s here), and our server does no such conflict check, so only
 * `--no-ping` compares like with like.
 *
 * Run alone: `deno run --unstable-net -A tests/bench/dhcp.ts [--quick]`.
 *
 * @module
 */
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { repoPath } from "../dhcp_harness.ts";
import { type Netns, vethPair } from "../netns.ts";
import {
  benchNetns,
  type BenchOptions,
  type BenchProcess,
  type BenchRow,
  type BenchTable,
  benchTempDir,
  heapLine,
  median,
  peakMemoryMiB,
  pinned,
  readMemory,
  requireCommand,
  runAlone,
  spawnAstralboot,
  spawnServer,
  waitUntil,
} from "./common.ts";

const SERVER_IP = "10.252.0.1";
const CLIENT_IP = "10.252.0.2";
const PREFIX = 16;
// 65 279 addresses for at most 50 000 distinct clients: the pool never runs dry.
const RANGE = ["10.252.1.0", "10.252.255.254"] as const;
const CLIENTS = 50_000;
const PASS_RATIO = 0.98;
/**
 * Geometric bisection steps between the last rate that passed and the first that failed: four
 * leave ~4 % between them (two left 19 %: servers 10 % apart landed on the same rate).
 */
const BISECTIONS = 4;

/** One trial of perfdhcp at a fixed offered rate. */
export interface Trial {
  rate: number;
  discovers: number;
  acks: number;
  seconds: number;
  /** CPU time the server used during the trial (all its threads, user + system), in ms. */
  cpuMs: number;
}

/** A server under test with its own namespaces. */
export interface DhcpTarget {
  name: string;
  server: Netns;
  client: Netns;
  process: BenchProcess;
  /** Ours: its data folder (the admin token for /metrics). */
  dataDir?: string;
}

async function pair(tag: string): Promise<{ server: Netns; client: Netns }> {
  const server = await benchNetns(`abb-${tag}s`);
  const client = await benchNetns(`abb-${tag}c`);
  await vethPair(server, `${SERVER_IP}/${PREFIX}`, client, `${CLIENT_IP}/${PREFIX}`);
  return { server, client };
}

/** Waits until something listens on UDP port 67 in `ns`. */
function listening67(ns: Netns, p: BenchProcess, what: string): Promise<void> {
  return waitUntil(
    async () =>
      (await ns.exec(["ss", "-Huln", "sport = :67"], { check: false })).stdout.trim() !== "",
    120_000,
    `${what} to listen on port 67`,
    p.output,
  );
}

/**
 * `main.ts serve` of this checkout, or of `checkout` (the baseline of an A/B), run with
 * `denoFlags` besides the program's own (`dhcp_memory.ts`: the inspector).
 */
export async function startOurs(
  dir: string,
  checkout?: string,
  denoFlags: readonly string[] = [],
): Promise<DhcpTarget> {
  const { server, client } = await pair(checkout ? "b" : "d");
  const process = await spawnAstralboot(
    server,
    dir,
    `interface = "eth0"
data_dir = "${join(dir, "data")}"
log_level = "info"
[dhcp]
mode = "server"
range = ["${RANGE[0]}", "${RANGE[1]}"]
lease = "1h"
# The references have no limit on new clients; the default (10/s) would refuse perfdhcp's.
new_client_rate = 100000
[http]
port = 8080
`,
    repoPath("examples/tree"),
    checkout,
    denoFlags,
  );
  const name = checkout ? "baseline" : "astralboot";
  await listening67(server, process, name);
  return { name, server, client, process, dataDir: join(dir, "data") };
}

/**
 * Kea's kea-dhcp4 with the memfile backend persisting to a CSV file (`persist: true`), the same
 * pool and lease time; its config, lease, pid and lock files in `dir`. Kea 2.2 has no ping
 * check and runs single-threaded by default. The lease file cleanup (kea-lfc) runs once an
 * hour, so never during a run.
 */
async function startKea(dir: string): Promise<DhcpTarget> {
  const { server, client } = await pair("k");
  const config = {
    Dhcp4: {
      "interfaces-config": { interfaces: ["eth0"], "dhcp-socket-type": "udp" },
      "lease-database": {
        type: "memfile",
        persist: true,
        name: join(dir, "kea-leases4.csv"),
        "lfc-interval": 3600,
      },
      "valid-lifetime": 3600,
      subnet4: [{
        id: 1,
        subnet: `10.252.0.0/${PREFIX}`,
        pools: [{ pool: `${RANGE[0]} - ${RANGE[1]}` }],
      }],
      loggers: [{
        name: "kea-dhcp4",
        // INFO logs every lease given (DHCP4_LEASE_ALLOC), as the other two log every reply.
        severity: "INFO",
        "output_options": [{ output: join(dir, "kea.log") }],
      }],
    },
  };
  const file = join(dir, "kea-dhcp4.json");
  await Deno.writeTextFile(file, JSON.stringify(config, null, 2));
  // Pid and lock files go to these folders instead of /run/kea of the host's packaged service.
  const env = [`KEA_PIDFILE_DIR=${dir}`, `KEA_LOCKFILE_DIR=${dir}`];
  const process = spawnServer(
    server,
    ["env", ...env, "kea-dhcp4", "-c", file],
    join(dir, "kea.out"),
  );
  await listening67(server, process, "kea-dhcp4");
  return { name: "kea", server, client, process };
}

async function startDnsmasq(dir: string): Promise<DhcpTarget> {
  const { server, client } = await pair("q");
  // dnsmasq drops root to nobody: its folder must be writable for the lease file rewrites.
  await Deno.chmod(dir, 0o777);
  const process = spawnServer(server, [
    "dnsmasq",
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--port=0",
    "--no-ping",
    // The default cap of 1000 leases would refuse most of perfdhcp's clients.
    `--dhcp-lease-max=${CLIENTS + 1000}`,
    "--interface=eth0",
    "--bind-interfaces",
    `--dhcp-range=${RANGE[0]},${RANGE[1]},255.255.0.0,1h`,
    `--dhcp-leasefile=${join(dir, "dnsmasq.leases")}`,
    `--pid-file=${join(dir, "dnsmasq.pid")}`,
    `--log-facility=${join(dir, "dnsmasq.log")}`,
  ], join(dir, "dnsmasq.out"));
  await listening67(server, process, "dnsmasq");
  return { name: "dnsmasq", server, client, process };
}

/** Parses perfdhcp's report: DISCOVERs sent and ACKs received. */
export function parsePerfdhcp(text: string): { discovers: number; acks: number } | null {
  const section = (title: string) => {
    const at = text.indexOf(`Statistics for: ${title}`);
    return at < 0 ? null : text.slice(at);
  };
  const dora = section("DISCOVER-OFFER"), ra = section("REQUEST-ACK");
  const sent = dora && /sent packets: (\d+)/.exec(dora);
  const received = ra && /received packets: (\d+)/.exec(ra);
  if (!sent || !received) return null;
  return { discovers: Number(sent[1]), acks: Number(received[1]) };
}

/** CPU time used so far by a process (all threads, user + system), in ms; 0 when it is gone. */
function cpuMs(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime (fields 14 and 15) in clock ticks, 100 a second on Linux.
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

/**
 * UDP datagrams a namespace's sockets dropped so far because their receive buffer was full
 * (`RcvbufErrors` of `/proc/net/snmp`, which is per namespace).
 */
async function rcvbufErrors(ns: Netns): Promise<number> {
  const r = await ns.exec(["cat", "/proc/net/snmp"], { check: false });
  const [names, values] = r.stdout.split("\n").filter((line) => line.startsWith("Udp:"));
  const at = names?.split(/\s+/).indexOf("RcvbufErrors") ?? -1;
  return at < 0 ? 0 : Number(values?.split(/\s+/)[at] ?? 0);
}

/**
 * The server's memory after a trial, MiB: its RSS (anonymous + file pages) and peak, and for
 * ours the JS heap in use and reserved and what ArrayBuffers hold outside it (its /metrics).
 */
async function memoryLine(t: DhcpTarget): Promise<string> {
  const m = readMemory(t.process.pid);
  if (!m) return "memory: gone";
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  let line = `RSS ${mib(m.rssKiB)} (anon ${mib(m.anonKiB)}, file ${mib(m.fileKiB)}), ` +
    `peak ${mib(m.hwmKiB)} MiB`;
  if (t.dataDir) line += `; ${await heapLine(t.server, `http://${SERVER_IP}:8080`, t.dataDir)}`;
  return line;
}

export async function runTrial(t: DhcpTarget, rate: number, seconds: number): Promise<Trial> {
  const verbose = Boolean(Deno.env.get("BENCH_TRIALS"));
  const drops0 = verbose ? [await rcvbufErrors(t.server), await rcvbufErrors(t.client)] : [];
  const cpu0 = cpuMs(t.process.pid);
  const r = await t.client.exec(
    pinned("load", [
      "perfdhcp",
      "-4",
      "-g",
      "single",
      "-l",
      "eth0",
      "-R",
      String(CLIENTS),
      "-r",
      String(rate),
      "-p",
      String(seconds),
      // Wait 1 s (in µs) after the last DISCOVER so late answers still count.
      "-W",
      "1000000",
      SERVER_IP,
    ]),
    { check: false, timeoutMs: (seconds + 30) * 1000 },
  );
  const parsed = parsePerfdhcp(r.stdout + r.stderr);
  if (!parsed) {
    throw new Error(`perfdhcp printed no report (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  }
  const cpu = cpuMs(t.process.pid) - cpu0;
  if (verbose) {
    const [server, client] = [await rcvbufErrors(t.server), await rcvbufErrors(t.client)];
    console.log(
      `    ${t.name} ${rate}/s: ${parsed.acks}/${parsed.discovers} ACKs, CPU ${cpu} ms, ` +
        `receive buffer drops: server ${server - drops0[0]!}, perfdhcp ${client - drops0[1]!}` +
        `; ${await memoryLine(t)}`,
    );
  }
  return { rate, seconds, ...parsed, cpuMs: cpu };
}

function passes(t: Trial): boolean {
  return t.discovers > 0 && t.acks >= PASS_RATIO * t.discovers;
}

/**
 * Finds the highest rate that passes, doubling from `start`; returns that trial (null if even
 * `start` fails).
 */
async function search(t: DhcpTarget, o: BenchOptions, start: number): Promise<Trial | null> {
  const seconds = o.quick ? 2 : 3;
  let best: Trial | null = null;
  let fail: number | null = null;
  for (let rate = start; rate <= 25_600; rate *= 2) {
    const trial = await runTrial(t, rate, seconds);
    if (!passes(trial)) {
      fail = rate;
      break;
    }
    best = trial;
  }
  for (let step = 0; best && fail && step < (o.quick ? 1 : BISECTIONS); step++) {
    const rate = Math.round(Math.sqrt(best.rate * fail));
    const trial = await runTrial(t, rate, seconds);
    if (passes(trial)) best = trial;
    else fail = rate;
  }
  return best;
}

/** Options of {@linkcode benchDhcp} beyond the shared ones. */
export interface DhcpBenchOptions {
  /**
   * Another checkout of this repository (a git worktree of an older commit): its `main.ts serve`
   * runs as a third server, alternated with the others, for an A/B of two builds.
   */
  baseline?: string;
}

/**
 * Runs the DHCP benchmark; returns one table: astralboot against dnsmasq --no-ping and Kea
 * memfile (and a baseline build when asked).
 */
export async function benchDhcp(o: BenchOptions, d: DhcpBenchOptions = {}): Promise<BenchTable> {
  await requireCommand("perfdhcp", "kea-admin");
  await requireCommand("dnsmasq", "dnsmasq");
  await requireCommand("kea-dhcp4", "kea-dhcp4-server");
  await using oursDir = await benchTempDir("abb-dhcp-ours-");
  await using refDir = await benchTempDir("abb-dhcp-dnsmasq-");
  await using keaDir = await benchTempDir("abb-dhcp-kea-");
  await using baseDir = await benchTempDir("abb-dhcp-base-");
  const targets: DhcpTarget[] = [];
  try {
    targets.push(await startOurs(oursDir.path));
    targets.push(await startDnsmasq(refDir.path));
    targets.push(await startKea(keaDir.path));
    if (d.baseline) targets.push(await startOurs(baseDir.path, d.baseline));
    const figures = targets.map(() => [] as number[]);
    // CPU per DORA at the sustained rate: less moved by other work on the machine than the rate.
    const cpuPerDora = targets.map(() => [] as number[]);
    // Later searches start at half the last passing rate: the same answer in fewer trials.
    const starts = targets.map(() => 100);
    const reps = o.quick ? 1 : 3;
    for (let i = 0; i < reps; i++) {
      for (const [k, t] of targets.entries()) {
        let best = await search(t, o, starts[k]!);
        if (!best && starts[k]! > 100) best = await search(t, o, 100);
        const v = best ? best.acks / best.seconds : 0;
        if (best) starts[k] = Math.max(100, Math.floor(best.rate / 2));
        figures[k]!.push(v);
        const us = best && best.acks > 0 ? best.cpuMs * 1000 / best.acks : null;
        if (us !== null) cpuPerDora[k]!.push(us);
        o.print(
          `  dhcp run ${i + 1}/${reps} ${t.name}: ${v.toFixed(0)} DORA/s sustained, ` +
            `${us === null ? "-" : us.toFixed(0)} µs CPU per DORA (load average ${loadAverage()})`,
        );
      }
    }
    const memory = targets.map((t) => {
      const m = peakMemoryMiB(t.process.pid);
      if (m === null) {
        throw new Error(`${t.name} died during the benchmark:\n${t.process.output()}`);
      }
      return m;
    });
    const leases = {
      ours: countOurLeases(oursDir.path),
      dnsmasq: await countLines(join(refDir.path, "dnsmasq.leases")),
      kea: await countKeaLeases(join(keaDir.path, "kea-leases4.csv")),
    };
    const dora = median(figures[0]!);
    const against = (k: number, name: string, note?: string): BenchRow => ({
      name: `DORA/s sustained vs ${name}`,
      unit: "DORA/s",
      ours: dora,
      reference: median(figures[k]!),
      referenceName: targets[k]!.name,
      note,
    });
    const rows: BenchRow[] = [
      against(
        1,
        "dnsmasq",
        `highest rate with >= ${PASS_RATIO * 100} % of exchanges completed; leases on disk ` +
          `at the end: ours ${leases.ours}, dnsmasq ${leases.dnsmasq}, kea ${leases.kea}`,
      ),
      against(2, "Kea"),
      ...(d.baseline ? [against(3, "baseline", `baseline: ${d.baseline}`)] : []),
      ...targets.slice(1).map((t, i): BenchRow => ({
        name: `CPU per DORA vs ${t.name}`,
        unit: "µs",
        ours: cpuPerDora[0]!.length ? median(cpuPerDora[0]!) : null,
        reference: cpuPerDora[i + 1]!.length ? median(cpuPerDora[i + 1]!) : null,
        referenceName: t.name,
        lowerIsBetter: true,
        note: i === 0
          ? "server CPU time (user + system, all threads) / ACKs, at the sustained rate"
          : undefined,
      })),
      ...(["dnsmasq", "Kea"] as const).map((label, i): BenchRow => ({
        name: `peak RSS vs ${label}`,
        unit: "MiB",
        ours: memory[0]!,
        reference: memory[i + 1]!,
        referenceName: targets[i + 1]!.name,
        lowerIsBetter: true,
        note: i === 0 ? "VmHWM; astralboot: the whole program (DHCP, TFTP, HTTP)" : undefined,
      })),
      ...(d.baseline
        ? [
          {
            name: "peak RSS vs baseline",
            unit: "MiB",
            ours: memory[0]!,
            reference: memory[3]!,
            referenceName: "baseline",
            lowerIsBetter: true,
          } satisfies BenchRow,
        ]
        : []),
    ];
    return {
      title: "DHCP: astralboot (main.ts serve) vs dnsmasq --no-ping and Kea memfile, " +
        "perfdhcp as a relay",
      oursName: "astralboot",
      referenceName: "reference",
      rows,
      notes: [
        `${reps} rate search(es) per server, alternated, median; ${o.quick ? 2 : 3} s per ` +
        `trial; ${CLIENTS} distinct client MACs; leases on disk (ours: SQLite, each ACK ` +
        "sent after its lease was fsynced; dnsmasq: lease file rewritten; Kea: memfile CSV " +
        "appended, no fsync)",
        "dnsmasq with its default ping check answers under 1 DORA/s here (3 s per new address)",
      ],
    };
  } finally {
    for (const t of targets) {
      await t.process.stop();
      await t.client.dispose();
      await t.server.dispose();
    }
  }
}

/** The 1-minute load average, for the progress lines (the machine may be shared). */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0]!;
  } catch {
    return "?";
  }
}

async function countLines(file: string): Promise<string> {
  const text = await Deno.readTextFile(file).catch(() => "");
  return String(text.split("\n").filter(Boolean).length);
}

/** Distinct addresses in Kea's lease file (it appends a line per change; the header is one). */
async function countKeaLeases(file: string): Promise<string> {
  const text = await Deno.readTextFile(file).catch(() => "");
  const ips = new Set(text.split("\n").slice(1).filter(Boolean).map((l) => l.split(",")[0]));
  return String(ips.size);
}

/** Leases our server holds on disk after the run (proof that it persisted them). */
function countOurLeases(oursDir: string): string {
  try {
    const db = new DatabaseSync(join(oursDir, "data", "leases.db"), { readOnly: true });
    const row = db.prepare("SELECT count(*) AS n FROM dhcp_leases").get() as
      | { n: number }
      | undefined;
    db.close();
    return String(row?.n ?? "?");
  } catch {
    return "?"; // schema differs: the count is informative only
  }
}

if (import.meta.main) {
  const at = Deno.args.indexOf("--baseline");
  const baseline = at >= 0 ? Deno.args[at + 1] : undefined;
  await runAlone((o) => benchDhcp(o, { baseline }));
}
