/**
 * `astralboot serve`: opens the boot tree, the database and the servers, connects their
 * event hooks to the watch (metrics, live feed, history), and stops them all on SIGINT or
 * SIGTERM. The glue between config.toml and the parts; no policy lives here.
 *
 * @module
 */
import { join } from "node:path";
import { errorMessage, type Logger } from "../log.ts";
import type { Config } from "./config.ts";
import { ConfigError, formatConfig } from "./config.ts";
import type { ContentStore } from "../content/store.ts";
import { CachedStore } from "../content/cached.ts";
import { FallbackStore } from "../content/fallback.ts";
import { LocalStore } from "../content/local.ts";
import { embeddedDefaultStore } from "../content/memory.ts";
import type { IpfsEventSink } from "../ipfs/events.ts";
import type { IpfsStore } from "../ipfs/store.ts";
import { startTftpServer } from "../protocols/tftp/server.ts";
import { listenInterface } from "../protocols/tftp/interface_socket.ts";
import { startRaResponder } from "../protocols/ndp/responder.ts";
import { checkDatabase, openDatabaseFile } from "../state/db.ts";
import { Bookkeeping } from "../state/bookkeeping.ts";
import type { LeasePools } from "../state/lease_pools.ts";
import { LeaseTable } from "../state/lease_table.ts";
import { hasMac, type MachineRegistry } from "../state/machines.ts";
import { Subnet } from "../net/ipv4.ts";
import { neighbourMac } from "../net/neighbours.ts";
import type { Mac } from "../net/mac.ts";
import type { AddressBook } from "../boot/identity.ts";
import { readToken, tokenFileExposed } from "./token.ts";
import { Readiness } from "./readiness.ts";
import { createHttpApp } from "../http/app.ts";
import { startHttpServer } from "../http/server.ts";
import { BootWatch } from "../observe/watch.ts";
import { historyWriter } from "../observe/history.ts";
import type { DatabaseSync } from "node:sqlite";
import type { DhcpEvent } from "../boot/dhcp_responder.ts";
import {
  createLeasePools,
  type DhcpMachine,
  type DhcpServiceOptions,
  type DhcpSubnet,
  startDhcpService,
} from "./dhcp.ts";
import { configuredOptions } from "./config_options.ts";
import { contactRecorder } from "./dhcp_contacts.ts";
import { type DnsServiceOptions, startDnsService } from "./dns.ts";
import { type BootServices, createBootServices } from "./services.ts";
import { planReload } from "./reload.ts";
import type { HealthOptions } from "../http/health_routes.ts";
import { tftpOpener } from "./tftp_open.ts";
import { missingSecureBootFiles } from "../boot/secure_boot.ts";
import { TreeFact } from "./tree_fact.ts";
import { lockDatabase } from "./serve_lock.ts";

/**
 * The IPFS store of `ref`, cached under `<data_dir>/cache` (held to `cache_max` by its gc). The
 * store's module is loaded here, on first use: a server of a local tree never loads it (its
 * packages are a few MiB of memory).
 */
export async function openIpfsStore(
  config: Config,
  logger: Logger,
  onEvent?: IpfsEventSink,
): Promise<IpfsStore> {
  if (!config.ref) throw new ConfigError("ref: not set; name the root CID of the boot tree");
  const { IpfsStore } = await import("../ipfs/store.ts");
  try {
    return new IpfsStore({
      ref: config.ref,
      gateways: config.ipfs.gateways,
      timeoutMs: config.ipfs.timeout * 1000,
      cacheDir: join(config.data_dir, "cache"),
      logger,
      onEvent,
      cacheMaxBytes: config.ipfs.cache_max,
      downloadMinRate: config.ipfs.min_rate,
    });
  } catch (e) {
    throw new ConfigError(`ref: ${errorMessage(e)}`, { cause: e });
  }
}

/** How often what the tree cache keeps of a local tree is checked against the disk. */
const LOCAL_TREE_RECHECK_MS = 1000;

/** An open boot tree: its store (small files kept in memory, `content/cached.ts`). */
export interface OpenTree {
  store: ContentStore;
  /** Drops what the store keeps in memory (a reload: the tree may have changed). */
  forget: () => void;
  close: () => Promise<void>;
}

