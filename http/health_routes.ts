/**
 * Health for service managers and load balancers; anyone may ask (no machine's data).
 *
 * | route | who | answers |
 * |---|---|---|
 * | `GET /healthz` | anyone | 200 `{"status":"ok","version":…}` while the process serves HTTP |
 * | `GET /readyz` | anyone | 200 when every part is ready, else 503; JSON with each check and why |
 *
 * Both are answered before the access log: a probe every few seconds must not fill the log.
 *
 * @module
 */
import { Hono } from "hono";
import type { Env } from "./context.ts";

/** One part's readiness. */
export interface Check {
  ok: boolean;
  /** What a person needs to know: "listening on br0:67", "gateway unreachable: …". */
  detail: string;
}

/** Options for {@linkcode healthRoutes}. */
export interface HealthOptions {
  version: string;
  /** Every part's check, by name (dhcp, tftp, http, content …). */
  readiness: () => Promise<Record<string, Check>>;
}

/** The routes of the module doc. */
export function healthRoutes(o: HealthOptions): Hono<Env> {
  const app = new Hono<Env>();
  const noStore = { "Cache-Control": "no-store" };
  app.get("/healthz", (c) => c.json({ status: "ok", version: o.version }, 200, noStore));
  app.get("/readyz", async (c) => {
    const checks = await o.readiness();
    const ready = Object.values(checks).every((x) => x.ok);
    return c.json({ ready, checks }, ready ? 200 : 503, noStore);
  });
  return app;
}
