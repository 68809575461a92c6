/**
 * CAR streams from a gateway, read as a bag of blocks: roots are ignored, every block is
 * verified against its CID before it is yielded, and a cut-off stream is an error.
 *
 * @module
 */

import type { CID } from "multiformats";
import { CarBlockIterator } from "@ipld/car";
import { errorMessage } from "../log.ts";
import { checkCidSupported, MAX_BLOCK_SIZE, verifyBlock } from "./verify.ts";

/** Why a CAR stream was refused. */
export type CarProblem = "truncated" | "malformed" | "oversize";

/** A CAR stream that ended early, could not be parsed, or holds a section over the limit. */
export class CarError extends Error {
  constructor(message: string, readonly problem: CarProblem, options?: ErrorOptions) {
    super(message, options);
    this.name = "CarError";
  }
}

/** One verified block. */
export interface Block {
  cid: CID;
  bytes: Uint8Array;
}

/** Options for {@linkcode readCarBlocks}. */
export interface ReadCarOptions {
  /** Blocks for which this returns false are skipped unhashed (CAR roots carry no trust). */
  accept?: (cid: CID) => boolean;
  /** Largest block accepted; default {@linkcode MAX_BLOCK_SIZE}. */
  maxBlockSize?: number;
}

// Room for a section's length varint and CID in front of the block bytes.
const SECTION_OVERHEAD = 4096;

/**
 * Yields the verified blocks of a CAR byte stream in stream order.
 *
 * Throws {@linkcode CarError} for a truncated or malformed stream or an oversized section,
 * `BlockVerificationError` for a block whose bytes do not match its CID; errors of the
 * byte source itself (network, timeout) pass through unchanged.
 */
export async function* readCarBlocks(
  source: AsyncIterable<Uint8Array>,
  options: ReadCarOptions = {},
): AsyncGenerator<Block> {
  const maxBlock = options.maxBlockSize ?? MAX_BLOCK_SIZE;
  const guard = { pulledSinceBlock: 0, sourceError: undefined as unknown, ended: false };
  // @ipld/car buffers a whole section before it yields it, so a hostile length prefix would
  // make it read without end: refuse once more than a full section is pulled without a block.
  // @ipld/car never ends the iterable it reads when it stops early: ended here (below), or a
  // refused or abandoned CAR would keep its HTTP body open until the gateway's deadline.
  let it: AsyncIterator<Uint8Array> | undefined;
  async function* guarded(): AsyncGenerator<Uint8Array> {
    it = source[Symbol.asyncIterator]();
    while (true) {
      if (guard.pulledSinceBlock > maxBlock + SECTION_OVERHEAD) {
        throw new CarError(
          `CAR section larger than the ${maxBlock}-byte block limit`,
          "oversize",
        );
      }
      let step: IteratorResult<Uint8Array>;
      try {
        step = await it.next();
      } catch (err) {
        guard.sourceError = err;
        throw err;
      }
      if (step.done) {
        guard.ended = true;
        return;
      }
      guard.pulledSinceBlock += step.value.length;
      yield step.value;
    }
  }

  try {
    let iterator: CarBlockIterator;
    try {
      iterator = await CarBlockIterator.fromIterable(guarded());
    } catch (err) {
      throw mapError(err, guard);
    }
    const blocks = iterator[Symbol.asyncIterator]();
    while (true) {
      let step: IteratorResult<{ cid: CID; bytes: Uint8Array }>;
      try {
        step = await blocks.next();
      } catch (err) {
        throw mapError(err, guard);
      }
      if (step.done) return;
      guard.pulledSinceBlock = 0;
      const { cid, bytes } = step.value;
      if (bytes.length > maxBlock) {
        throw new CarError(`CAR block ${cid} is ${bytes.length} bytes, over the limit`, "oversize");
      }
      if (options.accept && !options.accept(cid)) continue;
      try {
        checkCidSupported(cid);
      } catch {
        continue;
      }
      await verifyBlock(cid, bytes);
      yield { cid, bytes };
    }
  } finally {
    // Not awaited: a source stuck in a read ends when that read does (its own deadline).
    it?.return?.()?.catch(() => {});
  }
}

function mapError(err: unknown, guard: { sourceError: unknown; ended: boolean }): unknown {
  if (err === guard.sourceError || err instanceof CarError) return err;
  const message = errorMessage(err);
  // Whatever the decoder says, failing once the bytes ran out means the stream was cut short.
  if (guard.ended || /unexpected end of data/i.test(message)) {
    return new CarError(`CAR stream truncated: ${message}`, "truncated", { cause: err });
  }
  return new CarError(`CAR stream malformed: ${message}`, "malformed", { cause: err });
}
