/**
 * Domain names on the wire (RFC 1035 §3.1, §4.1.4): labels of at most 63 bytes, names of at
 * most 255, and compression pointers.
 *
 * Decoding follows a pointer only to an offset before the start of the labels it has read so
 * far (each jump goes strictly backwards), so a hostile packet can neither loop nor make the
 * decoder read a name twice; every read is bounds-checked and fails with
 * `MalformedPacketError`. Encoding points a repeated suffix at its first occurrence.
 *
 * Names are kept in presentation form without the final dot (`web-1.erf`; the root is ``),
 * with `.`, `\` and bytes outside printable ASCII escaped as in RFC 1035 §5.1 (`\.`, `\\`,
 * `\DDD`), so that any label the wire can carry survives a round trip.
 *
 * @module
 */
import { type ByteWriter, MalformedPacketError } from "../../net/bytes.ts";

/** The longest label, in bytes (RFC 1035 §2.3.4). */
export const MAX_LABEL = 63;
/** The longest name on the wire, length bytes and the root included (RFC 1035 §2.3.4). */
export const MAX_NAME = 255;
/** Pointers must fit in 14 bits: a suffix further into the message is written out again. */
const MAX_POINTER = 0x3fff;

/** One label's bytes in presentation form. */
function labelText(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    if (b === 0x2e || b === 0x5c) out += `\\${String.fromCharCode(b)}`;
    else if (b > 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${String(b).padStart(3, "0")}`;
  }
  return out;
}

/** The name at `offset` of `bytes`, and the offset right after it (after its first pointer). */
export function readName(bytes: Uint8Array, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let pos = offset;
  // Pointers may only go before everything read so far: no loops, no forward jumps.
  let floor = offset;
  let end = -1;
  let length = 1;
  // Backward pointers cannot loop, but a chain of them can be as long as the message: a query of
  // ten thousand names each pointing at the one before took 150 ms to read. A name needs at most
  // one pointer per label.
  let hops = 0;
  for (;;) {
    if (pos >= bytes.length) throw new MalformedPacketError("name runs past the end", pos);
    const len = bytes[pos]!;
    if (len === 0) {
      pos += 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= bytes.length) throw new MalformedPacketError("pointer cut short", pos);
      const target = ((len & 0x3f) << 8) | bytes[pos + 1]!;
      if (target >= floor) {
        throw new MalformedPacketError(`pointer to ${target} does not point backwards`, pos);
      }
      if (++hops > MAX_NAME / 2) {
        throw new MalformedPacketError("more compression pointers than a name has labels", pos);
      }
      if (end < 0) end = pos + 2;
      pos = floor = target;
      continue;
    }
    if (kind !== 0) {
      throw new MalformedPacketError(`label type 0x${kind.toString(16)} unsupported`, pos);
    }
    length += 1 + len;
    if (length > MAX_NAME) throw new MalformedPacketError(`name longer than ${MAX_NAME}`, pos);
    if (pos + 1 + len > bytes.length) throw new MalformedPacketError("label cut short", pos);
    labels.push(labelText(bytes.subarray(pos + 1, pos + 1 + len)));
    pos += 1 + len;
  }
  return { name: labels.join("."), end: end < 0 ? pos : end };
}

/** The name without its final dot, if it has one (an escaped `\.` is part of a label). */
function withoutRoot(name: string): string {
  if (!name.endsWith(".")) return name;
  let slashes = 0;
  for (let i = name.length - 2; i >= 0 && name[i] === "\\"; i--) slashes++;
  return slashes % 2 === 0 ? name.slice(0, -1) : name;
}

/** The labels of a name in presentation form; throws RangeError on a name the wire cannot carry. */
export function nameLabels(name: string): Uint8Array[] {
  const text = withoutRoot(name);
  if (text === "") return [];
  const labels: Uint8Array[] = [];
  let current: number[] = [];
  let length = 1;
  const close = () => {
    if (current.length === 0) throw new RangeError(`empty label in ${JSON.stringify(name)}`);
    if (current.length > MAX_LABEL) {
      throw new RangeError(`label longer than ${MAX_LABEL} bytes in ${JSON.stringify(name)}`);
    }
    length += 1 + current.length;
    labels.push(Uint8Array.from(current));
    current = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      close();
      continue;
    }
    if (c > 0x7f) throw new RangeError(`not ASCII: ${JSON.stringify(name)}`);
    if (c !== 0x5c) {
      current.push(c);
      continue;
    }
    const digits = /^\d{3}/.exec(text.slice(i + 1, i + 4));
    if (digits) {
      const v = Number(digits[0]);
      if (v > 255) throw new RangeError(`\\${digits[0]} is not a byte in ${JSON.stringify(name)}`);
      current.push(v);
      i += 3;
    } else if (i + 1 < text.length) {
      current.push(text.charCodeAt(++i));
    } else {
      throw new RangeError(`dangling \\ in ${JSON.stringify(name)}`);
    }
  }
  close();
  if (length > MAX_NAME) throw new RangeError(`name longer than ${MAX_NAME} bytes: ${name}`);
  return labels;
}

/** A name as names are compared: ASCII letters in lower case (RFC 4343), no final dot. */
export function nameKey(name: string): string {
  return withoutRoot(name).replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/**
 * Writes a name, pointing at an earlier copy of its longest known suffix. `table` maps
 * suffixes to where they were written; one table per message. Suffixes match in their exact
 * case, so every name reads back as it was written.
 */
export function writeName(w: ByteWriter, name: string, table: Map<string, number>): void {
  const labels = nameLabels(name);
  const texts = labels.map(labelText);
  for (let i = 0; i < labels.length; i++) {
    const suffix = texts.slice(i).join(".");
    const at = table.get(suffix);
    if (at !== undefined) {
      w.u16(0xc000 | at);
      return;
    }
    if (w.length <= MAX_POINTER) table.set(suffix, w.length);
    w.u8(labels[i]!.length).bytes(labels[i]!);
  }
  w.u8(0);
}
