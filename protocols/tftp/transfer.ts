/**
 * One read transfer of the TFTP server, on its own socket (its TID, RFC 1350 §4): asks the
 * `open` handler for a stream, negotiates options, then sends windows of DATA
 * ({@linkcode SendWindow}) with an adaptive retransmission timeout ({@linkcode RtoEstimator})
 * until the last block is acknowledged, the peer goes silent or errors.
 *
 * The socket is read only when the transfer waits for its peer (`Inbox.wanted`), and a window
 * goes out in one call where the socket can (`sendMany`). When this is the server's only
 * transfer and the peer answers within a fraction of a millisecond, the read spins for the
 * answer instead of sleeping: under Deno a wake-up through the epoll thread costs tens of µs,
 * more than a lockstep block on a LAN takes otherwise (measured: see tests/bench/README.md).
 *
 * @module
 */
import { errorMessage, type Logger } from "../../log.ts";
import { BlockSource } from "./blocks.ts";
import { netasciiStream } from "./netascii.ts";
import { negotiateOptions } from "./options.ts";
import {
  decodeTftp,
  encodeError,
  encodeTftp,
  ErrorCode,
  Opcode,
  type RequestPacket,
  type TftpPacket,
} from "./packet.ts";
import { backoffCeiling, RtoEstimator, type RtoOptions } from "./rto.ts";
import { SendWindow } from "./window.ts";
import { Inbox } from "./inbox.ts";
import type { LogThrottle } from "./log_throttle.ts";
import type { TokenBucket } from "../../net/token_bucket.ts";
import type {
  TftpClient,
  TftpListen,
  TftpOpen,
  TftpOpenResult,
  TftpSocket,
  TftpTransferEvent,
} from "./server.ts";

const SUBSYSTEM = "tftp";
/** DATA sends issued before waiting for them to complete, on a socket without `sendMany`. */
const PIPELINE = 8;
/** Longest smoothed round trip (ms) for which the reader spins instead of sleeping. */
const SPIN_RTT_MS = 0.25;
/** Longest spin (µs): past it the reader sleeps until the peer's datagram wakes it. */
const SPIN_MAX_US = 400;
/**
 * Retransmissions of the first packet (OACK, or block 1) while the peer has acknowledged
 * nothing. A request's source address can be forged: each retransmission to a peer that never
 * asked is traffic aimed at it, so such a transfer ends early and silently. A real client
 * that lost them all asks again.
 */
const EARLY_RETRIES = 2;
/** Ceiling of each wait before the first ACK, whatever `timeout` option the request carried. */
const EARLY_MAX_RTO_MS = 1000;

const OPEN_ERRORS = {
  "not-found": ErrorCode.FILE_NOT_FOUND,
  "forbidden": ErrorCode.ACCESS_VIOLATION,
  "unavailable": ErrorCode.NOT_DEFINED,
} as const;

/** `address:port`, for log lines. */
export function label(c: TftpClient): string {
  return `${c.address}:${c.port}`;
}

/** What every transfer of one server shares. */
export interface Settings {
  onTransfer: (event: TftpTransferEvent) => void;
  /** Log lines a remote peer can cause at will go through here. */
  throttle: LogThrottle;
  /**
   * Error replies to packets that belong to no transfer (error 5 to a stranger, a refused or
   * malformed request): their source may be forged, so the server sends them at a bounded rate.
   */
  strayReplies: TokenBucket;
  address: string;
  open: TftpOpen;
  listen: TftpListen;
  logger: Logger;
  maxBlksize: number;
  maxWindowsize: number;
  rto: RtoOptions;
  maxRetries: number;
  /** Transfers running now; the reader spins only when its transfer is the only one. */
  running: () => number;
}

/** How a transfer ended, for the summary log line. */
type Outcome =
  | { ok: true }
  | { ok: false; reason: string; level: "debug" | "info" | "warn"; unanswered?: boolean };

