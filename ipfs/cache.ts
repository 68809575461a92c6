/**
 * The content-addressed cache under `<data_dir>/cache/`.
 *
 * ```
 * blocks/<base32 multihash>   verified dag-pb nodes: directories, shards, file roots and
 *                             interior nodes (file leaves live only inside files/)
 * files/<CIDv1>               assembled file contents, keyed by the file's root CID
 * tmp/                        files being written; renamed into place once complete
 * refs.json                   recently used roots with the time they were last used
 * ```
 *
 * Everything is written to tmp/, fsynced and renamed, so a reader never sees half a file.
 * Blocks are re-verified when read back; a block that no longer matches is deleted. A file's
 * mtime is its last use (see {@linkcode ContentCache.touchFile}): the size limit of
 * {@linkcode ContentCache.gc} evicts the least recently used first.
 *
 * @module
 */

import type { CID } from "multiformats";
import { base32 } from "multiformats/bases/base32";
import * as dagPb from "@ipld/dag-pb";
import { join } from "node:path";
import type { Logger } from "../log.ts";
import { silentLogger } from "../log.ts";
import { CODEC, HASH, MAX_BLOCK_SIZE, parseCid, verifyBlock } from "./verify.ts";

/** One remembered root. */
export interface RecentRef {
  ref: string;
  /** ISO time of last use. */
  usedAt: string;
}

/** What {@linkcode ContentCache.gc} did. */
export interface GcResult {
  keptBlocks: number;
  keptFiles: number;
  /** Removed as unreachable from every kept ref. */
  removedBlocks: number;
  removedFiles: number;
  removedTemp: number;
  /** Removed, least recently used first, to get under the size limit. */
  evictedBlocks: number;
  evictedFiles: number;
  /** Bytes of everything removed. */
  freedBytes: number;
  /** Bytes the cache holds afterwards (blocks, files, temp files). */
  sizeBytes: number;
  /** The limit it was held to; 0: none. */
  maxBytes: number;
}

/** Options of {@linkcode ContentCache.gc}. */
export interface GcOptions {
  /** Most bytes the cache may hold; 0 or unset: no limit. */
  maxBytes?: number;
  /** Whether a file (by {@linkcode fileKey}) is being read or written now: it is never removed. */
  inUse?: (key: string) => boolean;
}

/** A file being assembled in tmp/; {@linkcode FileWriter.commit} moves it into files/. */
export interface FileWriter {
  /** Where the partial file is: concurrent readers open it to stream what is written. */
  readonly tempPath: string;
  /** Bytes written so far. */
  readonly written: number;
  write(bytes: Uint8Array): Promise<void>;
  /** Checks the size, fsyncs and renames into files/; returns the final path. */
  commit(expectedSize: number): Promise<string>;
  /** Deletes the partial file. */
  abort(): Promise<void>;
}

const MAX_RECENT = 16;
const ZERO: GcResult = {
  keptBlocks: 0,
  keptFiles: 0,
  removedBlocks: 0,
  removedFiles: 0,
  removedTemp: 0,
  evictedBlocks: 0,
  evictedFiles: 0,
  freedBytes: 0,
  sizeBytes: 0,
  maxBytes: 0,
};
const TEMP_GRACE_MS = 60 * 60_000;
// A file read again within this long keeps its mtime: one utime a minute is plenty for LRU.
const TOUCH_EVERY_MS = 60_000;
const TOUCHED_LIMIT = 10_000;

/** One entry gc may evict. */
interface Candidate {
  kind: "block" | "file";
  name: string;
  path: string;
  size: number;
  usedAt: number;
}

/** Key of a block: the base32 (lowercase, no prefix) of its multihash, as in blocks/. */
export function blockKey(cid: CID): string {
  return base32.baseEncode(cid.multihash.bytes);
}

/** Key of an assembled file: its CID in v1 form, so `Qm…` and `bafy…` share one entry. */
export function fileKey(cid: CID): string {
  return cid.version === 0 ? cid.toV1().toString() : cid.toString();
}

/** The on-disk cache; call {@linkcode ContentCache.init} once before use. */
export class ContentCache {
  readonly dir: string;
  readonly blocksDir: string;
  readonly filesDir: string;
  readonly tmpDir: string;
  #logger: Logger;
  #refsLock: Promise<unknown> = Promise.resolve();
  #touched = new Map<string, number>();

