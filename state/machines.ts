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
 * - `bound_uuid`: the `[[machine]] uuid` entry (one without `mac`) this MAC was bound to,
 *   the first time it reported that UUID from its own address (`report`). From then on the
 *   entry is this MAC's: another MAC reporting the same UUID gets nothing of it (a UUID is a
 *   claim any client can make; a MAC asks only from the address it holds). An entry with
 *   `mac` is bound to that MAC by the config itself;
 * - what the machine reported about itself (`state/inventory.ts`);
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
 * - `install_gen`, the install's number, which its callback token is bound to: every new
 *   install, callback and reinstall counts it up, so the token of an earlier install stops
 *   working. A row starts at the floor kept in `machine_install_floor`, which
 *   {@linkcode MachineRegistry.prune} raises past every number of the rows it forgets: a
 *   forgotten stranger that comes back never has a number it had before, so the tokens of its
 *   earlier installs (an old installer config holds one) do not work again.
 *
 * Contacts come with every boot script request and DHCP ACK. With a {@linkcode Bookkeeping}
 * (the server) they are queued, off the request, and a machine asking again from the same
 * address is written again only after {@linkcode CONTACT_EVERY_MS} (`last_seen` is that
 * coarse in the table); {@linkcode MachineRegistry.get} shows the newest contact at once, and
 * the other reads and every state change write the queue first. Without one (tools, tests)
 * a contact is written at once.
 *
 * `get`, which every boot script request makes, uses a row it read less than a second ago
 * (`state/recent_rows.ts`): each write of a registry over the same database drops those rows, so
 * this process's changes show at once; a change another process writes (`astralboot machine
 * reinstall`) within a second. {@linkcode MachineRegistry.fresh} reads the database now, for the
 * installer configs and callbacks, whose install token a reinstall retires.
 *
 * Times are milliseconds since the epoch; `now` is injectable for tests.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Mac } from "../net/mac.ts";
import type { Uuid } from "../net/uuid.ts";
import type { Bookkeeping } from "./bookkeeping.ts";
import { isBusy } from "./db.ts";
import { type Inventory, type InventoryReport, InventoryStore } from "./inventory.ts";
import { RecentRows, ROWS_KEPT_MS, writesTo } from "./recent_rows.ts";

/** How long a contact from the address already recorded is not written again. */
export const CONTACT_EVERY_MS = 10_000;

/** Machines whose last contact is remembered; beyond this the memory starts over. */
const REMEMBERED = 10_000;

/** A `[[machine]]` entry of the config: `mac`, `uuid` or both name the machine. */
export interface MachineConfig {
  /** The MAC it boots from; DHCP (reservations, host names, `known_only`) knows only these. */
  mac?: Mac;
  /** The SMBIOS UUID it reports; without `mac`, bound to the first MAC reporting it. */
  uuid?: Uuid;
  hostname?: string;
  ip?: string;
  os?: string;
  class?: string;
  vars: Record<string, unknown>;
}

/** A `[[machine]]` entry that names its MAC. */
export type MacMachineConfig = MachineConfig & { mac: Mac };

/** Whether the entry names its MAC (only those reach DHCP). */
export function hasMac(m: MachineConfig): m is MacMachineConfig {
  return m.mac !== undefined;
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
  /** How its entry was found: by its MAC, by the UUID it reported (bound), or none. */
  matched_by: "mac" | "uuid" | null;
  /** `[[machine]] uuid` of its entry, or null. */
  uuid: Uuid | null;
  /** What the machine reported about itself: shown and given to templates, never trusted. */
  inventory: Inventory;
  /** Null for a configured machine that never showed up. */
  first_seen: number | null;
  last_seen: number | null;
  /** When the last install callback came, or null. */
  installed_at: number | null;
  /**
   * Which install this is: counts up when the machine is chosen anew, calls back, or is
   * reinstalled. Callback tokens are bound to it, so the token of an earlier install (or one
   * already used) stops working.
   */
  install_gen: number;
}

/** Options for {@linkcode MachineRegistry}. */
export interface MachineRegistryOptions {
  /** `[[machine]]` entries of the config. */
  machines?: readonly MachineConfig[];
  /**
   * A second handle on the same file with a short busy timeout, for the bookkeeping a boot must
   * never wait for (`seen`); default the main handle.
   */
  bestEffort?: DatabaseSync;
  now?: () => number;
  /** Queue contacts and reports on it (over `bestEffort`) instead of writing them at once. */
  bookkeeping?: Bookkeeping;
  /**
   * How long {@linkcode MachineRegistry.get} uses a row (and inventory) it read again; this
   * registry's own writes drop them at once, another process's show after this. Default
   * {@linkcode ROWS_KEPT_MS}; 0 reads every time.
   */
  rowsKeptMs?: number;
}

/** The vars of a machine without a `[[machine]]` entry: one object, so it compares as unchanged. */
const NO_VARS: Record<string, unknown> = Object.freeze({});

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
  install_gen: number | null;
  bound_uuid?: string | null;
}

/** What a report did to the `[[machine]] uuid` bindings; see {@linkcode MachineRegistry.report}. */
export interface ReportOutcome {
  /** False when the database was busy and the inventory was not stored. */
  recorded: boolean;
  /** The uuid entry this MAC was bound to by this report. */
  bound?: Uuid;
  /** The uuid entry this MAC was bound to before: released, it reports another UUID now. */
  released?: Uuid;
  /** The reported UUID's entry is another MAC's (bound earlier, or named by its `mac`). */
  conflict?: { uuid: Uuid; holder: Mac };
  /** The MAC's own entry says this UUID, and the machine reports another. */
  mismatch?: Uuid;
}

function installState(os: string | null, stored: string | null): InstallState {
  if (stored === "installing" || stored === "installed") return stored;
  return os ? "chosen" : "new";
}

/** Machines from config and database, and their install state. */
export class MachineRegistry {
  #db: DatabaseSync;
  #bestEffort: DatabaseSync;
  #configured = new Map<Mac, MacMachineConfig>();
  #byUuid = new Map<Uuid, MachineConfig>();
  #inventory: InventoryStore;
  #now: () => number;
  #stmts = new Map<string, StatementSync>();
  /** The rows `get` read lately; dropped on every write (see the module doc). */
  #recent: RecentRows<Row | undefined>;
  #touchStmt: StatementSync | undefined;
  #bookkeeping: Bookkeeping | undefined;
  /** The newest contact of each machine this process queued: `at` moves on every contact. */
  #contacts = new Map<Mac, { ip: string | null; first: number; at: number; queued: number }>();
  /** The install number a new row starts at (see the module doc); only prune raises it. */
  #floor: number;

  constructor(db: DatabaseSync, options: MachineRegistryOptions = {}) {
    this.#db = db;
    this.#bestEffort = options.bestEffort ?? db;
    this.#now = options.now ?? Date.now;
    this.#bookkeeping = options.bookkeeping;
    this.#recent = new RecentRows(writesTo(db), options.rowsKeptMs ?? ROWS_KEPT_MS, REMEMBERED);
    for (const m of options.machines ?? []) {
      if (hasMac(m)) this.#configured.set(m.mac, m);
      if (m.uuid) this.#byUuid.set(m.uuid, m);
    }
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
    if (!columns.some((c) => c.name === "install_gen")) {
      db.exec("ALTER TABLE machines ADD COLUMN install_gen INTEGER NOT NULL DEFAULT 0");
    }
    if (!columns.some((c) => c.name === "bound_uuid")) {
      db.exec("ALTER TABLE machines ADD COLUMN bound_uuid TEXT");
    }
    db.exec(`CREATE TABLE IF NOT EXISTS machine_install_floor (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      gen INTEGER NOT NULL
    )`);
    this.#floor = readFloor(db);
    // One MAC per uuid entry, whatever two processes do at once.
    db.exec(`CREATE UNIQUE INDEX IF NOT EXISTS machines_bound_uuid ON machines (bound_uuid)
      WHERE bound_uuid IS NOT NULL`);
    this.#inventory = new InventoryStore(db, {
      bestEffort: this.#bestEffort,
      now: this.#now,
      bookkeeping: this.#bookkeeping,
      rowsKeptMs: options.rowsKeptMs,
    });
  }

  /** Writes the queued contacts and reports, so that what follows reads or changes after them. */
  #settle(): void {
    this.#bookkeeping?.flush();
  }

  /** The row as the newest contact of this process makes it (the queue may not be written yet). */
  #withContact(mac: Mac, rec: Row | undefined): Row | undefined {
    const c = this.#contacts.get(mac);
    if (!c) return rec;
    if (!rec) {
      return {
        mac,
        os: null,
        class: null,
        hostname: null,
        ip: c.ip,
        state: null,
        first_seen: c.first,
        last_seen: c.at,
        installed_at: null,
        install_gen: this.#floor,
      };
    }
    if (c.at <= rec.last_seen && (c.ip === null || c.ip === rec.ip)) return rec;
    return { ...rec, ip: c.ip ?? rec.ip, last_seen: Math.max(rec.last_seen, c.at) };
  }

  /** A statement of the main handle; one that writes drops the rows `get` keeps. */
  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) this.#stmts.set(sql, s = this.#db.prepare(sql));
    if (!sql.startsWith("SELECT")) this.#recent.wrote();
    return s;
  }

  #row(mac: Mac): Row | undefined {
    return this.#stmt("SELECT * FROM machines WHERE mac = ?").get(mac) as Row | undefined;
  }

  /** The entry of `mac`: its own, else the uuid-only entry its row is bound to. */
  #entryOf(mac: Mac, rec: Row | undefined): MachineConfig | undefined {
    const own = this.#configured.get(mac);
    if (own) return own;
    const bound = rec?.bound_uuid ? this.#byUuid.get(rec.bound_uuid as Uuid) : undefined;
    return bound && !bound.mac ? bound : undefined;
  }

  /** The one merge of config and database; see {@linkcode Machine} for each field's rule. */
  #merge(mac: Mac, rec: Row | undefined, inventory?: Inventory): Machine | null {
    const conf = this.#entryOf(mac, rec);
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
      vars: conf?.vars ?? NO_VARS,
      configured: conf !== undefined,
      matched_by: conf ? (conf.mac ? "mac" : "uuid") : null,
      uuid: conf?.uuid ?? null,
      inventory: inventory ?? this.#inventory.get(mac),
      first_seen: rec?.first_seen ?? null,
      last_seen: rec?.last_seen ?? null,
      installed_at: rec?.installed_at ?? null,
      install_gen: rec?.install_gen ?? this.#floor,
    };
  }

  /** Creates the row if needed and stamps `last_seen` (and `ip` when given). */
  #touch(mac: Mac, ip?: string, db: DatabaseSync = this.#db, now = this.#now()): void {
    const sql = `INSERT INTO machines (mac, ip, first_seen, last_seen, install_gen)
       VALUES (?, ?, ?, ?, ${FLOOR})
       ON CONFLICT (mac) DO UPDATE SET last_seen = excluded.last_seen,
         ip = coalesce(excluded.ip, machines.ip)`;
    const stmt = db === this.#db ? this.#stmt(sql) : (this.#touchStmt ??= db.prepare(sql));
    this.#recent.wrote();
    stmt.run(mac, ip ?? null, now, now);
  }

  /** One machine, or null when neither the config nor the database knows it. */
  get(mac: Mac): Machine | null {
    const row = this.#recent.get(mac, () => {
      const r = this.#row(mac);
      // A plain object: SQLite's rows have no prototype, and V8 copies those (#withContact, on
      // every request) several times slower.
      return r && { ...r };
    });
    return this.#merge(mac, this.#withContact(mac, row));
  }

  /**
   * One machine as the database has it now, not as {@linkcode get} keeps it for a second: for
   * answers another process may just have changed (an installer's config and callback carry the
   * token of the install, which `astralboot machine reinstall` retires).
   */
  fresh(mac: Mac): Machine | null {
    const row = this.#row(mac);
    // No row yet: its number is the floor, which another process may have raised since.
    if (!row) this.#floor = readFloor(this.#db);
    return this.#merge(mac, this.#withContact(mac, row), this.#inventory.get(mac, true));
  }

  /** What a machine the database could not record (it was busy) is for now: a new one. */
  placeholder(mac: Mac, ip: string | null): Machine {
    const now = this.#now();
    return this.#merge(mac, {
      mac,
      os: null,
      class: null,
      hostname: null,
      ip,
      state: null,
      first_seen: now,
      last_seen: now,
      installed_at: null,
      install_gen: this.#floor,
    })!;
  }

  /** Every machine of config and database, by host name then MAC. */
  list(): Machine[] {
    this.#settle();
    const rows = this.#stmt("SELECT * FROM machines").all() as unknown as Row[];
    const byMac = new Map(rows.map((r) => [r.mac as Mac, r]));
    const macs = new Set([...this.#configured.keys(), ...byMac.keys()]);
    const inventories = this.#inventory.all();
    return [...macs].map((m) => this.#merge(m, byMac.get(m), inventories.get(m))!).sort((a, b) =>
      a.hostname === b.hostname ? (a.mac < b.mac ? -1 : 1) : (a.hostname < b.hostname ? -1 : 1)
    );
  }

  /**
   * The machine that most recently asked from `ip`, else the one whose `[[machine]] ip` it is
   * (in proxy mode another server hands out addresses, so a reservation may not hold).
   */
  findByIp(ip: string): Machine | null {
    this.#settle();
    const row = this.#stmt(
      "SELECT * FROM machines WHERE ip = ? ORDER BY last_seen DESC LIMIT 1",
    ).get(ip) as Row | undefined;
    if (row) return this.#merge(row.mac as Mac, row);
    const conf = [...this.#configured.values()].find((m) => m.ip === ip);
    return conf ? this.get(conf.mac) : null;
  }

  /** The `[[machine]]` entries without `mac` that no MAC is bound to yet. */
  waiting(): MachineConfig[] {
    this.#settle();
    const bound = new Set(
      (this.#stmt("SELECT bound_uuid FROM machines WHERE bound_uuid IS NOT NULL").all() as {
        bound_uuid: string;
      }[]).map((r) => r.bound_uuid),
    );
    return [...this.#byUuid.values()].filter((m) => !m.mac && !bound.has(m.uuid!));
  }

  /** The machines that install `os` with class `cls` (null: no class), this one included. */
  cluster(os: string, cls: string | null): Machine[] {
    return this.list().filter((m) => m.os === os && m.class === cls);
  }

  /**
   * Records that `mac` made contact (DHCP or HTTP), from `ip` when known. Best effort: when the
   * database is busy (another process holds its lock) it gives up at once and returns false;
   * a boot never waits for this bookkeeping.
   */
  seen(mac: Mac, ip?: string): boolean {
    if (this.#bookkeeping) {
      this.#queueContact(mac, ip ?? null);
      return true;
    }
    try {
      this.#touch(mac, ip, this.#bestEffort);
      return true;
    } catch (e) {
      if (isBusy(e)) return false;
      throw e;
    }
  }

  /** Queues a contact unless the same address was queued less than CONTACT_EVERY_MS ago. */
  #queueContact(mac: Mac, ip: string | null): void {
    const now = this.#now();
    const last = this.#contacts.get(mac);
    if (last && (ip === null || ip === last.ip) && now - last.queued < CONTACT_EVERY_MS) {
      last.at = now;
      return;
    }
    if (!last && this.#contacts.size >= REMEMBERED) this.#contacts.clear();
    this.#contacts.set(mac, {
      ip: ip ?? last?.ip ?? null,
      first: last?.first ?? now,
      at: now,
      queued: now,
    });
    this.#bookkeeping!.queue("contact", `contact ${mac}`, (db) => {
      this.#touch(mac, ip ?? undefined, db, now);
    });
  }

  /**
   * Records what `mac` reported about itself (best effort, like `seen`) and, when it reported
   * a UUID, binds it to the `[[machine]]` entry with that `uuid` and no `mac`, unless another
   * MAC holds that entry already: the first MAC to report a UUID from its own address keeps
   * its entry. A MAC that reports another UUID than the one it is bound to is released (its
   * NIC is in another machine now); one that reports none keeps its binding. Only callers
   * that checked the MAC asks from its own address may pass `uuid`; DHCP's option 97 goes in
   * `dhcp_uuid`, which is shown and never binds.
   */
  report(mac: Mac, report: InventoryReport): ReportOutcome {
    const out: ReportOutcome = { recorded: this.#inventory.record(mac, report) };
    if (!report.uuid) return out;
    try {
      return this.#bind(mac, report.uuid, out);
    } catch (e) {
      // A binding waits for the lock like a menu choice; past that, the next boot binds.
      if (isBusy(e)) return out;
      throw e;
    }
  }

  /** The binding part of {@linkcode report}. */
  #bind(mac: Mac, uuid: Uuid, out: ReportOutcome): ReportOutcome {
    const own = this.#configured.get(mac);
    if (own?.uuid && own.uuid !== uuid) out.mismatch = own.uuid;
    const current = (this.#row(mac)?.bound_uuid ?? null) as Uuid | null;
    if (current === uuid) return out;
    if (current !== null) {
      // A binding changes: rare, and it must land after this machine's queued contact.
      this.#settle();
      this.#stmt("UPDATE machines SET bound_uuid = NULL WHERE mac = ?").run(mac);
      out.released = current;
    }
    const entry = this.#byUuid.get(uuid);
    if (!entry || own) return out;
    if (entry.mac) return { ...out, conflict: { uuid, holder: entry.mac } };
    const holder = this.#stmt("SELECT mac FROM machines WHERE bound_uuid = ?").get(uuid) as
      | { mac: Mac }
      | undefined;
    if (holder) return { ...out, conflict: { uuid, holder: holder.mac } };
    this.#settle();
    this.#touch(mac);
    this.#stmt("UPDATE machines SET bound_uuid = ? WHERE mac = ?").run(uuid, mac);
    return { ...out, bound: uuid };
  }

  /**
   * Makes `os`/`cls` the machine's choice; a new choice means a new install. An installed
   * machine keeps its state (and its disk): only a reinstall, an admin's act, starts over.
   */
  choose(mac: Mac, os: string, cls: string | null = null, ip?: string): Machine {
    this.#settle();
    this.#touch(mac, ip);
    this.#stmt(
      `UPDATE machines SET os = ?, class = ?, state = NULL, install_gen = install_gen + 1
       WHERE mac = ? AND coalesce(state, '') <> 'installed'`,
    ).run(os, cls, mac);
    return this.get(mac)!;
  }

  /** Forgets the sticky choice: the machine gets the menu again. True when there was one. */
  clearChoice(mac: Mac): boolean {
    this.#settle();
    const res = this.#stmt(
      "UPDATE machines SET os = NULL, class = NULL WHERE mac = ? AND os IS NOT NULL",
    ).run(mac);
    return Number(res.changes) > 0;
  }

  /** An installer fetched its config: the machine is installing (kept while installed). */
  installing(mac: Mac, ip?: string): Machine {
    this.#settle();
    this.#touch(mac, ip);
    // A config fetched again after the callback (a re-run, a curious admin) must not undo it.
    this.#stmt(
      "UPDATE machines SET state = 'installing' WHERE mac = ? AND coalesce(state, '') <> 'installed'",
    ).run(mac);
    return this.get(mac)!;
  }

  /** The installer's callback: from now on the machine boots from its local disk. */
  installed(mac: Mac, ip?: string): Machine {
    this.#settle();
    this.#touch(mac, ip);
    this.#stmt(
      `UPDATE machines SET state = 'installed', installed_at = ?, install_gen = install_gen + 1
       WHERE mac = ?`,
    ).run(this.#now(), mac);
    return this.get(mac)!;
  }

  /**
   * Forgets that the machine is installed: its next boot runs the installer again (with
   * the same OS and class). Null when the machine is unknown.
   */
  reinstall(mac: Mac): Machine | null {
    this.#settle();
    if (!this.get(mac)) return null;
    // Configured machines that never booted get a row so the state has a home.
    this.#stmt(
      `INSERT INTO machines (mac, first_seen, last_seen, install_gen) VALUES (?, ?, ?, ${FLOOR})
       ON CONFLICT (mac) DO NOTHING`,
    ).run(mac, this.#now(), this.#now());
    this.#stmt("UPDATE machines SET state = NULL, install_gen = install_gen + 1 WHERE mac = ?")
      .run(mac);
    return this.get(mac)!;
  }

  /**
   * Forgets machines nobody configured that have not been seen since `before` (ms) and never
   * started an install, then the oldest of them beyond `keep`: strangers must not grow the
   * table without bound. Installing and installed machines are never forgotten (forgetting one
   * would install it again, wiping its disk). The floor of install numbers goes past theirs
   * (see the module doc). Returns how many rows went: none while queued contacts cannot be
   * written (another process holds the lock), since one of them may be a newer contact of a
   * row that would go; the next prune tries again.
   */
  prune(before: number, keep: number): number {
    if (this.#bookkeeping && !this.#bookkeeping.flush()) return 0;
    const configured = [...this.#configured.keys()];
    const outside = configured.length
      ? `AND mac NOT IN (${configured.map(() => "?").join(", ")})`
      : "";
    // A MAC bound to a uuid entry is that entry's machine: configured too.
    const uuids = [...this.#byUuid.values()].filter((m) => !m.mac).map((m) => m.uuid!);
    const unbound = uuids.length
      ? `AND coalesce(bound_uuid, '') NOT IN (${uuids.map(() => "?").join(", ")})`
      : "";
    const strangers =
      `coalesce(state, '') NOT IN ('installing', 'installed') ${outside} ${unbound}`;
    this.#recent.wrote();
    type Gone = { install_gen: number };
    // In one transaction: the rows never go without the floor passing their numbers.
    this.#db.exec("BEGIN IMMEDIATE");
    let gone: Gone[];
    try {
      const old = this.#db.prepare(
        `DELETE FROM machines WHERE last_seen < ? AND ${strangers} RETURNING install_gen`,
      ).all(before, ...configured, ...uuids) as unknown as Gone[];
      const extra = this.#db.prepare(
        `DELETE FROM machines WHERE mac IN (SELECT mac FROM machines WHERE ${strangers}
         ORDER BY last_seen DESC LIMIT -1 OFFSET ?) RETURNING install_gen`,
      ).all(...configured, ...uuids, keep) as unknown as Gone[];
      gone = [...old, ...extra];
      if (gone.length > 0) {
        const past = gone.reduce((top, g) => Math.max(top, g.install_gen), 0) + 1;
        this.#db.prepare(
          `INSERT INTO machine_install_floor (id, gen) VALUES (1, ?)
           ON CONFLICT (id) DO UPDATE SET gen = max(gen, excluded.gen)`,
        ).run(past);
      }
      this.#db.exec("COMMIT");
    } catch (e) {
      // SQLite may have rolled back itself (a full disk, an I/O error): the error is the first.
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw e;
    }
    this.#floor = readFloor(this.#db);
    this.#inventory.prune();
    this.#contacts.clear();
    return gone.length;
  }
}

/** The floor of install numbers in SQL, for the rows an INSERT makes. */
const FLOOR = "coalesce((SELECT gen FROM machine_install_floor WHERE id = 1), 0)";

function readFloor(db: DatabaseSync): number {
  return (db.prepare(`SELECT ${FLOOR} AS gen`).get() as { gen: number }).gen;
}
