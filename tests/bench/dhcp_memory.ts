/**
 * Where the DHCP row's memory goes. Our server (set up as in `dhcp.ts`: its own namespaces, a
 * 65 279-address pool) serves perfdhcp's 50 000 clients at one fixed rate; then this prints:
 *
 * - the server's resident memory by kind of mapping (`/proc/PID/smaps`): V8's heap pages
 *   (256 KiB anonymous mappings), other anonymous memory (the young generation, thread
 *   arenas), the C heap (glibc's, SQLite's page caches among it), the `deno` executable;
 * - the JavaScript heap in use before and after a full collection, and, from a heap snapshot
 *   taken over the inspector after it, what each long-lived owner holds (the lease table, the
 *   machine registry, …) and the source text of the loaded modules, by origin.
 *
 *   deno run --unstable-net -A tests/bench/dhcp_memory.ts [--rate 4000] [--seconds 15] [--keep FILE]
 *
 * `--keep FILE` keeps the snapshot (~60 MB) for Chromium's DevTools. Memory only: the rates are
 * `dhcp.ts`'s. The inspector listens on the server namespace's loopback only.
 *
 * @module
 */
import { join } from "node:path";
import { benchTempDir, readMemory, runCleanups } from "./common.ts";
import { runTrial, startOurs } from "./dhcp.ts";

/** The owners whose holdings are reported, by the name of their class. */
export const OWNERS = [
  "LeaseTable",
  "MachineRegistry",
  "InventoryStore",
  "EventLog",
  "BootWatch",
] as const;

const INSPECTOR = "127.0.0.1:9229";

/** The parts of a V8 heap snapshot (`.heapsnapshot` JSON) this reads. */
export interface HeapSnapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}

/**
 * Bytes reachable from each object whose class is in `owners` (all instances together), not
 * counting code, hidden classes and other VM internals, nor what another listed owner holds:
 * what the owner keeps alive, near enough (a retained size would need the dominator tree).
 */
export function ownedBytes(snap: HeapSnapshot, owners: readonly string[]): Map<string, number> {
  const { meta } = snap.snapshot;
  const nf = meta.node_fields.length, ef = meta.edge_fields.length;
  const [types] = meta.node_types, [edgeTypes] = meta.edge_types;
  const at = (f: string) => meta.node_fields.indexOf(f);
  const [iType, iName, iSize, iEdges] = [at("type"), at("name"), at("self_size"), at("edge_count")];
  const { nodes, edges, strings } = snap;
  const count = nodes.length / nf;
  const firstEdge = new Uint32Array(count + 1);
  for (let i = 0; i < count; i++) firstEdge[i + 1] = firstEdge[i]! + nodes[i * nf + iEdges]! * ef;
  const internal = new Set(["code", "hidden", "object shape", "closure", "native", "synthetic"]);
  const ownerOf = (i: number) =>
    types[nodes[i * nf + iType]!] === "object" ? strings[nodes[i * nf + iName]!]! : "";
  const out = new Map<string, number>(owners.map((o) => [o, 0]));
  for (const owner of owners) {
    const seen = new Uint8Array(count);
    let total = 0;
    for (let root = 0; root < count; root++) {
      if (ownerOf(root) !== owner) continue;
      const stack = [root];
      while (stack.length > 0) {
        const i = stack.pop()!;
        if (seen[i]) continue;
        seen[i] = 1;
        total += nodes[i * nf + iSize]!;
        for (let e = firstEdge[i]!; e < firstEdge[i + 1]!; e += ef) {
          const kind = edgeTypes[edges[e]!];
          if (kind === "weak" || kind === "shortcut") continue;
          const to = edges[e + 2]! / nf;
          if (seen[to] || internal.has(types[nodes[to * nf + iType]!]!)) continue;
          const other = ownerOf(to);
          if (other !== owner && owners.includes(other)) continue;
          stack.push(to);
        }
      }
    }
    out.set(owner, total);
  }
  return out;
}

/** Bytes of the modules' source strings, by origin: ours (file:), npm packages, Deno's own. */
export function sourceBytes(snap: HeapSnapshot): Map<string, number> {
  const { meta } = snap.snapshot;
  const nf = meta.node_fields.length, ef = meta.edge_fields.length;
  const at = (f: string) => meta.node_fields.indexOf(f);
  const [iName, iSize, iEdges] = [at("name"), at("self_size"), at("edge_count")];
  const { nodes, edges, strings } = snap;
  const out = new Map<string, number>();
  for (let i = 0, e = 0; i < nodes.length / nf; i++) {
    const end = e + nodes[i * nf + iEdges]! * ef;
    const name = strings[nodes[i * nf + iName]!]!;
    if (name.startsWith("system / Script / ")) {
      const url = name.slice("system / Script / ".length);
      const origin = /\/npm\/|node_modules/.test(url)
        ? "npm packages"
        : url.startsWith("file:")
        ? "our modules"
        : "Deno's own";
      for (let k = e; k < end; k += ef) {
        if (strings[edges[k + 1]!] !== "source") continue;
        out.set(origin, (out.get(origin) ?? 0) + nodes[(edges[k + 2]! / nf) * nf + iSize]!);
      }
    }
    e = end;
  }
  return out;
}

