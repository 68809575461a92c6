/**
 * A UDP socket bound to one network interface, through FFI to libc.
 *
 * `Deno.listenDatagram` can neither bind to a device nor tell on which interface a broadcast
 * arrived; a DHCP server on a multi-homed host must do both or it answers on the wrong network.
 * This socket sets `SO_BINDTODEVICE` (the kernel then only delivers datagrams from that
 * interface and sends replies, broadcasts included, out of it) and `IP_PKTINFO` (every datagram
 * carries its ingress ifindex, checked again here as a second fence).
 *
 * The event loop never blocks: every socket waits in the one shared `epoll_wait(2)` of
 * `epoll.ts` (a worker thread), the read itself is a `MSG_DONTWAIT` `recvmsg` (a burst one
 * `recvmmsg`, `receive_batch.ts`), a send a nonblocking `sendto`, a batch one `sendmmsg`
 * (`send_batch.ts`). Needs `--allow-ffi` and `--allow-sys` (to read the interface's
 * addresses). Linux, LP64 only.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { silentLogger } from "../log.ts";
import { type Readiness, watchReadable } from "./epoll.ts";
import { BindError, SendError } from "./errors.ts";
import { interfaceMtu } from "./interface_mtu.ts";
import { SendBatch } from "./send_batch.ts";
import { ipv4ToBytes, ipv4ToString } from "./ipv4.ts";
import {
  cint,
  type ControlMessage,
  cstring,
  errno,
  ifIndex,
  libc,
  LINUX,
  MessageReader,
  type ReceivedMessage,
  strerror,
} from "./libc.ts";
import { ReceiveBatch } from "./receive_batch.ts";

const { AF_INET, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_CLOEXEC, SOL_SOCKET } = LINUX;
const { SO_REUSEADDR, SO_BROADCAST, SO_BINDTODEVICE, EADDRINUSE, EAGAIN, ENOBUFS } = LINUX;
const { SO_RCVBUF, SO_RCVBUFFORCE } = LINUX;
const IPPROTO_IP = 0;
const IP_PKTINFO = 8;
/** IPv4 and UDP headers: a datagram of n bytes fills an n + 28 byte IP packet. */
const HEADERS = 28;
/** What a kernel or device without UDP segmentation answers (EIO: no checksum offload). */
const NO_SEGMENTATION = new Set([5, 22, 92, 95]); // EIO, EINVAL, ENOPROTOOPT, EOPNOTSUPP

/** Default largest datagram read; anything longer is cut and flagged `truncated`. */
const RECV_SIZE = 65536;

function sockaddrIn(address: string, port: number): Uint8Array<ArrayBuffer> {
  return writeSockaddrIn(new Uint8Array(16), address, port);
}

function writeSockaddrIn(
  sa: Uint8Array<ArrayBuffer>,
  address: string,
  port: number,
): Uint8Array<ArrayBuffer> {
  const v = new DataView(sa.buffer, sa.byteOffset, sa.byteLength);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  sa.set(ipv4ToBytes(address), 4);
  return sa;
}

/** Who else would hold a port, for the hint of a bind error. */
function serviceOf(port: number): string {
  return port === 53 ? "DNS server" : "DHCP server";
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
  /** Longer than the socket's `receiveSize`: `data` is only its beginning. */
  truncated: boolean;
}

/** Options for {@linkcode InterfaceUdpSocket.open}. */
export interface InterfaceSocketOptions {
  /** Interface name, e.g. "eth1". Must exist and have an IPv4 address. */
  interface: string;
  /** UDP port to bind (67 for a DHCP server, 4011 for PXE, 68 to watch servers, 53 for DNS); 0: ephemeral. */
  port: number;
  /**
   * Address to bind; default 0.0.0.0 (DHCP must hear broadcasts). A server that is asked only
   * at its own address (DNS, TFTP) binds that one, so it never answers from another.
   */
  address?: string;
  /** The interface as {@linkcode interfaceInfo} found it, to skip the lookup per socket. */
  info?: InterfaceInfo;
  /** Largest datagram read whole; default 64 KiB. Each socket keeps a buffer this size. */
  receiveSize?: number;
  /**
   * Bytes of datagrams the kernel may queue for this socket while the server is busy (SO_RCVBUF;
   * default: the kernel's, `net.core.rmem_default`, ~208 KiB on Linux). Asked with
   * SO_RCVBUFFORCE first, which root or CAP_NET_ADMIN may; else SO_RCVBUF, which
   * `net.core.rmem_max` caps. Never fails the open: {@linkcode InterfaceUdpSocket.receiveBuffer}
   * says what the kernel granted.
   */
  receiveBuffer?: number;
  /** SO_REUSEADDR for a fixed port, default true; without it a second server on the port fails to bind. */
  reuseAddress?: boolean;
  /** Names the likely culprit when the port is taken; default by port (a DNS or DHCP server). */
  service?: string;
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
  /** The interface's MTU when it could be read. */
  mtu?: number;
}

