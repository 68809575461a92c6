/**
 * The content store: the one way TFTP, HTTP and the menu read the boot tree.
 *
 * Two implementations: a local folder (`-l DIR`, {@link ./local_store.ts}) and the IPFS
 * root CID (`ref`, in ipfs/). Paths are tree-relative, `/`-separated, with no leading slash
 * (`tftp/undionly.kpxe`, `boot/debian/images/linux`); {@linkcode normalizeTreePath} turns
 * what a client asked for into such a path or refuses it.
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
}

/** Why a path could not be served; `code` maps to TFTP error codes and HTTP statuses. */
export class ContentError extends Error {
  constructor(
    message: string,
    readonly code: "not-found" | "forbidden" | "unavailable",
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ContentError";
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
