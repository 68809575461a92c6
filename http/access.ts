/**
 * The access middleware: one log line and one typed {@linkcode HttpEvent} per answered
 * request, with the route class, machine and boot step the route told it (`tell`).
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import type { Logger } from "../log.ts";
import type { HttpEvent } from "../observe/watch.ts";
import { clientOf, type Env } from "./context.ts";

/** A path as it may be logged: a callback URL's token is a secret and is left out. */
export function withoutSecrets(path: string): string {
  return path.replace(/^(\/api\/machines\/[^/]+\/(?:installed|progress))\/[^/?]+/, "$1/(token)");
}

/** Logs each request after its handler answered, then hands its event to `onRequest`. */
export function accessLog(
  logger: Logger,
  onRequest: (event: HttpEvent) => void = () => {},
): MiddlewareHandler<Env> {
  return async function accessLog(c, next) {
    const t0 = performance.now();
    c.set("route", "other");
    c.set("mac", null);
    c.set("step", null);
    await next();
    const url = new URL(c.req.url);
    const event: HttpEvent = {
      method: c.req.method,
      path: withoutSecrets(url.pathname + url.search),
      route: c.get("route"),
      status: c.res.status,
      bytes: c.req.method === "HEAD" ? 0 : Number(c.res.headers.get("Content-Length") ?? 0),
      ms: Math.round((performance.now() - t0) * 10) / 10,
      client: clientOf(c),
      mac: c.get("mac"),
      // Only an answer that delivered something is a boot step (not a 304 or an error).
      step: c.res.status >= 200 && c.res.status < 300 ? c.get("step") : null,
    };
    logger.info("http", "request", {
      method: event.method,
      path: event.path,
      status: event.status,
      bytes: event.bytes,
      ms: event.ms,
      client: event.client ?? "-",
    });
    try {
      onRequest(event);
    } catch (e) {
      // The answer is made; watching it must not turn it into an error.
      logger.warn("http", "request hook failed", { error: e });
    }
  };
}
