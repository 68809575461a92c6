/**
 * The scripts a boot loader gets: what `/boot.ipxe` answers, the menu, the start script of
 * an OS, and the sticky choice made at the menu. Each answer says which boot step it was, for
 * the live feed and the machine's history.
 *
 * `/boot.ipxe?mac=M` answers in one request: the local-disk script of an installed machine,
 * else the start script (kernel line) of its OS, else the menu. Without a MAC it answers a
 * script that asks again with it (`chain.vto`). What the machine reports in that URL (UUID,
 * serial …, `boot/inventory.ts`) is recorded once the MAC is proven to ask for itself, and
 * may bind it to a `[[machine]] uuid` entry (`state/machines.ts` `report`).
 *
 * The same decisions make GRUB's grub.cfg (`grub.ts`): a {@linkcode BootScripts} of the
 * {@linkcode GRUB_SCRIPTS} flavour renders them from the `grub-*` templates instead.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { Mac } from "../net/mac.ts";
import type { Machine, MachineRegistry } from "../state/machines.ts";
import type { InventoryReport } from "../state/inventory.ts";
import { OS_NAME, type OsCatalog, type OsEntry } from "./catalog.ts";
import { BootRequestError } from "./errors.ts";
import { grubKernelArgs, grubTftpPath } from "./grub.ts";
import type { MachineIdentity } from "./identity.ts";
import type { Installers } from "./installers.ts";
import { INVENTORY_QUERY } from "./inventory.ts";
import { buildMenu, decideEntry } from "./menu.ts";
import {
  anonymousData,
  machineInputs,
  sameInputs,
  type ServerInfo,
  templateData,
} from "./template_data.ts";
import type { TemplateRenderer } from "./templates.ts";

/** Machines whose last menu is kept; beyond, the memory starts over. */
const MENUS_KEPT = 1024;

/** Which step of a boot a script was. */
export interface ScriptStep {
  stage: "script" | "menu" | "chosen" | "local-boot";
  detail: string;
}

/** A rendered script and the step it stands for. */
export interface Script {
  text: string;
  step: ScriptStep;
  /** The machine after the request's bookkeeping, when it named one. */
  machine: Machine | null;
}

/** The templates of one boot loader's scripts. */
export interface ScriptFlavour {
  /** Names the logs and errors use: "iPXE", "GRUB". */
  loader: string;
  start: string;
  menu: string;
  /** The local-disk script of an installed machine. */
  local: string;
}

/** iPXE's scripts: `templates/{start,menu}.vto`, `templates/installers/local.vto`. */
export const IPXE_SCRIPTS: ScriptFlavour = {
  loader: "iPXE",
  start: "start",
  menu: "menu",
  local: "local",
};

/** GRUB's configs: `templates/grub/grub-{start,menu,local}.vto`. */
export const GRUB_SCRIPTS: ScriptFlavour = {
  loader: "GRUB",
  start: "grub-start",
  menu: "grub-menu",
  local: "grub-local",
};

/** Options for {@linkcode BootScripts}. */
export interface BootScriptsOptions {
  catalog: OsCatalog;
  renderer: TemplateRenderer;
  registry: MachineRegistry;
  installers: Installers;
  server: ServerInfo;
  /** Who may act for which MAC. */
  identity: MachineIdentity;
  /** `[boot] default`: the OS the menu boots after the timeout. */
  defaultOs?: string;
  /** `[boot] menu_timeout` in seconds. */
  menuTimeout: number;
  logger: Logger;
  /** Which loader's templates; default {@linkcode IPXE_SCRIPTS}. */
  flavour?: ScriptFlavour;
}

/** Renders the scripts of the module doc. */
export class BootScripts {
  #o: BootScriptsOptions;
  #t: ScriptFlavour;
  /** Each machine's last menu and what it was made of; see #menu. */
  #menus = new Map<Mac, { inputs: unknown[]; text: string }>();

  constructor(options: BootScriptsOptions) {
    this.#o = options;
    this.#t = options.flavour ?? IPXE_SCRIPTS;
  }