/** Looks up an interface; throws an Error naming it when it is missing or has no IPv4. */
export function interfaceInfo(name: string): InterfaceInfo {
  // networkInterfaces() lists only interfaces with an address, so existence comes from the
  // kernel's index.
  const index = ifIndex(name);
  if (index === 0) throw new Error(`Interface "${name}" does not exist`);
  const v4 = Deno.networkInterfaces().find((i) => i.name === name && i.family === "IPv4");
  if (!v4) throw new Error(`Interface "${name}" has no IPv4 address`);
  const mtu = interfaceMtu(name) ?? undefined;
  return { name, index, address: v4.address, netmask: v4.netmask, mac: v4.mac, mtu };
}

/** A UDP socket that receives from and sends through one interface only. */
export class InterfaceUdpSocket {
  #fd: number;
  #closed = false;
  #log: Logger;
  #reader: MessageReader;
  #wait: Readiness;
  /**
   * The destination's sockaddr, rewritten only when it changes (a transfer sends every block to
   * one peer); its own ArrayBuffer, so that its address, which the batch keeps, never moves.
   */
  #to = new Uint8Array(new ArrayBuffer(16));
  #toAddress = "";
  #toPort = -1;
  #receiveBatch: ReceiveBatch | null = null;
  #receiveSize: number;
  #sendBatch: SendBatch | null = null;
  /** Whether batches may go as UDP_SEGMENT sends; off for good once the kernel refused one. */
  #segment = true;

  private constructor(
    fd: number,
    readonly info: InterfaceInfo,
    /** The bound port (the kernel's choice when 0 was asked for). */
    readonly port: number,
    receiveSize: number,
    log: Logger,
  ) {
    this.#fd = fd;
    this.#log = log;
    this.#receiveSize = receiveSize;
    this.#reader = new MessageReader({ dataSize: receiveSize, nameSize: 16, controlSize: 64 });
    this.#wait = watchReadable(fd, `Socket on "${info.name}" port ${port}`);
  }

