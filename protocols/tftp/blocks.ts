/**
 * Cuts a byte stream into TFTP DATA packets of exactly `blksize` payload bytes (the last one
 * shorter, possibly empty), reading from the stream only when the next block is asked for —
 * the transfer asks as its window advances, so a slow client never makes the file pile up in
 * memory.
 *
 * Memory is fixed per transfer: the packets live in a ring of `window` buffers, one per block
 * the window can hold unacknowledged (block n in slot n mod window), reused for the whole file
 * and kept for retransmissions; a byte stream (a local file) is read in large pieces into one
 * reused buffer. No allocation per block: at 512-byte blocks that was a third of the CPU time.
 *
 * @module
 */
import { Opcode } from "./packet.ts";

/** Bytes asked of a byte stream per read: one read (a hop to Deno's I/O threads) per many blocks. */
const READ_SIZE = 128 * 1024;

/** Pulls DATA packets out of a stream; see the module doc. */
export class BlockSource {
  readonly #default: ReadableStreamDefaultReader<Uint8Array> | null = null;
  readonly #byob: ReadableStreamBYOBReader | null = null;
  /** The BYOB reader's buffer, handed back by each read (reading detaches it). */
  #readBuffer: Uint8Array<ArrayBuffer> | null = null;
  /** Bytes read but not yet cut into blocks. */
  #chunk: Uint8Array = new Uint8Array(0);
  #ended = false;
  /** The ring: full-size buffers, allocated as the window first reaches each slot. */
  readonly #slots: Uint8Array[] = [];
  /** Each slot's packet as last cut (shorter than the buffer for the final block). */
  readonly #packets: Uint8Array[] = [];
  /** Payload bytes a read already put into the next block's slot. */
  #carried = 0;
  /** Highest absolute block cut so far. */
  #read = 0;
  /** Absolute number of the final block, once cut. */
  #final: number | null = null;
  /** Payload bytes handed out so far. */
  bytes = 0;

  constructor(
    stream: ReadableStream<Uint8Array>,
    readonly blksize: number,
    /** Blocks kept for retransmission: the window size. */
    readonly window = 1,
  ) {
    try {
      // A byte stream (Deno's file streams) fills our buffer: large reads, no new chunk each.
      this.#byob = stream.getReader({ mode: "byob" });
      this.#readBuffer = new Uint8Array(new ArrayBuffer(Math.max(READ_SIZE, blksize)));
    } catch {
      this.#default = stream.getReader();
    }
  }

  /** Highest absolute block cut so far (0 before the first). */
  get read(): number {
    return this.#read;
  }

  /** Absolute number of the final block once it was cut, else null. */
  get final(): number | null {
    return this.#final;
  }

  /**
   * The DATA packet of absolute block `n` (wire number n mod 65536): cut from the stream when
   * it is the next new block, else the one kept from before (it must be one of the last
   * `window` blocks). A Promise only when the stream must be read first. The packet is a view
   * of the ring: valid until block n + window is cut.
   */
  packet(n: number): Uint8Array | Promise<Uint8Array> {
    if (n <= this.#read) {
      if (n <= this.#read - this.window || n < 1) {
        throw new RangeError(`block ${n} is no longer kept (read up to ${this.#read})`);
      }
      return this.#packets[n % this.window]!;
    }
    if (n !== this.#read + 1) throw new RangeError(`block ${n} asked before ${this.#read + 1}`);
    if (this.#final !== null) throw new RangeError(`block ${n} is after the final block`);
    if (this.#chunk.length >= this.blksize || this.#ended) return this.#cut(n);
    return this.#fill().then(() => this.#cut(n));
  }

  /** Reads until a whole block is buffered or the stream ended. */
  async #fill(): Promise<void> {
    const slot = this.#slot(this.#read + 1);
    // What is left of the last read goes to the front of the slot first: the read buffer is
    // handed to the stream whole and must be free.
    let have = this.#chunk.length;
    slot.set(this.#chunk, 4);
    this.#chunk = new Uint8Array(0);
    while (have < this.blksize && !this.#ended) {
      const got = await this.#readMore();
      if (got === null) {
        this.#ended = true;
        break;
      }
      const n = Math.min(this.blksize - have, got.length);
      slot.set(got.subarray(0, n), 4 + have);
      have += n;
      this.#chunk = got.subarray(n);
    }
    this.#carried = have;
  }

  /** One read of the stream: a view of new bytes, or null at its end. */
  async #readMore(): Promise<Uint8Array | null> {
    if (this.#byob) {
      const { value, done } = await this.#byob.read(this.#readBuffer!);
      if (done || !value) return null;
      this.#readBuffer = new Uint8Array(value.buffer);
      return value;
    }
    const { value, done } = await this.#default!.read();
    return done ? null : value;
  }

  /** Cuts block `n` from what is buffered (a whole block, or the rest at the end). */
  #cut(n: number): Uint8Array {
    const slot = this.#slot(n);
    let filled = this.#carried;
    this.#carried = 0;
    const take = Math.min(this.blksize - filled, this.#chunk.length);
    if (take > 0) {
      slot.set(this.#chunk.subarray(0, take), 4 + filled);
      this.#chunk = this.#chunk.subarray(take);
      filled += take;
    }
    slot[0] = 0;
    slot[1] = Opcode.DATA;
    slot[2] = (n >> 8) & 0xff;
    slot[3] = n & 0xff;
    const packet = filled === this.blksize ? slot : slot.subarray(0, 4 + filled);
    this.#packets[n % this.window] = packet;
    this.#read = n;
    this.bytes += filled;
    if (filled < this.blksize) this.#final = n;
    return packet;
  }

  #slot(n: number): Uint8Array {
    const i = n % this.window;
    return this.#slots[i] ??= new Uint8Array(4 + this.blksize);
  }

  /** Stops reading and releases the source (file handle, network fetch). */
  async cancel(reason?: unknown): Promise<void> {
    this.#ended = true;
    try {
      await (this.#byob ?? this.#default)!.cancel(reason);
    } catch { /* the source may already be closed or errored */ }
  }
}
