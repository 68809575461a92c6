/**
 * config.toml: parsing, validation, defaults derived from the interface, and the printed
 * "implied config" (every key, its effective value and a one-line comment).
 *
 * The original's minimal config (`ref`, `interface`) still works, and its keys `Gateway`,
 * `DNSServer`, `Domain`, `UpstreamDNS` and `DBname` are accepted as aliases.
 *
 * @module
 */
import { parse as parseToml, TomlError } from "smol-toml";
import { interfaceMtu } from "../net/interface_mtu.ts";
import { Subnet } from "../net/ipv4.ts";
import type { MachineConfig } from "../state/machines.ts";
import type { DhcpOptionValues } from "./config_options.ts";
import { type DhcpSubnetConfig, subnetTables } from "./config_subnets.ts";
import { ConfigError, ConfigReader, type Raw } from "./config_reader.ts";
import { applyEnv } from "./config_env.ts";
import {
  readApi,
  readBoot,
  readDhcp,
  readDns,
  readHttp,
  readIpfs,
  readMachines,
  readNetwork,
  readTftp,
  readTop,
} from "./config_sections.ts";

export type { DhcpOptionValues, DhcpSubnetConfig, MachineConfig };
export { ConfigError, parseByteSize, parseDuration } from "./config_reader.ts";
export { formatConfig } from "./config_format.ts";

/** DHCP behaviour: addresses and boot information, boot information only, decide, none. */
export type DhcpMode = "server" | "proxy" | "auto" | "off";

/** The effective configuration, every default filled in. */
export interface Config {
  ref?: string;
  interface: string;
  /** IPv4 address of `interface` (derived, or `server_ip` in the file for tests/relays). */
  server_ip: string;
  netmask: string;
  data_dir: string;
  db_file: string;
  log_level: "debug" | "info" | "warn" | "error";
  dhcp: {
    mode: DhcpMode;
    range: [string, string];
    lease: number;
    router?: string;
    dns: string[];
    domain?: string;
    efi_loader: string;
    arm64_loader: string;
    /** Answer IPv6 router solicitations as a non-router, so iPXE stops waiting for one. */
    router_advertisement: boolean;
    /** Hand out addresses to `[[machine]]` entries only. */
    known_only: boolean;
    /** New bindings per second for machines no `[[machine]]` names (a burst of 5 s' worth). */
    new_client_rate: number;
    /** `[dhcp.options]`: sent to clients that ask for them (option 55). */
    options: DhcpOptionValues;
    /** Options sent even to clients that do not ask for them. */
    force_options: string[];
    /** `[[dhcp.subnet]]`: networks behind relays. */
    subnets: DhcpSubnetConfig[];
  };
  /** The DNS server: the domain's names, the rest forwarded to `upstream`. */
  dns: {
    enabled: boolean;
    /** `address` or `address:port`, asked in order. */
    upstream: string[];
    /** Seconds every answer may be cached. */
    ttl: number;
    port: number;
  };
  tftp: { port: number; max_blksize: number; windowsize: number; max_per_client: number };
  http: {
    port: number;
    address: string;
    public_url: string;
    /** Seconds a connection may sit with no request in flight before it is shut down. */
    idle_timeout: number;
    max_connections: number;
    max_per_client: number;
  };
  /**
   * `cache_max`: bytes the IPFS cache may hold (0: no limit); `min_rate`: the slowest average,
   * in bytes a second, a download over 1 MiB is given time for (0: no limit).
   */
  ipfs: { gateways: string[]; timeout: number; cache_max: number; min_rate: number };
  /** `secure_boot`: x86-64 UEFI PXE clients get shim → GRUB (`boot/secure_boot.ts`). */
  boot: { default?: string; menu_timeout: number; secure_boot: boolean };
  /** The admin API: where its token is kept. */
  api: { token_file: string };
  machines: MachineEntry[];
  /**
   * Where each key that is not a default was set ("http.port" → "config.toml:12" or
   * "$ASTRALBOOT_HTTP_PORT"), for `astralboot config`.
   */
  sources: Record<string, string>;
  /**
   * Where the defaults that depend on the host came from, by key (`"dhcp.router"` → "this
   * server's address on eth1"): the printed config says it beside the value.
   */
  origins: Record<string, string>;
}

