/**
 * An HTTP server for tests/http_guard_test.ts to run as its own process (under a descriptor
 * limit, or in a namespace): on the address given as the first argument (default 127.0.0.1),
 * a random port, idle timeout 1 s, a look every 200 ms, JSON log lines on stdout. Answers
 * `/small` (1 KiB) and `/slow` (after 3 s). Runs until killed.
 *
 * @module
 */
import { Hono } from "hono";
import type { Env } from "../http/context.ts";
import { startHttpServer } from "../http/server.ts";
import { createLogger } from "../log.ts";

const app = new Hono<Env>();
app.get("/small", (c) => c.text("x".repeat(1024)));
app.get("/slow", async (c) => {
  await new Promise((r) => setTimeout(r, 3000));
  return c.text("finally");
});
await startHttpServer({
  app,
  address: Deno.args[0] ?? "127.0.0.1",
  port: 0,
  logger: createLogger({ format: "json", level: "debug" }),
  idleTimeoutMs: 1000,
  watchIntervalMs: 200,
  maxConnections: 100_000,
  maxPerClient: 100_000,
});
