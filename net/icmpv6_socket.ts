/**
 * A raw ICMPv6 socket bound to one interface, through FFI to libc (Deno has no raw sockets).
 *
 * `SO_BINDTODEVICE` keeps it to that interface, `ICMP6_FILTER` lets only the wanted message
 * types reach it, and every message arrives with its hop limit (`IPV6_RECVHOPLIMIT`, needed to
 * validate neighbour discovery) and ingress ifindex (`IPV6_RECVPKTINFO`, checked again here as
 * a second fence). What it sends leaves with hop limit 255, which receivers of neighbour
 * discovery insist on (RFC 4861 §6.1.2). The kernel strips the IPv6 header on receive and
 * computes the ICMPv6 checksum on send (RFC 3542 §3.1).
 *
 * Waiting happens in `poll(2)` inside a `nonblocking` FFI call, as in the DHCP socket. Needs
 * `--allow-ffi`, `--allow-sys` (the interface's addresses) and CAP_NET_RAW. Linux, LP64 only.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { silentLogger } from "../log.ts";
import {
  cint,
  type ControlMessage,
  cstring,
  errno,
  ifIndex,
  libc,
  LINUX,
  MessageReader,
  ReadableWait,
  readKernelFile,
  strerror,
} from "./libc.ts";
import { ipv6ToBytes, ipv6ToString, isLinkLocal } from "./ipv6.ts";

const IPPROTO_IPV6 = 41;
const IPPROTO_ICMPV6 = 58;
// <linux/in6.h> and <linux/icmpv6.h>.
const ICMP6_FILTER = 1;
const IPV6_UNICAST_HOPS = 16;
const IPV6_MULTICAST_IF = 17;
const IPV6_MULTICAST_HOPS = 18;
const IPV6_MULTICAST_LOOP = 19;
const IPV6_JOIN_GROUP = 20;
const IPV6_RECVPKTINFO = 49;
const IPV6_PKTINFO = 50;
const IPV6_RECVHOPLIMIT = 51;
const IPV6_HOPLIMIT = 52;

/** Largest message read; neighbour discovery fits an MTU, anything longer is cut. */
const RECV_SIZE = 65536;
/** How long one poll(2) waits, so that close() is noticed within this time. */
const POLL_MS = 200;
/** `struct sockaddr_in6`. */
const SOCKADDR_IN6 = 28;

/** An interface IPv6 runs on. */
export interface Ipv6Link {
  name: string;
  index: number;
}

