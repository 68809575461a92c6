/**
 * One CAR request feeding a file download: blocks arrive in the gateway's order and wait in a
 * bounded buffer until the file reader asks for them; whatever the CAR does not bring (it
 * ended early, was cut off, refused, or came in an unhelpful order) the reader fetches as
 * single blocks instead.
 *
 * @module
 */

import type { CID } from "multiformats";
import * as dagPb from "@ipld/dag-pb";
import type { Logger } from "../log.ts";
import type { GatewayClient } from "./gateway.ts";
import { CODEC } from "./verify.ts";

/** Default bytes held in the buffer before the CAR stream is paused. */
export const CAR_BUFFER_BYTES = 32 * 1024 * 1024;

/** Blocks of `?format=car&dag-scope=entity` for one root, taken one by one. */
export class CarFeed {
  /** Blocks received and verified. */
  received = 0;
  /** Why the stream stopped early, if it did. */
  problem: string | undefined;
  #wanted = new Set<string>();
  #buffer = new Map<string, Uint8Array>();
  #bytes = 0;
  #ended = false;
  #limit: number;
  #abort = new AbortController();
  #wake: (() => void)[] = [];

  constructor(
    gateway: GatewayClient,
    root: CID,
    logger: Logger,
    limit = CAR_BUFFER_BYTES,
  ) {
    this.#limit = limit;
    this.#wanted.add(cidKey(root));
    this.#run(gateway, root, logger);
  }

  /** The block if the CAR brings it, or null once it is clear that it will not. */
  async take(cid: CID): Promise<Uint8Array | null> {
    const key = cidKey(cid);
    while (true) {
      const bytes = this.#buffer.get(key);
      if (bytes) {
        this.#buffer.delete(key);
        this.#bytes -= bytes.length;
        this.#notify();
        return bytes;
      }
      if (this.#ended || !this.#wanted.has(key)) return null;
      if (this.#bytes >= this.#limit) {
        // Full of blocks needed later while this one is missing: the order is not ours.
        this.stop("CAR order does not match the file; fetching blocks singly");
        return null;
      }
      await this.#changed();
    }
  }

  /** Tells the feed about a verified block the reader found elsewhere (the cache). */
  found(cid: CID, bytes: Uint8Array): void {
    this.#learn(cid, bytes);
    const key = cidKey(cid);
    const held = this.#buffer.get(key);
    if (held) {
      this.#buffer.delete(key);
      this.#bytes -= held.length;
      this.#notify();
    }
  }

  /** Ends the request and frees the buffer. */
  stop(reason?: string): void {
    if (reason && !this.problem) this.problem = reason;
    this.#ended = true;
    this.#abort.abort();
    this.#buffer.clear();
    this.#bytes = 0;
    this.#notify();
  }

  async #run(gateway: GatewayClient, root: CID, logger: Logger): Promise<void> {
    try {
      const blocks = gateway.streamCar(
        root,
        "entity",
        (cid) => this.#wanted.has(cidKey(cid)),
        this.#abort.signal,
      );
      for await (const block of blocks) {
        if (this.#ended) break;
        this.received++;
        this.#learn(block.cid, block.bytes);
        const key = cidKey(block.cid);
        if (!this.#buffer.has(key)) {
          this.#buffer.set(key, block.bytes);
          this.#bytes += block.bytes.length;
        }
        this.#notify();
        while (this.#bytes >= this.#limit && !this.#ended) await this.#changed();
      }
    } catch (err) {
      if (!this.#abort.signal.aborted) {
        this.problem = err instanceof Error ? err.message : String(err);
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

  #changed(): Promise<void> {
    return new Promise((resolve) => this.#wake.push(resolve));
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
