/**
 * The one SQLite database (`leases.db` under `data_dir`), shared by leases and machines.
 *
 * Each module that keeps state creates its own tables with `CREATE TABLE IF NOT EXISTS` in
 * its constructor, given the handle opened here. WAL keeps readers (the API, `astralboot
 * leases`) from blocking the DHCP server.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname, join } from "node:path";

/** Opens (creating if needed) `<dataDir>/leases.db` in WAL mode; ":memory:" for tests. */
export function openDatabase(dataDir: string | ":memory:"): DatabaseSync {
  if (dataDir === ":memory:") return new DatabaseSync(":memory:");
  return openDatabaseFile(join(dataDir, "leases.db"));
}

/** Opens (creating it and its folder if needed) the database file `db_file` in WAL mode. */
export function openDatabaseFile(file: string): DatabaseSync {
  Deno.mkdirSync(dirname(file), { recursive: true });
  const db = new DatabaseSync(file);
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000;");
  return db;
}
