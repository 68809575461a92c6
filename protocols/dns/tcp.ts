/**
 * DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): every message is preceded by its length
 * as two bytes, and one connection carries any number of them, in both directions.
 *
 * @module
 */
import { MalformedPacketError } from "../../net/bytes.ts";

/** The largest message a frame can carry. */
export const MAX_FRAME = 0xffff;

/** A message with its two-byte length in front. */
export function frame(message: Uint8Array): Uint8Array {
  if (message.length > MAX_FRAME) throw new RangeError(`message of ${message.length} bytes`);
  const out = new Uint8Array(2 + message.length);
  out[0] = message.length >> 8;
  out[1] = message.length & 0xff;
  out.set(message, 2);
  return out;
}

/** Closes a connection or socket that a timer or the peer may have closed already. */
export function closeQuietly(c: { close(): void }): void {
  try {
    c.close();
  } catch { /* closed already */ }
}

/** What frames are read from: a `Deno.Conn` fits. */
export interface FrameSource {
  read(p: Uint8Array): Promise<number | null>;
}

/** Reads the messages of one connection, one frame at a time. */
export class FrameReader {
  #buf = new Uint8Array(4096);
  #start = 0;
  #end = 0;

  constructor(readonly source: FrameSource) {}

  /** Bytes already read that no frame took yet. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  async #fill(): Promise<boolean> {
    if (this.#start > 0 && this.#end === this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buf.length) {
      const next = new Uint8Array(this.#buf.length * 2);
      next.set(this.#buf.subarray(this.#start, this.#end));
      this.#end -= this.#start;
      this.#start = 0;
      this.#buf = next;
    }
    const n = await this.source.read(this.#buf.subarray(this.#end));
    if (n === null || n === 0) return false;
    this.#end += n;
    return true;
  }

  /**
   * The next message; null when the peer closed the connection between two messages. A close
   * inside a frame throws `MalformedPacketError`.
   */
  async next(): Promise<Uint8Array | null> {
    while (this.buffered < 2) {
      if (!(await this.#fill())) {
        if (this.buffered === 0) return null;
        throw new MalformedPacketError("connection closed inside a length", this.buffered);
      }
    }
    const length = (this.#buf[this.#start]! << 8) | this.#buf[this.#start + 1]!;
    while (this.buffered < 2 + length) {
      if (!(await this.#fill())) {
        throw new MalformedPacketError(
          `connection closed inside a message of ${length} bytes`,
          this.buffered - 2,
        );
      }
    }
    const message = this.#buf.slice(this.#start + 2, this.#start + 2 + length);
    this.#start += 2 + length;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return message;
  }
}
