/**
 * A read-only tree held in memory: the embedded default (no `ref`, no `-l`) and a handy
 * store for tests.
 *
 * @module
 */
import {
  type ByteRange,
  checkRange,
  type ContentEntry,
  ContentError,
  type ContentStore,
  normalizeTreePath,
  treePath,
} from "./store.ts";

/** FNV-1a, 64 bit, as hex: a stable strong validator for in-memory content. */
function fnv1a(bytes: Uint8Array): string {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h.toString(16).padStart(16, "0");
}

/** A read-only tree held in memory: the embedded default and a handy store for tests. */
export class MemoryStore implements ContentStore {
  #files = new Map<string, { bytes: Uint8Array; etag: string }>();
  #dirs = new Map<string, Set<string>>([["", new Set()]]);

  /** `files` maps tree paths to contents; directories are implied by the paths. */
  constructor(files: Record<string, string | Uint8Array>, readonly description = "memory") {
    const enc = new TextEncoder();
    for (const [path, content] of Object.entries(files)) {
      const rel = normalizeTreePath(path);
      if (rel === null) throw new RangeError(`MemoryStore: unsafe path ${JSON.stringify(path)}`);
      const bytes = typeof content === "string" ? enc.encode(content) : content;
      this.#files.set(rel, { bytes, etag: fnv1a(bytes) });
      const parts = rel.split("/");
      for (let i = 0; i < parts.length; i++) {
        const dir = parts.slice(0, i).join("/");
        if (!this.#dirs.has(dir)) this.#dirs.set(dir, new Set());
        this.#dirs.get(dir)!.add(parts[i]!);
      }
    }
  }

  /** Metadata of a path, or null. */
  // deno-lint-ignore require-await
  async stat(path: string): Promise<ContentEntry | null> {
    const rel = treePath(path);
    const file = this.#files.get(rel);
    if (file) return { kind: "file", size: file.bytes.length, etag: file.etag };
    return this.#dirs.has(rel) ? { kind: "dir", size: 0, etag: "dir" } : null;
  }

  /** Names in a directory, sorted. */
  // deno-lint-ignore require-await
  async list(path: string): Promise<string[]> {
    return [...(this.#dirs.get(treePath(path)) ?? [])].sort();
  }

  /** The bytes of a file or of a range of it. */
  // deno-lint-ignore require-await
  async read(path: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const file = this.#files.get(treePath(path));
    if (!file) throw new ContentError(`${path}: not found`, "not-found");
    if (range) checkRange(range, file.bytes.length, path);
    const bytes = range ? file.bytes.subarray(range.start, range.end + 1) : file.bytes;
    return new ReadableStream({
      start(controller) {
        controller.enqueue(bytes.slice());
        controller.close();
      },
    });
  }
}

/** What runs with neither `ref` nor `-l DIR`: an empty tree, so the menu explains itself. */
export function embeddedDefaultStore(): MemoryStore {
  return new MemoryStore(
    {
      "README.txt": "Astral Boot has no boot tree configured: start it with -l DIR or set ref.\n",
    },
    "embedded default (no boot tree configured)",
  );
}
