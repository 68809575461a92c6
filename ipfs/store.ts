/**
 * The boot tree of an IPFS root CID (`ref`), served through the content-addressed cache.
 *
 * `IpfsStore` is a `ContentStore` (content/store.ts). A file is fetched on its
 * first read: verified blocks are appended to a temp file while every reader streams from
 * that file as it grows; once complete it is fsynced and renamed into the cache, and later
 * reads (and byte ranges) are served from there. With every gateway down, whatever is cached
 * still serves; anything else fails with code "unavailable", naming the CID and the gateways.
 *
 * @module
 */

import type { CID } from "multiformats";
import * as dagPb from "@ipld/dag-pb";
import { errorMessage, type Logger, silentLogger } from "../log.ts";
import {
  type ByteRange,
  type ContentEntry,
  ContentError,
  type ContentStore,
} from "../content/store.ts";
import { openFileStream } from "../content/file_stream.ts";
import { ContentCache, fileKey, type FileWriter, type GcResult } from "./cache.ts";
import { CarFeed, carLimits, deadlineMs } from "./car_feed.ts";
import type { IpfsEventSink } from "./events.ts";
import { abortable, GatewayClient } from "./gateway.ts";
import {
  type BlockGetter,
  listDirectory,
  readFile,
  type Resolved,
  resolvePath,
  type UnixfsNode,
} from "./unixfs.ts";
import { CODEC, identityBlock, parseCid } from "./verify.ts";
import { DOWNLOAD_MIN_RATE } from "./defaults.ts";

/** Options for {@linkcode IpfsStore}. */
export interface IpfsStoreOptions {
  /** Root CID of the boot tree. */
  ref: string;
  /** Trustless gateway base URLs, in order of preference. */
  gateways: string[];
  /** Per-request timeout in milliseconds. */
  timeoutMs: number;
  /** The cache folder, `<data_dir>/cache`. */
  cacheDir: string;
  logger?: Logger;
  /** Ask for whole files as CAR (`dag-scope=entity`) before single blocks; default true. */
  car?: boolean;
  /** Blocks requested ahead while downloading a file; default 8. */
  window?: number;
  /** How long a failing gateway is tried last; default 60 s. */
  penaltyMs?: number;
  /** Injected fetch for the gateway client. */
  fetch?: typeof fetch;
  /** Told of files cached or failed, of gateway failures and of each cache gc. */
  onEvent?: IpfsEventSink;
  /** Most bytes the cache may hold, enforced by {@linkcode IpfsStore.gc}; 0 or unset: no limit. */
  cacheMaxBytes?: number;
  /** How often {@linkcode IpfsStore.startGc} runs gc; default hourly. */
  gcIntervalMs?: number;
  /**
   * Files over {@linkcode SMALL_DOWNLOAD} bytes downloaded at once; default
   * {@linkcode MAX_DOWNLOADS}. One asked for beyond them waits for one to end (and so do its
   * readers): a client asking for every large file of the tree at once does not open a download
   * (its CAR buffer of up to 32 MiB, its `window` block requests) for each. Smaller files never
   * wait: a config or a module is not held up behind someone's ISO images.
   */
  maxDownloads?: number;
  /**
   * Slowest average rate, in bytes a second, a download over {@linkcode SMALL_DOWNLOAD} bytes is
   * given time for: it fails once it has run `timeoutMs` plus its size at this rate; default
   * {@linkcode DOWNLOAD_MIN_RATE}, 0 for no limit. Each block has its own timeout, but a gateway
   * that sends one just inside it would otherwise hold a download slot (and its readers) for
   * hours. A failed download keeps nothing, so a link slower than this never gets the file:
   * `[ipfs] min_rate` is set lower (or to 0) for such a link.
   */
  downloadMinRate?: number;
}

/** Files over {@linkcode SMALL_DOWNLOAD} bytes downloaded at once by default. */
export const MAX_DOWNLOADS = 8;

