/**
 * The server's own secret, kept in the database: the key of the callback tokens rendered into
 * installer configs (`boot/callback_tokens.ts`). Made once, on first use, from the system's
 * random source; whoever can read the database can forge tokens, and can change the install
 * state directly anyway.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

/** The 32-byte server secret of this database, made on first use. */
export function serverSecret(db: DatabaseSync): Uint8Array {
  db.exec("CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)");
  const row = db.prepare("SELECT value FROM secrets WHERE name = 'callback'").get() as
    | { value: Uint8Array }
    | undefined;
  if (row) return new Uint8Array(row.value);
  const value = crypto.getRandomValues(new Uint8Array(32));
  db.prepare("INSERT OR IGNORE INTO secrets (name, value) VALUES ('callback', ?)").run(value);
  // Another process may have made it first: whatever is stored now is the secret.
  const stored = db.prepare("SELECT value FROM secrets WHERE name = 'callback'").get() as {
    value: Uint8Array;
  };
  return new Uint8Array(stored.value);
}
