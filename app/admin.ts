/**
 * The administration commands: `astralboot leases` and `astralboot machine list|show|reinstall`.
 *
 * They open the database at `db_file` next to a running server (WAL lets both read and
 * write); a running server's boot scripts follow a reinstall within a second (they keep a
 * machine's row that long, `state/recent_rows.ts`), its configs and callbacks at once. Listing never creates a database that is not there: it then shows what the
 * config alone says (reservations, `[[machine]]` entries).
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import type { Config } from "./config.ts";
import { UsageError } from "./cli.ts";
import { LeaseStore } from "../state/leases.ts";
import { hasMac, type Machine, MachineRegistry } from "../state/machines.ts";
import { BootHistory } from "../state/history.ts";
import type { Inventory } from "../state/inventory.ts";
import { parseMac } from "../net/mac.ts";
import { Subnet } from "../net/ipv4.ts";

/** Where a command writes its text. */
export type Out = (text: string) => void;

const MACHINE_USAGE =
  "usage: astralboot machine list | astralboot machine show MAC | astralboot machine reinstall MAC";

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The database, or an empty in-memory one when listing and the file is not there yet. */
function open(config: Config, create: boolean): DatabaseSync {
  if (!create && !exists(config.db_file)) return new DatabaseSync(":memory:");
  Deno.mkdirSync(dirname(config.db_file), { recursive: true });
  const db = new DatabaseSync(config.db_file);
  // The server may be writing: wait for its lock instead of failing at once.
  db.exec("PRAGMA busy_timeout = 2000;");
  return db;
}

function time(ms: number | null): string {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "-";
}

/**
 * Rows as aligned columns, the first row being the header. Control characters become `?`: cells
 * hold what clients sent (host names, progress reports), and a terminal must never run it.
 */
export function formatTable(rows: string[][]): string {
  // deno-lint-ignore no-control-regex
  rows = rows.map((r) => r.map((c) => c.replace(/[\x00-\x1f\x7f-\x9f]/g, "?")));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") +
    "\n";
}

function openRegistry(db: DatabaseSync, config: Config): MachineRegistry {
  return new MachineRegistry(db, { machines: config.machines });
}

/** The UUID a machine reported: iPXE's `${uuid}`, else its DHCP option 97. */
function reportedUuid(m: Machine): string {
  return m.inventory.uuid ?? m.inventory.dhcp_uuid ?? "-";
}

function machineTable(registry: MachineRegistry, history: BootHistory): string {
  const machines = registry.list();
  const waiting = registry.waiting();
  if (machines.length === 0 && waiting.length === 0) return "no machines yet\n";
  const rows = [
    ["MAC", "HOSTNAME", "IP", "OS", "STATE", "UUID", "SERIAL", "LAST SEEN", "LAST BOOT"],
  ];
  for (const m of machines) {
    const last = history.lines(m.mac, 1)[0];
    rows.push([
      m.mac,
      m.hostname,
      m.ip ?? "-",
      m.os ? `${m.os}${m.class ? `/${m.class}` : ""}` : "-",
      m.state,
      reportedUuid(m),
      m.inventory.serial ?? "-",
      time(m.last_seen),
      last ? `${time(last.at)} ${last.what}` : "-",
    ]);
  }
  // A [[machine]] uuid entry no MAC has reported yet: the MAC it boots from is not known.
  for (const w of waiting) {
    const os = w.os ? `${w.os}${w.class ? `/${w.class}` : ""}` : "-";
    rows.push(["-", w.hostname ?? "-", "-", os, "waiting", w.uuid!, "-", "-", "-"]);
  }
  return formatTable(rows);
}

/** The subnet (`10.1.0.0/24`) an address is served in, when `[[dhcp.subnet]]` lists any. */
function subnetNamer(config: Config): ((ip: string) => string) | undefined {
  if (config.dhcp.subnets.length === 0) return undefined;
  const networks = [
    Subnet.of(config.server_ip, config.netmask),
    ...config.dhcp.subnets.map((s) => Subnet.parse(s.network)),
  ];
  return (ip) => networks.find((n) => n.contains(ip))?.toString() ?? "-";
}

/** What `machine show` lists of a machine's report, iPXE's first, then its DHCP request's. */
const REPORTED: [string, keyof Inventory][] = [
  ["uuid", "uuid"],
  ["serial", "serial"],
  ["manufacturer", "manufacturer"],
  ["product", "product"],
  ["buildarch", "buildarch"],
  ["platform", "platform"],
  ["dhcp arch (93)", "dhcp_arch"],
  ["dhcp uuid (97)", "dhcp_uuid"],
  ["vendor class (60)", "vendor_class"],
  ["user class (77)", "user_class"],
];

