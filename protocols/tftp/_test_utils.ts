/**
 * Helpers shared by the TFTP tests: captured client frames, an in-memory datagram network
 * (no sockets, deterministic loss) and in-memory files that record what the server opened and
 * released.
 *
 * @module
 */
import { decodeTftp, encodeTftp, Opcode, type RequestPacket, type TftpPacket } from "./packet.ts";
import type { TftpClient, TftpOpen, TftpSocket } from "./server.ts";

/** The server's address in these tests. */
export const SERVER = "10.9.0.1";
/** The clients' address in these tests. */
export const CLIENT = "10.9.0.2";
/** The server's listening port. */
export const MAIN: TftpClient = { address: SERVER, port: 69 };

const opts = (...pairs: [string, string][]) => new Map(pairs);

/**
 * Frames captured with tcpdump in a namespace pair, client → our server (tftp-hpa 5.2, atftp 0.8,
 * curl 7.88); `bytes` in hex.
 */
export const CAPTURED_FRAMES: { name: string; bytes: string; packet: TftpPacket }[] = [
  {
    name: "tftp-hpa 5.2 RRQ, binary mode, no options",
    // 0001 "small.txt" 00 "octet" 00
    bytes: "0001 736d616c6c2e747874 00 6f63746574 00",
    packet: { op: Opcode.RRQ, filename: "small.txt", mode: "octet", options: opts() },
  },
  {
    name: "tftp-hpa 5.2 RRQ, ascii mode",
    bytes: "0001 736d616c6c2e747874 00 6e65746173636969 00",
    packet: { op: Opcode.RRQ, filename: "small.txt", mode: "netascii", options: opts() },
  },
  {
    name: "tftp-hpa 5.2 WRQ",
    bytes: "0002 736d616c6c2e747874 00 6f63746574 00",
    packet: { op: Opcode.WRQ, filename: "small.txt", mode: "octet", options: opts() },
  },
  {
    name: "atftp 0.8 RRQ with blksize 1468 and windowsize 4",
    // ... "blksize" 00 "1468" 00 "windowsize" 00 "4" 00
    bytes: "0001 62333030302e62696e 00 6f63746574 00 626c6b73697a65 00 31343638 00" +
      "77696e646f7773697a65 00 34 00",
    packet: {
      op: Opcode.RRQ,
      filename: "b3000.bin",
      mode: "octet",
      options: opts(["blksize", "1468"], ["windowsize", "4"]),
    },
  },
  {
    name: "atftp 0.8 RRQ with tsize and timeout 3",
    bytes: "0001 62333030302e62696e 00 6f63746574 00 7473697a65 00 30 00 74696d656f7574 00 33 00",
    packet: {
      op: Opcode.RRQ,
      filename: "b3000.bin",
      mode: "octet",
      options: opts(["tsize", "0"], ["timeout", "3"]),
    },
  },
  {
    name: "curl 7.88 RRQ with --tftp-blksize 1468 (adds tsize and timeout 6)",
    bytes: "0001 62333030302e62696e 00 6f63746574 00 7473697a65 00 30 00" +
      "626c6b73697a65 00 31343638 00 74696d656f7574 00 36 00",
    packet: {
      op: Opcode.RRQ,
      filename: "b3000.bin",
      mode: "octet",
      options: opts(["tsize", "0"], ["blksize", "1468"], ["timeout", "6"]),
    },
  },
  {
    name: "atftp 0.8 ACK of the OACK",
    bytes: "0004 0000",
    packet: { op: Opcode.ACK, block: 0 },
  },
  {
    name: "tftp-hpa 5.2 ACK of block 1",
    bytes: "0004 0001",
    packet: { op: Opcode.ACK, block: 1 },
  },
];

/** One datagram in flight, as the loss hook sees it. */
export interface Datagram {
  data: Uint8Array;
  from: TftpClient;
  to: TftpClient;
}

