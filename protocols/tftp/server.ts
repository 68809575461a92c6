/**
 * Read-only TFTP server: RFC 1350 with options blksize, tsize, timeout (RFC 2347–2349) and
 * windowsize (RFC 7440).
 *
 * A thin loop on the listening socket decodes requests and starts one transfer per client
 * address and port, each on its own socket with a fresh ephemeral port (its TID, RFC 1350 §4).
 * A transfer asks the `open` handler for a stream (the server knows nothing of files or the
 * boot tree), negotiates options, then runs {@linkcode SendWindow} with an adaptive timeout
 * ({@linkcode RtoEstimator}). Writes are refused. A bad packet is logged at debug and dropped;
 * it never stops a loop.
 *
 * Needs `--unstable-net` for `Deno.listenDatagram`.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { silentLogger } from "../../log.ts";
import { MalformedPacketError } from "../../net/bytes.ts";
import { BlockSource } from "./blocks.ts";
import { netasciiStream } from "./netascii.ts";
import { DEFAULT_MAX_BLKSIZE, DEFAULT_MAX_WINDOWSIZE, negotiateOptions } from "./options.ts";
import {
  decodeTftp,
  encodeError,
  encodeTftp,
  ErrorCode,
  Opcode,
  type RequestPacket,
  TftpOptionError,
  type TftpPacket,
} from "./packet.ts";
import { backoffCeiling, DEFAULT_RTO, RtoEstimator, type RtoOptions } from "./rto.ts";
import { SendWindow } from "./window.ts";

/** The address and port a request came from. */
export interface TftpClient {
  address: string;
  port: number;
}

/** What the `open` handler returns: a stream with its size, or why there is none. */
export type TftpOpenResult =
  | { size: number; stream: ReadableStream<Uint8Array> }
  | { error: "not-found" | "forbidden" | "unavailable"; message: string };

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