/** `store` behind the memory of `content/cached.ts`, checked below every `revalidateMs`. */
function cachedTree(
  store: ContentStore,
  revalidateMs: number,
  close: () => Promise<void>,
): OpenTree {
  const cached = new CachedStore(store, { revalidateMs });
  return {
    store: cached,
    forget: () => cached.clear(),
    close: () => {
      cached.clear();
      return close();
    },
  };
}

/** Picks the boot tree: `-l DIR`, else the IPFS `ref`, else the embedded default. */
export async function openStore(
  config: Config,
  local: string | undefined,
  logger: Logger,
  onEvent?: IpfsEventSink,
): Promise<OpenTree> {
  if (local) {
    try {
      // A local tree may be edited while we run: what is kept is checked every second.
      return cachedTree(
        new FallbackStore(new LocalStore(local)),
        LOCAL_TREE_RECHECK_MS,
        () => Promise.resolve(),
      );
    } catch (e) {
      throw new ConfigError(`-l ${local}: ${errorMessage(e)}`, { cause: e });
    }
  }
  if (config.ref) {
    const ipfs = await openIpfsStore(config, logger, onEvent);
    // A server runs for months: its cache is held to cache_max now and every hour.
    ipfs.startGc();
    // A ref names content that never changes: what is kept never needs checking.
    return cachedTree(new FallbackStore(ipfs), Infinity, () => ipfs.close());
  }
  logger.warn(
    "content",
    "no boot tree configured: set ref in config.toml or pass -l DIR; serving the built-in menu and the host's iPXE files only",
  );
  // Only the host's iPXE files could change (a package upgrade).
  return cachedTree(
    new FallbackStore(embeddedDefaultStore()),
    LOCAL_TREE_RECHECK_MS,
    () => Promise.resolve(),
  );
}

/** Options of {@linkcode runServe}. */
export interface ServeOptions {
  local?: string;
  logger: Logger;
  version: string;
  /** Resolves when the servers should stop; default: SIGINT or SIGTERM. */
  stop?: Promise<void>;
  /** Reads the config again, for a reload on SIGHUP; throws `ConfigError` when it is wrong. */
  reload?: () => Config;
}

function signals(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => resolve();
    for (const s of ["SIGINT", "SIGTERM"] as const) {
      try {
        Deno.addSignalListener(s, done);
      } catch { /* not supported here */ }
    }
  });
}

/** The boot services of this config's tree and database. */
function servicesFor(
  config: Config,
  tree: { store: ContentStore; local: boolean },
  db: { main: DatabaseSync; quick: DatabaseSync },
  bookkeeping: Bookkeeping,
  addressBook: AddressBook,
  logger: Logger,
): BootServices {
  return createBootServices({
    store: tree.store,
    db: db.main,
    bestEffortDb: db.quick,
    bookkeeping,
    addressBook,
    machines: config.machines,
    server: {
      serverIp: config.server_ip,
      baseUrl: config.http.public_url,
      domain: config.dhcp.domain ?? "",
      templateConfig: {
        domain: config.dhcp.domain,
        dns: config.dhcp.dns,
        router: config.dhcp.router,
      },
    },
    defaultOs: config.boot.default,
    menuTimeout: config.boot.menu_timeout,
    // A local tree may be edited while we run; an IPFS ref never changes.
    catalogTtlMs: tree.local ? 2000 : Infinity,
    logger,
  });
}

/**
 * Where this server learns machines' addresses: its leases (of every subnet, so that a machine
 * behind a relay is known too), the config, the neighbour table.
 */
export function addressBookFor(config: Config, leases: LeasePools | undefined): AddressBook {
  const reserved = new Map(
    config.machines.filter(hasMac).flatMap((m) => m.ip ? [[m.mac, m.ip] as const] : []),
  );
  const byIp = new Map([...reserved].map(([mac, ip]) => [ip, mac] as const));
  return {
    leaseOf: (mac) => leases?.current(mac)?.ip ?? null,
    leaseAt: (ip) => leases?.holderOf(ip) ?? null,
    reservationOf: (mac) => reserved.get(mac) ?? null,
    reservedAt: (ip) => byIp.get(ip) ?? null,
    neighbourAt: (ip) => neighbourMac(ip, config.interface || undefined),
  };
}

