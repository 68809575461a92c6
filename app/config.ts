/**
 * config.toml: parsing, validation, defaults derived from the interface, and the printed
 * "implied config" (every key, its effective value and a one-line comment).
 *
 * The original's minimal config (`ref`, `interface`) still works, and its keys `Gateway`,
 * `DNSServer`, `Domain` and `DBname` are accepted as aliases.
 *
 * @module
 */
import { parse as parseToml, TomlError } from "smol-toml";
import { join } from "node:path";
import { ipv4ToNumber, numberToIpv4 } from "../net/bytes.ts";

/** DHCP behaviour; see DESIGN.md "Safety". */
export type DhcpMode = "server" | "proxy" | "auto" | "off";

/** A `[[machine]]` entry. */
export interface MachineConfig {
  mac: string;
  hostname?: string;
  ip?: string;
  os?: string;
  class?: string;
  vars: Record<string, unknown>;
}

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
  };
  tftp: { port: number; max_blksize: number; windowsize: number };
  http: { port: number; address: string; public_url: string };
  ipfs: { gateways: string[]; timeout: number };
  boot: { default?: string; menu_timeout: number };
  machines: MachineConfig[];
}

/** A config problem: names the key, the line where known, and what is allowed. Exit code 2. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/** What the host tells about an interface; injected so tests need no real interface. */
export interface InterfaceInfo {
  name: string;
  address: string;
  netmask: string;
  mtu?: number;
}

/** Looks up the first IPv4 address of an interface through Deno.networkInterfaces(). */
export function lookupInterface(name: string): InterfaceInfo | null {
  const found = Deno.networkInterfaces().find((i) => i.name === name && i.family === "IPv4");
  return found ? { name, address: found.address, netmask: found.netmask } : null;
}

/** Names of the host's interfaces with an IPv4 address, for error messages. */
export function interfaceNames(): string[] {
  return [
    ...new Set(Deno.networkInterfaces().filter((i) => i.family === "IPv4").map((i) => i.name)),
  ];
}

type Raw = Record<string, unknown>;

const _ALIASES: Record<string, string> = {
  Gateway: "dhcp.router",
  DNSServer: "dhcp.dns",
  Domain: "dhcp.domain",
  DBname: "db_file",
};

const _KNOWN: Record<string, string[]> = {
  "": [
    "ref",
    "interface",
    "server_ip",
    "netmask",
    "data_dir",
    "db_file",
    "log_level",
    "dhcp",
    "tftp",
    "http",
    "ipfs",
    "boot",
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
  ],
  tftp: ["port", "max_blksize", "windowsize"],
  http: ["port", "address", "public_url"],
  ipfs: ["gateways", "timeout"],
  boot: ["default", "menu_timeout"],
  machine: ["mac", "hostname", "ip", "os", "class", "vars"],
};

/** Finds the 1-based line that sets `key` (optionally inside `[section]`), for messages. */
function _lineOf(source: string, section: string, key: string): number | undefined {
  const lines = source.split("\n");
  let current = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const header = /^\[\[?\s*([\w.-]+)\s*\]\]?/.exec(line);
    if (header) {
      current = header[1]!;
      continue;
    }
    if (
      current === section &&
      new RegExp(`^"?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"?\\s*=`).test(line)
    ) {
      return i + 1;
    }
  }
  return undefined;
}

class _Reader {
  constructor(readonly source: string, readonly file: string) {}

  fail(section: string, key: string, what: string): never {
    const line = _lineOf(this.source, section, key);
    const name = section ? `${section}.${key}` : key;
    throw new ConfigError(`${this.file}${line ? `:${line}` : ""}: ${name}: ${what}`);
  }

