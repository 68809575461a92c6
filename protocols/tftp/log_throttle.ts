/**
 * A log line per key and interval for what a remote peer can repeat at will (requests over a
 * limit, peers that never answer), so that a flood of them cannot flood the log.
 *
 * @module
 */

/** One line per key per `intervalMs`; the next line tells how many were kept quiet. */
export class LogThrottle {
  readonly #seen = new Map<string, { at: number; quiet: number }>();

  constructor(
    /** The shortest time between two lines of one key. */
    readonly intervalMs = 10_000,
    /**
     * Keys remembered at once. With more (many forged sources at once) a new key stays quiet
     * until old ones expire, so the log gets at most this many lines per interval.
     */
    readonly maxKeys = 64,
  ) {}

  /**
   * Null when this event of `key` should stay out of the log; otherwise the number of its
   * events kept quiet since its last line.
   */
  pass(key: string, now: number = performance.now()): number | null {
    const seen = this.#seen.get(key);
    if (seen && now - seen.at < this.intervalMs) {
      seen.quiet++;
      return null;
    }
    if (!seen && this.#seen.size >= this.maxKeys) {
      for (const [k, v] of this.#seen) if (now - v.at >= this.intervalMs) this.#seen.delete(k);
      if (this.#seen.size >= this.maxKeys) return null;
    }
    this.#seen.delete(key);
    this.#seen.set(key, { at: now, quiet: 0 });
    return seen?.quiet ?? 0;
  }
}
