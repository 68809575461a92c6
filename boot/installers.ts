/**
 * Install configs (preseed, cloud-config, Ignition, kickstart …) rendered per machine, and
 * the local-disk script of a machine whose install has called back.
 *
 * A config `<name>` for a machine of class `<cls>` comes from the first template found of
 * `boot/<os>/template/<name>-<cls>.vto`, `boot/<os>/template/<name>.vto`, then the defaults
 * shipped in `templates/installers/` (and `templates/`). Templates see:
 *
 * | variable | value |
 * |---|---|
 * | `server`, `http` | this server's address and base URL |
 * | `mac`, `mac_url`, `ip`, `hostname`, `domain`, `fqdn` | the machine |
 * | `os`, `class_name` | the OS folder, the class ("" for none) |
 * | `vars` | {@linkcode DEFAULT_VARS} < os.toml `vars` < class `vars` < `[[machine]] vars` |
 * | `machine` | `{ mac, hostname, ip, os, class, state, vars }` |
 * | `cluster` | every machine of the same OS and class, this one included: `{ mac, hostname, ip, fqdn, state }` |
 * | `callback` | `{ installed, progress }`: the URLs an installer calls back |
 * | `config` | what the HTTP side shows templates as `config` (domain, dns, router …) |
 * | `sh(text)` | `text` quoted for a POSIX shell |
 *
 * Serving a config marks the machine `installing`; see machine_registry.ts.
 *
 * @module
 */
import type { ContentStore } from "../content/store.ts";
import type { Machine, MachineRegistry } from "../state/machine_registry.ts";
import type { OsCatalog, OsEntry } from "./catalog.ts";
import { TemplateRenderer, TemplateRenderError } from "./templates.ts";
import { EMBEDDED_TEMPLATES } from "../templates/embedded.ts";
import { INSTALLER_TEMPLATES } from "../templates/installers/embedded.ts";
import { type Logger, silentLogger } from "../log.ts";

/** Variables every default template reads; os.toml, classes and machines override them. */
export const DEFAULT_VARS: Readonly<Record<string, unknown>> = Object.freeze({
  /** The account created by the installer; it gets sudo. */
  user: "astral",
  /** crypt(3) hash of its password; "!" locks the password (ssh keys only). */
  password_hash: "!",
  ssh_authorized_keys: [],
  groups: ["sudo"],
  timezone: "UTC",
  locale: "en_US.UTF-8",
  keymap: "us",
  /** Install disk ("/dev/sda"); "" lets the installer take the first one. */
  disk: "",
  /** Extra packages. */
  packages: [],
  /** Debian tasksel tasks. */
  tasks: "standard, ssh-server",
  /** Debian mirror host, directory and proxy. */
  mirror: "deb.debian.org",
  mirror_dir: "/debian",
  proxy: "",
  /** Kickstart `url --url=`; "" uses the installer's own inst.repo. */
  repo_url: "",
  /** Preseed: shell commands late_command runs before it calls back (target at /target). */
  late_commands: [],
  /** Ignition: the command that installs the live system to disk; "" for none. */
  install_command: "",
});

/** Content types of the known config kinds; any other template is served as text. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = Object.freeze({
  "preseed": "text/plain; charset=utf-8",
  "cloud-config": "text/cloud-config; charset=utf-8",
  "ignition": "application/vnd.coreos.ignition+json",
  "kickstart": "text/plain; charset=utf-8",
});

/**
 * The defaults the installer renderer falls back to. Each installer default is also there
 * as `default-<name>.vto`, so an OS template can build on it: `{{ include
 * "default-preseed.vto" }}` then its own lines (in a preseed the last answer wins).
 */
export const INSTALLER_DEFAULTS: Readonly<Record<string, string>> = Object.freeze({
  ...EMBEDDED_TEMPLATES,
  ...INSTALLER_TEMPLATES,
  ...Object.fromEntries(Object.entries(INSTALLER_TEMPLATES).map(([k, v]) => [`default-${k}`, v])),
});

/** Why a config cannot be served; `status` is the HTTP status to answer with. */
export class InstallerError extends Error {
  constructor(message: string, readonly status: 400 | 404 | 409, options?: ErrorOptions) {
    super(message, options);
    this.name = "InstallerError";
  }
}