/** {@linkcode TftpListen} over `Deno.listenDatagram` (needs `--unstable-net`). */
export function listenUdp(hostname: string, port: number): TftpSocket {
  const conn = Deno.listenDatagram({ transport: "udp", hostname, port });
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

const _SUBSYSTEM = "tftp";
/** Queued packets per transfer beyond which a flooding peer's packets are dropped. */
const _INBOX_LIMIT = 256;
/** DATA sends issued before waiting for them to complete. */
const _PIPELINE = 8;

const _OPEN_ERRORS = {
  "not-found": ErrorCode.FILE_NOT_FOUND,
  "forbidden": ErrorCode.ACCESS_VIOLATION,
  "unavailable": ErrorCode.NOT_DEFINED,
} as const;

function _label(c: TftpClient): string {
  return `${c.address}:${c.port}`;
}

/** Starts the server on `address:port`; resolves once the socket is bound. */
export function startTftpServer(options: TftpServerOptions): Promise<TftpServer> {
  const listen = options.listen ?? listenUdp;
  const logger = options.logger ?? silentLogger;
  const settings: _Settings = {
    address: options.address,
    open: options.open,
    listen,
    logger,
    maxBlksize: options.maxBlksize ?? DEFAULT_MAX_BLKSIZE,
    maxWindowsize: options.maxWindowsize ?? DEFAULT_MAX_WINDOWSIZE,
    rto: { ...DEFAULT_RTO, ...options.rto },
    maxRetries: options.maxRetries ?? 10,
  };
  const maxTransfers = options.maxTransfers ?? 256;
  const main = listen(options.address, options.port ?? 69);
  const transfers = new Map<string, _ReadTransfer>();
  let closing = false;

  const reply = (to: TftpClient, code: number, message: string) =>
    main.send(encodeError(code, message), to).catch((e) =>
      logger.debug(_SUBSYSTEM, "send failed", { client: _label(to), error: e })
    );

  const onDatagram = (data: Uint8Array, from: TftpClient) => {
    let packet: TftpPacket;
    try {
      packet = decodeTftp(data);
    } catch (e) {
      if (!(e instanceof MalformedPacketError)) throw e;
      logger.debug(_SUBSYSTEM, "malformed request dropped", { client: _label(from), error: e });
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
      logger.debug(_SUBSYSTEM, "non-request on the server port dropped", {
        client: _label(from),
        op: packet.op,
      });
      return;
    }
    const key = _label(from);
    const running = transfers.get(key);
    if (running) {
      // A client repeats its request when the first answer is slow or lost; the transfer
      // already running retransmits on its own. Anything else from the same port (another
      // file, or the same one after the last block went out: its final ACK was lost) is a
      // new transfer, and the old one is over.
      if (running.isRepeat(data)) {
        logger.debug(_SUBSYSTEM, "repeated request ignored", {
          client: key,
          file: packet.filename,
        });
        return;
      }
      running.abort("superseded by a new request from the same port");
    }
    if (transfers.size >= maxTransfers) {
      logger.warn(_SUBSYSTEM, "too many transfers, request refused", {
        client: key,
        file: packet.filename,
        active: transfers.size,
      });
      reply(from, ErrorCode.NOT_DEFINED, "server busy, try again");
      return;
    }
    const transfer = new _ReadTransfer(settings, packet, data.slice(), from);
    transfers.set(key, transfer);
    transfer.run().catch((e) => {
      logger.error(_SUBSYSTEM, "transfer crashed", {
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
        logger.warn(_SUBSYSTEM, "receive failed", { error: e });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      try {
        onDatagram(got.data, got.from);
      } catch (e) {
        logger.error(_SUBSYSTEM, "request handling failed", { client: _label(got.from), error: e });
      }
    }
  })();

  logger.info(_SUBSYSTEM, "listening", {
    address: options.address,
    port: main.port,
    max_blksize: settings.maxBlksize,
    max_windowsize: settings.maxWindowsize,
  });

  return Promise.resolve({
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
  });
}

interface _Settings {
  address: string;
  open: TftpOpen;
  listen: TftpListen;
  logger: Logger;
  maxBlksize: number;
  maxWindowsize: number;
  rto: RtoOptions;
  maxRetries: number;
}

/**
 * Packets from the peer plus one retransmission deadline. Moving the deadline is a field
 * write: a per-packet setTimeout/clearTimeout pair doubled the ACK round trip in a ping-pong
 * measurement here, so one timer stays armed and re-arms itself when the deadline moved.
 */
class _Inbox {
  #queue: TftpPacket[] = [];
  #waiter: ((p: TftpPacket | null) => void) | null = null;
  #deadline = Infinity;
  #expired = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;

  /** False when the queue is full and the packet was dropped. */
  push(p: TftpPacket): boolean {
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w(p);
      return true;
    }
    if (this.#queue.length >= _INBOX_LIMIT) return false;
    this.#queue.push(p);
    return true;
  }

  /** Sets the deadline `ms` from now; {@linkcode take} yields null once it passes. */
  arm(ms: number): void {
    const now = performance.now();
    this.#deadline = now + ms;
    this.#expired = false;
    if (this.#timer !== undefined && this.#timerAt <= this.#deadline) return;
    clearTimeout(this.#timer);
    this.#schedule(ms, now);
  }

  #schedule(ms: number, now: number): void {
    this.#timerAt = now + ms;
    this.#timer = setTimeout(this.#fire, ms);
  }

  #fire = () => {
    this.#timer = undefined;
    const now = performance.now();
    const left = this.#deadline - now;
    if (left === Infinity) return;
    if (left > 1) return this.#schedule(left, now);
    this.#deadline = Infinity;
    this.#expired = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.(null);
  };

  /** The next packet, or null once the deadline passed (or when woken by {@linkcode close}). */
  take(): Promise<TftpPacket | null> {
    const p = this.#queue.shift();
    if (p) return Promise.resolve(p);
    if (this.#expired) {
      this.#expired = false;
      return Promise.resolve(null);
    }
    return new Promise((resolve) => this.#waiter = resolve);
  }

  /** Stops the timer and ends a pending wait. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#deadline = Infinity;
    this.#expired = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.(null);
  }
}

/** How a transfer ended, for the summary log line. */
type _Outcome =
  | { ok: true }
  | { ok: false; reason: string; level: "debug" | "info" | "warn" };

/** One read transfer on its own socket. */
class _ReadTransfer {
  readonly done: Promise<void>;
  #resolveDone!: () => void;
  #aborted: string | null = null;
  #abortWaiters: (() => void)[] = [];
  #window: SendWindow | null = null;
  #socket: TftpSocket | null = null;
  readonly #inbox = new _Inbox();
  readonly #started = performance.now();
  #retransmits = 0;

  constructor(
    readonly settings: _Settings,
    readonly request: RequestPacket,
    readonly requestBytes: Uint8Array,
    readonly peer: TftpClient,
  ) {
    this.done = new Promise((r) => this.#resolveDone = r);
  }

  /** Whether `bytes` repeats this transfer's request while it still has data to send. */
  isRepeat(bytes: Uint8Array): boolean {
    const w = this.#window;
    if (w && w.final !== null && w.sent >= w.final) return false;
    return bytes.length === this.requestBytes.length &&
      bytes.every((b, i) => b === this.requestBytes[i]);
  }

  /** Stops the transfer at its next step. */
  abort(reason: string): void {
    this.#aborted ??= reason;
    for (const w of this.#abortWaiters) w();
    this.#inbox.close();
    this.#socket?.close();
  }

  async run(): Promise<void> {
    try {
      this.#socket = this.settings.listen(this.settings.address, 0);
      if (this.#aborted) return;
      this.#receiveLoop(this.#socket, new Uint8Array(4096));
      await this.#serve(this.#socket);
    } finally {
      this.#socket?.close();
      this.#inbox.close();
      this.#resolveDone();
    }
  }

  /** Hands the peer's packets to the inbox; answers strangers with error 5 (RFC 1350 §4). */
  async #receiveLoop(socket: TftpSocket, buffer: Uint8Array): Promise<void> {
    const { logger } = this.settings;
    for (;;) {
      let got;
      try {
        got = await socket.receive(buffer);
      } catch {
        return; // closed
      }
      const { data, from } = got;
      if (from.address !== this.peer.address || from.port !== this.peer.port) {
        logger.debug(_SUBSYSTEM, "packet from unknown transfer ID", {
          client: _label(this.peer),
          from: _label(from),
        });
        socket.send(encodeError(ErrorCode.UNKNOWN_TID, "unknown transfer ID"), from)
          .catch(() => {});
        continue;
      }
      let packet: TftpPacket;
      try {
        packet = decodeTftp(data);
      } catch (e) {
        logger.debug(_SUBSYSTEM, "malformed packet dropped", {
          client: _label(this.peer),
          error: e,
        });
        continue;
      }
      if (!this.#inbox.push(packet)) {
        logger.debug(_SUBSYSTEM, "inbox full, packet dropped", { client: _label(this.peer) });
      }
    }
  }

  async #serve(socket: TftpSocket): Promise<void> {
    const { logger, open } = this.settings;
    const req = this.request;
    const fields = { file: req.filename, client: _label(this.peer), mode: req.mode };
    const refuse = async (code: number, message: string, level: "debug" | "info" | "warn") => {
      await socket.send(encodeError(code, message), this.peer).catch(() => {});
      logger[level](_SUBSYSTEM, "request refused", { ...fields, code, reason: message });
    };
    if (req.op === Opcode.WRQ) {
      return refuse(ErrorCode.ACCESS_VIOLATION, "read-only server", "info");
    }
    if (req.mode === "mail") {
      return refuse(ErrorCode.ILLEGAL_OPERATION, "mail mode is not supported", "info");
    }
    let opened: TftpOpenResult | null;
    try {
      opened = await this.#unlessAborted(open(req.filename, this.peer));
    } catch (e) {
      logger.warn(_SUBSYSTEM, "open failed", { ...fields, error: e });
      return refuse(ErrorCode.NOT_DEFINED, "cannot read file", "debug");
    }
    if (opened === null) return;
    if ("error" in opened) {
      return refuse(_OPEN_ERRORS[opened.error], opened.message, "info");
    }
    const netascii = req.mode === "netascii";
    const stream = netascii ? opened.stream.pipeThrough(netasciiStream()) : opened.stream;
    const neg = negotiateOptions(req.options, {
      maxBlksize: this.settings.maxBlksize,
      maxWindowsize: this.settings.maxWindowsize,
      size: netascii ? null : opened.size,
    });
    if (neg.ignored.size > 0) {
      logger.debug(_SUBSYSTEM, "options not acknowledged", {
        ...fields,
        ignored: Object.fromEntries(neg.ignored),
      });
    }
    const source = new BlockSource(stream, neg.blksize);
    let outcome: _Outcome;
    try {
      outcome = await this.#send(socket, source, neg.oack, neg.windowsize, neg.timeoutMs);
    } catch (e) {
      outcome = { ok: false, reason: e instanceof Error ? e.message : String(e), level: "warn" };
      await socket.send(encodeError(ErrorCode.NOT_DEFINED, "transfer failed"), this.peer)
        .catch(() => {});
    } finally {
      await source.cancel();
    }
    const ms = performance.now() - this.#started;
    const summary = {
      ...fields,
      bytes: source.bytes,
      blocks: Math.max(0, this.#window?.acked ?? 0),
      blksize: neg.blksize,
      windowsize: neg.windowsize,
      ms: Math.round(ms),
      mbps: Number((source.bytes / 1e6 / Math.max(ms / 1000, 1e-6)).toFixed(2)),
      retransmits: this.#retransmits,
    };
    if (outcome.ok) {
      logger.info(_SUBSYSTEM, "transfer done", summary);
      if (!netascii && source.bytes !== opened.size) {
        logger.warn(_SUBSYSTEM, "file size changed during transfer", {
          ...fields,
          announced: opened.size,
          sent: source.bytes,
        });
      }
    } else {
      logger[outcome.level](_SUBSYSTEM, "transfer failed", { ...summary, reason: outcome.reason });
    }
  }

  /**
   * Sends a packet the retransmission timer covers: a failed send (a local firewall drop is
   * EPERM, a full queue ENOBUFS) counts as a lost packet, not as the end of the transfer.
   */
  #sendLossy(socket: TftpSocket, packet: Uint8Array): Promise<void> {
    return socket.send(packet, this.peer).catch((e) => {
      this.settings.logger.debug(_SUBSYSTEM, "send failed, will retransmit", {
        client: _label(this.peer),
        error: e,
      });
    });
  }

  /** Resolves to null instead when the transfer is aborted first. */
  #unlessAborted<T>(p: Promise<T>): Promise<T | null> {
    if (this.#aborted) return Promise.resolve(null);
    return Promise.race([p, new Promise<null>((r) => this.#abortWaiters.push(() => r(null)))]);
  }

  /** Sends the file: OACK handshake, then windows of DATA until the final block is acked. */
  async #send(
    socket: TftpSocket,
    source: BlockSource,
    oack: Map<string, string>,
    windowsize: number,
    timeoutMs: number | null,
  ): Promise<_Outcome> {
    const { logger } = this.settings;
    const window = new SendWindow(windowsize, { oack: oack.size > 0 });
    this.#window = window;
    const rto = new RtoEstimator({
      ...this.settings.rto,
      maxMs: timeoutMs === null ? this.settings.rto.maxMs : backoffCeiling(timeoutMs),
    });
    const oackPacket = oack.size > 0 ? encodeTftp({ op: Opcode.OACK, options: oack }) : null;
    /** Sent but unacknowledged DATA packets by absolute block number. */
    const unacked = new Map<number, Uint8Array>();
    /** The last block of the latest burst: an RTT sample if it was sent only once (Karn). */
    let probe: { block: number; at: number; clean: boolean } | null = null;

    const sendPending = async () => {
      const range = window.pending();
      if (!range) return;
      // Sends are issued without waiting for each; the kernel queues them in order.
      const inFlight: Promise<void>[] = [];
      let last = { block: range.from, clean: true };
      for (let n = range.from; n <= range.to; n++) {
        let packet = unacked.get(n);
        const resent = packet !== undefined;
        let final = n === window.final;
        if (!packet) {
          const block = await source.next(n & 0xffff);
          packet = block.packet;
          final = block.final;
          unacked.set(n, packet);
        }
        if (this.#aborted) break;
        inFlight.push(this.#sendLossy(socket, packet));
        window.markSent(n, final);
        if (resent) this.#retransmits++;
        last = { block: n, clean: !resent };
        if (inFlight.length >= _PIPELINE) await Promise.all(inFlight.splice(0));
        if (final) break;
      }
      await Promise.all(inFlight);
      probe = { ...last, at: performance.now() };
      this.#inbox.arm(rto.rto);
    };

    if (oackPacket) {
      await this.#sendLossy(socket, oackPacket);
      probe = { block: 0, at: performance.now(), clean: true };
      this.#inbox.arm(rto.rto);
    } else {
      await sendPending();
    }
    let retries = 0;
    for (;;) {
      const packet = await this.#inbox.take();
      if (this.#aborted) return { ok: false, reason: this.#aborted, level: "info" };
      if (packet === null) {
        if (++retries > this.settings.maxRetries) {
          const unconfirmed = window.final !== null && window.sent === window.final;
          await socket.send(encodeError(ErrorCode.NOT_DEFINED, "timed out"), this.peer)
            .catch(() => {});
          return {
            ok: false,
            // A client that got the last block may leave without its ACK reaching us.
            reason: unconfirmed
              ? "final ACK never arrived (client may have the file)"
              : `no ACK after ${retries - 1} retransmissions`,
            level: unconfirmed ? "info" : "warn",
          };
        }
        logger.debug(_SUBSYSTEM, "timeout, retransmitting", {
          client: _label(this.peer),
          block: window.acked + 1,
          rto_ms: Math.round(rto.rto),
          retry: retries,
        });
        rto.backoff();
        window.onTimeout();
        if (window.awaitingOack && oackPacket) {
          await this.#sendLossy(socket, oackPacket);
          this.#retransmits++;
          if (probe) probe.clean = false;
          this.#inbox.arm(rto.rto);
        } else {
          await sendPending();
        }
        continue;
      }
      if (packet.op === Opcode.ACK) {
        const outcome = window.onAck(packet.block);
        if (outcome.kind === "duplicate") continue;
        retries = 0;
        if (probe && probe.clean && window.acked >= probe.block) {
          rto.sample(performance.now() - probe.at);
        } else rto.resetBackoff();
        if (probe && window.acked >= probe.block) probe = null;
        for (const n of unacked.keys()) {
          if (n > window.acked) break;
          unacked.delete(n);
        }
        if (outcome.kind === "done") return { ok: true };
        await sendPending();
        continue;
      }
      if (packet.op === Opcode.ERROR) {
        return {
          ok: false,
          reason: `client sent error ${packet.code}: ${packet.message}`,
          // PXE ROMs commonly ask for tsize alone, abort after the OACK and ask again.
          level: window.awaitingOack ? "debug" : "info",
        };
      }
      logger.debug(_SUBSYSTEM, "unexpected packet dropped", {
        client: _label(this.peer),
        op: packet.op,
      });
    }
  }
}
