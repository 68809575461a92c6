/**
 * HTTP benchmark: `main.ts serve -l TREE` (the whole program, DHCP and TFTP included) against
 * nginx serving the same tree, one after the other in one throwaway namespace.
 *
 * The boot interface is `bench0`, one end of a veth pair that lies wholly inside the namespace, so DHCP opens its socket
 * on nothing real; wrk and curl run in the same namespace and reach the servers over its
 * loopback path. Server and load are pinned to different cores (see README.md). Both servers log
 * each request to a file as they would in production (ours: JSON lines at info; nginx: its
 * access log), run one process for requests (nginx: one worker) and are measured by:
 *
 * - req/s for a 1 KiB image file (wrk, 32 connections);
 * - MB/s for a large image file (wrk, one connection, so one transfer at a time);
 * - req/s for `/boot.ipxe?mac=…` (every request a different MAC: the rendered menu for an
 *   unknown machine, its address recorded); nginx has no such page, so its row shows
 *   nginx's static 1 KiB figure as the yardstick;
 * - peak RSS (VmHWM) after all of the above; nginx: master + worker.
 *
 * Run alone: `deno run --unstable-net -A tests/bench/http.ts [--quick]`.
 *
 * @module
 */
import { basename, join } from "node:path";
import { repoPath } from "../dhcp_harness.ts";
import { type Netns, run } from "../netns.ts";
import {
  benchNetns,
  type BenchOptions,
  type BenchProcess,
  type BenchTable,
  benchTempDir,
  httpAnswers,
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

const SERVER_IP = "10.251.0.1";
const OURS_PORT = 8080;
const NGINX_PORT = 8081;
const SMALL = "boot/debian/images/bench-1k.bin";
const BIG = "boot/debian/images/bench-big.bin";

/** wrk's summary, as printed by the Lua `done` hook below. */
interface WrkSummary {
  requests: number;
  bytes: number;
  seconds: number;
  errors: number;
  status: number;
}

// wrk's own text output rounds and mixes units; this prints one JSON line instead. The request
// hook (used for /boot.ipxe) gives each request its own MAC, as a boot storm would.
const WRK_DONE = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"bytes":%d,"seconds":%f,"errors":%d,"status":%d}\\n',
    summary.requests, summary.bytes, summary.duration / 1e6,
    e.connect + e.read + e.write + e.timeout, e.status))
