/**
 * What the IPFS side reports as it works, for metrics and the live feed: files that reached
 * the cache or failed, gateways that failed a request, and what each cache gc removed.
 *
 * @module
 */

/** One IPFS event. */
export type IpfsEvent =
  | { kind: "file-cached"; path: string; bytes: number; blocks: number }
  | { kind: "file-failed"; path: string; error: string }
  | {
    kind: "gateway-failure";
    gateway: string;
    /** error: the request failed; not-found: the gateway lacks the block; rejected: a block failed verification or was over the size limit. */
    reason: "error" | "not-found" | "rejected";
  }
  | {
    kind: "cache-gc";
    /** Bytes removed: unreachable entries, stale temp files, and evictions for the limit. */
    freedBytes: number;
    /** Files and blocks removed (unreachable or evicted). */
    removedFiles: number;
    removedBlocks: number;
    /** Of those, files evicted (least recently used) to get under the limit. */
    evictedFiles: number;
    /** Bytes the cache holds afterwards, and its limit (0: none). */
    sizeBytes: number;
    maxBytes: number;
  };

/** Where IPFS events go. */
export type IpfsEventSink = (event: IpfsEvent) => void;
