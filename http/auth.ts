/**
 * Who may use what over HTTP:
 *
 * | who | may |
 * |---|---|
 * | anyone | `/boot.ipxe`, `/menu.ipxe` and `/choose` without a MAC, `/image/*`, `/tftp/*`, `/metrics` (counts only), `/healthz`, `/readyz`, `/ui` (the page; its data needs the token) |
 * | a machine, for itself | everything that names its MAC: its scripts, its menu choice, its installer configs (from its own address, `boot/identity.ts`), its callbacks (with its install's token, `boot/callback_tokens.ts`) |
 * | an admin, with the token | the machine API (`/api/machines…`, reinstall), the event feed, leases, the overview; any machine's config as a preview |
 *
 * The admin token is `Authorization: Bearer <token>`, the contents of `<data_dir>/api-token`
 * (or `[api] token_file`). Browsers never send it on their own, and a request that a browser
 * marks as coming from another site is refused whatever it carries, so a web page an admin
 * visits cannot use the API in the admin's name.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { timingSafeEqual } from "node:crypto";
import type { Env } from "./context.ts";

const encoder = new TextEncoder();

/** Whether the request carries `token` as its bearer token (compared in constant time). */
export function hasToken(c: Context<Env>, token: string): boolean {
  const header = c.req.header("Authorization") ?? "";
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  const got = encoder.encode(m[1]!);
  const want = encoder.encode(token);
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * Whether a browser says the request comes from another site: `Sec-Fetch-Site` cross-site
 * or same-site, or an `Origin` that is not this server's.
 */
export function crossOrigin(c: Context<Env>): boolean {
  const site = c.req.header("Sec-Fetch-Site");
  if (site === "cross-site" || site === "same-site") return true;
  const origin = c.req.header("Origin");
  if (!origin) return false;
  return origin !== new URL(c.req.url).origin;
}

/** Lets through only requests with the admin token, and none a browser sent for another site. */
export function adminOnly(token: string): MiddlewareHandler<Env> {
  return async function adminOnly(c, next) {
    if (crossOrigin(c)) {
      return c.json({ error: "cross-origin requests are refused" }, 403, {
        "Cache-Control": "no-store",
      });
    }
    if (!hasToken(c, token)) {
      return c.json(
        { error: "needs the admin token: Authorization: Bearer <contents of api-token>" },
        401,
        { "WWW-Authenticate": 'Bearer realm="astralboot"', "Cache-Control": "no-store" },
      );
    }
    await next();
  };
}
