/**
 * The TCP connections of a local port as the kernel lists them (`/proc/net/tcp`,
 * `/proc/net/tcp6`), and shutting one of this process's connections down by its socket inode
 * (found in `/proc/self/fd`), for servers whose runtime hides the sockets (Deno.serve).
 *
 * `shutdown(2)`, never `close(2)`: the descriptor belongs to the runtime, which sees end of
 * file, drops the connection and closes the descriptor itself. Closing it under the runtime
 * would let a new file take the number while the runtime still uses it.
 *
 * Linux, little-endian LP64 (x86-64, arm64). Needs `--allow-ffi` (see `libc.ts`).
 *
 * @module
 */
import { Directory, fdInode, KernelFile, libc, LINUX, listDirectory, readLink } from "./libc.ts";
import { canonicalAddress, ipv6ToString, mappedIpv4 } from "./ipv6.ts";

/** The states a connection the server still holds can be in. */
export type TcpState = "established" | "close-wait";

/** One connection of the kernel's table. */
export interface TcpConnection {
  /** The socket's inode: what `/proc/self/fd/N` names as `socket:[inode]`. */
  inode: number;
  state: TcpState;
  local: { address: string; port: number };
  remote: { address: string; port: number };
  /** Bytes written and not yet acknowledged by the client, sent or still queued (`tx_queue`). */
  sendQueue: number;
}

/** `st` column values of the states kept (include/net/tcp_states.h). */
const STATES: Record<string, TcpState> = { "01": "established", "08": "close-wait" };

/** Tables larger than this are cut short: 64 MiB is ~400 000 connections. */
const MAX_TABLE = 64 * 1024 * 1024;

/**
 * An `ADDR:PORT` column: the address is the raw network-order bytes printed as host-order
 * 32-bit words (so each word's bytes are reversed on little-endian), the port in hex.
 */
function parseEndpoint(text: string): { address: string; port: number } | null {
  const colon = text.indexOf(":");
  const hex = text.slice(0, colon);
  const port = parseInt(text.slice(colon + 1), 16);
  if (colon < 0 || !HEX_ADDRESS.test(hex) || !(port >= 0)) return null;
  if (hex.length === 8) {
    const w = parseInt(hex, 16);
    return { address: `${w & 255}.${(w >>> 8) & 255}.${(w >>> 16) & 255}.${w >>> 24}`, port };
  }
  const bytes = new Uint8Array(16);
  for (let w = 0; w < 4; w++) {
    const word = parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    for (let i = 0; i < 4; i++) bytes[w * 4 + i] = (word >>> (8 * i)) & 0xff;
  }
  return { address: mappedIpv4(bytes) ?? ipv6ToString(bytes), port };
}

const HEX_ADDRESS = /^([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32})$/;

/**
 * The established and close-wait connections in the text of `/proc/net/tcp` or
 * `/proc/net/tcp6` (header line and malformed lines skipped); when `localPort` is given, only
 * those on it. Addresses come out as {@linkcode canonicalAddress} spells them.
 */
export function parseTcpTable(text: string, localPort?: number): TcpConnection[] {
  const out: TcpConnection[] = [];
  const portHex = localPort === undefined
    ? null
    : localPort.toString(16).toUpperCase().padStart(4, "0");
  for (let start = 0; start < text.length;) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    // The table is read every second and holds every socket of the namespace: a line on
    // another port costs two searches and a compare before anything is split.
    const sl = text.indexOf(":", start);
    const port = sl < 0 || sl > end ? -1 : text.indexOf(":", sl + 1);
    if (port > 0 && port < end && (portHex === null || text.startsWith(portHex, port + 1))) {
      const c = parseLine(text.slice(start, end));
      if (c) out.push(c);
    }
    start = end + 1;
  }
  return out;
}

/** One line of the table: sl, local, remote, st, tx_queue:rx_queue, …, inode (10th). */
function parseLine(line: string): TcpConnection | null {
  const f = line.trim().split(/\s+/);
  if (f.length < 10) return null;
  const state = STATES[f[3]!];
  if (!state) return null;
  const local = parseEndpoint(f[1]!);
  const remote = parseEndpoint(f[2]!);
  const inode = Number(f[9]);
  const sendQueue = parseInt(f[4]!.split(":")[0]!, 16);
  // Inode 0: the socket has no file any more (orphaned), so no process holds it.
  if (!local || !remote || !Number.isSafeInteger(inode) || inode <= 0) return null;
  return { inode, state, local, remote, sendQueue: sendQueue >= 0 ? sendQueue : 0 };
}

