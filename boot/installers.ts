/**
 * Install configs (preseed, cloud-config, Ignition, kickstart …) rendered per machine, and
 * the local-disk script of a machine whose install has called back.
 *
 * A config `<name>` for a machine of class `<cls>` comes from the first template found of
 * `boot/<os>/template/<name>-<cls>.vto`, `boot/<os>/template/<name>.vto`, then the defaults
 * shipped in `templates/installers/` (and `templates/`). Templates see the variables of
 * `template_data.ts`. Serving a config marks the machine `installing` (state/machines.ts).
 *
 * @module
 */
import type { Mac } from "../net/mac.ts";
import { BootRequestError } from "./errors.ts";
import type { MachineIdentity } from "./identity.ts";
import type { Machine, MachineRegistry } from "../state/machines.ts";
import type { OsCatalog } from "./catalog.ts";
import { type TemplateRenderer, TemplateRenderError } from "./templates.ts";
import { classFor, type ServerInfo, templateData } from "./template_data.ts";
import { INSTALLER_TEMPLATES } from "../templates/installers/embedded.ts";
import { errorMessage } from "../log.ts";

/** Content types of the known config kinds; any other template is served as text. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = Object.freeze({
  "preseed": "text/plain; charset=utf-8",
  "cloud-config": "text/cloud-config; charset=utf-8",
  "ignition": "application/vnd.coreos.ignition+json",
  "kickstart": "text/plain; charset=utf-8",
});

/** Template names tried for `name` and class `cls`, most specific first. */
export function templateCandidates(name: string, cls: string | null): string[] {
  return cls ? [`${name}-${cls}`, name] : [name];
}

/** 1-based line and column of character `index` in `text`. */
function position(text: string, index: number): { line: number; column: number } {
  const before = text.slice(0, index);
  return { line: before.split("\n").length, column: index - before.lastIndexOf("\n") };
}

/**
 * Checks what a template of a known kind produced, and puts Ignition into canonical form.
 * `file` names the template in errors; Ignition errors carry the line of the rendered JSON.
 */
export function finishConfig(kind: string, text: string, file: string): string {
  if (kind === "ignition") {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      const at = /position (\d+)/.exec(errorMessage(err))?.[1];
      const where = at === undefined ? undefined : position(text, Number(at));
      throw new TemplateRenderError(
        `${file}: rendered Ignition is not JSON${
          where ? ` (output line ${where.line}, column ${where.column})` : ""
        }: ${errorMessage(err)}`,
        file,
        undefined,
        { cause: err },
      );
    }
    const version = (doc as { ignition?: { version?: unknown } })?.ignition?.version;
    if (typeof version !== "string" || !/^3\.\d+\.\d+/.test(version)) {
      throw new TemplateRenderError(
        `${file}: rendered Ignition has no ignition.version 3.x (got ${JSON.stringify(version)})`,
        file,
      );
    }
    return JSON.stringify(doc, null, 2) + "\n";
  }
  if (kind === "cloud-config" && !text.startsWith("#cloud-config\n")) {
    throw new TemplateRenderError(
      `${file}: rendered cloud-config must start with a "#cloud-config" line`,
      file,
    );
  }
  return text;
}

/** A rendered config. */
export interface RenderedConfig {
  body: string;
  contentType: string;
  /** The template that made it, e.g. `boot/debian/template/preseed-k8s-node.vto`. */
  template: string;
  /** The machine after serving: `installing` (or still `installed`). */
  machine: Machine;
  /** The OS, its class ("" for none) and the config kind that were rendered. */
  os: string;
  class: string;
  name: string;
  /** `os[/class] name`, for the history and the live feed. */
  what: string;
}

/** What a request for a config says. */
export interface ConfigRequest {
  os: string;
  /** The config kind: `preseed`, `cloud-config`, … (a template name). */
  name: string;
  /** `?mac=`, else the machine asking from `ip`. */
  mac?: Mac | null;
  /** The client's address. */
  ip?: string;
  /** An admin looks: any machine, and nothing is recorded. */
  preview?: boolean;
  /** A HEAD: checked as the GET would be, and nothing is recorded. */
  readOnly?: boolean;
}

/** Options for {@linkcode Installers}. */
export interface InstallersOptions {
  registry: MachineRegistry;
  catalog: OsCatalog;
  /** The one renderer of the program (its defaults include the installer templates). */
  renderer: TemplateRenderer;
  server: ServerInfo;
  /** Who may act for which MAC. */
  identity: MachineIdentity;
}

