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
 * On a shared boot network one host must not take every transfer slot: each client address
 * gets at most `maxPerClient` transfers at once, and a transfer whose peer never acknowledges
 * anything ends after two quick retransmissions (`transfer.ts`), so a request with a forged
 * source costs little and holds its slot briefly. Lines a peer can cause at will are
 * throttled (`log_throttle.ts`), and so are the error replies to packets that start no transfer
 * (`strayReplyRate`): a forged source must not make the server send to it at will.
 *
 * Sockets: {@linkcode listenUdp} (`Deno.listenDatagram`, needs `--unstable-net`) binds by
 * address; `listenInterface` (`interface_socket.ts`) also binds to the interface.
 *
 * @module
 */
import { errorMessage, type Logger, silentLogger } from "../../log.ts";
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
import { LogThrottle } from "./log_throttle.ts";
import { TokenBucket } from "../../net/token_bucket.ts";
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
  /** Set when refused at port 69 for a limit (`per-client`, or `server` when all slots are taken). */
  limit?: "per-client" | "server";
}

/** Resolves a requested filename (as the client sent it) to a stream. */
export type TftpOpen = (filename: string, client: TftpClient) => Promise<TftpOpenResult>;

/** The datagram socket the server needs; {@linkcode listenUdp} wraps `Deno.listenDatagram`. */
export interface TftpSocket {
  /** The bound port (the ephemeral one when 0 was asked for). */
  readonly port: number;
  /**
   * Waits for one datagram; `data` may be a view into `buffer`. Rejects once closed. `spinUs`:
   * the answer is due within microseconds, try for that long before sleeping (a hint).
   */
  receive(
    buffer: Uint8Array,
    options?: { spinUs?: number },
  ): Promise<{ data: Uint8Array; from: TftpClient }>;
  send(data: Uint8Array, to: TftpClient): Promise<void>;
  /** Sends packets in order, in one call where it can; without it, one `send` each. */
  sendMany?(packets: readonly Uint8Array[], to: TftpClient): Promise<void>;
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
    throw new BindError(`udp ${hostname}:${port}`, errorMessage(e), { cause: e });
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
  /**
   * Transfers at once from one client address; further requests from it get error 0 "too
   * many transfers from your address". Default 4 (firmware fetches one file at a time).
   */
  maxPerClient?: number;
  /**
   * Error replies a second to packets that start no transfer: error 5 to a stranger at a
   * transfer's port, a refused or malformed request, a write or mail-mode request (twice as many
   * at once). Their source may be
   * forged, and each would turn a 4-byte packet into a 20–60-byte one toward it; past the rate they
   * are dropped (a client that is real asks again). Default {@linkcode STRAY_REPLY_RATE}.
   */
  strayReplyRate?: number;
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
/** Default {@linkcode TftpServerOptions.strayReplyRate}. */
export const STRAY_REPLY_RATE = 50;
/** The reason a request over the per-client limit is refused with, on the wire and in events. */
export const PER_CLIENT_REFUSAL = "too many transfers from your address";

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
    throttle: new LogThrottle(),
    strayReplies: new TokenBucket(
      options.strayReplyRate ?? STRAY_REPLY_RATE,
      2 * (options.strayReplyRate ?? STRAY_REPLY_RATE),
    ),
    running: () => transfers.size,
  };
  const maxTransfers = options.maxTransfers ?? 256;
  const maxPerClient = options.maxPerClient ?? 4;
  const main = listen(options.address, options.port ?? 69);
  const transfers = new Map<string, ReadTransfer>();
  /** Transfers in `transfers` per client address. */
  const perAddress = new Map<string, number>();
  let closing = false;

  /** An error from the listening socket, unless the stray replies' rate is spent. */
  const reply = (to: TftpClient, code: number, message: string) => {
    if (!settings.strayReplies.take()) return;
    main.send(encodeError(code, message), to).catch((e) =>
      logger.debug(SUBSYSTEM, "send failed", { client: label(to), error: e })
    );
  };

  /** Refuses a request from the listening socket: error 0, a throttled line, one event. */
  const refuse = (
    from: TftpClient,
    file: string,
    reason: string,
    limit: "per-client" | "server",
    fields: Record<string, unknown>,
  ) => {
    reply(from, ErrorCode.NOT_DEFINED, reason);
    const quiet = settings.throttle.pass(`${reason} ${from.address}`);
    if (quiet !== null) {
      logger.warn(SUBSYSTEM, "request refused", {
        client: label(from),
        file,
        reason,
        ...fields,
        suppressed: quiet,
      });
    }
    settings.onTransfer({
      result: "refused",
      file,
      client: from,
      bytes: 0,
      blocks: 0,
      blksize: 512,
      windowsize: 1,
      ms: 0,
      retransmits: 0,
      reason,
      limit,
    });
  };

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
    } else {
      // A replacement takes its predecessor's place; only a new transfer needs a free one.
      const mine = perAddress.get(from.address) ?? 0;
      if (mine >= maxPerClient) {
        refuse(from, packet.filename, PER_CLIENT_REFUSAL, "per-client", {
          active: mine,
          limit: maxPerClient,
        });
        return;
      }
      if (transfers.size >= maxTransfers) {
        refuse(from, packet.filename, "server busy, try again", "server", {
          active: transfers.size,
          limit: maxTransfers,
        });
        return;
      }
      perAddress.set(from.address, mine + 1);
    }
    const transfer = new ReadTransfer(settings, packet, data.slice(), from);
    transfers.set(key, transfer);
    transfer.run().catch((e) => {
      if (!transfer.listening) {
        // No socket of its own (the process is out of descriptors): the request is refused
        // from the main socket, told and logged like any other refusal.
        refuse(from, packet.filename, "server busy, try again", "server", {
          error: errorMessage(e),
        });
        return;
      }
      logger.error(SUBSYSTEM, "transfer crashed", {
        client: key,
        file: packet.filename,
        error: e,
      });
    }).finally(() => {
      if (transfers.get(key) !== transfer) return;
      transfers.delete(key);
      const left = (perAddress.get(from.address) ?? 1) - 1;
      if (left > 0) perAddress.set(from.address, left);
      else perAddress.delete(from.address);
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
