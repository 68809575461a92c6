/**
 * The one mapping from errors to HTTP answers. It is structural, not a ladder of classes:
 * an error that carries a numeric `status` (Hono's HTTPException, `ContentError`,
 * `BootRequestError`) is answered with that status and its message; a template mistake is
 * a 500 that names the file and line; anything else is a 500 "internal error" with the
 * details in the log only. The API and the watch routes answer `{"error": …}` as JSON,
 * everything else plain text.
 *
 * @module
 */
import type { Context } from "hono";
import type { Logger } from "../log.ts";
import { TemplateRenderError } from "../boot/templates.ts";
import { type Env, textResponse } from "./context.ts";

type Status = 400 | 401 | 403 | 404 | 409 | 416 | 500 | 503;
const STATUSES = new Set<number>([400, 401, 403, 404, 409, 416, 500, 503]);

/** The status and message an error is answered with. */
export function answerFor(err: Error): { status: Status; message: string; expected: boolean } {
  const status = (err as { status?: unknown }).status;
  if (typeof status === "number" && STATUSES.has(status)) {
    return { status: status as Status, message: err.message, expected: true };
  }
  // A file that changed size between stat and read.
  if (err instanceof RangeError) return { status: 416, message: err.message, expected: true };
  if (err instanceof TemplateRenderError) {
    return { status: 500, message: `template error: ${err.message}`, expected: false };
  }
  return { status: 500, message: "internal error", expected: false };
}

/** Logs an error of a request for `path` (without its query) as {@linkcode answerFor} rates it. */
function logError(logger: Logger, path: string, err: Error) {
  const { status, message, expected } = answerFor(err);
  if (!expected) logger.error("http", "request failed", { path, error: err });
  else if (status >= 500) logger.warn("http", "unavailable", { path, why: message });
  else logger.debug("http", "refused", { path, status, why: message });
  return { status, message };
}

/** Hono's onError handler built on {@linkcode answerFor}. */
export function onError(logger: Logger) {
  return (err: Error, c: Context<Env>): Response => {
    const { status, message } = logError(logger, c.req.path, err);
    // Programs read the API and the watch routes: they get JSON; iPXE and people get text.
    const route = c.get("route");
    if (route === "api" || route === "watch") {
      return c.json({ error: message }, status, { "Cache-Control": "no-store" });
    }
    return textResponse(`${message}\n`, status);
  };
}

/** {@linkcode onError}'s text answer, for a request answered without the router. */
export function textError(logger: Logger, path: string, err: Error): Response {
  const { status, message } = logError(logger, path, err);
  return textResponse(`${message}\n`, status);
}