/** `machine show MAC`: everything the server knows of one machine, then its history. */
function machineDetail(m: Machine, history: BootHistory): string {
  const inv = m.inventory;
  const entry = m.matched_by === "mac"
    ? `by its mac${m.uuid ? ` (uuid ${m.uuid})` : ""}`
    : m.matched_by === "uuid"
    ? `by uuid ${m.uuid} (bound to this MAC)`
    : "none";
  const value = (v: string | number | null) => v === null ? "-" : String(v);
  const rows = [
    ["mac", m.mac],
    ["hostname", m.hostname],
    ["ip", m.ip ?? "-"],
    ["os", m.os ? `${describe(m)}${m.pinned ? " (pinned by [[machine]])" : ""}` : "-"],
    ["state", `${m.state}${m.installed_at ? ` (installed ${time(m.installed_at)})` : ""}`],
    ["[[machine]]", entry],
    ["first seen", time(m.first_seen)],
    ["last seen", time(m.last_seen)],
    ["reported", time(inv.reported_at)],
    ...REPORTED.map(([label, field]) => [`  ${label}`, value(inv[field])]),
    ["vars", Object.keys(m.vars).sort().join(", ") || "-"],
  ];
  const lines = history.lines(m.mac).map((l) => ["", `${time(l.at)} ${l.kind} ${l.what}`]);
  return formatTable([...rows, ["history", lines.length ? "" : "-"], ...lines]);
}

/** `astralboot leases`: every lease and reservation, then the machines; exit code. */
export function leasesCommand(config: Config, out: Out): number {
  const db = open(config, false);
  try {
    const leases = new LeaseStore(db, {
      range: config.dhcp.range,
      reservations: config.machines.filter(hasMac).filter((m) => m.ip).map((m) => ({
        mac: m.mac,
        ip: m.ip!,
        hostname: m.hostname,
      })),
    }).list();
    out(`# leases (${config.db_file})\n`);
    if (leases.length === 0) {
      out("no leases yet\n");
    } else {
      // With networks behind relays, each lease says whose pool it is in.
      const subnetOf = subnetNamer(config);
      const rows = [["IP", "MAC", "HOSTNAME", "STATE", "EXPIRES", ...subnetOf ? ["SUBNET"] : []]];
      for (const l of leases) {
        rows.push([
          l.ip,
          l.mac,
          l.hostname ?? "-",
          l.state,
          time(l.expires),
          ...subnetOf ? [subnetOf(l.ip)] : [],
        ]);
      }
      out(formatTable(rows));
    }
    out("\n# machines\n");
    out(machineTable(openRegistry(db, config), new BootHistory(db)));
    return 0;
  } finally {
    db.close();
  }
}

function describe(m: Machine): string {
  return m.os ? `${m.os}${m.class ? `/${m.class}` : ""}` : "the menu";
}

/**
 * `astralboot machine list`, `machine show MAC` and `machine reinstall MAC`; exit code. Usage
 * mistakes throw `UsageError` (exit 2); an unknown machine is exit 1.
 */
export function machineCommand(
  config: Config,
  args: string[],
  out: Out,
  err: Out = (text) => Deno.stderr.writeSync(new TextEncoder().encode(text)),
): number {
  const [verb, ...rest] = args;
  if (verb === "list" || verb === undefined) {
    if (rest.length) throw new UsageError(`machine list takes no arguments; ${MACHINE_USAGE}`);
    const db = open(config, false);
    try {
      out(machineTable(openRegistry(db, config), new BootHistory(db)));
      return 0;
    } finally {
      db.close();
    }
  }
  if (verb !== "reinstall" && verb !== "show") {
    throw new UsageError(`unknown machine command ${verb}; ${MACHINE_USAGE}`);
  }
  if (rest.length !== 1) throw new UsageError(`machine ${verb} takes one MAC; ${MACHINE_USAGE}`);
  const mac = parseMac(rest[0]!);
  if (mac === null) throw new UsageError(`not a MAC address: ${JSON.stringify(rest[0])}`);
  const unknown = () => {
    err(`astralboot: no machine ${rest[0]}: not in the config and never booted here\n`);
    return 1;
  };
  if (verb === "show") {
    const db = open(config, false);
    try {
      const machine = openRegistry(db, config).get(mac);
      if (!machine) return unknown();
      out(machineDetail(machine, new BootHistory(db)));
      return 0;
    } finally {
      db.close();
    }
  }
  const db = open(config, true);
  try {
    const registry = openRegistry(db, config);
    const machine = registry.reinstall(mac);
    if (machine) new BootHistory(db).record(mac, "reinstall", "reinstall requested (command line)");
    if (!machine) return unknown();
    out(
      `${machine.mac} (${machine.hostname}) will install ${describe(machine)} on its next boot\n`,
    );
    return 0;
  } finally {
    db.close();
  }
}
