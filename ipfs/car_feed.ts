/**
 * One CAR request feeding a file download: blocks arrive in the gateway's order and wait in a
 * bounded buffer until the file reader asks for them; whatever the CAR does not bring (it
 * ended early, was cut off, refused, came in an unhelpful order, or ran over its limits) the
 * reader fetches as single blocks instead.
 *
 * A CAR never holds the reader: the response has a byte budget and a deadline (see
 * {@linkcode carLimits}), and a reader that waits `waitMs` without the CAR bringing any new
 * block stops it. Each single block then has its own per-request timeout.
 *
 * @module
 */

import type { CID } from "multiformats";
import * as dagPb from "@ipld/dag-pb";
import { errorMessage, type Logger } from "../log.ts";
import { CarLimitError, type CarLimits, type GatewayClient } from "./gateway.ts";
import { CODEC } from "./verify.ts";

/** Default bytes held in the buffer before the CAR stream is paused. */
export const CAR_BUFFER_BYTES = 32 * 1024 * 1024;

/** Slowest average rate a CAR is given time for; slower, single blocks do as well. */
export const CAR_MIN_RATE = 1024 * 1024;

// dag-pb wrapping and CAR framing cost well under a tenth of the file for any sane chunk size;
// a quarter plus 1 MiB leaves room for small chunks and deep trees without inviting abuse.
const BUDGET_SLACK = 1024 * 1024;

/**
 * The limits of the CAR of a `size`-byte file: its size plus a quarter and 1 MiB for nodes
 * and framing, and the per-request timeout plus the time the file takes at {@linkcode CAR_MIN_RATE}.
 */
export function carLimits(size: number, timeoutMs: number, minRate = CAR_MIN_RATE): CarLimits {
  return {
    maxBytes: size + Math.ceil(size / 4) + BUDGET_SLACK,
    deadlineMs: deadlineMs(size, timeoutMs, minRate),
  };
}

/**
 * How long `size` bytes are given: the per-request timeout plus the time they take at `minRate`
 * bytes a second (Infinity for a rate of 0). A CAR's deadline, and a whole download's.
 */
export function deadlineMs(size: number, timeoutMs: number, minRate: number): number {
  return Math.ceil(timeoutMs + size / minRate * 1000);
}

/** Options for {@linkcode CarFeed}. */
export interface CarFeedOptions {
  /** Bytes held before the stream is paused; default {@linkcode CAR_BUFFER_BYTES}. */
  bufferBytes?: number;
  /** Longest a reader waits while the CAR brings no new block; default no limit. */
  waitMs?: number;
  /** Byte budget and deadline of the response. */
  limits?: CarLimits;
}

/** Blocks of `?format=car&dag-scope=entity` for one root, taken one by one. */
export class CarFeed {
  /** Blocks received and verified. */
  received = 0;
  /** Why the stream stopped early, if it did. */
  problem: string | undefined;
  #wanted = new Set<string>();
  #buffer = new Map<string, Uint8Array>();
  // Blocks handed to the reader: sent again, they are no progress (dups=n was asked for).
  #delivered = new Set<string>();
  #bytes = 0;
  #ended = false;
  #limit: number;
  #waitMs: number;
  #lastNew = performance.now();
  #abort = new AbortController();
  #wake: (() => void)[] = [];

  constructor(
    gateway: GatewayClient,
    root: CID,
    logger: Logger,
    options: CarFeedOptions = {},
  ) {
    this.#limit = options.bufferBytes ?? CAR_BUFFER_BYTES;
    this.#waitMs = options.waitMs ?? Infinity;
    this.#wanted.add(cidKey(root));
    this.#run(gateway, root, logger, options.limits ?? {});
  }

  /** The block if the CAR brings it, or null once it is clear that it will not. */
  async take(cid: CID): Promise<Uint8Array | null> {
    const key = cidKey(cid);
    const since = performance.now();
    while (true) {
      const bytes = this.#buffer.get(key);
      if (bytes) {
        this.#buffer.delete(key);
        this.#bytes -= bytes.length;
        this.#delivered.add(key);
        this.#notify();
        return bytes;
      }
      // Delivered before: the CAR sends each block once, so a repeat in the file is fetched.
      if (this.#ended || !this.#wanted.has(key) || this.#delivered.has(key)) return null;
      if (this.#bytes >= this.#limit) {
        // Full of blocks needed later while this one is missing: the order is not ours.
        this.stop("CAR order does not match the file; fetching blocks singly");
        return null;
      }
      const idle = performance.now() - Math.max(since, this.#lastNew);
      if (idle >= this.#waitMs) {
        this.#giveUp(
          new CarLimitError(`CAR brought no new block for ${Math.round(idle)} ms`, "progress"),
        );
        return null;
      }
      await this.#changed(this.#waitMs - idle);
    }
  }

  /** Tells the feed about a verified block the reader found elsewhere (the cache). */
  found(cid: CID, bytes: Uint8Array): void {
    this.#learn(cid, bytes);
    const key = cidKey(cid);
    this.#delivered.add(key);
    const held = this.#buffer.get(key);
    if (held) {
      this.#buffer.delete(key);
      this.#bytes -= held.length;
      this.#notify();
    }
  }

  /** Ends the request and frees the buffer. */
  stop(reason?: string): void {
    this.#end(reason, undefined);
  }

  /** Stops a CAR that brings nothing new; the error tells the gateway client it was at fault. */
  #giveUp(err: CarLimitError): void {
    this.#end(err.message, err);
  }

  #end(reason: string | undefined, fault: CarLimitError | undefined): void {
    if (reason && !this.problem) this.problem = reason;
    this.#ended = true;
    this.#abort.abort(fault);
    this.#buffer.clear();
    this.#bytes = 0;
    this.#notify();
  }

  async #run(gateway: GatewayClient, root: CID, logger: Logger, limits: CarLimits): Promise<void> {
    try {
      const blocks = gateway.streamCar(
        root,
        "entity",
        (cid) => this.#wanted.has(cidKey(cid)),
        this.#abort.signal,
        limits,
      );
      for await (const block of blocks) {
        if (this.#ended) break;
        this.received++;
        this.#learn(block.cid, block.bytes);
        const key = cidKey(block.cid);
        if (!this.#buffer.has(key) && !this.#delivered.has(key)) {
          this.#buffer.set(key, block.bytes);
          this.#bytes += block.bytes.length;
          this.#lastNew = performance.now();
        }
        this.#notify();
        while (this.#bytes >= this.#limit && !this.#ended) await this.#changed();
      }
    } catch (err) {
      if (!this.#abort.signal.aborted || err instanceof CarLimitError) {
        this.problem = errorMessage(err);
        logger.warn("ipfs", "CAR stream failed; fetching the rest as blocks", {
          cid: root.toString(),
          received: this.received,
          error: this.problem,
        });
      }
    } finally {
      this.#ended = true;
      this.#notify();
    }
  }

  #learn(cid: CID, bytes: Uint8Array): void {
    // Only blocks reached from the root through verified blocks are wanted.
    if (cid.code !== CODEC.dagPb) return;
    try {
      for (const link of dagPb.decode(bytes).Links) this.#wanted.add(cidKey(link.Hash));
    } catch {
      // Not dag-pb after all: it links nowhere, and the reader will say it is malformed.
    }
  }

  /** Resolves on the next change, or after `ms`. */
  #changed(ms = Infinity): Promise<void> {
    return new Promise((resolve) => {
      const timer = Number.isFinite(ms) ? setTimeout(wake, ms) : undefined;
      function wake() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake.push(wake);
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }
}

function cidKey(cid: CID): string {
  return cid.toV1().toString();
}