/**
 * Datagram sockets in memory; `lose` decides per datagram whether it vanishes. With
 * `batching`, sockets offer `sendMany` (as the interface sockets do) and record each batch.
 */
export class MemNet {
  readonly sockets = new Map<string, MemSocket>();
  #nextPort = 40000;
  lose: (d: Datagram) => boolean = () => false;
  delivered = 0;
  batching = false;
  /** Sizes of the `sendMany` calls, in order. */
  readonly batches: number[] = [];
  /**
   * The `spinUs` hint of every receive on a server socket other than port 69 (0: none), with
   * how many such transfer sockets were open then.
   */
  readonly spins: { spinUs: number; transfers: number }[] = [];

  listen = (hostname: string, port: number): TftpSocket => {
    const p = port === 0 ? this.#nextPort++ : port;
    const key = `${hostname}:${p}`;
    if (this.sockets.has(key)) throw new Error(`address in use: ${key}`);
    const s = new MemSocket(this, hostname, p);
    if (this.batching) {
      s.sendMany = (packets, to) => {
        this.batches.push(packets.length);
        for (const data of packets) s.send(data, to);
        return Promise.resolve();
      };
    }
    this.sockets.set(key, s);
    return s;
  };

  deliver(d: Datagram): void {
    if (this.lose(d)) return;
    const target = this.sockets.get(`${d.to.address}:${d.to.port}`);
    if (!target) return;
    this.delivered++;
    // Copied when sent, as a kernel does; delivered asynchronously like a real network, but
    // without timer clamping.
    const data = d.data.slice();
    Promise.resolve().then(() => target.enqueue({ data, from: d.from }));
  }
}

export class MemSocket implements TftpSocket {
  #queue: { data: Uint8Array; from: TftpClient }[] = [];
  #waiter: {
    resolve: (v: { data: Uint8Array; from: TftpClient }) => void;
    reject: (e: Error) => void;
  } | null = null;
  closed = false;
  sendMany?: (packets: readonly Uint8Array[], to: TftpClient) => Promise<void>;

  constructor(readonly net: MemNet, readonly address: string, readonly port: number) {}

  enqueue(d: { data: Uint8Array; from: TftpClient }): void {
    if (this.closed) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w.resolve(d);
    } else this.#queue.push(d);
  }

  receive(
    _buffer: Uint8Array,
    options?: { spinUs?: number },
  ): Promise<{ data: Uint8Array; from: TftpClient }> {
    if (this.address === SERVER && this.port !== 69) {
      const transfers = [...this.net.sockets.values()].filter((s) =>
        s.address === SERVER && s.port !== 69
      ).length;
      this.net.spins.push({ spinUs: options?.spinUs ?? 0, transfers });
    }
    if (this.closed) return Promise.reject(new Error("closed"));
    const d = this.#queue.shift();
    if (d) return Promise.resolve(d);
    return new Promise((resolve, reject) => this.#waiter = { resolve, reject });
  }

  send(data: Uint8Array, to: TftpClient): Promise<void> {
    if (this.closed) return Promise.reject(new Error("closed"));
    this.net.deliver({ data, from: { address: this.address, port: this.port }, to });
    return Promise.resolve();
  }

  close(): void {
    this.closed = true;
    this.net.sockets.delete(`${this.address}:${this.port}`);
    this.#waiter?.reject(new Error("closed"));
    this.#waiter = null;
  }

  /** Every datagram queued so far, without waiting; for floods that never block on one. */
  drain(): { data: Uint8Array; from: TftpClient }[] {
    return this.#queue.splice(0);
  }

  /** Next decoded packet, or null after `ms`. */
  async next(ms = 2000): Promise<{ packet: TftpPacket; from: TftpClient } | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<null>((r) => timer = setTimeout(() => r(null), ms));
    const got = await Promise.race([this.receive(new Uint8Array(0)), timeout]);
    clearTimeout(timer);
    if (got === null) {
      this.#waiter = null;
      return null;
    }
    return { packet: decodeTftp(got.data), from: got.from };
  }

  sendPacket(p: TftpPacket, to: TftpClient): Promise<void> {
    return this.send(encodeTftp(p), to);
  }
}

