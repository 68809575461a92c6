/**
 * What kind of client sent a request: iPXE, PXE firmware, UEFI HTTP boot or a plain DHCP
 * client, and its architecture (RFC 4578 option 93, else the PXE vendor class).
 *
 * @module
 */
import { DhcpOption } from "./options.ts";
import type { DhcpPacket } from "./packet.ts";
import { ClientArch, parsePxeVendorClass } from "./pxe.ts";

/** How a client identified itself. */
export type ClientKind = "ipxe" | "pxe" | "http" | "other";

/** True when the client is iPXE already: user class "iPXE" (option 77) or option 175. */
export function isIpxe(p: DhcpPacket): boolean {
  return p.options.has(DhcpOption.IpxeEncap) || p.options.userClasses().includes("iPXE");
}

/** True for PXE firmware and iPXE (option 60 starts with "PXEClient"). */
export function isPxeClient(p: DhcpPacket): boolean {
  return p.options.vendorClass()?.startsWith("PXEClient") ?? false;
}

/** True for UEFI HTTP boot (option 60 starts with "HTTPClient"). */
export function isHttpClient(p: DhcpPacket): boolean {
  return p.options.vendorClass()?.startsWith("HTTPClient") ?? false;
}

/** iPXE before PXE: iPXE sends the PXEClient vendor class too. */
export function clientKind(p: DhcpPacket): ClientKind {
  if (isIpxe(p)) return "ipxe";
  if (isHttpClient(p)) return "http";
  if (isPxeClient(p)) return "pxe";
  return "other";
}

/** The client's architecture: option 93, else the "Arch:" field of option 60, else 0 (BIOS). */
export function clientArchOf(p: DhcpPacket): number {
  const listed = p.options.clientArch()[0];
  if (listed !== undefined) return listed;
  const vc = p.options.vendorClass();
  const fromVendor = parsePxeVendorClass(vc?.replace(/^HTTPClient/, "PXEClient"))?.arch;
  return fromVendor ?? ClientArch.X86Bios;
}
