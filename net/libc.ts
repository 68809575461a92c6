/**
 * The libc plumbing shared by the sockets Deno cannot open itself: one `dlopen`, one symbol
 * table, errno and strerror, C strings, buffer addresses, `recvmsg` buffers and their control
 * messages, a `poll(2)` wait that never blocks the event loop, and the kernel files, directories
 * and descriptors (`/proc`) Deno shows only with `--allow-all`.
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
  SO_RCVBUF: 8,
  SO_RCVBUFFORCE: 33,
  MSG_DONTWAIT: 0x40,
  MSG_TRUNC: 0x20,
  POLLIN: 1,
  EAGAIN: 11,
  ENOBUFS: 105,
  EMSGSIZE: 90,
  SHUT_RDWR: 2,
  EADDRINUSE: 98,
} as const;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  // Exported only since glibc 2.33; without it an fd's inode is read through readlink.
  fstat: { parameters: ["i32", "buffer"], result: "i32", optional: true },
  opendir: { parameters: ["buffer"], result: "pointer" },
  readdir: { parameters: ["pointer"], result: "pointer" },
  rewinddir: { parameters: ["pointer"], result: "void" },
  closedir: { parameters: ["pointer"], result: "i32" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
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
 * Takes the exclusive lock (`flock`) of the existing file `path` without waiting: the descriptor
 * that holds it (the lock lasts while it is open, and goes with the process however it ends), or
 * null when another open file holds the lock. Throws on anything else.
 */
export function tryLockFile(path: string): number | null {
  const O_RDWR_CLOEXEC = 0o2 | 0o2000000;
  const LOCK_EX_NB = 2 | 4;
  const fd = libc().open(cstring(path), O_RDWR_CLOEXEC);
  if (fd < 0) throw new Error(`${path}: ${strerror(errno())}`);
  if (libc().flock(fd, LOCK_EX_NB) === 0) return fd;
  const code = errno();
  libc().close(fd);
  if (code === LINUX.EAGAIN) return null;
  throw new Error(`${path}: lock: ${strerror(code)}`);
}

/**
 * A kernel file (`/proc/sys/…`, `/sys/class/net/…`) as text, or null if it cannot be read; at
 * most `max` bytes. Through libc because Deno grants those paths only with `--allow-all`, while
 * the FFI permission these sockets need already allows it.
 */
export function readKernelFile(path: string, max = 4096): string | null {
  const file = KernelFile.open(path);
  if (!file) return null;
  try {
    return file.read(max);
  } finally {
    file.close();
  }
}

const decoder = new TextDecoder();

/**
 * A kernel file kept open to be read again and again (`/proc/net/tcp` every second): each read
 * starts from the top, where the kernel writes the table afresh. Open, it needs no new
 * descriptor, so it can still be read when the process has none left to give.
 */
export class KernelFile {
  #fd: number;
  /** Kept from read to read, grown to the largest file seen: no new buffer every second. */
  #buf = new Uint8Array(65536);

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Opens `path` for reading, or null if it cannot be. */
  static open(path: string): KernelFile | null {
    const O_RDONLY_CLOEXEC = 0o2000000;
    const fd = libc().open(cstring(path), O_RDONLY_CLOEXEC);
    return fd < 0 ? null : new KernelFile(fd);
  }