/** The longest delay a timer takes (2^31 - 1 ms); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Files of at most this many bytes download without waiting for {@linkcode MAX_DOWNLOADS}. */
export const SMALL_DOWNLOAD = 1024 * 1024;

/** Progress of one file download, reported after every block written. */
export type FileProgressListener = (written: number, blocks: number) => void;

interface Fill {
  cid: CID;
  size: number;
  tempPath: Promise<string>;
  written: number;
  blocks: number;
  done: boolean;
  error: unknown;
  /** The download failed because the cache could not be written (a full disk), not fetched. */
  cacheFailed: boolean;
  wake: (() => void)[];
  listeners: FileProgressListener[];
  finished: Promise<void>;
}

// A read that starts this close to where a running download has got waits for it.
const JOIN_AHEAD = 4 * 1024 * 1024;
const READ_CHUNK = 256 * 1024;
const MEMO_LIMIT = 50_000;
const KEEP_RECENT = 3;
const GC_INTERVAL_MS = 60 * 60_000;

/** The boot tree of one root CID, read through the cache. */
export class IpfsStore implements ContentStore {
  /** "ipfs <ref>", for logs and `astralboot config`. */
  readonly description: string;
  readonly ref: string;
  readonly root: CID;
  readonly gateway: GatewayClient;
  readonly cache: ContentCache;
  #logger: Logger;
  #onEvent: IpfsEventSink;
  #car: boolean;
  #window: number;
  #timeoutMs: number;
  #minRate: number;
  #ready: Promise<void> | undefined;
  #memo = new Map<string, Resolved | null>();
  #inflight = new Map<string, Promise<Uint8Array>>();
  #fills = new Map<string, Fill>();
  // Files being opened or streamed from a download, by fileKey: gc leaves them alone.
  #reading = new Map<string, number>();
  #closing = new AbortController();
  #cacheMax: number;
  #gcIntervalMs: number;
  #gcLock: Promise<unknown> = Promise.resolve();
  #gcTimer: ReturnType<typeof setTimeout> | undefined;
  #gcRunning: Promise<void> | undefined;
  /** Downloads that may start now, and those waiting for one to end (oldest first). */
  #freeDownloads: number;
  #waiting: (() => void)[] = [];

