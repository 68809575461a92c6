/**
 * The HTTP app as the tests build it: the real boot services over an in-memory database,
 * requests through `app.request()` with a client address, and a memory logger.
 *
 * @module
 */
import type { HealthOptions } from "./health_routes.ts";
import { openDatabase } from "../state/db.ts";
import { Bookkeeping } from "../state/bookkeeping.ts";
import type { ContentStore } from "../content/store.ts";
import { createBootServices } from "../app/services.ts";
import type { MachineConfig } from "../state/machines.ts";
import { BootWatch, type HttpEvent } from "../observe/watch.ts";
import { historyWriter } from "../observe/history.ts";
import { memoryLogger } from "../log.ts";
import { createHttpApp } from "./app.ts";
import type { AddressBook } from "../boot/identity.ts";

/** Options of {@linkcode testApp}. */
export interface TestAppOptions {
  store: ContentStore;
  machines?: readonly MachineConfig[];
  defaultOs?: string;
  menuTimeout?: number;
  /** Default a new one; the history is written from its events either way. */
  watch?: BootWatch;
  onRequest?: (event: HttpEvent) => void;
  /** This server's address and base URL; default 10.0.0.1. */
  serverIp?: string;
  baseUrl?: string;
  /**
   * Who holds which address; without one every request is trusted to come from the machine
   * it names (most tests are about something else: the check has its own tests).
   */
  addressBook?: Partial<AddressBook>;
  /** `/healthz` and `/readyz`. */
  health?: HealthOptions;
}

/** The admin token of every test app. */
export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef";

/** Request headers that carry {@linkcode ADMIN_TOKEN}. */
export const ADMIN = { Authorization: `Bearer ${ADMIN_TOKEN}` };

/** The app with its services, watch, logger and request helpers, wired as `serve` wires them. */
export function testApp(options: TestAppOptions) {
  const logger = memoryLogger();
  const watch = options.watch ?? new BootWatch({ version: "test" });
  const db = openDatabase(":memory:");
  // As `serve` runs: contacts and history lines written off the request, in batches.
  const bookkeeping = new Bookkeeping(db, { logger });
  const services = createBootServices({
    store: options.store,
    db,
    bookkeeping,
    machines: options.machines,
    server: {
      serverIp: options.serverIp ?? "10.0.0.1",
      baseUrl: options.baseUrl ?? "http://10.0.0.1",
      domain: "lab",
      templateConfig: { domain: "lab" },
    },
    defaultOs: options.defaultOs,
    menuTimeout: options.menuTimeout ?? 5,
    addressBook: {
      leaseOf: () => null,
      leaseAt: () => null,
      reservationOf: () => null,
      reservedAt: () => null,
      neighbourAt: () => null,
      ...options.addressBook,
    },
    trustAll: options.addressBook === undefined,
    logger,
  });
  watch.events.observe(historyWriter(services.history, logger));
  const app = createHttpApp({
    ...services,
    store: options.store,
    watch,
    onRequest: options.onRequest,
    health: options.health,
    adminToken: ADMIN_TOKEN,
    logger,
  });
  const get = (path: string, init: RequestInit = {}, ip = "10.0.0.50") =>
    app.request(path, init, { remoteAddr: { hostname: ip } });
  const text = async (path: string, ip?: string, init: RequestInit = {}) => {
    const res = await get(path, init, ip);
    return {
      status: res.status,
      body: await res.text(),
      type: res.headers.get("Content-Type"),
      cache: res.headers.get("Cache-Control"),
    };
  };
  return { app, ...services, bookkeeping, watch, logger, get, text };
}