/** `text` in single quotes for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${String(text).replaceAll("'", `'\\''`)}'`;
}

/** The MAC as a URL segment (`52-54-00-…`), the form iPXE's `:hexhyp` prints. */
export function macSegment(mac: string): string {
  return mac.replaceAll(":", "-");
}

/** Layers of vars, later ones winning key by key. */
export function mergeVars(
  ...layers: (Readonly<Record<string, unknown>> | undefined)[]
): Record<string, unknown> {
  return Object.assign({}, ...layers.map((l) => structuredClone(l ?? {})));
}

/** Template names tried for `name` and class `cls`, most specific first. */
export function templateCandidates(name: string, cls: string | null): string[] {
  return cls ? [`${name}-${cls}`, name] : [name];
}

/** What the server tells every template about itself. */
export interface InstallerSettings {
  /** This server's address on the boot network. */
  serverIp: string;
  /** Base URL clients reach it at, no trailing slash. */
  baseUrl: string;
  /** Domain of the machines (`[dhcp] domain`); "" for none. */
  domain?: string;
  /** What templates see as `config`. */
  templateConfig?: Record<string, unknown>;
}

/** The variables of a config template for `machine` installing `os` (see module doc). */
export function installerData(
  settings: InstallerSettings,
  machine: Machine,
  os: Pick<OsEntry, "name" | "classes" | "vars">,
  cluster: readonly Machine[],
): Record<string, unknown> {
  const base = settings.baseUrl.replace(/\/+$/, "");
  const domain = settings.domain ?? "";
  const fqdn = (host: string) => domain ? `${host}.${domain}` : host;
  const cls = machine.os === os.name ? machine.class : null;
  const classVars = os.classes.find((c) => c.name === cls)?.vars;
  const vars = mergeVars(DEFAULT_VARS, os.vars, classVars, machine.vars);
  const api = `${base}/api/machines/${macSegment(machine.mac)}`;
  return {
    server: settings.serverIp,
    http: base,
    mac: machine.mac,
    mac_url: macSegment(machine.mac),
    ip: machine.ip ?? "",
    hostname: machine.hostname,
    domain,
    fqdn: fqdn(machine.hostname),
    os: os.name,
    class_name: cls ?? "",
    vars,
    machine: {
      mac: machine.mac,
      hostname: machine.hostname,
      ip: machine.ip ?? "",
      os: os.name,
      class: cls ?? "",
      state: machine.state,
      vars,
    },
    cluster: cluster.map((m) => ({
      mac: m.mac,
      hostname: m.hostname,
      ip: m.ip ?? "",
      fqdn: fqdn(m.hostname),
      state: m.state,
    })),
    callback: { installed: `${api}/installed`, progress: `${api}/progress` },
    config: settings.templateConfig ?? {},
    sh: shellQuote,
  };
}