  constructor(options: IpfsStoreOptions) {
    this.root = parseCid(options.ref);
    this.ref = options.ref.trim();
    this.description = `ipfs ${this.ref}`;
    this.#logger = options.logger ?? silentLogger;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#car = options.car ?? true;
    this.#window = options.window ?? 8;
    this.#timeoutMs = options.timeoutMs;
    this.#cacheMax = options.cacheMaxBytes ?? 0;
    this.#gcIntervalMs = options.gcIntervalMs ?? GC_INTERVAL_MS;
    this.#freeDownloads = options.maxDownloads ?? MAX_DOWNLOADS;
    this.#minRate = options.downloadMinRate ?? DOWNLOAD_MIN_RATE;
    if (!(this.#minRate >= 0)) {
      throw new RangeError(`downloadMinRate must be 0 or more (got ${options.downloadMinRate})`);
    }
    if (!(this.#freeDownloads >= 1)) {
      throw new RangeError(`maxDownloads must be at least 1 (got ${options.maxDownloads})`);
    }
    this.gateway = new GatewayClient({
      gateways: options.gateways,
      timeoutMs: options.timeoutMs,
      logger: this.#logger,
      penaltyMs: options.penaltyMs,
      fetch: options.fetch,
      onEvent: options.onEvent,
    });
    this.cache = new ContentCache(options.cacheDir, this.#logger);
  }

  /** Metadata of a path, or null when the tree has no such path. */
  async stat(path: string): Promise<ContentEntry | null> {
    const found = await this.resolve(path);
    if (!found) return null;
    const { node } = found;
    if (node.kind === "file") return { kind: "file", size: node.size, etag: found.cid.toString() };
    return { kind: "dir", size: 0, etag: found.cid.toString() };
  }

  /** Names in a directory, sorted; empty for a file or a missing path. */
  async list(path: string): Promise<string[]> {
    const found = await this.resolve(path);
    if (!found) return [];
    try {
      return (await listDirectory(this.getBlock, found.node)).map((l) => l.name);
    } catch (err) {
      throw this.#wrap(err, path);
    }
  }

  /** The bytes of a file, or of `range` (inclusive ends) of it, streamed. */
  async read(path: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const found = await this.resolve(path);
    if (!found) throw new ContentError(`No such file in ${this.ref}: ${path}`, "not-found");
    if (found.node.kind !== "file") {
      throw new ContentError(`Not a file in ${this.ref}: ${path}`, "not-found");
    }
    const size = found.node.size;
    const start = Math.max(0, range?.start ?? 0);
    const end = Math.min(size, range ? range.end + 1 : size);
    return await this.readFileNode(found.node, start, end, path);
  }

  /** Resolves a tree path to its node (memoized: the tree of one ref never changes). */
  async resolve(path: string): Promise<Resolved | null> {
    const segments = pathSegments(path);
    const key = segments.join("/");
    if (this.#memo.has(key)) return this.#memo.get(key)!;
    await this.#init();
    let found: Resolved | null;
    try {
      found = await resolvePath(this.getBlock, this.root, segments);
    } catch (err) {
      throw this.#wrap(err, path);
    }
    if (this.#memo.size >= MEMO_LIMIT) this.#memo.clear();
    this.#memo.set(key, found);
    return found;
  }

  /**
   * Streams `[start, end)` of a file node: from the cache, from a running download, or by
   * fetching only the blocks of the range (then the whole file is downloaded behind it).
   */
  async readFileNode(
    node: UnixfsNode & { kind: "file" },
    start: number,
    end: number,
    label = node.cid.toString(),
  ): Promise<ReadableStream<Uint8Array>> {
    // Its bytes are in its CID: nothing to fetch or keep (and a cache file named by a long
    // inline CID would pass the file system's 255-byte name limit).
    if (identityBlock(node.cid)) return this.#streamRange(node.cid, start, end, label);
    await this.#init();
    // Held from the size check to the open: gc must not remove the file in between.
    const release = this.#hold(node.cid);
    try {
      const cached = await this.cache.fileSize(node.cid);
      if (cached === node.size) {
        if (start >= end) return new ReadableStream({ start: (c) => c.close() });
        const stream = await this.#openCached(node.cid, start, end, label);
        if (stream) {
          await this.cache.touchFile(node.cid);
          return stream;
        }
        // Removed since the size check (by gc, or by hand): fetch it again.
      } else if (cached !== null) {
        this.#logger.warn("ipfs", "cached file has the wrong size, fetching again", {
          cid: node.cid.toString(),
          size: cached,
          expected: node.size,
        });
        await Deno.remove(this.cache.filePath(node.cid)).catch(() => {});
      }
      const running = this.#fills.get(fileKey(node.cid));
      if (start <= JOIN_AHEAD || (running && start <= running.written + JOIN_AHEAD)) {
        const fill = this.#fill(node, label);
        return this.#streamFill(fill, start, end, label, this.#hold(node.cid));
      }
      // A range far into a cold file: fetch just its blocks now, the whole file behind it.
      this.#fill(node, label);
      return this.#streamRange(node.cid, start, end, label);
    } finally {
      release();
    }
  }

  /** A cached file's range, or null when the file is gone. */
  async #openCached(
    cid: CID,
    start: number,
    end: number,
    label: string,
  ): Promise<ReadableStream<Uint8Array> | null> {
    try {
      return await openFileStream(this.cache.filePath(cid), { start, end: end - 1 }, label);
    } catch (err) {
      if (err instanceof ContentError && err.code === "not-found") return null;
      const message = errorMessage(err);
      throw new ContentError(`Cannot read cached file ${label}: ${message}`, "unavailable", {
        cause: err,
      });
    }
  }

  /** Marks a file as being read until the returned function is called (once is enough). */
  #hold(cid: CID): () => void {
    const key = fileKey(cid);
    this.#reading.set(key, (this.#reading.get(key) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const n = (this.#reading.get(key) ?? 1) - 1;
      if (n > 0) this.#reading.set(key, n);
      else this.#reading.delete(key);
    };
  }

