/**
 * Read-only TFTP server: RFC 1350 with options blksize, tsize, timeout (RFC 2347–2349) and
 * windowsize (RFC 7440).
 *
 * A thin loop on the listening socket decodes requests and starts one transfer per client
 * address and port (`transfer.ts`), each on its own socket with a fresh ephemeral port (its
 * TID, RFC 1350 §4). A transfer asks the `open` handler for a stream (the server knows nothing
 * of files or the boot tree). Writes are refused. A bad packet is logged at debug and dropped;
 * it never stops a loop.
 *
 * Needs `--unstable-net` for `Deno.listenDatagram`.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { silentLogger } from "../../log.ts";
import { MalformedPacketError } from "../../net/bytes.ts";
import { BindError } from "../../net/errors.ts";
import { DEFAULT_MAX_BLKSIZE, DEFAULT_MAX_WINDOWSIZE } from "./options.ts";
import {
  decodeTftp,
  encodeError,
  ErrorCode,
  Opcode,
  TftpOptionError,
  type TftpPacket,
} from "./packet.ts";
import { DEFAULT_RTO, type RtoOptions } from "./rto.ts";
import { label, ReadTransfer, type Settings } from "./transfer.ts";

/** The address and port a request came from. */
export interface TftpClient {
  address: string;
  port: number;
}

/** What the `open` handler returns: a stream with its size, or why there is none. */
export type TftpOpenResult =
  | { size: number; stream: ReadableStream<Uint8Array> }
  | { error: "not-found" | "forbidden" | "unavailable"; message: string };

/** How one read request ended; the server's `onTransfer` hook gets one per request. */
export interface TftpTransferEvent {
  /** done: the last block was acknowledged; failed: it stopped after it started; refused: never started. */
  result: "done" | "failed" | "refused";
  /** The name as the client asked for it. */
  file: string;
  client: TftpClient;
  bytes: number;
  blocks: number;
  blksize: number;
  windowsize: number;
  ms: number;
  retransmits: number;
  /** Why it failed or was refused. */
  reason?: string;
}

/** Resolves a requested filename (as the client sent it) to a stream. */
export type TftpOpen = (filename: string, client: TftpClient) => Promise<TftpOpenResult>;

/** The datagram socket the server needs; {@linkcode listenUdp} wraps `Deno.listenDatagram`. */
export interface TftpSocket {
  /** The bound port (the ephemeral one when 0 was asked for). */
  readonly port: number;
  /** Waits for one datagram; `data` may be a view into `buffer`. Rejects once closed. */
  receive(buffer: Uint8Array): Promise<{ data: Uint8Array; from: TftpClient }>;
  send(data: Uint8Array, to: TftpClient): Promise<void>;
  close(): void;
}

/** Opens a socket bound to `hostname:port` (port 0: ephemeral). */
export type TftpListen = (hostname: string, port: number) => TftpSocket;

/** {@linkcode TftpListen} over `Deno.listenDatagram` (needs `--unstable-net`); throws `BindError`. */
export function listenUdp(hostname: string, port: number): TftpSocket {
  let conn: Deno.DatagramConn;
  try {
    conn = Deno.listenDatagram({ transport: "udp", hostname, port });
  } catch (e) {
    throw new BindError(`udp ${hostname}:${port}`, (e as Error).message, { cause: e });
  }
  return {
    port: (conn.addr as Deno.NetAddr).port,
    async receive(buffer) {
      const [data, addr] = await conn.receive(buffer);
      const from = addr as Deno.NetAddr;
      return { data, from: { address: from.hostname, port: from.port } };
    },
    async send(data, to) {
      await conn.send(data, { transport: "udp", hostname: to.address, port: to.port });
    },
    close() {
      try {
        conn.close();
      } catch { /* already closed */ }
    },
  };
}

/** Options of {@linkcode startTftpServer}. */
export interface TftpServerOptions {
  /** Address to listen on: the boot interface's IPv4 (transfers bind to it too). */
  address: string;
  /** Default 69. */
  port?: number;
  /** Resolves filenames to streams; map names with `tftpPathToTree` (paths.ts) first. */
  open: TftpOpen;
  /** Largest blksize granted; default 1468 (Ethernet MTU 1500, see `blksizeForMtu`). */
  maxBlksize?: number;
  /** Largest windowsize granted; default 64. */
  maxWindowsize?: number;
  logger?: Logger;
  /** Retransmission timeout bounds (ms); a client's `timeout` option sets `maxMs` (rto.ts). */
  rto?: Partial<RtoOptions>;
  /** Consecutive timeouts before a transfer is given up; default 10 (about 24 s of silence). */
  maxRetries?: number;
  /** Transfers at once; further requests get error 0 "server busy". Default 256. */
  maxTransfers?: number;
  /** Socket factory; default {@linkcode listenUdp}. Tests pass an in-memory network. */
  listen?: TftpListen;
  /** Told how every request ended (metrics, the live feed). */
  onTransfer?: (event: TftpTransferEvent) => void;
}

