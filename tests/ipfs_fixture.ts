/**
 * Test fixtures for ipfs/: real UnixFS trees built by an independent importer
 * (ipfs-unixfs-importer, test-only) into an in-memory blockstore, and a Trustless Gateway
 * on 127.0.0.1 serving them as `?format=raw` and `?format=car`, with knobs for misbehaviour.
 *
 * @module
 */

import { CID, varint } from "multiformats";
import * as dagPb from "@ipld/dag-pb";
import { CarWriter } from "@ipld/car/writer";
import { UnixFS } from "ipfs-unixfs";
// The importer is a test-only dependency, kept out of the product's import map on purpose.
// deno-lint-ignore no-import-prefix
import { importer, type ImporterOptions } from "npm:ipfs-unixfs-importer@17.1.1";
// deno-lint-ignore no-import-prefix
import { fixedSize } from "npm:ipfs-unixfs-importer@17.1.1/chunker";
// deno-lint-ignore no-import-prefix
import { balanced } from "npm:ipfs-unixfs-importer@17.1.1/layout";

/** Blocks keyed by CIDv1 string. */
export class MemoryBlockstore {
  readonly blocks = new Map<string, Uint8Array>();
  put(cid: CID, bytes: Uint8Array): CID {
    this.blocks.set(keyOf(cid), bytes);
    return cid;
  }
  get(cid: CID): Uint8Array | undefined {
    return this.blocks.get(keyOf(cid));
  }
  /** Blocks reachable from `root`, depth first, pre-order (Kubo's CAR order). */
  dfs(root: CID, scope: "entity" | "all"): { cid: CID; bytes: Uint8Array }[] {
    const out: { cid: CID; bytes: Uint8Array }[] = [];
    const visit = (cid: CID, inEntity: boolean) => {
      const bytes = this.get(cid);
      if (!bytes) return;
      out.push({ cid, bytes });
      if (cid.code !== dagPb.code) return;
      const node = dagPb.decode(bytes);
      const type = node.Data ? UnixFS.unmarshal(node.Data).type : "file";
      for (const l of node.Links) {
        // dag-scope=entity: a file's whole DAG, a directory alone, a HAMT with its shards.
        const shard = type === "hamt-sharded-directory" && (l.Name ?? "").length === 2;
        const dirChild = type === "directory" || type === "hamt-sharded-directory";
        if (scope === "all" || !inEntity || !dirChild || shard) visit(l.Hash, inEntity);
      }
    };
    visit(root, scope === "entity");
    return out;
  }
}

/** CIDv1 string of any CID: the key used for knobs and maps. */
export function keyOf(cid: CID): string {
  return cid.toV1().toString();
}

/** Deterministic pseudo-random bytes (xorshift32), so test data never repeats chunks. */
export function pseudoRandomBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A file or symlink to import. */
export type FixtureEntry = { path: string; content: Uint8Array } | { path: string; link: string };

/** The two importer settings the tests use, plus knobs to force depth and sharding. */
export interface BuildOptions {
  /** "kubo-v0": CIDv0, 256 KiB chunks, dag-pb leaves. "v1-raw": CIDv1, raw leaves. */
  profile: "kubo-v0" | "v1-raw";
  chunkSize?: number;
  maxChildrenPerNode?: number;
  shardSplitThresholdBytes?: number;
}

/** Imports entries under one wrapping directory; returns its CID and the blocks. */
export async function buildTree(
  entries: FixtureEntry[],
  options: BuildOptions,
  blocks = new MemoryBlockstore(),
): Promise<{ root: CID; blocks: MemoryBlockstore; cids: Map<string, CID> }> {
  const v0 = options.profile === "kubo-v0";
  const opts: Partial<ImporterOptions> = {
    cidVersion: v0 ? 0 : 1,
    rawLeaves: !v0,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: options.chunkSize ?? 256 * 1024 }),
    layout: balanced({ maxChildrenPerNode: options.maxChildrenPerNode ?? 174 }),
    wrapWithDirectory: true,
    shardSplitThresholdBytes: options.shardSplitThresholdBytes ?? 256 * 1024,
  };
  const store = {
    put: (cid: CID, bytes: Uint8Array) => blocks.put(CID.asCID(cid) ?? cid, bytes),
  };
  const cids = new Map<string, CID>();
  let last: CID | undefined;
  // deno-lint-ignore no-explicit-any
  for await (const entry of importer(entries as any, store as any, opts)) {
    const cid = CID.asCID(entry.cid) ?? CID.parse(entry.cid.toString());
    cids.set(entry.path ?? "", cid);
    last = cid;
  }
  if (!last) throw new Error("importer produced nothing");
  return { root: last, blocks, cids };
}