  str(t: Raw, section: string, key: string): string | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== "string") this.fail(section, key, `expected a string, got ${_typeName(v)}`);
    return v;
  }

  ip(t: Raw, section: string, key: string): string | undefined {
    const v = this.str(t, section, key);
    if (v === undefined) return undefined;
    try {
      ipv4ToNumber(v);
    } catch {
      this.fail(section, key, `expected an IPv4 address like "10.0.0.1", got ${JSON.stringify(v)}`);
    }
    return v;
  }

  ips(t: Raw, section: string, key: string): string[] | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list)) this.fail(section, key, `expected an IPv4 address or a list of them`);
    return list.map((x) => {
      if (typeof x !== "string") {
        this.fail(section, key, `expected IPv4 address strings, got ${_typeName(x)}`);
      }
      try {
        ipv4ToNumber(x);
      } catch {
        this.fail(
          section,
          key,
          `expected an IPv4 address like "10.0.0.1", got ${JSON.stringify(x)}`,
        );
      }
      return x;
    });
  }

  int(t: Raw, section: string, key: string, min: number, max: number): number | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    const n = typeof v === "bigint" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isInteger(n)) {
      this.fail(section, key, `expected a whole number, got ${_typeName(v)}`);
    }
    if (n < min || n > max) this.fail(section, key, `must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  seconds(t: Raw, section: string, key: string): number | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v === "number" || typeof v === "bigint") {
      const n = Number(v);
      if (n <= 0) this.fail(section, key, `must be positive, got ${n}`);
      return n;
    }
    if (typeof v === "string") {
      const s = parseDuration(v);
      if (s !== null) return s;
    }
    return this.fail(
      section,
      key,
      `expected seconds or a duration like "24h", "30m", "90s", got ${JSON.stringify(v)}`,
    );
  }

  bool(t: Raw, section: string, key: string): boolean | undefined {
    const v = t[key];
    if (v === undefined) return undefined;
    if (typeof v !== "boolean") {
      this.fail(section, key, `expected true or false, got ${_typeName(v)}`);
    }
    return v;
  }

  oneOf<T extends string>(
    t: Raw,
    section: string,
    key: string,
    allowed: readonly T[],
  ): T | undefined {
    const v = this.str(t, section, key);
    if (v === undefined) return undefined;
    if (!allowed.includes(v as T)) {
      this.fail(
        section,
        key,
        `must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${JSON.stringify(v)}`,
      );
    }
    return v as T;
  }

  table(t: Raw, key: string): Raw {
    const v = t[key];
    if (v === undefined) return {};
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      this.fail("", key, `expected a table [${key}]`);
    }
    return v as Raw;
  }
}

function _typeName(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  if (typeof v === "object") return "a table";
  return `${typeof v} ${JSON.stringify(typeof v === "bigint" ? Number(v) : v)}`;
}

/** Parses "24h", "30m", "90s", "1d", "1h30m" or a bare number of seconds; null if invalid. */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const re = /(\d+)\s*([dhms])/gy;
  let total = 0, m: RegExpExecArray | null, consumed = 0;
  const unit = { d: 86400, h: 3600, m: 60, s: 1 } as const;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * unit[m[2] as keyof typeof unit];
    consumed = re.lastIndex;
  }
  return consumed === t.length && consumed > 0 && total > 0 ? total : null;
}

/** Normalises a MAC to lower-case colon form; null if it is not one. */
export function normalizeMac(text: string): string | null {
  const hex = text.toLowerCase().replace(/[-:.]/g, "");
  if (!/^[0-9a-f]{12}$/.test(hex)) return null;
  return hex.match(/../g)!.join(":");
}

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
}

/** Parses and validates config.toml text into the effective {@linkcode Config}. */
export function loadConfig(source: string, options: LoadOptions = {}): Config {
  const file = options.file ?? "config.toml";
  let raw: Raw;
  try {
    raw = parseToml(source) as Raw;
  } catch (e) {
    if (e instanceof TomlError) {
      throw new ConfigError(
        `${file}:${e.line}:${e.column}: cannot parse TOML: ${e.message.split("\n")[0]}`,
        { cause: e },
      );
    }
    throw e;
  }
  const r: _Reader = new _Reader(source, file);

  // The original's capitalised keys: move them to their new place unless both are given.
  for (const [alias, target] of Object.entries(_ALIASES)) {
    if (!(alias in raw)) continue;
    const [section, key] = target.includes(".")
      ? target.split(".") as [string, string]
      : ["", target];
    const dest = section ? ((raw[section] ??= {}) as Raw) : raw;
    if (key in dest) r.fail("", alias, `given twice: as ${alias} and as ${target}; keep one`);
    dest[key] = raw[alias];
    delete raw[alias];
  }
  for (const [section, keys] of Object.entries(_KNOWN)) {
    const tables: Raw[] = section === ""
      ? [raw]
      : section === "machine"
      ? (Array.isArray(raw.machine) ? raw.machine as Raw[] : [])
      : [r.table(raw, section)];
    for (const t of tables) {
      for (const key of Object.keys(t)) {
        if (!keys.includes(key)) {
          r.fail(
            section === "machine" ? "machine" : section,
            key,
            `unknown key; allowed: ${keys.join(", ")}`,
          );
        }
      }
    }
  }

  const ifaceName = options.interface ?? r.str(raw, "", "interface");
  const explicitIp = r.ip(raw, "", "server_ip");
  const explicitMask = r.ip(raw, "", "netmask");
  let info: InterfaceInfo | null = null;
  if (ifaceName && !explicitIp) info = (options.lookup ?? lookupInterface)(ifaceName);
  if (!ifaceName && options.requireInterface !== false) {
    throw new ConfigError(
      `${file}: interface: not set; name the one network interface to serve, e.g. interface = "eth1" (or -i eth1)`,
    );
  }
  if (ifaceName && !explicitIp && !info && options.requireInterface !== false) {
    const known = (() => {
      try {
        return interfaceNames().join(", ");
      } catch {
        return "?";
      }
    })();
    throw new ConfigError(
      `interface ${
        JSON.stringify(ifaceName)
      } has no IPv4 address (or does not exist); interfaces with one: ${known}`,
    );
  }
  const serverIp = explicitIp ?? info?.address ?? "0.0.0.0";
  const netmask = explicitMask ?? info?.netmask ?? "255.255.255.0";

  const dhcpT = r.table(raw, "dhcp");
  const tftpT = r.table(raw, "tftp");
  const httpT = r.table(raw, "http");
  const ipfsT = r.table(raw, "ipfs");
  const bootT = r.table(raw, "boot");

  const maskN = ipv4ToNumber(netmask);
  const net = ipv4ToNumber(serverIp) & maskN;
  const bcast = (net | (~maskN >>> 0)) >>> 0;
  const range = (() => {
    const v = dhcpT.range;
    if (v === undefined) {
      return bcast - net >= 2
        ? [numberToIpv4(net + 1), numberToIpv4(bcast - 1)] as [string, string]
        : [serverIp, serverIp] as [string, string];
    }
    const list = r.ips(dhcpT, "dhcp", "range")!;
    if (list.length !== 2) {
      r.fail("dhcp", "range", `expected two addresses ["first", "last"], got ${list.length}`);
    }
    const [a, b] = list as [string, string];
    if (ipv4ToNumber(a) > ipv4ToNumber(b)) {
      r.fail("dhcp", "range", `first address ${a} is after last ${b}`);
    }
    if (
      serverIp !== "0.0.0.0" &&
      ((ipv4ToNumber(a) & maskN) >>> 0 !== net || (ipv4ToNumber(b) & maskN) >>> 0 !== net)
    ) {
      r.fail(
        "dhcp",
        "range",
        `${a}..${b} is not inside this interface's subnet ${numberToIpv4(net)}/${netmask}`,
      );
    }
    return [a, b] as [string, string];
  })();

  const dataDir = r.str(raw, "", "data_dir") ?? "/var/lib/astralboot";
  const httpPort = r.int(httpT, "http", "port", 1, 65535) ?? 80;
  const httpAddress = r.ip(httpT, "http", "address") ?? serverIp;
  const publicUrl = r.str(httpT, "http", "public_url") ??
    `http://${httpAddress === "0.0.0.0" ? serverIp : httpAddress}${
      httpPort === 80 ? "" : `:${httpPort}`
    }`;

  const machines: MachineConfig[] = [];
  const rawMachines = raw.machine ?? [];
  if (!Array.isArray(rawMachines)) r.fail("", "machine", "expected [[machine]] tables");
  const seen = new Set<string>();
  for (const m of rawMachines as Raw[]) {
    const macText = r.str(m, "machine", "mac");
    if (!macText) r.fail("machine", "mac", 'every [[machine]] needs mac = "52:54:00:12:34:56"');
    const mac = normalizeMac(macText);
    if (!mac) r.fail("machine", "mac", `not a MAC address: ${JSON.stringify(macText)}`);
    if (seen.has(mac)) r.fail("machine", "mac", `${mac} appears in two [[machine]] entries`);
    seen.add(mac);
    const vars = m.vars ?? {};
    if (typeof vars !== "object" || Array.isArray(vars)) {
      r.fail("machine", "vars", 'expected a table, e.g. vars = { disk = "/dev/sda" }');
    }
    const hostname = r.str(m, "machine", "hostname");
    if (hostname !== undefined && !/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(hostname)) {
      r.fail("machine", "hostname", `not a valid host name: ${JSON.stringify(hostname)}`);
    }
    machines.push({
      mac,
      hostname,
      ip: r.ip(m, "machine", "ip"),
      os: r.str(m, "machine", "os"),
      class: r.str(m, "machine", "class"),
      vars: _plainObject(vars) as Record<string, unknown>,
    });
  }

  const gateways = (() => {
    const v = ipfsT.gateways;
    if (v === undefined) return ["http://127.0.0.1:8080"];
    const list = typeof v === "string" ? [v] : v;
    if (!Array.isArray(list) || list.length === 0) {
      r.fail("ipfs", "gateways", "expected a list of gateway URLs");
    }
    return list.map((g) => {
      if (typeof g !== "string" || !/^https?:\/\/[^/]+/.test(g)) {
        r.fail(
          "ipfs",
          "gateways",
          `expected http(s) URLs like "http://127.0.0.1:8080", got ${JSON.stringify(g)}`,
        );
      }
      return g.replace(/\/+$/, "");
    });
  })();

  const ref = r.str(raw, "", "ref");
  if (ref !== undefined && !/^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,})$/.test(ref)) {
    r.fail("", "ref", `not a CID (expected Qm… or bafy…): ${JSON.stringify(ref)}`);
  }

  return {
    ref,
    interface: ifaceName ?? "",
    server_ip: serverIp,
    netmask,
    data_dir: dataDir,
    db_file: r.str(raw, "", "db_file") ?? join(dataDir, "leases.db"),
    log_level: r.oneOf(raw, "", "log_level", ["debug", "info", "warn", "error"] as const) ?? "info",
    dhcp: {
      mode: r.oneOf(dhcpT, "dhcp", "mode", ["server", "proxy", "auto", "off"] as const) ?? "server",
      range,
      lease: r.seconds(dhcpT, "dhcp", "lease") ?? 86400,
      router: r.ip(dhcpT, "dhcp", "router"),
      dns: r.ips(dhcpT, "dhcp", "dns") ?? [],
      domain: r.str(dhcpT, "dhcp", "domain"),
      efi_loader: r.str(dhcpT, "dhcp", "efi_loader") ?? "snponly.efi",
      arm64_loader: r.str(dhcpT, "dhcp", "arm64_loader") ?? "arm64/ipxe.efi",
      router_advertisement: r.bool(dhcpT, "dhcp", "router_advertisement") ?? true,
    },
    tftp: {
      port: r.int(tftpT, "tftp", "port", 1, 65535) ?? 69,
      max_blksize: r.int(tftpT, "tftp", "max_blksize", 512, 65464) ??
        Math.max(512, (info?.mtu ?? 1500) - 32),
      windowsize: r.int(tftpT, "tftp", "windowsize", 1, 65535) ?? 64,
    },
    http: { port: httpPort, address: httpAddress, public_url: publicUrl.replace(/\/+$/, "") },
    ipfs: { gateways, timeout: r.seconds(ipfsT, "ipfs", "timeout") ?? 30 },
    boot: {
      default: r.str(bootT, "boot", "default"),
      menu_timeout: r.int(bootT, "boot", "menu_timeout", 0, 86400) ?? 10,
    },
    machines,
  };
}

