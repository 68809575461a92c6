/**
 * Runs the router advertisement responder on one interface inside a test namespace, logging
 * JSON lines at debug level to stdout, until SIGTERM.
 *
 * Usage: `deno run -A tests/ndp_runner.ts <interface> [<json responder options>]`; prints `{"started": bool}` after the
 * start (exit code 3 when the responder declined), `{"closed": true}` after a clean stop.
 *
 * @module
 */
import { createLogger, flushLog } from "../log.ts";
import { startRaResponder } from "../protocols/ndp/responder.ts";

if (import.meta.main) {
  const logger = createLogger({ level: "debug", format: "json" });
  const extra = JSON.parse(Deno.args[1] ?? "{}");
  const responder = await startRaResponder({ ...extra, interface: Deno.args[0] ?? "", logger });
  // Log lines are gathered for a few ms before they are written: the responder's go out first.
  flushLog();
  console.log(JSON.stringify({ started: responder.answering }));
  if (!responder.answering) Deno.exit(3);
  await new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", () => resolve()));
  await responder.close();
  flushLog();
  console.log(JSON.stringify({ closed: true }));
  Deno.exit(0);
}
