/**
 * The one machine UUID type (SMBIOS system UUID): parsed once where it enters (config.toml,
 * the query iPXE sends, DHCP option 97) and passed around in canonical form from then on.
 *
 * @module
 */
import { hexBytes } from "./bytes.ts";

/** A UUID in canonical form: 8-4-4-4-12 lower-case hex digits. */
export type Uuid = string & { readonly __brand: "Uuid" };

/**
 * Parses `12345678-9abc-def0-1122-334455667788` in any case, with or without hyphens or
 * braces; null when it is not a UUID, and for the nil UUID and all-ones, which firmware
 * reports when the machine has none (SMBIOS 3.x §7.2.1).
 *
 * @example
 * ```ts
 * import { parseUuid } from "./uuid.ts";
 * parseUuid("{12345678-9ABC-DEF0-1122-334455667788}"); // "12345678-9abc-def0-1122-334455667788"
 * parseUuid("00000000-0000-0000-0000-000000000000"); // null
 * ```
 */
export function parseUuid(text: string): Uuid | null {
  if (text.length > 38) return null;
  const bare = text.replace(/^\{(.*)\}$/, "$1");
  const hex = bare.toLowerCase().replaceAll("-", "");
  if (!/^[0-9a-f]{32}$/.test(hex)) return null;
  if (bare.includes("-") && !/^[^-]{8}-[^-]{4}-[^-]{4}-[^-]{4}-[^-]{12}$/.test(bare)) return null;
  if (/^0{32}$|^f{32}$/.test(hex)) return null;
  const m = /^(.{8})(.{4})(.{4})(.{4})(.{12})$/.exec(hex)!;
  return m.slice(1).join("-") as Uuid;
}

/**
 * The UUID of DHCP option 97 (RFC 4578 §2.3: type 0, then 16 bytes), or null. Firmware sends
 * the first three fields little-endian, as SMBIOS stores them: measured with iPXE and OVMF
 * (docs/FIRMWARE.md), so they are turned around to read as `${uuid}` and dmidecode print it.
 */
export function uuidFromPxe(option: Uint8Array): Uuid | null {
  if (option.length !== 17 || option[0] !== 0) return null;
  const b = option.subarray(1);
  const swapped = Uint8Array.of(
    b[3]!,
    b[2]!,
    b[1]!,
    b[0]!,
    b[5]!,
    b[4]!,
    b[7]!,
    b[6]!,
    ...b.subarray(8),
  );
  return parseUuid(hexBytes(swapped));
}
