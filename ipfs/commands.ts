/**
 * `astralboot fetch` and `astralboot export DIR`: the whole tree of a ref into the cache
 * (with a progress line), or out of it into a folder for editing and `-l DIR`.
 *
 * @module
 */

import { join } from "node:path";
import type { IpfsStore } from "./store.ts";
import { type UnixfsNode, walkTree } from "./unixfs.ts";

/** Where a prefetch or export is; `bytesTotal` is known after the tree walk. */
export interface Progress {
  phase: "walk" | "fetch" | "done";
  files: number;
  filesTotal: number;
  /** File bytes in the cache so far (including those that were there already). */
  bytes: number;
  bytesTotal: number;
  /** Blocks fetched or read for this run (directory nodes and file blocks). */
  blocks: number;
  elapsedMs: number;
  /** Bytes per second fetched in this run (cached bytes excluded). */
  rate: number;
  /** Estimated milliseconds left, or null when unknown. */
  etaMs: number | null;
}

/** What a prefetch did. */
export interface PrefetchResult {
  files: number;
  dirs: number;
  bytes: number;
  /** Of `bytes`, how many were already cached. */
  cachedBytes: number;
  blocks: number;
  elapsedMs: number;
}

/** Options for {@linkcode prefetch} and {@linkcode exportTree}. */
export interface ProgressOptions {
  /** Called about every `intervalMs` and once at the end. */
  onProgress?: (p: Progress) => void;
  /** Default 250 ms. */
  intervalMs?: number;
}

type FileNode = UnixfsNode & { kind: "file" };

interface Plan {
  files: { path: string; node: FileNode }[];
  dirs: string[];
  symlinks: { path: string; target: string }[];
  bytesTotal: number;
  blocks: number;
}

/** Fetches every block and file of the store's tree into its cache (`ipfs refs -r`). */
export async function prefetch(
  store: IpfsStore,
  options: ProgressOptions = {},
): Promise<PrefetchResult> {
  const tracker = progressTracker(options);
  const plan = await planTree(store, tracker);
  let cachedBytes = 0;
  for (const { node } of plan.files) {
    if (await ensure(store, node, tracker)) cachedBytes += node.size;
  }
  const p = tracker.finish();
  return {
    files: plan.files.length,
    dirs: plan.dirs.length,
    bytes: plan.bytesTotal,
    cachedBytes,
    blocks: p.blocks,
    elapsedMs: p.elapsedMs,
  };
}

