/**
 * Cuts a byte stream into TFTP DATA packets of exactly `blksize` payload bytes (the last one
 * shorter, possibly empty), reading from the stream only when the next block is asked for —
 * the transfer asks as its window advances, so a slow client never makes the file pile up in
 * memory.
 *
 * @module
 */
import { Opcode } from "./packet.ts";

/** Pulls DATA packets out of a stream; see the module doc. */
export class BlockSource {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #ended = false;
  /** Payload bytes handed out so far. */
  bytes = 0;

  constructor(stream: ReadableStream<Uint8Array>, readonly blksize: number) {
    this.#reader = stream.getReader();
  }

  /**
   * The next DATA packet, with `wire` as block number; `final` when its payload is shorter
   * than blksize (the transfer's last block; RFC 1350 §6).
   */
  async next(wire: number): Promise<{ packet: Uint8Array; final: boolean }> {
    const packet = new Uint8Array(4 + this.blksize);
    packet[1] = Opcode.DATA;
    packet[2] = (wire >> 8) & 0xff;
    packet[3] = wire & 0xff;
    let filled = 0;
    while (filled < this.blksize) {
      if (this.#chunk.length === 0) {
        if (this.#ended) break;
        const { value, done } = await this.#reader.read();
        if (done) {
          this.#ended = true;
          break;
        }
        this.#chunk = value;
        continue;
      }
      const n = Math.min(this.blksize - filled, this.#chunk.length);
      packet.set(this.#chunk.subarray(0, n), 4 + filled);
      this.#chunk = this.#chunk.subarray(n);
      filled += n;
    }
    this.bytes += filled;
    return {
      packet: filled === this.blksize ? packet : packet.subarray(0, 4 + filled),
      final: filled < this.blksize,
    };
  }

  /** Stops reading and releases the source (file handle, network fetch). */
  async cancel(reason?: unknown): Promise<void> {
    this.#ended = true;
    try {
      await this.#reader.cancel(reason);
    } catch { /* the source may already be closed or errored */ }
  }
}
