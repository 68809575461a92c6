/**
 * What machines say about themselves: the SMBIOS values iPXE reports in its script URL
 * (`uuid`, `serial`, `manufacturer`, `product`) with its build (`buildarch`, `platform`),
 * and what their last DHCP request said (option 93 architecture, option 97 UUID, vendor
 * class 60, user class 77). One row per machine in `machine_inventory`, pruned with the
 * machines.
 *
 * All of it comes from the client, unchecked: a machine can report anything. It is shown
 * and handed to templates as data, never trusted to say which machine asks (that is the MAC
 * and the address it holds, `boot/identity.ts`). Every string is cleaned here, whoever
 * calls, before it is stored: see {@linkcode cleanReported}.
 *
 * iPXE reports on every script request: with a {@linkcode Bookkeeping} (the server) a report
 * is queued for the next batch, and one that says what the last one said is written again only
 * after {@linkcode REPORT_EVERY_MS}; {@linkcode InventoryStore.get} shows what was queued at
 * once.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { Mac } from "../net/mac.ts";
import { parseUuid, type Uuid } from "../net/uuid.ts";
import type { Bookkeeping } from "./bookkeeping.ts";
import { isBusy } from "./db.ts";
import { RecentRows, ROWS_KEPT_MS, writesTo } from "./recent_rows.ts";

/** How long a report that changes nothing is not written again (only `reported_at` would move). */
export const REPORT_EVERY_MS = 10_000;

/** Machines whose last report is remembered; beyond this the memory starts over. */
const REMEMBERED = 10_000;

/** What a machine reported; null where it said nothing. */
export interface Inventory {
  /** SMBIOS system UUID as iPXE's `${uuid}` prints it. */
  uuid: Uuid | null;
  serial: string | null;
  manufacturer: string | null;
  product: string | null;
  /** iPXE's build: `i386`, `x86_64`, `arm64` … */
  buildarch: string | null;
  /** iPXE's platform: `pcbios`, `efi`. */
  platform: string | null;
  /** DHCP option 93 (client architecture, RFC 4578). */
  dhcp_arch: number | null;
  /** DHCP option 97 (the UUID PXE firmware and iPXE send). */
  dhcp_uuid: Uuid | null;
  /** DHCP option 60. */
  vendor_class: string | null;
  /** DHCP option 77, its classes joined by commas. */
  user_class: string | null;
  /** When it last reported anything (ms), null if never. */
  reported_at: number | null;
}

/** One report: the fields it carries (undefined: not part of this report; null: none). */
export type InventoryReport = Partial<Omit<Inventory, "reported_at">>;

/** The fields of a report, in the table's column order. */
export const INVENTORY_FIELDS = [
  "uuid",
  "serial",
  "manufacturer",
  "product",
  "buildarch",
  "platform",
  "dhcp_arch",
  "dhcp_uuid",
  "vendor_class",
  "user_class",
] as const satisfies readonly (keyof InventoryReport)[];

/** The longest reported string kept; the rest is cut. */
export const MAX_REPORTED = 64;

/** An inventory of a machine that never reported anything. */
export function emptyInventory(): Inventory {
  return {
    uuid: null,
    serial: null,
    manufacturer: null,
    product: null,
    buildarch: null,
    platform: null,
    dhcp_arch: null,
    dhcp_uuid: null,
    vendor_class: null,
    user_class: null,
    reported_at: null,
  };
}

/**
 * A reported string as it may be stored and shown: letters, digits, space and
 * `. , : _ - + / ( ) # @ &` (what serial numbers, vendor and product names use); any other
 * character becomes `?`, so nothing that means something to a terminal, a shell, iPXE
 * (`${…}`), YAML, JSON or HTML survives. Runs of spaces become one, at most
 * {@linkcode MAX_REPORTED} characters are kept; null when nothing is left.
 */
