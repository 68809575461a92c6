/**
 * The admin token: a random secret in a file only root (the server's user) can read,
 * `<data_dir>/api-token` unless `[api] token_file` names another. Made on first start; an
 * admin sends it as `Authorization: Bearer <token>`, and `astralboot token` prints it.
 *
 * @module
 */
import { dirname } from "node:path";

/** A new token: 32 random bytes, base64url. */
export function newToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** The token in `path`; `create` makes the file (mode 0600) when it is not there. */
export function readToken(path: string, create: boolean): string {
  try {
    const token = Deno.readTextFileSync(path).trim();
    if (token.length < 16) throw new Error(`${path}: a token must be at least 16 characters`);
    return token;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) || !create) throw e;
  }
  Deno.mkdirSync(dirname(path), { recursive: true });
  const token = newToken();
  // createNew: two servers starting at once must not overwrite each other's token.
  try {
    Deno.writeTextFileSync(path, token + "\n", { mode: 0o600, createNew: true });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return readToken(path, false);
    throw e;
  }
  return token;
}

/**
 * Why the token file at `path` is open to other users (its mode lets group or others read or
 * write it), or null: anyone who can read it is an admin of this server.
 */
export function tokenFileExposed(path: string): string | null {
  const mode = Deno.statSync(path).mode;
  if (mode === null || (mode & 0o077) === 0) return null;
  return `${path} has mode ${(mode & 0o777).toString(8).padStart(3, "0")}: whoever can read it ` +
    `is an admin of this server (chmod 600 ${path})`;
}
