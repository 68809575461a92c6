/**
 * An HTTP server for tests/http_guard_test.ts to run as its own process (under a descriptor
 * limit): 127.0.0.1, a random port, idle timeout 1 s, a look every 200 ms, JSON log lines on
 * stdout. Runs until killed.
 *
 * @module
 */
import { Hono } from "hono";
import type { Env } from "../http/context.ts";
import { startHttpServer } from "../http/server.ts";
import { createLogger } from "../log.ts";

const app = new Hono<Env>();
app.get("/small", (c) => c.text("x".repeat(1024)));
await startHttpServer({
  app,
  address: "127.0.0.1",
  port: 0,
  logger: createLogger({ format: "json", level: "debug" }),
  idleTimeoutMs: 1000,
  watchIntervalMs: 200,
  maxConnections: 100_000,
  maxPerClient: 100_000,
});
