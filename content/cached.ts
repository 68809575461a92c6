/**
 * A store in front of another that keeps what it learnt in memory: every path's stat, and
 * small files whole (menus of loaders, configs, the small files of a boot), so that a request
 * for them costs no system call. Big files keep streaming from the store below (Deno.serve
 * sends a local file's stream without a round trip through JavaScript per chunk).
 *
 * What is kept is checked against the store below at most every `revalidateMs`: a local tree
 * may be edited while the server runs (a changed file is served anew within that time, its
 * new ETag with it); an IPFS tree never changes (`Infinity`). File contents are held to
 * `maxBytes`, stats to `maxEntries`; beyond that what was not used since the last sweep goes
 * first (a clock: one flag set per hit, no reordering on the request path).
 *
 * @module
 */
import {
  type ByteRange,
  checkRange,
  type ContentEntry,
  type ContentStore,
  type WholeFile,
} from "./store.ts";

/** Options for {@linkcode CachedStore}. */
export interface CachedStoreOptions {
  /** How long a stat is trusted before the store below is asked again (`Infinity`: never). */
  revalidateMs: number;
  /** Files up to this size are kept whole in memory; default 1 MiB. */
  maxFileBytes?: number;
  /** Bytes of file contents kept at most; default 16 MiB. */
  maxBytes?: number;
  /** Paths whose stat is kept at most; default 4096. */
  maxEntries?: number;
  /** Milliseconds now; default `performance.now()`. */
  now?: () => number;
}

/** What is known of one path. */
interface Known {
  /** The stat, null when the path does not exist. */
  entry: ContentEntry | null;
  /** When the store below was last asked. */
  checked: number;
  /** The whole file, once read (small files only). */
  bytes: Uint8Array<ArrayBuffer> | null;
  /** Used since the last sweep: a sweep passes it over once. */
  used: boolean;
}

/** See the module doc. */
export class CachedStore implements ContentStore {
  readonly description: string;
  readonly #inner: ContentStore;
  readonly #revalidateMs: number;
  readonly #maxFileBytes: number;
  readonly #maxBytes: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  #known = new Map<string, Known>();
  #bytes = 0;
  /** Stats under way, so that a burst of requests asks once. */
  #checking = new Map<string, Promise<Known>>();
  /**
   * Reads of whole files under way, by path and etag, so that a burst of requests reads a
   * version of a file once, and a request for a newer version never gets an older one's bytes.
   */
  #loading = new Map<string, Promise<Uint8Array<ArrayBuffer> | null>>();
  /** Counts {@linkcode clear}s: a stat asked before one is not kept after it. */
  #generation = 0;

