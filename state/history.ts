/**
 * What each machine was served and reported, kept in the `machine_boots` table: the lasting
 * record behind `astralboot machine list` and `/api/machines/:mac`. A bounded number of lines
 * per machine; older ones are dropped.
 *
 * With a {@linkcode Bookkeeping} (the server) a line is queued and written with its batch,
 * off the request that made it; {@linkcode BootHistory.lines} writes what is queued before it
 * reads. Without one (tools, tests) a line is written at once. Which lines are worth writing
 * (a client's repeats are not) is the writer's call: `observe/history.ts`.
 *
 * Times are milliseconds since the epoch; `now` is injectable for tests.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Mac } from "../net/mac.ts";
import type { Bookkeeping } from "./bookkeeping.ts";

/** One line of a machine's history. */
export interface HistoryLine {
  at: number;
  /** The boot stage: "script", "menu", "chosen", "config", "progress", "installed" … */
  kind: string;
  /** What was served or reported: "start debian (configured)", "debian preseed" … */
  what: string;
  /** Address the request came from, when known. */
  ip: string | null;
}

/** Options for {@linkcode BootHistory}. */
export interface BootHistoryOptions {
  /** Lines kept per machine; default 200. */
  limit?: number;
  now?: () => number;
  /** Where lines wait for their batch; default none: written at once. */
  bookkeeping?: Bookkeeping;
}

/** The bounded per-machine history. */
export class BootHistory {
  #db: DatabaseSync;
  #limit: number;
  #now: () => number;
  #stmts = new Map<string, StatementSync>();
  #bookkeeping: Bookkeeping | undefined;

  constructor(db: DatabaseSync, options: BootHistoryOptions = {}) {
    this.#db = db;
    this.#limit = options.limit ?? 200;
    this.#now = options.now ?? Date.now;
    this.#bookkeeping = options.bookkeeping;
    db.exec(`CREATE TABLE IF NOT EXISTS machine_boots (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      mac TEXT NOT NULL,
      at INTEGER NOT NULL,
      kind TEXT NOT NULL,
      what TEXT NOT NULL,
      ip TEXT
    );
    CREATE INDEX IF NOT EXISTS machine_boots_mac ON machine_boots (mac, id);`);
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) this.#stmts.set(sql, s = this.#db.prepare(sql));
    return s;
  }

  /** Appends a line (now, or with the next batch), dropping the oldest beyond the limit. */
  record(mac: Mac, kind: string, what: string, ip?: string | null, at = this.#now()): void {
    ip ??= null;
    const insert = () =>
      this.#stmt("INSERT INTO machine_boots (mac, at, kind, what, ip) VALUES (?, ?, ?, ?, ?)")
        .run(mac, at, kind, what, ip);
    if (!this.#bookkeeping) {
      insert();
      this.#trim(mac);
    } else {
      this.#bookkeeping.queue("history", null, insert);
      // One trim per machine and batch, after its last line.
      this.#bookkeeping.queue("history", `history-trim ${mac}`, () => this.#trim(mac));
    }
  }

  #trim(mac: Mac): void {
    this.#stmt(
      `DELETE FROM machine_boots WHERE mac = ? AND id <= (
         SELECT id FROM machine_boots WHERE mac = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
    ).run(mac, mac, this.#limit);
  }

  /** The machine's history, newest first. */
  lines(mac: Mac, limit = 50): HistoryLine[] {
    this.#bookkeeping?.flush();
    const rows = this.#stmt(
      "SELECT at, kind, what, ip FROM machine_boots WHERE mac = ? ORDER BY id DESC LIMIT ?",
    ).all(mac, limit) as unknown as HistoryLine[];
    // node:sqlite rows have no prototype; callers compare and serialise plain objects.
    return rows.map(({ at, kind, what, ip }) => ({ at, kind, what, ip }));
  }
}
