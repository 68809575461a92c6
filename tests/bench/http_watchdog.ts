/**
 * What the HTTP connection watchdog costs: req/s and server CPU per request for a 1 KiB answer
 * with the watchdog off, with requests counted but no looks, and on (wrk, 32 connections,
 * server and wrk pinned to different cores, the order rotating from run to run), and
 * the server's CPU time per second with 1000 idle connections open, on and off, plus the time
 * of one look over them. Loopback only (127.0.0.1, random ports); every server it starts is
 * stopped by its PID.
 *
 *   deno run --unstable-net -A tests/bench/http_watchdog.ts [--quick]
 *
 * @module
 */
import { Hono } from "hono";
import type { Env } from "../../http/context.ts";
import { startHttpServer } from "../../http/server.ts";
import { ConnectionWatchdog } from "../../http/connection_watchdog.ts";
import { silentLogger } from "../../log.ts";
import { readKernelFile } from "../../net/libc.ts";
import { TcpConnectionTable } from "../../net/tcp_connections.ts";
import { cpuSeconds, median, pinned } from "./common.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** off: no watchdog; track: requests counted, no looks; on: as shipped (a look a second). */
type Mode = "off" | "track" | "on";
const MODES: readonly Mode[] = ["off", "track", "on"];
const INTERVAL: Record<Mode, number> = { off: 0, track: 3_600_000, on: 1000 };

/** The server side: `--serve MODE`; prints its port, runs until killed. */
async function serve(mode: Mode): Promise<void> {
  const app = new Hono<Env>();
  const body = "x".repeat(1024);
  app.get("/1k", (c) => c.text(body));
  const server = await startHttpServer({
    app,
    address: "127.0.0.1",
    port: 0,
    logger: silentLogger,
    watchIntervalMs: INTERVAL[mode],
    idleTimeoutMs: 3_600_000,
    maxConnections: 100_000,
    maxPerClient: 100_000,
  });
  console.log(`port ${server.port}`);
  await new Promise(() => {});
}

interface Server {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function spawnServer(mode: Mode): Promise<Server> {
  const argv = pinned("server", [
    Deno.execPath(),
    "run",
    "-A",
    "--unstable-net",
    new URL(import.meta.url).pathname,
    "--serve",
    mode,
  ]);
  const child = new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "piped" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/port \d+\n/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server ended: ${text}`);
    text += value;
  }
  return {
    port: Number(/port (\d+)/.exec(text)![1]),
    pid: child.pid,
    stop: async () => {
      child.kill("SIGKILL");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel().catch(() => {});
    },
  };
}

/** wrk's requests per second. */
async function wrk(port: number, seconds: number): Promise<number> {
  const argv = pinned("load", [
    "wrk",
    "-t1",
    "-c32",
    `-d${seconds}s`,
    `http://127.0.0.1:${port}/1k`,
  ]);
  const r = await new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "piped" }).output();
  const out = new TextDecoder().decode(r.stdout);
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!m || /Non-2xx|Socket errors/.test(out)) throw new Error(`wrk: ${out}`);
  return Number(m[1]);
}

async function cpuWithIdle(mode: Mode, conns: number, seconds: number): Promise<number> {
  const server = await spawnServer(mode);
  const open: Deno.Conn[] = [];
  try {
    for (let i = 0; i < conns; i++) {
      open.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
    }
    await sleep(1500);
    const before = cpuSeconds(server.pid);
    await sleep(seconds * 1000);
    return (cpuSeconds(server.pid) - before) / seconds;
  } finally {
    for (const c of open) c.close();
    await server.stop();
  }
}

/** One look's time over `conns` idle connections, measured in this process. */
async function lookMs(conns: number, looks: number): Promise<number> {
  const server = await spawnServer("off");
  const open: Deno.Conn[] = [];
  try {
    for (let i = 0; i < conns; i++) {
      open.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
    }
    let seen = 0;
    const dog = new ConnectionWatchdog({
      port: server.port,
      address: "127.0.0.1",
      idleTimeoutMs: 3_600_000,
      maxConnections: 100_000,
      maxPerClient: 100_000,
      logger: silentLogger,
      onConnections: (n) => seen = n,
    });
    dog.tick();
    const t0 = performance.now();
    for (let i = 0; i < looks; i++) dog.tick();
    const ms = (performance.now() - t0) / looks;
    if (seen !== conns) throw new Error(`the watchdog saw ${seen} connections, not ${conns}`);
    return ms;
  } finally {
    for (const c of open) c.close();
    await server.stop();
  }
}

/** Deno's handler info as far as the tracking touches it (`completed` made on first read). */
class FakeInfo {
  #completed: { promise: Promise<void>; resolve: () => void } | undefined;
  readonly remoteAddr = { hostname: "127.0.0.1", port: 40000 };

