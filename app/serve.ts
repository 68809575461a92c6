/**
 * `astralboot serve`: opens the boot tree, the database and the three servers, and stops them
 * all on SIGINT/SIGTERM. The glue between config.toml and the parts; no policy lives here.
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "./config.ts";
import { ConfigError, formatConfig } from "./config.ts";
import { ContentError, type ContentStore } from "../content/store.ts";
import { embeddedDefaultStore, FallbackStore, LocalStore } from "../content/local.ts";
import { IpfsStore } from "../ipfs/store.ts";
import { startTftpServer, type TftpOpen } from "../protocols/tftp/server.ts";
import { tftpPathToTree } from "../protocols/tftp/paths.ts";
import { startDhcpServer } from "../protocols/dhcp/server.ts";
import { startRaResponder } from "../protocols/ndp/responder.ts";
import { openDatabaseFile } from "../state/db.ts";
import { OsCatalog } from "../boot/catalog.ts";
import { TemplateRenderer } from "../boot/templates.ts";
import { MachineStore } from "../state/machines.ts";
import { createHttpApp, serveHttp } from "../http/app.ts";
import { MachineRegistry } from "../state/machine_registry.ts";
import { Installers } from "../boot/installers.ts";
import { createApiApp } from "../http/api_routes.ts";
import type { Logger } from "../log.ts";
import { BootWatch } from "../observe/watch.ts";
import { createWatchApp } from "../http/watch_routes.ts";

/** The IPFS store of `ref`, cached under `<data_dir>/cache`. */
export function openIpfsStore(config: Config, logger: Logger): IpfsStore {
  if (!config.ref) throw new ConfigError("ref: not set; name the root CID of the boot tree");
  try {
    return new IpfsStore({
      ref: config.ref,
      gateways: config.ipfs.gateways,
      timeoutMs: config.ipfs.timeout * 1000,
      cacheDir: join(config.data_dir, "cache"),
      logger,
    });
  } catch (e) {
    throw new ConfigError(`ref: ${(e as Error).message}`, { cause: e });
  }
}

/** Picks the boot tree: `-l DIR`, else the IPFS `ref`, else the embedded default. */
export function openStore(config: Config, local: string | undefined, logger: Logger): ContentStore {
  if (local) {
    try {
      return new FallbackStore(new LocalStore(local));
    } catch (e) {
      throw new ConfigError(`-l ${local}: ${(e as Error).message}`, { cause: e });
    }
  }
  if (config.ref) return new FallbackStore(openIpfsStore(config, logger) as ContentStore);
  logger.warn(
    "content",
    "no boot tree configured: set ref in config.toml or pass -l DIR; serving the built-in menu and the host's iPXE files only",
  );
  return new FallbackStore(embeddedDefaultStore());
}

/** The TFTP open handler: TFTP names mapped into `tftp/` of the tree, read through the store. */
export function tftpOpener(store: ContentStore): TftpOpen {
  return async (filename) => {
    const path = tftpPathToTree(filename);
    if (path === null) return { error: "forbidden", message: "access violation" };
    try {
      const entry = await store.stat(path);
      if (!entry || entry.kind !== "file") return { error: "not-found", message: "file not found" };
      return { size: entry.size, stream: await store.read(path) };
    } catch (e) {
      if (e instanceof ContentError || (e as { code?: string }).code) {
        const code = (e as ContentError).code;
        if (code === "not-found" || code === "forbidden" || code === "unavailable") {
          return { error: code, message: (e as Error).message };
        }
      }
      throw e;
    }
  };
}

/** Options of {@linkcode runServe}. */
export interface ServeOptions {
  local?: string;
  logger: Logger;
  version: string;
  /** Resolves when the servers should stop; default: SIGINT or SIGTERM. */
  stop?: Promise<void>;
}

function _signals(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    for (const s of ["SIGINT", "SIGTERM"] as const) {
      try {
        Deno.addSignalListener(s, done);
      } catch { /* not supported here */ }
    }
  });
}

