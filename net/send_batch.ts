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
const MAX_BATCH = 1024;
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

/** Reusable sendmmsg buffers for datagrams to the address in `name` (a sockaddr the owner rewrites in place). */
export class SendBatch {
  #capacity = 0;
  #msgs = new Uint8Array(0);
  #iovs = new Uint8Array(0);
  #msgView = new DataView(this.#msgs.buffer);
  #iovView = new DataView(this.#iovs.buffer);
  readonly #nameAddress: bigint;

  constructor(readonly name: Uint8Array<ArrayBuffer>) {
    this.#nameAddress = addressOf(name);
  }

  #grow(count: number): void {
    if (count <= this.#capacity) return;
    const capacity = Math.min(MAX_BATCH, Math.max(count, this.#capacity * 2, 16));
    this.#msgs = new Uint8Array(capacity * MMSGHDR_SIZE);
    this.#iovs = new Uint8Array(capacity * IOVEC_SIZE);
    this.#msgView = new DataView(this.#msgs.buffer);
    this.#iovView = new DataView(this.#iovs.buffer);
    const iovBase = addressOf(this.#iovs);
    // struct msghdr { name, namelen, iov, iovlen, control, controllen, flags } (LP64): all but
    // the iovec's contents are the same for every call.
    for (let i = 0; i < capacity; i++) {
      const m = i * MMSGHDR_SIZE;
      this.#msgView.setBigUint64(m, this.#nameAddress, true);
      this.#msgView.setUint32(m + 8, this.name.length, true);
      this.#msgView.setBigUint64(m + 16, iovBase + BigInt(i * IOVEC_SIZE), true);
      this.#msgView.setBigUint64(m + 24, 1n, true);
    }
    this.#capacity = capacity;
  }

  /**
   * Sends `packets` in order in one `sendmmsg`: the number the kernel took (it stops at the
   * first that fails, e.g. a full queue), or -1 when not even the first went (errno is set).
   */
  send(fd: number, packets: readonly Uint8Array[]): number {
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
    // The packets must stay reachable until the call returns: they are, as `packets` holds them.
    return libc().sendmmsg(fd, this.#msgs, count, 0);
  }
}