/**
 * The connections of a listener on `port` at `address` ("0.0.0.0" or "::" for any), read
 * again on every {@linkcode list}: an IPv4 listener's from `/proc/net/tcp`, an IPv6 one's from
 * `/proc/net/tcp6` (where a dual-stack socket's IPv4 clients appear as `::ffff:a.b.c.d`). The
 * table lists every process's connections of this network namespace; {@linkcode shutdown} acts
 * only on this process's. The table and `/proc/self/fd` stay open, so both can still be read
 * when a flood of connections has taken every descriptor the process may have.
 */
export class TcpConnectionTable {
  readonly #port: number;
  readonly #want: string;
  readonly #any: boolean;
  readonly #table: KernelFile;
  readonly #fds: Directory;

  /** Opens the table and the descriptor list; throws when either cannot be opened. */
  constructor(port: number, address: string) {
    this.#port = port;
    this.#want = canonicalAddress(address);
    this.#any = this.#want === "0.0.0.0" || this.#want === "::";
    const file = address.includes(":") ? "/proc/net/tcp6" : "/proc/net/tcp";
    const table = KernelFile.open(file);
    if (!table) throw new Error(`cannot open ${file}`);
    const fds = Directory.open("/proc/self/fd");
    if (!fds) {
      table.close();
      throw new Error("cannot open /proc/self/fd");
    }
    this.#table = table;
    this.#fds = fds;
  }

  /** The listener's established and close-wait connections now; throws when unreadable. */
  list(): TcpConnection[] {
    const text = this.#table.read(MAX_TABLE);
    if (text === null) throw new Error("cannot read the TCP table");
    const all = parseTcpTable(text, this.#port);
    return this.#any ? all : all.filter((c) => c.local.address === this.#want);
  }

  /** Shuts down those of this process's sockets with these inodes; see {@linkcode shutdownSockets}. */
  shutdown(inodes: Iterable<number>): Set<number> {
    return shutdownSockets(inodes, socketsOf(describe(this.#fds.names())));
  }

  /** Closes the table and the descriptor list. */
  close(): void {
    this.#table.close();
    this.#fds.close();
  }
}

/** {@linkcode TcpConnectionTable.list} once. */
export function listTcpConnections(port: number, address: string): TcpConnection[] {
  const table = new TcpConnectionTable(port, address);
  try {
    return table.list();
  } finally {
    table.close();
  }
}

/** This process's open descriptors and what each is (`socket:[inode]`, a path …). */
export function openDescriptors(): Map<number, string> {
  return describe(listDirectory("/proc/self/fd") ?? []);
}

/** Descriptor → what it is, for these names of `/proc/self/fd`. */
function describe(names: string[]): Map<number, string> {
  const out = new Map<number, string>();
  for (const name of names) {
    const target = readLink(`/proc/self/fd/${name}`);
    // A descriptor closed since the listing (the listing's own, say) is left out.
    if (target !== null) out.set(Number(name), target);
  }
  return out;
}

/** Socket inode → descriptor, for every socket this process holds. */
export function socketDescriptors(): Map<number, number> {
  return socketsOf(openDescriptors());
}

function socketsOf(fds: Map<number, string>): Map<number, number> {
  const out = new Map<number, number>();
  for (const [fd, target] of fds) {
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) out.set(Number(m[1]), fd);
  }
  return out;
}

/**
 * Shuts down (both directions) the sockets of this process with these inodes; `fds` is a
 * fresh {@linkcode socketDescriptors}. Each descriptor is checked with `fstat` right before:
 * since the table was read it may have been closed and its number given to another file.
 * Returns the inodes shut down; those not found are no longer ours (or never were).
 */
export function shutdownSockets(inodes: Iterable<number>, fds: Map<number, number>): Set<number> {
  const c = libc();
  const done = new Set<number>();
  for (const inode of inodes) {
    const fd = fds.get(inode);
    if (fd === undefined) continue;
    const now = fdInode(fd);
    if (!now || !now.socket || now.inode !== inode) continue;
    if (c.shutdown(fd, LINUX.SHUT_RDWR) === 0) done.add(inode);
  }
  return done;
}
