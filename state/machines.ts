/**
 * Every machine the server knows: the one machine model of the program.
 *
 * A machine comes from a `[[machine]]` entry of the config, from the wire (DHCP or HTTP),
 * or both; {@linkcode MachineRegistry} is the one place that merges the two, and the config
 * wins where both say something. Rows live in the `machines` table of the shared database:
 *
 * - the sticky OS (and class) chosen at the menu: the machine boots it without the menu
 *   from then on;
 * - `ip`: where the machine last asked from, so installers asking without a MAC (a preseed
 *   URL) can be matched to their machine;
 * - the install state:
 *
 *   ```
 *   new ──choose──▶ chosen ──installer config served──▶ installing ──callback──▶ installed
 *    ▲                 ▲                                                            │
 *    └─────────────────┴──────────────── reinstall ◀────────────────────────────────┘
 *   ```
 *
 *   Only `installing` and `installed` are stored; `new` and `chosen` follow from whether an
 *   OS is set.
 *
 * Times are milliseconds since the epoch; `now` is injectable for tests.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Mac } from "../net/mac.ts";

/** A `[[machine]]` entry of the config. */
export interface MachineConfig {
  mac: Mac;
  hostname?: string;
  ip?: string;
  os?: string;
  class?: string;
  vars: Record<string, unknown>;
}

/** Where a machine stands: see the module doc for the transitions. */
export type InstallState = "new" | "chosen" | "installing" | "installed";

/** A machine as the rest of the program sees it: config and database merged. */
export interface Machine {
  mac: Mac;
  /** `[[machine]] hostname`, else the one stored, else `node-<mac without colons>`. */
  hostname: string;
  /** `[[machine]] ip` (the reservation), else the address it last asked from. */
  ip: string | null;
  /** `[[machine]] os`, else the one chosen at the menu. */
  os: string | null;
  /** Whether `[[machine]] os` pins the OS (a menu choice cannot change it). */
  pinned: boolean;
  /** `[[machine]] class`, else the class chosen with that OS. */
  class: string | null;
  state: InstallState;
  /** `[[machine]] vars` (OS and class vars are merged at render time). */
  vars: Record<string, unknown>;
  /** Whether a `[[machine]]` entry names it. */
  configured: boolean;
  /** Null for a configured machine that never showed up. */
  first_seen: number | null;
  last_seen: number | null;
  /** When the last install callback came, or null. */
  installed_at: number | null;
}

/** Options for {@linkcode MachineRegistry}. */
export interface MachineRegistryOptions {
  /** `[[machine]]` entries of the config. */
  machines?: readonly MachineConfig[];
  now?: () => number;
}

/** The host name a machine without one gets. */
export function defaultHostname(mac: Mac): string {
  return `node-${mac.replaceAll(":", "")}`;
}

interface Row {
  mac: string;
  os: string | null;
  class: string | null;
  hostname: string | null;
  ip: string | null;
  state: string | null;
  first_seen: number;
  last_seen: number;
  installed_at: number | null;
}

function installState(os: string | null, stored: string | null): InstallState {
  if (stored === "installing" || stored === "installed") return stored;
  return os ? "chosen" : "new";
}

/** Machines from config and database, and their install state. */
export class MachineRegistry {
  #db: DatabaseSync;
  #configured = new Map<Mac, MachineConfig>();
  #now: () => number;
  #stmts = new Map<string, StatementSync>();

