/**
 * A client for IPFS Trustless Gateways (raw blocks and CAR streams, never deserialized
 * responses, never the Kubo RPC API), with ordered failover between gateways.
 *
 * Every block it returns is verified against its CID. A gateway that errs, times out or
 * sends bad data is tried last for a while; one that refuses CAR is asked for blocks only.
 *
 * @module
 */

import type { CID } from "multiformats";
import { errorMessage, type Logger, silentLogger } from "../log.ts";
import { type Block, readCarBlocks } from "./car.ts";
import {
  BlockVerificationError,
  checkCidSupported,
  identityBlock,
  MAX_BLOCK_SIZE,
  verifyBlock,
} from "./verify.ts";
import type { IpfsEventSink } from "./events.ts";

/** Options for {@linkcode GatewayClient}. */
export interface GatewayOptions {
  /** Gateway base URLs in order of preference, e.g. `http://127.0.0.1:8080`. */
  gateways: string[];
  /** Per request: a whole block request, or the longest wait for the next CAR bytes. */
  timeoutMs: number;
  logger?: Logger;
  /** How long a failing gateway is tried last; default 60 s. */
  penaltyMs?: number;
  /** Injected fetch, default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Told of every failed gateway request. */
  onEvent?: IpfsEventSink;
}

/** What one gateway said when asked for one CID. */
export interface GatewayAttempt {
  gateway: string;
  error: string;
}

/** No gateway could deliver a verified block; names the CID and every gateway tried. */
export class GatewayError extends Error {
  constructor(readonly cid: string, readonly attempts: GatewayAttempt[], options?: ErrorOptions) {
    super(
      `Cannot fetch ${cid}: ` +
        (attempts.length === 0
          ? "no gateway configured"
          : attempts.map((a) => `${a.gateway}: ${a.error}`).join("; ")),
      options,
    );
    this.name = "GatewayError";
  }
}

/** Bounds of one CAR response: past either, the stream is stopped with a {@linkcode CarLimitError}. */
export interface CarLimits {
  /** Most body bytes accepted (the entity's size and a margin for nodes and framing). */
  maxBytes?: number;
  /** Longest the whole response may take, from the request on. */
  deadlineMs?: number;
}

/** A CAR response stopped for running over its byte budget or its deadline, or for bringing nothing the reader needed. */
export class CarLimitError extends Error {
  constructor(message: string, readonly limit: "budget" | "deadline" | "progress") {
    super(message);
    this.name = "CarLimitError";
  }
}

/** Request counters, for logs, tests and the benchmark. */
export interface GatewayStats {
  blockRequests: number;
  carRequests: number;
  bytes: number;
  failures: number;
}

interface Health {
  failingUntil: number;
  noCarUntil: number;
  lastError?: string;
}

const RAW = "application/vnd.ipld.raw";
const CAR = "application/vnd.ipld.car";
// CAR refusals are a property of the gateway software, so they are remembered much longer.
const NO_CAR_MS = 10 * 60_000;

/** Ordered-failover client for a list of trustless gateways. */
export class GatewayClient {
  readonly gateways: readonly string[];
  readonly stats: GatewayStats = { blockRequests: 0, carRequests: 0, bytes: 0, failures: 0 };
  #timeoutMs: number;
  #penaltyMs: number;
  #logger: Logger;
  #fetch: typeof fetch;
  #onEvent: IpfsEventSink;
  #health = new Map<string, Health>();

  constructor(options: GatewayOptions) {
    // "http://gw/", "http://gw/ipfs" and "http://gw" all name the same gateway root.
    this.gateways = options.gateways.map((g) =>
      g.trim().replace(/\/+$/, "").replace(/\/ipfs$/, "")
    );
    this.#timeoutMs = options.timeoutMs;
    this.#penaltyMs = options.penaltyMs ?? 60_000;
    this.#logger = options.logger ?? silentLogger;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#onEvent = options.onEvent ?? (() => {});
    for (const g of this.gateways) this.#health.set(g, { failingUntil: 0, noCarUntil: 0 });
  }

