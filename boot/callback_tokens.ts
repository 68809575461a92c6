/**
 * Callback tokens: what an installer must show to report progress or mark its machine
 * installed. A token is an HMAC of the machine's MAC and its install generation under the
 * server's secret (`state/secrets.ts`), so it is valid for that machine's current install only:
 * the callback, a reinstall or a new choice at the menu move the generation on, and every
 * earlier token (including the one just used) stops working.
 *
 * The token travels in the path of the callback URLs rendered into the installer config
 * (`/api/machines/<mac>/installed/<token>`), which only the machine itself can fetch.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Mac } from "../net/mac.ts";

/** Tokens already computed, per secret: every menu and start script names one (an HMAC each). */
const known = new WeakMap<Uint8Array, Map<string, string>>();

/** Tokens kept per secret before the memory starts over. */
const KEEP = 4096;

/** The token of `mac`'s install number `generation`: 32 hex digits. */
export function callbackToken(secret: Uint8Array, mac: Mac, generation: number): string {
  let tokens = known.get(secret);
  if (!tokens) known.set(secret, tokens = new Map());
  const key = `${mac}|${generation}`;
  let token = tokens.get(key);
  if (token === undefined) {
    token = createHmac("sha256", secret).update(key).digest("hex").slice(0, 32);
    if (tokens.size >= KEEP) tokens.clear();
    tokens.set(key, token);
  }
  return token;
}

/** Whether `token` is the current one of `mac`'s install, compared in constant time. */
export function isCallbackToken(
  secret: Uint8Array,
  mac: Mac,
  generation: number,
  token: string,
): boolean {
  const want = new TextEncoder().encode(callbackToken(secret, mac, generation));
  const got = new TextEncoder().encode(token);
  return got.length === want.length && timingSafeEqual(got, want);
}
