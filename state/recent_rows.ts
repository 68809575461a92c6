/**
 * Rows a store read lately, by key, for a short time: a machine asking for its boot script reads
 * its row on every request, and a read of SQLite costs more than the rest of that answer's
 * bookkeeping. Every write of a store over the same database handle drops them (the stores of an
 * old configuration still write for a moment after a reload), so what this process wrote is read
 * at once; a write of another process (`astralboot machine reinstall`) is seen once the row's
 * time is up.
 *
 * @module
 */

/** How long a row read is used again: the staleness of another process's write. */
export const ROWS_KEPT_MS = 1000;

/** Writes to one database as every store over it counts them; see {@linkcode writesTo}. */
export interface WriteCount {
  n: number;
}

const counts = new WeakMap<object, WriteCount>();

/**
 * The write count of `db`, shared by every {@linkcode RecentRows} over it: after a reload the new
 * stores and the old ones (their queued writes, a request still running) share one database, and
 * a write through either must drop the rows of both.
 */
export function writesTo(db: object): WriteCount {
  let c = counts.get(db);
  if (!c) counts.set(db, c = { n: 0 });
  return c;
}

/** Rows by key, each used again for `keptMs` after it was read; see the module doc. */
export class RecentRows<V> {
  #rows = new Map<string, { value: V; at: number }>();
  /** The count of writes when the rows were read. */
  #seen: number;

  constructor(
    /** Whose writes drop the rows: {@linkcode writesTo} of the database. */
    readonly writes: WriteCount = { n: 0 },
    /** How long a row is used again; 0 reads every time. */
    readonly keptMs = ROWS_KEPT_MS,
    /** Rows kept at most; beyond, the memory starts over. */
    readonly max = 10_000,
    /** A monotonic clock in ms. */
    readonly clock: () => number = performance.now.bind(performance),
  ) {
    this.#seen = writes.n;
  }

  /** The row of `key`: the one read less than `keptMs` ago, else `read()`'s, kept. */
  get(key: string, read: () => V): V {
    if (this.keptMs <= 0) return read();
    if (this.writes.n !== this.#seen) {
      this.#rows.clear();
      this.#seen = this.writes.n;
    }
    const now = this.clock();
    const hit = this.#rows.get(key);
    if (hit && now - hit.at < this.keptMs && now >= hit.at) return hit.value;
    const value = read();
    if (!hit && this.#rows.size >= this.max) this.#rows.clear();
    this.#rows.set(key, { value, at: now });
    return value;
  }

  /** A store over the database wrote: every RecentRows sharing `writes` reads again. */
  wrote(): void {
    this.writes.n++;
  }
}
