/**
 * The HTTP server's lifecycle: listen, answer with the app, stop.
 *
 * @module
 */
import type { Hono } from "hono";
import { BindError } from "../net/errors.ts";
import type { Logger } from "../log.ts";
import type { Env } from "./context.ts";

/** Options for {@linkcode startHttpServer}. */
export interface HttpServerOptions {
  app: Hono<Env>;
  /** Address to listen on ("0.0.0.0" for all). */
  address: string;
  /** Port; 0 picks a free one (tests). */
  port: number;
  logger: Logger;
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
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: options.address,
      port: options.port,
      onListen: (addr) =>
        logger.info("http", "listening", { address: addr.hostname, port: addr.port }),
      onError: (err) => {
        logger.error("http", "unhandled error", { error: err });
        return new Response("internal error\n", {
          status: 500,
          headers: { "Content-Type": "text/plain; charset=utf-8" },
        });
      },
    }, (req, info) => options.app.fetch(req, info));
  } catch (e) {
    const what = `tcp ${options.address}:${options.port}`;
    return Promise.reject(new BindError(what, (e as Error).message, { cause: e }));
  }
  return Promise.resolve({
    port: server.addr.port,
    close: () => server.shutdown(),
  });
}
