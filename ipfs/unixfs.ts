/**
 * UnixFS, walked locally from verified blocks: path lookup through plain and HAMT-sharded
 * directories, directory listings, and file reads that use `blocksizes` to fetch only the
 * blocks a byte range needs.
 *
 * Everything here takes a {@linkcode BlockGetter}, so it works the same over the cache, a
 * gateway, or a test's in-memory blockstore.
 *
 * @module
 */

import type { CID } from "multiformats";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { murmur364 } from "@multiformats/murmur3";
import { errorMessage } from "../log.ts";
import { CODEC } from "./verify.ts";

/**
 * Returns the verified bytes of a block. `hint` is "child" for blocks reached below a file
 * root, so a caching getter can skip storing leaves whose bytes end up in an assembled file.
 */
export type BlockGetter = (cid: CID, hint?: "child") => Promise<Uint8Array>;

/** A block that is not valid UnixFS, or a DAG whose sizes contradict each other. */
export class UnixfsError extends Error {
  constructor(message: string, readonly cid: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnixfsError";
  }
}

/** A named link of a directory or shard. */
export interface NamedLink {
  name: string;
  cid: CID;
}

/** A decoded UnixFS node. */
export type UnixfsNode =
  | {
    kind: "file";
    cid: CID;
    /** Total bytes of the file this node roots (UnixFS `fileSize()`, or the raw block). */
    size: number;
    /** Bytes stored in this node itself; they come before the children's bytes. */
    data: Uint8Array;
    /** Children in order, each with its byte count from `blocksizes`. */
    children: { cid: CID; size: number }[];
  }
  | { kind: "dir"; cid: CID; links: NamedLink[] }
  | { kind: "hamt"; cid: CID; fanout: number; links: NamedLink[] }
  | { kind: "symlink"; cid: CID; target: string };

const HAMT_MURMUR3_X64_64 = 0x22;
const MAX_FANOUT = 1024;
const MAX_SYMLINK_HOPS = 16;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** Decodes a verified block as UnixFS; throws {@linkcode UnixfsError} for anything else. */
export function decodeNode(cid: CID, bytes: Uint8Array): UnixfsNode {
  if (cid.code === CODEC.raw) {
    return { kind: "file", cid, size: bytes.length, data: bytes, children: [] };
  }
  if (cid.code !== CODEC.dagPb) {
    throw new UnixfsError(`Block ${cid} has codec 0x${cid.code.toString(16)}`, cid.toString());
  }
  let pb: dagPb.PBNode;
  let fs: UnixFS;
  try {
    pb = dagPb.decode(bytes);
    if (!pb.Data) throw new Error("no Data field");
    fs = UnixFS.unmarshal(pb.Data);
  } catch (cause) {
    throw new UnixfsError(
      `Block ${cid} is not a UnixFS node: ${errorMessage(cause)}`,
      cid.toString(),
      {
        cause,
      },
    );
  }
  switch (fs.type) {
    case "file":
    case "raw": {
      if (pb.Links.length !== fs.blockSizes.length) {
        throw new UnixfsError(
          `File node ${cid} has ${pb.Links.length} links but ${fs.blockSizes.length} blocksizes`,
          cid.toString(),
        );
      }
      const children = pb.Links.map((l, i) => ({
        cid: l.Hash,
        size: safe(fs.blockSizes[i]!, cid),
      }));
      return {
        kind: "file",
        cid,
        size: safe(fs.fileSize(), cid),
        data: fs.data ?? new Uint8Array(0),
        children,
      };
    }
    case "directory":
      return { kind: "dir", cid, links: named(pb) };
    case "hamt-sharded-directory": {
      const fanout = Number(fs.fanout ?? 0n);
      if (fanout < 2 || fanout > MAX_FANOUT || (fanout & (fanout - 1)) !== 0) {
        throw new UnixfsError(`HAMT ${cid} has fanout ${fanout}`, cid.toString());
      }
      const hashType = hamtHashType(pb.Data!, cid);
      if (hashType !== HAMT_MURMUR3_X64_64) {
        throw new UnixfsError(`HAMT ${cid} uses hash 0x${hashType?.toString(16)}`, cid.toString());
      }
      return { kind: "hamt", cid, fanout, links: named(pb) };
    }
    case "symlink": {
      let target: string;
      try {
        target = utf8Strict.decode(fs.data ?? new Uint8Array(0));
      } catch (cause) {
        throw new UnixfsError(`Symlink ${cid} target is not UTF-8`, cid.toString(), { cause });
      }
      return { kind: "symlink", cid, target };
    }
    default:
      throw new UnixfsError(`Node ${cid} has UnixFS type ${fs.type}`, cid.toString());
  }
}

/** Loads and decodes one node. */
export async function loadNode(get: BlockGetter, cid: CID): Promise<UnixfsNode> {
  return decodeNode(cid, await get(cid));
}

/**
 * Finds `name` in a directory node (plain or HAMT), fetching only the shards on its hash path.
 * Returns null when it is not there.
 */
