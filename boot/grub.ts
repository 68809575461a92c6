/**
 * GRUB as a second stage: the names its network images ask for over TFTP, and how a value is
 * written into a grub.cfg.
 *
 * Debian's signed GRUB network image (`grubnetx64.efi.signed`, which shim fetches as
 * `grubx64.efi`) has no HTTP module, and under Secure Boot it cannot load one: everything it
 * reads comes over TFTP from the server that booted it. Its built-in prefix is `/grub`; the
 * installer build's (and the debian-installer netboot image's) is
 * `/debian-installer/amd64/grub`, and the arm64 netboot image's (`grubaa64.efi`, ARM64's
 * default second stage) `/debian-installer/arm64/grub`. Each reads `<prefix>/grub.cfg` after
 * probing `<prefix>/<platform>/{command,fs,crypto,terminal}.lst` (measured, docs/FIRMWARE.md).
 *
 * | TFTP name                                   | answer                                              |
 * |---------------------------------------------|-----------------------------------------------------|
 * | `grub/grub.cfg`, `debian-installer/{amd64,arm64}/grub/grub.cfg` | the asking machine's config (local disk, its OS, or the menu) |
 * | `grub/choose/<os>[/<class>]`                | makes the choice sticky, then the OS's config       |
 * | `image/<os>/<file>`                         | `boot/<os>/images/<file>` (kernels and initrds)     |
 * | anything else                               | `tftp/<name>` of the tree                           |
 *
 * @module
 */
import { TFTP_TREE_PREFIX, tftpPathToTree } from "../protocols/tftp/paths.ts";
import { OS_NAME } from "./catalog.ts";

/** The config files GRUB network images read, as tree-relative TFTP names. */
export const GRUB_CONFIG_NAMES: readonly string[] = Object.freeze([
  // grubnetx64.efi.signed from grub-efi-amd64-signed: prefix /grub.
  "grub/grub.cfg",
  // grubnetx64-installer.efi.signed, and the grubx64.efi of debian-installer's netboot image.
  "debian-installer/amd64/grub/grub.cfg",
  // The grubaa64.efi of debian-installer-12-netboot-arm64 (the lab's ARM64 chain).
  "debian-installer/arm64/grub/grub.cfg",
]);

/** The folder of the menu's choices, under GRUB's prefix `/grub`. */
export const GRUB_CHOOSE = "grub/choose";

/** What a TFTP name stands for. */
export type TftpName =
  | { kind: "grub-entry" }
  | { kind: "grub-choose"; os: string; cls: string | null }
  | { kind: "file"; path: string };

/** What TFTP name `filename` stands for (see the module doc); null when it must be refused. */
export function tftpName(filename: string): TftpName | null {
  const path = tftpPathToTree(filename);
  if (path === null) return null;
  const rel = path.slice(TFTP_TREE_PREFIX.length + 1);
  if (GRUB_CONFIG_NAMES.includes(rel)) return { kind: "grub-entry" };
  const parts = rel.split("/");
  if (rel.startsWith(`${GRUB_CHOOSE}/`) && (parts.length === 3 || parts.length === 4)) {
    return { kind: "grub-choose", os: parts[2]!, cls: parts[3] ?? null };
  }
  if (parts[0] === "image" && parts.length >= 3) {
    if (!OS_NAME.test(parts[1]!)) return null;
    return { kind: "file", path: `boot/${parts[1]}/images/${parts.slice(2).join("/")}` };
  }
  return { kind: "file", path };
}

/** `text` as one word of a grub.cfg: as is when plain, else in single quotes. */
export function grubQuote(text: string): string {
  if (/^[A-Za-z0-9_./:=,+@%-]+$/.test(text)) return text;
  // GRUB's lexer reads quotes as sh does: nothing is special inside '…', and '\'' is a quote.
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * A kernel command line as the arguments of GRUB's `linux` command, so the kernel gets it
 * back: split where the kernel splits (blanks outside double quotes), quotes dropped, each
 * word quoted for GRUB. GRUB joins the words with blanks again and puts a word that holds a
 * blank in double quotes (`foo="a b"` arrives as `"foo=a b"`, which the kernel reads the same).
 */
export function grubKernelArgs(cmdline: string): string {
  const words: string[] = [];
  let word: string | null = null;
  let quoted = false;
  for (const ch of cmdline) {
    if (ch === '"') {
      quoted = !quoted;
      word ??= "";
    } else if (!quoted && (ch === " " || ch === "\t")) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? "") + ch;
    }
  }
  if (word !== null) words.push(word);
  return words.map(grubQuote).join(" ");
}

/** GRUB's name of a file on this server's TFTP: `(tftp,10.0.0.1)/image/os/vmlinuz`, quoted. */
export function grubTftpPath(serverIp: string, name: string): string {
  return grubQuote(`(tftp,${serverIp})/${name.replace(/^\/+/, "")}`);
}