  constructor(inner: ContentStore, options: CachedStoreOptions) {
    this.#inner = inner;
    this.description = inner.description;
    this.#revalidateMs = options.revalidateMs;
    this.#maxFileBytes = options.maxFileBytes ?? 1024 * 1024;
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.#maxEntries = options.maxEntries ?? 4096;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Bytes of file contents held now. */
  get heldBytes(): number {
    return this.#bytes;
  }

  /** The largest file kept whole. */
  get maxFileBytes(): number {
    return this.#maxFileBytes;
  }

  /** What is known of `path` and still fresh, without asking the store below; else undefined. */
  #fresh(path: string): Known | undefined {
    const k = this.#known.get(path);
    if (!k || this.#now() - k.checked > this.#revalidateMs) return undefined;
    k.used = true;
    return k;
  }

  /**
   * A small file whole from memory, when it is there and fresh; undefined when the store below
   * must be asked first ({@linkcode file}); null when the path is known not to be such a file.
   * Synchronous, and asks nothing below.
   */
  peek(path: string): WholeFile | null | undefined {
    const k = this.#fresh(path);
    if (!k) return undefined;
    if (k.entry?.kind !== "file" || k.entry.size > this.#maxFileBytes) return null;
    return k.bytes ? { entry: k.entry, bytes: k.bytes } : undefined;
  }

  /**
   * Forgets everything kept: a reload may have changed the tree behind the same store (a local
   * tree edited, then SIGHUP), and a replaced store should not hold its files while its last
   * transfers finish. Reads under way keep the bytes they have; none of it is kept again.
   */
  clear(): void {
    this.#known.clear();
    this.#bytes = 0;
    this.#generation++;
    // Those under way answer their requests; later ones ask again.
    this.#checking.clear();
    this.#loading.clear();
  }

  /** Metadata of a path, from memory while fresh. */
  async stat(path: string): Promise<ContentEntry | null> {
    return (this.#fresh(path) ?? await this.#check(path)).entry;
  }

  /** Asks the store below for `path`'s stat (once for a burst of requests). */
  #check(path: string): Promise<Known> {
    let checking = this.#checking.get(path);
    if (!checking) {
      checking = this.#restat(path).finally(() => this.#checking.delete(path));
      this.#checking.set(path, checking);
    }
    return checking;
  }

  /** Asks the store below for `path`'s stat; keeps the bytes when its ETag did not change. */
  async #restat(path: string): Promise<Known> {
    const generation = this.#generation;
    const entry = await this.#inner.stat(path);
    const old = this.#known.get(path);
    const same = old?.entry && entry && old.entry.etag === entry.etag &&
      old.entry.kind === entry.kind;
    const k: Known = {
      entry,
      checked: this.#now(),
      bytes: same ? old.bytes : null,
      used: true,
    };
    // Asked before a clear(): good for the request that asked, not to be kept.
    if (generation !== this.#generation) return k;
    if (old?.bytes && !same) this.#bytes -= old.bytes.length;
    // Set again, not updated: the newest paths are swept last.
    this.#known.delete(path);
    this.#known.set(path, k);
    if (this.#known.size > this.#maxEntries) this.#sweep();
    return k;
  }

  /** Names in a directory: from the store below (the OS catalog keeps its own list). */
  list(path: string): Promise<string[]> {
    return this.#inner.list(path);
  }

  /**
   * The whole file when it is small enough to keep (read once, then from memory); null when
   * the path is not a file or too big, so that the caller streams it with {@linkcode read}.
   */
  async file(path: string): Promise<WholeFile | null> {
    const fresh = this.#fresh(path);
    let k = fresh ?? await this.#check(path);
    if (fresh && this.#revalidateMs !== Infinity && this.#isBig(k.entry)) {
      // A big file streams from the store below under the headers of this stat: asked again
      // (one stat, next to a kernel's transfer), so that the file opened next is that version.
      k = await this.#check(path);
    }
    const entry = k.entry;
    if (entry?.kind !== "file" || entry.size > this.#maxFileBytes) return null;
    if (k.bytes) return { entry, bytes: k.bytes };
    const key = `${path}\n${entry.etag}`;
    let loading = this.#loading.get(key);
    if (!loading) {
      loading = this.#load(path, k).finally(() => {
        if (this.#loading.get(key) === loading) this.#loading.delete(key);
      });
      this.#loading.set(key, loading);
    }
    const bytes = await loading;
    return bytes ? { entry, bytes } : null;
  }

  #isBig(entry: ContentEntry | null): boolean {
    return entry?.kind === "file" && entry.size > this.#maxFileBytes;
  }

  /**
   * Reads a small file whole and keeps it, unless it changed while being read: never more than
   * its stat's size (a file that grew since is not read whole), and kept only when a stat after
   * the read still gives the same etag.
   */
  async #load(path: string, k: Known): Promise<Uint8Array<ArrayBuffer> | null> {
    const size = k.entry!.size;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = size === 0 ? new Uint8Array(0) : new Uint8Array(
        await new Response(await this.#inner.read(path, { start: 0, end: size - 1 }))
          .arrayBuffer(),
      );
    } catch (e) {
      // Shorter now than its stat said: changed under us.
      if (e instanceof RangeError) return null;
      throw e;
    }
    // A file written while it was read: serve it from the store below until it settles.
    const after = bytes.length === size ? await this.#inner.stat(path) : null;
    if (after?.etag !== k.entry!.etag || after.size !== size) return null;
    // Kept on what is known of the path now, if that is still this version of the file.
    const now = this.#known.get(path);
    if (now?.entry?.etag === k.entry!.etag && !now.bytes) {
      now.bytes = bytes;
      this.#bytes += bytes.length;
      if (this.#bytes > this.#maxBytes) this.#sweep();
    }
    return bytes;
  }

  /** The bytes of a file or of a range of it: from memory for small files. */
  async read(path: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const f = await this.file(path);
    if (!f) return await this.#inner.read(path, range);
    if (range) checkRange(range, f.entry.size, path);
    const part = range ? f.bytes.subarray(range.start, range.end + 1) : f.bytes;
    return new ReadableStream({
      start(controller) {
        if (part.length) controller.enqueue(part);
        controller.close();
      },
    });
  }

  /**
   * Frees memory down to the caps: paths not used since the last sweep go first (their flag
   * is cleared as the sweep passes, so each survives one sweep after its last use).
   */
  #sweep(): void {
    const overEntries = () => this.#known.size > this.#maxEntries;
    const overBytes = () => this.#bytes > this.#maxBytes;
    for (let pass = 0; pass < 2 && (overEntries() || overBytes()); pass++) {
      for (const [path, k] of this.#known) {
        if (!overEntries() && !overBytes()) return;
        if (k.used) {
          k.used = false;
          continue;
        }
        // Over the byte cap only files count; over the entry cap any path does.
        if (!overEntries() && !k.bytes) continue;
        this.#known.delete(path);
        if (k.bytes) this.#bytes -= k.bytes.length;
      }
    }
  }
}