  /** Opens the socket on `address:port` (default 0.0.0.0), bound to the interface; throws a clear Error if it can't. */
  static open(options: InterfaceSocketOptions): InterfaceUdpSocket {
    const info = options.info ?? interfaceInfo(options.interface);
    const address = options.address ?? "0.0.0.0";
    const hint = ` (${options.service ?? `another ${serviceOf(options.port)}`} running?)`;
    const c = libc();
    const fd = c.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`socket(): ${strerror(errno())}`);
    const fail = (what: string): never => {
      const e = errno();
      c.close(fd);
      throw new Error(
        `Cannot ${what} on interface "${options.interface}" port ${options.port}: ${strerror(e)}${
          e === EADDRINUSE ? hint : ""
        }`,
      );
    };
    const one = cint(1);
    // Never for port 0: with SO_REUSEADDR on both, the kernel may hand out a port another such
    // socket holds, and the two then share its datagrams.
    if ((options.reuseAddress ?? true) && options.port !== 0) {
      if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) < 0) fail("set SO_REUSEADDR");
    }
    if (c.setsockopt(fd, SOL_SOCKET, SO_BROADCAST, one, 4) < 0) fail("set SO_BROADCAST");
    const dev = cstring(options.interface);
    if (c.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, dev.length) < 0) {
      fail("bind to device");
    }
    if (c.setsockopt(fd, IPPROTO_IP, IP_PKTINFO, one, 4) < 0) fail("set IP_PKTINFO");
    if (options.receiveBuffer !== undefined) {
      const size = cint(options.receiveBuffer);
      if (c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4) < 0) {
        c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4);
      }
    }
    const sa = sockaddrIn(address, options.port);
    if (c.bind(fd, sa, sa.length) < 0) {
      const e = errno();
      c.close(fd);
      throw new BindError(
        `udp ${address}:${options.port} on ${options.interface}`,
        `${strerror(e)}${e === EADDRINUSE ? hint : ""}`,
      );
    }
    let port = options.port;
    if (port === 0) {
      const bound = new Uint8Array(16);
      const len = cint(bound.length);
      if (c.getsockname(fd, bound, len) < 0) fail("read the bound port");
      port = new DataView(bound.buffer).getUint16(2, false);
    }
    const log = options.logger ?? silentLogger;
    log.debug("socket", "listening", {
      interface: info.name,
      ifindex: info.index,
      address,
      port,
    });
    try {
      return new InterfaceUdpSocket(fd, info, port, options.receiveSize ?? RECV_SIZE, log);
    } catch (e) {
      c.close(fd);
      throw e;
    }
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * The socket's receive buffer in bytes as the kernel counts it (SO_RCVBUF), its bookkeeping
   * per datagram included: twice the size set by `receiveBuffer` (or by the cap), the default
   * (`net.core.rmem_default`) as is. NaN once closed.
   */
  get receiveBuffer(): number {
    const value = cint(0);
    const len = cint(4);
    if (libc().getsockopt(this.#fd, SOL_SOCKET, SO_RCVBUF, value, len) < 0) return NaN;
    return new Int32Array(value.buffer)[0]!;
  }

  /**
   * Waits for the next datagram from our interface; resolves null once the socket is closed.
   * With `spinUs`, first tries again and again for that long before it sleeps (see
   * `Readiness.until`): for an answer due within microseconds.
   */
  async receive(options: { spinUs?: number } = {}): Promise<Datagram | null> {
    return await this.#wait.until(
      () => this.#tryReceive(),
      () => this.#closed,
      options.spinUs ?? 0,
    );
  }

  /**
   * Waits like {@linkcode receive}, then takes every datagram queued by then, up to `max`, in
   * one `recvmmsg`: a burst of requests is read in one system call and handled in one turn of
   * the event loop. Resolves null once the socket is closed.
   */
  async receiveMany(max: number, options: { spinUs?: number } = {}): Promise<Datagram[] | null> {
    if (!this.#receiveBatch || this.#receiveBatch.slots !== max) {
      this.#receiveBatch = new ReceiveBatch({
        slots: max,
        dataSize: this.#receiveSize,
        nameSize: 16,
        controlSize: 64,
      });
    }
    const batch = this.#receiveBatch;
    return await this.#wait.until(
      () => this.#tryReceiveMany(batch),
      () => this.#closed,
      options.spinUs ?? 0,
    );
  }

  #tryReceive(): Datagram | null {
    for (;;) {
      if (this.#closed) return null;
      const got = this.#reader.read(this.#fd);
      if (!got) return null;
      const d = this.#datagram(got);
      if (d) return d;
    }
  }

  #tryReceiveMany(batch: ReceiveBatch): Datagram[] | null {
    for (;;) {
      if (this.#closed) return null;
      const n = batch.read(this.#fd);
      if (n === 0) return null;
      const out: Datagram[] = [];
      for (let i = 0; i < n; i++) {
        const d = this.#datagram(batch.message(i));
        if (d) out.push(d);
      }
      // The reader's turn-taking counts datagrams, not reads (see `Readiness.until`).
      this.#wait.took(n - 1);
      if (out.length) return out;
    }
  }

  /** A received message as a Datagram (its data copied); null for one from another interface. */
  #datagram(got: ReceivedMessage): Datagram | null {
    const name = new DataView(got.name.buffer, got.name.byteOffset, got.name.byteLength);
    const from = {
      address: got.name.length >= 8 ? ipv4ToString(got.name.subarray(4, 8)) : "0.0.0.0",
      port: got.name.length >= 4 ? name.getUint16(2, false) : 0,
    };
    const pkt = pktinfo(got.control);
    const ifindex = pkt?.ifindex ?? -1;
    // SO_BINDTODEVICE already filters; this is the second fence against a datagram that
    // reached the socket before the option took effect.
    if (ifindex !== this.info.index) {
      this.#log.debug("socket", "dropped datagram from another interface", {
        interface: this.info.name,
        ifindex,
        from: from.address,
      });
      return null;
    }
    return {
      data: got.data.slice(),
      from,
      ifindex,
      to: pkt?.to ?? "0.0.0.0",
      truncated: got.truncated,
    };
  }

  /** Sends one datagram out of our interface (broadcasts too); throws when it cannot. */
  send(data: Uint8Array, address: string, port: number): void {
    if (!this.trySend(data, address, port)) {
      throw new Error(`sendto ${address}:${port} on "${this.info.name}": send queue full`);
    }
  }

  /**
   * Like {@linkcode send}, but returns false, having sent nothing, when the socket's send queue
   * is full (EAGAIN, ENOBUFS), so that a bulk sender can wait and try again.
   */
  trySend(data: Uint8Array, address: string, port: number): boolean {
    if (this.#closed) throw new Error(`Socket on "${this.info.name}" is closed`);
    const sa = this.#destination(address, port);
    // Sent from where it lies; only a view of a SharedArrayBuffer is copied first.
    const buf = data.buffer instanceof ArrayBuffer
      ? data as Uint8Array<ArrayBuffer>
      : new Uint8Array(data);
    const n = Number(libc().sendto(this.#fd, buf, BigInt(buf.length), 0, sa, sa.length));
    if (n < 0) {
      const e = errno();
      if (e === EAGAIN || e === ENOBUFS) return false;
      throw new Error(`sendto ${address}:${port} on "${this.info.name}": ${strerror(e)}`);
    }
    return true;
  }

  /**
   * Sends `packets` in order to one destination in a single `sendmmsg`: how many went (fewer
   * when the send queue filled up: send the rest later); throws {@linkcode SendError} on any
   * other failure, about the first datagram not sent.
   */
  trySendMany(packets: readonly Uint8Array[], address: string, port: number): number {
    if (this.#closed) throw new Error(`Socket on "${this.info.name}" is closed`);
    this.#destination(address, port);
    this.#sendBatch ??= new SendBatch(this.#to);
    const segment = this.#segment && packets.length > 1 && this.#fitsMtu(packets);
    let n = this.#sendBatch.send(this.#fd, packets, segment);
    let e = n < 0 ? errno() : 0;
    if (n < 0 && segment && NO_SEGMENTATION.has(e)) {
      n = this.#sendBatch.send(this.#fd, packets);
      const again = n < 0 ? errno() : 0;
      // Off for good only when the same datagrams went one by one: a destination the kernel
      // refuses either way (port 0: EINVAL too) says nothing about segmentation.
      if (n >= 0 || again !== e) {
        this.#segment = false;
        this.#log.debug("socket", "no UDP segmentation here, sending datagrams one by one", {
          interface: this.info.name,
          error: strerror(e),
        });
      }
      e = again;
    }
    if (n < 0) {
      if (e === EAGAIN || e === ENOBUFS) return 0;
      throw new SendError(`sendmmsg ${address}:${port} on "${this.info.name}": ${strerror(e)}`, e);
    }
    return n;
  }

  /** Whether batches of equal datagrams still go as UDP_SEGMENT sends (off once the kernel refused one). */
  get segmenting(): boolean {
    return this.#segment;
  }

  /** Whether every packet fits one IP packet of the interface (segments are never fragmented). */
  #fitsMtu(packets: readonly Uint8Array[]): boolean {
    const mtu = this.info.mtu;
    if (mtu === undefined) return false;
    for (const p of packets) if (p.length + HEADERS > mtu) return false;
    return true;
  }

  /** The sockaddr of `address:port`, rewritten in place only when the destination changed. */
  #destination(address: string, port: number): Uint8Array<ArrayBuffer> {
    if (address !== this.#toAddress || port !== this.#toPort) {
      this.#toAddress = ""; // a bad address throws half-way: nothing may trust the buffer then
      writeSockaddrIn(this.#to, address, port);
      this.#toAddress = address;
      this.#toPort = port;
    }
    return this.#to;
  }

  /** Stops receiving and closes the descriptor. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    // Out of the epoll set first: the descriptor's number may be reused by the next socket.
    this.#wait.remove();
    libc().close(this.#fd);
    return Promise.resolve();
  }
}

/** Finds IP_PKTINFO among the control messages: ifindex and destination address. */
function pktinfo(control: ControlMessage[]): { ifindex: number; to: string } | null {
  for (const m of control) {
    // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
    if (m.level === IPPROTO_IP && m.type === IP_PKTINFO && m.data.length >= 12) {
      const v = new DataView(m.data.buffer, m.data.byteOffset, m.data.byteLength);
      return { ifindex: v.getInt32(0, true), to: ipv4ToString(m.data.subarray(8, 12)) };
    }
  }
  return null;
}
