/**
 * Rows a store read lately, by key, for a short time: a machine asking for its boot script reads
 * its row on every request, and a read of SQLite costs more than the rest of that answer's
 * bookkeeping. The store clears them on each of its own writes, so what this process wrote is
 * read at once; a write of another process (`astralboot machine reinstall`) is seen once the
 * row's time is up.
 *
 * @module
 */

/** How long a row read is used again: the staleness of another process's write. */
export const ROWS_KEPT_MS = 1000;

/** Rows by key, each used again for `keptMs` after it was read; see the module doc. */
export class RecentRows<V> {
  #rows = new Map<string, { value: V; at: number }>();

  constructor(
    /** How long a row is used again; 0 reads every time. */
    readonly keptMs = ROWS_KEPT_MS,
    /** Rows kept at most; beyond, the memory starts over. */
    readonly max = 10_000,
    /** A monotonic clock in ms. */
    readonly clock: () => number = performance.now.bind(performance),
  ) {}

  /** The row of `key`: the one read less than `keptMs` ago, else `read()`'s, kept. */
  get(key: string, read: () => V): V {
    if (this.keptMs <= 0) return read();
    const now = this.clock();
    const hit = this.#rows.get(key);
    if (hit && now - hit.at < this.keptMs && now >= hit.at) return hit.value;
    const value = read();
    if (!hit && this.#rows.size >= this.max) this.#rows.clear();
    this.#rows.set(key, { value, at: now });
    return value;
  }

  /** Forgets every row: the store wrote. */
  clear(): void {
    this.#rows.clear();
  }
}
