/**
 * The import rule of the layout, checked over the real module graph (`deno info --json`).
 *
 * Each top-level folder is a layer and may import only the layers {@linkcode RULES} lists
 * for it (and itself); npm and node packages only where {@linkcode PACKAGES} allows them;
 * the socket modules of `net/` only from the layers that run servers; a private file (`_x.ts`)
 * only from its own folder. Tests (`*_test.ts`, `_test_utils.ts`, `tests/`) may import
 * anything. Every other module must be reachable from `main.ts`, private files (support for
 * their folder's tests) excepted: one that is not is dead code.
 *
 *   deno run --allow-read --allow-run tools/layers.ts     # exit 1 and one line per violation
 *
 * docs/ARCHITECTURE.md explains the layers.
 *
 * @module
 */
import { relative } from "node:path";

/** Layer → the layers it may import, lowest first in the table. */
export const RULES: Readonly<Record<string, readonly string[]>> = {
  "log.ts": [],
  "deno.json": [],
  "templates": [],
  "net": ["log.ts"],
  "protocols": ["net", "log.ts"],
  "content": ["net", "log.ts"],
  "state": ["net", "log.ts"],
  "ipfs": ["content", "net", "log.ts"],
  "boot": ["protocols", "content", "state", "net", "templates", "log.ts"],
  "observe": ["boot", "protocols", "ipfs", "state", "content", "net", "log.ts"],
  "http": ["observe", "boot", "state", "content", "net", "templates", "log.ts"],
  "lab": ["log.ts"],
  "app": [
    "lab",
    "http",
    "observe",
    "boot",
    "ipfs",
    "state",
    "content",
    "protocols",
    "net",
    "templates",
    "log.ts",
    "deno.json",
  ],
  "tools": [],
  "main.ts": ["app", "log.ts", "deno.json"],
};

/** Package → the layers that may import it; packages not listed are free for all. */
export const PACKAGES: Readonly<Record<string, readonly string[]>> = {
  "npm:hono": ["http"],
  "node:sqlite": ["state", "app"],
  "npm:ventojs": ["boot"],
  "npm:smol-toml": ["app", "boot", "lab"],
  "npm:multiformats": ["ipfs"],
  "npm:@ipld/dag-pb": ["ipfs"],
  "npm:@ipld/car": ["ipfs"],
  "npm:ipfs-unixfs": ["ipfs"],
  "npm:@multiformats/murmur3": ["ipfs"],
};

/** Modules that open sockets: only layers that run servers may use them. */
export const SOCKETS: Readonly<Record<string, readonly string[]>> = {
  "net/libc.ts": ["net", "protocols", "app"],
  "net/udp_socket.ts": ["net", "protocols", "app"],
  "net/icmpv6_socket.ts": ["net", "protocols", "app"],
};

/** The part of `deno info --json` this reads. */
export interface ModuleGraph {
  modules: {
    specifier: string;
    kind?: string;
    dependencies?: {
      specifier: string;
      code?: { specifier: string };
      type?: { specifier: string };
    }[];
  }[];
}

/** One broken rule, as a line a person can act on. */
export interface Violation {
  from: string;
  to: string;
  why: string;
}

/** Whether a repository path is test code, which may import anything. */
export function isTest(path: string): boolean {
  return path.startsWith("tests/") || /(^|\/)(_test_utils|[\w-]+_test)\.ts$/.test(path);
}

/** The layer of a repository path: its top-level folder, or the file itself at the top. */
export function layerOf(path: string): string {
  const slash = path.indexOf("/");
  return slash < 0 ? path : path.slice(0, slash);
}

/** `npm:@ipld/car@^5/x` → `npm:@ipld/car`; `node:sqlite` stays; null for anything else. */
export function packageOf(specifier: string): string | null {
  if (specifier.startsWith("node:")) return specifier.split("/")[0]!;
  const m = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)/.exec(specifier);
  return m ? `npm:${m[1]}` : null;
}