/** Knobs of a {@linkcode TestGateway}; change them between requests. */
export interface GatewayKnobs {
  /** Keys (CIDv1) of blocks served with one byte flipped, as raw and inside CARs. */
  corrupt: Set<string>;
  /** Cut every CAR after this many bytes. */
  truncateCarAt?: number;
  /** Answer CAR requests with this status (406, 501). */
  refuseCar?: number;
  /** Answer raw requests with this status (simulates a gateway without blocks). */
  refuseRaw?: number;
  /** Wait this long before answering, and between CAR chunks. */
  delayMs: number;
  /** Wait this long between CAR chunks only (overrides delayMs there). */
  carChunkDelayMs?: number;
}

/** A Trustless Gateway over a {@linkcode MemoryBlockstore}, on 127.0.0.1. */
export class TestGateway {
  readonly knobs: GatewayKnobs = { corrupt: new Set(), delayMs: 0 };
  readonly counts = { raw: 0, car: 0, other: 0 };
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #cars = new Map<string, Uint8Array>();
  #port = 0;

  /** `port` 0 picks a free one; a fixed port lets a process in a namespace be found. */
  constructor(readonly blocks: MemoryBlockstore, port = 0) {
    this.#port = port;
  }

  /** Base URL, e.g. http://127.0.0.1:41234. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Starts listening (again, on the same port when restarted). */
  start(): this {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: this.#port, onListen: () => {} },
      (req) => this.#handle(req),
    );
    this.#port = this.#server.addr.port;
    return this;
  }

  /** Stops listening: the gateway is down (connections refused). */
  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    if (s) {
      await s.shutdown();
    }
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const m = /^\/ipfs\/([^/]+)$/.exec(url.pathname);
    const format = url.searchParams.get("format");
    if (this.knobs.delayMs) await sleep(this.knobs.delayMs);
    if (!m || !format) {
      this.counts.other++;
      return new Response("only trustless requests here", { status: 400 });
    }
    let cid: CID;
    try {
      cid = CID.parse(m[1]!);
    } catch {
      return new Response("bad cid", { status: 400 });
    }
    if (format === "raw") {
      this.counts.raw++;
      if (this.knobs.refuseRaw) return new Response("no", { status: this.knobs.refuseRaw });
      const bytes = this.#serve(cid);
      if (!bytes) return new Response("not found", { status: 404 });
      return new Response(bytes as Uint8Array<ArrayBuffer>, {
        headers: { "content-type": "application/vnd.ipld.raw" },
      });
    }
    if (format === "car") {
      this.counts.car++;
      if (this.knobs.refuseCar) return new Response("no", { status: this.knobs.refuseCar });
      if (!this.blocks.get(cid)) return new Response("not found", { status: 404 });
      const scope = url.searchParams.get("dag-scope") === "all" ? "all" : "entity";
      // Built CARs are kept (unless blocks are being corrupted) so a benchmark measures the
      // client, not this fixture's CAR writer.
      const cacheKey = `${keyOf(cid)}/${scope}`;
      let car = this.knobs.corrupt.size === 0 ? this.#cars.get(cacheKey) : undefined;
      if (!car) {
        car = await this.#car(cid, scope);
        if (this.knobs.corrupt.size === 0) this.#cars.set(cacheKey, car);
      }
      if (this.knobs.truncateCarAt !== undefined) car = car.subarray(0, this.knobs.truncateCarAt);
      const delay = this.knobs.carChunkDelayMs ?? this.knobs.delayMs;
      let off = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (off >= car.length) return controller.close();
          if (delay && off > 0) await sleep(delay);
          controller.enqueue(car.slice(off, off + 64 * 1024));
          off += 64 * 1024;
        },
      });
      return new Response(body, {
        headers: { "content-type": "application/vnd.ipld.car; version=1; order=dfs; dups=n" },
      });
    }
    return new Response("unknown format", { status: 400 });
  }

  #serve(cid: CID): Uint8Array | undefined {
    const bytes = this.blocks.get(cid);
    if (!bytes || !this.knobs.corrupt.has(keyOf(cid))) return bytes;
    const copy = bytes.slice();
    copy[copy.length >> 1]! ^= 0x01;
    return copy;
  }

  async #car(root: CID, scope: "entity" | "all"): Promise<Uint8Array> {
    const { writer, out } = CarWriter.create([root as never]);
    const parts: Uint8Array[] = [];
    const collect = (async () => {
      for await (const chunk of out) parts.push(chunk);
    })();
    for (const { cid } of this.blocks.dfs(root, scope)) {
      // @ipld/car is typed against its own multiformats; the CID object is compatible.
      await writer.put({ cid: cid as never, bytes: this.#serve(cid)! });
    }
    await writer.close();
    await collect;
    return new Uint8Array(await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer());
  }
}