export async function findInDirectory(
  get: BlockGetter,
  dir: UnixfsNode,
  name: string,
): Promise<NamedLink | null> {
  if (dir.kind === "dir") return dir.links.find((l) => l.name === name) ?? null;
  if (dir.kind !== "hamt") return null;
  const hash = hamtHash(name);
  const bits = Math.log2(dir.fanout);
  const width = (dir.fanout - 1).toString(16).length;
  let shard: UnixfsNode = dir;
  for (let depth = 0;; depth++) {
    if (shard.kind !== "hamt") {
      throw new UnixfsError(`HAMT child ${shard.cid} is not a shard`, shard.cid.toString());
    }
    if ((depth + 1) * bits > hash.length * 8) {
      // Deeper than 64 bits needs the spec's rehash, which no importer produces in practice.
      throw new UnixfsError(`HAMT ${dir.cid} deeper than its hash allows`, dir.cid.toString());
    }
    const label = takeBits(hash, depth * bits, bits).toString(16).toUpperCase()
      .padStart(width, "0");
    let next: NamedLink | undefined;
    for (const link of shard.links) {
      if (link.name.slice(0, width).toUpperCase() !== label) continue;
      if (link.name.length === width) next = link;
      else if (link.name.slice(width) === name) return { name, cid: link.cid };
    }
    if (!next) return null;
    shard = await loadNode(get, next.cid);
  }
}

/** The names in a directory node (plain or HAMT, all shards), sorted. */
export async function listDirectory(get: BlockGetter, dir: UnixfsNode): Promise<NamedLink[]> {
  if (dir.kind === "dir") return sorted([...dir.links]);
  if (dir.kind !== "hamt") return [];
  const out: NamedLink[] = [];
  await walkShard(get, dir, Math.log2(dir.fanout), (link) => out.push(link));
  return sorted(out);
}

/** The blocks of a HAMT besides its root, for reachability (GC). */
export async function hamtShardCids(get: BlockGetter, dir: UnixfsNode): Promise<CID[]> {
  const out: CID[] = [];
  if (dir.kind === "hamt") await walkShard(get, dir, Math.log2(dir.fanout), () => {}, out);
  return out;
}

/** What {@linkcode resolvePath} found. */
export interface Resolved {
  cid: CID;
  node: UnixfsNode;
}

/**
 * Walks `segments` from `root`, following relative symlinks inside the tree. Returns null when
 * a segment is missing, passes through a file, or a symlink leaves the tree or loops.
 */
export async function resolvePath(
  get: BlockGetter,
  root: CID,
  segments: readonly string[],
): Promise<Resolved | null> {
  let path = [...segments];
  for (let hop = 0; hop <= MAX_SYMLINK_HOPS; hop++) {
    let node = await loadNode(get, root);
    let restart: string[] | null = null;
    for (let i = 0; i < path.length; i++) {
      const link = await findInDirectory(get, node, path[i]!);
      if (!link) return null;
      node = await loadNode(get, link.cid);
      if (node.kind === "symlink") {
        restart = followSymlink(path.slice(0, i), node.target, path.slice(i + 1));
        if (!restart) return null;
        break;
      }
    }
    if (!restart) return { cid: node.cid, node };
    path = restart;
  }
  return null;
}

/** Options for {@linkcode readFile}. */
export interface ReadFileOptions {
  /** First byte, default 0. */
  start?: number;
  /** One past the last byte, default the file's end. */
  end?: number;
  /** How many blocks to request ahead of the one being delivered; default 8. */
  window?: number;
}

/**
 * Yields a file's bytes (or `[start, end)` of them) in order. Children outside the range are
 * never fetched: their offsets come from `blocksizes`. Up to `window` blocks are in flight.
 * Sizes that contradict `blocksizes` throw {@linkcode UnixfsError}.
 */
export async function* readFile(
  get: BlockGetter,
  root: CID,
  options: ReadFileOptions = {},
): AsyncGenerator<Uint8Array> {
  const window = Math.max(1, options.window ?? 8);
  const start = Math.max(0, options.start ?? 0);
  const end = options.end ?? Number.MAX_SAFE_INTEGER;
  if (end <= start) return;
  interface Task {
    cid: CID;
    start: number;
    end: number;
    expected: number;
    child: boolean;
    bytes?: Promise<Uint8Array>;
  }
  const queue: Task[] = [{ cid: root, start, end, expected: -1, child: false }];
  while (queue.length > 0) {
    for (let i = 0; i < Math.min(window, queue.length); i++) {
      const t = queue[i]!;
      if (!t.bytes) {
        t.bytes = get(t.cid, t.child ? "child" : undefined);
        // Prefetches may fail while an earlier block is awaited; the failure surfaces in order.
        t.bytes.catch(() => {});
      }
    }
    const task = queue.shift()!;
    const node = decodeNode(task.cid, await task.bytes!);
    if (node.kind !== "file") {
      throw new UnixfsError(`${task.cid} is a ${node.kind}, not a file`, task.cid.toString());
    }
    if (task.expected >= 0 && node.size !== task.expected) {
      throw new UnixfsError(
        `File block ${task.cid} holds ${node.size} bytes, its parent says ${task.expected}`,
        task.cid.toString(),
      );
    }
    const ownEnd = Math.min(task.end, node.data.length);
    if (task.start < ownEnd) yield node.data.subarray(task.start, ownEnd);
    const children: Task[] = [];
    let offset = node.data.length;
    for (const child of node.children) {
      const from = offset;
      offset += child.size;
      if (offset <= task.start || from >= task.end) continue;
      children.push({
        cid: child.cid,
        start: Math.max(task.start - from, 0),
        end: Math.min(task.end - from, child.size),
        expected: child.size,
        child: true,
      });
    }
    queue.unshift(...children);
  }
}

