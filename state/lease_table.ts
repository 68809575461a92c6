/**
 * The lease table (`dhcp_leases`) held in memory, with SQLite as its durable copy: reads are
 * answered from memory, a change is made in memory at once and written to the database later,
 * together with the other changes of the same moment (group commit).
 *
 * Why: an ACK may only leave once its lease is on disk (an fsync per commit), and an fsync
 * costs milliseconds. One transaction per ACK capped the server at a few
 * hundred ACKs a second; here the changes of one event-loop turn share one transaction and one
 * fsync, and a request never waits for the database to answer the next one.
 *
 * Who waits for what:
 * - An ACK waits ({@linkcode LeaseTable.saved}): the commit runs at the end of the current
 *   event-loop turn, after every request already received was answered in memory, and at most
 *   once every {@linkcode COMMIT_GAP_MS}; the promises resolve after it and the sync of the log
 *   that follows it, in the order they were asked for.
 * - Offers, releases and declines are written with the next commit, and nobody waits for them:
 *   losing them in a crash is safe. An offer is a hold (RFC 2131 §3.1 (2): servers need not
 *   even reserve an offered address); after a restart the REQUEST for a lost offer gets a NAK
 *   or silence and the client starts over with a DISCOVER. A lost release leaves the lease with
 *   its holder until it runs out; a lost decline puts the address back in the pool, and the next
 *   client to get it declines it again.
 * - A busy database (another process holds the write lock; the connection must have
 *   `busy_timeout = 0`, or every commit would block the event loop while it waits) is tried
 *   again after {@linkcode RETRY_MS} (doubling up to 1 s) while requests go on being answered
 *   from memory; those waiting keep waiting (at most {@linkcode MAX_WAIT_MS}), then their
 *   `saved()` rejects (the ACK is not sent; the client asks again).
 * - A commit that fails otherwise (disk full, I/O error) rejects the `saved()` of everyone
 *   waiting for it; the changes stay in memory and are written with the next commit.
 * - A row the database refuses (a constraint, a value it cannot store: a bug, not a state of the
 *   disk) is left out of its commit, which goes on with the others; memory goes back to the row
 *   on disk, and the `saved()` that named its address rejects (its ACK is not sent). Before,
 *   such a row stayed pending and failed every later commit: one client's lease stopped all.
 * - A sync of the log that fails (an I/O error) rejects the `saved()` it covered, and every
 *   later one until a restart: the kernel may have dropped the pages it could not write, and
 *   the log is replayed only up to its first bad frame, so nothing written after is known to
 *   be on disk either. A sync that has not returned for `maxWaitMs` rejects those waiting for
 *   it, and new waiters at once until it returns.
 *
 * The commit runs on the main thread (node:sqlite has no asynchronous calls; with
 * `busy_timeout = 0` it never waits for a lock) but does not wait for the disk: the connection
 * runs with `synchronous = NORMAL`, and the table then syncs the write-ahead log itself on a
 * thread of Deno's pool ({@linkcode WriteAheadLog}, what FULL would do inside the commit), one
 * sync at a time; the `saved()` promises of a commit resolve when a sync that started after it
 * ends.
 * Before, FULL held the event loop for each fsync (1.6 ms median here, once every
 * {@linkcode COMMIT_GAP_MS} under load) while requests waited in the socket.
 *
 * One table per connection ({@linkcode LeaseTable.of}): the stores of every subnet and of every
 * reload share it; two copies in memory would disagree.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { numberToIpv4 } from "../net/ipv4.ts";
import { isBusy, isReadOnly, WriteAheadLog } from "./db.ts";
import { errorMessage } from "../log.ts";

/** The first wait before a busy database is tried again. */
export const RETRY_MS = 25;
/**
 * The shortest time between two commits, by default. A commit costs ~0.2 ms of CPU whatever
 * its size (measured here: one lease a commit 230 µs, twenty 70 µs, two hundred 52 µs each,
 * the binding included); under load this gathers the ACKs of several turns into one. A lone
 * ACK after a quiet moment is committed at the end of its turn, as before.
 */