  /** Whether gc must leave a file alone: being opened, downloaded, or streamed from a download. */
  readonly #inUse = (key: string): boolean => this.#reading.has(key) || this.#fills.has(key);

  /** Makes sure a file is in the cache; resolves when it is (rejects like `read`). */
  async ensureFile(
    node: UnixfsNode & { kind: "file" },
    onProgress?: FileProgressListener,
  ): Promise<void> {
    await this.#init();
    // A download renames its file into place before it syncs the folder: until it has ended,
    // the file is there but not yet kept for sure, so the download is waited for.
    if (
      !this.#fills.has(fileKey(node.cid)) && (await this.cache.fileSize(node.cid)) === node.size
    ) return;
    const fill = this.#fill(node, node.cid.toString());
    if (onProgress) fill.listeners.push(onProgress);
    await fill.finished;
    if (fill.error) throw this.#wrap(fill.error, node.cid.toString());
  }

  /** Verified block by CID: memory of in-flight requests, the cache, then the gateways. */
  readonly getBlock: BlockGetter = (cid, hint) => {
    const inline = identityBlock(cid);
    if (inline) return Promise.resolve(inline);
    const key = `${fileKey(cid)}${hint ?? ""}`;
    const pending = this.#inflight.get(key);
    if (pending) return pending;
    const promise = (async () => {
      // The cache folders must exist before the first block is kept: a prefetch walks the
      // tree through here before any file read has initialised the cache.
      await this.#init();
      // File leaves are never stored as blocks, so only nodes are looked up on disk.
      const skipDisk = hint === "child" && cid.code === CODEC.raw;
      const cached = skipDisk ? null : await this.cache.getBlock(cid);
      if (cached) return cached;
      const bytes = await this.gateway.getBlock(cid, this.#closing.signal);
      await this.#keep(cid, bytes, hint);
      return bytes;
    })().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, promise);
    return promise;
  };

