/**
 * Option negotiation for read requests: blksize (RFC 2348), tsize and timeout (RFC 2349),
 * windowsize (RFC 7440), framed by RFC 2347.
 *
 * Pure: request options + server limits in, the OACK to send and the transfer parameters out.
 * RFC 2347 §3 lets each option's RFC say what happens to an invalid value; none of these four
 * asks for an error, so invalid values are left out of the OACK and the default applies
 * (tftp-hpa answers error 8 instead, which aborts boots of clients that send, for example,
 * `timeout 0`). Values above a server maximum are lowered, as RFC 2348 and RFC 7440 allow.
 *
 * @module
 */
import { DEFAULT_BLKSIZE, MAX_BLKSIZE } from "./packet.ts";

/** Blksize that fills one Ethernet frame: MTU − IPv4 (20) − UDP (8) − TFTP (4) headers. */
export function blksizeForMtu(mtu: number): number {
  return Math.max(DEFAULT_BLKSIZE, Math.min(MAX_BLKSIZE, Math.floor(mtu) - 32));
}

/** Default cap on blksize: one 1500-byte Ethernet frame, so no IP fragmentation. */
export const DEFAULT_MAX_BLKSIZE = 1468;
/** Default cap on windowsize; RFC 7440 §4 measured little gain past 16–64 on a LAN. */
export const DEFAULT_MAX_WINDOWSIZE = 64;

/**
 * The most bytes of one window (windowsize × (blksize + 4)) a transfer may ask for: the server
 * keeps a window's packets until they are acknowledged, and a client asking 65535 blocks of
 * 65464 bytes would have it hold 4 GiB. Jumbo frames (9000) still get a window of 58.
 */
export const MAX_WINDOW_BYTES = 512 * 1024;

/** What the server allows and knows about the file. */
export interface NegotiationLimits {
  /** Largest blksize granted (8–65464). */
  maxBlksize: number;
  /** Largest windowsize granted (1–65535). */
  maxWindowsize: number;
  /** File size for tsize, or null when not known exactly (netascii, streamed sources). */
  size: number | null;
}

/** The outcome of negotiation. */
export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** The client's timeout option in milliseconds, or null when it sent none (or an invalid one). */
  timeoutMs: number | null;
  /** Options to acknowledge, in the client's order; empty means: send DATA 1 directly. */
  oack: Map<string, string>;
  /** Requested options left out of the OACK, with the reason, for debug logs. */
  ignored: Map<string, string>;
}

/** Per option: the value to acknowledge, or why the option is left out. */
const RULES: Record<string, (n: number, limits: NegotiationLimits) => number | string> = {
  // RFC 2348 §2: 8–65464; larger requests mean "as large as possible" (tftp-hpa agrees).
  blksize: (n, l) => n < 8 ? `${n} is below 8` : Math.min(n, l.maxBlksize),
  // RFC 2349 §3: a read request carries 0 and the OACK the real size.
  tsize: (_n, l) => l.size ?? "size not known exactly",
  // RFC 2349 §2: 1–255 s, echoed unchanged.
  timeout: (n) => n < 1 || n > 255 ? `${n} is outside 1-255` : n,
  // RFC 7440 §3: 1–65535; the OACK may lower it.
  windowsize: (n, l) => n < 1 ? `${n} is below 1` : Math.min(n, l.maxWindowsize),
};

/** A decimal option value; null for anything else (signs, spaces, hex, empty). */
function decimal(value: string): number | null {
  if (!/^\d+$/.test(value)) return null;
  // Absurdly long digit strings are well-formed, just huge: every rule caps or refuses them.
  return value.length > 9 ? Number.MAX_SAFE_INTEGER : Number(value);
}

/** Negotiates the options of a read request against the server's limits. */
export function negotiateOptions(
  requested: Map<string, string>,
  limits: NegotiationLimits,
): Negotiated {
  const caps: NegotiationLimits = {
    maxBlksize: Math.max(8, Math.min(MAX_BLKSIZE, limits.maxBlksize)),
    maxWindowsize: Math.max(1, Math.min(65535, limits.maxWindowsize)),
    size: limits.size,
  };
  const oack = new Map<string, string>();
  const ignored = new Map<string, string>();
  for (const [name, value] of requested) {
    // Own keys only: an option named "constructor" must not find Object's.
    const rule = Object.hasOwn(RULES, name) ? RULES[name] : undefined;
    const n = decimal(value);
    const result = !rule
      ? "not supported"
      : n === null
      ? `value ${JSON.stringify(value)} is not a decimal number`
      : rule(n, caps);
    if (typeof result === "string") ignored.set(name, result);
    else oack.set(name, String(result));
  }
  const timeout = oack.get("timeout");
  const blksize = Number(oack.get("blksize") ?? DEFAULT_BLKSIZE);
  let windowsize = Number(oack.get("windowsize") ?? 1);
  // Lowered after the loop: the client may name windowsize before blksize.
  const fits = Math.max(1, Math.floor(MAX_WINDOW_BYTES / (blksize + 4)));
  if (windowsize > fits) oack.set("windowsize", String(windowsize = fits));
  return {
    blksize,
    windowsize,
    timeoutMs: timeout === undefined ? null : Number(timeout) * 1000,
    oack,
    ignored,
  };
}
