/**
 * Every machine the server knows, with where it stands in the install workflow.
 *
 * A machine comes from a `[[machine]]` entry of the config, from the wire (it asked for a
 * script), or both; the config wins where both say something. On top of the sticky OS
 * choice kept by {@linkcode MachineStore} (`machines` table) this adds:
 *
 * - the install state, in the `state` column of that table:
 *
 *   ```
 *   new ──choose──▶ chosen ──installer config served──▶ installing ──callback──▶ installed
 *    ▲                 ▲                                                            │
 *    └─────────────────┴──────────────── reinstall ◀────────────────────────────────┘
 *   ```
 *
 *   Only `installing` and `installed` are stored; `new` and `chosen` follow from whether an
 *   OS is set, so a sticky choice made by the menu code needs no second write.
 * - a bounded history of what each machine was served (`machine_boots` table).
 *
 * Times are milliseconds since the epoch; `now` is injectable for tests.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { type MachineConfig, normalizeMac } from "../app/config.ts";
import { MachineStore } from "./machines.ts";

/** Where a machine stands: see the module doc for the transitions. */
export type InstallState = "new" | "chosen" | "installing" | "installed";

/** What the history records. */
export type BootEventKind = "script" | "config" | "progress" | "installed" | "reinstall";

/** One line of a machine's history. */
export interface BootEvent {
  at: number;
  kind: BootEventKind;
  /** What was served or reported: "menu", "debian start", "preseed", "local disk" … */
  what: string;
  /** Address the request came from, when known. */
  ip: string | null;
}

/** A machine as the rest of the program sees it: config and database merged. */
export interface Machine {
  mac: string;
  /** `[[machine]] hostname`, else `node-<mac without colons>`. */
  hostname: string;
  /** `[[machine]] ip` (the reservation), else the address it last asked from. */
  ip: string | null;
  os: string | null;
  class: string | null;
  state: InstallState;
  /** `[[machine]] vars` (class and OS vars are merged at render time). */
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
  /** The sticky-choice store on the same handle; made here when not given. */
  store?: MachineStore;
  /** History lines kept per machine; older ones are dropped. Default 200. */
  historyLimit?: number;
  now?: () => number;
}

/** A MAC that is not one. */
export class MachineError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "MachineError";
  }
}

/** Lower-case colon form, or a {@linkcode MachineError}. */
export function canonicalMac(text: string): string {
  const mac = normalizeMac(text);
  if (mac === null) throw new MachineError(`not a MAC address: ${JSON.stringify(text)}`);
  return mac;
}

/** The host name a machine without one in the config gets. */
export function defaultHostname(mac: string): string {
  return `node-${canonicalMac(mac).replaceAll(":", "")}`;
}

function _state(os: string | null, stored: string | null): InstallState {
  if (stored === "installing" || stored === "installed") return stored;
  return os ? "chosen" : "new";
}

/** Machines from config and database, their install state and history. */
export class MachineRegistry {
  /** The sticky-choice store this registry builds on (shared with the HTTP side). */
  readonly store: MachineStore;
  #db: DatabaseSync;
  #configured = new Map<string, MachineConfig>();
  #limit: number;
  #now: () => number;
  #stmts = new Map<string, StatementSync>();

