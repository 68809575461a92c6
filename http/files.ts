/**
 * Serving tree files over HTTP: HEAD, single byte ranges, ETag / If-None-Match,
 * If-Modified-Since and If-Range, streamed from a {@linkcode ContentStore}.
 *
 * iPXE, UEFI HTTP boot and installers fetch kernels, initrds and ISOs this way; curl and
 * wget resume with `Range: bytes=N-`. Multiple ranges get the whole file (RFC 9110 §14.2
 * lets a server ignore Range), which every client handles.
 *
 * @module
 */
import type { ByteRange, ContentEntry, ContentStore } from "../content/store.ts";

/** What a `Range` header asks of a file of a given size. */
export type RangeRequest =
  | { kind: "full" }
  | { kind: "partial"; range: ByteRange }
  | { kind: "unsatisfiable" };

/**
 * Reads a `Range` header (RFC 9110 §14.1.2) against a file of `size` bytes.
 * Anything but one valid `bytes=` range means the whole file; a range that starts past the
 * end is unsatisfiable.
 *
 * @example
 * ```ts
 * import { parseRange } from "./files.ts";
 * parseRange("bytes=0-99", 1000); // { kind: "partial", range: { start: 0, end: 99 } }
 * parseRange("bytes=-10", 1000); // { kind: "partial", range: { start: 990, end: 999 } }
 * ```
 */
export function parseRange(header: string | null, size: number): RangeRequest {
  if (header === null) return { kind: "full" };
  const m = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!m || m[1]!.includes(",")) return { kind: "full" };
  const spec = /^(\d*)\s*-\s*(\d*)\s*$/.exec(m[1]!);
  if (!spec || (spec[1] === "" && spec[2] === "")) return { kind: "full" };
  if (spec[1] === "") {
    // Suffix range: the last N bytes.
    const n = Number(spec[2]);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", range: { start: Math.max(0, size - n), end: size - 1 } };
  }
  const start = Number(spec[1]);
  // A last byte past any file's size is the file's end (RFC 9110 §14.1.2); a first one that
  // far is past this file's end: unsatisfiable, not a reason to send the whole file.
  const end = spec[2] === "" || !Number.isSafeInteger(Number(spec[2])) ? Infinity : Number(spec[2]);
  if (!Number.isSafeInteger(start)) return { kind: "unsatisfiable" };
  if (end < start) return { kind: "full" };
  if (start >= size) return { kind: "unsatisfiable" };
  return { kind: "partial", range: { start, end: Math.min(end, size - 1) } };
}

const TYPES: Record<string, string> = {
  ipxe: "text/plain; charset=utf-8",
  txt: "text/plain; charset=utf-8",
  cfg: "text/plain; charset=utf-8",
  conf: "text/plain; charset=utf-8",
  sh: "text/plain; charset=utf-8",
  toml: "text/plain; charset=utf-8",
  yaml: "text/plain; charset=utf-8",
  yml: "text/plain; charset=utf-8",
  md: "text/plain; charset=utf-8",
  json: "application/json",
  ign: "application/json",
  iso: "application/x-iso9660-image",
  gz: "application/gzip",
  xz: "application/x-xz",
  zst: "application/zstd",
  tar: "application/x-tar",
};

/** Content-Type by extension; application/octet-stream for kernels, loaders and unknowns. */
export function contentTypeFor(path: string): string {
  const dot = path.lastIndexOf(".");
  const ext = dot > path.lastIndexOf("/") ? path.slice(dot + 1).toLowerCase() : "";
  return TYPES[ext] ?? "application/octet-stream";
}

/** The quoted ETag of an entry. */
function quotedEtag(entry: ContentEntry): string {
  return `"${entry.etag}"`;
}

/**
 * The headers of every answer about a tree file (Content-Type by `path`, Accept-Ranges, ETag,
 * Last-Modified); the answer adds its length and range.
 */
export function fileHeaders(path: string, entry: ContentEntry): [string, string][] {
  const headers: [string, string][] = [
    ["Content-Type", contentTypeFor(path)],
    ["Accept-Ranges", "bytes"],
    ["ETag", quotedEtag(entry)],
  ];
  if (entry.mtime) headers.push(["Last-Modified", entry.mtime.toUTCString()]);
  return headers;
}

/** If-None-Match (weak comparison, RFC 9110 §13.1.2): true when the client's copy is current. */
function matchesNone(header: string, etag: string): boolean {
  if (header.trim() === "*") return true;
  const opaque = etag.replace(/^W\//, "");
  return header.split(",").some((tag) => tag.trim().replace(/^W\//, "") === opaque);
}

/** Whether If-Modified-Since says the client's copy is current (HTTP dates are whole seconds). */
function notModifiedSince(header: string, mtime: Date | undefined): boolean {
  if (!mtime) return false;
  const since = Date.parse(header);
  return !Number.isNaN(since) && Math.floor(mtime.getTime() / 1000) * 1000 <= since;
}

/** If-Range (RFC 9110 §13.1.5): the range applies only to the representation the client has. */
function ifRangeHolds(header: string | null, entry: ContentEntry): boolean {
  if (header === null) return true;
  const h = header.trim();
  if (h.startsWith('"')) return h === quotedEtag(entry);
  return entry.mtime !== undefined && h === entry.mtime.toUTCString();
}

/**
 * Answers GET or HEAD for the tree file `path` (already normalized) with caching
 * validators and single-range support. Returns null when the path is not a file, so the
 * caller decides what "not found" looks like. Store errors propagate as ContentError.
 */
export async function serveTreeFile(
  request: Request,
  store: ContentStore,
  path: string,
): Promise<Response | null> {
  // A small file of a cached store comes whole from memory: no open, no stream. Not for HEAD,
  // which needs the stat only (an IPFS file not yet cached would be downloaded for it).
  const whole = store.file && request.method !== "HEAD" ? await store.file(path) : null;
  const entry = whole?.entry ?? await store.stat(path);
  if (!entry || entry.kind !== "file") return null;
  const headers = new Headers(fileHeaders(path, entry));

  const inm = request.headers.get("If-None-Match");
  const ims = request.headers.get("If-Modified-Since");
  if (
    inm !== null
      ? matchesNone(inm, quotedEtag(entry))
      : ims !== null && notModifiedSince(ims, entry.mtime)
  ) {
    headers.delete("Content-Type");
    return new Response(null, { status: 304, headers });
  }

  const wanted = ifRangeHolds(request.headers.get("If-Range"), entry)
    ? parseRange(request.headers.get("Range"), entry.size)
    : { kind: "full" as const };
  if (wanted.kind === "unsatisfiable") {
    headers.set("Content-Range", `bytes */${entry.size}`);
    headers.set("Content-Length", "0");
    return new Response(null, { status: 416, headers });
  }
  let status = 200;
  let range: ByteRange | undefined;
  let length = entry.size;
  if (wanted.kind === "partial") {
    range = wanted.range;
    status = 206;
    length = range.end - range.start + 1;
    headers.set("Content-Range", `bytes ${range.start}-${range.end}/${entry.size}`);
  }
  headers.set("Content-Length", String(length));
  // HEAD: Hono answers it with the GET handler's headers; opening the file would leak it.
  if (request.method === "HEAD" || length === 0) return new Response(null, { status, headers });
  if (whole) {
    const body = range ? whole.bytes.subarray(range.start, range.end + 1) : whole.bytes;
    return new Response(body, { status, headers });
  }
  return new Response(await store.read(path, range), { status, headers });
}
