/**
 * Adaptive retransmission timeout, after RFC 6298 (TCP's SRTT/RTTVAR estimator).
 *
 * RFC 1123 §4.2.3.2 requires TFTP to adapt its timeout; a fixed 1 s (tftp-hpa) turns every lost
 * packet on a LAN into a second of silence. Here the timeout follows the measured round trip,
 * so on a LAN it settles at the floor (`minMs`) and a loss costs tens of milliseconds.
 * Karn's rule: samples come only from blocks sent once (the caller's job).
 *
 * @module
 */

/** Bounds of the estimator, milliseconds. */
export interface RtoOptions {
  /** Before the first sample (RFC 6298 says 1 s; a LAN boot wants less). */
  initialMs: number;
  /** Floor; keeps scheduler jitter from causing spurious resends. */
  minMs: number;
  /** Ceiling, also for backoff; see {@linkcode backoffCeiling}. */
  maxMs: number;
}

/** Defaults for a LAN: 250 ms before any sample, 50 ms floor, 6 s ceiling. */
export const DEFAULT_RTO: RtoOptions = { initialMs: 250, minMs: 50, maxMs: backoffCeiling(null) };

/**
 * The backoff ceiling for a client: one second above its own retransmission timer (its
 * `timeout` option, else the 5 s that tftp-hpa and atftp use). It must be above: atftp answers
 * a repeated block with one extra ACK and then ignores repeats, and every packet it receives
 * restarts its timer — if that extra ACK is lost, only a silence longer than the client's
 * timer lets it send its ACK again (measured: transfers stuck until given up under 10 % loss).
 */
export function backoffCeiling(clientTimeoutMs: number | null): number {
  return (clientTimeoutMs ?? 5000) + 1000;
}

/** RFC 6298 §2 estimator with exponential backoff (§5.5). */
export class RtoEstimator {
  #srtt: number | null = null;
  #rttvar = 0;
  #rto: number;
  readonly #opts: RtoOptions;

  constructor(options: RtoOptions = DEFAULT_RTO) {
    const minMs = Math.max(1, options.minMs);
    const maxMs = Math.max(minMs, options.maxMs);
    this.#opts = { minMs, maxMs, initialMs: options.initialMs };
    this.#rto = this.#clamp(options.initialMs);
  }

  /** The current timeout in milliseconds. */
  get rto(): number {
    return this.#rto;
  }

  /** Smoothed round trip, or null before the first sample. */
  get srtt(): number | null {
    return this.#srtt;
  }

  #clamp(ms: number): number {
    return Math.min(this.#opts.maxMs, Math.max(this.#opts.minMs, ms));
  }

  /** Feeds one round-trip measurement (ms) from a block that was sent exactly once. */
  sample(rttMs: number): void {
    const r = Math.max(0, rttMs);
    if (this.#srtt === null) {
      this.#srtt = r;
      this.#rttvar = r / 2;
    } else {
      // alpha = 1/8, beta = 1/4 (RFC 6298 §2.3); RTTVAR first, it uses the old SRTT.
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - r);
      this.#srtt = 0.875 * this.#srtt + 0.125 * r;
    }
    this.resetBackoff();
  }

  /**
   * Drops the backoff once the peer acknowledges new data. RFC 6298 §5.7 keeps the backed-off
   * value until a clean sample; in lockstep on a lossy LAN that let one unlucky block after
   * another inherit seconds of timeout (measured: 1.6 s gaps under 10 % loss). An ACK for new
   * data proves the path works, so the estimate applies again.
   */
  resetBackoff(): void {
    this.#rto = this.#srtt === null
      ? this.#clamp(this.#opts.initialMs)
      : this.#clamp(this.#srtt + Math.max(1, 4 * this.#rttvar));
  }

  /** Doubles the timeout after an expiry (RFC 6298 §5.5), up to the ceiling. */
  backoff(): void {
    this.#rto = this.#clamp(this.#rto * 2);
  }
}