  /** Gateways in the order they will be tried now: healthy ones first, as configured. */
  order(now = Date.now()): string[] {
    const healthy = this.gateways.filter((g) => this.#h(g).failingUntil <= now);
    const failing = this.gateways.filter((g) => this.#h(g).failingUntil > now)
      .sort((a, b) => this.#h(a).failingUntil - this.#h(b).failingUntil);
    return [...healthy, ...failing];
  }

  /** Whether a gateway is in its penalty period after a failure. */
  isFailing(gateway: string, now = Date.now()): boolean {
    return this.#h(gateway).failingUntil > now;
  }

  /** Fetches one block (`?format=raw`), verified; throws {@linkcode GatewayError}. */
  async getBlock(cid: CID, signal?: AbortSignal): Promise<Uint8Array> {
    const inline = identityBlock(cid);
    if (inline) return inline;
    // Refused before any gateway is asked: a hash we cannot check is no gateway's fault.
    checkCidSupported(cid);
    const attempts: GatewayAttempt[] = [];
    for (const gateway of this.order()) {
      signal?.throwIfAborted();
      try {
        const bytes = await this.#rawOnce(gateway, cid, signal);
        this.#ok(gateway);
        return bytes;
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        attempts.push({ gateway, error: errorText(err) });
        this.#fail(gateway, cid, err, !(err instanceof NotFound));
      }
    }
    throw new GatewayError(cid.toString(), attempts);
  }

  /**
   * Streams the verified blocks of a CAR for `cid` (`?format=car&dag-scope=…`) from the first
   * gateway that serves CAR; yields nothing when none does. `accept` says which CIDs count
   * (the caller's wanted set); others are skipped. Errors after the first block propagate
   * (the caller fetches what is missing as blocks); errors before it fail over. Each response
   * is held to `limits`; a caller that aborts with a {@linkcode CarLimitError} as the reason
   * (it waited too long for a block) counts as the gateway's fault too.
   */
  async *streamCar(
    cid: CID,
    scope: "entity" | "all",
    accept: (cid: CID) => boolean,
    signal?: AbortSignal,
    limits: CarLimits = {},
  ): AsyncGenerator<Block> {
    for (const gateway of this.order()) {
      if (this.#h(gateway).noCarUntil > Date.now()) continue;
      signal?.throwIfAborted();
      let yielded = 0;
      try {
        const body = await this.#carOnce(gateway, cid, scope, signal, limits);
        if (!body) continue;
        for await (const block of readCarBlocks(body, { accept })) {
          yielded++;
          yield block;
        }
        this.#ok(gateway);
        return;
      } catch (err) {
        if (signal?.aborted) {
          if (signal.reason instanceof CarLimitError) this.#carLimit(gateway, cid, signal.reason);
          throw signal.reason;
        }
        if (err instanceof CarLimitError) this.#carLimit(gateway, cid, err);
        else this.#fail(gateway, cid, err, !(err instanceof NotFound));
        if (yielded > 0) throw err;
      }
    }
  }

  async #rawOnce(gateway: string, cid: CID, signal?: AbortSignal): Promise<Uint8Array> {
    this.stats.blockRequests++;
    const url = `${gateway}/ipfs/${cid}?format=raw`;
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    // The timeout covers the whole body: a server (or fetch) that ignores the signal and
    // trickles bytes forever is abandoned all the same.
    const res = await abortable(
      this.#fetch(url, { headers: { accept: RAW }, signal: both }),
      both,
      cancelBody,
    );
    if (!res.ok) {
      await cancelBody(res);
      if (res.status === 404 || res.status === 410) throw new NotFound(res.status);
      throw new Error(`HTTP ${res.status}`);
    }
    const bytes = await readAll(res, MAX_BLOCK_SIZE, cid.toString(), both);
    this.stats.bytes += bytes.length;
    await verifyBlock(cid, bytes);
    return bytes;
  }

  async #carOnce(
    gateway: string,
    cid: CID,
    scope: string,
    signal: AbortSignal | undefined,
    limits: CarLimits,
  ): Promise<AsyncIterable<Uint8Array> | null> {
    this.stats.carRequests++;
    const url = `${gateway}/ipfs/${cid}?format=car&dag-scope=${scope}`;
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const deadline = limits.deadlineMs === undefined ? undefined : setTimeout(
      () =>
        controller.abort(
          new CarLimitError(
            `CAR response not complete within its ${limits.deadlineMs} ms deadline`,
            "deadline",
          ),
        ),
      limits.deadlineMs,
    );
    const release = () => {
      clearTimeout(deadline);
      signal?.removeEventListener("abort", onAbort);
    };
    const timer = setTimeout(
      () => controller.abort(new DOMException("CAR request timed out", "TimeoutError")),
      this.#timeoutMs,
    );
    let res: Response;
    try {
      res = await abortable(
        this.#fetch(url, {
          headers: { accept: `${CAR}; version=1; order=dfs; dups=n` },
          signal: controller.signal,
        }),
        controller.signal,
        cancelBody,
      );
    } catch (err) {
      release();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const type = res.headers.get("content-type") ?? "";
    if (res.status === 406 || res.status === 501 || (res.ok && !type.startsWith(CAR))) {
      // A gateway without CAR support is healthy, just not for this: remember and move on.
      release();
      await cancelBody(res);
      this.#h(gateway).noCarUntil = Date.now() + NO_CAR_MS;
      this.#logger.debug("ipfs", "gateway does not serve CAR", { gateway, status: res.status });
      return null;
    }
    if (!res.ok || !res.body) {
      release();
      await cancelBody(res);
      if (res.status === 404 || res.status === 410) throw new NotFound(res.status);
      throw new Error(`HTTP ${res.status}`);
    }
    return this.#bounded(res.body, controller, limits.maxBytes ?? Infinity, release);
  }

  /**
   * The body of a CAR response, read under its bounds: the idle timeout between reads, the
   * byte budget, and (through `controller`) the deadline and the caller's abort. Every read
   * races the abort, so a body that never settles cannot hold the reader.
   */
  async *#bounded(
    body: ReadableStream<Uint8Array>,
    controller: AbortController,
    maxBytes: number,
    done: () => void,
  ): AsyncGenerator<Uint8Array> {
    const reader = body.getReader();
    let total = 0;
    try {
      while (true) {
        const timer = setTimeout(
          () => controller.abort(new DOMException("CAR stream stalled", "TimeoutError")),
          this.#timeoutMs,
        );
        let step: ReadableStreamReadResult<Uint8Array>;
        try {
          step = await abortable(reader.read(), controller.signal);
        } finally {
          clearTimeout(timer);
        }
        if (step.done) return;
        total += step.value.length;
        this.stats.bytes += step.value.length;
        if (total > maxBytes) {
          throw new CarLimitError(
            `CAR response over its ${maxBytes}-byte budget`,
            "budget",
          );
        }
        yield step.value;
      }
    } finally {
      done();
      // Not awaited: a hostile body's cancel may never settle either.
      reader.cancel().catch(() => {});
    }
  }

