/**
 * A UDP socket bound to one network interface, through FFI to libc.
 *
 * `Deno.listenDatagram` can neither bind to a device nor tell on which interface a broadcast
 * arrived; a DHCP server on a multi-homed host must do both or it answers on the wrong network.
 * This socket sets `SO_BINDTODEVICE` (the kernel then only delivers datagrams from that
 * interface and sends replies, broadcasts included, out of it) and `IP_PKTINFO` (every datagram
 * carries its ingress ifindex, checked again here as a second fence).
 *
 * The event loop never blocks: waiting happens in `poll(2)` with a short timeout inside a
 * `nonblocking` FFI call (a worker thread), the read itself is a `MSG_DONTWAIT` `recvmsg`.
 * Needs `--allow-ffi` and `--allow-sys` (to read the interface's addresses). Linux, LP64 only.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { silentLogger } from "../../log.ts";
import { ipv4ToBytes, ipv4ToString } from "../bytes.ts";

// Linux constants (asm-generic, identical on x86-64 and arm64).
const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_BROADCAST = 6;
const SO_BINDTODEVICE = 25;
const IPPROTO_IP = 0;
const IP_PKTINFO = 8;
const MSG_DONTWAIT = 0x40;
const POLLIN = 1;
const EADDRINUSE = 98;

/** Largest datagram read; DHCP messages are far smaller, anything longer is cut and flagged. */
const _RECV_SIZE = 65536;
/** How long one poll(2) waits, so that close() is noticed within this time. */
const _POLL_MS = 200;

const _SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  close: { parameters: ["i32"], result: "i32" },
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type _Libc = Deno.DynamicLibrary<typeof _SYMBOLS>["symbols"];
let _libc: _Libc | undefined;

function _lib(): _Libc {
  _libc ??= Deno.dlopen("libc.so.6", _SYMBOLS).symbols;
  return _libc;
}

function _errno(): number {
  const p = _lib().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
}

