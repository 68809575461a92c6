/**
 * The one SQLite database (`leases.db` under `data_dir`), shared by leases and machines.
 *
 * Each module that keeps state creates its own tables with `CREATE TABLE IF NOT EXISTS` in
 * its constructor, given the handle opened here. WAL keeps readers (the API, `astralboot
 * leases`) from blocking the DHCP server, and a reader is never blocked by a writer.
 *
 * Three handles on one file: the main one waits up to 2 s for a lock and commits durably
 * (`synchronous = FULL`: a machine's install state survives a power cut); the lease table's
 * (`state/lease_table.ts`) commits durably too (an acknowledged lease survives a power cut: it
 * syncs the write-ahead log itself after each commit, {@linkcode WriteAheadLog}) but never waits
 * for a lock: it tries again later; the best-effort one gives up at once and does
 * not sync each commit (`NORMAL`: a power cut may lose the last few, never corrupts), for
 * bookkeeping a boot must never wait for (contacts, history). Statements run one at a time in
 * this process, so only another process's lock ever makes them give up.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname, join } from "node:path";
import { errorMessage } from "../log.ts";

/** A database file that cannot be used: damaged, or not a database at all. */
export class DatabaseError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DatabaseError";
  }
}

/** Options for {@linkcode openDatabaseFile}. */
export interface OpenOptions {
  /** How long a write waits for another connection's lock; default 2000 ms. */
  busyTimeoutMs?: number;
  /**
   * "FULL" (default) syncs the write-ahead log on every commit; "NORMAL" only at checkpoints,
   * for writes that may be lost in a power cut.
   */
  synchronous?: "FULL" | "NORMAL";
}

/** Opens (creating if needed) `<dataDir>/leases.db` in WAL mode; ":memory:" for tests. */
export function openDatabase(dataDir: string | ":memory:"): DatabaseSync {
  if (dataDir === ":memory:") return new DatabaseSync(":memory:");
  return openDatabaseFile(join(dataDir, "leases.db"));
}

/**
 * Opens (creating it and its folder if needed) the database file `db_file` in WAL mode.
 * Throws {@linkcode DatabaseError} when the file is not a database.
 */
export function openDatabaseFile(file: string, options: OpenOptions = {}): DatabaseSync {
  Deno.mkdirSync(dirname(file), { recursive: true });
  keepPrivate(file);
  try {
    const db = new DatabaseSync(file);
    db.exec(
      `PRAGMA busy_timeout = ${options.busyTimeoutMs ?? 2000}; PRAGMA journal_mode = WAL; ` +
        `PRAGMA synchronous = ${options.synchronous ?? "FULL"};`,
    );
    return db;
  } catch (e) {
    throw databaseError(file, e);
  }
}

/**
 * The database holds the key that signs installer callbacks (`state/secrets.ts`): it is made
 * mode 0600 whatever the umask, and an existing one readable by others is made so too (SQLite
 * gives its `-wal` and `-shm` files the database's mode). A file another user owns is left as
 * it is (the open then says what is wrong, if anything).
 */
function keepPrivate(file: string): void {
  try {
    Deno.writeFileSync(file, new Uint8Array(), { createNew: true, mode: 0o600 });
    return;
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) return;
  }
  try {
    const mode = Deno.statSync(file).mode;
    if (mode !== null && (mode & 0o077) !== 0) Deno.chmodSync(file, mode & 0o700);
  } catch { /* not ours to change */ }
}

/** The error for a failure on `file`: with the way out when the file is damaged. */
function databaseError(file: string, e: unknown): DatabaseError {
  const message = errorMessage(e);
  if (/malformed|not a database/.test(message)) return damaged(file, message);
  return new DatabaseError(`${file}: ${message}`, { cause: e });
}

function damaged(file: string, what: string, cause?: unknown): DatabaseError {
  return new DatabaseError(
    `${file} is damaged (${what}); stop, move it aside and start again: leases are learnt anew`,
    { cause },
  );
}

/**
 * Checks the database with `PRAGMA quick_check`; throws {@linkcode DatabaseError} naming the
 * first problem. Done once at start, so a damaged file stops the server with one clear line
 * instead of failing every boot later.
 */