end
`;
const WRK_MACS = `
local n = 0
request = function()
  n = n + 1
  local mac = string.format("52:54:00:%02x:%02x:%02x", math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
  return wrk.format("GET", "/boot.ipxe?mac=" .. mac)
end
`;

/** One server under test, reachable at `base`, with paths for the two files. */
interface Target {
  name: string;
  base: string;
  small: string;
  big: string;
  /** The rendered boot script, or null (nginx has none). */
  script: string | null;
  process: BenchProcess;
  /** nginx's memory is its master plus worker. */
  withChildren: boolean;
}

async function wrk(
  ns: Netns,
  dir: string,
  url: string,
  opts: { connections: number; seconds: number; macs?: boolean },
): Promise<WrkSummary> {
  const script = join(dir, opts.macs ? "wrk_macs.lua" : "wrk_done.lua");
  await Deno.writeTextFile(script, (opts.macs ? WRK_MACS : "") + WRK_DONE);
  const r = await ns.exec(
    pinned("load", [
      "wrk",
      "-t1",
      `-c${opts.connections}`,
      `-d${opts.seconds}s`,
      "--timeout",
      "10s",
      "-s",
      script,
      url,
    ]),
    { timeoutMs: (opts.seconds + 30) * 1000 },
  );
  const line = r.stdout.split("\n").find((l) => l.startsWith("{"));
  if (!line) throw new Error(`wrk printed no summary for ${url}:\n${r.stdout}${r.stderr}`);
  const s = JSON.parse(line) as WrkSummary;
  if (s.requests === 0 || s.errors > 0 || s.status > 0) {
    throw new Error(
      `wrk ${url}: ${s.requests} requests, ${s.errors} socket errors, ` +
        `${s.status} bad statuses:\n${r.stdout}`,
    );
  }
  return s;
}

/** Fetches `url` once and checks that it has `size` bytes (a wrong path would bench a 404). */
async function checkSize(ns: Netns, url: string, size: number): Promise<void> {
  const r = await ns.exec(["curl", "-sf", "-o", "/dev/null", "-w", "%{size_download}", url], {
    check: false,
    timeoutMs: 120_000,
  });
  if (r.code !== 0 || Number(r.stdout) !== size) {
    throw new Error(`GET ${url}: curl exit ${r.code}, ${r.stdout} bytes, expected ${size}`);
  }
}

/** Figures of one server: median of each case over the runs, peak memory at the end. */
interface Figures {
  small: number;
  big: number;
  script: number | null;
  memoryMiB: number;
}

/**
 * Measures both servers case by case, alternating within each run, so that load from other
 * work on this shared machine falls on both sides alike instead of on whichever ran second.
 */
async function measure(
  ns: Netns,
  dir: string,
  targets: Target[],
  o: BenchOptions,
): Promise<Figures[]> {
  const runs = o.quick ? 1 : 3;
  const seconds = o.quick ? 2 : 4;
  // One short pass so the first timed run does not pay for JIT warm-up and page cache.
  for (const t of targets) {
    await wrk(ns, dir, t.base + t.small, { connections: 8, seconds: 1 });
    await wrk(ns, dir, t.base + t.big, { connections: 1, seconds: 1 });
    if (t.script) await wrk(ns, dir, t.base + t.script, { connections: 8, seconds: 1 });
  }
  const samples = targets.map(() => ({
    small: [] as number[],
    big: [] as number[],
    script: [] as number[],
  }));
  for (let i = 0; i < runs; i++) {
    for (const [k, t] of targets.entries()) {
      const s = await wrk(ns, dir, t.base + t.small, { connections: 32, seconds });
      samples[k]!.small.push(s.requests / s.seconds);
    }
    for (const [k, t] of targets.entries()) {
      const b = await wrk(ns, dir, t.base + t.big, { connections: 1, seconds });
      samples[k]!.big.push(b.bytes / 1e6 / b.seconds);
    }
    for (const [k, t] of targets.entries()) {
      if (!t.script) continue;
      const m = await wrk(ns, dir, t.base + t.script, { connections: 32, seconds, macs: true });
      samples[k]!.script.push(m.requests / m.seconds);
    }
    for (const [k, t] of targets.entries()) {
      const s = samples[k]!;
      o.print(
        `  http run ${i + 1}/${runs} ${t.name}: 1 KiB ${s.small.at(-1)!.toFixed(0)} req/s, ` +
          `big ${s.big.at(-1)!.toFixed(0)} MB/s` +
          (t.script ? `, boot.ipxe ${s.script.at(-1)!.toFixed(0)} req/s` : ""),
      );
    }
  }
  return targets.map((t, k) => {
    const s = samples[k]!;
    const memoryMiB = peakMemoryMiB(t.process.pid, t.withChildren);
    if (memoryMiB === null) {
      throw new Error(`${t.name} died during the benchmark:\n${t.process.output()}`);
    }
    return {
      small: median(s.small),
      big: median(s.big),
      script: s.script.length ? median(s.script) : null,
      memoryMiB,
    };
  });
}

async function startOurs(ns: Netns, dir: string, tree: string): Promise<BenchProcess> {
  const p = await spawnAstralboot(
    ns,
    dir,
    `interface = "bench0"
data_dir = "${join(dir, "data")}"
log_level = "info"
[dhcp]
mode = "server"
range = ["10.251.0.100", "10.251.0.200"]
[http]
port = ${OURS_PORT}
address = "${SERVER_IP}"
`,
    tree,
  );
  await waitUntil(
    () => httpAnswers(ns, `http://${SERVER_IP}:${OURS_PORT}/boot.ipxe`),
    120_000,
    "astralboot HTTP to answer",
    p.output,
  );
  return p;
}

async function startNginx(ns: Netns, dir: string, tree: string): Promise<BenchProcess> {
  const prefix = join(dir, "nginx");
  await Deno.mkdir(prefix, { recursive: true });
  const conf = join(prefix, "nginx.conf");
  // Debian's shipped http settings (sendfile, tcp_nopush), one worker like our one JS thread.
  await Deno.writeTextFile(
    conf,
    `daemon off;
master_process on;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log ${prefix}/access.log;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  default_type application/octet-stream;
  server {
    listen ${SERVER_IP}:${NGINX_PORT};
    root ${tree};
  }
}
`,
  );
  const p = spawnServer(
    ns,
    ["nginx", "-p", prefix, "-e", `${prefix}/error.log`, "-c", conf],
    join(prefix, "stdout.log"),
  );
  await waitUntil(
    () => httpAnswers(ns, `http://${SERVER_IP}:${NGINX_PORT}/`),
    30_000,
    "nginx to answer",
    () => p.output() + Deno.readTextFileSync(`${prefix}/error.log`),
  );
  return p;
}

