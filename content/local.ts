/**
 * The boot tree in a local folder (`-l DIR`).
 *
 * Reads never load a whole file: {@linkcode LocalStore.read} opens, seeks and hands back a
 * stream. Only regular files and directories inside the root are served; symlinks are
 * followed only while their target stays inside the root (checked on the real path).
 *
 * @module
 */
import { join } from "node:path";
import {
  type ByteRange,
  type ContentEntry,
  ContentError,
  type ContentStore,
  treePath,
} from "./store.ts";
import { entryOf, fsError, openFileStream, statHostPath } from "./file_stream.ts";
import { errorMessage } from "../log.ts";

/** The boot tree in a local folder (`-l DIR`). */
export class LocalStore implements ContentStore {
  readonly description: string;
  readonly root: string;
  #prefix: string;

  /** Opens `root`; throws when it is not an existing directory. */
  constructor(root: string) {
    let real: string;
    try {
      real = Deno.realPathSync(root);
    } catch (err) {
      throw new Error(`boot tree folder ${root} cannot be opened: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    if (!Deno.statSync(real).isDirectory) throw new Error(`boot tree ${root} is not a folder`);
    this.root = real;
    this.#prefix = real.endsWith("/") ? real : real + "/";
    this.description = `local ${real}`;
  }

  /** The real path and stat of a tree path, null when missing; refuses escapes and specials. */
  #resolve(path: string): { abs: string; info: Deno.FileInfo } | null {
    const rel = treePath(path);
    const what = rel || "/";
    let real: string;
    try {
      real = Deno.realPathSync(rel ? join(this.root, rel) : this.root);
    } catch (err) {
      const mapped = fsError(err, what);
      if (mapped) throw mapped;
      return null;
    }
    if (real !== this.root && !real.startsWith(this.#prefix)) {
      throw new ContentError(`${what}: symlink leaves the boot tree`, "forbidden");
    }
    const info = statHostPath(real, what);
    return info ? { abs: real, info } : null;
  }

  /** Metadata of a tree path, or null when it does not exist. */
  // deno-lint-ignore require-await
  async stat(path: string): Promise<ContentEntry | null> {
    const found = this.#resolve(path);
    return found ? entryOf(found.info) : null;
  }

  /** Names of the files and directories in a tree directory, sorted. */
  async list(path: string): Promise<string[]> {
    const found = this.#resolve(path);
    if (!found || !found.info.isDirectory) return [];
    const rel = treePath(path);
    const names: string[] = [];
    for await (const e of Deno.readDir(found.abs)) {
      if (e.isFile || e.isDirectory) {
        names.push(e.name);
      } else if (e.isSymlink) {
        // Listed only when the link resolves to something we would serve.
        try {
          if (this.#resolve(rel ? `${rel}/${e.name}` : e.name)) names.push(e.name);
        } catch { /* escaping or special: not part of the tree */ }
      }
    }
    return names.sort();
  }

  /** Streams a file (or a range of it) without reading it whole. */
  async read(path: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    const found = this.#resolve(path);
    if (!found) throw new ContentError(`${path}: not found`, "not-found");
    if (!found.info.isFile) throw new ContentError(`${path}: is a directory`, "not-found");
    return await openFileStream(found.abs, range, path);
  }
}