  get completed(): Promise<void> {
    if (!this.#completed) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => resolve = r);
      this.#completed = { promise, resolve };
    }
    return this.#completed.promise;
  }

  /** Deno's end of the response. */
  close(): void {
    this.#completed?.resolve();
  }
}

/**
 * The tracking's own cost per request, in this process (wrk's figures cannot resolve it on a
 * shared machine): 32 requests at a time begun, answered and ended, with and without it.
 */
async function trackingNs(n: number): Promise<{ without: number; with: number }> {
  const dog = new ConnectionWatchdog({
    port: 1,
    address: "127.0.0.1",
    idleTimeoutMs: 1e9,
    maxConnections: 1e9,
    maxPerClient: 1e9,
    logger: silentLogger,
  });
  const run = async (track: boolean) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i += 32) {
      const infos: FakeInfo[] = [];
      for (let j = 0; j < 32; j++) {
        const info = new FakeInfo();
        info.remoteAddr.port = 40000 + j;
        if (track) {
          const end = dog.begin(info.remoteAddr);
          info.completed.then(end, end);
        }
        infos.push(info);
      }
      for (const info of infos) info.close();
      await null;
    }
    return (performance.now() - t0) / n * 1e6;
  };
  await run(true);
  const without = median([await run(false), await run(false), await run(false)]);
  return { without, with: median([await run(true), await run(true), await run(true)]) };
}

/** One look's time when the listener has no connection: the table walk alone. */
function emptyLookMs(looks: number): number {
  const table = new TcpConnectionTable(1, "127.0.0.1");
  try {
    table.list();
    const t0 = performance.now();
    for (let i = 0; i < looks; i++) table.list();
    return (performance.now() - t0) / looks;
  } finally {
    table.close();
  }
}

async function main(quick: boolean): Promise<void> {
  const t = await trackingNs(quick ? 100_000 : 1_000_000);
  console.log(
    `tracking per request (in process): ${(t.with - t.without).toFixed(0)} ns ` +
      `(${t.without.toFixed(0)} ns without, ${t.with.toFixed(0)} ns with)`,
  );
  // Other work on this machine takes the server's core away for seconds at a time, so the
  // three servers run side by side and are measured in turns of one second: each turn's ratio
  // to "off" compares moments close together, and the median ratio is the figure.
  const turns = quick ? 3 : 20;
  const servers = new Map<Mode, Server>();
  const rates: Record<Mode, number[]> = { off: [], track: [], on: [] };
  const cpu: Record<Mode, number[]> = { off: [], track: [], on: [] };
  try {
    for (const mode of MODES) servers.set(mode, await spawnServer(mode));
    for (const server of servers.values()) await wrk(server.port, 1);
    for (let i = 0; i < turns; i++) {
      const order = [...MODES.slice(i % 3), ...MODES.slice(0, i % 3)];
      for (const mode of order) {
        const server = servers.get(mode)!;
        const before = cpuSeconds(server.pid);
        const r = await wrk(server.port, 1);
        rates[mode].push(r);
        cpu[mode].push((cpuSeconds(server.pid) - before) / r * 1e6);
      }
    }
  } finally {
    for (const server of servers.values()) await server.stop();
  }
  const ratios = (mode: Mode) => rates[mode].map((r, i) => r / rates.off[i]!);
  for (const mode of MODES) {
    console.log(
      `1 KiB, wrk -c32, ${turns} turns of 1 s, ${mode.padEnd(5)}: median ` +
        `${median(rates[mode]).toFixed(0)}, best ${Math.max(...rates[mode]).toFixed(0)} req/s, ` +
        `median ratio to off ${median(ratios(mode)).toFixed(3)}; CPU/request median ` +
        `${median(cpu[mode]).toFixed(2)} µs`,
    );
  }
  const conns = 1000;
  const cpuSecs = quick ? 3 : 10;
  const cpuOff = await cpuWithIdle("off", conns, cpuSecs);
  const cpuOn = await cpuWithIdle("on", conns, cpuSecs);
  console.log(
    `server CPU with ${conns} idle connections: off ${(cpuOff * 1000).toFixed(1)} ms/s, ` +
      `on ${(cpuOn * 1000).toFixed(1)} ms/s`,
  );
  console.log(`one look over ${conns} connections: ${(await lookMs(conns, 50)).toFixed(2)} ms`);
  // The table holds the whole namespace: here also the clients' ends and wrk's TIME_WAITs.
  const lines = (readKernelFile("/proc/net/tcp", 64 << 20) ?? "").split("\n").length - 2;
  console.log(
    `(/proc/net/tcp now has ${lines} lines; a look with none of ours: ${
      emptyLookMs(50).toFixed(2)
    } ms)`,
  );
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--serve");
  if (i >= 0) await serve(Deno.args[i + 1] as Mode);
  else await main(Deno.args.includes("--quick"));
}
