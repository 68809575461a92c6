/**
 * Which first stage a DHCP client gets.
 *
 * | client                                        | bootfile                                     |
 * |-----------------------------------------------|----------------------------------------------|
 * | already iPXE (77 "iPXE" or 175 present)       | `http://SERVER[:PORT]/boot.ipxe?mac=<mac>&…` |
 * | arch 0, x86 BIOS (or no 93: udhcpc, BOOTP)    | `undionly.kpxe`                              |
 * | arch 6, IA32 UEFI                             | `i386/ipxe.efi` (Debian ships none)          |
 * | arch 7 / 9, x86-64 UEFI                       | `snponly.efi` (`efi_loader`)                 |
 * | arch 7 / 9 with `[boot] secure_boot`          | `shimx64.efi` (then GRUB, `secure_boot.ts`)  |
 * | arch 7 / 9 of an installed machine            | `shimx64.efi` when the tree has the chain     |
 * | arch 11, ARM64 UEFI                           | `shimaa64.efi` (`arm64_loader`; then GRUB)   |
 * | vendor class "HTTPClient" (arch 15/16/19/20)  | `http://SERVER[:PORT]/tftp/<loader>`         |
 *
 * ARM64 gets shim → Debian's signed GRUB by default, the chain Debian ships for it (its `ipxe`
 * package has x86 loaders only, docs/FIRMWARE.md); it boots with Secure Boot on or off. A site
 * with its own arm64 iPXE build names it in `arm64_loader`.
 *
 * An installed x86-64 UEFI machine gets shim → GRUB too, with or without Secure Boot, when the
 * tree holds that chain: GRUB's config for it chainloads the disk's own loader, while iPXE's
 * `exit` ends in the firmware's boot menu on OVMF instead of its disk (docs/FIRMWARE.md).
 *
 * iPXE always wins over the architecture: handing a first-stage loader to iPXE makes it load
 * itself again, forever (measured: 11 DISCOVERs and 6 downloads in 90 s). Its script URL
 * carries the MAC from `chaddr`, so that `/boot.ipxe` can answer with the machine's kernel
 * line at once instead of a script that asks again with the MAC, and the settings iPXE
 * expands in it, so that the machine reports its UUID and serial in that same request
 * (`boot/inventory.ts`).
 *
 * @module
 */
import { clientArchOf, type ClientKind, clientKind } from "../protocols/dhcp/client.ts";
import type { DhcpPacket } from "../protocols/dhcp/packet.ts";
import { ClientArch } from "../protocols/dhcp/pxe.ts";
import { type Mac, macHyphens } from "../net/mac.ts";
import { macOf } from "../protocols/dhcp/packet.ts";
import { INVENTORY_QUERY } from "./inventory.ts";
import { ARM64_SHIM_LOADER, SHIM_LOADER } from "./secure_boot.ts";

/** Where the first-stage loaders and the iPXE script live. */
export interface BootfileOptions {
  /** Base URL of our HTTP server without trailing slash, e.g. "http://10.0.0.1:8080". */
  httpUrl: string;
  /** x86 BIOS loader (TFTP path). Default "undionly.kpxe". */
  biosLoader?: string;
  /** IA32 UEFI loader. Default "i386/ipxe.efi". */
  ia32Loader?: string;
  /** x86-64 UEFI loader (config `efi_loader`). Default "snponly.efi". */
  efiLoader?: string;
  /** ARM64 UEFI loader (config `arm64_loader`). Default {@linkcode ARM64_SHIM_LOADER}. */
  arm64Loader?: string;
  /** x86-64 UEFI PXE clients get shim instead of iPXE (`[boot] secure_boot`). */
  secureBoot?: boolean;
  /**
   * Whether the x86-64 UEFI PXE client `mac` goes back to its disk through shim → GRUB (an
   * installed machine, and the tree has the chain); consulted only for those clients.
   */
  diskChain?: (mac: Mac) => boolean;
}

/** Whether the machine asking goes back to its disk through shim → GRUB (`diskChain`). */
function goesToDisk(p: DhcpPacket, boot: BootfileOptions): boolean {
  const mac = macOf(p);
  return mac !== null && (boot.diskChain?.(mac) ?? false);
}

/** What a client should load, and how it identified itself. */
export interface BootChoice {
  /** TFTP path or absolute http:// URL; goes into `file` and option 67. */
  bootfile: string;
  /** Client architecture used for the choice (option 93, else from option 60, else 0). */
  arch: number;
  client: ClientKind;
}

/** The HTTP-boot architectures mapped to the PXE architecture whose loader they take. */
const HTTP_TO_PXE: ReadonlyMap<number, number> = new Map([
  [ClientArch.EfiX86Http, ClientArch.EfiIa32],
  [ClientArch.EfiX64Http, ClientArch.EfiX64],
  [ClientArch.EfiArm64Http, ClientArch.EfiArm64],
  [ClientArch.PcBiosHttp, ClientArch.X86Bios],
]);

const X86_64_UEFI: ReadonlySet<number> = new Set([ClientArch.EfiX64, ClientArch.EfiX64Alt]);

function loaderFor(arch: number, b: BootfileOptions): string | undefined {
  switch (HTTP_TO_PXE.get(arch) ?? arch) {
    case ClientArch.X86Bios:
      return b.biosLoader ?? "undionly.kpxe";
    case ClientArch.EfiIa32:
      return b.ia32Loader ?? "i386/ipxe.efi";
    case ClientArch.EfiX64:
    case ClientArch.EfiX64Alt:
      return b.efiLoader ?? "snponly.efi";
    case ClientArch.EfiArm64:
      return b.arm64Loader ?? ARM64_SHIM_LOADER;
    default:
      return undefined;
  }
}

/** The most option 67 holds in one piece; longer ones would need RFC 3396 concatenation. */
const MAX_BOOTFILE = 255;

/**
 * The iPXE script URL for a client: with its MAC when it has one, and the settings it reports
 * (`boot/inventory.ts`) when they fit into option 67 (a very long `public_url` leaves them out:
 * the machine still boots, it just reports nothing).
 */
export function ipxeScriptUrl(httpUrl: string, p: DhcpPacket): string {
  const mac = macOf(p);
  if (!mac) return `${httpUrl}/boot.ipxe`;
  const url = `${httpUrl}/boot.ipxe?mac=${macHyphens(mac)}`;
  const full = url + INVENTORY_QUERY;
  return new TextEncoder().encode(full).length <= MAX_BOOTFILE ? full : url;
}

/** Picks the bootfile for a request; undefined for architectures we have no loader for. */
export function chooseBootfile(p: DhcpPacket, boot: BootfileOptions): BootChoice | undefined {
  const arch = clientArchOf(p);
  const client = clientKind(p);
  if (client === "ipxe") return { bootfile: ipxeScriptUrl(boot.httpUrl, p), arch, client };
  // iPXE is not signed by Microsoft: under Secure Boot the firmware would refuse it. HTTP-boot
  // clients keep iPXE: the signed GRUB network image cannot read over HTTP (grub.ts).
  if (client === "pxe" && X86_64_UEFI.has(arch) && (boot.secureBoot || goesToDisk(p, boot))) {
    return { bootfile: SHIM_LOADER, arch, client };
  }
  const loader = loaderFor(arch, boot);
  if (loader === undefined) return undefined;
  if (client === "http") return { bootfile: `${boot.httpUrl}/tftp/${loader}`, arch, client };
  return { bootfile: loader, arch, client };
}
