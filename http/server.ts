/**
 * The HTTP server's lifecycle: listen, answer with the app, guard the connections, stop.
 *
 * Deno.serve has no header timeout, idle timeout or connection limit, so on a shared boot
 * network one client could hold as many connections as it likes (half-sent request heads, idle
 * keep-alives). A watchdog beside it (`connection_watchdog.ts`) looks every second at the
 * listener's connections in the kernel's table and at what each is doing: a request is in
 * flight from the handler's start until Deno says its response was handed over, and the
 * connection stays busy while the kernel still queues bytes the client has not taken (Deno
 * hands a body given whole over at once). A connection not busy for longer than `idleTimeoutMs`
 * since it was first seen or last busy (to within a look) is shut down, which covers an
 * unfinished request head, a connection that never sends anything, and an idle keep-alive
 * alike; beyond `maxPerClient` from one address, or `maxConnections` in all, idle ones are shut
 * down longest idle first (`connection_rule.ts`). A busy connection, however slow, is never
 * cut. Each cut is reported through `onCut`; cuts for the caps are logged as one warning at
 * most every 30 s, idle ones at debug. Sockets are shut down (`shutdown(2)`, found through /proc/self/fd), never closed under
 * Deno, which then drops them itself; nothing of this sits in the path of a response's bytes.
 * Needs `--allow-ffi`; without it the server runs unguarded and says so once. Should a flood
 * still take every descriptor the process may have, Deno stops accepting for good; the server
 * then listens again every second until the watchdog has freed enough.
 *
 * @module
 */
import type { Hono } from "hono";
import { BindError } from "../net/errors.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { HttpCutReason } from "../observe/watch.ts";
import type { Env } from "./context.ts";
import { ConnectionWatchdog } from "./connection_watchdog.ts";

/** Options for {@linkcode startHttpServer}. */
export interface HttpServerOptions {
  /** The app; anything with Hono's `fetch`, so that `serve` can swap apps on a reload. */
  app: Pick<Hono<Env>, "fetch">;
  /** Address to listen on ("0.0.0.0" for all). */
  address: string;
  /** Port; 0 picks a free one (tests). */
  port: number;
  logger: Logger;
  /** A connection with no request in flight this long is shut down; default 15 s. */
  idleTimeoutMs?: number;
  /** Connections in all before idle ones are shut down; default 512. */
  maxConnections?: number;
  /** Connections from one client address before its idle ones are shut down; default 32. */
  maxPerClient?: number;
  /** How often the watchdog looks; default 1000 ms, 0 for no watchdog at all. */
  watchIntervalMs?: number;
  /** Called for each connection shut down. */
  onCut?: (reason: HttpCutReason) => void;
  /** Called after each look of the watchdog with the number of open connections. */
  onConnections?: (open: number) => void;
}

/** A running HTTP server. */
export interface HttpServer {
  /** The port it listens on (the picked one when 0 was asked for). */
  readonly port: number;
  /** Stops accepting, lets running requests finish, and resolves when all are done. */
  close(): Promise<void>;
}

/** Starts serving; rejects with a `BindError` when the address or port cannot be had. */
export function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { logger } = options;
  // Set right after Deno.serve returns, before the event loop can deliver a request.
  let watchdog: ConnectionWatchdog | undefined;
  const listen = (port: number) =>
    Deno.serve({
      hostname: options.address,
      port,
      onListen: (addr) =>
        logger.info("http", "listening", { address: addr.hostname, port: addr.port }),
      onError: (err) => {
        logger.error("http", "unhandled error", { error: err });
        return new Response("internal error\n", {
          status: 500,
          headers: { "Content-Type": "text/plain; charset=utf-8" },
        });
      },
    }, (req, info) => {
      // Read once: every read of info.remoteAddr is a call into the runtime.
      const remoteAddr = info.remoteAddr;
      if (watchdog) {
        const end = watchdog.begin(remoteAddr);
        info.completed.then(end, end);
      }
      return options.app.fetch(req, { remoteAddr });
    });
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = listen(options.port);
  } catch (e) {
    const what = `tcp ${options.address}:${options.port}`;
    return Promise.reject(new BindError(what, errorMessage(e), { cause: e }));
  }
  const port = server.addr.port;
  let closing = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  // Deno.serve stops accepting for good when the process has no descriptor left for a new
  // connection (a flood faster than the watchdog), and its rejection would end the process.
  // Instead: listen again once the watchdog has freed descriptors, trying every second.
  const follow = (s: Deno.HttpServer<Deno.NetAddr>) =>
    s.finished.catch((e) => {
      if (closing) return;
      logger.error("http", "server stopped accepting; listening again", { error: e });
      const again = (attempt: number) => {
        retry = undefined;
        if (closing) return;
        try {
          server = listen(port);
          follow(server);
        } catch (e) {
          if (attempt === 1) {
            logger.warn("http", "cannot listen yet, trying every second", { error: e });
          }
          retry = setTimeout(() => again(attempt + 1), 1000);
        }
      };
      retry = setTimeout(() => again(1), 1000);
    });
  follow(server);
  const intervalMs = options.watchIntervalMs ?? 1000;
  if (intervalMs > 0) {
    watchdog = new ConnectionWatchdog({
      port,
      address: options.address,
      intervalMs,
      idleTimeoutMs: options.idleTimeoutMs ?? 15_000,
      maxConnections: options.maxConnections ?? 512,
      maxPerClient: options.maxPerClient ?? 32,
      logger,
      onCut: options.onCut,
      onConnections: options.onConnections,
    });
    watchdog.start();
  }
  return Promise.resolve({
    port,
    close: async () => {
      closing = true;
      clearTimeout(retry);
      // Deno's shutdown drops idle and half-sent connections itself and waits for the rest.
      watchdog?.stop();
      await server.shutdown().catch(() => {/* it had stopped already */});
    },
  });
}