/** One read transfer on its own socket. */
export class ReadTransfer {
  readonly done: Promise<void>;
  #resolveDone!: () => void;
  #aborted: string | null = null;
  /** Set as the transfer ends: its socket closes, and a receive that fails then is expected. */
  #ended = false;
  #abortWaiters: (() => void)[] = [];
  #window: SendWindow | null = null;
  #socket: TftpSocket | null = null;
  readonly #inbox = new Inbox();
  readonly #started = performance.now();
  #retransmits = 0;
  /** How long the reader may spin for the peer's next datagram (µs); 0: sleep at once. */
  #spinUs = 0;

  constructor(
    readonly settings: Settings,
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

  /** Whether it got a socket of its own (its TID); until then it has said nothing. */
  get listening(): boolean {
    return this.#socket !== null;
  }

  async run(): Promise<void> {
    try {
      this.#socket = this.settings.listen(this.settings.address, 0);
      if (this.#aborted) return;
      this.#receiveLoop(this.#socket, new Uint8Array(4096));
      await this.#serve(this.#socket);
    } finally {
      this.#ended = true;
      this.#socket?.close();
      this.#inbox.close();
      this.#resolveDone();
    }
  }

  /**
   * Hands the peer's packets to the inbox whenever the transfer waits for one; answers
   * strangers with error 5 (RFC 1350 §4), as often as `strayReplies` allows.
   */
  async #receiveLoop(socket: TftpSocket, buffer: Uint8Array): Promise<void> {
    const { logger } = this.settings;
    for (;;) {
      await this.#inbox.wanted();
      let got;
      try {
        const spinUs = this.settings.running() === 1 ? this.#spinUs : 0;
        got = await socket.receive(buffer, spinUs > 0 ? { spinUs } : undefined);
      } catch (e) {
        if (this.#ended || this.#aborted) return; // closed
        // The socket failed under a running transfer: it ends now, saying why, instead of
        // retransmitting into silence until it gives up as if the client had gone.
        logger.warn(SUBSYSTEM, "cannot receive on the transfer's socket", {
          client: label(this.peer),
          error: e,
        });
        // Told, so that it asks again at once instead of waiting for its own timeout.
        socket.send(encodeError(ErrorCode.NOT_DEFINED, "server failed, try again"), this.peer)
          .catch(() => {});
        this.abort(`cannot receive: ${errorMessage(e)}`);
        return;
      }
      const { data, from } = got;
      if (from.address !== this.peer.address || from.port !== this.peer.port) {
        logger.debug(SUBSYSTEM, "packet from unknown transfer ID", {
          client: label(this.peer),
          from: label(from),
        });
        if (this.settings.strayReplies.take()) {
          socket.send(encodeError(ErrorCode.UNKNOWN_TID, "unknown transfer ID"), from)
            .catch(() => {});
        }
        continue;
      }
      let packet: TftpPacket;
      try {
        packet = decodeTftp(data);
      } catch (e) {
        logger.debug(SUBSYSTEM, "malformed packet dropped", {
          client: label(this.peer),
          error: e,
        });
        continue;
      }
      if (!this.#inbox.push(packet)) {
        logger.debug(SUBSYSTEM, "inbox full, packet dropped", { client: label(this.peer) });
      }
    }
  }

  async #serve(socket: TftpSocket): Promise<void> {
    const { logger, open } = this.settings;
    const req = this.request;
    const fields = { file: req.filename, client: label(this.peer), mode: req.mode };
    /** `stray`: a refusal that needs no file (a write, mail mode) goes out at the strays' rate. */
    const refuse = async (
      code: number,
      message: string,
      level: "debug" | "info" | "warn",
      stray = false,
    ) => {
      if (!stray || this.settings.strayReplies.take()) {
        await socket.send(encodeError(code, message), this.peer).catch(() => {});
      }
      logger[level](SUBSYSTEM, "request refused", { ...fields, code, reason: message });
      this.settings.onTransfer({
        result: "refused",
        file: req.filename,
        client: this.peer,
        bytes: 0,
        blocks: 0,
        blksize: 512,
        windowsize: 1,
        ms: Math.round(performance.now() - this.#started),
        retransmits: 0,
        reason: message,
      });
    };
    if (req.op === Opcode.WRQ) {
      return refuse(ErrorCode.ACCESS_VIOLATION, "read-only server", "info", true);
    }
    if (req.mode === "mail") {
      return refuse(ErrorCode.ILLEGAL_OPERATION, "mail mode is not supported", "info", true);
    }
    let opened: TftpOpenResult | null;
    const opening = open(req.filename, this.peer);
    try {
      opened = await this.#unlessAborted(opening);
    } catch (e) {
      logger.warn(SUBSYSTEM, "open failed", { ...fields, error: e });
      return refuse(ErrorCode.NOT_DEFINED, "cannot read file", "debug");
    }
    if (opened === null) {
      // Aborted while the store was still opening (a slow IPFS fetch): the stream it hands
      // over later has no reader, so it is released here or its file stays open for good.
      opening.then((r) => "stream" in r ? r.stream.cancel() : undefined).catch(() => {});
      const reason = this.#aborted ?? "aborted";
      logger.info(SUBSYSTEM, "transfer failed", { ...fields, reason });
      this.settings.onTransfer({
        result: "failed",
        file: req.filename,
        client: this.peer,
        bytes: 0,
        blocks: 0,
        blksize: 512,
        windowsize: 1,
        ms: Math.round(performance.now() - this.#started),
        retransmits: 0,
        reason,
      });
      return;
    }
    if ("error" in opened) {
      return refuse(OPEN_ERRORS[opened.error], opened.message, "info");
    }
    const netascii = req.mode === "netascii";
    const stream = netascii ? opened.stream.pipeThrough(netasciiStream()) : opened.stream;
    const neg = negotiateOptions(req.options, {
      maxBlksize: this.settings.maxBlksize,
      maxWindowsize: this.settings.maxWindowsize,
      size: netascii ? null : opened.size,
    });
    if (neg.ignored.size > 0) {
      logger.debug(SUBSYSTEM, "options not acknowledged", {
        ...fields,
        ignored: Object.fromEntries(neg.ignored),
      });
    }
    const source = new BlockSource(stream, neg.blksize, neg.windowsize);
    let outcome: Outcome;
    try {
      outcome = await this.#send(socket, source, neg.oack, neg.windowsize, neg.timeoutMs);
    } catch (e) {
      outcome = { ok: false, reason: errorMessage(e), level: "warn" };
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
      logger.info(SUBSYSTEM, "transfer done", summary);
      this.settings.onTransfer({ ...summary, result: "done", client: this.peer });
      if (!netascii && source.bytes !== opened.size) {
        logger.warn(SUBSYSTEM, "file size changed during transfer", {
          ...fields,
          announced: opened.size,
          sent: source.bytes,
        });
      }
    } else {
      logger[outcome.level](SUBSYSTEM, "transfer failed", { ...summary, reason: outcome.reason });
      const quiet = outcome.unanswered
        ? this.settings.throttle.pass(`unanswered ${this.peer.address}`)
        : null;
      if (quiet !== null) {
        // Once per address and interval: forged requests would otherwise write one each.
        logger.info(SUBSYSTEM, "client never acknowledged, transfer dropped", {
          ...fields,
          reason: outcome.reason,
          hint: "a firewall on the client side blocking the server's transfer port?",
          suppressed: quiet,
        });
      }
      this.settings.onTransfer({
        ...summary,
        result: "failed",
        client: this.peer,
        reason: outcome.reason,
      });
    }
  }

  /**
   * Sends packets the retransmission timer covers, in order: a failed send (a local firewall
   * drop is EPERM, a full queue ENOBUFS) counts as a lost packet, not as the end of the
   * transfer.
   */
  #sendLossy(socket: TftpSocket, packets: readonly Uint8Array[]): Promise<void> {
    return sendAll(socket, packets, this.peer).catch((e) => {
      this.settings.logger.debug(SUBSYSTEM, "send failed, will retransmit", {
        client: label(this.peer),
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
  ): Promise<Outcome> {
    const { logger } = this.settings;
    const window = new SendWindow(windowsize, { oack: oack.size > 0 });
    this.#window = window;
    const rto = new RtoEstimator({
      ...this.settings.rto,
      maxMs: timeoutMs === null ? this.settings.rto.maxMs : backoffCeiling(timeoutMs),
    });
    const oackPacket = oack.size > 0 ? encodeTftp({ op: Opcode.OACK, options: oack }) : null;
    /** The last block of the latest burst: an RTT sample if it was sent only once (Karn). */
    let probe: { block: number; at: number; clean: boolean } | null = null;
    /** Whether the peer acknowledged anything yet: before that, it may never have asked. */
    let heard = false;
    const arm = () => this.#inbox.arm(heard ? rto.rto : Math.min(rto.rto, EARLY_MAX_RTO_MS));
    const earlyRetries = Math.min(EARLY_RETRIES, this.settings.maxRetries);

    /** The packets of one window, sent together; views of the source's ring. */
    const batch: Uint8Array[] = [];
    const sendPending = async () => {
      const range = window.pending();
      if (!range) return;
      batch.length = 0;
      let last = { block: range.from, clean: true };
      for (let n = range.from; n <= range.to; n++) {
        const resent = n <= source.read;
        let packet = source.packet(n);
        if (packet instanceof Promise) {
          // While the stream is read, what is ready goes out.
          if (batch.length > 0) await this.#sendLossy(socket, batch.splice(0));
          // Raced with an abort: a store that stalls must not hold the transfer (nor close()).
          // Once the abort won, a late failure of the read is nobody's to handle.
          packet.catch(() => {});
          const read = await this.#unlessAborted(packet);
          if (read === null) break;
          packet = read;
        }
        if (this.#aborted) break;
        const final = source.final === n;
        batch.push(packet);
        window.markSent(n, final);
        if (resent) this.#retransmits++;
        last = { block: n, clean: !resent };
        if (final) break;
      }
      if (batch.length > 0) await this.#sendLossy(socket, batch);
      probe = { ...last, at: performance.now() };
      arm();
    };

    if (oackPacket) {
      await this.#sendLossy(socket, [oackPacket]);
      probe = { block: 0, at: performance.now(), clean: true };
      arm();
    } else {
      await sendPending();
    }
    let retries = 0;
    for (;;) {
      const packet = await this.#inbox.take();
      if (this.#aborted) return { ok: false, reason: this.#aborted, level: "info" };
      if (packet === null) {
        if (!heard && retries >= earlyRetries) {
          // No error packet: a peer that never spoke after its request gets nothing more.
          const only = window.final !== null && window.final === window.sent;
          return {
            ok: false,
            reason: `no ACK to the ${oackPacket ? "OACK" : only ? "only block" : "first block"} ` +
              `after ${retries} retransmissions${only ? " (client may have the file)" : ""}`,
            level: "debug",
            unanswered: true,
          };
        }
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
        logger.debug(SUBSYSTEM, "timeout, retransmitting", {
          client: label(this.peer),
          block: window.acked + 1,
          rto_ms: Math.round(rto.rto),
          retry: retries,
        });
        rto.backoff();
        window.onTimeout();
        if (window.awaitingOack && oackPacket) {
          await this.#sendLossy(socket, [oackPacket]);
          this.#retransmits++;
          if (probe) probe.clean = false;
          arm();
        } else {
          await sendPending();
        }
        continue;
      }
      if (packet.op === Opcode.ACK) {
        const outcome = window.onAck(packet.block);
        if (outcome.kind === "duplicate") continue;
        heard = true;
        retries = 0;
        if (probe && probe.clean && window.acked >= probe.block) {
          rto.sample(performance.now() - probe.at);
          const srtt = rto.srtt!;
          this.#spinUs = srtt <= SPIN_RTT_MS ? Math.min(SPIN_MAX_US, 2000 * srtt + 50) : 0;
        } else rto.resetBackoff();
        if (probe && window.acked >= probe.block) probe = null;
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
      logger.debug(SUBSYSTEM, "unexpected packet dropped", {
        client: label(this.peer),
        op: packet.op,
      });
    }
  }
}

/** Sends `packets` in order: in one call where the socket can, else a few at a time. */
async function sendAll(
  socket: TftpSocket,
  packets: readonly Uint8Array[],
  to: TftpClient,
): Promise<void> {
  if (socket.sendMany) return await socket.sendMany(packets, to);
  // The kernel queues them in order; sends are issued without waiting for each.
  for (let i = 0; i < packets.length; i += PIPELINE) {
    await Promise.all(packets.slice(i, i + PIPELINE).map((p) => socket.send(p, to)));
  }
}