  #h(gateway: string): Health {
    let h = this.#health.get(gateway);
    if (!h) {
      h = { failingUntil: 0, noCarUntil: 0 };
      this.#health.set(gateway, h);
    }
    return h;
  }

  #ok(gateway: string): void {
    const h = this.#h(gateway);
    if (h.failingUntil > 0) this.#logger.info("ipfs", "gateway recovered", { gateway });
    h.failingUntil = 0;
  }

  /** A CAR that ran over its limits: its blocks may still be good, its CARs are not for now. */
  #carLimit(gateway: string, cid: CID, err: CarLimitError): void {
    this.stats.failures++;
    this.#onEvent({
      kind: "gateway-failure",
      gateway,
      reason: err.limit === "budget" ? "rejected" : "error",
    });
    const h = this.#h(gateway);
    h.lastError = err.message;
    h.noCarUntil = Date.now() + NO_CAR_MS;
    this.#logger.warn("ipfs", "CAR response stopped; not asking this gateway for CAR for a while", {
      gateway,
      cid: cid.toString(),
      error: err.message,
    });
  }

  #fail(gateway: string, cid: CID, err: unknown, penalize: boolean): void {
    this.stats.failures++;
    const reason = err instanceof NotFound
      ? "not-found"
      : err instanceof BlockVerificationError
      ? "rejected"
      : "error";
    this.#onEvent({ kind: "gateway-failure", gateway, reason });
    const h = this.#h(gateway);
    h.lastError = errorText(err);
    if (penalize) {
      const wasFailing = h.failingUntil > Date.now();
      h.failingUntil = Date.now() + this.#penaltyMs;
      (wasFailing ? this.#logger.debug : this.#logger.warn)("ipfs", "gateway failed", {
        gateway,
        cid: cid.toString(),
        error: h.lastError,
      });
    } else {
      this.#logger.debug("ipfs", "gateway does not have block", { gateway, cid: cid.toString() });
    }
  }
}

class NotFound extends Error {
  constructor(status: number) {
    super(`HTTP ${status} (not found)`);
  }
}

/**
 * `promise`, or the abort reason of `signal` as soon as it fires, whatever `promise` does.
 * What `promise` brings after that is handed to `discard` (a response whose body must go).
 */
export function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  discard?: (late: T) => unknown,
): Promise<T> {
  if (signal.aborted) {
    promise.then((late) => discard?.(late), () => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      settled = true;
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        if (settled) discard?.(value);
        else resolve(value);
      },
      (err) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** Lets a response's body go without waiting on it (a hostile body may never settle). */
function cancelBody(res: Response): Promise<void> {
  res.body?.cancel().catch(() => {});
  return Promise.resolve();
}

async function readAll(
  res: Response,
  limit: number,
  cid: string,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? "NaN");
  if (declared > limit) {
    await cancelBody(res);
    throw new BlockVerificationError(
      `block of ${declared} bytes is over the ${limit}-byte limit`,
      cid,
    );
  }
  if (!res.body) return new Uint8Array(0);
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  try {
    while (true) {
      const { done, value } = await abortable(reader.read(), signal);
      if (done) break;
      total += value.length;
      if (total > limit) {
        throw new BlockVerificationError(
          `block over the ${limit}-byte limit`,
          cid,
        );
      }
      parts.push(value);
    }
  } catch (err) {
    reader.cancel().catch(() => {});
    throw err;
  }
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function errorText(err: unknown): string {
  if (err instanceof DOMException && err.name === "TimeoutError") return "timed out";
  return errorMessage(err);
}