export const COMMIT_GAP_MS = 5;
/** How long an ACK waits for a busy database before it is given up, by default. */
export const MAX_WAIT_MS = 10_000;

/** Options of {@linkcode LeaseTable.of}, taken when the table is made. */
export interface LeaseTableOptions {
  /** How long a `saved()` waits for a busy database; default {@linkcode MAX_WAIT_MS}. */
  maxWaitMs?: number;
  /** The shortest time between two commits; default {@linkcode COMMIT_GAP_MS}. */
  commitGapMs?: number;
  /** Told of each row the database refused (see the module doc), after its commit. */
  onRefused?: (row: LeaseRow, error: Error) => void;
  /**
   * Makes the commits so far durable; by default an fdatasync of the database's write-ahead
   * log ({@linkcode WriteAheadLog}). Given, it is used for any database (tests).
   */
  syncLog?: { sync(): Promise<void>; syncNow(): void; close(): void };
}

/** A stored state of a lease row. */
export type RowState = "offered" | "bound" | "released" | "declined";

/**
 * One row of the lease table: an address and its last holder. The address is kept as a number
 * only (`numberToIpv4` gives its text): a string per row cost ~40 bytes of heap a lease, 2 MiB
 * at the DHCP bench's 50 000.
 */
export interface LeaseRow {
  readonly ipnum: number;
  /** "" for a declined address (nobody holds it). */
  readonly mac: string;
  readonly clientId: string | null;
  readonly hostname: string | null;
  readonly state: RowState;
  /** When the lease, offer or quarantine ends (or ended), ms since the epoch. */
  readonly expires: number;
}

interface DbRow {
  ip: string;
  ipnum: number;
  mac: string;
  client_id: string | null;
  hostname: string | null;
  state: string;
  expires: number;
}

interface Waiter {
  /** The address whose row it waits for, if it named one. */
  ipnum: number | undefined;
  resolve: () => void;
  reject: (e: Error) => void;
  /** When it began waiting, `performance.now()`. */
  since: number;
}

const tables = new WeakMap<DatabaseSync, LeaseTable>();

/**
 * SQLite's primary result codes for a statement refused for its values: TOOBIG, CONSTRAINT,
 * MISMATCH, RANGE.
 */
const ROW_REFUSALS = new Set([18, 19, 20, 25]);

/**
 * Whether an upsert failed for its row's values rather than for the database: SQLite refused
 * them, or node:sqlite could not bind one (a TypeError, before the statement ran).
 */
function refusesRow(e: unknown): boolean {
  if (e instanceof TypeError) return true;
  return ROW_REFUSALS.has(((e as { errcode?: number })?.errcode ?? 0) % 256);
}

/**
 * A sync of the log that failed: what was written may be lost (the kernel forgets the pages it
 * could not write), so nobody waiting for it is told it is durable.
 */
function logNotSynced(e: unknown): Error {
  return new Error(`lease commit not synced to disk: ${(e as Error)?.message ?? e}`, { cause: e });
}

/**
 * What kind of failure withheld a `saved()`, from the errors this module makes: a refused row,
 * a sync of the log that failed or hangs, a database busy too long, else the commit itself.
 */
export function failureKind(e: Error): "refused" | "sync" | "busy" | "commit" {
  if (/^lease row of /.test(e.message)) return "refused";
  if (/^lease commit not synced to disk/.test(e.message)) return "sync";
  if (/^database busy for /.test(e.message)) return "busy";
  return "commit";
}

/** A sync of the log that has not returned for `ms`: a disk that hangs. */
function syncHung(ms: number): Error {
  return new Error(`lease commit not synced to disk: a sync has been running for ${ms | 0} ms`);
}

/**
 * The addresses under one key of an index: one address as a bare number, several as a list.
 * Nearly every MAC and host name has one address, and a list of one costs ~56 bytes more per
 * lease than the number (measured: 92.8 against 36.7 bytes an entry of a Map of 50 000 MACs).
 */