  constructor(db: DatabaseSync, options: MachineRegistryOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? Date.now;
    this.store = options.store ?? new MachineStore(db, { now: this.#now });
    this.#limit = options.historyLimit ?? 200;
    for (const m of options.machines ?? []) {
      this.#configured.set(canonicalMac(m.mac), m);
    }
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

  #merge(mac: string): Machine | null {
    const conf = this.#configured.get(mac);
    const rec = this.store.get(mac);
    if (!conf && !rec) return null;
    const os = conf?.os ?? rec?.os ?? null;
    // A class chosen at the menu belongs to the OS chosen with it.
    const cls = conf?.class ?? (rec?.os && rec.os === os ? rec.class : null) ?? null;
    const installed = this.#stmt(
      "SELECT at FROM machine_boots WHERE mac = ? AND kind = 'installed' ORDER BY id DESC LIMIT 1",
    ).get(mac) as { at: number } | undefined;
    return {
      mac,
      hostname: conf?.hostname ?? rec?.hostname ?? defaultHostname(mac),
      ip: conf?.ip ?? rec?.ip ?? null,
      os,
      class: cls,
      state: _state(os, rec?.state ?? null),
      vars: conf?.vars ?? {},
      configured: conf !== undefined,
      first_seen: rec?.first_seen ?? null,
      last_seen: rec?.last_seen ?? null,
      installed_at: installed?.at ?? null,
    };
  }

  /** One machine, or null when neither the config nor the database knows it. */
  get(mac: string): Machine | null {
    return this.#merge(canonicalMac(mac));
  }

  /** Every machine of config and database, by host name then MAC. */
  list(): Machine[] {
    const macs = new Set([...this.#configured.keys(), ...this.store.list().map((r) => r.mac)]);
    return [...macs].map((m) => this.#merge(m)!).sort((a, b) =>
      a.hostname === b.hostname ? (a.mac < b.mac ? -1 : 1) : (a.hostname < b.hostname ? -1 : 1)
    );
  }

  /** The machines that install `os` with class `cls` (null: no class), this one included. */
  cluster(os: string, cls: string | null): Machine[] {
    return this.list().filter((m) => m.os === os && m.class === cls);
  }

  /** Records that `mac` made contact (DHCP or HTTP), from `ip` when known. */
  seen(mac: string, ip?: string): void {
    this.store.seen(canonicalMac(mac), ip);
  }

  /** Makes `os`/`cls` the machine's choice; a new choice means a new install. */
  choose(mac: string, os: string, cls: string | null = null, ip?: string): Machine {
    const m = canonicalMac(mac);
    this.store.setChoice(m, os, cls);
    this.#setState(m, null);
    this.record(m, "script", cls ? `chose ${os}/${cls}` : `chose ${os}`, ip);
    return this.#merge(m)!;
  }

  /** An installer fetched its config: the machine is installing (kept while installed). */
  installing(mac: string, what: string, ip?: string): Machine {
    const m = canonicalMac(mac);
    this.store.seen(m, ip);
    // A config fetched again after the callback (a re-run, a curious admin) must not undo it.
    if (this.#merge(m)!.state !== "installed") this.#setState(m, "installing");
    this.record(m, "config", what, ip);
    return this.#merge(m)!;
  }

  /** The installer's callback: from now on the machine boots from its local disk. */
  installed(mac: string, ip?: string): Machine {
    const m = canonicalMac(mac);
    this.store.seen(m, ip);
    this.#setState(m, "installed");
    this.record(m, "installed", "install finished", ip);
    return this.#merge(m)!;
  }

  /**
   * Forgets that the machine is installed: its next boot runs the installer again (with
   * the same OS and class). Null when the machine is unknown.
   */
  reinstall(mac: string): Machine | null {
    const m = canonicalMac(mac);
    if (!this.#merge(m)) return null;
    // Configured machines that never booted get a row so the history has a home.
    this.store.seen(m);
    this.#setState(m, null);
    this.record(m, "reinstall", "reinstall requested");
    return this.#merge(m)!;
  }

  /** Appends a history line, dropping the oldest beyond the limit. */
  record(mac: string, kind: BootEventKind, what: string, ip?: string): void {
    const m = canonicalMac(mac);
    this.#stmt("INSERT INTO machine_boots (mac, at, kind, what, ip) VALUES (?, ?, ?, ?, ?)")
      .run(m, this.#now(), kind, what, ip ?? null);
    this.#stmt(
      `DELETE FROM machine_boots WHERE mac = ? AND id <= (
         SELECT id FROM machine_boots WHERE mac = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
    ).run(m, m, this.#limit);
  }

  /** The machine's history, newest first. */
  history(mac: string, limit = 50): BootEvent[] {
    const rows = this.#stmt(
      "SELECT at, kind, what, ip FROM machine_boots WHERE mac = ? ORDER BY id DESC LIMIT ?",
    ).all(canonicalMac(mac), limit) as unknown as BootEvent[];
    // node:sqlite rows have no prototype; callers compare and serialise plain objects.
    return rows.map(({ at, kind, what, ip }) => ({ at, kind, what, ip }));
  }

  #setState(mac: string, state: "installing" | "installed" | null): void {
    this.#stmt("UPDATE machines SET state = ? WHERE mac = ?").run(state, mac);
  }
}
