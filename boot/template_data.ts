/**
 * The variables every template sees, from one machine record: start scripts, the menu, the
 * local-disk script and installer configs all render from {@linkcode templateData}.
 *
 * | variable | value |
 * |---|---|
 * | `server`, `http` | this server's address and base URL |
 * | `mac`, `mac_url`, `ip`, `hostname`, `domain`, `fqdn` | the machine |
 * | `os`, `class_name` | the OS folder, the class ("" for none) |
 * | `vars` | {@linkcode DEFAULT_VARS} < os.toml `vars` < class `vars` < `[[machine]] vars` |
 * | `machine` | `{ mac, hostname, ip, os, class, state, vars, uuid, inventory }`; `uuid` is its `[[machine]] uuid` ("" for none) |
 * | `machine.inventory` | what the machine reported: `{ uuid, serial, manufacturer, product, buildarch, platform }` from iPXE, `{ dhcp_arch, dhcp_uuid, vendor_class, user_class }` from its last DHCP request; "" where it said nothing. Cleaned to letters, digits, space and `. , : _ - + / ( ) # @ &` (state/inventory.ts), but still the client's word: quote it (`sh()`) where a shell reads it |
 * | `cluster` | every machine of the same OS and class, this one included: `{ mac, hostname, ip, fqdn, state }` |
 * | `callback` | `{ installed, progress }`: the URLs an installer calls back, with this install's token |
 * | `config` | what templates see of the server's config (domain, dns, router …) |
 * | `sh(text)` | `text` quoted for a POSIX shell |
 * | `grub_quote(text)` | `text` as one word of a grub.cfg |
 * | `grub_root` | GRUB's name of this server's TFTP: `(tftp,10.0.0.1)` |
 *
 * @module
 */
import { macHyphens } from "../net/mac.ts";
import { callbackToken } from "./callback_tokens.ts";
import type { Machine } from "../state/machines.ts";
import { INVENTORY_FIELDS } from "../state/inventory.ts";
import type { OsEntry } from "./catalog.ts";
import { grubQuote } from "./grub.ts";

/** What the server tells every template about itself. */
export interface ServerInfo {
  /** This server's address on the boot network. */
  serverIp: string;
  /** Base URL clients reach it at, no trailing slash. */
  baseUrl: string;
  /** Domain of the machines (`[dhcp] domain`); "" for none. */
  domain?: string;
  /** What templates see as `config`. */
  templateConfig?: Record<string, unknown>;
  /** The key of the callback tokens (`state/secrets.ts`). */
  secret: Uint8Array;
}

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

/** `text` in single quotes for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${String(text).replaceAll("'", `'\\''`)}'`;
}

/**
 * A copy of config data a template may change without touching the config: arrays and plain
 * objects copied, anything else (a TOML date, a value of another kind) through structuredClone.
 * Vars are TOML tables, so this is all copying they need; structuredClone on every layer took a
 * tenth of a rendered boot script's time.
 */
function copyData(v: unknown): unknown {
  if (typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) return v.map(copyData);
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return structuredClone(v);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = copyData(x);
  return out;
}

/** Layers of vars, later ones winning key by key; a copy, never the layers themselves. */
export function mergeVars(
  ...layers: (Readonly<Record<string, unknown>> | undefined)[]
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const layer of layers) {
    if (layer) { for (const [k, v] of Object.entries(layer)) out[k] = copyData(v); }
  }
  return out;
}

/**
 * The fields of a machine {@linkcode templateData} does not read: they change on every contact,
 * and a text made from the others is the same text (a test holds templateData to it).
 */
export const UNREAD_MACHINE_FIELDS: ReadonlySet<string> = new Set([
  "first_seen",
  "last_seen",
  "installed_at",
]);

/**
 * What {@linkcode templateData} reads of `machine`, as a list to compare value by value
 * ({@linkcode sameInputs}): every field but {@linkcode UNREAD_MACHINE_FIELDS}, the inventory's
 * {@linkcode INVENTORY_FIELDS} one by one, objects (`vars`) by identity: they come from the
 * config and nothing changes them.
 */