/** Concatenates a byte stream. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Byte-wise equality with a readable failure message. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A fresh temp folder removed by the returned function. */
export async function tempDir(
  prefix: string,
): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, remove: () => Deno.remove(path, { recursive: true }).catch(() => {}) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The bytes of one CAR section: length varint, CID, block. */
export function carSection(cid: CID, bytes: Uint8Array): Uint8Array {
  const body = cid.bytes.length + bytes.length;
  const out = new Uint8Array(varint.encodingLength(body) + body);
  varint.encodeTo(body, out);
  out.set(cid.bytes, varint.encodingLength(body));
  out.set(bytes, varint.encodingLength(body) + cid.bytes.length);
  return out;
}

/** The bytes of a CARv1 header naming `root`. */
export async function carHeader(root: CID): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create([root as never]);
  const parts: Uint8Array[] = [];
  const collect = (async () => {
    for await (const chunk of out) parts.push(chunk);
  })();
  await writer.close();
  await collect;
  return new Uint8Array(await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer());
}

/**
 * A byte stream that hands out `next()`'s chunks, one per read, until it returns null;
 * `delayMs` before each chunk after the first. Nothing is made before it is read, so an
 * endless source costs nothing once the reader stops.
 */
export function pulledStream(
  next: (index: number) => Uint8Array | null,
  delayMs = 0,
): ReadableStream<Uint8Array> {
  let index = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (delayMs && index > 0) await sleep(delayMs);
      const chunk = next(index++);
      try {
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      } catch {
        // Cancelled while asleep: nobody reads any more.
      }
    },
  }, { highWaterMark: 0 });
}

/** What a {@linkcode fakeGateway} answers: a body, a status, or the default (the blockstore). */
export type FakeAnswer = ReadableStream<Uint8Array> | number | undefined;

/** Behaviour of a {@linkcode fakeGateway}: per request, what to answer instead of the truth. */
export interface FakeGatewayOptions {
  /** A CAR request for `root`: the body (sent as CAR), a status, or undefined for the truth. */
  car?: (root: CID) => FakeAnswer | Promise<FakeAnswer>;
  /** A raw request: the body, a status, or undefined for the truth. */
  raw?: (cid: CID) => FakeAnswer;
}

/**
 * A trustless gateway as an injected `fetch` over a {@linkcode MemoryBlockstore}, for one
 * base URL. It ignores the request's abort signal on purpose: the client must bound every
 * request itself, even against a server (or a proxy) that never lets go.
 */
export function fakeGateway(
  base: string,
  blocks: MemoryBlockstore,
  options: FakeGatewayOptions = {},
): FakeGateway {
  const counts = { raw: 0, car: 0 };
  const answer = (a: FakeAnswer, type: string, truth: () => Promise<Uint8Array | undefined>) =>
    (async () => {
      if (typeof a === "number") return new Response("no", { status: a });
      const body = a ?? await truth();
      if (!body) return new Response("not found", { status: 404 });
      return new Response(body as BodyInit, { headers: { "content-type": type } });
    })();
  const fetchFn = async (input: string | URL | Request): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (!url.href.startsWith(base)) throw new TypeError(`connection refused: ${url.origin}`);
    const cid = CID.parse(url.pathname.replace(/^\/ipfs\//, ""));
    if (url.searchParams.get("format") === "raw") {
      counts.raw++;
      return await answer(
        options.raw?.(cid),
        "application/vnd.ipld.raw",
        () => Promise.resolve(blocks.get(cid)),
      );
    }
    counts.car++;
    return await answer(
      await options.car?.(cid),
      "application/vnd.ipld.car; version=1; order=dfs; dups=n",
      async () => {
        if (!blocks.get(cid)) return undefined;
        const parts = [await carHeader(cid)];
        for (const b of blocks.dfs(cid, "entity")) parts.push(carSection(b.cid, b.bytes));
        return new Uint8Array(await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer());
      },
    );
  };
  return { base, fetch: fetchFn as typeof fetch, counts };
}

/** A simulated gateway: its base URL, its `fetch`, and what it was asked. */
export interface FakeGateway {
  base: string;
  fetch: typeof fetch;
  counts: { raw: number; car: number };
}

/** One `fetch` over several fake gateways, routed by base URL; others are refused. */
export function fetchOf(...gateways: FakeGateway[]): typeof fetch {
  return ((input: string | URL | Request, init?: RequestInit) => {
    const href = input instanceof Request ? input.url : String(input);
    const gw = gateways.find((g) => href.startsWith(g.base + "/"));
    if (!gw) return Promise.reject(new TypeError(`connection refused: ${href}`));
    return gw.fetch(input, init);
  }) as typeof fetch;
}
