/**
 * Machines seen by the HTTP side, and the sticky OS choice made at the menu.
 *
 * One row per MAC in the shared SQLite database (boot/db.ts). A machine that picked an OS
 * at the menu boots it directly next time, until the choice is cleared. `ip` is where the
 * machine last fetched a script from, so that installers asking without a MAC (a preseed
 * URL) can be matched to their machine. `state` is free for the install workflow.
 * Times are milliseconds since the epoch; `now` is injectable for tests.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { normalizeMac } from "../app/config.ts";

/** One machine as stored. */
export interface MachineRecord {
  mac: string;
  os: string | null;
  class: string | null;
  hostname: string | null;
  ip: string | null;
  state: string | null;
  first_seen: number;
  last_seen: number;
}

/** The OS (and class) a machine boots without showing the menu. */
export interface MachineChoice {
  os: string;
  class: string | null;
}

/** Options for {@linkcode MachineStore}. */
export interface MachineStoreOptions {
  now?: () => number;
}

function _mac(mac: string): string {
  const norm = normalizeMac(mac);
  if (norm === null) throw new RangeError(`not a MAC address: ${JSON.stringify(mac)}`);
  return norm;
}

/** Machines table over the shared database handle. */
export class MachineStore {
  #db: DatabaseSync;
  #now: () => number;
  #stmts = new Map<string, StatementSync>();

  constructor(db: DatabaseSync, options: MachineStoreOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
    db.exec(`CREATE TABLE IF NOT EXISTS machines (
      mac TEXT PRIMARY KEY,
      os TEXT,
      class TEXT,
      hostname TEXT,
      ip TEXT,
      state TEXT,
      first_seen INTEGER NOT NULL,
      last_seen INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS machines_ip ON machines (ip);`);
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) this.#stmts.set(sql, s = this.#db.prepare(sql));
    return s;
  }

  /** Creates the row if needed and stamps `last_seen`. */
  #ensure(mac: string): void {
    const now = this.#now();
    this.#stmt(
      `INSERT INTO machines (mac, first_seen, last_seen) VALUES (?, ?, ?)
       ON CONFLICT (mac) DO UPDATE SET last_seen = excluded.last_seen`,
    ).run(mac, now, now);
  }

  /** The stored machine, or null. */
  get(mac: string): MachineRecord | null {
    const row = this.#stmt("SELECT * FROM machines WHERE mac = ?").get(_mac(mac));
    return (row as unknown as MachineRecord | undefined) ?? null;
  }

  /** All machines, most recently seen first. */
  list(): MachineRecord[] {
    return this.#stmt("SELECT * FROM machines ORDER BY last_seen DESC, mac")
      .all() as unknown as MachineRecord[];
  }

  /** Records that `mac` asked for a script, from `ip` when known. */
  seen(mac: string, ip?: string): void {
    const m = _mac(mac);
    this.#ensure(m);
    if (ip) this.#stmt("UPDATE machines SET ip = ? WHERE mac = ?").run(ip, m);
  }

  /** The machine that most recently asked from `ip`, or null. */
  findByIp(ip: string): MachineRecord | null {
    const row = this.#stmt(
      "SELECT * FROM machines WHERE ip = ? ORDER BY last_seen DESC LIMIT 1",
    ).get(ip);
    return (row as unknown as MachineRecord | undefined) ?? null;
  }

  /** The sticky choice of `mac`, or null when it gets the menu. */
  getChoice(mac: string): MachineChoice | null {
    const row = this.#stmt("SELECT os, class FROM machines WHERE mac = ?").get(_mac(mac)) as
      | { os: string | null; class: string | null }
      | undefined;
    return row?.os ? { os: row.os, class: row.class } : null;
  }

  /** Makes `os` (and `cls`) the sticky choice of `mac`. */
  setChoice(mac: string, os: string, cls: string | null = null): void {
    const m = _mac(mac);
    this.#ensure(m);
    this.#stmt("UPDATE machines SET os = ?, class = ? WHERE mac = ?").run(os, cls, m);
  }

  /** Forgets the sticky choice: `mac` gets the menu again. True when there was one. */
  clearChoice(mac: string): boolean {
    const res = this.#stmt(
      "UPDATE machines SET os = NULL, class = NULL WHERE mac = ? AND os IS NOT NULL",
    ).run(_mac(mac));
    return Number(res.changes) > 0;
  }
}