/** The interface as an IPv6 link, or why it is none (missing, IPv6 disabled or absent). */
export function ipv6Link(name: string): { link: Ipv6Link } | { unavailable: string } {
  const index = ifIndex(name);
  if (index === 0) return { unavailable: `interface "${name}" does not exist` };
  const disabled = readKernelFile(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`);
  if (disabled === null) return { unavailable: "this kernel (or namespace) has no IPv6" };
  if (disabled.trim() !== "0") return { unavailable: `net.ipv6.conf.${name}.disable_ipv6 = 1` };
  return { link: { name, index } };
}

/**
 * The interface's MAC and link-local address as they are now. Both can change while we run:
 * a bridge takes a port's MAC when the port joins, and the kernel adds the link-local
 * address only once the link has carrier (null until then).
 */
export function linkAddresses(name: string): {
  mac: Uint8Array | null;
  linkLocal: Uint8Array | null;
} {
  const entries = Deno.networkInterfaces().filter((i) => i.name === name);
  let linkLocal: Uint8Array | null = null;
  for (const e of entries) {
    if (e.family !== "IPv6") continue;
    try {
      const a = ipv6ToBytes(e.address.split("%")[0]!);
      if (isLinkLocal(a)) linkLocal = a;
    } catch { /* not an address we can use */ }
  }
  // An interface with no address at all is not in networkInterfaces(); sysfs still knows it.
  const text = entries[0]?.mac ?? readKernelFile(`/sys/class/net/${name}/address`)?.trim();
  const mac = text && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(text)
    ? Uint8Array.from(text.split(":"), (h) => parseInt(h, 16))
    : null;
  return { mac, linkLocal };
}

/** One ICMPv6 message received on the interface. */
export interface Icmpv6Message {
  data: Uint8Array;
  source: Uint8Array;
  /** Hop limit of the IPv6 header it came in; null if the kernel did not say. */
  hopLimit: number | null;
  ifindex: number;
}

/** Options for {@linkcode Icmpv6Socket.open}. */
export interface Icmpv6SocketOptions {
  link: Ipv6Link;
  /** ICMPv6 types to receive; every other type is filtered out in the kernel. */
  types: readonly number[];
  /** Multicast groups to join on the interface (e.g. ff02::2 to hear router solicitations). */
  groups: readonly Uint8Array[];
  logger?: Logger;
}

function sockaddrIn6(address: Uint8Array, scope: number): Uint8Array<ArrayBuffer> {
  const sa = new Uint8Array(SOCKADDR_IN6);
  const v = new DataView(sa.buffer);
  v.setUint16(0, LINUX.AF_INET6, true);
  sa.set(address, 8);
  v.setUint32(24, scope, true);
  return sa;
}

/** `struct icmp6_filter`: a bit per type, set = blocked (Linux's sense, <linux/icmpv6.h>). */
function icmpv6Filter(types: readonly number[]): Uint8Array<ArrayBuffer> {
  const words = new Uint32Array(8).fill(0xffffffff);
  for (const t of types) words[t >> 5]! &= ~(1 << (t & 31));
  return new Uint8Array(words.buffer);
}

/** A raw ICMPv6 socket that receives from and sends through one interface only. */
export class Icmpv6Socket {
  #fd: number;
  #closed = false;
  #reader = new MessageReader({ dataSize: RECV_SIZE, nameSize: SOCKADDR_IN6, controlSize: 128 });
  #wait: ReadableWait;

  private constructor(fd: number, readonly link: Ipv6Link) {
    this.#fd = fd;
    this.#wait = new ReadableWait(fd);
  }

  /** Opens the socket; throws an Error naming the interface and the failing step. */
  static open(options: Icmpv6SocketOptions): Icmpv6Socket {
    const { link } = options;
    const c = libc();
    const { AF_INET6, SOCK_RAW, SOCK_NONBLOCK, SOCK_CLOEXEC, SOL_SOCKET, SO_BINDTODEVICE } = LINUX;
    const fd = c.socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6);
    if (fd < 0) throw new Error(`ICMPv6 socket on "${link.name}": ${strerror(errno())}`);
    const set = (level: number, name: number, value: Uint8Array<ArrayBuffer>, what: string) => {
      if (c.setsockopt(fd, level, name, value, value.length) < 0) {
        const e = errno();
        c.close(fd);
        throw new Error(`Cannot ${what} on "${link.name}": ${strerror(e)}`);
      }
    };
    set(SOL_SOCKET, SO_BINDTODEVICE, cstring(link.name), "bind the ICMPv6 socket to the device");
    set(IPPROTO_ICMPV6, ICMP6_FILTER, icmpv6Filter(options.types), "set ICMP6_FILTER");
    for (const group of options.groups) {
      const mreq = new Uint8Array(20);
      mreq.set(group, 0);
      new DataView(mreq.buffer).setUint32(16, link.index, true);
      set(IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq, `join ${ipv6ToString(group)}`);
    }
    set(IPPROTO_IPV6, IPV6_RECVHOPLIMIT, cint(1), "set IPV6_RECVHOPLIMIT");
    set(IPPROTO_IPV6, IPV6_RECVPKTINFO, cint(1), "set IPV6_RECVPKTINFO");
    set(IPPROTO_IPV6, IPV6_UNICAST_HOPS, cint(255), "set IPV6_UNICAST_HOPS");
    set(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, cint(255), "set IPV6_MULTICAST_HOPS");
    set(IPPROTO_IPV6, IPV6_MULTICAST_IF, cint(link.index), "set IPV6_MULTICAST_IF");
    // Our own multicasts need not come back to this host.
    set(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, cint(0), "set IPV6_MULTICAST_LOOP");
    (options.logger ?? silentLogger).debug("ndp", "ICMPv6 socket open", {
      interface: link.name,
      ifindex: link.index,
      types: options.types,
    });
    return new Icmpv6Socket(fd, link);
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Waits for the next message from our interface; resolves null once the socket is closed. */
  async receive(): Promise<Icmpv6Message | null> {
    return await this.#wait.until(
      () => this.#tryReceive(),
      () => this.#closed,
      POLL_MS,
      `ICMPv6 socket on "${this.link.name}"`,
    );
  }

  #tryReceive(): Icmpv6Message | null {
    for (;;) {
      if (this.#closed) return null;
      const got = this.#reader.read(this.#fd);
      if (!got) return null;
      if (got.name.length < 24) continue;
      const { hopLimit, ifindex } = ancillary(got.control);
      // SO_BINDTODEVICE already filters; this is the second fence.
      if (ifindex !== this.link.index) continue;
      return { data: got.data.slice(), source: got.name.slice(8, 24), hopLimit, ifindex };
    }
  }

  /** Sends one ICMPv6 message out of our interface (link-local and multicast destinations scoped to it). */
  send(data: Uint8Array, destination: Uint8Array): void {
    if (this.#closed) throw new Error(`ICMPv6 socket on "${this.link.name}" is closed`);
    const sa = sockaddrIn6(destination, this.link.index);
    const buf = new Uint8Array(data);
    const n = Number(libc().sendto(this.#fd, buf, BigInt(buf.length), 0, sa, sa.length));
    if (n < 0) {
      throw new Error(
        `sendto ${ipv6ToString(destination)} on "${this.link.name}": ${strerror(errno())}`,
      );
    }
  }

  /** Stops receiving and closes the descriptor once a pending poll has returned. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#wait.idle();
    libc().close(this.#fd);
  }
}

/** Hop limit (IPV6_HOPLIMIT) and ingress ifindex (IPV6_PKTINFO) from the control messages. */
function ancillary(control: ControlMessage[]): { hopLimit: number | null; ifindex: number } {
  let hopLimit: number | null = null, ifindex = -1;
  for (const m of control) {
    if (m.level !== IPPROTO_IPV6) continue;
    const v = new DataView(m.data.buffer, m.data.byteOffset, m.data.byteLength);
    if (m.type === IPV6_HOPLIMIT && m.data.length >= 4) hopLimit = v.getInt32(0, true);
    // struct in6_pktinfo { in6_addr ipi6_addr; int ipi6_ifindex; }
    if (m.type === IPV6_PKTINFO && m.data.length >= 20) ifindex = v.getInt32(16, true);
  }
  return { hopLimit, ifindex };
}