export function machineInputs(machine: Machine): unknown[] {
  // for…in, no entries arrays: this runs on every menu request.
  const out: unknown[] = [];
  const fields = machine as unknown as Record<string, unknown>;
  for (const k in fields) {
    if (UNREAD_MACHINE_FIELDS.has(k)) continue;
    out.push(k);
    if (k !== "inventory") out.push(fields[k]);
    // The fields templates see: not `reported_at`, which moves with every new report.
    else for (const f of INVENTORY_FIELDS) out.push(machine.inventory[f]);
  }
  return out;
}

/** Whether two input lists hold the same values, one by one (`Object.is`). */
export function sameInputs(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/** The part of an OS entry templates need. */
export type TemplateOs = Pick<OsEntry, "name" | "classes" | "vars">;

/** The class of `machine` that applies to `os`: a class belongs to the OS chosen with it. */
export function classFor(machine: Machine, os: TemplateOs | null): string | null {
  return os && machine.os === os.name ? machine.class : null;
}

/**
 * The variables of any template for `machine`, booting or installing `os` (null: none yet).
 * `clientIp` stands in for the machine's address when neither config nor database has one.
 */
export function templateData(
  server: ServerInfo,
  machine: Machine,
  os: TemplateOs | null,
  options: { cluster?: readonly Machine[]; clientIp?: string } = {},
): Record<string, unknown> {
  const base = server.baseUrl.replace(/\/+$/, "");
  const domain = server.domain ?? "";
  const fqdn = (host: string) => domain ? `${host}.${domain}` : host;
  const cls = classFor(machine, os);
  const classVars = os?.classes.find((c) => c.name === cls)?.vars;
  const vars = mergeVars(DEFAULT_VARS, os?.vars, classVars, machine.vars);
  const ip = machine.ip ?? options.clientIp ?? "";
  const api = `${base}/api/machines/${macHyphens(machine.mac)}`;
  const token = callbackToken(server.secret, machine.mac, machine.install_gen);
  return {
    server: server.serverIp,
    http: base,
    mac: machine.mac,
    mac_url: macHyphens(machine.mac),
    ip,
    hostname: machine.hostname,
    domain,
    fqdn: fqdn(machine.hostname),
    os: os?.name ?? "",
    class_name: cls ?? "",
    vars,
    machine: {
      mac: machine.mac,
      hostname: machine.hostname,
      ip,
      os: os?.name ?? machine.os ?? "",
      class: cls ?? "",
      state: machine.state,
      vars,
      uuid: machine.uuid ?? "",
      inventory: Object.fromEntries(
        INVENTORY_FIELDS.map((f) => [f, machine.inventory[f] ?? ""]),
      ),
    },
    cluster: (options.cluster ?? []).map((m) => ({
      mac: m.mac,
      hostname: m.hostname,
      ip: m.ip ?? "",
      fqdn: fqdn(m.hostname),
      state: m.state,
    })),
    callback: { installed: `${api}/installed/${token}`, progress: `${api}/progress/${token}` },
    config: server.templateConfig ?? {},
    sh: shellQuote,
    ...grubData(server),
  };
}

/** What GRUB's templates need besides the machine: the quoting and the server's TFTP. */
function grubData(server: ServerInfo): Record<string, unknown> {
  return { grub_quote: grubQuote, grub_root: `(tftp,${server.serverIp})` };
}

/** The variables of a template for a request that named no machine (the chain, the menu). */
export function anonymousData(
  server: ServerInfo,
  clientIp: string | null,
): Record<string, unknown> {
  return {
    server: server.serverIp,
    http: server.baseUrl.replace(/\/+$/, ""),
    mac: "",
    ip: clientIp ?? "",
    config: server.templateConfig ?? {},
    ...grubData(server),
  };
}
