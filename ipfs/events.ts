/**
 * What the IPFS side reports as it works, for metrics and the live feed: files that reached
 * the cache or failed, and gateways that failed a request.
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
  };

/** Where IPFS events go. */
export type IpfsEventSink = (event: IpfsEvent) => void;
