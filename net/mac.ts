/**
 * The one MAC address type: parsed once where it enters (a DHCP packet, a URL, config.toml,
 * a command line) and passed around in canonical form from then on.
 *
 * @module
 */
import { hexBytes } from "./bytes.ts";

/** A MAC address in canonical form: six lower-case hex pairs joined by colons. */
export type Mac = string & { readonly __brand: "Mac" };

/**
 * Parses `52:54:00:12:34:56`, `52-54-00-12-34-56` (iPXE's `:hexhyp`), `5254.0012.3456`
 * (Cisco) or bare hex, any case; null when it is not a MAC address.
 *
 * @example
 * ```ts
 * import { parseMac } from "./mac.ts";
 * parseMac("52-54-00-AB-CD-EF"); // "52:54:00:ab:cd:ef"
 * parseMac("52:54:00"); // null
 * ```
 */
export function parseMac(text: string): Mac | null {
  if (text.length > 17) return null;
  if (text.length === 17) {
    // The spellings of every request (`52-54-00-…` from iPXE, `52:54:00:…`), without a regular
    // expression: five ':' or five '-' at every third place, hex digits between.
    const sep = text.charCodeAt(2);
    let ok = sep === 58 || sep === 45;
    for (let i = 0; ok && i < 17; i++) {
      const c = text.charCodeAt(i);
      ok = i % 3 === 2
        ? c === sep
        : (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
    }
    if (ok) return (sep === 58 ? text : text.replaceAll("-", ":")).toLowerCase() as Mac;
  }
  const hex = text.toLowerCase().replace(/[-:.]/g, "");
  if (!/^[0-9a-f]{12}$/.test(hex)) return null;
  return hex.match(/../g)!.join(":") as Mac;
}

/** Like {@linkcode parseMac}, but throws a RangeError naming the text. */
export function mustParseMac(text: string): Mac {
  const mac = parseMac(text);
  if (mac === null) throw new RangeError(`not a MAC address: ${JSON.stringify(text)}`);
  return mac;
}

/** A MAC from its 6 bytes (DHCP `chaddr`, an NDP link-layer option). */
export function macFromBytes(b: Uint8Array): Mac {
  if (b.length !== 6) throw new RangeError(`a MAC address has 6 bytes, got ${b.length}`);
  return hexBytes(b, ":") as Mac;
}

/** The 6 bytes of a MAC. */
export function macToBytes(mac: Mac): Uint8Array {
  return Uint8Array.from(mac.split(":"), (h) => parseInt(h, 16));
}

/** The MAC as a URL segment, `52-54-00-12-34-56`: the form iPXE's `:hexhyp` prints. */
export function macHyphens(mac: Mac): string {
  return mac.replaceAll(":", "-");
}
