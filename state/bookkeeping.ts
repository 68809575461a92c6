/**
 * Bookkeeping a boot never waits for (contacts, what machines report, history lines), written
 * off the request path: queued in memory and written in one transaction at most `delayMs`
 * (100 ms) after the first of a batch, through the best-effort handle of `state/db.ts`.
 *
 * One transaction per batch instead of one per write: every commit is an fsync
 * (`synchronous = FULL`), which cost ~1 ms each and three per boot script request. A write
 * queued under a key replaces the one still waiting under that key (the newest contact of a
 * machine is all that counts). While another process holds the database lock (an admin's
 * backup), the batch is kept and tried again every second; beyond `maxPending` writes the
 * oldest go, and say so. {@linkcode Bookkeeping.close} writes what is left: nothing is lost at
 * a clean shutdown.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Logger } from "../log.ts";
import { isBusy } from "./db.ts";

/** What a queued write is, for the log: how many of each kind were kept or lost. */
export type BookkeepingKind = "contact" | "inventory" | "history";

/** Options for {@linkcode Bookkeeping}. */
export interface BookkeepingOptions {
  /** How long the first write of a batch waits for others; default 100 ms. */
  delayMs?: number;
  /** How long after a busy database the batch is tried again; default 1000 ms. */
  retryMs?: number;
  /** Writes kept at most while the database is busy; default 10 000. */
  maxPending?: number;
  logger?: Logger;
}

interface Pending {
  kind: BookkeepingKind;
  write: (db: DatabaseSync) => void;
}

/** The queue of best-effort writes of one database handle; see the module doc. */
export class Bookkeeping {
  readonly #db: DatabaseSync;
  readonly #o: Required<Omit<BookkeepingOptions, "logger">> & { logger?: Logger };
  #pending = new Map<unknown, Pending>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #dropped = 0;
  #next = 0;

  /** `db`: the handle that gives up at once when another process holds the lock. */
  constructor(db: DatabaseSync, options: BookkeepingOptions = {}) {
    this.#db = db;
    this.#o = {
      delayMs: options.delayMs ?? 100,
      retryMs: options.retryMs ?? 1000,
      maxPending: options.maxPending ?? 10_000,
      logger: options.logger,
    };
  }

  /** Writes waiting for their batch. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Queues `write` for the next batch; under a `key`, it replaces the write still waiting under
   * that key and runs where the newest was queued (after what was queued before it).
   */
  queue(kind: BookkeepingKind, key: string | null, write: (db: DatabaseSync) => void): void {
    const k = key ?? this.#next++;
    this.#pending.delete(k);
    this.#pending.set(k, { kind, write });
    if (this.#pending.size > this.#o.maxPending) {
      const oldest = this.#pending.keys().next().value;
      this.#pending.delete(oldest);
      this.#dropped++;
    }
    this.#schedule(this.#o.delayMs);
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, ms);
    // A queue is no reason to keep the process alive: close() writes it at the end.
    Deno.unrefTimer(this.#timer);
  }

  /**
   * Writes every queued write in one transaction now. True when the queue is empty after;
   * false when the database was busy (the writes stay queued and are tried again later).
   */
  flush(): boolean {
    this.#reportDropped();
    if (this.#pending.size === 0) return true;
    const batch = this.#pending;
    this.#pending = new Map();
    try {
      // IMMEDIATE: a lock held by another process shows here, before any write.
      this.#db.exec("BEGIN IMMEDIATE");
    } catch (e) {
      this.#failed(batch, e);
      return false;
    }
    const failures = new Map<BookkeepingKind, { count: number; error: unknown }>();
    for (const p of batch.values()) {
      try {
        p.write(this.#db);
      } catch (e) {
        // One bad write (a constraint, a closed statement) costs itself, not the batch.
        const f = failures.get(p.kind);
        if (f) f.count++;
        else failures.set(p.kind, { count: 1, error: e });
      }
    }
    try {
      this.#db.exec("COMMIT");
    } catch (e) {
      try {
        this.#db.exec("ROLLBACK");
      } catch { /* no transaction left to end */ }
      this.#failed(batch, e);
      return false;
    }
    for (const [kind, f] of failures) {
      this.#o.logger?.warn("database", `${kind} write failed`, { count: f.count, error: f.error });
    }
    return this.#pending.size === 0;
  }

  /** A batch that could not be committed: kept when the database was busy, else lost. */
  #failed(batch: Map<unknown, Pending>, e: unknown): void {
    const counts = countKinds(batch.values());
    if (!isBusy(e)) {
      this.#o.logger?.warn("database", "bookkeeping not written", { ...counts, error: e });
      return;
    }
    // Older writes first again, then whatever came meanwhile (the newer of a key wins).
    for (const [k, p] of this.#pending) {
      batch.delete(k);
      batch.set(k, p);
    }
    this.#pending = batch;
    while (this.#pending.size > this.#o.maxPending) {
      this.#pending.delete(this.#pending.keys().next().value);
      this.#dropped++;
    }
    this.#o.logger?.debug("database", "database busy: bookkeeping kept for the next try", counts);
    this.#schedule(this.#o.retryMs);
  }

  #reportDropped(): void {
    if (this.#dropped === 0) return;
    this.#o.logger?.warn("database", "database busy too long: oldest bookkeeping dropped", {
      writes: this.#dropped,
    });
    this.#dropped = 0;
  }

  /** Writes what is queued (the server is stopping); what a busy database refused is lost. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.flush()) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#o.logger?.warn("database", "database busy at shutdown: bookkeeping lost", {
      ...countKinds(this.#pending.values()),
    });
    this.#pending.clear();
  }
}

/** `{ history: 3, contact: 1 }` of a batch, for a log line. */
function countKinds(items: Iterable<Pending>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of items) out[p.kind] = (out[p.kind] ?? 0) + 1;
  return out;
}
