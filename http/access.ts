/**
 * The access log: one log line and one typed {@linkcode HttpEvent} per answered request, with
 * the route class, machine and boot step the route told it (`tell`). The middleware
 * ({@linkcode accessLog}) builds the event; the {@linkcode RequestRecorder} logs and hands it on.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { type Logger, preparedLine } from "../log.ts";
import type { HttpEvent } from "../observe/watch.ts";
import { clientOf, type Env, pathOf } from "./context.ts";

/** A path as it may be logged: a callback URL's token is a secret and is left out. */
export function withoutSecrets(path: string): string {
  // Every request passes here: only the callback routes can hold a token.
  if (!path.startsWith("/api/machines/")) return path;
  return path.replace(/^(\/api\/machines\/[^/]+\/(?:installed|progress))\/[^/?]+/, "$1/(token)");
}

/** The fields of an access log line, in order. */
const ACCESS_KEYS = ["method", "path", "status", "bytes", "ms", "client"];

/** Logs one answered request and hands its event on. */
export type RequestRecorder = (event: HttpEvent) => void;

/** The recorder of `logger` and `onRequest`: the log line first, then the event. */
export function requestRecorder(
  logger: Logger,
  onRequest: (event: HttpEvent) => void = () => {},
): RequestRecorder {
  const line = preparedLine(logger, "info", "http", "request", ACCESS_KEYS);
  return (event) => {
    line([event.method, event.path, event.status, event.bytes, event.ms, event.client ?? "-"]);
    try {
      onRequest(event);
    } catch (e) {
      // The answer is made; watching it must not turn it into an error.
      logger.warn("http", "request hook failed", { error: e });
    }
  };
}

/** Milliseconds since `t0`, to a tenth. */
export function elapsed(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}

/** Records each request after its handler answered. */
export function accessLog(record: RequestRecorder): MiddlewareHandler<Env> {
  return async function accessLog(c, next) {
    const t0 = performance.now();
    c.set("route", "other");
    c.set("mac", null);
    c.set("step", null);
    await next();
    const status = c.res.status;
    record({
      method: c.req.method,
      path: withoutSecrets(pathOf(c.req.url)),
      route: c.get("route"),
      status,
      bytes: c.req.method === "HEAD" ? 0 : Number(c.res.headers.get("Content-Length") ?? 0),
      ms: elapsed(t0),
      client: clientOf(c),
      mac: c.get("mac"),
      // Only an answer that delivered something is a boot step (not a 304 or an error).
      step: status >= 200 && status < 300 ? c.get("step") : null,
    });
  };
}