/** 1-based line and column of character `index` in `text`. */
function _position(text: string, index: number): { line: number; column: number } {
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
      const at = /position (\d+)/.exec((err as Error).message)?.[1];
      const where = at === undefined ? undefined : _position(text, Number(at));
      throw new TemplateRenderError(
        `${file}: rendered Ignition is not JSON${
          where ? ` (output line ${where.line}, column ${where.column})` : ""
        }: ${(err as Error).message}`,
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
  machine: Machine;
}

/** Options for {@linkcode Installers}. */
export interface InstallersOptions {
  registry: MachineRegistry;
  catalog: OsCatalog;
  /** The boot tree, for OS templates; default: the catalog's store. */
  store?: ContentStore;
  settings: InstallerSettings;
  logger?: Logger;
}

/** Renders install configs and local-disk scripts for machines of the registry. */
export class Installers {
  /** The machines this renders for. */
  readonly registry: MachineRegistry;
  #registry: MachineRegistry;
  #catalog: OsCatalog;
  #store: ContentStore;
  #renderer: TemplateRenderer;
  #settings: InstallerSettings;
  #logger: Logger;

  constructor(options: InstallersOptions) {
    this.registry = this.#registry = options.registry;
    this.#catalog = options.catalog;
    this.#settings = options.settings;
    this.#logger = options.logger ?? silentLogger;
    this.#store = options.store ?? options.catalog.store;
    this.#renderer = new TemplateRenderer({
      store: this.#store,
      defaults: INSTALLER_DEFAULTS,
    });
  }

  /** The machine behind a request: its `?mac=`, else whoever last asked from `ip`. */
  #machine(mac: string | null | undefined, ip: string | undefined): Machine {
    if (mac) {
      const m = this.#registry.get(mac);
      if (m) return m;
      // A MAC we never saw still identifies the machine: make it known.
      this.#registry.seen(mac, ip);
      return this.#registry.get(mac)!;
    }
    const rec = ip ? this.#registry.store.findByIp(ip) : null;
    if (!rec) {
      throw new InstallerError(
        `no machine known at ${
          ip ?? "this address"
        }: boot it through /boot.ipxe first or add ?mac=`,
        404,
      );
    }
    return this.#registry.get(rec.mac)!;
  }

  /**
   * Renders config `name` of `os` for the asking machine and marks it installing.
   * Throws {@linkcode InstallerError} (unknown OS, class or template) or
   * `TemplateRenderError` (a template mistake, naming file and line).
   */
  async render(
    request: { os: string; name: string; mac?: string | null; ip?: string },
  ): Promise<RenderedConfig> {
    const entry = await this.#catalog.get(request.os);
    if (!entry) throw new InstallerError(`no OS ${request.os} in the tree`, 404);
    let machine = this.#machine(request.mac, request.ip);
    const cls = machine.os === entry.name ? machine.class : null;
    if (cls !== null && !entry.classes.some((c) => c.name === cls)) {
      throw new InstallerError(
        `machine ${machine.mac} has class ${cls}, which ${entry.source} does not declare ` +
          `(classes: ${entry.classes.map((c) => c.name).join(", ") || "none"})`,
        409,
      );
    }
    let template: string | undefined;
    for (const candidate of templateCandidates(request.name, cls)) {
      if (await this.#renderer.has(candidate, entry.name)) {
        template = candidate;
        break;
      }
    }
    if (template === undefined) {
      throw new InstallerError(`no template ${request.name} for ${entry.name}`, 404);
    }
    const cluster = this.#registry.cluster(entry.name, cls);
    const data = installerData(this.#settings, machine, entry, cluster);
    const file = await this.#templateFile(template, entry.name);
    const body = finishConfig(
      request.name,
      await this.#renderer.render(template, data, entry.name),
      file,
    );
    machine = this.#registry.installing(
      machine.mac,
      `${entry.name}${cls ? `/${cls}` : ""} ${request.name}`,
      request.ip,
    );
    this.#logger.info("install", "config served", {
      mac: machine.mac,
      os: entry.name,
      class: cls ?? "",
      config: request.name,
      template: file,
    });
    return {
      body,
      contentType: CONTENT_TYPES[request.name] ?? "text/plain; charset=utf-8",
      template: file,
      machine,
    };
  }

  /** Where template `name` of `os` comes from, for logs and answers. */
  async #templateFile(name: string, os: string): Promise<string> {
    const own = `boot/${os}/template/${name}.vto`;
    const stat = await this.#store.stat(own);
    if (stat?.kind === "file") return own;
    return INSTALLER_TEMPLATES[`${name}.vto`] !== undefined
      ? `templates/installers/${name}.vto`
      : `templates/${name}.vto`;
  }

  /**
   * The script that boots an installed machine from its local disk, or null when the
   * machine is not installed (it then gets the menu or its OS as usual).
   */
  async localBoot(mac: string, ip?: string): Promise<string | null> {
    const machine = this.#registry.get(mac);
    if (machine?.state !== "installed") return null;
    const os = machine.os ? await this.#catalog.get(machine.os) : undefined;
    const data = os
      ? installerData(this.#settings, machine, os, [])
      : installerData(this.#settings, machine, { name: "", classes: [] }, []);
    this.#logger.info("install", "installed: booting the local disk", {
      mac: machine.mac,
      client: ip ?? "-",
    });
    return await this.#renderer.render("local", data, os?.name);
  }

  /** A choice made at the menu: sticky from now on, and a new install (see the registry). */
  choose(mac: string, os: string, cls: string | null, ip?: string): Machine {
    return this.#registry.choose(mac, os, cls, ip);
  }
}