  constructor(db: DatabaseSync, options: MachineRegistryOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
    for (const m of options.machines ?? []) this.#configured.set(m.mac, m);
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
    const columns = db.prepare("PRAGMA table_info(machines)").all() as { name: string }[];
    if (!columns.some((c) => c.name === "installed_at")) {
      db.exec("ALTER TABLE machines ADD COLUMN installed_at INTEGER");
      // Databases of the first release kept the callback time in the history only.
      const history = db.prepare(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'machine_boots'",
      ).get();
      if (history) {
        db.exec(`UPDATE machines SET installed_at = (SELECT max(at) FROM machine_boots
          WHERE machine_boots.mac = machines.mac AND kind = 'installed') WHERE state = 'installed'`);
      }
    }
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) this.#stmts.set(sql, s = this.#db.prepare(sql));
    return s;
  }

  #row(mac: Mac): Row | undefined {
    return this.#stmt("SELECT * FROM machines WHERE mac = ?").get(mac) as Row | undefined;
  }

  /** The one merge of config and database; see {@linkcode Machine} for each field's rule. */
  #merge(mac: Mac, rec: Row | undefined): Machine | null {
    const conf = this.#configured.get(mac);
    if (!conf && !rec) return null;
    const os = conf?.os ?? rec?.os ?? null;
    // A class chosen at the menu belongs to the OS chosen with it.
    const cls = conf?.class ?? (rec?.os && rec.os === os ? rec.class : null) ?? null;
    return {
      mac,
      hostname: conf?.hostname ?? rec?.hostname ?? defaultHostname(mac),
      ip: conf?.ip ?? rec?.ip ?? null,
      os,
      pinned: conf?.os !== undefined,
      class: cls,
      state: installState(os, rec?.state ?? null),
      vars: conf?.vars ?? {},
      configured: conf !== undefined,
      first_seen: rec?.first_seen ?? null,
      last_seen: rec?.last_seen ?? null,
      installed_at: rec?.installed_at ?? null,
    };
  }

  /** Creates the row if needed and stamps `last_seen` (and `ip` when given). */
  #touch(mac: Mac, ip?: string): void {
    const now = this.#now();
    this.#stmt(
      `INSERT INTO machines (mac, ip, first_seen, last_seen) VALUES (?, ?, ?, ?)
       ON CONFLICT (mac) DO UPDATE SET last_seen = excluded.last_seen,
         ip = coalesce(excluded.ip, machines.ip)`,
    ).run(mac, ip ?? null, now, now);
  }

  /** One machine, or null when neither the config nor the database knows it. */
  get(mac: Mac): Machine | null {
    return this.#merge(mac, this.#row(mac));
  }

  /** Every machine of config and database, by host name then MAC. */
  list(): Machine[] {
    const rows = this.#stmt("SELECT * FROM machines").all() as unknown as Row[];
    const byMac = new Map(rows.map((r) => [r.mac as Mac, r]));
    const macs = new Set([...this.#configured.keys(), ...byMac.keys()]);
    return [...macs].map((m) => this.#merge(m, byMac.get(m))!).sort((a, b) =>
      a.hostname === b.hostname ? (a.mac < b.mac ? -1 : 1) : (a.hostname < b.hostname ? -1 : 1)
    );
  }

  /**
   * The machine that most recently asked from `ip`, else the one whose `[[machine]] ip` it is
   * (in proxy mode another server hands out addresses, so a reservation may not hold).
   */
  findByIp(ip: string): Machine | null {
    const row = this.#stmt(
      "SELECT * FROM machines WHERE ip = ? ORDER BY last_seen DESC LIMIT 1",
    ).get(ip) as Row | undefined;
    if (row) return this.#merge(row.mac as Mac, row);
    const conf = [...this.#configured.values()].find((m) => m.ip === ip);
    return conf ? this.get(conf.mac) : null;
  }

  /** The machines that install `os` with class `cls` (null: no class), this one included. */
  cluster(os: string, cls: string | null): Machine[] {
    return this.list().filter((m) => m.os === os && m.class === cls);
  }

  /** Records that `mac` made contact (DHCP or HTTP), from `ip` when known. */
  seen(mac: Mac, ip?: string): void {
    this.#touch(mac, ip);
  }

  /** Makes `os`/`cls` the machine's choice; a new choice means a new install. */
  choose(mac: Mac, os: string, cls: string | null = null, ip?: string): Machine {
    this.#touch(mac, ip);
    this.#stmt("UPDATE machines SET os = ?, class = ?, state = NULL WHERE mac = ?")
      .run(os, cls, mac);
    return this.get(mac)!;
  }

  /** Forgets the sticky choice: the machine gets the menu again. True when there was one. */
  clearChoice(mac: Mac): boolean {
    const res = this.#stmt(
      "UPDATE machines SET os = NULL, class = NULL WHERE mac = ? AND os IS NOT NULL",
    ).run(mac);
    return Number(res.changes) > 0;
  }

  /** An installer fetched its config: the machine is installing (kept while installed). */
  installing(mac: Mac, ip?: string): Machine {
    this.#touch(mac, ip);
    // A config fetched again after the callback (a re-run, a curious admin) must not undo it.
    this.#stmt(
      "UPDATE machines SET state = 'installing' WHERE mac = ? AND coalesce(state, '') <> 'installed'",
    ).run(mac);
    return this.get(mac)!;
  }

  /** The installer's callback: from now on the machine boots from its local disk. */
  installed(mac: Mac, ip?: string): Machine {
    this.#touch(mac, ip);
    this.#stmt("UPDATE machines SET state = 'installed', installed_at = ? WHERE mac = ?")
      .run(this.#now(), mac);
    return this.get(mac)!;
  }

  /**
   * Forgets that the machine is installed: its next boot runs the installer again (with
   * the same OS and class). Null when the machine is unknown.
   */
  reinstall(mac: Mac): Machine | null {
    if (!this.get(mac)) return null;
    // Configured machines that never booted get a row so the state has a home.
    this.#stmt(
      `INSERT INTO machines (mac, first_seen, last_seen) VALUES (?, ?, ?)
       ON CONFLICT (mac) DO NOTHING`,
    ).run(mac, this.#now(), this.#now());
    this.#stmt("UPDATE machines SET state = NULL WHERE mac = ?").run(mac);
    return this.get(mac)!;
  }
}