function _strerror(code: number): string {
  const p = _lib().strerror(code);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${code}`;
}

function _cstring(s: string): Uint8Array<ArrayBuffer> {
  const enc = new TextEncoder().encode(s);
  const out = new Uint8Array(enc.length + 1);
  out.set(enc);
  return out;
}

function _sockaddrIn(address: string, port: number): Uint8Array<ArrayBuffer> {
  const sa = new Uint8Array(16);
  const v = new DataView(sa.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  sa.set(ipv4ToBytes(address), 4);
  return sa;
}

function _ptr(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** The source of a received datagram. */
export interface Peer {
  address: string;
  port: number;
}

/** One received datagram and where it came from. */
export interface Datagram {
  data: Uint8Array;
  from: Peer;
  /** Interface index the kernel reported (IP_PKTINFO). */
  ifindex: number;
  /** Destination address of the datagram (IP_PKTINFO ipi_addr): a broadcast or ours. */
  to: string;
}

/** Options for {@linkcode InterfaceUdpSocket.open}. */
export interface InterfaceSocketOptions {
  /** Interface name, e.g. "eth1". Must exist and have an IPv4 address. */
  interface: string;
  /** UDP port to bind on 0.0.0.0 (67 for a DHCP server, 4011 for PXE, 68 to watch servers). */
  port: number;
  logger?: Logger;
}

/** What the interface looks like, read when the socket opens. */
export interface InterfaceInfo {
  name: string;
  index: number;
  /** First IPv4 address of the interface. */
  address: string;
  netmask: string;
  mac: string;
}

/** Looks up an interface; throws an Error naming it when it is missing or has no IPv4. */
export function interfaceInfo(name: string): InterfaceInfo {
  // networkInterfaces() lists only interfaces with an address, so existence comes from the
  // kernel's index.
  const index = name.length < 16 ? _lib().if_nametoindex(_cstring(name)) : 0;
  if (index === 0) throw new Error(`Interface "${name}" does not exist`);
  const v4 = Deno.networkInterfaces().find((i) => i.name === name && i.family === "IPv4");
  if (!v4) throw new Error(`Interface "${name}" has no IPv4 address`);
  return { name, index, address: v4.address, netmask: v4.netmask, mac: v4.mac };
}

/** A UDP socket that receives from and sends through one interface only. */
export class InterfaceUdpSocket {
  #fd: number;
  #closed = false;
  #polling: Promise<number> | null = null;
  #log: Logger;
  // Buffers for recvmsg, kept alive as long as the socket (their addresses sit in #msg).
  #data = new Uint8Array(_RECV_SIZE);
  #name = new Uint8Array(16);
  #iov = new Uint8Array(16);
  #control = new Uint8Array(64);
  #msg = new Uint8Array(56);
  #pollfd = new Uint8Array(8);

  private constructor(
    fd: number,
    readonly info: InterfaceInfo,
    readonly port: number,
    log: Logger,
  ) {
    this.#fd = fd;
    this.#log = log;
    const iov = new DataView(this.#iov.buffer);
    iov.setBigUint64(0, _ptr(this.#data), true);
    iov.setBigUint64(8, BigInt(this.#data.length), true);
    const pfd = new DataView(this.#pollfd.buffer);
    pfd.setInt32(0, fd, true);
    pfd.setInt16(4, POLLIN, true);
  }

  /** Opens the socket on `0.0.0.0:port`, bound to the interface; throws a clear Error if it can't. */
  static open(options: InterfaceSocketOptions): InterfaceUdpSocket {
    const info = interfaceInfo(options.interface);
    const libc = _lib();
    const fd = libc.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`socket(): ${_strerror(_errno())}`);
    const fail = (what: string): never => {
      const e = _errno();
      libc.close(fd);
      const hint = e === EADDRINUSE ? " (another DHCP server running?)" : "";
      throw new Error(
        `Cannot ${what} on interface "${options.interface}" port ${options.port}: ${
          _strerror(e)
        }${hint}`,
      );
    };
    const one = new Uint8Array(new Int32Array([1]).buffer);
    if (libc.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) < 0) fail("set SO_REUSEADDR");
    if (libc.setsockopt(fd, SOL_SOCKET, SO_BROADCAST, one, 4) < 0) fail("set SO_BROADCAST");
    const dev = _cstring(options.interface);
    if (libc.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, dev.length) < 0) {
      fail("bind to device");
    }
    if (libc.setsockopt(fd, IPPROTO_IP, IP_PKTINFO, one, 4) < 0) fail("set IP_PKTINFO");
    const sa = _sockaddrIn("0.0.0.0", options.port);
    if (libc.bind(fd, sa, sa.length) < 0) fail("bind");
    const log = options.logger ?? silentLogger;
    log.debug("socket", "listening", {
      interface: info.name,
      ifindex: info.index,
      address: info.address,
      port: options.port,
    });
    return new InterfaceUdpSocket(fd, info, options.port, log);
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Waits for the next datagram from our interface; resolves null once the socket is closed. */
  async receive(): Promise<Datagram | null> {
    // errno cannot classify failures here: poll runs on a worker thread (errno is per thread),
    // and the runtime may overwrite it between two FFI calls. So a failed recvmsg just means
    // "nothing now", and only a socket that stays readable yet yields nothing is an error.
    let fruitless = 0;
    while (!this.#closed) {
      const got = this.#tryReceive();
      if (got) return got;
      this.#polling = _lib().poll(this.#pollfd, 1n, _POLL_MS);
      const n = await this.#polling;
      this.#polling = null;
      fruitless = n === 0 ? 0 : fruitless + 1;
      if (fruitless > 50) {
        throw new Error(
          `Socket on "${this.info.name}" port ${this.port} keeps failing (poll ${n})`,
        );
      }
    }
    return null;
  }

  #tryReceive(): Datagram | null {
    for (;;) {
      if (this.#closed) return null;
      const msg = new DataView(this.#msg.buffer);
      msg.setBigUint64(0, _ptr(this.#name), true);
      msg.setUint32(8, this.#name.length, true);
      msg.setBigUint64(16, _ptr(this.#iov), true);
      msg.setBigUint64(24, 1n, true);
      msg.setBigUint64(32, _ptr(this.#control), true);
      msg.setBigUint64(40, BigInt(this.#control.length), true);
      msg.setInt32(48, 0, true);
      const n = Number(_lib().recvmsg(this.#fd, this.#msg, MSG_DONTWAIT));
      if (n < 0) return null;
      const name = new DataView(this.#name.buffer);
      const from = {
        address: ipv4ToString(this.#name.subarray(4, 8)),
        port: name.getUint16(2, false),
      };
      const pkt = _pktinfo(this.#control, Number(msg.getBigUint64(40, true)));
      const ifindex = pkt?.ifindex ?? -1;
      // SO_BINDTODEVICE already filters; this is the second fence against a datagram that
      // reached the socket before the option took effect.
      if (ifindex !== this.info.index) {
        this.#log.debug("socket", "dropped datagram from another interface", {
          interface: this.info.name,
          ifindex,
          from: from.address,
        });
        continue;
      }
      return { data: this.#data.slice(0, n), from, ifindex, to: pkt?.to ?? "0.0.0.0" };
    }
  }

  /** Sends one datagram out of our interface (broadcasts too). */
  send(data: Uint8Array, address: string, port: number): void {
    if (this.#closed) throw new Error(`Socket on "${this.info.name}" is closed`);
    const sa = _sockaddrIn(address, port);
    const buf = new Uint8Array(data);
    const n = Number(_lib().sendto(this.#fd, buf, BigInt(buf.length), 0, sa, sa.length));
    if (n < 0) {
      throw new Error(`sendto ${address}:${port} on "${this.info.name}": ${_strerror(_errno())}`);
    }
  }

  /** Stops receiving and closes the descriptor once a pending poll has returned. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // The worker thread may still be inside poll() on this fd; closing under it could let a
    // new socket reuse the number while it is watched.
    if (this.#polling) await this.#polling.catch(() => 0);
    _lib().close(this.#fd);
  }
}

/** Finds IP_PKTINFO in a control buffer: ifindex and destination address. */
function _pktinfo(control: Uint8Array, length: number): { ifindex: number; to: string } | null {
  const v = new DataView(control.buffer, control.byteOffset, control.byteLength);
  let off = 0;
  // struct cmsghdr { size_t len; int level; int type; } then data, each aligned to 8 bytes.
  while (off + 16 <= length) {
    const len = Number(v.getBigUint64(off, true));
    if (len < 16 || off + len > length) return null;
    const level = v.getInt32(off + 8, true);
    const type = v.getInt32(off + 12, true);
    if (level === IPPROTO_IP && type === IP_PKTINFO && len >= 16 + 12) {
      // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
      return {
        ifindex: v.getInt32(off + 16, true),
        to: ipv4ToString(control.subarray(off + 24, off + 28)),
      };
    }
    off += (len + 7) & ~7;
  }
  return null;
}