/** What an export wrote. */
export interface ExportResult {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

/**
 * Writes the tree into `dir` as plain files, folders and symlinks (`ipfs get -o dir`),
 * fetching what is not cached. Existing files are replaced; other files are left alone.
 */
export async function exportTree(
  store: IpfsStore,
  dir: string,
  options: ProgressOptions = {},
): Promise<ExportResult> {
  const tracker = progressTracker(options);
  const plan = await planTree(store, tracker);
  await Deno.mkdir(dir, { recursive: true });
  for (const d of plan.dirs) {
    if (!d) continue;
    const path = join(dir, d);
    await dropSymlink(path);
    await Deno.mkdir(path, { recursive: true });
  }
  for (const { path, node } of plan.files) {
    await ensure(store, node, tracker);
    const target = join(dir, path);
    await dropSymlink(target);
    // Copy via a temp name so an interrupted export never leaves a short file behind; made
    // anew (createNew), never opened through whatever the folder held under that name (a
    // symlink the tree put there in an earlier export would be written through).
    const temp = `${target}.astralboot-part`;
    await Deno.remove(temp).catch(() => {});
    const from = await Deno.open(store.cache.filePath(node.cid), { read: true });
    try {
      const to = await Deno.open(temp, { write: true, createNew: true });
      await from.readable.pipeTo(to.writable);
    } catch (e) {
      from.close();
      throw e;
    }
    await Deno.rename(temp, target);
  }
  for (const { path, target } of plan.symlinks) {
    const link = join(dir, path);
    await Deno.remove(link).catch(() => {});
    await Deno.symlink(target, link);
  }
  tracker.finish();
  return {
    files: plan.files.length,
    dirs: plan.dirs.filter((d) => d).length,
    symlinks: plan.symlinks.length,
    bytes: plan.bytesTotal,
  };
}

/** Options for {@linkcode progressPrinter}. */
export interface PrinterOptions {
  /** Where text goes; default stderr. */
  write?: (text: string) => void;
  /** Redraw one line (terminal) or print plain lines; default: whether stderr is a terminal. */
  terminal?: boolean;
  /** Plain mode: least time between lines; default 5 s. */
  plainIntervalMs?: number;
  /** Terminal width for the bar; default 80. */
  columns?: number;
}

/** An `onProgress` that draws a progress bar on a terminal, periodic plain lines otherwise. */
export function progressPrinter(options: PrinterOptions = {}): (p: Progress) => void {
  const encoder = new TextEncoder();
  const write = options.write ?? ((t: string) => Deno.stderr.writeSync(encoder.encode(t)));
  const terminal = options.terminal ?? stderrIsTerminal();
  const plainEvery = options.plainIntervalMs ?? 5000;
  let lastPlain = -Infinity;
  return (p) => {
    if (terminal) {
      write(`\r${formatProgress(p, options.columns ?? 80)}\x1b[K${p.phase === "done" ? "\n" : ""}`);
      return;
    }
    if (p.phase === "done" || p.elapsedMs - lastPlain >= plainEvery) {
      lastPlain = p.elapsedMs;
      write(formatProgress(p, 0) + "\n");
    }
  };
}

/** One progress line; with `columns` > 0 it starts with a bar that fits the width. */
export function formatProgress(p: Progress, columns: number): string {
  const pct = p.bytesTotal > 0 ? Math.min(1, p.bytes / p.bytesTotal) : p.phase === "done" ? 1 : 0;
  const text = [
    p.phase === "walk" ? "walking tree" : `${(pct * 100).toFixed(1)}%`,
    `${formatBytes(p.bytes)}/${formatBytes(p.bytesTotal)}`,
    `${p.files}/${p.filesTotal} files`,
    `${p.blocks} blocks`,
    `${formatBytes(p.rate)}/s`,
    p.phase === "done"
      ? `in ${formatDuration(p.elapsedMs)}`
      : `ETA ${p.etaMs === null ? "--:--" : formatDuration(p.etaMs)}`,
  ].join("  ");
  const barWidth = Math.min(30, columns - text.length - 3);
  if (barWidth < 5) return text;
  const filled = Math.round(pct * barWidth);
  return `[${"#".repeat(filled)}${".".repeat(barWidth - filled)}] ${text}`;
}

/** "1.5 MiB", "512 B". */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** "1:05", "2:03:04". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/** Brings one file into the cache, reporting progress; true when it was cached already. */
async function ensure(
  store: IpfsStore,
  node: FileNode,
  tracker: ReturnType<typeof progressTracker>,
): Promise<boolean> {
  if ((await store.cache.fileSize(node.cid)) === node.size) {
    tracker.fileDone(node.size);
    return true;
  }
  let seen = 0;
  let seenBlocks = 0;
  await store.ensureFile(node, (written, blocks) => {
    tracker.add(written - seen, blocks - seenBlocks);
    seen = written;
    seenBlocks = blocks;
  });
  tracker.add(node.size - seen, 0);
  tracker.fileDone(0);
  return false;
}

async function planTree(
  store: IpfsStore,
  tracker: ReturnType<typeof progressTracker>,
): Promise<Plan> {
  const plan: Plan = { files: [], dirs: [], symlinks: [], bytesTotal: 0, blocks: 0 };
  for await (const entry of walkTree(store.getBlock, store.root)) {
    tracker.add(0, 1 + entry.shards.length);
    const node = entry.node;
    if (node.kind === "file") {
      plan.files.push({ path: entry.path, node });
      plan.bytesTotal += node.size;
      tracker.planned(node.size);
    } else if (node.kind === "symlink") {
      plan.symlinks.push({ path: entry.path, target: node.target });
    } else {
      plan.dirs.push(entry.path);
    }
  }
  tracker.walked();
  return plan;
}

function progressTracker(options: ProgressOptions) {
  const started = performance.now();
  const interval = options.intervalMs ?? 250;
  const p: Progress = {
    phase: "walk",
    files: 0,
    filesTotal: 0,
    bytes: 0,
    bytesTotal: 0,
    blocks: 0,
    elapsedMs: 0,
    rate: 0,
    etaMs: null,
  };
  let fetched = 0;
  let lastEmit = -Infinity;
  const emit = (force: boolean) => {
    p.elapsedMs = performance.now() - started;
    p.rate = p.elapsedMs > 0 ? fetched / (p.elapsedMs / 1000) : 0;
    const left = p.bytesTotal - p.bytes;
    p.etaMs = p.phase === "done"
      ? 0
      : p.rate > 0 && p.phase === "fetch"
      ? left / p.rate * 1000
      : null;
    if (!options.onProgress || (!force && p.elapsedMs - lastEmit < interval)) return;
    lastEmit = p.elapsedMs;
    options.onProgress({ ...p });
  };
  return {
    planned(size: number) {
      p.filesTotal++;
      p.bytesTotal += size;
      emit(false);
    },
    walked() {
      p.phase = "fetch";
      emit(true);
    },
    add(bytes: number, blocks: number) {
      p.bytes += bytes;
      fetched += bytes;
      p.blocks += blocks;
      emit(false);
    },
    fileDone(cachedBytes: number) {
      p.files++;
      p.bytes += cachedBytes;
      emit(false);
    },
    finish(): Progress {
      p.phase = "done";
      emit(true);
      return { ...p };
    },
  };
}

async function dropSymlink(path: string): Promise<void> {
  // A symlink left by an earlier export must not redirect this one's writes elsewhere.
  const info = await Deno.lstat(path).catch(() => null);
  if (info?.isSymlink) await Deno.remove(path);
}

function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}