/** smol-toml gives null-prototype tables; templates and deepEqual want plain objects. */
function _plainObject(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(_plainObject);
  if (typeof v === "object" && v !== null && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, _plainObject(x)]));
  }
  return v;
}

function _toml(v: unknown): string {
  if (v === undefined) return '""';
  if (Array.isArray(v)) return `[${v.map(_toml).join(", ")}]`;
  if (typeof v === "object" && v !== null) {
    return `{ ${
      Object.entries(v).map(([k, x]) =>
        `${/^[\w-]+$/.test(k) ? k : JSON.stringify(k)} = ${_toml(x)}`
      ).join(", ")
    } }`;
  }
  return JSON.stringify(v);
}

/**
 * The implied config as TOML: every key with its effective value and a one-line comment.
 * Unset optional keys are printed commented out.
 */
export function formatConfig(c: Config): string {
  const out: string[] = [];
  const line = (key: string, value: unknown, comment: string, unset = false) => {
    const text = `${unset ? "# " : ""}${key} = ${_toml(value)}`;
    out.push(`${text.padEnd(44)} # ${comment}`);
  };
  out.push("# Astral Boot: the implied config (every key, its effective value)");
  line(
    "ref",
    c.ref,
    "root CID of the boot tree in IPFS (unset: -l DIR or the embedded default)",
    c.ref === undefined,
  );
  line("interface", c.interface, "the only interface DHCP ever answers on");
  line("server_ip", c.server_ip, "this server's address on it (derived from the interface)");
  line("netmask", c.netmask, "its netmask (derived from the interface)");
  line("data_dir", c.data_dir, "leases.db and the IPFS cache live here");
  line("db_file", c.db_file, "the lease and machine database (original: DBname)");
  line("log_level", c.log_level, "debug, info, warn or error");
  out.push("", "[dhcp]");
  line(
    "mode",
    c.dhcp.mode,
    "server: addresses + boot info; proxy: boot info only; auto: proxy if another server answers; off",
  );
  line(
    "range",
    c.dhcp.range,
    "first and last address handed out (minus network, broadcast, server, router)",
  );
  line("lease", c.dhcp.lease, 'lease time in seconds (or "24h")');
  line(
    "router",
    c.dhcp.router ?? "",
    "default gateway for clients (original: Gateway)",
    c.dhcp.router === undefined,
  );
  line("dns", c.dhcp.dns, "DNS servers for clients (original: DNSServer)");
  line(
    "domain",
    c.dhcp.domain ?? "",
    "domain name for clients (original: Domain)",
    c.dhcp.domain === undefined,
  );
  line("efi_loader", c.dhcp.efi_loader, "first stage for x86-64 UEFI (tftp/<name>)");
  line("arm64_loader", c.dhcp.arm64_loader, "first stage for ARM64 UEFI (tftp/<name>)");
  line(
    "router_advertisement",
    c.dhcp.router_advertisement,
    "answer IPv6 router solicitations as a non-router (no route, no address): iPXE stops waiting ~15 s for one",
  );
  out.push("", "[tftp]");
  line("port", c.tftp.port, "TFTP port");
  line("max_blksize", c.tftp.max_blksize, "largest block size granted (link MTU minus headers)");
  line("windowsize", c.tftp.windowsize, "largest RFC 7440 window granted");
  out.push("", "[http]");
  line("port", c.http.port, "HTTP port for scripts, menus and images");
  line("address", c.http.address, "address HTTP listens on");
  line("public_url", c.http.public_url, "base URL handed to clients");
  out.push("", "[ipfs]");
  line("gateways", c.ipfs.gateways, "trustless gateways, tried in order (every block is verified)");
  line("timeout", c.ipfs.timeout, "seconds before a gateway request fails over");
  out.push("", "[boot]");
  line(
    "default",
    c.boot.default ?? "",
    "OS booted unattended after menu_timeout",
    c.boot.default === undefined,
  );
  line(
    "menu_timeout",
    c.boot.menu_timeout,
    "seconds the menu waits (0: wait for a choice without a default)",
  );
  for (const m of c.machines) {
    out.push("", "[[machine]]");
    line("mac", m.mac, "this machine's MAC address");
    if (m.hostname) line("hostname", m.hostname, "its host name");
    if (m.ip) line("ip", m.ip, "its reserved address");
    if (m.os) line("os", m.os, "OS it boots");
    if (m.class) line("class", m.class, "class (variant) of that OS");
    if (Object.keys(m.vars).length) line("vars", m.vars, "template variables for this machine");
  }
  return out.join("\n") + "\n";
}
