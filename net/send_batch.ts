/**
 * The buffers of `sendmmsg(2)`: one `struct mmsghdr` and one `struct iovec` per datagram of a
 * batch to one address, kept from call to call. A window of TFTP blocks goes out in one call
 * instead of one FFI call and system call per block.
 *
 * Linux, LP64 only (x86-64 and arm64 share these layouts). Needs `--allow-ffi`.
 *
 * @module
 */
import { addressOf, libc } from "./libc.ts";

/** `struct mmsghdr`: a `struct msghdr` (56 bytes) and `unsigned msg_len`, padded to 64. */
const MMSGHDR_SIZE = 64;
const IOVEC_SIZE = 16;
/** The kernel takes at most UIO_MAXIOV (1024) messages per call. */
export const MAX_BATCH = 1024;
const TWO_32 = 2 ** 32;

/**
 * Start addresses of the ArrayBuffers packets live in. `Deno.UnsafePointer.of` costs ~0.7 µs a
 * call (more than the system call it feeds); a buffer's memory never moves, so it is asked
 * once per buffer and a packet's address is that plus its offset.
 */
const bases = new WeakMap<ArrayBufferLike, number>();

function addressNumber(p: Uint8Array): number {
  let base = bases.get(p.buffer);
  if (base === undefined) {
    base = Number(addressOf(new Uint8Array(p.buffer as ArrayBuffer)));
    bases.set(p.buffer, base);
  }
  return base + p.byteOffset;
}

/** At most this many datagrams in one UDP_SEGMENT send (the kernel's UDP_MAX_SEGMENTS). */
const MAX_SEGMENTS = 64;
/** At most this many payload bytes in one UDP_SEGMENT send (a UDP length is 16 bits). */
const MAX_SEGMENTED_BYTES = 65_000;
const SOL_UDP = 17;
const UDP_SEGMENT = 103;
/** `CMSG_SPACE(sizeof(uint16_t))`: the cmsghdr (16 bytes) and the segment size, aligned to 8. */
const SEGMENT_CMSG_SIZE = 24;

/** Reusable sendmmsg buffers for datagrams to the address in `name` (a sockaddr the owner rewrites in place). */
export class SendBatch {
  #capacity = 0;
  #msgs = new Uint8Array(0);
  #iovs = new Uint8Array(0);
  #cmsgs = new Uint8Array(0);
  #msgView = new DataView(this.#msgs.buffer);
  #iovView = new DataView(this.#iovs.buffer);
  #cmsgView = new DataView(this.#cmsgs.buffer);
  #iovBase = 0;
  #cmsgBase = 0;
  readonly #nameAddress: bigint;

  constructor(readonly name: Uint8Array<ArrayBuffer>) {
    this.#nameAddress = addressOf(name);
  }

  #grow(count: number): void {
    if (count <= this.#capacity) return;
    const capacity = Math.min(MAX_BATCH, Math.max(count, this.#capacity * 2, 16));
    // Each its own ArrayBuffer: its address, written into the msghdrs, never moves.
    this.#msgs = new Uint8Array(new ArrayBuffer(capacity * MMSGHDR_SIZE));
    this.#iovs = new Uint8Array(new ArrayBuffer(capacity * IOVEC_SIZE));
    this.#cmsgs = new Uint8Array(new ArrayBuffer(capacity * SEGMENT_CMSG_SIZE));
    this.#msgView = new DataView(this.#msgs.buffer);
    this.#iovView = new DataView(this.#iovs.buffer);
    this.#cmsgView = new DataView(this.#cmsgs.buffer);
    this.#iovBase = Number(addressOf(this.#iovs));
    this.#cmsgBase = Number(addressOf(this.#cmsgs));
    for (let i = 0; i < capacity; i++) {
      // struct msghdr { name, namelen, iov, iovlen, control, controllen, flags } (LP64): the
      // destination is the same for every message and every call.
      const m = i * MMSGHDR_SIZE;
      this.#msgView.setBigUint64(m, this.#nameAddress, true);
      this.#msgView.setUint32(m + 8, this.name.length, true);
      // struct cmsghdr { size_t len; int level; int type; } + the u16 segment size.
      const c = i * SEGMENT_CMSG_SIZE;
      this.#cmsgView.setBigUint64(c, 18n, true);
      this.#cmsgView.setInt32(c + 8, SOL_UDP, true);
      this.#cmsgView.setInt32(c + 12, UDP_SEGMENT, true);
    }
    this.#capacity = capacity;
  }

  /**
   * Sends `packets` in order in one `sendmmsg`: the number of packets the kernel took (it
   * stops at the first message that fails, e.g. a full queue), or -1 when not even the first
   * went (errno is set). With `segment`, runs of packets of one size (the last of a run may be
   * shorter) go as one message each that the kernel cuts into datagrams (`UDP_SEGMENT`, Linux
   * 4.18): one trip down the stack for up to 64 datagrams. Each datagram must then fit the
   * path's MTU unfragmented, or the call fails with EINVAL.
   */
  send(fd: number, packets: readonly Uint8Array[], segment = false): number {
    const count = Math.min(packets.length, MAX_BATCH);
    if (count === 0) return 0;
    this.#grow(count);
    const iov = this.#iovView;
    for (let i = 0; i < count; i++) {
      const p = packets[i]!;
      const at = addressNumber(p);
      // struct iovec { void *base; size_t len; }, written as 32-bit halves (no BigInt per packet).
      iov.setUint32(i * IOVEC_SIZE, at % TWO_32, true);
      iov.setUint32(i * IOVEC_SIZE + 4, Math.floor(at / TWO_32), true);
      iov.setUint32(i * IOVEC_SIZE + 8, p.length, true);
      iov.setUint32(i * IOVEC_SIZE + 12, 0, true);
    }
    const msg = this.#msgView;
    /** First packet of each message, and one past the last message's. */
    const starts: number[] = [];
    let messages = 0;
    for (let i = 0; i < count; messages++) {
      const size = packets[i]!.length;
      let end = i + 1;
      if (segment) {
        let bytes = size;
        while (
          end < count && end - i < MAX_SEGMENTS && packets[end - 1]!.length === size &&
          packets[end]!.length <= size && bytes + packets[end]!.length <= MAX_SEGMENTED_BYTES
        ) bytes += packets[end++]!.length;
      }
      const m = messages * MMSGHDR_SIZE;
      writeAddress(msg, m + 16, this.#iovBase + i * IOVEC_SIZE);
      msg.setUint32(m + 24, end - i, true);
      msg.setUint32(m + 28, 0, true);
      if (end - i > 1) {
        const c = messages * SEGMENT_CMSG_SIZE;
        this.#cmsgView.setUint16(c + 16, size, true);
        writeAddress(msg, m + 32, this.#cmsgBase + c);
        msg.setUint32(m + 40, SEGMENT_CMSG_SIZE, true);
      } else {
        writeAddress(msg, m + 32, 0);
        msg.setUint32(m + 40, 0, true);
      }
      msg.setUint32(m + 44, 0, true);
      starts.push(i);
      i = end;
    }
    starts.push(count);
    // The packets must stay reachable until the call returns: they are, as `packets` holds them.
    const sent = libc().sendmmsg(fd, this.#msgs, messages, 0);
    return sent < 0 ? sent : starts[sent]!;
  }
}

/** A pointer written as two 32-bit halves (little-endian): no BigInt per field. */
function writeAddress(v: DataView, offset: number, address: number): void {
  v.setUint32(offset, address % TWO_32, true);
  v.setUint32(offset + 4, Math.floor(address / TWO_32), true);
}