/** Runs until stopped; resolves to the exit code. */
export async function runServe(config: Config, options: ServeOptions): Promise<number> {
  // Every part logs through the watch: metrics and boot events come from the log records.
  const watch = new BootWatch({ version: options.version });
  const logger = watch.logger(options.logger);
  logger.info("main", `astralboot ${options.version} starting`, {
    interface: config.interface,
    server_ip: config.server_ip,
  });
  for (const line of formatConfig(config).trimEnd().split("\n")) logger.info("config", line);
  const store = openStore(config, options.local, logger);
  logger.info("content", `boot tree: ${store.description}`);

  const closers: (() => Promise<void>)[] = [];
  const db = openDatabaseFile(config.db_file);
  closers.push(() => Promise.resolve(db.close()));
  try {
    const tftp = await startTftpServer({
      address: config.server_ip,
      port: config.tftp.port,
      open: tftpOpener(store),
      maxBlksize: config.tftp.max_blksize,
      maxWindowsize: config.tftp.windowsize,
      logger,
    });
    closers.push(() => tftp.close());

    const machines = new MachineStore(db);
    // A local tree may be edited while we run; an IPFS ref never changes.
    const catalog = new OsCatalog(store, { logger, ttlMs: options.local ? 2000 : Infinity });
    const templateConfig = {
      domain: config.dhcp.domain,
      dns: config.dhcp.dns,
      router: config.dhcp.router,
    };
    // Install state, configs and the /api routes share the machines table with the menu.
    const registry = new MachineRegistry(db, { machines: config.machines, store: machines });
    const installers = new Installers({
      registry,
      catalog,
      settings: {
        serverIp: config.server_ip,
        baseUrl: config.http.public_url,
        domain: config.dhcp.domain ?? "",
        templateConfig,
      },
      logger,
    });
    const app = createHttpApp({
      store,
      catalog,
      templates: new TemplateRenderer({ store }),
      machines,
      config: {
        serverIp: config.server_ip,
        baseUrl: config.http.public_url,
        defaultOs: config.boot.default,
        menuTimeout: config.boot.menu_timeout,
        machines: config.machines,
        templateConfig,
      },
      installers,
      api: createApiApp({ registry, logger }),
      logger,
    });
    app.route("/", createWatchApp({ watch, machines: () => registry.list() }));
    const http = serveHttp({ app, address: config.http.address, port: config.http.port, logger });
    closers.push(() => http.shutdown());
    // Runs before the shutdown (closers run in reverse): open event streams would hold it.
    closers.push(() => Promise.resolve(watch.close()));

    // DHCP last: a client that gets an offer must find TFTP and HTTP already listening.
    const dhcp = startDhcpServer({
      interface: config.interface,
      mode: config.dhcp.mode,
      serverIp: config.server_ip,
      netmask: config.netmask,
      range: config.dhcp.range,
      leaseSeconds: config.dhcp.lease,
      router: config.dhcp.router,
      dns: config.dhcp.dns,
      domain: config.dhcp.domain,
      boot: {
        httpUrl: config.http.public_url,
        efiLoader: config.dhcp.efi_loader,
        arm64Loader: config.dhcp.arm64_loader,
      },
      machines: config.machines,
      db,
      logger,
      // Machines seen on the wire join the registry before their first HTTP request.
      onAck: (mac, ip) => registry.seen(mac, ip),
    });
    closers.push(() => dhcp.close());
    if (config.dhcp.mode !== "off" && config.dhcp.router_advertisement) {
      // iPXE waits ~15 s for an IPv6 router advertisement after DHCP; a non-router one ends it.
      const ra = startRaResponder({ interface: config.interface, logger });
      if (ra) closers.push(() => ra.close());
    }
    const leases = dhcp.leases;
    if (leases) watch.leases = () => leases.list();
    watch.macForIp = (ip) =>
      machines.findByIp(ip)?.mac ??
        leases?.list().find((l) => l.ip === ip && l.state === "bound")?.mac ?? null;

    await (options.stop ?? _signals());
    logger.info("main", "stopping");
  } finally {
    for (const close of closers.reverse()) {
      await close().catch((e) => logger.warn("main", "error while stopping", { error: e }));
    }
    await ((store as FallbackStore).primary as { close?: () => Promise<void> }).close?.();
  }
  return 0;
}