/** Runs the HTTP benchmark; returns one table (astralboot vs nginx). */
export async function benchHttp(o: BenchOptions): Promise<BenchTable> {
  await requireCommand("wrk", "wrk");
  await requireCommand("nginx", "nginx");
  const bigSize = (o.quick ? 32 : 256) * 1024 * 1024;
  await using tmp = await benchTempDir("abb-http-");
  // nginx's worker runs as an unprivileged user: the tree must be world-readable.
  await Deno.chmod(tmp.path, 0o755);
  const tree = join(tmp.path, "tree");
  await Deno.mkdir(tree);
  await run(["cp", "-r", repoPath("examples/tree") + "/.", tree]);
  await Deno.mkdir(join(tree, "boot/debian/images"), { recursive: true });
  await writeFiller(join(tree, SMALL), 1024);
  await writeFiller(join(tree, BIG), bigSize);
  await run(["chmod", "-R", "a+rX", tree]);

  await using ns = await benchNetns("abb-h");
  // No dummy driver in this kernel: a veth pair with both ends inside has carrier just as well.
  await ns.exec(["ip", "link", "add", "bench0", "type", "veth", "peer", "name", "bench1"]);
  await ns.exec(["ip", "link", "set", "bench1", "up"]);
  await ns.exec(["ip", "addr", "add", `${SERVER_IP}/24`, "dev", "bench0"]);
  await ns.exec(["ip", "link", "set", "bench0", "up"]);

  const oursBase = `http://${SERVER_IP}:${OURS_PORT}`;
  const nginxBase = `http://${SERVER_IP}:${NGINX_PORT}`;
  o.print(`  http: astralboot (main.ts serve) at ${oursBase}, nginx at ${nginxBase}`);
  await using oursProcess = await startOurs(ns, tmp.path, tree);
  await using nginxProcess = await startNginx(ns, tmp.path, tree);
  const targets: Target[] = [
    {
      name: "astralboot",
      base: oursBase,
      small: `/image/debian/${basename(SMALL)}`,
      big: `/image/debian/${basename(BIG)}`,
      script: "/boot.ipxe",
      process: oursProcess,
      withChildren: false,
    },
    {
      name: "nginx",
      base: nginxBase,
      small: `/${SMALL}`,
      big: `/${BIG}`,
      script: null,
      process: nginxProcess,
      withChildren: true,
    },
  ];
  for (const t of targets) {
    await checkSize(ns, t.base + t.small, 1024);
    await checkSize(ns, t.base + t.big, bigSize);
  }
  const [ours, ref] = await measure(ns, tmp.path, targets, o) as [Figures, Figures];

  const bigMiB = bigSize / 1024 / 1024;
  return {
    title: "HTTP: astralboot (main.ts serve) vs nginx, same tree, same namespace",
    oursName: "astralboot",
    referenceName: "nginx",
    rows: [
      { name: "1 KiB file", unit: "req/s", ours: ours.small, reference: ref.small },
      {
        name: `${bigMiB} MiB file`,
        unit: "MB/s",
        ours: ours.big,
        reference: ref.big,
      },
      {
        name: "/boot.ipxe?mac= (menu)",
        unit: "req/s",
        ours: ours.script,
        reference: ref.small,
        note: "nginx has no rendered script: reference is its static 1 KiB figure",
      },
      {
        name: "peak RSS (VmHWM)",
        unit: "MiB",
        ours: ours.memoryMiB,
        reference: ref.memoryMiB,
        lowerIsBetter: true,
        note: "astralboot: the whole program (DHCP, TFTP, HTTP); nginx: master + 1 worker",
      },
    ],
    notes: [
      `${o.quick ? 1 : 3} run(s) of ${o.quick ? 2 : 4} s each, median; wrk -t1, 32 connections ` +
      `(big file: 1); server pinned to one core, wrk to the other; both log every request`,
    ],
  };
}

if (import.meta.main) await runAlone(benchHttp);