  constructor(dir: string, logger: Logger = silentLogger) {
    this.dir = dir;
    this.blocksDir = join(dir, "blocks");
    this.filesDir = join(dir, "files");
    this.tmpDir = join(dir, "tmp");
    this.#logger = logger;
  }

  /**
   * Creates the folders and removes temp files left by an earlier run. Only those over an
   * hour old go: another process (`astralboot fetch` beside `serve`) may be writing the rest.
   */
  async init(now = Date.now()): Promise<void> {
    for (const d of [this.blocksDir, this.filesDir, this.tmpDir]) {
      await Deno.mkdir(d, { recursive: true });
    }
    const removed = await this.#removeStaleTemp(now);
    if (removed) this.#logger.debug("ipfs", "removed stale temp files", { count: removed });
  }

  /** Path of a block's entry (it may not exist). */
  blockPath(cid: CID): string {
    return join(this.blocksDir, blockKey(cid));
  }

  /** Path of a file's entry (it may not exist). */
  filePath(cid: CID): string {
    return join(this.filesDir, fileKey(cid));
  }

  /**
   * A verified block from disk, or null. A raw block that is a whole file is found in files/.
   * An entry that fails verification is deleted and reported as missing.
   */
  async getBlock(cid: CID): Promise<Uint8Array | null> {
    if (cid.multihash.code === HASH.identity) return cid.multihash.digest;
    let path = this.blockPath(cid);
    let bytes = await readSmall(path);
    if (!bytes && cid.code === CODEC.raw) {
      path = this.filePath(cid);
      bytes = await readSmall(path);
    }
    if (!bytes) return null;
    try {
      await verifyBlock(cid, bytes);
    } catch (err) {
      this.#logger.warn("ipfs", "cached entry damaged, removed", { cid: cid.toString(), err });
      await Deno.remove(path).catch(() => {});
      return null;
    }
    return bytes;
  }

  /** Stores a block that the caller has verified. */
  async putBlock(cid: CID, bytes: Uint8Array): Promise<void> {
    const path = this.blockPath(cid);
    if (await exists(path)) return;
    await this.#atomicWrite(path, bytes);
  }

  /** Size of a cached file, or null when it is not cached. */
  async fileSize(cid: CID): Promise<number | null> {
    try {
      const info = await Deno.stat(this.filePath(cid));
      return info.isFile ? info.size : null;
    } catch {
      return null;
    }
  }

