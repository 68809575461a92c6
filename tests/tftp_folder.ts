/**
 * A TFTP `open` handler over a local folder, for the TFTP tests and benchmark only (the
 * program itself serves through the content store, content/local.ts).
 *
 * It does what a content store must: names go through `tftpPathToTree`, the real path (all
 * symlinks resolved) must stay inside the real root, and only regular files are opened —
 * checked before opening (a FIFO would block `open`) and again on the open handle.
 *
 * @module
 */
import { join } from "node:path";
import type { TftpOpen } from "../protocols/tftp/server.ts";
import { tftpPathToTree } from "../protocols/tftp/paths.ts";

/** Creates the handler; `onOpen` sees every real path actually opened (a spy for tests). */
export async function folderOpen(
  root: string,
  onOpen: (realPath: string) => void = () => {},
): Promise<TftpOpen> {
  const realRoot = await Deno.realPath(root);
  return async (filename) => {
    const tree = tftpPathToTree(filename);
    if (tree === null) return { error: "forbidden", message: "invalid file name" };
    let real: string;
    try {
      real = await Deno.realPath(join(realRoot, tree));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { error: "not-found", message: "not found" };
      return { error: "forbidden", message: "cannot resolve path" };
    }
    if (!real.startsWith(realRoot + "/")) {
      return { error: "forbidden", message: "outside the root" };
    }
    const info = await Deno.stat(real);
    if (!info.isFile) return { error: "forbidden", message: "not a regular file" };
    onOpen(real);
    const file = await Deno.open(real, { read: true });
    const again = await file.stat();
    if (!again.isFile || again.ino !== info.ino) {
      file.close();
      return { error: "forbidden", message: "file changed while opening" };
    }
    return { size: again.size, stream: file.readable };
  };
}