export function cleanReported(text: string | null | undefined): string | null {
  if (text === null || text === undefined) return null;
  const clean = text.replace(/[^A-Za-z0-9 .,:_+\/()#@&-]/g, "?").replace(/ {2,}/g, " ").trim()
    .slice(0, MAX_REPORTED).trim();
  return clean === "" ? null : clean;
}

/** A row of the table: the UUIDs in it were parsed before they were stored. */
type Row = Inventory & { mac: string };

function fromRow(r: Row | undefined): Inventory {
  if (!r) return emptyInventory();
  const { mac: _mac, ...rest } = r;
  return { ...emptyInventory(), ...rest };
}

/** The `machine_inventory` table. */
export class InventoryStore {
  #db: DatabaseSync;
  #bestEffort: DatabaseSync;
  #now: () => number;
  #get: StatementSync;
  /** The rows `get` read lately; dropped on every write (`state/recent_rows.ts`). */
  #rows: RecentRows<Row | undefined>;
  #records = new Map<string, StatementSync>();
  #bookkeeping: Bookkeeping | undefined;
  /**
   * What each machine last reported through the queue, field by field, and when, by set of
   * fields (`at`: a plain object, whose keys V8 shares between machines; a Map keyed by a
   * string naming the MAC cost ~220 bytes a machine more: 2.2 MiB of live heap at the DHCP
   * bench's 10 000 remembered machines).
   */
  #recent = new Map<Mac, { fields: Partial<Row>; at: Record<string, number> }>();

  /**
   * `bestEffort`: the handle that gives up at once when busy (state/db.ts); default `db`.
   * `bookkeeping`: queue reports on it (over `bestEffort`) instead of writing them at once.
   */
  constructor(
    db: DatabaseSync,
    options: {
      bestEffort?: DatabaseSync;
      now?: () => number;
      bookkeeping?: Bookkeeping;
      /** How long `get` uses a row it read again; see `state/recent_rows.ts`. */
      rowsKeptMs?: number;
    } = {},
  ) {
    this.#db = db;
    this.#bestEffort = options.bestEffort ?? db;
    this.#now = options.now ?? Date.now;
    this.#bookkeeping = options.bookkeeping;
    this.#rows = new RecentRows(writesTo(db), options.rowsKeptMs ?? ROWS_KEPT_MS, REMEMBERED);
    db.exec(`CREATE TABLE IF NOT EXISTS machine_inventory (
      mac TEXT PRIMARY KEY,
      uuid TEXT,
      serial TEXT,
      manufacturer TEXT,
      product TEXT,
      buildarch TEXT,
      platform TEXT,
      dhcp_arch INTEGER,
      dhcp_uuid TEXT,
      vendor_class TEXT,
      user_class TEXT,
      reported_at INTEGER NOT NULL
    )`);
    this.#get = db.prepare("SELECT * FROM machine_inventory WHERE mac = ?");
  }

  /**
   * What `mac` reported so far (every field null when nothing); `fresh`: as the database has it
   * now, not a row read less than a second ago (`state/recent_rows.ts`).
   */
  get(mac: Mac, fresh = false): Inventory {
    const read = () => this.#get.get(mac) as Row | undefined;
    const row = fresh ? read() : this.#rows.get(mac, read);
    const recent = this.#recent.get(mac);
    // A queued report is what the machine said last, whether its batch is written yet or not.
    return fromRow(recent ? { ...row, ...recent.fields } as Row : row);
  }

  /** Every machine's inventory, by MAC. */
  all(): Map<Mac, Inventory> {
    this.#bookkeeping?.flush();
    const rows = this.#db.prepare("SELECT * FROM machine_inventory").all() as unknown as Row[];
    return new Map(rows.map((r) => [r.mac as Mac, fromRow(r)]));
  }

  /**
   * Stores the fields `report` carries (cleaned), keeping the others: a DHCP request does not
   * erase what iPXE reported, nor the reverse. Best effort, like a contact: false when the
   * database was busy and nothing was stored.
   */
  record(mac: Mac, report: InventoryReport): boolean {
    const fields = INVENTORY_FIELDS.filter((f) => report[f] !== undefined);
    const values = fields.map((f) => clean(f, report[f]));
    const shape = fields.join(",");
    const now = this.#now();
    const write = (db: DatabaseSync) => {
      // One statement per set of fields (iPXE's, DHCP's), made on its first write.
      let stmt = this.#records.get(shape);
      if (!stmt) this.#records.set(shape, stmt = db.prepare(upsertSql(fields)));
      this.#rows.wrote();
      stmt.run(mac, ...values, now);
    };
    if (this.#bookkeeping) {
      this.#queue(mac, shape, fields, values, now, write);
      return true;
    }
    try {
      write(this.#bestEffort);
      return true;
    } catch (e) {
      if (isBusy(e)) return false;
      throw e;
    }
  }

  /** Queues a report unless it says what the last one said less than REPORT_EVERY_MS ago. */
  #queue(
    mac: Mac,
    shape: string,
    fields: readonly string[],
    values: readonly (string | number | null)[],
    now: number,
    write: (db: DatabaseSync) => void,
  ): void {
    // Reports of one set of fields (iPXE's, DHCP's) replace each other; the two sets do not.
    const key = `inventory ${mac} ${shape}`;
    let recent = this.#recent.get(mac);
    const same = recent !== undefined &&
      fields.every((f, i) => (recent!.fields as Record<string, unknown>)[f] === values[i]) &&
      now - (recent.at[shape] ?? -Infinity) < REPORT_EVERY_MS;
    if (same) return;
    if (!recent) {
      if (this.#recent.size >= REMEMBERED) this.#recent.clear();
      this.#recent.set(mac, recent = { fields: {}, at: {} });
    }
    fields.forEach((f, i) => (recent!.fields as Record<string, unknown>)[f] = values[i]);
    recent.fields.reported_at = now;
    recent.at[shape] = now;
    this.#bookkeeping!.queue("inventory", key, write);
  }

  /** Forgets the inventory of machines the `machines` table no longer holds. */
  prune(): number {
    this.#bookkeeping?.flush();
    this.#recent.clear();
    this.#rows.wrote();
    const res = this.#db.prepare(
      "DELETE FROM machine_inventory WHERE mac NOT IN (SELECT mac FROM machines)",
    ).run();
    return Number(res.changes);
  }
}

/** The upsert of a report carrying `fields`: those and the time are set, the others kept. */
function upsertSql(fields: readonly string[]): string {
  const sets = [
    ...fields.map((f) => `${f} = excluded.${f}`),
    "reported_at = excluded.reported_at",
  ];
  return `INSERT INTO machine_inventory (mac, ${[...fields, "reported_at"].join(", ")})
      VALUES (${["?", ...fields.map(() => "?"), "?"].join(", ")})
      ON CONFLICT (mac) DO UPDATE SET ${sets.join(", ")}`;
}

/** One field's value as stored: strings cleaned, numbers whole, UUIDs canonical. */
function clean(field: (typeof INVENTORY_FIELDS)[number], v: unknown): string | number | null {
  if (v === null || v === undefined) return null;
  if (field === "dhcp_arch") return Number.isInteger(v) && (v as number) >= 0 ? v as number : null;
  if (field === "uuid" || field === "dhcp_uuid") return parseUuid(String(v));
  return cleanReported(String(v));
}
