/**
 * The Secure Boot chain of x86-64 UEFI (`[boot] secure_boot`): the Microsoft-signed shim as
 * the first stage, which fetches Debian's signed GRUB network image as `grubx64.efi` from the
 * TFTP root (not from its own folder), which reads its grub.cfg and the OS's kernel and initrd
 * over TFTP (`grub.ts`) and has shim check the kernel's signature. Without Secure Boot the
 * same chain still boots: shim then checks nothing.
 *
 * @module
 */
import type { ContentStore } from "../content/store.ts";

/** The bootfile x86-64 UEFI PXE clients get with Secure Boot on. */
export const SHIM_LOADER = "shimx64.efi";

/**
 * The bootfile ARM64 UEFI clients get by default (`[dhcp] arm64_loader`): shim, which fetches
 * `grubaa64.efi` from the TFTP root, whose prefix is `/debian-installer/arm64/grub`
 * (`debian-installer-12-netboot-arm64`'s `bootnetaa64.efi` and `grubaa64.efi`).
 */
export const ARM64_SHIM_LOADER = "shimaa64.efi";

/** A file the chain needs in the tree, and where it comes from. */
export interface SecureBootFile {
  path: string;
  /** The Debian package and the file in it. */
  source: string;
}

/** What the tree needs for Secure Boot (besides signed kernels under `boot/<os>/images/`). */
export const SECURE_BOOT_FILES: readonly SecureBootFile[] = Object.freeze([
  {
    path: `tftp/${SHIM_LOADER}`,
    source: "shim-signed: /usr/lib/shim/shimx64.efi.signed",
  },
  {
    path: "tftp/grubx64.efi",
    source: "grub-efi-amd64-signed: /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
  },
]);

/** The files of {@linkcode SECURE_BOOT_FILES} the store lacks (or cannot say it has). */
export async function missingSecureBootFiles(store: ContentStore): Promise<SecureBootFile[]> {
  const missing: SecureBootFile[] = [];
  for (const file of SECURE_BOOT_FILES) {
    const entry = await store.stat(file.path).catch(() => null);
    if (entry?.kind !== "file") missing.push(file);
  }
  return missing;
}