/** What DHCP knows of each `[[machine]]`: reservation, host name, its own options. */
function dhcpMachines(config: Config): DhcpMachine[] {
  // DHCP knows machines by MAC: a [[machine]] named by uuid alone is a stranger to it.
  return config.machines.flatMap((m) => m.mac ? [{ ...m, mac: m.mac }] : []).map((m) => ({
    mac: m.mac,
    ip: m.ip,
    hostname: m.hostname,
    ...(m.options || m.force_options
      ? { options: configuredOptions(m.options ?? {}, m.force_options ?? []) }
      : {}),
  }));
}

/** The `[[dhcp.subnet]]` networks as the DHCP service takes them. */
function dhcpSubnets(config: Config): DhcpSubnet[] {
  return config.dhcp.subnets.map((s) => ({
    subnet: Subnet.parse(s.network),
    range: s.range,
    router: s.router,
    dns: s.dns,
    domain: s.domain,
    leaseSeconds: s.lease,
    options: configuredOptions(s.options, s.force_options),
  }));
}

/** The lease stores of this config, or none when another server hands out addresses. */
function leasePoolsFor(
  config: Config,
  db: DatabaseSync,
  logger: Logger,
): LeasePools | undefined {
  if (config.dhcp.mode === "proxy" || config.dhcp.mode === "off") return undefined;
  return createLeasePools(db, {
    range: config.dhcp.range,
    serverIp: config.server_ip,
    subnet: Subnet.of(config.server_ip, config.netmask),
    router: config.dhcp.router,
    subnets: dhcpSubnets(config),
    machines: dhcpMachines(config),
    newClientRate: config.dhcp.new_client_rate,
    logger,
  });
}

/** What the DHCP service of this config gets. */
function dhcpOptions(
  config: Config,
  db: DatabaseSync,
  leases: LeasePools | undefined,
  logger: Logger,
  onEvent: (e: DhcpEvent) => void,
  diskChain: (mac: Mac) => boolean,
): DhcpServiceOptions {
  return {
    interface: config.interface,
    mode: config.dhcp.mode,
    serverIp: config.server_ip,
    netmask: config.netmask,
    range: config.dhcp.range,
    leaseSeconds: config.dhcp.lease,
    router: config.dhcp.router,
    dns: config.dhcp.dns,
    domain: config.dhcp.domain,
    options: configuredOptions(config.dhcp.options, config.dhcp.force_options),
    subnets: dhcpSubnets(config),
    boot: {
      httpUrl: config.http.public_url,
      efiLoader: config.dhcp.efi_loader,
      arm64Loader: config.dhcp.arm64_loader,
      secureBoot: config.boot.secure_boot,
      diskChain,
    },
    machines: dhcpMachines(config),
    db,
    leases,
    knownOnly: config.dhcp.known_only,
    newClientRate: config.dhcp.new_client_rate,
    logger,
    onEvent,
  };
}

/** What the DNS service of this config gets. */
function dnsOptions(
  config: Config,
  leases: LeasePools | undefined,
  logger: Logger,
  watch: BootWatch,
): DnsServiceOptions {
  return {
    interface: config.interface,
    serverIp: config.server_ip,
    netmask: config.netmask,
    port: config.dns.port,
    // loadConfig refuses DNS without a domain.
    domain: config.dhcp.domain!,
    ttl: config.dns.ttl,
    upstream: config.dns.upstream,
    relayed: config.dhcp.subnets.map((s) => Subnet.parse(s.network)),
    // Names come with addresses: a [[machine]] named by uuid alone has none in the config.
    machines: config.machines.filter(hasMac),
    leases,
    logger,
    onEvent: (e) => watch.dns(e),
    onDrop: (e) => watch.dnsDropped(e),
  };
}

/** How long a stranger nobody configured is remembered after its last contact. */
const FORGET_STRANGERS_MS = 30 * 86_400_000;
/** The most strangers remembered at once. */
const MAX_STRANGERS = 10_000;

/**
 * Forgets the machines nobody configured that were not seen for 30 days, and the oldest beyond
 * 10 000 of them. A database another process holds too long (a backup, an admin's `sqlite3`)
 * or a failing disk is logged, never thrown: from the daily timer it would end the server. The
 * next day tries again.
 */
export function forgetStrangers(
  registry: Pick<MachineRegistry, "prune">,
  logger: Logger,
  now = Date.now(),
): void {
  try {
    const gone = registry.prune(now - FORGET_STRANGERS_MS, MAX_STRANGERS);
    if (gone) logger.info("main", "forgot machines nobody configured", { machines: gone });
  } catch (e) {
    logger.warn("main", "cannot forget machines nobody configured now, trying again tomorrow", {
      error: e,
    });
  }
}