type Addresses = number | number[];

/** Adds `n` under `key`. */
function index<K>(map: Map<K, Addresses>, key: K, n: number): void {
  const had = map.get(key);
  if (had === undefined) map.set(key, n);
  else if (typeof had === "number") map.set(key, [had, n]);
  else had.push(n);
}

/** Takes `n` from under `key`. */
function unindex<K>(map: Map<K, Addresses>, key: K, n: number): void {
  const had = map.get(key);
  if (had === undefined) return;
  if (typeof had === "number") {
    if (had === n) map.delete(key);
    return;
  }
  const at = had.indexOf(n);
  if (at >= 0) had.splice(at, 1);
  if (had.length === 1) map.set(key, had[0]!);
  else if (had.length === 0) map.delete(key);
}

/** The addresses under `key`, in the order they were added. */
function indexed<K>(map: Map<K, Addresses>, key: K): readonly number[] {
  const had = map.get(key);
  return had === undefined ? [] : typeof had === "number" ? [had] : had;
}

/** The rows of `dhcp_leases` in memory, their indexes, and the group commit to SQLite. */
export class LeaseTable {
  #db: DatabaseSync;
  #rows = new Map<number, LeaseRow>();
  #byMac = new Map<string, Addresses>();
  #byHostname = new Map<string, Addresses>();
  #dirty = new Set<number>();
  /** The row on disk (undefined: none) of each pending address, to go back to when refused. */
  #onDisk = new Map<number, LeaseRow | undefined>();
  /** The rows the last commit refused, by address, with the database's error. */
  #refused = new Map<number, Error>();
  #deletions = 0;
  #onRefused: ((row: LeaseRow, error: Error) => void) | undefined;
  #waiters: Waiter[] = [];
  /** Whose commit is written, waiting for the next sync of the log. */
  #unsynced: Waiter[] = [];
  /** Whose commit the sync now running covers. */
  #syncing: Waiter[] | undefined;
  /** When the sync now running started (performance.now()). */
  #syncStarted = 0;
  /** Whether a commit wrote to the log since the last sync started (unwaited changes too). */
  #written = false;
  /** The first failed sync: after it, nothing written is known to be on disk (see #sync). */
  #broken: Error | undefined;
  /** Rejects those waiting for a sync that has not returned for `maxWaitMs`. */
  #hangTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** How commits become durable: undefined when each commit syncs itself (`FULL`). */
  #log: LeaseTableOptions["syncLog"];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #retryMs = RETRY_MS;
  #maxWaitMs: number;
  #gapMs: number;
  /** When the last commit ended (performance.now()). */
  #committedAt = -Infinity;
  #upsert: StatementSync | undefined;

  /**
   * The table of `db` (made, and loaded, on the first call, with `options`). It sets the handle
   * to `synchronous = NORMAL` when it syncs the log itself: give it a handle of its own (as
   * `serve` does), or the other tables' commits on that handle stop syncing theirs.
   */
  static of(db: DatabaseSync, options: LeaseTableOptions = {}): LeaseTable {
    let t = tables.get(db);
    if (!t) tables.set(db, t = new LeaseTable(db, options));
    return t;
  }

