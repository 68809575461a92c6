/**
 * The libc plumbing shared by the sockets Deno cannot open itself: one `dlopen`, one symbol
 * table, errno and strerror, C strings, buffer addresses, `recvmsg` buffers and their control
 * messages, and a `poll(2)` wait that never blocks the event loop.
 *
 * Linux, LP64 only (x86-64 and arm64 share every constant and layout used here). Needs
 * `--allow-ffi`.
 *
 * @module
 */

/** Linux socket constants (asm-generic, identical on x86-64 and arm64). */
export const LINUX = {
  AF_INET: 2,
  AF_INET6: 10,
  AF_PACKET: 17,
  SOCK_DGRAM: 2,
  SOCK_RAW: 3,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_REUSEADDR: 2,
  SO_BROADCAST: 6,
  SO_BINDTODEVICE: 25,
  MSG_DONTWAIT: 0x40,
  MSG_TRUNC: 0x20,
  POLLIN: 1,
  EAGAIN: 11,
  ENOBUFS: 105,
  EADDRINUSE: 98,
} as const;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

/** The libc functions the sockets call. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let opened: Libc | undefined;

/** libc, opened on first use and kept for the life of the process. */
export function libc(): Libc {
  opened ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return opened;
}

/** This thread's errno; read it right after the failed call. */
export function errno(): number {
  const p = libc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

/** The C library's message for an errno value. */
export function strerror(code: number): string {
  const p = libc().strerror(code);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${code}`;
}

/** A NUL-terminated UTF-8 copy of `s`. */
export function cstring(s: string): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder().encode(s);
  const out = new Uint8Array(enc.length + 1);
  out.set(enc);
  return out;
}

/** The address of a buffer's first byte, for pointers stored inside C structs. */
export function addressOf(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** A C `int` (native byte order) as a buffer for setsockopt. */
export function cint(value: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array(new Int32Array([value]).buffer);
}

/** Interface index of a name; 0 when it does not exist (or the name is too long to be one). */
export function ifIndex(name: string): number {
  return name.length < 16 ? libc().if_nametoindex(cstring(name)) : 0;
}

/**
 * A small kernel file (`/proc/sys/…`, `/sys/class/net/…`) as text, or null if it cannot be
 * read. Through libc because Deno grants those paths only with `--allow-all`, while the FFI
 * permission these sockets need already allows it.
 */
export function readKernelFile(path: string, max = 4096): string | null {
  const c = libc();
  const O_RDONLY_CLOEXEC = 0o2000000;
  const fd = c.open(cstring(path), O_RDONLY_CLOEXEC);
  if (fd < 0) return null;
  try {
    const buf = new Uint8Array(max);
    const n = Number(c.read(fd, buf, BigInt(max)));
    return n < 0 ? null : new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    c.close(fd);
  }
}

/** One control message (`struct cmsghdr` and its data) of a received datagram. */
export interface ControlMessage {
  level: number;
  type: number;
  data: Uint8Array;
}

/** The control messages in the first `length` bytes of a `msg_control` buffer. */
export function controlMessages(control: Uint8Array, length: number): ControlMessage[] {
  const v = new DataView(control.buffer, control.byteOffset, control.byteLength);
  const out: ControlMessage[] = [];
  const end = Math.min(length, control.length);
  let off = 0;
  // struct cmsghdr { size_t len; int level; int type; } then data, each aligned to 8 bytes.
  while (off + 16 <= end) {
    const len = Number(v.getBigUint64(off, true));
    if (len < 16 || off + len > end) break;
    out.push({
      level: v.getInt32(off + 8, true),
      type: v.getInt32(off + 12, true),
      data: control.subarray(off + 16, off + len),
    });
    off += (len + 7) & ~7;
  }
  return out;
}

/** What one `recvmsg` returned: views into {@linkcode MessageReader}'s buffers, valid until the next read. */
export interface ReceivedMessage {
  data: Uint8Array;
  /** The sender's socket address (`msg_name`). */
  name: Uint8Array;
  control: ControlMessage[];
  /** The datagram was longer than the data buffer and was cut (`MSG_TRUNC`). */
  truncated: boolean;
}

/**
 * The buffers of `recvmsg(2)` for one socket: data, sender address, iovec, control and the
 * msghdr pointing at them, kept alive together as long as the reader.
 */
export class MessageReader {
  #data: Uint8Array<ArrayBuffer>;
  #name: Uint8Array<ArrayBuffer>;
  #iov = new Uint8Array(16);
  #control: Uint8Array<ArrayBuffer>;
  #msg = new Uint8Array(56);

  constructor(options: { dataSize: number; nameSize: number; controlSize: number }) {
    this.#data = new Uint8Array(options.dataSize);
    this.#name = new Uint8Array(options.nameSize);
    this.#control = new Uint8Array(options.controlSize);
    const iov = new DataView(this.#iov.buffer);
    iov.setBigUint64(0, addressOf(this.#data), true);
    iov.setBigUint64(8, BigInt(this.#data.length), true);
  }

  /** One `MSG_DONTWAIT` recvmsg; null when nothing is there (or the call failed). */
  read(fd: number): ReceivedMessage | null {
    // struct msghdr { name, namelen, iov, iovlen, control, controllen, flags } (LP64).
    const msg = new DataView(this.#msg.buffer);
    msg.setBigUint64(0, addressOf(this.#name), true);
    msg.setUint32(8, this.#name.length, true);
    msg.setBigUint64(16, addressOf(this.#iov), true);
    msg.setBigUint64(24, 1n, true);
    msg.setBigUint64(32, addressOf(this.#control), true);
    msg.setBigUint64(40, BigInt(this.#control.length), true);
    msg.setInt32(48, 0, true);
    const n = Number(libc().recvmsg(fd, this.#msg, LINUX.MSG_DONTWAIT));
    if (n < 0) return null;
    return {
      data: this.#data.subarray(0, Math.min(n, this.#data.length)),
      name: this.#name.subarray(0, Math.min(msg.getUint32(8, true), this.#name.length)),
      control: controlMessages(this.#control, Number(msg.getBigUint64(40, true))),
      truncated: (msg.getInt32(48, true) & LINUX.MSG_TRUNC) !== 0,
    };
  }
}

/**
 * Waits for a descriptor to become readable in `poll(2)` on a worker thread, so the event loop
 * never blocks; remembers the pending wait so the descriptor is closed only after it returned.
 */
export class ReadableWait {
  #pollfd = new Uint8Array(8);
  #pending: Promise<number> | null = null;

  constructor(fd: number) {
    const pfd = new DataView(this.#pollfd.buffer);
    pfd.setInt32(0, fd, true);
    pfd.setInt16(4, LINUX.POLLIN, true);
  }

  /** poll(2) for up to `ms`: resolves to its result (0 on timeout). */
  async wait(ms: number): Promise<number> {
    this.#pending = libc().poll(this.#pollfd, 1n, ms);
    try {
      return await this.#pending;
    } finally {
      this.#pending = null;
    }
  }

  /**
   * Calls `read` until it yields, waiting up to `pollMs` in poll(2) between tries (so a close
   * is noticed that quickly); null once `closed()`. Throws when the descriptor keeps polling
   * readable yet `read` yields nothing: a broken socket, not a quiet one.
   */
  async until<T>(
    read: () => T | null,
    closed: () => boolean,
    pollMs: number,
    name: string,
  ): Promise<T | null> {
    // errno cannot classify failures here: poll runs on a worker thread (errno is per thread),
    // and the runtime may overwrite it between two FFI calls. So a failed read just means
    // "nothing now", and only a descriptor that stays readable yet yields nothing is an error.
    let fruitless = 0;
    while (!closed()) {
      const got = read();
      if (got) return got;
      const n = await this.wait(pollMs);
      fruitless = n === 0 ? 0 : fruitless + 1;
      if (fruitless > 50) throw new Error(`${name} keeps failing (poll ${n})`);
    }
    return null;
  }

  /** Resolves once no poll is running on the descriptor (closing under it could let a new socket reuse the number while it is watched). */
  async idle(): Promise<void> {
    if (this.#pending) await this.#pending.catch(() => 0);
  }
}