/** Everything a reload rebuilds from the config: the lease store and the boot services. */
interface Generation {
  config: Config;
  leases: LeasePools | undefined;
  services: BootServices;
  app: ReturnType<typeof createHttpApp>;
}

/** The parts of a running serve that stay across reloads. */
interface Running {
  db: { main: DatabaseSync; quick: DatabaseSync; leases: DatabaseSync };
  /** Contacts, reports and history lines on their way to `db.quick`; shared by generations. */
  bookkeeping: Bookkeeping;
  watch: BootWatch;
  adminToken: string;
  health: HealthOptions;
  local: boolean;
  logger: Logger;
}

/** Builds the lease store, the boot services and the HTTP app of `config` over `store`. */
function generation(config: Config, store: ContentStore, r: Running): Generation {
  const leases = leasePoolsFor(config, r.db.leases, r.logger);
  const book = addressBookFor(config, leases);
  const services = servicesFor(
    config,
    { store, local: r.local },
    r.db,
    r.bookkeeping,
    book,
    r.logger,
  );
  const app = createHttpApp({
    ...services,
    store,
    watch: r.watch,
    adminToken: r.adminToken,
    health: r.health,
    logger: r.logger,
  });
  return { config, leases, services, app };
}

/** Runs until stopped; resolves to the exit code. */
export async function runServe(config: Config, options: ServeOptions): Promise<number> {
  const watch = new BootWatch({ version: options.version });
  watch.sampleEventLoop();
  const logger = watch.logger(options.logger);
  logger.info("main", `astralboot ${options.version} starting`, {
    interface: config.interface,
    server_ip: config.server_ip,
  });
  logConfig(config, logger);
  let tree = await openStore(config, options.local, logger, (e) => watch.ipfs(e));
  logger.info("content", `boot tree: ${tree.store.description}`);
  // What the tree lacks of shim → GRUB: Secure Boot needs it, and an installed x86-64 UEFI
  // machine goes back to its disk through it (boot/bootfile.ts). Looked up once per tree, in the
  // background; until it answers, an installed machine gets what a new one gets.
  const grubChain = new TreeFact(missingSecureBootFiles);
  const lookForGrubChain = (store: ContentStore, warn: boolean) => {
    grubChain.check(store).then((missing) => {
      if (!warn || missing.length === 0) return;
      logger.warn(
        "boot",
        `secure_boot: the tree lacks ${
          missing.map((f) => `${f.path} (${f.source})`).join(", ")
        }; x86-64 UEFI machines will not boot`,
      );
    }).catch((e) => {
      if (warn) logger.warn("boot", "secure_boot: cannot check the tree", { error: e });
    });
  };
  lookForGrubChain(tree.store, config.boot.secure_boot);
  if (config.boot.secure_boot) {
    if (config.dhcp.mode === "proxy" || config.dhcp.mode === "auto") {
      // Measured: Debian's signed GRUB ignores ProxyDHCP (docs/FIRMWARE.md).
      logger.warn(
        "boot",
        `secure_boot beside another DHCP server: GRUB reads its config from the next-server of that server's answer; make it name ${config.server_ip} (ISC next-server, dnsmasq dhcp-boot=,,${config.server_ip})`,
      );
    }
  }

  const ready = new Readiness(tree.store);
  for (const part of ["tftp", "http", ...(config.dhcp.mode === "off" ? [] : ["dhcp"])]) {
    ready.expect(part);
  }
  // Closed in reverse order: DHCP first, the tree last.
  const running: { close(): Promise<void> }[] = [{ close: () => tree.close() }];
  try {
    const lock = lockDatabase(config.db_file);
    running.push({ close: () => Promise.resolve(lock.release()) });
    const main = openDatabaseFile(config.db_file);
    running.push({ close: () => Promise.resolve(main.close()) });
    checkDatabase(main, config.db_file);
    const quick = openDatabaseFile(config.db_file, { busyTimeoutMs: 0, synchronous: "NORMAL" });
    running.push({ close: () => Promise.resolve(quick.close()) });
    // The lease table's own handle: its group commit must never wait for a lock.
    const leases = openDatabaseFile(config.db_file, { busyTimeoutMs: 0 });
    running.push({
      // The table first (its handle on the write-ahead log goes with it), the handle whatever.
      close: () =>
        Promise.resolve().then(() => LeaseTable.closeOf(leases)).finally(() => leases.close()),
    });
    // Closed after every server (the last requests queue too), before the handles.
    const bookkeeping = new Bookkeeping(quick, { logger });
    running.push({ close: () => Promise.resolve(bookkeeping.close()) });
    const adminToken = readToken(config.api.token_file, true);
    logger.info("main", `admin token in ${config.api.token_file} (astralboot token prints it)`);
    const exposed = tokenFileExposed(config.api.token_file);
    if (exposed) logger.warn("main", exposed);
    const r: Running = {
      db: { main, quick, leases },
      bookkeeping,
      watch,
      adminToken,
      health: { version: options.version, readiness: () => ready.report() },
      local: options.local !== undefined,
      logger,
    };
    let gen = generation(config, tree.store, r);
    running.push(
      await startTftpServer({
        address: config.server_ip,
        port: config.tftp.port,
        // Through `tree` and `gen`, so that a reload's tree and machines serve the next request.
        open: (name, client) =>
          tftpOpener(tree.store, {
            boot: gen.services.tftp,
            onScript: (script, ip) => watch.script(script.machine?.mac ?? null, ip, script.step),
            logger,
          })(name, client),
        maxBlksize: config.tftp.max_blksize,
        maxWindowsize: config.tftp.windowsize,
        maxPerClient: config.tftp.max_per_client,
        // Bound to the interface too: a request for server_ip arriving on another link of
        // this host gets no answer.
        listen: listenInterface(config.interface, logger),
        logger,
        onTransfer: (e) => watch.tftp(e),
      }),
    );
    ready.set(
      "tftp",
      true,
      `listening on ${config.interface} ${config.server_ip}:${config.tftp.port}`,
    );
    const forget = () => forgetStrangers(gen.services.registry, logger);
    forget();
    const daily = setInterval(forget, 86_400_000);
    running.push({ close: () => Promise.resolve(clearInterval(daily)) });
    watch.events.observe(historyWriter(() => gen.services.history, logger));
    const { address, port } = config.http;
    running.push(
      await startHttpServer({
        // Through `gen`, so that a reload's app answers the next request.
        app: { fetch: (req, ...rest) => gen.app.fetch(req, ...rest) },
        address,
        port,
        logger,
        idleTimeoutMs: config.http.idle_timeout * 1000,
        maxConnections: config.http.max_connections,
        maxPerClient: config.http.max_per_client,
        onCut: (reason) => watch.httpCut(reason),
        onConnections: (open) => watch.httpConnections(open),
      }),
    );
    ready.set("http", true, `listening on ${address}:${port}`);
    // Closed before the HTTP server: open event streams would hold its shutdown.
    running.push({ close: () => Promise.resolve(watch.close()) });

    const dns = config.dns.enabled
      ? await startDnsService(dnsOptions(config, gen.leases, logger, watch))
      : undefined;
    if (dns) running.push(dns);

    // DHCP last: a client that gets an offer must find TFTP, HTTP and DNS already listening.
    const contact = contactRecorder(() => gen.services.registry, logger);
    const onDhcp = (e: DhcpEvent) => {
      watch.dhcp(e);
      // Machines seen on the wire join the registry before their first HTTP request, with
      // what their request said of them (shown only: DHCP is no proof of who sent it).
      if (e.kind === "reply" && e.reply === "ack" && e.ip) contact(e.mac, e.ip, e.inventory);
    };
    const diskChain = (mac: Mac) =>
      grubChain.value?.length === 0 && gen.services.registry.get(mac)?.state === "installed";
    const dhcp = await startDhcpService(
      dhcpOptions(config, leases, gen.leases, logger, onDhcp, diskChain),
    );
    running.push(dhcp);
    if (config.dhcp.mode !== "off") {
      ready.set("dhcp", true, `${config.dhcp.mode} mode on ${config.interface}`);
    }
    if (config.dhcp.mode !== "off" && config.dhcp.router_advertisement) {
      // iPXE waits ~15 s for an IPv6 router advertisement after DHCP; a non-router one ends it.
      running.push(await startRaResponder({ interface: config.interface, logger }));
    }
    const watchLeases = () => {
      const leases = gen.leases;
      watch.leases = leases ? () => leases.list() : undefined;
      watch.pool = leases ? () => leases.usage() : undefined;
    };
    watchLeases();
    // Asked for requests of addresses no event named yet: a look-up by address, never a walk
    // over every lease (a copy of 50 000 of them per request, before).
    watch.macForIp = (ip) =>
      gen.services.registry.findByIp(ip)?.mac ?? gen.leases?.boundAt(ip)?.mac ?? null;

    /** Applies a new config to the running servers; a bad one leaves everything as it was. */
    const reloadNow = async () => {
      if (!options.reload) {
        logger.warn("main", "reload asked, but there is no config file to read again");
        return;
      }
      let plan;
      try {
        plan = planReload(gen.config, options.reload());
      } catch (e) {
        logger.error(
          "main",
          `reload failed, still serving the old config: ${errorMessage(e)}`,
        );
        return;
      }
      for (const key of plan.restart) {
        logger.warn("main", `reload: ${key} changed; it takes effect after a restart`);
      }
      const next = plan.config;
      let nextTree = tree;
      // A local tree is opened anew: its folder may be a symlink an atomic deploy moved to the
      // next release (`current -> releases/v2`), which the store resolved once, when opened.
      if (
        r.local || next.ref !== gen.config.ref || plan.applied.some((k) => k.startsWith("ipfs."))
      ) {
        try {
          nextTree = await openStore(next, options.local, logger, (e) => watch.ipfs(e));
        } catch (e) {
          // A deploy between two releases (the symlink not there yet): the old tree goes on.
          logger.error(
            "main",
            `reload failed, still serving the old config: ${errorMessage(e)}`,
          );
          return;
        }
      }
      const nextGen = generation(next, nextTree.store, r);
      const old = tree;
      tree = nextTree;
      gen = nextGen;
      // What the old tree kept in memory is not served again: a local tree may have been
      // edited, a replaced one only finishes the transfers it started (they hold their bytes).
      old.forget();
      ready.setStore(tree.store);
      lookForGrubChain(tree.store, false);
      dhcp.update(dhcpOptions(next, leases, gen.leases, logger, onDhcp, diskChain));
      dns?.update(dnsOptions(next, gen.leases, logger, watch));
      watchLeases();
      if (old !== tree) {
        // Transfers that started on the old tree finish from it; then it is closed (and no
        // longer listed: a local tree is replaced at every reload).
        const closing = {
          close: () => {
            clearTimeout(late);
            return old.close();
          },
        };
        const late = setTimeout(() => {
          running.splice(running.indexOf(closing), 1);
          old.close().catch(() => {});
        }, OLD_TREE_GRACE_MS);
        running.push(closing);
      }
      logConfig(next, logger);
      logger.info("main", "reloaded", { changed: plan.applied.join(", ") || "nothing" });
    };
    // One reload at a time, in the order asked: opening a tree may wait (the IPFS store's module
    // is loaded when a `ref` first appears), and a second SIGHUP must not apply its plan, made
    // from the config before the first, in between.
    let reloads = Promise.resolve();
    const reload = () => {
      reloads = reloads.then(reloadNow).catch((e) =>
        logger.error("main", "reload failed, still serving the old config", { error: e })
      );
    };
    await untilStopped(options.stop, reload);
    await reloads;
    logger.info("main", "stopping");
  } finally {
    for (const part of running.reverse()) {
      await part.close().catch((e) => logger.warn("main", "error while stopping", { error: e }));
    }
  }
  return 0;
}

/** How long a tree replaced by a reload stays open for the transfers still reading it. */
const OLD_TREE_GRACE_MS = 10 * 60_000;

/** The config in the log: the names of [[machine]] vars, never their values. */
function logConfig(config: Config, logger: Logger): void {
  for (const line of formatConfig(config, { hideVars: true }).trimEnd().split("\n")) {
    logger.info("config", line);
  }
}

/** Resolves on `stop` (or SIGINT/SIGTERM); calls `reload` on each SIGHUP meanwhile. */
async function untilStopped(stop: Promise<void> | undefined, reload: () => void): Promise<void> {
  const onHup = () => reload();
  let listening = false;
  try {
    Deno.addSignalListener("SIGHUP", onHup);
    listening = true;
  } catch { /* no signals here */ }
  try {
    await (stop ?? signals());
  } finally {
    if (listening) Deno.removeSignalListener("SIGHUP", onHup);
  }
}
