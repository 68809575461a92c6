/**
 * The buffers of `recvmmsg(2)`: up to `slots` datagrams of one socket in one system call, each
 * with its sender's address and control messages. A DHCP server under load has many requests
 * queued at once; reading them one `recvmsg` each costs a system call apiece (~2 µs on a
 * virtual machine, as much as the rest of the read), and a read that finds nothing one more.
 *
 * Linux, LP64 only (x86-64 and arm64 share these layouts). Needs `--allow-ffi`.
 *
 * @module
 */
import { addressOf, controlMessages, libc, LINUX, type ReceivedMessage } from "./libc.ts";

/** `struct mmsghdr`: a `struct msghdr` (56 bytes) and `unsigned msg_len`, padded to 64. */
const MMSGHDR_SIZE = 64;
const IOVEC_SIZE = 16;

/** Options of {@linkcode ReceiveBatch}: how many datagrams a read takes and each one's buffers. */
export interface ReceiveBatchOptions {
  /** Datagrams one read takes at most. */
  slots: number;
  /** Bytes of each datagram kept; a longer one is cut and flagged `truncated`. */
  dataSize: number;
  nameSize: number;
  controlSize: number;
}

/**
 * Reusable `recvmmsg` buffers of one socket: one `struct mmsghdr`, iovec, data, address and
 * control buffer per slot, each pointer written once (each buffer is its own ArrayBuffer, whose
 * memory never moves). Untouched data pages cost no memory: the kernel maps them on first write.
 */
export class ReceiveBatch {
  readonly slots: number;
  #data: Uint8Array<ArrayBuffer>;
  #names: Uint8Array<ArrayBuffer>;
  #controls: Uint8Array<ArrayBuffer>;
  #msgs: Uint8Array<ArrayBuffer>;
  #msgView: DataView;
  /** Kept alive with the batch: the msghdrs point at them. */
  readonly #iovs: Uint8Array<ArrayBuffer>;
  #dataSize: number;
  #nameSize: number;
  #controlSize: number;

  constructor(options: ReceiveBatchOptions) {
    const { slots, dataSize, nameSize, controlSize } = options;
    if (!(Number.isInteger(slots) && slots >= 1 && slots <= 1024)) {
      throw new RangeError(`receive batch of ${slots} slots: 1 to 1024`);
    }
    this.slots = slots;
    this.#dataSize = dataSize;
    this.#nameSize = nameSize;
    this.#controlSize = controlSize;
    const fixed = (n: number) => new Uint8Array(new ArrayBuffer(n));
    this.#data = fixed(slots * dataSize);
    this.#names = fixed(slots * nameSize);
    this.#controls = fixed(slots * controlSize);
    this.#iovs = fixed(slots * IOVEC_SIZE);
    this.#msgs = fixed(slots * MMSGHDR_SIZE);
    const data = addressOf(this.#data);
    const names = addressOf(this.#names);
    const controls = addressOf(this.#controls);
    const iovs = addressOf(this.#iovs);
    const iov = new DataView(this.#iovs.buffer);
    const msg = this.#msgView = new DataView(this.#msgs.buffer);
    for (let i = 0; i < slots; i++) {
      const s = BigInt(i);
      // struct iovec { void *base; size_t len; }
      iov.setBigUint64(i * IOVEC_SIZE, data + s * BigInt(dataSize), true);
      iov.setBigUint64(i * IOVEC_SIZE + 8, BigInt(dataSize), true);
      // struct msghdr { name, namelen, iov, iovlen, control, controllen, flags } (LP64).
      const m = i * MMSGHDR_SIZE;
      msg.setBigUint64(m, names + s * BigInt(nameSize), true);
      msg.setBigUint64(m + 16, iovs + s * BigInt(IOVEC_SIZE), true);
      msg.setBigUint64(m + 24, 1n, true);
      msg.setBigUint64(m + 32, controls + s * BigInt(controlSize), true);
    }
  }

  /**
   * One `MSG_DONTWAIT` recvmmsg: how many datagrams it took (0 when none was queued or the call
   * failed). Their contents are {@linkcode message}(0 … n-1) until the next read.
   */
  read(fd: number): number {
    const msg = this.#msgView;
    // The kernel writes back the lengths and flags: reset them for this call.
    for (let i = 0; i < this.slots; i++) {
      const m = i * MMSGHDR_SIZE;
      msg.setUint32(m + 8, this.#nameSize, true);
      // msg_controllen is a size_t: both halves.
      msg.setUint32(m + 40, this.#controlSize, true);
      msg.setUint32(m + 44, 0, true);
      msg.setInt32(m + 48, 0, true);
    }
    const n = libc().recvmmsg(fd, this.#msgs, this.slots, LINUX.MSG_DONTWAIT, null);
    return n > 0 ? n : 0;
  }

  /** Datagram `i` of the last read: views into the batch's buffers, valid until the next read. */
  message(i: number): ReceivedMessage {
    const msg = this.#msgView;
    const m = i * MMSGHDR_SIZE;
    const length = msg.getUint32(m + 56, true);
    const data = i * this.#dataSize;
    const name = i * this.#nameSize;
    const control = i * this.#controlSize;
    return {
      data: this.#data.subarray(data, data + Math.min(length, this.#dataSize)),
      name: this.#names.subarray(name, name + Math.min(msg.getUint32(m + 8, true), this.#nameSize)),
      control: controlMessages(
        this.#controls.subarray(control, control + this.#controlSize),
        msg.getUint32(m + 40, true),
      ),
      truncated: (msg.getInt32(m + 48, true) & LINUX.MSG_TRUNC) !== 0,
    };
  }
}