/** Resident KiB of `/proc/PID/smaps` text by kind of mapping (see the module doc). */
export function smapsParts(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let kind = "";
  for (const line of text.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const kib = (parseInt(head[2]!, 16) - parseInt(head[1]!, 16)) / 1024;
      const name = head[3]!;
      kind = name === ""
        ? (kib === 256 ? "V8 heap pages (256 KiB)" : "other anonymous")
        : name === "[heap]"
        ? "C heap"
        : /\/deno$/.test(name)
        ? "deno executable"
        : "other";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out.set(kind, (out.get(kind) ?? 0) + Number(rss[1]));
  }
  return out;
}

/** In the server's namespace: collects garbage, takes a heap snapshot, writes it to `file`. */
async function take(file: string): Promise<void> {
  const [target] = await (await fetch(`http://${INSPECTOR}/json/list`)).json();
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const waiting = new Map<number, (v: unknown) => void>();
  const chunks: string[] = [];
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.method === "HeapProfiler.addHeapSnapshotChunk") chunks.push(m.params.chunk);
    else if (m.id !== undefined) waiting.get(m.id)?.(m.result ?? m.error);
  };
  let id = 0;
  const call = (method: string, params = {}) =>
    new Promise<Record<string, number>>((resolve) => {
      waiting.set(++id, resolve as (v: unknown) => void);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("HeapProfiler.enable");
  const before = await call("Runtime.getHeapUsage");
  await call("HeapProfiler.collectGarbage");
  const after = await call("Runtime.getHeapUsage");
  await call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  await Deno.writeTextFile(file, chunks.join(""));
  ws.close();
  const mib = (n = 0) => (n / 1048576).toFixed(1);
  console.log(
    `JS heap in use ${mib(before.usedSize)} MiB, after a full collection ${mib(after.usedSize)}`,
  );
}

function option(name: string, fallback: number): number {
  const at = Deno.args.indexOf(name);
  return at >= 0 ? Number(Deno.args[at + 1]) : fallback;
}

/** Serves the load, then prints where the memory went (see the module doc). */
async function measure(rate: number, seconds: number): Promise<void> {
  const keepAt = Deno.args.indexOf("--keep");
  await using dir = await benchTempDir("abb-dhcp-memory-");
  const t = await startOurs(dir.path, undefined, [`--inspect=${INSPECTOR}`]);
  const mib = (kib: number) => (kib / 1024).toFixed(1);
  const idle = readMemory(t.process.pid)!;
  console.log(
    `idle: RSS ${mib(idle.rssKiB)} MiB (anon ${mib(idle.anonKiB)}, file ${mib(idle.fileKiB)})`,
  );
  const trial = await runTrial(t, rate, seconds);
  console.log(`perfdhcp at ${rate}/s for ${seconds} s: ${trial.acks}/${trial.discovers} ACKs`);
  const m = readMemory(t.process.pid)!;
  console.log(`after: RSS ${mib(m.rssKiB)} MiB, peak ${mib(m.hwmKiB)}`);
  const parts = smapsParts(await Deno.readTextFile(`/proc/${t.process.pid}/smaps`));
  for (const [kind, kib] of [...parts].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${kind}: ${mib(kib)} MiB`);
  }
  const file = keepAt >= 0 ? Deno.args[keepAt + 1]! : join(dir.path, "server.heapsnapshot");
  const r = await t.server.exec(
    ["deno", "run", "-A", new URL(import.meta.url).pathname, "--take", file],
    { check: false, timeoutMs: 300_000 },
  );
  if (r.code !== 0) throw new Error(`heap snapshot failed: ${r.stderr}`);
  console.log(r.stdout.trim());
  await t.process.stop();
  const snap = JSON.parse(await Deno.readTextFile(file)) as HeapSnapshot;
  console.log("held by each owner (reachable, VM internals left out):");
  for (const [owner, bytes] of ownedBytes(snap, OWNERS)) {
    console.log(`  ${owner}: ${(bytes / 1048576).toFixed(2)} MiB`);
  }
  console.log("source text of the loaded modules:");
  for (const [origin, bytes] of sourceBytes(snap)) {
    console.log(`  ${origin}: ${(bytes / 1048576).toFixed(2)} MiB`);
  }
}

if (import.meta.main && Deno.args[0] === "--take") {
  await take(Deno.args[1]!);
} else if (import.meta.main) {
  Deno.addSignalListener("SIGINT", () => runCleanups().finally(() => Deno.exit(130)));
  try {
    await measure(option("--rate", 4000), option("--seconds", 15));
  } finally {
    await runCleanups();
  }
}