/** One `[[machine]]`: what the registry keeps, and its own DHCP options. */
export interface MachineEntry extends MachineConfig {
  /** Over `[dhcp.options]` for this machine; absent when none are set. */
  options?: DhcpOptionValues;
  force_options?: string[];
}

/** What the host tells about an interface; injected so tests need no real interface. */
export interface InterfaceInfo {
  name: string;
  address: string;
  netmask: string;
  mtu?: number;
}

/** Looks up the first IPv4 address of an interface (Deno.networkInterfaces()) and its MTU. */
export function lookupInterface(name: string): InterfaceInfo | null {
  const found = Deno.networkInterfaces().find((i) => i.name === name && i.family === "IPv4");
  if (!found) return null;
  const mtu = interfaceMtu(name) ?? undefined;
  return { name, address: found.address, netmask: found.netmask, ...(mtu ? { mtu } : {}) };
}

/** Names of the host's interfaces with an IPv4 address, for error messages. */
export function interfaceNames(): string[] {
  return [
    ...new Set(Deno.networkInterfaces().filter((i) => i.family === "IPv4").map((i) => i.name)),
  ];
}

const ALIASES: Record<string, string> = {
  Gateway: "dhcp.router",
  DNSServer: "dhcp.dns",
  Domain: "dhcp.domain",
  UpstreamDNS: "dns.upstream",
  DBname: "db_file",
};

const KNOWN: Record<string, string[]> = {
  "": [
    "ref",
    "interface",
    "server_ip",
    "netmask",
    "data_dir",
    "db_file",
    "log_level",
    "dhcp",
    "dns",
    "tftp",
    "http",
    "ipfs",
    "boot",
    "api",
    "machine",
  ],
  dhcp: [
    "mode",
    "range",
    "lease",
    "router",
    "dns",
    "domain",
    "efi_loader",
    "arm64_loader",
    "router_advertisement",
    "known_only",
    "new_client_rate",
    "options",
    "force_options",
    "subnet",
  ],
  "dhcp.subnet": [
    "network",
    "range",
    "router",
    "dns",
    "domain",
    "lease",
    "options",
    "force_options",
  ],
  dns: ["enabled", "upstream", "ttl", "port"],
  tftp: ["port", "max_blksize", "windowsize", "max_per_client"],
  http: ["port", "address", "public_url", "idle_timeout", "max_connections", "max_per_client"],
  ipfs: ["gateways", "timeout", "cache_max", "min_rate"],
  boot: ["default", "menu_timeout", "secure_boot"],
  api: ["token_file"],
  machine: ["mac", "uuid", "hostname", "ip", "os", "class", "vars", "options", "force_options"],
};

/** Options for {@linkcode loadConfig}. */
export interface LoadOptions {
  /** The file name for messages. */
  file?: string;
  /** Overrides from the command line (e.g. `-i eth1`). */
  interface?: string;
  /** Interface lookup; defaults to the host's. */
  lookup?: (name: string) => InterfaceInfo | null;
  /** With `false`, a missing interface gives placeholder addresses instead of an error (`astralboot config`). */
  requireInterface?: boolean;
  /** The environment, for `ASTRALBOOT_*` overrides (app/config_env.ts); default none. */
  env?: Record<string, string>;
  /** The host's resolver config (the default upstreams); defaults to reading /etc/resolv.conf. */
  resolvConf?: () => string | null;
}

/** /etc/resolv.conf as text, or null when it cannot be read. */
export function readResolvConf(): string | null {
  try {
    return Deno.readTextFileSync("/etc/resolv.conf");
  } catch {
    return null;
  }
}

/** Parses TOML, naming the file, line and column of a syntax error. */
function parseFile(source: string, file: string): Raw {
  try {
    return parseToml(source) as Raw;
  } catch (e) {
    if (e instanceof TomlError) {
      throw new ConfigError(
        `${file}:${e.line}:${e.column}: cannot parse TOML: ${e.message.split("\n")[0]}`,
        { cause: e },
      );
    }
    throw e;
  }
}

/** Moves the original's capitalised keys to their new place, unless both are given. */
function applyAliases(raw: Raw, r: ConfigReader): void {
  for (const [alias, target] of Object.entries(ALIASES)) {
    if (!(alias in raw)) continue;
    const [section, key] = target.includes(".")
      ? target.split(".") as [string, string]
      : ["", target];
    const dest = section ? ((raw[section] ??= {}) as Raw) : raw;
    if (key in dest) r.fail("", alias, `given twice: as ${alias} and as ${target}; keep one`);
    dest[key] = raw[alias];
    delete raw[alias];
  }
}