/** Checks a module graph of the repository at `root` (a file URL ending in `/`). */
export function checkLayers(graph: ModuleGraph, root: string): Violation[] {
  const out: Violation[] = [];
  const local = (s: string) => s.startsWith(root) ? s.slice(root.length) : null;
  for (const m of graph.modules) {
    const from = local(m.specifier);
    if (from === null || isTest(from)) continue;
    const layer = layerOf(from);
    const allowed = RULES[layer];
    if (!allowed) {
      out.push({ from, to: "", why: `${layer} is not a known layer; add it to tools/layers.ts` });
      continue;
    }
    for (const dep of m.dependencies ?? []) {
      for (const target of [dep.code?.specifier, dep.type?.specifier]) {
        if (!target) continue;
        const to = local(target);
        if (to !== null) {
          const toLayer = layerOf(to);
          if (isPrivate(to) && dirOf(to) !== dirOf(from)) {
            out.push({ from, to, why: `${to} is private to ${dirOf(to)}/ (and its tests)` });
            continue;
          }
          if (toLayer !== layer && !allowed.includes(toLayer)) {
            out.push({
              from,
              to,
              why: `${layer} may import only ${allowed.join(", ") || "nothing"}`,
            });
          } else if (SOCKETS[to] && !SOCKETS[to].includes(layer)) {
            out.push({ from, to, why: `sockets are for ${SOCKETS[to].join(", ")}, not ${layer}` });
          }
          continue;
        }
        const pkg = packageOf(target);
        const users = pkg ? PACKAGES[pkg] : undefined;
        if (users && !users.includes(layer)) {
          out.push({ from, to: pkg!, why: `${pkg} is for ${users.join(", ")} only` });
        }
      }
    }
  }
  // One line per offending import, even when the same import is both code and type.
  return out.filter((v, i) =>
    out.findIndex((w) => w.from === v.from && w.to === v.to && w.why === v.why) === i
  );
}

/** The folder of a repository path ("" at the top). */
function dirOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

/** Whether a path is a private file (`_dump.ts`): support code its folder's tests use. */
export function isPrivate(path: string): boolean {
  return path.slice(path.lastIndexOf("/") + 1).startsWith("_");
}

/** Repository modules that `main.ts` never reaches: dead code (tests and private files excepted). */
export function unreachable(graph: ModuleGraph, root: string, files: readonly string[]): string[] {
  const reached = new Set(graph.modules.map((m) => m.specifier));
  return files.filter((f) =>
    !isTest(f) && !isPrivate(f) && !f.startsWith("tools/") && !reached.has(root + f)
  );
}

/** The module graph of `entry` as `deno info --json` prints it. */
export async function moduleGraph(entry: string, cwd: string): Promise<ModuleGraph> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno info ${entry} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout)) as ModuleGraph;
}

/** TypeScript files of the repository at `dir`, relative paths. */
export async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.name.startsWith(".") || e.name === "node_modules" || e.name === "testdata") continue;
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.isFile && p.endsWith(".ts")) out.push(relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

/** Checks the repository at `dir`; resolves to the problems, one line each. */
export async function checkRepository(dir: string): Promise<string[]> {
  const root = new URL(`file://${Deno.realPathSync(dir)}/`).href;
  const files = await sourceFiles(dir);
  const graph = await moduleGraph("main.ts", dir);
  // Private files and tools are not reached from main.ts: check their imports too.
  for (const extra of files.filter((f) => !isTest(f) && (isPrivate(f) || f.startsWith("tools/")))) {
    graph.modules.push(...(await moduleGraph(extra, dir)).modules);
  }
  const lines = checkLayers(graph, root).map((v) => `${v.from} imports ${v.to || "?"}: ${v.why}`);
  for (const f of unreachable(graph, root, files)) {
    lines.push(`${f} is not reachable from main.ts: dead code, or a layer missing its import`);
  }
  return lines;
}

if (import.meta.main) {
  const problems = await checkRepository(Deno.args[0] ?? ".");
  for (const p of problems) console.error(`layers: ${p}`);
  if (problems.length) Deno.exit(1);
  console.log("layers: every import goes the allowed way; every module is reachable");
}
