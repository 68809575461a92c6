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
import { join } from "node:path";

/** Opens (creating if needed) `<dataDir>/leases.db` in WAL mode; ":memory:" for tests. */
export function openDatabase(dataDir: string | ":memory:"): DatabaseSync {
  if (dataDir === ":memory:") return new DatabaseSync(":memory:");
  Deno.mkdirSync(dataDir, { recursive: true });
  const db = new DatabaseSync(join(dataDir, "leases.db"));
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000;");
  return db;
}