  private constructor(db: DatabaseSync, options: LeaseTableOptions) {
    this.#db = db;
    this.#maxWaitMs = options.maxWaitMs ?? MAX_WAIT_MS;
    this.#gapMs = options.commitGapMs ?? COMMIT_GAP_MS;
    this.#onRefused = options.onRefused;
    // saved() promises a lease that survives a power cut, whoever opened the handle: the
    // write-ahead log is synced after every commit, by the commit itself (FULL) when there is
    // no log of our own to sync.
    this.#log = options.syncLog ?? WriteAheadLog.of(db);
    db.exec(`PRAGMA synchronous = ${this.#log ? "NORMAL" : "FULL"}`);
    db.exec(`CREATE TABLE IF NOT EXISTS dhcp_leases (
      ip TEXT PRIMARY KEY,
      ipnum INTEGER NOT NULL,
      mac TEXT NOT NULL,
      client_id TEXT,
      hostname TEXT,
      state TEXT NOT NULL,
      expires INTEGER NOT NULL
    )`);
    // Every look-up is answered from memory; SQL only loads the whole table and writes rows by
    // address. Earlier releases kept three more indexes (MAC, address as a number, host name)
    // that no query used: each made every write update one more B-tree (13 against 8 µs an
    // upsert on 50 000 rows, measured here), so they are dropped.
    for (const name of ["dhcp_leases_mac", "dhcp_leases_ipnum", "dhcp_leases_hostname"]) {
      try {
        db.exec(`DROP INDEX IF EXISTS ${name}`);
      } catch (e) {
        // Only a speed-up: another process holding the lock, or a read-only handle (the
        // `leases` command of a user who may only read), leaves it to a later start.
        if (!isBusy(e) && !isReadOnly(e)) throw e;
      }
    }
    for (const r of db.prepare("SELECT * FROM dhcp_leases").all() as unknown as DbRow[]) {
      const ipnum = Number(r.ipnum);
      this.#replace(ipnum, this.#rows.get(ipnum), {
        ipnum,
        mac: r.mac,
        clientId: r.client_id,
        hostname: r.hostname,
        state: r.state as RowState,
        expires: Number(r.expires),
      });
    }
    // Reading made the log if it was not there: our handle from now on (see WriteAheadLog).
    if (this.#log instanceof WriteAheadLog) this.#log.open();
  }

  /** The row of an address (as a number), if it was ever handed out. */
  get(ipnum: number): LeaseRow | undefined {
    return this.#rows.get(ipnum);
  }

  /** The rows whose last holder is `mac`, in every subnet. */
  ofMac(mac: string): LeaseRow[] {
    return indexed(this.#byMac, mac).map((n) => this.#rows.get(n)!);
  }

  /** The rows with host name `hostname`, any case. */
  ofHostname(hostname: string): LeaseRow[] {
    return indexed(this.#byHostname, hostname.toLowerCase()).map((n) => this.#rows.get(n)!);
  }

  /** Every row, in no particular order. */
  rows(): IterableIterator<LeaseRow> {
    return this.#rows.values();
  }

  /** Sets the row of `row.ipnum` now; it is written to the database with the next commit. */
  put(row: LeaseRow): void {
    const old = this.#rows.get(row.ipnum);
    if (!this.#dirty.has(row.ipnum)) this.#onDisk.set(row.ipnum, old);
    this.#replace(row.ipnum, old, row);
    this.#dirty.add(row.ipnum);
  }

  /**
   * Resolves once every change made so far is on disk or was refused (see the module doc);
   * rejects when that commit failed or the database stayed busy for `maxWaitMs`, or, with
   * `ipnum`, when the database refused that address's row. The commit runs at the end of this
   * event-loop turn (or `commitGapMs` after the last one), so the changes of every request
   * answered meanwhile share it.
   */
  saved(ipnum?: number): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const stuck = this.#closed ? new Error("lease table closed") : this.#stuck();
    if (stuck) {
      reject(stuck);
      return promise;
    }
    this.#waiters.push({ ipnum, resolve, reject, since: performance.now() });
    this.#schedule(Math.max(0, this.#committedAt + this.#gapMs - performance.now()));
    return promise;
  }

  /**
   * How many addresses lost their row since the table was made: a refused first row of an
   * address (see the module doc) is taken out again. Otherwise rows are never deleted.
   */
  get deletions(): number {
    return this.#deletions;
  }

  /** Changes made in memory and not yet on disk. */
  get pending(): number {
    return this.#dirty.size;
  }

  /**
   * Writes every pending change now and settles the waiting `saved()` promises; throws (after
   * rejecting them) when the database is busy or the commit fails. For shutdown and tests.
   */
  flush(): void {
    this.#clearTimer();
    const failure = this.#commit();
    this.#settle(failure, true);
    if (failure) throw failure;
  }

  /** Writes what is pending (a failure is thrown) and stops retrying. */
  close(): void {
    if (this.#closed) return;
    try {
      this.flush();
    } finally {
      this.#closed = true;
      this.#clearTimer();
      this.#log?.close();
    }
  }

  /** Closes the table of `db` if one was made ({@linkcode close}); before `db` is closed. */
  static closeOf(db: DatabaseSync): void {
    tables.get(db)?.close();
  }

  /**
   * Makes `row` the row of `n` (undefined: none) where `old` was. An index changes only where
   * its key does: a lease rewritten for the same holder (the ACK after its offer, a renewal)
   * touches neither, where taking it out and putting it back left a deleted entry in the MAC
   * index each time, which then held twice the room (3.5 against 1.75 MiB at 50 000 leases).
   */
  #replace(n: number, old: LeaseRow | undefined, row: LeaseRow | undefined): void {
    if (row) this.#rows.set(n, row);
    else this.#rows.delete(n);
    const oldMac = old?.mac || undefined, mac = row?.mac || undefined;
    if (oldMac !== mac) {
      if (oldMac) unindex(this.#byMac, oldMac, n);
      if (mac) index(this.#byMac, mac, n);
    }
    const oldName = old?.hostname?.toLowerCase(), name = row?.hostname?.toLowerCase();
    if (oldName !== name) {
      if (oldName) unindex(this.#byHostname, oldName, n);
      if (name) index(this.#byHostname, name, n);
    }
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#run();
    }, ms);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The scheduled commit: settles the waiters, or keeps them and tries again when busy. */
  #run(): void {
    const failure = this.#commit();
    if (failure === null || !isBusy(failure)) return this.#settle(failure);
    // The monotonic clock: a wall clock stepped back (NTP) would keep them waiting for ever.
    const now = performance.now();
    const max = this.#maxWaitMs;
    const late = this.#waiters.filter((w) => now - w.since >= max);
    if (late.length > 0) {
      this.#waiters = this.#waiters.filter((w) => now - w.since < max);
      const e = new Error(`database busy for ${max / 1000} s`, { cause: failure });
      for (const w of late) w.reject(e);
    }
    if (this.#waiters.length === 0) return;
    this.#schedule(this.#retryMs);
    this.#retryMs = Math.min(this.#retryMs * 2, 1000);
  }

  /**
   * Rejects the waiters whose commit failed or refused their row; the others are resolved once
   * the log is synced: by the next sync, or (`now`) by one that blocks until it is done.
   */
  #settle(failure: Error | null, now = false): void {
    const waiters = this.#waiters;
    const refused = this.#refused;
    this.#waiters = [];
    this.#refused = new Map();
    this.#retryMs = RETRY_MS;
    const stuck = this.#stuck();
    for (const w of waiters) {
      const own = w.ipnum === undefined ? undefined : refused.get(w.ipnum);
      const error = failure ?? own ?? stuck;
      if (error) w.reject(error);
      else if (this.#log) this.#unsynced.push(w);
      else w.resolve();
    }
    if (!this.#log) return;
    if (!now) return this.#sync();
    // Everything written so far; the waiters of a sync still running get its own answer (the
    // kernel reports a write error to one of two syncs running at once, not to both).
    if (!this.#written && this.#unsynced.length === 0) return;
    const covered = this.#unsynced;
    this.#unsynced = [];
    this.#written = false;
    try {
      if (this.#broken) throw this.#broken;
      this.#log.syncNow();
    } catch (e) {
      const error = this.#broken ??= logNotSynced(e);
      for (const w of covered) w.reject(error);
      throw error;
    }
    for (const w of covered) w.resolve();
  }

  /**
   * Why nobody can be told their lease is on disk now, if so: a sync failed before (for good:
   * the log after a write the kernel dropped is not trusted until a restart), or the one
   * running has not returned for `maxWaitMs` (a disk that hangs: those waiting for it are turned
   * away then, and new ones at once, instead of piling up behind it).
   */
  #stuck(): Error | undefined {
    if (this.#broken) return this.#broken;
    if (!this.#syncing) return undefined;
    const ms = performance.now() - this.#syncStarted;
    if (ms < this.#maxWaitMs) return undefined;
    return syncHung(ms);
  }

  /**
   * Syncs the log for the commits written so far, one sync at a time: the commits written
   * while one runs wait for the next, which starts when it ends and covers them all.
   */
  #sync(): void {
    if (this.#closed || this.#syncing || this.#unsynced.length === 0) return;
    const batch = this.#syncing = this.#unsynced;
    this.#unsynced = [];
    this.#written = false;
    this.#syncStarted = performance.now();
    this.#hangTimer = setTimeout(() => {
      // Rejecting is always safe (the ACK is not sent); the late answer then settles nothing.
      const stuck = this.#stuck() ?? syncHung(this.#maxWaitMs);
      for (const w of [...batch, ...this.#unsynced]) w.reject(stuck);
      this.#unsynced = [];
    }, this.#maxWaitMs);
    let done: Promise<void>;
    try {
      if (this.#broken) throw this.#broken;
      done = this.#log!.sync();
    } catch (e) {
      done = Promise.reject(e);
    }
    const ended = () => {
      clearTimeout(this.#hangTimer);
      this.#syncing = undefined;
    };
    done.then(
      () => {
        ended();
        batch.forEach((w) => w.resolve());
      },
      (e) => {
        ended();
        // The commits it covered are in the log for readers, but may not be on disk; later ones
        // are chained after them (a log is replayed up to its first bad frame), so no later
        // sync can vouch for anything either.
        const error = this.#broken ??= logNotSynced(e);
        batch.forEach((w) => w.reject(error));
      },
    ).finally(() => this.#sync());
  }

  /** One transaction with every pending change; null when it is on disk, else the error. */
  #commit(): Error | null {
    if (this.#dirty.size === 0) return null;
    const db = this.#db;
    const refused = new Map<number, Error>();
    // A refusal that ended the whole transaction (a trigger's RAISE(ROLLBACK), an ON CONFLICT
    // ROLLBACK clause) starts it again without the rows refused so far: one more pass at most
    // per refused row.
    for (let undone = true; undone;) {
      undone = false;
      try {
        db.exec("BEGIN IMMEDIATE");
      } catch (e) {
        return e as Error;
      }
      try {
        this.#upsert ??= db.prepare(
          `INSERT INTO dhcp_leases (ip, ipnum, mac, client_id, hostname, state, expires)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT(ip) DO UPDATE SET mac = excluded.mac, client_id = excluded.client_id,
             hostname = excluded.hostname, state = excluded.state, expires = excluded.expires`,
        );
        for (const n of this.#dirty) {
          if (refused.has(n)) continue;
          const r = this.#rows.get(n)!;
          try {
            this.#upsert.run(
              numberToIpv4(r.ipnum),
              r.ipnum,
              r.mac,
              r.clientId,
              r.hostname,
              r.state,
              r.expires,
            );
          } catch (e) {
            // Usually the statement alone is undone and the transaction goes on.
            if (!refusesRow(e)) throw e;
            refused.set(
              n,
              new Error(`lease row of ${numberToIpv4(r.ipnum)} refused: ${errorMessage(e)}`),
            );
            if (!db.isTransaction) {
              undone = true;
              break;
            }
          }
        }
        if (!undone) db.exec("COMMIT");
      } catch (e) {
        try {
          db.exec("ROLLBACK");
        } catch { /* the failed COMMIT may have ended the transaction already */ }
        return e as Error;
      }
    }
    this.#committedAt = performance.now();
    this.#written = true;
    for (const [n, error] of refused) {
      const current = this.#rows.get(n)!;
      const before = this.#onDisk.get(n);
      this.#replace(n, current, before);
      if (!before) this.#deletions++;
      try {
        this.#onRefused?.(current, error);
      } catch { /* the hook's own failure is not the commit's: it is on disk */ }
    }
    this.#refused = refused;
    this.#dirty.clear();
    this.#onDisk.clear();
    return null;
  }
}
