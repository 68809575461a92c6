/**
 * IPv6 addresses as text and bytes (RFC 4291 §2.2 in, RFC 5952 canonical form out), and the
 * few address classes neighbour discovery cares about.
 *
 * @module
 */

/** ff02::1, all nodes on the link. */
export const ALL_NODES: Uint8Array = ipv6ToBytes("ff02::1");
/** ff02::2, all routers on the link: where router solicitations go. */
export const ALL_ROUTERS: Uint8Array = ipv6ToBytes("ff02::2");

/** 16 bytes from IPv6 text (`fe80::1`, `::`, `::ffff:10.0.0.1`); throws RangeError on anything else. */
export function ipv6ToBytes(text: string): Uint8Array {
  const bad = () => new RangeError(`Not an IPv6 address: ${JSON.stringify(text)}`);
  let s = text;
  const out = new Uint8Array(16);
  // A trailing dotted quad fills the last 32 bits (RFC 4291 §2.2, form 3).
  const quad = /^(.*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  let tail: number[] = [];
  if (quad) {
    const bytes = quad.slice(2).map(Number);
    if (bytes.some((b) => b > 255)) throw bad();
    tail = [(bytes[0]! << 8) | bytes[1]!, (bytes[2]! << 8) | bytes[3]!];
    s = quad[1]!.endsWith("::") ? quad[1]! : quad[1]!.slice(0, -1);
  }
  const halves = s.split("::");
  if (halves.length > 2) throw bad();
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const words = [...head, ...rest].map((g) => {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad();
    return parseInt(g, 16);
  });
  const total = words.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) throw bad();
  const all = halves.length === 2
    ? [
      ...head.map((_, i) => words[i]!),
      ...new Array(8 - total).fill(0),
      ...rest.map((_, i) => words[head.length + i]!),
      ...tail,
    ]
    : [...words, ...tail];
  all.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** RFC 5952 text of 16 bytes: lower case, the longest run of two or more zero groups as `::`. */
export function ipv6ToString(b: Uint8Array): string {
  if (b.length !== 16) throw new RangeError(`An IPv6 address has 16 bytes, got ${b.length}`);
  const words = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (bestLen < 2) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

/** Whether the address is `::`. */
export function isUnspecified(b: Uint8Array): boolean {
  return b.length === 16 && b.every((x) => x === 0);
}

/** Whether the address is link-local unicast, fe80::/10. */
export function isLinkLocal(b: Uint8Array): boolean {
  return b.length === 16 && b[0] === 0xfe && (b[1]! & 0xc0) === 0x80;
}

/** Whether two addresses are the same 16 bytes. */
export function sameAddress(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * An address as the kernel's tables, Deno and Node give it, in one spelling:
 * IPv4 dotted (also for an IPv4-mapped `::ffff:a.b.c.d`), IPv6 in RFC 5952 form. Text that
 * is not an address is returned as it is.
 */
export function canonicalAddress(address: string): string {
  if (!address.includes(":")) return address;
  // How a dual-stack listener's IPv4 clients come, on every request: no parse for those.
  if (address.startsWith("::ffff:") && address.lastIndexOf(":") === 6 && address.includes(".")) {
    return address.slice(7);
  }
  let bytes: Uint8Array;
  try {
    bytes = ipv6ToBytes(address);
  } catch {
    return address;
  }
  return mappedIpv4(bytes) ?? ipv6ToString(bytes);
}

/** The IPv4 address inside `::ffff:a.b.c.d`, else null. */
export function mappedIpv4(b: Uint8Array): string | null {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return null;
  if (b[10] !== 0xff || b[11] !== 0xff) return null;
  return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
}