  /** The whole file as text (at most `max` bytes), or null when reading fails. */
  read(max: number): string | null {
    const c = libc();
    const SEEK_SET = 0;
    if (this.#fd < 0 || c.lseek(this.#fd, 0n, SEEK_SET) < 0n) return null;
    // /proc hands out its tables a page or so per read: read until end of file.
    let used = 0;
    while (used < max) {
      if (used === this.#buf.length) {
        const bigger = new Uint8Array(Math.min(max, this.#buf.length * 2));
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
      const room = Math.min(this.#buf.length, max) - used;
      const n = Number(c.read(this.#fd, this.#buf.subarray(used), BigInt(room)));
      if (n < 0) return null;
      if (n === 0) break;
      used += n;
    }
    return decoder.decode(this.#buf.subarray(0, used));
  }

  /** Closes it; reads return null after. */
  close(): void {
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
  }
}

/** A directory kept open to be listed again and again (`/proc/self/fd`), like {@linkcode KernelFile}. */
export class Directory {
  #dir: Deno.PointerObject | null;

  private constructor(dir: Deno.PointerObject) {
    this.#dir = dir;
  }

  /** Opens `path`, or null if it cannot be. */
  static open(path: string): Directory | null {
    const dir = libc().opendir(cstring(path));
    return dir === null ? null : new Directory(dir);
  }

  /** The names in it now (without `.` and `..`); empty once closed. */
  names(): string[] {
    const c = libc();
    if (this.#dir === null) return [];
    c.rewinddir(this.#dir);
    const names: string[] = [];
    // struct dirent (LP64 Linux): d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
    for (let e = c.readdir(this.#dir); e !== null; e = c.readdir(this.#dir)) {
      const name = Deno.UnsafePointerView.getCString(e, 19);
      if (name !== "." && name !== "..") names.push(name);
    }
    return names;
  }

  /** Closes it. */
  close(): void {
    if (this.#dir !== null) libc().closedir(this.#dir);
    this.#dir = null;
  }
}

/** Where a symbolic link points (`/proc/self/fd/3` → `socket:[1234]`), or null. */
export function readLink(path: string): string | null {
  const buf = new Uint8Array(256);
  const n = Number(libc().readlink(cstring(path), buf, BigInt(buf.length)));
  return n < 0 ? null : new TextDecoder().decode(buf.subarray(0, n));
}

/** The names in a directory (without `.` and `..`), or null if it cannot be opened. */
export function listDirectory(path: string): string[] | null {
  const dir = Directory.open(path);
  if (!dir) return null;
  try {
    return dir.names();
  } finally {
    dir.close();
  }
}

/** Inode number and file type bits of an open descriptor (`fstat(2)`), or null. */
export function fdInode(fd: number): { inode: number; socket: boolean } | null {
  const c = libc();
  if (c.fstat) {
    const st = new Uint8Array(256);
    if (c.fstat(fd, st) !== 0) return null;
    const v = new DataView(st.buffer);
    // struct stat: st_ino at 8 on both; st_mode at 24 on x86-64, at 16 on arm64 (asm-generic).
    const mode = v.getUint32(Deno.build.arch === "x86_64" ? 24 : 16, true);
    const S_IFMT = 0o170000, S_IFSOCK = 0o140000;
    return { inode: Number(v.getBigUint64(8, true)), socket: (mode & S_IFMT) === S_IFSOCK };
  }
  const m = /^socket:\[(\d+)\]$/.exec(readLink(`/proc/self/fd/${fd}`) ?? "");
  return m ? { inode: Number(m[1]), socket: true } : null;
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
  #control: Uint8Array<ArrayBuffer>;
  #msg: Uint8Array<ArrayBuffer>;
  #msgView: DataView;
  /** Kept alive with the reader: the msghdr points at it. */
  readonly #iov: Uint8Array<ArrayBuffer>;

  constructor(options: { dataSize: number; nameSize: number; controlSize: number }) {
    // Each from its own `new ArrayBuffer`: those never move, so the msghdr built once below
    // stays valid (a small `new Uint8Array(n)` may live on V8's heap, which compacts).
    const fixed = (n: number) => new Uint8Array(new ArrayBuffer(n));
    this.#data = fixed(options.dataSize);
    this.#name = fixed(options.nameSize);
    this.#control = fixed(options.controlSize);
    this.#iov = fixed(16);
    this.#msg = fixed(56);
    const iov = new DataView(this.#iov.buffer);
    iov.setBigUint64(0, addressOf(this.#data), true);
    iov.setBigUint64(8, BigInt(this.#data.length), true);
    // struct msghdr { name, namelen, iov, iovlen, control, controllen, flags } (LP64). The
    // pointers are set once: asking for a buffer's address costs more than the recvmsg itself.
    const msg = this.#msgView = new DataView(this.#msg.buffer);
    msg.setBigUint64(0, addressOf(this.#name), true);
    msg.setBigUint64(16, addressOf(this.#iov), true);
    msg.setBigUint64(24, 1n, true);
    msg.setBigUint64(32, addressOf(this.#control), true);
  }

  /** One `MSG_DONTWAIT` recvmsg; null when nothing is there (or the call failed). */
  read(fd: number): ReceivedMessage | null {
    const msg = this.#msgView;
    // The kernel writes back the lengths and flags: reset them for this call.
    msg.setUint32(8, this.#name.length, true);
    msg.setUint32(40, this.#control.length, true);
    msg.setUint32(44, 0, true);
    msg.setInt32(48, 0, true);
    const n = Number(libc().recvmsg(fd, this.#msg, LINUX.MSG_DONTWAIT));
    if (n < 0) return null;
    return {
      data: this.#data.subarray(0, Math.min(n, this.#data.length)),
      name: this.#name.subarray(0, Math.min(msg.getUint32(8, true), this.#name.length)),
      control: controlMessages(this.#control, msg.getUint32(40, true)),
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