/** One entry met by {@linkcode walkTree}. */
export interface TreeEntry {
  /** Tree-relative path, "" for the root. */
  path: string;
  cid: CID;
  node: UnixfsNode;
  /** For HAMT directories: the shard blocks below the root node. */
  shards: CID[];
}

/** Visits every directory, file and symlink under `root` (pre-order, names sorted). */
export async function* walkTree(get: BlockGetter, root: CID): AsyncGenerator<TreeEntry> {
  const stack: { path: string; cid: CID }[] = [{ path: "", cid: root }];
  while (stack.length > 0) {
    const { path, cid } = stack.pop()!;
    const node = await loadNode(get, cid);
    const shards = node.kind === "hamt" ? await hamtShardCids(get, node) : [];
    yield { path, cid, node, shards };
    if (node.kind === "dir" || node.kind === "hamt") {
      const links = await listDirectory(get, node);
      for (let i = links.length - 1; i >= 0; i--) {
        const link = links[i]!;
        if (!safeName(link.name)) continue;
        stack.push({ path: path ? `${path}/${link.name}` : link.name, cid: link.cid });
      }
    }
  }
}

/** Whether a link name is usable as one path segment (no separators, no dot names). */
function safeName(name: string): boolean {
  // deno-lint-ignore no-control-regex
  return name !== "" && name !== "." && name !== ".." && !/[/\\\x00]/.test(name);
}

async function walkShard(
  get: BlockGetter,
  shard: UnixfsNode,
  bits: number,
  onEntry: (link: NamedLink) => void,
  shardCids?: CID[],
): Promise<void> {
  if (shard.kind !== "hamt") {
    throw new UnixfsError(`HAMT child ${shard.cid} is not a shard`, shard.cid.toString());
  }
  const width = (shard.fanout - 1).toString(16).length;
  for (const link of shard.links) {
    if (link.name.length === width) {
      shardCids?.push(link.cid);
      await walkShard(get, await loadNode(get, link.cid), bits, onEntry, shardCids);
    } else {
      onEntry({ name: link.name.slice(width), cid: link.cid });
    }
  }
}

function followSymlink(dir: string[], target: string, rest: string[]): string[] | null {
  if (target.startsWith("/")) return null;
  const out = [...dir];
  for (const seg of target.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (out.length === 0) return null;
      out.pop();
    } else out.push(seg);
  }
  return [...out, ...rest];
}

function hamtHash(name: string): Uint8Array {
  return murmur364.encode(utf8.encode(name)) as Uint8Array;
}

/** Reads `count` bits starting at bit `offset`, most significant bit first. */
function takeBits(bytes: Uint8Array, offset: number, count: number): number {
  let out = 0;
  for (let i = 0; i < count; i++) {
    const bit = offset + i;
    out = (out << 1) | ((bytes[bit >> 3]! >> (7 - (bit & 7))) & 1);
  }
  return out;
}

/**
 * Field 5 (hashType) of the UnixFS Data message. ipfs-unixfs's `unmarshal` drops it, so the
 * protobuf is scanned here: varint fields and length-delimited fields only, as UnixFS uses.
 */
function hamtHashType(data: Uint8Array, cid: CID): number | undefined {
  let pos = 0;
  const varint = (): number => {
    let out = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      if (pos >= data.length) break;
      const b = data[pos++]!;
      out += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return out;
    }
    throw new UnixfsError(`HAMT ${cid}: truncated varint at offset ${pos}`, cid.toString());
  };
  let found: number | undefined;
  while (pos < data.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      const value = varint();
      if (field === 5) found = value;
    } else if (wire === 2) {
      const length = varint();
      pos += length;
    } else {
      throw new UnixfsError(`HAMT ${cid}: unexpected wire type ${wire}`, cid.toString());
    }
  }
  return found;
}

function named(pb: dagPb.PBNode): NamedLink[] {
  return pb.Links.map((l) => ({ name: l.Name ?? "", cid: l.Hash }));
}

function sorted(links: NamedLink[]): NamedLink[] {
  return links.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function safe(n: bigint, cid: CID): number {
  if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new UnixfsError(`Node ${cid} has an impossible size ${n}`, cid.toString());
  }
  return Number(n);
}
