/**
 * A token bucket: at most `rate` events a second on average, `burst` at once. For what a
 * remote peer can ask for at will, with a forged source or a new MAC each time: TFTP's error
 * replies (`protocols/tftp/server.ts`), so that the server cannot be made to send them at the
 * rate they are asked for, and the addresses DHCP binds for strangers (`state/leases.ts`).
 *
 * @module
 */

/** `take()` is true while the bucket has a token; tokens come back at `rate` a second. */
export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(
    /** Tokens a second. */
    readonly rate: number,
    /** Tokens the bucket holds when full (and at the start). */
    readonly burst: number,
    /** A clock in ms; one stepped back adds no token and takes none, and counts on from there. */
    readonly now: () => number = performance.now.bind(performance),
  ) {
    if (!(rate > 0) || !(burst >= 1)) {
      throw new RangeError(`a token bucket needs rate > 0 and burst >= 1 (got ${rate}, ${burst})`);
    }
    this.#tokens = burst;
    this.#at = now();
  }

  /** Takes a token: false when none is left (the event should not happen). */
  take(): boolean {
    const now = this.now();
    this.#tokens = Math.min(
      this.burst,
      this.#tokens + Math.max(0, now - this.#at) / 1000 * this.rate,
    );
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
