/**
 * Maps a TFTP filename to a path in the boot tree, refusing anything that could leave it.
 *
 * TFTP serves only the `tftp/` subtree of the boot tree:
 *
 * | client asks for              | tree path                 |
 * |------------------------------|---------------------------|
 * | `undionly.kpxe`              | `tftp/undionly.kpxe`      |
 * | `/undionly.kpxe`             | `tftp/undionly.kpxe`      |
 * | `tftp/arm64/ipxe.efi`        | `tftp/arm64/ipxe.efi`     |
 * | `/tftp//arm64/./ipxe.efi`    | `tftp/arm64/ipxe.efi`     |
 * | `boot\x86\wdsnbp.com`        | `tftp/boot/x86/wdsnbp.com`|
 * | `../x`, `a/../b`, `..\x`     | refused (null)            |
 *
 * Decisions: a backslash is a separator, mapped to `/` before any check — Windows PXE clients
 * (WDS) ask for `boot\x86\wdsnbp.com`, and treating `\` as a plain character would give a
 * name that no tree holds, while the mapping lets `..\..\x` be caught as `..`. Every `..`
 * segment is refused, even one that would stay inside the tree. Names are literal: no
 * percent-decoding (`%2e%2e` is a file called `%2e%2e`). Control bytes (NUL included), names
 * over 1024 characters or segments over 255, and names that leave nothing after folding are refused.
 * Symlinks and device files are the content store's business (it resolves real paths).
 *
 * This module is protocols-side and imports nothing of boot/; it is as strict as the boot
 * tree's own `normalizeTreePath`.
 *
 * @module
 */

/** The subtree of the boot tree that TFTP serves. */
export const TFTP_TREE_PREFIX = "tftp";

/**
 * Turns a TFTP filename into a `tftp/…` tree path, or null when it must be refused.
 *
 * @example
 * ```ts
 * import { tftpPathToTree } from "./paths.ts";
 * tftpPathToTree("/undionly.kpxe"); // "tftp/undionly.kpxe"
 * tftpPathToTree("..\\..\\etc\\passwd"); // null
 * ```
 */
export function tftpPathToTree(filename: string): string | null {
  if (filename.length === 0 || filename.length > 1024) return null;
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(filename)) return null;
  const parts: string[] = [];
  for (const seg of filename.replaceAll("\\", "/").split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === ".." || seg.length > 255) return null;
    parts.push(seg);
  }
  if (parts[0] === TFTP_TREE_PREFIX) parts.shift();
  if (parts.length === 0) return null;
  return `${TFTP_TREE_PREFIX}/${parts.join("/")}`;
}