  /** `/boot.ipxe` without a MAC: a script that asks again with it and what the machine reports. */
  async chain(clientIp: string | null): Promise<Script> {
    const data = { ...anonymousData(this.#o.server, clientIp), inventory_query: INVENTORY_QUERY };
    const text = await this.#o.renderer.render("chain", data);
    return {
      text,
      step: { stage: "script", detail: "boot.ipxe (asks again with its MAC)" },
      machine: null,
    };
  }

  /**
   * `/boot.ipxe?mac=`: local disk, the machine's OS, or the menu; see the module doc. `report`
   * is what the machine said of itself in the URL (null: nothing).
   */
  async entry(
    mac: Mac,
    clientIp: string | null,
    report: InventoryReport | null = null,
  ): Promise<Script> {
    const machine = this.#verified(mac, clientIp, report);
    const local = await this.#o.installers.localBoot(
      machine,
      clientIp ?? undefined,
      this.#t.local,
    );
    if (local !== null) {
      this.#o.logger.info("install", "installed: booting the local disk", {
        mac,
        client: clientIp,
      });
      const detail = `local disk (installed${machine.os ? ` ${machine.os}` : ""})`;
      return { text: local, step: { stage: "local-boot", detail }, machine };
    }
    const known = new Set((await this.#o.catalog.entries()).map((e) => e.name));
    const decision = decideEntry({ os: machine.os, pinned: machine.pinned, known });
    if (decision.kind === "menu") {
      if (decision.note) {
        this.#o.logger.warn("http", "showing the menu", { mac, why: decision.note });
      }
      return await this.#menu(machine, clientIp);
    }
    const entry = (await this.#o.catalog.get(decision.os))!;
    return await this.#start(entry, machine, clientIp, decision.reason);
  }

  /** The OS menu, even for a machine whose OS is decided. */
  async menu(mac: Mac | null, clientIp: string | null): Promise<Script> {
    return await this.#menu(mac ? this.#verified(mac, clientIp) : null, clientIp);
  }

  /** `/boot/<os>/<mac>`: the start script of an OS. */
  async start(os: string, mac: Mac, clientIp: string | null): Promise<Script> {
    const entry = await this.#entry(os);
    return await this.#start(entry, this.#verified(mac, clientIp), clientIp, "asked for");
  }

  /** `/choose/<os>[/<class>]/<mac>`: makes the choice sticky, then the start script. */
  async choose(os: string, cls: string | null, mac: Mac, clientIp: string | null): Promise<Script> {
    const entry = await this.#entry(os);
    if (cls !== null && !entry.classes.some((k) => k.name === cls)) {
      throw new BootRequestError(`no class ${cls} for ${entry.name}`, 404);
    }
    if (this.#verified(mac, clientIp).state === "installed") {
      // A choice at the menu would mean a new install, and that a wiped disk.
      throw new BootRequestError(
        `${mac} is installed: a new install is an admin's decision (astralboot machine reinstall)`,
        409,
      );
    }
    const machine = this.#o.registry.choose(mac, entry.name, cls, clientIp ?? undefined);
    this.#o.logger.info("http", "sticky choice", { mac, os: entry.name, class: cls ?? "" });
    const script = await this.#start(entry, machine, clientIp, "chosen at the menu");
    const detail = cls ? `${entry.name}/${cls}` : entry.name;
    return { ...script, step: { stage: "chosen", detail } };
  }

  /**
   * The machine, once it is proven to ask for itself; its contact and what it reported are
   * recorded (best effort), and only then may its report bind it to a `[[machine]] uuid`.
   */
  #verified(mac: Mac, clientIp: string | null, report: InventoryReport | null = null): Machine {
    this.#o.identity.require(mac, clientIp);
    if (!this.#o.registry.seen(mac, clientIp ?? undefined)) {
      this.#o.logger.debug("http", "database busy: contact not recorded", { mac });
    }
    if (report) this.#report(mac, report);
    return this.#o.registry.get(mac) ?? this.#o.registry.placeholder(mac, clientIp);
  }

  /** Records a report and says in the log what it did to the uuid entries. */
  #report(mac: Mac, report: InventoryReport): void {
    const { logger, registry } = this.#o;
    const out = registry.report(mac, report);
    if (!out.recorded) logger.debug("http", "database busy: inventory not recorded", { mac });
    if (out.released) {
      logger.warn("http", "reports another UUID: no longer its [[machine]] uuid entry", {
        mac,
        uuid: report.uuid,
        was: out.released,
      });
    }
    if (out.bound) logger.info("http", "matched its [[machine]] by uuid", { mac, uuid: out.bound });
    if (out.conflict) {
      logger.warn("http", "reports the UUID of another machine's [[machine]] entry: not matched", {
        mac,
        uuid: out.conflict.uuid,
        holder: out.conflict.holder,
        fix: "if this is that machine now, write its mac into the entry",
      });
    }
    if (out.mismatch) {
      logger.warn("http", "reports another UUID than its [[machine]] entry says", {
        mac,
        uuid: report.uuid,
        configured: out.mismatch,
      });
    }
  }