/** Deterministic test content. */
export function content(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A handler over in-memory files that records opens, pulls and cancellations. */
export function memFiles(files: Record<string, Uint8Array>, chunk = 4096) {
  // released: the stream was read to its end or cancelled, so a file handle would be closed.
  const stats = { opens: [] as string[], released: 0, pulls: 0 };
  const open: TftpOpen = (name) => {
    stats.opens.push(name);
    if (name === "secret") return Promise.resolve({ error: "forbidden", message: "no access" });
    if (name === "offline") {
      return Promise.resolve({ error: "unavailable", message: "gateway down" });
    }
    if (name === "throws") return Promise.reject(new Error("boom"));
    const data = files[name];
    if (!data) return Promise.resolve({ error: "not-found", message: "no such file" });
    let offset = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        stats.pulls++;
        if (offset >= data.length) {
          stats.released++;
          return c.close();
        }
        c.enqueue(data.slice(offset, offset + chunk));
        offset += chunk;
      },
      cancel() {
        stats.released++;
      },
    }, { highWaterMark: 0 });
    return Promise.resolve({ size: data.length, stream });
  };
  return { open, stats };
}

/** What {@linkcode fetchFile} received. */
export interface FetchResult {
  data: Uint8Array;
  oack: Map<string, string> | null;
  dataPackets: number;
  wires: number[];
  from: TftpClient | null;
}

/**
 * An RFC 1350/7440 client: ACKs each window end (or the last in-order block on a gap),
 * re-ACKs after `idleMs` of silence. `onData` may return false to drop a DATA packet.
 */
export async function fetchFile(
  c: MemSocket,
  req: RequestPacket,
  opts: {
    windowsize?: number;
    idleMs?: number;
    ackTwice?: boolean;
    onData?: (block: number) => boolean;
  } = {},
): Promise<FetchResult> {
  await c.sendPacket(req, MAIN);
  const parts: Uint8Array[] = [];
  let oack: Map<string, string> | null = null;
  let from: TftpClient | null = null;
  let blksize = 512;
  let windowsize = 1;
  let last = 0; // absolute block received in order
  let dataPackets = 0;
  const wires: number[] = [];
  const ack = async (block: number) => {
    await c.sendPacket({ op: Opcode.ACK, block: block & 0xffff }, from!);
    if (opts.ackTwice) await c.sendPacket({ op: Opcode.ACK, block: block & 0xffff }, from!);
  };
  for (let silent = 0; silent < 20;) {
    const got = await c.next(opts.idleMs ?? 300);
    if (!got) {
      silent++;
      if (from) await ack(last);
      continue;
    }
    silent = 0;
    const p = got.packet;
    from ??= got.from;
    if (p.op === Opcode.ERROR) throw new Error(`error ${p.code}: ${p.message}`);
    if (p.op === Opcode.OACK) {
      oack = p.options;
      blksize = Number(p.options.get("blksize") ?? 512);
      windowsize = Number(p.options.get("windowsize") ?? 1);
      await ack(0);
      continue;
    }
    if (p.op !== Opcode.DATA) throw new Error(`unexpected op ${p.op}`);
    dataPackets++;
    if (opts.onData && !opts.onData(p.block)) continue;
    if (p.block !== ((last + 1) & 0xffff)) {
      await ack(last); // gap or duplicate: tell the sender where we are
      continue;
    }
    last++;
    wires.push(p.block);
    parts.push(p.data);
    const final = p.data.length < blksize;
    if (final || last % windowsize === 0) await ack(last);
    if (final) {
      const data = new Uint8Array(parts.reduce((n, x) => n + x.length, 0));
      let o = 0;
      for (const x of parts) {
        data.set(x, o);
        o += x.length;
      }
      return { data, oack, dataPackets, wires, from };
    }
  }
  throw new Error("transfer stalled");
}