  /**
   * Removes cached entries that neither `keepRefs` nor the recent refs reach, then evicts the
   * least recently used until the cache fits `cacheMaxBytes` (see `ContentCache.gc`): never a
   * file in use, never the structure of this ref. Tells `onEvent` what it did.
   */
  gc(keepRefs?: readonly string[]): Promise<GcResult> {
    const run = this.#gcLock.then(async () => {
      await this.#init();
      const keep = keepRefs ?? [
        this.ref,
        ...(await this.cache.recentRefs()).map((r) => r.ref).filter((r) => r !== this.ref)
          .slice(0, KEEP_RECENT - 1),
      ];
      const result = await this.cache.gc(keep, { maxBytes: this.#cacheMax, inUse: this.#inUse });
      this.#onEvent({
        kind: "cache-gc",
        freedBytes: result.freedBytes,
        removedFiles: result.removedFiles + result.evictedFiles,
        removedBlocks: result.removedBlocks + result.evictedBlocks,
        evictedFiles: result.evictedFiles,
        sizeBytes: result.sizeBytes,
        maxBytes: result.maxBytes,
      });
      return result;
    });
    this.#gcLock = run.catch(() => {});
    return run;
  }

  /** Runs {@linkcode IpfsStore.gc} now and then every `gcIntervalMs`, until closed. */
  startGc(): void {
    if (this.#gcTimer !== undefined || this.#gcRunning || this.#closing.signal.aborted) return;
    const tick = () => {
      this.#gcTimer = undefined;
      this.#gcRunning = this.gc().then(
        () => {},
        (err) => {
          this.#logger.warn("ipfs", "cache gc failed", {
            error: errorMessage(err),
          });
        },
      ).finally(() => {
        this.#gcRunning = undefined;
        if (!this.#closing.signal.aborted) this.#gcTimer = setTimeout(tick, this.#gcIntervalMs);
      });
    };
    tick();
  }

  /** Stops running downloads and gc, and waits for them to clean up. */
  async close(): Promise<void> {
    this.#closing.abort(new ContentError("store closed", "unavailable"));
    clearTimeout(this.#gcTimer);
    this.#gcTimer = undefined;
    await this.#gcRunning;
    await Promise.all([...this.#fills.values()].map((f) => f.finished));
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      try {
        await this.cache.init();
      } catch (e) {
        // Tried again by the next request (the disk may have room then), and said as a store
        // error: an HTTP 503 or a TFTP error, not a crash of the request.
        this.#ready = undefined;
        throw new ContentError(`IPFS cache: ${errorMessage(e)}`, "unavailable", {
          cause: e,
        });
      }
      // Which refs the cache holds for (gc keeps them): its loss costs nothing now.
      await this.cache.touchRef(this.ref).catch(() => {});
    })();
    return this.#ready;
  }

  async #keep(cid: CID, bytes: Uint8Array, hint?: "child"): Promise<void> {
    try {
      if (cid.code === CODEC.dagPb) {
        if (hint === "child" && dagPb.decode(bytes).Links.length === 0) return;
        await this.cache.putBlock(cid, bytes);
      } else if (hint !== "child") {
        // A raw block reached as a file root is the whole file.
        await this.cache.putFile(cid, bytes);
      }
    } catch (err) {
      this.#logger.warn("ipfs", "cannot write to cache", { cid: cid.toString(), err });
    }
  }

  #fill(node: UnixfsNode & { kind: "file" }, label: string): Fill {
    const key = fileKey(node.cid);
    const running = this.#fills.get(key);
    if (running) return running;
    let setTemp!: (path: string) => void;
    let failTemp!: (err: unknown) => void;
    const fill: Fill = {
      cid: node.cid,
      size: node.size,
      tempPath: new Promise((resolve, reject) => {
        setTemp = resolve;
        failTemp = reject;
      }),
      written: 0,
      blocks: 0,
      done: false,
      error: undefined,
      cacheFailed: false,
      wake: [],
      listeners: [],
      finished: Promise.resolve(),
    };
    fill.tempPath.catch(() => {});
    this.#fills.set(key, fill);
    const notify = () => {
      const wake = fill.wake;
      fill.wake = [];
      for (const w of wake) w();
      for (const l of fill.listeners) l(fill.written, fill.blocks);
    };
    /** A write to the cache: its failure is the disk's, and readers go on without it. */
    const onDisk = async <T>(write: () => Promise<T>): Promise<T> => {
      try {
        return await write();
      } catch (e) {
        fill.cacheFailed = true;
        throw e;
      }
    };
    fill.finished = (async () => {
      let feed: CarFeed | null = null;
      let writer: FileWriter | undefined;
      let slot = false;
      let deadline: ReturnType<typeof setTimeout> | undefined;
      let tooSlow: AbortSignal | undefined;
      try {
        if (node.size > SMALL_DOWNLOAD) {
          await this.#downloadSlot();
          slot = true;
          const ms = deadlineMs(node.size, this.#timeoutMs, this.#minRate);
          // Beyond a timer's range (2^31 ms, ~25 days) there is no deadline, as with no limit.
          if (ms <= MAX_TIMER_MS) {
            const stop = new AbortController();
            const rate = this.#minRate >= 1024
              ? `${Math.round(this.#minRate / 1024)} KiB/s`
              : `${this.#minRate} B/s`;
            const why = `download not complete within ${ms} ms (slower than ${rate} on average; ` +
              "for a slower link, lower [ipfs] min_rate or set it to 0)";
            deadline = setTimeout(() => stop.abort(new ContentError(why, "unavailable")), ms);
            tooSlow = stop.signal;
          }
        }
        // Timed from here: the wait for a slot is not the download's.
        const started = performance.now();
        writer = await onDisk(() => this.cache.createFile(node.cid));
        setTemp(writer.tempPath);
        if (this.#car && node.children.length > 0) {
          feed = new CarFeed(this.gateway, node.cid, this.#logger, {
            waitMs: this.#timeoutMs,
            limits: carLimits(node.size, this.#timeoutMs),
          });
        }
        const fetchBlock = this.#fillGetter(fill, feed, tooSlow);
        // When the deadline passes, the download stops waiting for the block requests in flight
        // (each ends at its own timeout) and starts no more.
        const get: BlockGetter = tooSlow
          ? (cid, hint) => abortable(fetchBlock(cid, hint), tooSlow!)
          : fetchBlock;
        for await (const chunk of readFile(get, node.cid, { window: this.#window })) {
          this.#closing.signal.throwIfAborted();
          tooSlow?.throwIfAborted();
          await onDisk(() => writer!.write(chunk));
          fill.written += chunk.length;
          notify();
        }
        await onDisk(() => writer!.commit(node.size));
        fill.done = true;
        const seconds = (performance.now() - started) / 1000;
        this.#onEvent({ kind: "file-cached", path: label, bytes: node.size, blocks: fill.blocks });
        this.#logger.info("ipfs", "file cached", {
          path: label,
          cid: node.cid.toString(),
          bytes: node.size,
          blocks: fill.blocks,
          car: feed ? feed.received : 0,
          mbps: Math.round(node.size / 1e6 / Math.max(seconds, 1e-3) * 10) / 10,
        });
      } catch (err) {
        // Clean up first: a reader that sees the error may check that nothing is left.
        await writer?.abort();
        fill.error = err;
        failTemp(err);
        const error = errorMessage(err);
        this.#onEvent({ kind: "file-failed", path: label, error });
        this.#logger.warn(
          "ipfs",
          fill.cacheFailed
            ? "cannot write to the cache: the file is served from the gateways, not kept"
            : "file download failed, nothing cached",
          { path: label, cid: node.cid.toString(), error },
        );
      } finally {
        clearTimeout(deadline);
        feed?.stop();
        if (slot) this.#endDownload();
        this.#fills.delete(key);
        notify();
      }
    })();
    return fill;
  }

  /** Resolves when a download may start; rejects when the store closes first. */
  #downloadSlot(): Promise<void> {
    const closing = this.#closing.signal;
    closing.throwIfAborted();
    if (this.#freeDownloads > 0) {
      this.#freeDownloads--;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const abort = () => {
        this.#waiting = this.#waiting.filter((w) => w !== start);
        reject(closing.reason);
      };
      const start = () => {
        closing.removeEventListener("abort", abort);
        resolve();
      };
      this.#waiting.push(start);
      closing.addEventListener("abort", abort, { once: true });
    });
  }

  /** A download ended: the longest waiting one starts, else the slot is free. */
  #endDownload(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#freeDownloads++;
  }

  /** Blocks of a download: from its CAR while that brings them, else one by one until `stop`. */
  #fillGetter(fill: Fill, feed: CarFeed | null, stop?: AbortSignal): BlockGetter {
    return async (cid, hint) => {
      stop?.throwIfAborted();
      fill.blocks++;
      // A block inline in its CID is no block of the CAR's: waiting for it there held the
      // reader until the CAR ended (or its buffer filled, and the CAR was given up).
      const inline = identityBlock(cid);
      if (inline) {
        feed?.found(cid, inline);
        return inline;
      }
      if (feed) {
        const cached = cid.code === CODEC.dagPb ? await this.cache.getBlock(cid) : null;
        if (cached) {
          feed.found(cid, cached);
          return cached;
        }
        const got = await feed.take(cid);
        if (got) {
          await this.#keep(cid, got, hint);
          return got;
        }
        // The CAR ended (the deadline stops it too): no single block asked for after that.
        stop?.throwIfAborted();
      }
      return await this.getBlock(cid, hint);
    };
  }

  #streamFill(
    fill: Fill,
    start: number,
    end: number,
    label: string,
    release: () => void,
  ): ReadableStream<Uint8Array> {
    let file: Deno.FsFile | undefined;
    let pos = start;
    const finalPath = this.cache.filePath(fill.cid);
    const wrap = (err: unknown) => this.#wrap(err, label);
    // After a cache failure, or when the committed file was removed: the rest of the range
    // fetched block by block, kept nowhere.
    let rest: ReadableStreamDefaultReader<Uint8Array> | undefined;
    const fetchRest = () => this.#streamRange(fill.cid, pos, end, label).getReader();
    const fromRest = async (controller: ReadableStreamDefaultController<Uint8Array>) => {
      try {
        const step = await rest!.read();
        if (!step.done) return controller.enqueue(step.value);
        release();
        controller.close();
      } catch (err) {
        release();
        controller.error(err);
      }
    };
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (rest) return await fromRest(controller);
        try {
          if (!file) {
            const temp = await fill.tempPath;
            try {
              file = await Deno.open(temp, { read: true });
            } catch (err) {
              // Renamed into place (or removed after a failure) since our lookup.
              if (!(err instanceof Deno.errors.NotFound)) throw err;
              await fill.finished;
              if (!fill.done) throw fill.error ?? err;
              try {
                file = await Deno.open(finalPath, { read: true });
              } catch (gone) {
                // Removed by hand since it was committed: its blocks still are fetched.
                if (!(gone instanceof Deno.errors.NotFound)) throw gone;
                rest = fetchRest();
                return await fromRest(controller);
              }
            }
          }
          while (true) {
            if (pos >= end) {
              file.close();
              release();
              controller.close();
              return;
            }
            const available = Math.min(fill.written, end) - pos;
            if (available > 0) {
              const buf = new Uint8Array(Math.min(available, READ_CHUNK));
              await file.seek(pos, Deno.SeekMode.Start);
              const n = await file.read(buf);
              if (n === null || n === 0) throw new Error(`temp file shorter than reported`);
              pos += n;
              controller.enqueue(n === buf.length ? buf : buf.subarray(0, n));
              return;
            }
            if (fill.error) throw fill.error;
            if (fill.done) throw new Error(`download ended at ${fill.written} of ${end} bytes`);
            await new Promise<void>((resolve) => fill.wake.push(resolve));
          }
        } catch (err) {
          file?.close();
          file = undefined;
          if (fill.cacheFailed && pos < end) {
            rest = fetchRest();
            return await fromRest(controller);
          }
          release();
          controller.error(wrap(err));
        }
      },
      cancel() {
        file?.close();
        file = undefined;
        rest?.cancel().catch(() => {});
        release();
      },
    });
  }

  #streamRange(cid: CID, start: number, end: number, label: string): ReadableStream<Uint8Array> {
    const it = readFile(this.getBlock, cid, { start, end, window: this.#window });
    const wrap = (err: unknown) => this.#wrap(err, label);
    return new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const step = await it.next();
          if (step.done) controller.close();
          else controller.enqueue(step.value);
        } catch (err) {
          controller.error(wrap(err));
        }
      },
      async cancel() {
        await it.return(undefined);
      },
    });
  }

  #wrap(err: unknown, path: string): ContentError {
    if (err instanceof ContentError) return err;
    const message = errorMessage(err);
    return new ContentError(`Cannot read "${path}" of ${this.ref}: ${message}`, "unavailable", {
      cause: err,
    });
  }
}

function pathSegments(path: string): string[] {
  const out: string[] = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") throw new ContentError(`Path leaves the tree: ${path}`, "forbidden");
    out.push(seg);
  }
  return out;
}