  async #entry(name: string): Promise<OsEntry> {
    if (!OS_NAME.test(name)) throw new BootRequestError(`not an OS name: ${name}`, 400);
    const entry = await this.#o.catalog.get(name);
    if (!entry) throw new BootRequestError(`no OS ${name} in the tree`, 404);
    return entry;
  }

  /**
   * The menu. A machine asking again gets the text it got last when nothing it is made of
   * changed: the machine (`machineInputs`), the asking address, the catalog's list and problems
   * (the same objects until the tree is read again) and whether the tree has `boot/`; the
   * menu template is one shipped in the program, which reads nothing but its data.
   */
  async #menu(machine: Machine | null, clientIp: string | null): Promise<Script> {
    const { catalog, server } = this.#o;
    const entries = await catalog.entries();
    const problems = catalog.problems;
    const hasBootTree = (await catalog.store.stat("boot"))?.kind === "dir";
    const step: ScriptStep = { stage: "menu", detail: "menu" };
    const inputs = machine &&
      [clientIp, entries, problems, hasBootTree, ...machineInputs(machine)];
    const kept = machine && this.#menus.get(machine.mac);
    if (kept && sameInputs(kept.inputs, inputs!)) return { text: kept.text, step, machine };
    const model = buildMenu({
      entries,
      problems,
      defaultOs: this.#o.defaultOs,
      timeoutSeconds: this.#o.menuTimeout,
      mac: machine?.mac ?? null,
      hasBootTree,
    });
    const data = machine
      ? templateData(server, machine, null, { clientIp: clientIp ?? undefined })
      : anonymousData(server, clientIp);
    const text = await this.#o.renderer.render(this.#t.menu, { ...data, menu: model });
    if (machine) {
      if (!kept && this.#menus.size >= MENUS_KEPT) this.#menus.clear();
      this.#menus.set(machine.mac, { inputs: inputs!, text });
    }
    return { text, step, machine };
  }

  async #start(
    entry: OsEntry,
    machine: Machine,
    clientIp: string | null,
    reason: string,
  ): Promise<Script> {
    const data = templateData(this.#o.server, machine, entry, {
      clientIp: clientIp ?? undefined,
    });
    const base = data.http as string;
    const imageUrl = (p: string) =>
      `${base}/image/${entry.name}/${p.split("/").map(encodeURIComponent).join("/")}`;
    const osInfo: Record<string, unknown> = {
      name: entry.name,
      title: entry.title,
      kernel: entry.kernel,
      initrd: entry.initrd,
      initrd_names: entry.initrd.map((p) => p.slice(p.lastIndexOf("/") + 1)),
      initrd_urls: entry.initrd.map(imageUrl),
      classes: entry.classes,
      vars: entry.vars ?? {},
    };
    // Without a kernel only the OS's own start.vto can boot it; the default then fails
    // with a clear "os_info.kernel_url is not defined".
    if (entry.kernel !== null) osInfo.kernel_url = imageUrl(entry.kernel);
    // GRUB reads kernels and initrds over TFTP (grub.ts): its names, quoted for a grub.cfg.
    const tftpPath = (p: string) =>
      grubTftpPath(this.#o.server.serverIp, `image/${entry.name}/${p}`);
    if (entry.kernel !== null) osInfo.grub_kernel = tftpPath(entry.kernel);
    osInfo.grub_initrd = entry.initrd.map(tftpPath).join(" ");
    const cmdData = { ...data, os_info: osInfo, reason };
    osInfo.cmdline = entry.cmdline
      ? await this.#o.renderer.renderString(`${entry.source}#cmdline`, entry.cmdline, cmdData)
      : "";
    osInfo.grub_args = grubKernelArgs(osInfo.cmdline as string);
    const text = await this.#o.renderer.render(this.#t.start, cmdData, entry.name);
    return { text, step: { stage: "script", detail: `start ${entry.name} (${reason})` }, machine };
  }
}