  /** Marks a cached file as used now (its mtime), for the size limit's LRU order. */
  async touchFile(cid: CID, now = Date.now()): Promise<void> {
    const key = fileKey(cid);
    if (now - (this.#touched.get(key) ?? -Infinity) < TOUCH_EVERY_MS) return;
    if (this.#touched.size >= TOUCHED_LIMIT) this.#touched.clear();
    this.#touched.set(key, now);
    const at = new Date(now);
    await Deno.utime(this.filePath(cid), at, at).catch(() => {});
  }

  /** Starts assembling a file in tmp/. */
  async createFile(cid: CID): Promise<FileWriter> {
    const key = fileKey(cid);
    const tempPath = join(this.tmpDir, `${key}.${crypto.randomUUID().slice(0, 8)}.part`);
    const file = await Deno.open(tempPath, { write: true, createNew: true });
    const finalPath = this.filePath(cid);
    const filesDir = this.filesDir;
    let written = 0;
    let closed = false;
    const close = () => {
      if (!closed) {
        closed = true;
        file.close();
      }
    };
    return {
      tempPath,
      get written() {
        return written;
      },
      async write(bytes: Uint8Array) {
        for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
        written += bytes.length;
      },
      async commit(expectedSize: number) {
        if (written !== expectedSize) {
          close();
          await Deno.remove(tempPath).catch(() => {});
          throw new Error(`assembled ${written} bytes of ${cid}, expected ${expectedSize}`);
        }
        await file.sync();
        close();
        await Deno.rename(tempPath, finalPath);
        await syncDir(filesDir);
        return finalPath;
      },
      async abort() {
        close();
        await Deno.remove(tempPath).catch(() => {});
      },
    };
  }

  /** Stores a whole small file (a raw block that is a file) through tmp/. */
  async putFile(cid: CID, bytes: Uint8Array): Promise<void> {
    if ((await this.fileSize(cid)) === bytes.length) return;
    await this.#atomicWrite(this.filePath(cid), bytes);
  }

  /** Records that `ref` was used now (refs.json keeps the most recent few). */
  touchRef(ref: string, now = new Date()): Promise<void> {
    return this.#withRefs((refs) => {
      const rest = refs.filter((r) => r.ref !== ref);
      return [{ ref, usedAt: now.toISOString() }, ...rest].slice(0, MAX_RECENT);
    });
  }

  /** Recently used roots, most recent first. */
  async recentRefs(): Promise<RecentRef[]> {
    try {
      const parsed = JSON.parse(await Deno.readTextFile(join(this.dir, "refs.json")));
      const list: unknown[] = Array.isArray(parsed?.refs) ? parsed.refs : [];
      return list
        .filter((r): r is RecentRef =>
          typeof (r as RecentRef)?.ref === "string" && typeof (r as RecentRef)?.usedAt === "string"
        )
        .sort((a, b) => (a.usedAt < b.usedAt ? 1 : a.usedAt > b.usedAt ? -1 : 0));
    } catch {
      return [];
    }
  }

  /**
   * Removes every block and file that none of `keepRefs` reaches through the cached blocks,
   * and temp files older than an hour (younger ones may belong to a running download).
   * Refs not in `keepRefs` are dropped from refs.json.
   *
   * With `maxBytes`, then evicts until the cache fits: files and blocks alike, least recently
   * used first, but never a file in use (`inUse`, or open in this process) and never a block
   * the first of `keepRefs` (the current ref) reaches: its directories stay, so any of its
   * files can be fetched again. Anything written while gc runs is left alone.
   */
  async gc(keepRefs: readonly string[], options: GcOptions = {}): Promise<GcResult> {
    const started = Date.now();
    const maxBytes = options.maxBytes ?? 0;
    const pinned = await this.#reach(keepRefs.slice(0, 1));
    const kept = await this.#reach(keepRefs.slice(1), pinned);
    let open = await openFiles(this.filesDir);
    const busy = (key: string) => open.has(key) || (options.inUse?.(key) ?? false);
    const result: GcResult = { ...ZERO, maxBytes };
    const candidates: Candidate[] = [];
    let size = 0;
    const sweep = async (dir: string, kind: "block" | "file", reached: Set<string>) => {
      for await (const e of Deno.readDir(dir)) {
        const path = join(dir, e.name);
        const info = await Deno.stat(path).catch(() => null);
        if (!info) continue;
        const usedAt = info.mtime?.getTime() ?? 0;
        const keep = reached.has(e.name) || usedAt >= started || (kind === "file" && busy(e.name));
        if (!keep) {
          if (await removeCounting(path, result)) {
            if (kind === "block") result.removedBlocks++;
            else result.removedFiles++;
          }
          continue;
        }
        size += info.size;
        if (kind === "block") result.keptBlocks++;
        else result.keptFiles++;
        if (kind === "file" || !pinned.blocks.has(e.name)) {
          candidates.push({ kind, name: e.name, path, size: info.size, usedAt });
        }
      }
    };
    await sweep(this.blocksDir, "block", kept.blocks);
    await sweep(this.filesDir, "file", kept.files);
    result.removedTemp = await this.#removeStaleTemp(Date.now(), result);
    size += await folderBytes(this.tmpDir);
    if (maxBytes > 0 && size > maxBytes) {
      // Readers may have opened files while the sweep ran.
      open = await openFiles(this.filesDir);
      candidates.sort((a, b) => a.usedAt - b.usedAt);
      for (const c of candidates) {
        if (size <= maxBytes) break;
        if (c.usedAt >= started || (c.kind === "file" && busy(c.name))) continue;
        const before = result.freedBytes;
        if (!(await removeCounting(c.path, result))) continue;
        size -= result.freedBytes - before;
        if (c.kind === "block") {
          result.evictedBlocks++;
          result.keptBlocks--;
        } else {
          result.evictedFiles++;
          result.keptFiles--;
        }
      }
    }
    result.sizeBytes = size;
    const keep = new Set(keepRefs);
    await this.#withRefs((refs) => refs.filter((r) => keep.has(r.ref)));
    this.#logger.info("ipfs", "cache gc", { ...result, refs: keepRefs.length });
    if (maxBytes > 0 && size > maxBytes) {
      this.#logger.warn(
        "ipfs",
        "cache still over its limit: the rest is in use or the tree's structure",
        {
          sizeBytes: size,
          maxBytes,
        },
      );
    }
    return result;
  }

