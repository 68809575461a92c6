/**
 * A store that falls back to host files for paths the tree lacks: the first-stage loaders of
 * the host's `ipxe` package.
 *
 * @module
 */
import {
  type ByteRange,
  type ContentEntry,
  ContentError,
  type ContentStore,
  normalizeTreePath,
} from "./store.ts";
import { entryOf, openFileStream, statHostPath } from "./file_stream.ts";

/** Where the Debian `ipxe` package puts the first-stage loaders a tree may lack. */
export const IPXE_PACKAGE_FILES: Readonly<Record<string, string>> = {
  "tftp/undionly.kpxe": "/usr/lib/ipxe/undionly.kpxe",
  "tftp/undionly.kkpxe": "/usr/lib/ipxe/undionly.kkpxe",
  "tftp/snponly.efi": "/usr/lib/ipxe/snponly.efi",
  // A symlink to /boot/ipxe.efi in the package; it is a host path we trust, not tree input.
  "tftp/ipxe.efi": "/usr/lib/ipxe/ipxe.efi",
};

/**
 * A store that answers from `primary` first and, for paths it lacks, from host files.
 *
 * Meant for first-stage loaders (see {@linkcode IPXE_PACKAGE_FILES}): a tree without
 * `tftp/undionly.kpxe` still boots with the copy from the host's `ipxe` package.
 */
export class FallbackStore implements ContentStore {
  readonly description: string;
  #files: Map<string, string>;

  constructor(
    readonly primary: ContentStore,
    files: Readonly<Record<string, string>> = IPXE_PACKAGE_FILES,
  ) {
    this.#files = new Map(Object.entries(files));
    this.description = `${primary.description} (+ host iPXE files)`;
  }

  #host(path: string): { abs: string; info: Deno.FileInfo } | null {
    const rel = normalizeTreePath(path);
    const abs = rel === null ? undefined : this.#files.get(rel);
    if (abs === undefined) return null;
    const info = statHostPath(abs, path);
    return info?.isFile ? { abs, info } : null;
  }

  /** The primary's entry, else the host file's. */
  async stat(path: string): Promise<ContentEntry | null> {
    const entry = await this.primary.stat(path);
    if (entry) return entry;
    const host = this.#host(path);
    return host ? entryOf(host.info) : null;
  }

  /** The primary's names plus host files that belong in this directory. */
  async list(path: string): Promise<string[]> {
    const names = new Set(await this.primary.list(path));
    const dir = path === "" || path === "/" ? "" : normalizeTreePath(path);
    for (const treePath of this.#files.keys()) {
      const slash = treePath.lastIndexOf("/");
      if ((slash < 0 ? "" : treePath.slice(0, slash)) !== dir) continue;
      if (this.#host(treePath)) names.add(treePath.slice(slash + 1));
    }
    return [...names].sort();
  }

  /** The primary's bytes, else the host file's. */
  async read(path: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    if (await this.primary.stat(path)) return await this.primary.read(path, range);
    const host = this.#host(path);
    if (!host) throw new ContentError(`${path}: not found`, "not-found");
    return await openFileStream(host.abs, range, path);
  }
}
