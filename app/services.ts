/**
 * The boot services of one tree and one database, put together the same way for `serve`
 * and for tests: the OS catalog, the one template renderer, the machine registry and its
 * history, installer configs, the iPXE scripts and GRUB's configs (over TFTP).
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Logger } from "../log.ts";
import type { ContentStore } from "../content/store.ts";
import { OsCatalog } from "../boot/catalog.ts";
import { Installers } from "../boot/installers.ts";
import { BootScripts, GRUB_SCRIPTS } from "../boot/scripts.ts";
import { TftpBoot } from "../boot/tftp_boot.ts";
import { type AddressBook, MachineIdentity } from "../boot/identity.ts";
import type { ServerInfo } from "../boot/template_data.ts";
import { TemplateRenderer } from "../boot/templates.ts";
import type { Bookkeeping } from "../state/bookkeeping.ts";
import { BootHistory } from "../state/history.ts";
import { type MachineConfig, MachineRegistry } from "../state/machines.ts";
import { serverSecret } from "../state/secrets.ts";

/** Options for {@linkcode createBootServices}. */
export interface BootServicesOptions {
  store: ContentStore;
  db: DatabaseSync;
  /** `[[machine]]` entries. */
  machines?: readonly MachineConfig[];
  /** This server as templates see it; the callback secret comes from the database. */
  server: Omit<ServerInfo, "secret">;
  /** `[boot] default`. */
  defaultOs?: string;
  /** `[boot] menu_timeout`, seconds; default 10. */
  menuTimeout?: number;
  /** How long the OS list is kept before the tree is read again; default forever. */
  catalogTtlMs?: number;
  logger: Logger;
  /** Where machines' addresses are known from (leases, reservations, neighbour table). */
  addressBook: AddressBook;
  /** Skip the "a machine acts only for itself" check: only for tests behind a relay. */
  trustAll?: boolean;
  /**
   * A second handle on the database with a short busy timeout, for bookkeeping a boot never
   * waits for (contacts, history); default `db`.
   */
  bestEffortDb?: DatabaseSync;
  /**
   * Where contacts, reports and history lines wait to be written off the request path (over
   * `bestEffortDb`); default none: written at once.
   */
  bookkeeping?: Bookkeeping;
  /** Clock in ms for the registry and history; tests pass their own. */
  now?: () => number;
}

/** The parts the HTTP app and the admin commands work with. */
export interface BootServices {
  catalog: OsCatalog;
  renderer: TemplateRenderer;
  registry: MachineRegistry;
  history: BootHistory;
  installers: Installers;
  scripts: BootScripts;
  /** GRUB's configs, menu choices and OS images over TFTP. */
  tftp: TftpBoot;
  identity: MachineIdentity;
  /** The key of the callback tokens. */
  secret: Uint8Array;
}

/** Puts the boot services together; see the module doc. */
export function createBootServices(o: BootServicesOptions): BootServices {
  const server: ServerInfo = { ...o.server, secret: serverSecret(o.db) };
  const catalog = new OsCatalog(o.store, { logger: o.logger, ttlMs: o.catalogTtlMs });
  const renderer = new TemplateRenderer({ store: o.store });
  const registry = new MachineRegistry(o.db, {
    machines: o.machines,
    bestEffort: o.bestEffortDb,
    now: o.now,
    bookkeeping: o.bookkeeping,
  });
  const history = new BootHistory(o.bestEffortDb ?? o.db, {
    now: o.now,
    bookkeeping: o.bookkeeping,
  });
  const identity = new MachineIdentity(o.addressBook, { trustAll: o.trustAll });
  const installers = new Installers({ registry, catalog, renderer, server, identity });
  const scriptOptions = {
    catalog,
    renderer,
    registry,
    installers,
    server,
    identity,
    defaultOs: o.defaultOs,
    menuTimeout: o.menuTimeout ?? 10,
    logger: o.logger,
  };
  const scripts = new BootScripts(scriptOptions);
  const grub = new BootScripts({ ...scriptOptions, flavour: GRUB_SCRIPTS });
  return {
    catalog,
    renderer,
    registry,
    history,
    installers,
    scripts,
    tftp: new TftpBoot({ grub, identity }),
    identity,
    secret: server.secret,
  };
}
