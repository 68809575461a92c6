/**
 * The sender's side of a read transfer as a pure state machine: which blocks go out next,
 * what an ACK means, what a timeout resends. No sockets, no timers, no bytes.
 *
 * Blocks are counted with absolute numbers (1, 2, … past 65535); the wire carries the low
 * 16 bits. After 65535 the wire number wraps to 0, not 1: that is what tftp-hpa and atftp
 * (client and server) do, and it keeps `wire = absolute mod 65536` everywhere. Block 0 is the
 * OACK when one was sent. An ACK is mapped to the one absolute number in the window
 * `[acked, sent]` with its low bits; the window never exceeds 65535 blocks, so that is unique.
 *
 * Windowsize (RFC 7440): up to `windowsize` blocks go out, then the sender waits for the ACK of
 * the last; an ACK for an earlier one (the client saw a gap) restarts the window after it.
 * Duplicate and stale ACKs change nothing and send nothing (RFC 1123 §4.2.3.1, the Sorcerer's
 * Apprentice); only a timeout resends.
 *
 * @module
 */

/** What an incoming ACK did. */
export type AckOutcome =
  /** Acknowledges what was already acknowledged, or a block outside the window: ignore. */
  | { kind: "duplicate" }
  /** New blocks acknowledged; send what {@linkcode SendWindow.pending} lists now. */
  | { kind: "advance"; acked: number; rewound: boolean }
  /** The final block is acknowledged: the transfer is complete. */
  | { kind: "done" };

/** Sender state of one read transfer; see the module doc. */
export class SendWindow {
  /** Highest absolute block acknowledged; -1 while an OACK (block 0) waits for its ACK. */
  acked: number;
  /** Highest absolute block sent in the current round. */
  sent = 0;
  /** Absolute number of the last block, once the data source has run dry. */
  final: number | null = null;

  constructor(readonly windowsize: number, options: { oack: boolean }) {
    if (!Number.isInteger(windowsize) || windowsize < 1 || windowsize > 65535) {
      throw new RangeError(`windowsize must be 1-65535, got ${windowsize}`);
    }
    this.acked = options.oack ? -1 : 0;
  }

  /** Converts a block number from the wire to the absolute block in `[acked, sent]`, or null. */
  toAbsolute(wire: number): number | null {
    const distance = ((this.sent & 0xffff) - wire + 0x10000) & 0xffff;
    const abs = this.sent - distance;
    return abs >= this.acked && abs >= 0 ? abs : null;
  }

  /** Whether the OACK (block 0) is still unacknowledged. */
  get awaitingOack(): boolean {
    return this.acked < 0;
  }

  /** The absolute blocks to send now: from after `sent` to the end of the window. */
  pending(): { from: number; to: number } | null {
    if (this.acked < 0) return null;
    const end = this.acked + this.windowsize;
    const to = this.final === null ? end : Math.min(end, this.final);
    return this.sent + 1 <= to ? { from: this.sent + 1, to } : null;
  }

  /** Records that absolute block `n` went out; `isFinal` when it was shorter than blksize. */
  markSent(n: number, isFinal: boolean): void {
    if (n !== this.sent + 1) throw new RangeError(`block ${n} sent out of order (${this.sent})`);
    this.sent = n;
    if (isFinal) this.final = n;
  }

  /** Applies an ACK carrying `wire` as block number. */
  onAck(wire: number): AckOutcome {
    const abs = this.toAbsolute(wire);
    if (abs === null || abs <= this.acked) return { kind: "duplicate" };
    this.acked = abs;
    if (this.final !== null && abs === this.final) return { kind: "done" };
    const rewound = abs < this.sent;
    if (rewound) this.sent = abs;
    return { kind: "advance", acked: abs, rewound };
  }

  /** A timeout: the unacknowledged part of the window must go out again. */
  onTimeout(): void {
    if (this.acked >= 0) this.sent = this.acked;
  }
}
