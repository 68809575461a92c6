/**
 * The administration commands: `astralboot leases` and `astralboot machine list|reinstall`.
 *
 * They open the database at `db_file` next to a running server (WAL lets both read and
 * write). Listing never creates a database that is not there: it then shows what the
 * config alone says (reservations, `[[machine]]` entries).
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import type { Config } from "./config.ts";
import { UsageError } from "./cli.ts";
import { LeaseStore } from "../state/leases.ts";
import { type Machine, MachineError, MachineRegistry } from "../state/machine_registry.ts";

/** Where a command writes its text. */
export type Out = (text: string) => void;

const _MACHINE_USAGE = "usage: astralboot machine list | astralboot machine reinstall MAC";

function _exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The database, or an empty in-memory one when listing and the file is not there yet. */
function _open(config: Config, create: boolean): DatabaseSync {
  if (!create && !_exists(config.db_file)) return new DatabaseSync(":memory:");
  Deno.mkdirSync(dirname(config.db_file), { recursive: true });
  const db = new DatabaseSync(config.db_file);
  // The server may be writing: wait for its lock instead of failing at once.
  db.exec("PRAGMA busy_timeout = 2000;");
  return db;
}

function _time(ms: number | null): string {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "-";
}

/** Rows as aligned columns, the first row being the header. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") +
    "\n";
}

function _registry(db: DatabaseSync, config: Config): MachineRegistry {
  return new MachineRegistry(db, { machines: config.machines });
}

function _machineTable(registry: MachineRegistry): string {
  const machines = registry.list();
  if (machines.length === 0) return "no machines yet\n";
  const rows = [["MAC", "HOSTNAME", "IP", "OS", "STATE", "LAST SEEN", "LAST BOOT"]];
  for (const m of machines) {
    const last = registry.history(m.mac, 1)[0];
    rows.push([
      m.mac,
      m.hostname,
      m.ip ?? "-",
      m.os ? `${m.os}${m.class ? `/${m.class}` : ""}` : "-",
      m.state,
      _time(m.last_seen),
      last ? `${_time(last.at)} ${last.what}` : "-",
    ]);
  }
  return formatTable(rows);
}

/** `astralboot leases`: every lease and reservation, then the machines; exit code. */
export function leasesCommand(config: Config, out: Out): number {
  const db = _open(config, false);
  try {
    const leases = new LeaseStore(db, {
      range: config.dhcp.range,
      reservations: config.machines.filter((m) => m.ip).map((m) => ({
        mac: m.mac,
        ip: m.ip!,
        hostname: m.hostname,
      })),
    }).list();
    out(`# leases (${config.db_file})\n`);
    if (leases.length === 0) {
      out("no leases yet\n");
    } else {
      const rows = [["IP", "MAC", "HOSTNAME", "STATE", "EXPIRES"]];
      for (const l of leases) {
        rows.push([l.ip, l.mac, l.hostname ?? "-", l.state, _time(l.expires)]);
      }
      out(formatTable(rows));
    }
    out("\n# machines\n");
    out(_machineTable(_registry(db, config)));
    return 0;
  } finally {
    db.close();
  }
}

function _describe(m: Machine): string {
  return m.os ? `${m.os}${m.class ? `/${m.class}` : ""}` : "the menu";
}

/**
 * `astralboot machine list` and `astralboot machine reinstall MAC`; exit code. Usage
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
    if (rest.length) throw new UsageError(`machine list takes no arguments; ${_MACHINE_USAGE}`);
    const db = _open(config, false);
    try {
      out(_machineTable(_registry(db, config)));
      return 0;
    } finally {
      db.close();
    }
  }
  if (verb !== "reinstall") {
    throw new UsageError(`unknown machine command ${verb}; ${_MACHINE_USAGE}`);
  }
  if (rest.length !== 1) throw new UsageError(`machine reinstall takes one MAC; ${_MACHINE_USAGE}`);
  const db = _open(config, true);
  try {
    const registry = _registry(db, config);
    let machine: Machine | null;
    try {
      machine = registry.reinstall(rest[0]!);
    } catch (e) {
      if (e instanceof MachineError) throw new UsageError(e.message);
      throw e;
    }
    if (!machine) {
      err(`astralboot: no machine ${rest[0]}: not in the config and never booted here\n`);
      return 1;
    }
    out(
      `${machine.mac} (${machine.hostname}) will install ${_describe(machine)} on its next boot\n`,
    );
    return 0;
  } finally {
    db.close();
  }
}
