/**
 * The content store: the one way TFTP, HTTP and the menu read the boot tree.
 *
 * Implementations: a local folder (`-l DIR`, `local.ts`), host files for missing loaders
 * (`fallback.ts`), memory (`memory.ts`) and the IPFS root CID (`ref`, in `ipfs/`). Paths are
 * tree-relative, `/`-separated, with no leading slash (`tftp/undionly.kpxe`,
 * `boot/debian/images/linux`); {@linkcode normalizeTreePath} turns what a client asked for into
 * such a path or refuses it. Every store fails with the one {@linkcode ContentError}.
 *
 * @module
 */

/** What {@linkcode ContentStore.stat} tells about a path. */
export interface ContentEntry {
  kind: "file" | "dir";
  /** Size in bytes (0 for directories). */
  size: number;
  /** A strong validator: the CID for IPFS content, size+mtime for local files. */
  etag: string;
  /** Last modification time where known (local files). */
  mtime?: Date;
}

/** A byte range, both ends inclusive, as in HTTP Range. */
export interface ByteRange {
  start: number;
  end: number;
}

/** A file held whole in memory: its stat and its bytes. */
export interface WholeFile {
  entry: ContentEntry;
  bytes: Uint8Array<ArrayBuffer>;
}

/** Read-only access to the boot tree. */
export interface ContentStore {
  /** A short description for logs and `astralboot config` ("local /srv/boot", "ipfs bafy…"). */
  readonly description: string;
  /** Metadata of a path, or null when it does not exist. Throws {@linkcode ContentError}. */
  stat(path: string): Promise<ContentEntry | null>;
  /** Names (not paths) in a directory, sorted; empty when it does not exist. */
  list(path: string): Promise<string[]>;
  /** The bytes of a file (or of a range of it), streamed. Throws {@linkcode ContentError}. */
  read(path: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>>;
  /**
   * The whole file from memory, where the store keeps small files there (`cached.ts`); null
   * when it is not such a file, to be streamed with `read`. Stores without memory leave it out.
   */
  file?(path: string): Promise<WholeFile | null>;
  /**
   * The whole file at once when memory holds it and it is fresh; undefined when `file` must
   * be asked (not loaded yet, stale, not known); null when it is not such a file. Synchronous:
   * the HTTP fast lane answers from it without a turn of the event loop.
   */
  peek?(path: string): WholeFile | null | undefined;
}

/** Why a path could not be served. */
export type ContentErrorCode = "not-found" | "forbidden" | "unavailable";

/**
 * Why a path could not be served, from any store (local folder, IPFS, memory). `code` maps to
 * a TFTP error code; `status` is the HTTP status (404, 403, 503).
 */
export class ContentError extends Error {
  constructor(message: string, readonly code: ContentErrorCode, options?: ErrorOptions) {
    super(message, options);
    this.name = "ContentError";
  }

  /** The HTTP status of this error: 404, 403 or 503 (the store cannot be reached now). */
  get status(): 403 | 404 | 503 {
    return this.code === "forbidden" ? 403 : this.code === "not-found" ? 404 : 503;
  }
}

/**
 * Turns a client-supplied path into a tree-relative one, or null when it is unsafe.
 *
 * Refused: NUL and other control bytes, backslashes, `..` segments, empty input. A leading
 * `/` is dropped (iPXE and many ROMs ask for `/tftp/x`); `.` and empty segments are folded.
 * No percent-decoding happens here: HTTP decodes before, TFTP names are literal.
 *
 * @example
 * ```ts
 * import { normalizeTreePath } from "./store.ts";
 * normalizeTreePath("/tftp//undionly.kpxe"); // "tftp/undionly.kpxe"
 * normalizeTreePath("../etc/passwd"); // null
 * ```
 */
export function normalizeTreePath(input: string): string | null {
  if (input.length === 0 || input.length > 1024) return null;
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f\\]/.test(input)) return null;
  const parts: string[] = [];
  for (const seg of input.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") return null;
    parts.push(seg);
  }
  return parts.length === 0 ? null : parts.join("/");
}

/** A store method's path: "" (or "/") is the root, anything else normalized or refused. */
export function treePath(path: string): string {
  if (path === "" || path === "/") return "";
  const rel = normalizeTreePath(path);
  if (rel === null) throw new ContentError(`unsafe path ${JSON.stringify(path)}`, "forbidden");
  return rel;
}

/** Checks that a range fits a file of `size` bytes. */
export function checkRange(range: ByteRange, size: number, what: string): void {
  if (
    !Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 ||
    range.end < range.start || range.end >= size
  ) {
    throw new RangeError(`${what}: range ${range.start}-${range.end} outside 0-${size - 1}`);
  }
}
