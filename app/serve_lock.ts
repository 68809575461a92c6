/**
 * One `serve` per database. Two servers on one lease database would each keep their own copy of
 * the leases in memory (`state/lease_table.ts`) and hand the same address to two machines. A
 * lock file beside the database (`leases.db.serve-lock`) is held (`flock`) while the server
 * runs and names its pid; the kernel lets go of it when the process ends, however it ends. The
 * admin commands read and write the database without it: they go through SQLite's own locks.
 *
 * @module
 */
import { dirname } from "node:path";
import { libc, tryLockFile } from "../net/libc.ts";
import { ConfigError } from "./config_reader.ts";

/** The lock of one database, held until released. */
export interface ServeLock {
  release(): void;
}

/** Takes the serve lock of `dbFile`; a {@linkcode ConfigError} naming the holder when taken. */
export function lockDatabase(dbFile: string): ServeLock {
  const file = `${dbFile}.serve-lock`;
  Deno.mkdirSync(dirname(file), { recursive: true });
  // Made if missing, never truncated before the lock is ours: the holder's pid stays readable.
  Deno.writeFileSync(file, new Uint8Array(), { append: true });
  const fd = tryLockFile(file);
  if (fd === null) {
    const pid = Deno.readTextFileSync(file).trim();
    throw new ConfigError(
      `${dbFile} is in use by another astralboot serve${pid ? ` (pid ${pid})` : ""}: ` +
        "one server per database (two would give the same addresses to two machines)",
    );
  }
  Deno.writeTextFileSync(file, `${Deno.pid}\n`);
  let held = true;
  return {
    release: () => {
      if (held) libc().close(fd);
      held = false;
    },
  };
}