export function checkDatabase(db: DatabaseSync, file: string): void {
  let rows: { quick_check: string }[];
  try {
    rows = db.prepare("PRAGMA quick_check").all() as { quick_check: string }[];
  } catch (e) {
    throw databaseError(file, e);
  }
  const problems = rows.map((r) => r.quick_check).filter((r) => r !== "ok");
  if (problems.length > 0) {
    const n = problems.length;
    // A report may span lines ("*** in database main ***", then the trees): the message is one.
    const lines = problems[0]!.split("\n").map((l) => l.trim()).filter(Boolean);
    const first = lines.find((l) => !/^\*\*\*.*\*\*\*$/.test(l)) ?? lines.join(" ");
    throw damaged(file, `${n} problem${n > 1 ? "s" : ""}, the first: ${first}`);
  }
}

/** SQLite's "database is locked" (SQLITE_BUSY), as node:sqlite reports it. */
export function isBusy(e: unknown): boolean {
  const err = e as { errcode?: number; code?: string; message?: string };
  return (err?.errcode ?? 0) % 256 === 5 ||
    /database is locked|SQLITE_BUSY/.test(err?.message ?? "");
}

/** Whether `e` is SQLite's "attempt to write a readonly database" (SQLITE_READONLY). */
export function isReadOnly(e: unknown): boolean {
  const err = e as { errcode?: number; message?: string };
  return (err?.errcode ?? 0) % 256 === 8 || /readonly database/.test(err?.message ?? "");
}

/**
 * The write-ahead log (`<file>-wal`) of a database in WAL mode, synced through a handle of our
 * own: a connection with `synchronous = NORMAL` whose commit is followed by {@linkcode sync}
 * has, once it resolves, what `FULL` gives at the return of the commit (FULL is NORMAL plus a
 * sync of the log after each commit; checkpoints sync the log and the database in both, and
 * SQLite rewrites the log's start only after a checkpoint synced it all into the database). The
 * difference: the wait for the disk runs on a thread of Deno's pool while the event loop goes
 * on, instead of inside the commit. Assumes SQLite's default powersafe overwrite (FULL pads a
 * commit to a sector without it).
 */
export class WriteAheadLog {
  #file: Deno.FsFile | undefined;

  private constructor(readonly path: string) {}

  /** The log of `db`'s main database; undefined when it has none (in memory, not WAL). */
  static of(db: DatabaseSync): WriteAheadLog | undefined {
    const mode = db.prepare("PRAGMA journal_mode").get() as { journal_mode?: string };
    if (mode?.journal_mode !== "wal") return undefined;
    const main = (db.prepare("PRAGMA database_list").all() as { name: string; file: string }[])
      .find((d) => d.name === "main");
    return main?.file ? new WriteAheadLog(`${main.file}-wal`) : undefined;
  }

  /** Makes everything written to the log so far durable (fdatasync), off the event loop. */
  async sync(): Promise<void> {
    await this.#handle().syncData();
  }

  /** The same, blocking: for shutdown. */
  syncNow(): void {
    this.#handle().syncDataSync();
  }

  /**
   * Opens our handle now if it can (else the first sync does, and says why not): from then on a
   * write to the log that the kernel could not make is reported to it, whoever wrote.
   */
  open(): void {
    try {
      this.#handle();
    } catch { /* not there yet, or not ours to open: the first sync tells */ }
  }

  /** Closes our handle; a sync still running finishes on it. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }

  /**
   * Our handle on the log, opened when the table is made ({@linkcode open}) or at the first sync
   * (a commit has made the file by then), and kept: the kernel reports a write it could not
   * make to every handle open at the time, but to one opened later only if nobody saw the error
   * yet, and SQLite's own handles may have.
   * A log that is not there is an error: SQLite keeps it while a connection is open, so
   * someone removed it.
   */
  #handle(): Deno.FsFile {
    if (this.#file) return this.#file;
    const file = Deno.openSync(this.path, { read: true });
    try {
      // The log's name in its folder is synced once too: SQLite syncs the folder at the log's
      // first sync of its own, which under NORMAL waits for the first checkpoint, and a file
      // whose directory entry never reached the disk may be gone after a power cut.
      using dir = Deno.openSync(dirname(this.path), { read: true });
      dir.syncSync();
    } catch (e) {
      file.close();
      throw e;
    }
    return this.#file = file;
  }
}