  /** Blocks and files `refs` reach through cached blocks, added to `into` (a copy). */
  async #reach(
    refs: readonly string[],
    into: { blocks: Set<string>; files: Set<string> } = { blocks: new Set(), files: new Set() },
  ): Promise<{ blocks: Set<string>; files: Set<string> }> {
    const blocks = new Set(into.blocks);
    const files = new Set(into.files);
    const seen = new Set<string>();
    const stack: CID[] = [];
    for (const ref of refs) stack.push(parseCid(ref));
    while (stack.length > 0) {
      const cid = stack.pop()!;
      const fk = fileKey(cid);
      // What `into` reached, it reached with everything below it.
      if (seen.has(fk) || into.files.has(fk)) continue;
      seen.add(fk);
      files.add(fk);
      if (cid.code !== CODEC.dagPb) continue;
      const bytes = await this.getBlock(cid);
      if (!bytes) continue;
      blocks.add(blockKey(cid));
      try {
        for (const link of dagPb.decode(bytes).Links) stack.push(link.Hash);
      } catch {
        // A verified block that is not dag-pb cannot link anywhere.
      }
    }
    return { blocks, files };
  }

  async #removeStaleTemp(now: number, result?: GcResult): Promise<number> {
    const cutoff = now - TEMP_GRACE_MS;
    const counts: GcResult = result ?? { ...ZERO };
    let removed = 0;
    for await (const e of Deno.readDir(this.tmpDir)) {
      const path = join(this.tmpDir, e.name);
      const info = await Deno.stat(path).catch(() => null);
      if (info && (info.mtime?.getTime() ?? 0) < cutoff) {
        if (await removeCounting(path, counts)) removed++;
      }
    }
    return removed;
  }

  #withRefs(change: (refs: RecentRef[]) => RecentRef[]): Promise<void> {
    const next = this.#refsLock.then(async () => {
      const refs = change(await this.recentRefs());
      const body = new TextEncoder().encode(JSON.stringify({ refs }, null, 2) + "\n");
      await this.#atomicWrite(join(this.dir, "refs.json"), body);
    });
    this.#refsLock = next.catch(() => {});
    return next;
  }

  async #atomicWrite(path: string, bytes: Uint8Array): Promise<void> {
    const temp = join(this.tmpDir, `w.${crypto.randomUUID().slice(0, 8)}.part`);
    try {
      const file = await Deno.open(temp, { write: true, createNew: true });
      try {
        for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.rename(temp, path);
    } catch (err) {
      await Deno.remove(temp).catch(() => {});
      throw err;
    }
  }
}

/**
 * Names of the files of `dir` this process has open now (Linux: /proc/self/fd). A cached
 * file is served by the file's own stream, which Deno.serve sends without a round trip
 * through JavaScript; wrapping it to learn when the reader is done would lose that, so the
 * kernel is asked instead. Elsewhere the set is empty, and a removed file still reads to the
 * end through its open descriptor.
 */
async function openFiles(dir: string): Promise<Set<string>> {
  const names = new Set<string>();
  try {
    // The kernel names files by their real path.
    const prefix = `${await Deno.realPath(dir)}/`;
    for await (const e of Deno.readDir("/proc/self/fd")) {
      const target = await Deno.readLink(`/proc/self/fd/${e.name}`).catch(() => "");
      if (target.startsWith(prefix) && !target.includes("/", prefix.length)) {
        names.add(target.slice(prefix.length));
      }
    }
  } catch {
    // No /proc here.
  }
  return names;
}

/** Bytes of the regular files directly in `dir`. */
async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    const info = await Deno.stat(join(dir, e.name)).catch(() => null);
    if (info?.isFile) total += info.size;
  }
  return total;
}

async function readSmall(path: string): Promise<Uint8Array | null> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile || info.size > MAX_BLOCK_SIZE) return null;
    return await Deno.readFile(path);
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function removeCounting(path: string, result: GcResult): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    await Deno.remove(path, { recursive: true });
    result.freedBytes += info.size;
    return true;
  } catch {
    return false;
  }
}

async function syncDir(dir: string): Promise<void> {
  // Makes the rename durable; some filesystems refuse fsync on a directory, which is harmless.
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // ignored on purpose
  }
}
