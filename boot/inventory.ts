/**
 * How machines report what they are: iPXE expands settings in its script URL, and every DHCP
 * request says a little. Both are read here into an `InventoryReport` (state/inventory.ts
 * cleans and stores it).
 *
 * | query key | iPXE setting | DHCP (recorded apart) |
 * |---|---|---|
 * | `uuid` | `${uuid}` (SMBIOS system UUID) | option 97 → `dhcp_uuid` |
 * | `serial`, `manufacturer`, `product` | `${serial:uristring}` … (SMBIOS type 1) | option 93 → `dhcp_arch` |
 * | `buildarch`, `platform` | `${buildarch}` (`i386`, `x86_64`), `${platform}` (`pcbios`, `efi`) | options 60, 77 → `vendor_class`, `user_class` |
 *
 * iPXE expands `${…}` in the DHCP filename as in a script's `chain` (measured with Debian's
 * iPXE 1.0.0+git-20190125 in QEMU, BIOS and UEFI: docs/FIRMWARE.md), so the one request of
 * `/boot.ipxe?mac=…` carries all of it. `${uuid:uristring}` would print the UUID's 16 raw
 * bytes, so `uuid` is plain; that build's `uristring` leaves `&` alone, so `uuid` comes first,
 * where a serial holding `&uuid=` cannot stand in for it.
 *
 * @module
 */
import { DhcpOption } from "../protocols/dhcp/options.ts";
import type { DhcpPacket } from "../protocols/dhcp/packet.ts";
import { parseUuid, uuidFromPxe } from "../net/uuid.ts";
import { cleanReported, type InventoryReport } from "../state/inventory.ts";

/** The query keys iPXE fills in, and the setting each one expands. */
export const INVENTORY_SETTINGS: readonly (readonly [string, string])[] = [
  ["uuid", "${uuid}"],
  ["serial", "${serial:uristring}"],
  ["manufacturer", "${manufacturer:uristring}"],
  ["product", "${product:uristring}"],
  ["buildarch", "${buildarch}"],
  ["platform", "${platform}"],
];

/** What follows `?mac=…` in a script URL for iPXE: `&uuid=${uuid}&serial=…`. */
export const INVENTORY_QUERY = INVENTORY_SETTINGS.map(([k, v]) => `&${k}=${v}`).join("");

/**
 * Percent-decoding that never fails: bytes above 0x7f and bad escapes stay as they are for
 * `cleanReported` to turn into `?`. That iPXE build prints a byte above 0x7f sign-extended
 * (`%FFFFFFC3` for `%C3`, measured), which is taken back first.
 */
function decodeLoosely(text: string): string {
  return text.replace(/%(?:FF)+([89A-F][0-9A-F])/gi, "%$1")
    .replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/**
 * The report in a `/boot.ipxe` URL, the first value of each key (iPXE encodes spaces as `%20`,
 * so `+` is a plus); null when the URL carries none of the keys (an older chain, curl).
 */
export function inventoryFromUrl(url: string): InventoryReport | null {
  const query = url.includes("?") ? url.slice(url.indexOf("?") + 1).split("#")[0]! : "";
  const found = new Map<string, string>();
  for (const part of query.split("&")) {
    const eq = part.indexOf("=");
    const key = eq < 0 ? part : part.slice(0, eq);
    if (!INVENTORY_SETTINGS.some(([k]) => k === key) || found.has(key)) continue;
    found.set(key, decodeLoosely(eq < 0 ? "" : part.slice(eq + 1)));
  }
  if (found.size === 0) return null;
  const text = (k: string) => found.has(k) ? cleanReported(found.get(k)) : undefined;
  return {
    ...(found.has("uuid") ? { uuid: parseUuid(found.get("uuid")!) } : {}),
    ...Object.fromEntries(
      ["serial", "manufacturer", "product", "buildarch", "platform"].flatMap((k) =>
        found.has(k) ? [[k, text(k)]] : []
      ),
    ),
  };
}

/** What a DHCP request says of its sender: options 93, 97, 60 and 77, cleaned. */
export function inventoryFromDhcp(p: DhcpPacket): InventoryReport {
  const uuid = p.options.get(DhcpOption.ClientUuid);
  const classes = p.options.userClasses();
  return {
    dhcp_arch: p.options.clientArch()[0] ?? null,
    dhcp_uuid: uuid ? uuidFromPxe(uuid) : null,
    vendor_class: cleanReported(p.options.vendorClass()),
    user_class: classes.length ? cleanReported(classes.join(",")) : null,
  };
}