/** Renders install configs and local-disk scripts for machines of the registry. */
export class Installers {
  #registry: MachineRegistry;
  #catalog: OsCatalog;
  #renderer: TemplateRenderer;
  #server: ServerInfo;
  #identity: MachineIdentity;

  constructor(options: InstallersOptions) {
    this.#identity = options.identity;
    this.#registry = options.registry;
    this.#catalog = options.catalog;
    this.#server = options.server;
    this.#renderer = options.renderer;
  }

  /**
   * The machine behind a request: its `?mac=` (only from its own address), else the machine
   * whose address asks. An admin's preview may name any machine.
   */
  #machine(request: ConfigRequest): Machine {
    const { mac, ip } = request;
    const who = mac ?? this.#identity.machineAt(ip ?? null);
    if (who === null) {
      throw new BootRequestError(
        `no machine known at ${ip ?? "this address"}: no lease, reservation or neighbour entry`,
        404,
      );
    }
    if (!request.preview && mac) this.#identity.require(mac, ip ?? null);
    if (!request.preview && !request.readOnly) this.#registry.seen(who, ip);
    // Fresh: the config carries the token of the install, which a reinstall just retired.
    return this.#registry.fresh(who) ?? this.#registry.placeholder(who, ip ?? null);
  }

  /**
   * Renders config `name` of `os` for the asking machine and marks it installing.
   * Throws `BootRequestError` (unknown OS, class or template) or
   * `TemplateRenderError` (a template mistake, naming file and line).
   */
  async render(request: ConfigRequest): Promise<RenderedConfig> {
    const entry = await this.#catalog.get(request.os);
    if (!entry) throw new BootRequestError(`no OS ${request.os} in the tree`, 404);
    const machine = this.#machine(request);
    const cls = classFor(machine, entry);
    if (cls !== null && !entry.classes.some((c) => c.name === cls)) {
      throw new BootRequestError(
        `machine ${machine.mac} has class ${cls}, which ${entry.source} does not declare ` +
          `(classes: ${entry.classes.map((c) => c.name).join(", ") || "none"})`,
        409,
      );
    }
    let template: string | undefined;
    for (const candidate of templateCandidates(request.name, cls)) {
      // The shipped defaults are for the known config kinds only, never the iPXE scripts.
      const own = await this.#catalog.store.stat(`boot/${entry.name}/template/${candidate}.vto`);
      if (own?.kind === "file" || CONTENT_TYPES[candidate] !== undefined) {
        template = candidate;
        break;
      }
    }
    if (template === undefined) {
      throw new BootRequestError(`no template ${request.name} for ${entry.name}`, 404);
    }
    const cluster = this.#registry.cluster(entry.name, cls);
    const data = templateData(this.#server, machine, entry, { cluster, clientIp: request.ip });
    const file = await this.#templateFile(template, entry.name);
    const body = finishConfig(
      request.name,
      await this.#renderer.render(template, data, entry.name),
      file,
    );
    return {
      body,
      contentType: CONTENT_TYPES[request.name] ?? "text/plain; charset=utf-8",
      template: file,
      // An admin's look at a machine's config, or a HEAD, changes nothing about it.
      machine: request.preview || request.readOnly
        ? machine
        : this.#registry.installing(machine.mac, request.ip),
      os: entry.name,
      class: cls ?? "",
      name: request.name,
      what: `${entry.name}${cls ? `/${cls}` : ""} ${request.name}`,
    };
  }

  /** Where template `name` of `os` comes from, for logs and answers. */
  async #templateFile(name: string, os: string): Promise<string> {
    const own = `boot/${os}/template/${name}.vto`;
    const stat = await this.#catalog.store.stat(own);
    if (stat?.kind === "file") return own;
    return INSTALLER_TEMPLATES[`${name}.vto`] !== undefined
      ? `templates/installers/${name}.vto`
      : `templates/${name}.vto`;
  }

  /**
   * The script that boots an installed machine from its local disk, or null when the
   * machine is not installed (it then gets the menu or its OS as usual). `template` is the
   * loader's: `local` (iPXE) or `grub-local`.
   */
  async localBoot(machine: Machine, clientIp?: string, template = "local"): Promise<string | null> {
    if (machine.state !== "installed") return null;
    const os = machine.os ? (await this.#catalog.get(machine.os)) ?? null : null;
    const data = templateData(this.#server, machine, os, { clientIp });
    return await this.#renderer.render(template, data, os?.name);
  }
}