/** A running server. */
export interface TftpServer {
  readonly address: string;
  readonly port: number;
  /** Transfers in progress. */
  readonly active: number;
  /** Stops listening, aborts transfers in progress and waits for them to release their files. */
  close(): Promise<void>;
}

const SUBSYSTEM = "tftp";

/**
 * Starts the server on `address:port`; rejects with a `BindError` when the port cannot be
 * bound. Every request ends in one `onTransfer` event: done, failed or refused.
 */
// deno-lint-ignore require-await
export async function startTftpServer(options: TftpServerOptions): Promise<TftpServer> {
  const listen = options.listen ?? listenUdp;
  const logger = options.logger ?? silentLogger;
  const settings: Settings = {
    address: options.address,
    open: options.open,
    listen,
    logger,
    maxBlksize: options.maxBlksize ?? DEFAULT_MAX_BLKSIZE,
    maxWindowsize: options.maxWindowsize ?? DEFAULT_MAX_WINDOWSIZE,
    rto: { ...DEFAULT_RTO, ...options.rto },
    maxRetries: options.maxRetries ?? 10,
    onTransfer: options.onTransfer ?? (() => {}),
  };
  const maxTransfers = options.maxTransfers ?? 256;
  const main = listen(options.address, options.port ?? 69);
  const transfers = new Map<string, ReadTransfer>();
  let closing = false;

  const reply = (to: TftpClient, code: number, message: string) =>
    main.send(encodeError(code, message), to).catch((e) =>
      logger.debug(SUBSYSTEM, "send failed", { client: label(to), error: e })
    );

  const onDatagram = (data: Uint8Array, from: TftpClient) => {
    let packet: TftpPacket;
    try {
      packet = decodeTftp(data);
    } catch (e) {
      if (!(e instanceof MalformedPacketError)) throw e;
      logger.debug(SUBSYSTEM, "malformed request dropped", { client: label(from), error: e });
      const op = data.length >= 2 ? (data[0]! << 8) | data[1]! : 0;
      // Only a request gets an answer: errors are never answered (RFC 1350 §7), stray
      // DATA/ACK could come from anyone.
      if (op === Opcode.RRQ || op === Opcode.WRQ) {
        if (e instanceof TftpOptionError) reply(from, ErrorCode.OPTION_REFUSED, e.message);
        else reply(from, ErrorCode.ILLEGAL_OPERATION, e.message);
      }
      return;
    }
    if (packet.op !== Opcode.RRQ && packet.op !== Opcode.WRQ) {
      logger.debug(SUBSYSTEM, "non-request on the server port dropped", {
        client: label(from),
        op: packet.op,
      });
      return;
    }
    const key = label(from);
    const running = transfers.get(key);
    if (running) {
      // A client repeats its request when the first answer is slow or lost; the transfer
      // already running retransmits on its own. Anything else from the same port (another
      // file, or the same one after the last block went out: its final ACK was lost) is a
      // new transfer, and the old one is over.
      if (running.isRepeat(data)) {
        logger.debug(SUBSYSTEM, "repeated request ignored", {
          client: key,
          file: packet.filename,
        });
        return;
      }
      running.abort("superseded by a new request from the same port");
    }
    if (transfers.size >= maxTransfers) {
      logger.warn(SUBSYSTEM, "too many transfers, request refused", {
        client: key,
        file: packet.filename,
        active: transfers.size,
      });
      reply(from, ErrorCode.NOT_DEFINED, "server busy, try again");
      return;
    }
    const transfer = new ReadTransfer(settings, packet, data.slice(), from);
    transfers.set(key, transfer);
    transfer.run().catch((e) => {
      logger.error(SUBSYSTEM, "transfer crashed", {
        client: key,
        file: packet.filename,
        error: e,
      });
    }).finally(() => {
      if (transfers.get(key) === transfer) transfers.delete(key);
    });
  };

  const loop = (async () => {
    const buffer = new Uint8Array(65536);
    while (!closing) {
      let got;
      try {
        got = await main.receive(buffer);
      } catch (e) {
        if (closing) break;
        logger.warn(SUBSYSTEM, "receive failed", { error: e });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      try {
        onDatagram(got.data, got.from);
      } catch (e) {
        logger.error(SUBSYSTEM, "request handling failed", { client: label(got.from), error: e });
      }
    }
  })();

  logger.info(SUBSYSTEM, "listening", {
    address: options.address,
    port: main.port,
    max_blksize: settings.maxBlksize,
    max_windowsize: settings.maxWindowsize,
  });

  return {
    address: options.address,
    port: main.port,
    get active() {
      return transfers.size;
    },
    async close() {
      if (closing) return;
      closing = true;
      main.close();
      await loop;
      const running = [...transfers.values()];
      for (const t of running) t.abort("server closing");
      await Promise.allSettled(running.map((t) => t.done));
    },
  };
}
