/**
 * Domain name lists in DHCP options: RFC 1035 §3.1 names with RFC 1035 §4.1.4 compression, as
 * the domain search option (119) carries them (RFC 3397 §2).
 *
 * @module
 */

const encoder = new TextEncoder();

/** RFC 1035 §2.3.4 limits: a label 63 bytes, a name 255 bytes on the wire. */
const MAX_LABEL = 63;
const MAX_NAME = 255;
/** A compression pointer holds a 14-bit offset (RFC 1035 §4.1.4). */
const MAX_POINTER = 0x3fff;
/** Letters, digits, hyphens (RFC 1123), and underscores, which service names use. */
const LABEL = /^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/;

/** The labels of `name` ("lab.example.org." → ["lab", "example", "org"]); RangeError when invalid. */
export function domainLabels(name: string): string[] {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  if (trimmed === "") throw new RangeError(`${JSON.stringify(name)} is not a domain name`);
  const labels = trimmed.split(".");
  for (const label of labels) {
    if (label.length > MAX_LABEL || !LABEL.test(label)) {
      throw new RangeError(
        `${JSON.stringify(name)} is not a domain name (label ${
          JSON.stringify(label)
        }: letters, digits, hyphens, at most 63)`,
      );
    }
  }
  const wire = labels.reduce((n, l) => n + 1 + l.length, 1);
  if (wire > MAX_NAME) {
    throw new RangeError(`${JSON.stringify(name)} is ${wire} bytes encoded, at most 255`);
  }
  return labels;
}

/**
 * Encodes names one after another, each suffix already written replaced by a pointer to it
 * (RFC 3397 §2: offsets count from the start of the joined option data, so the value may be
 * split into several options afterwards, RFC 3396).
 */
export function encodeDomainList(names: readonly string[]): Uint8Array {
  const out: number[] = [];
  // Suffixes are compared case-insensitively (RFC 1035 §2.3.3), written as given.
  const seen = new Map<string, number>();
  for (const name of names) {
    const labels = domainLabels(name);
    let i = 0;
    for (; i < labels.length; i++) {
      const suffix = labels.slice(i).join(".").toLowerCase();
      const at = seen.get(suffix);
      if (at !== undefined) {
        out.push(0xc0 | (at >> 8), at & 0xff);
        break;
      }
      if (out.length <= MAX_POINTER) seen.set(suffix, out.length);
      const bytes = encoder.encode(labels[i]!);
      out.push(bytes.length, ...bytes);
    }
    if (i === labels.length) out.push(0);
  }
  return Uint8Array.from(out);
}