/** Refuses keys no section knows: a typo must not pass silently. */
function refuseUnknownKeys(raw: Raw, r: ConfigReader): void {
  for (const [section, keys] of Object.entries(KNOWN)) {
    const tables: Raw[] = section === ""
      ? [raw]
      : section === "machine"
      ? (Array.isArray(raw.machine) ? raw.machine as Raw[] : [])
      : section === "dhcp.subnet"
      ? subnetTables(r.table(raw, "dhcp"), r)
      : [r.table(raw, section)];
    tables.forEach((t, index) => {
      const at = section.includes(".") || section === "machine"
        ? { array: section, index }
        : undefined;
      for (const key of Object.keys(t)) {
        if (!keys.includes(key)) {
          r.fail(section, key, `unknown key; allowed: ${keys.join(", ")}`, at);
        }
      }
    });
  }
}

/** A reservation outside every served network could never be handed out: a typo. */
function refuseStrayReservations(c: Config, r: ConfigReader): void {
  if (c.server_ip === "0.0.0.0" || c.dhcp.mode === "proxy" || c.dhcp.mode === "off") return;
  const networks = [
    Subnet.of(c.server_ip, c.netmask),
    ...c.dhcp.subnets.map((s) => Subnet.parse(s.network)),
  ];
  c.machines.forEach((m, index) => {
    if (m.ip && !networks.some((n) => n.contains(m.ip!))) {
      r.fail(
        "machine",
        "ip",
        `${m.ip} is in no network this server hands out addresses in (${networks.join(", ")})`,
        { array: "machine", index },
      );
    }
  });
}

/** Parses and validates config.toml text into the effective {@linkcode Config}. */
export function loadConfig(source: string, options: LoadOptions = {}): Config {
  const file = options.file ?? "config.toml";
  const raw = parseFile(source, file);
  applyAliases(raw, new ConfigReader(source, file));
  const fromEnv = applyEnv(raw, options.env ?? {}, KNOWN);
  const r = new ConfigReader(source, file, fromEnv);
  refuseUnknownKeys(raw, r);
  const net = readNetwork(raw, r, {
    interface: options.interface,
    lookup: options.lookup ?? lookupInterface,
    names: interfaceNames,
    required: options.requireInterface !== false,
  });
  const { mtu: _mtu, ...network } = net;
  const http = readHttp(r.table(raw, "http"), r, network.server_ip);
  const top = readTop(raw, r);
  const origins: Record<string, string> = {};
  const dhcp = readDhcp(r.table(raw, "dhcp"), r, network, origins);
  const resolvConf = options.resolvConf ?? readResolvConf;
  const dns = readDns(r.table(raw, "dns"), r, { network, dhcp, origins, resolvConf });
  if (!dns.enabled && origins["dhcp.dns"] !== undefined) {
    // No DNS server here: hand out the resolvers this host uses instead of a silent address.
    dhcp.dns = dns.upstream.filter((u) => !u.includes(":") && !u.startsWith("127."));
    origins["dhcp.dns"] = dhcp.dns.length
      ? "default: this host's resolvers, as [dns] is off"
      : "default: none, as [dns] is off and this host has no resolver to hand out";
  }
  const config: Config = {
    ...top,
    ...network,
    dhcp,
    dns,
    tftp: readTftp(r.table(raw, "tftp"), r, net, origins),
    http,
    ipfs: readIpfs(r.table(raw, "ipfs"), r),
    boot: readBoot(r.table(raw, "boot"), r),
    api: readApi(r.table(raw, "api"), r, top.data_dir),
    machines: readMachines(raw, r, dhcp),
    sources: sourcesOf(raw, r),
    origins,
  };
  refuseStrayReservations(config, r);
  return config;
}

/** Where every key given in the file or the environment was set; see `Config.sources`. */
function sourcesOf(raw: Raw, r: ConfigReader): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [section, keys] of Object.entries(KNOWN)) {
    if (section === "machine") continue;
    const table = section ? raw[section] as Raw | undefined : raw;
    for (const key of keys) {
      if (table?.[key] === undefined || (section === "" && KNOWN[key])) continue;
      const where = r.sourceOf(section, key);
      if (where) out[section ? `${section}.${key}` : key] = where;
    }
  }
  return out;
}
