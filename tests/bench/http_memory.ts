/**
 * Where the HTTP bench's peak RSS comes from: the server's VmHWM / VmRSS and JS heap after start
 * and after each HTTP case (wrk, 32 connections, 4 s; the big file over one), once per V8 flag
 * set given (`DENO_V8_FLAGS` of the server). Shared-machine numbers; memory only, no rates.
 *
 *   deno run -A --unstable-net tests/bench/http_memory.ts [FLAGS …]   ("" is Deno's defaults)
 *
 * @module
 */
import { join } from "node:path";
import { heapLine, pinned, readMemory } from "./common.ts";
import { benchSetup, ourPaths, SERVER_IP, startOurs } from "./http.ts";

const CASES: [string, number][] = [["small", 32], ["known", 32], ["big", 1], ["small", 32]];

const flagSets = Deno.args.length ? Deno.args : [""];
await using setup = await benchSetup({ quick: false, print: console.log });
for (const [i, set] of flagSets.entries()) {
  const [flags, ...env] = set.split(";");
  if (flags) Deno.env.set("DENO_V8_FLAGS", flags);
  else Deno.env.delete("DENO_V8_FLAGS");
  Deno.env.delete("MALLOC_ARENA_MAX");
  for (const kv of env) Deno.env.set(kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1));
  const port = 8080 + i;
  const dir = join(setup.dir, `ours${i}`);
  await using ours = await startOurs(setup.ns, dir, setup.tree, { port });
  const paths = ourPaths();
  const base = `http://${SERVER_IP}:${port}`;
  const show = async (what: string) => {
    const m = readMemory(ours.pid)!;
    const heap = await heapLine(setup.ns, base, join(dir, "data"));
    console.log(
      `  [${set || "defaults"}] ${what}: VmHWM ${(m.hwmKiB / 1024).toFixed(1)} MiB, ` +
        `VmRSS ${(m.rssKiB / 1024).toFixed(1)} MiB (anon ${(m.anonKiB / 1024).toFixed(1)}, ` +
        `file ${(m.fileKiB / 1024).toFixed(1)}), ${heap}`,
    );
  };
  await show("started");
  for (const [name, conns] of CASES) {
    await setup.ns.exec(
      pinned("load", ["wrk", "-t1", `-c${conns}`, "-d4s", base + paths[name as "small"]!]),
      { timeoutMs: 60_000 },
    );
    await show(`after ${name}`);
  }
}
