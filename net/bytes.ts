/**
 * Bounds-checked reading and writing of network byte order, shared by the packet codecs.
 *
 * Every read checks the remaining length first and throws {@linkcode MalformedPacketError}
 * naming the offset and what was expected, so a hostile packet can never read past its end.
 *
 * @module
 */

/** Each byte value's two lower-case hex digits. */
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * `bytes` as lower-case hex, two digits a byte, `separator` between them: a MAC, a client
 * identifier. By table, not `toString(16)` and `padStart` per byte: it runs for every DHCP
 * request (a tenth of the time, measured).
 */
export function hexBytes(bytes: Uint8Array, separator = ""): string {
  if (bytes.length === 0) return "";
  let s = HEX[bytes[0]!]!;
  for (let i = 1; i < bytes.length; i++) s += separator + HEX[bytes[i]!];
  return s;
}

/** A packet that cannot be decoded; `offset` is where decoding stopped. */
export class MalformedPacketError extends SyntaxError {
  constructor(message: string, readonly offset: number) {
    super(`${message} (at byte ${offset})`);
    this.name = "MalformedPacketError";
  }
}

/** Sequential big-endian reader over a byte array. */
export class ByteReader {
  #view: DataView;
  #pos = 0;

  constructor(readonly bytes: Uint8Array) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Current offset from the start. */
  get offset(): number {
    return this.#pos;
  }

  /** Bytes left to read. */
  get remaining(): number {
    return this.bytes.length - this.#pos;
  }

  /** Throws unless `n` more bytes are there; `what` names the field in the error. */
  need(n: number, what: string): void {
    if (n > this.remaining) {
      throw new MalformedPacketError(
        `${what} needs ${n} bytes, only ${this.remaining} remain`,
        this.#pos,
      );
    }
  }

  u8(what = "byte"): number {
    this.need(1, what);
    return this.#view.getUint8(this.#pos++);
  }

  u16(what = "u16"): number {
    this.need(2, what);
    const v = this.#view.getUint16(this.#pos);
    this.#pos += 2;
    return v;
  }

  u32(what = "u32"): number {
    this.need(4, what);
    const v = this.#view.getUint32(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** A view (not a copy) of the next `n` bytes. */
  bytesOf(n: number, what = "bytes"): Uint8Array {
    this.need(n, what);
    const v = this.bytes.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }

  /** The rest of the packet. */
  rest(): Uint8Array {
    const v = this.bytes.subarray(this.#pos);
    this.#pos = this.bytes.length;
    return v;
  }

  /** Moves forward `n` bytes. */
  skip(n: number, what = "bytes"): void {
    this.need(n, what);
    this.#pos += n;
  }
}

/** Growable big-endian writer. */
export class ByteWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;

  constructor(initial = 512) {
    this.#buf = new Uint8Array(initial);
    this.#view = new DataView(this.#buf.buffer);
  }

  get length(): number {
    return this.#len;
  }

  #grow(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.#grow(1);
    this.#view.setUint8(this.#len++, v);
    return this;
  }

  u16(v: number): this {
    this.#grow(2);
    this.#view.setUint16(this.#len, v);
    this.#len += 2;
    return this;
  }

  u32(v: number): this {
    this.#grow(4);
    this.#view.setUint32(this.#len, v >>> 0);
    this.#len += 4;
    return this;
  }

  /** Writes `b`, or its bytes `start` to `end` (no view made for a short run: an option's value). */
  bytes(b: Uint8Array, start = 0, end = b.length): this {
    const n = end - start;
    if (
      !(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && n >= 0 && end <= b.length)
    ) {
      throw new RangeError(`bytes ${start} to ${end} of ${b.length}`);
    }
    this.#grow(n);
    if (n <= 16) {
      const buf = this.#buf, at = this.#len;
      for (let i = 0; i < n; i++) buf[at + i] = b[start + i]!;
    } else this.#buf.set(start === 0 && end === b.length ? b : b.subarray(start, end), this.#len);
    this.#len += n;
    return this;
  }

  /** Overwrites two bytes already written at `offset` (a length known only afterwards). */
  setU16(offset: number, v: number): this {
    if (offset < 0 || offset + 2 > this.#len) throw new RangeError(`no u16 written at ${offset}`);
    this.#view.setUint16(offset, v);
    return this;
  }

  /** Writes `n` zero bytes. */
  zeros(n: number): this {
    this.#grow(n);
    this.#buf.fill(0, this.#len, this.#len + n);
    this.#len += n;
    return this;
  }

  /**
   * What was written: the buffer itself when it was filled exactly (a writer made with the size
   * it would end at: no copy), else a copy. The writer is done with either way.
   */
  finish(): Uint8Array {
    return this.#len === this.#buf.length ? this.#buf : this.#buf.slice(0, this.#len);
  }
}
