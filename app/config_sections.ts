/**
 * The sections of config.toml, one reader each: what every key may hold and its default,
 * derived from the interface where the original did so.
 *
 * @module
 */
import { join } from "node:path";
import { ipv4ToNumber, Subnet } from "../net/ipv4.ts";
import { type Mac, parseMac } from "../net/mac.ts";
import { formatUpstream, parseUpstream } from "../protocols/dns/forwarder.ts";
import { SERVER_HOST } from "../boot/dns_names.ts";
import { parseUuid, type Uuid } from "../net/uuid.ts";
import { blksizeForMtu } from "../protocols/tftp/options.ts";
import { DOWNLOAD_MIN_RATE } from "../ipfs/defaults.ts";
import { ConfigError, type ConfigReader, type Raw } from "./config_reader.ts";
import type { Config, InterfaceInfo, MachineEntry } from "./config.ts";
import { readForceOptions, readOptions, refuseTwice } from "./config_options.ts";
import { readSubnets } from "./config_subnets.ts";
import { ARM64_SHIM_LOADER } from "../boot/secure_boot.ts";

/** The server's place on the network: the interface and its address. */
export interface Network {
  interface: string;
  server_ip: string;
  netmask: string;
  /** The interface's MTU where known (for TFTP block sizes). */
  mtu?: number;
}

/** `interface`, `server_ip`, `netmask`: given, or read off the interface. */
export function readNetwork(
  raw: Raw,
  r: ConfigReader,
  o: {
    interface?: string;
    lookup: (name: string) => InterfaceInfo | null;
    names: () => string[];
    required: boolean;
  },
): Network {
  const name = o.interface ?? r.str(raw, "", "interface");
  const explicitIp = r.ip(raw, "", "server_ip");
  const explicitMask = r.ip(raw, "", "netmask");
  // Looked up also when the address is given: the MTU (TFTP's largest block) comes from it.
  let info: InterfaceInfo | null = null;
  try {
    info = name ? o.lookup(name) : null;
  } catch (e) {
    if (!explicitIp) throw e;
  }
  if (!name && o.required) {
    throw new ConfigError(
      `${r.file}: interface: not set; name the one network interface to serve, e.g. interface = "eth1" (or -i eth1)`,
    );
  }
  if (name && !explicitIp && !info && o.required) {
    let known = "?";
    try {
      known = o.names().join(", ");
    } catch { /* not allowed to list them */ }
    throw new ConfigError(
      `interface ${
        JSON.stringify(name)
      } has no IPv4 address (or does not exist); interfaces with one: ${known}`,
    );
  }
  return {
    interface: name ?? "",
    server_ip: explicitIp ?? info?.address ?? "0.0.0.0",
    netmask: explicitMask ?? info?.netmask ?? "255.255.255.0",
    mtu: info?.mtu,
  };
}

/** `ref`, `data_dir`, `db_file`, `log_level`. */
export function readTop(
  raw: Raw,
  r: ConfigReader,
): Pick<Config, "ref" | "data_dir" | "db_file" | "log_level"> {
  const ref = r.str(raw, "", "ref");
  if (ref !== undefined && !/^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,})$/.test(ref)) {
    r.fail("", "ref", `not a CID (expected Qm… or bafy…): ${JSON.stringify(ref)}`);
  }
  const dataDir = r.str(raw, "", "data_dir") ?? "/var/lib/astralboot";
  return {
    ref,
    data_dir: dataDir,
    db_file: r.str(raw, "", "db_file") ?? join(dataDir, "leases.db"),
    log_level: r.oneOf(raw, "", "log_level", ["debug", "info", "warn", "error"] as const) ?? "info",
  };
}

/** `[dhcp] range`: two addresses of the interface's subnet, else all of its hosts. */
function readRange(t: Raw, r: ConfigReader, net: Network): [string, string] {
  const subnet = Subnet.of(net.server_ip, net.netmask);
  if (t.range === undefined) return subnet.hosts;
  const list = r.ips(t, "dhcp", "range")!;
  if (list.length !== 2) {
    r.fail("dhcp", "range", `expected two addresses ["first", "last"], got ${list.length}`);
  }
  const [a, b] = list as [string, string];
  if (ipv4ToNumber(a) > ipv4ToNumber(b)) {
    r.fail("dhcp", "range", `first address ${a} is after last ${b}`);
  }
  if (net.server_ip !== "0.0.0.0" && (!subnet.contains(a) || !subnet.contains(b))) {
    r.fail(
      "dhcp",
      "range",
      `${a}..${b} is not inside this interface's subnet ${subnet.network}/${net.netmask}`,
    );
  }
  return [a, b];
}

/** Where a default of the interface's address came from, for the printed config. */
function thisServer(net: Network): string {
  return `default: this server's address on ${net.interface || "the interface"}`;
}

/** `[dhcp] router`: given, `""` for none, else this server (as the original did). */
function readRouter(
  t: Raw,
  r: ConfigReader,
  net: Network,
  origins: Record<string, string>,
): string | undefined {
  if (t.router === "") return undefined;
  const given = r.ip(t, "dhcp", "router");
  if (given !== undefined) return given;
  origins["dhcp.router"] = `${thisServer(net)}; router = "" for none`;
  return net.server_ip;
}

/** `[dhcp] dns`: given, `[]` (or `""`) for none, else this server (as the original did). */
function readDhcpDns(
  t: Raw,
  r: ConfigReader,
  net: Network,
  origins: Record<string, string>,
): string[] {
  if (t.dns === "") return [];
  const given = r.ips(t, "dhcp", "dns");
  if (given !== undefined) return given;
  origins["dhcp.dns"] = `${thisServer(net)}; dns = [] for none`;
  return [net.server_ip];
}

/** The original's domain when none is given: a name no public DNS answers for. */
export const DEFAULT_DOMAIN = "erf";

const DOMAIN =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/** `[dhcp] domain`: given, `""` for none, else the original's. */
function readDomain(t: Raw, r: ConfigReader, origins: Record<string, string>): string | undefined {
  if (t.domain === "") return undefined;
  const given = r.str(t, "dhcp", "domain");
  if (given === undefined) {
    origins["dhcp.domain"] = "default: the original's, a name no public DNS answers for";
    return DEFAULT_DOMAIN;
  }
  const domain = given.replace(/\.$/, "");
  if (!DOMAIN.test(domain)) {
    r.fail(
      "dhcp",
      "domain",
      `not a domain name (letters, digits, hyphens, dots): ${JSON.stringify(given)}`,
    );
  }
  return domain;
}

/** Keys of `[dhcp]` that set an option the options table may set too. */
const OPTION_KEYS = ["router", "dns", "domain"];

/**
 * `[dhcp]` and its `[[dhcp.subnet]]` tables; `origins` learns where the defaults of router, dns
 * and domain came from.
 */
export function readDhcp(
  t: Raw,
  r: ConfigReader,
  net: Network,
  origins: Record<string, string>,
): Config["dhcp"] {
  const options = readOptions(t, r, { section: "dhcp" });
  refuseTwice(t, options, OPTION_KEYS, r, { section: "dhcp" });
  const lease = r.seconds(t, "dhcp", "lease") ?? 86400;
  const dns = readDhcpDns(t, r, net, origins);
  const domain = readDomain(t, r, origins);
  const own = net.server_ip === "0.0.0.0" ? undefined : Subnet.of(net.server_ip, net.netmask);
  return {
    mode: r.oneOf(t, "dhcp", "mode", ["server", "proxy", "auto", "off"] as const) ?? "server",
    range: readRange(t, r, net),
    lease,
    router: readRouter(t, r, net, origins),
    dns,
    domain,
    efi_loader: r.str(t, "dhcp", "efi_loader") ?? "snponly.efi",
    arm64_loader: r.str(t, "dhcp", "arm64_loader") ?? ARM64_SHIM_LOADER,
    router_advertisement: r.bool(t, "dhcp", "router_advertisement") ?? true,
    known_only: r.bool(t, "dhcp", "known_only") ?? false,
    new_client_rate: r.int(t, "dhcp", "new_client_rate", 1, 100_000) ?? 10,
    options,
    force_options: readForceOptions(t, r, { section: "dhcp" }),
    subnets: readSubnets(t, r, own, { dns, domain, lease }),
  };
}

/** The IPv4 name servers of a resolv.conf, as upstreams (`address`, or `address:port`). */
export function resolvNameservers(text: string): string[] {
  return text.split("\n").flatMap((line) => {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    const up = m ? parseUpstream(m[1]!) : null;
    return up ? [formatUpstream(up)] : [];
  });
}

/** `[dns] upstream`: given (a string or a list), else the host's resolvers; never this server. */
function readUpstream(
  t: Raw,
  r: ConfigReader,
  self: string,
  origins: Record<string, string>,
  resolvConf: () => string | null,
): string[] {
  const isSelf = (u: string) => formatUpstream(parseUpstream(u)!) === self;
  if (t.upstream === undefined) {
    const text = resolvConf();
    const found = text === null ? [] : resolvNameservers(text);
    const list = found.filter((u) => !isSelf(u));
    origins["dns.upstream"] = list.length
      ? "default: the IPv4 nameservers of /etc/resolv.conf"
      : "default: /etc/resolv.conf names no IPv4 nameserver but this one: other names are refused";
    return list;
  }
  const v = t.upstream;
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list)) r.fail("dns", "upstream", 'expected "10.0.0.53" or a list of them');
  return list.map((u) => {
    const up = typeof u === "string" ? parseUpstream(u) : null;
    if (!up) {
      r.fail(
        "dns",
        "upstream",
        `expected IPv4 addresses like "10.0.0.53" or "10.0.0.53:5353", got ${JSON.stringify(u)}`,
      );
    }
    const text = formatUpstream(up);
    if (text === self) r.fail("dns", "upstream", `${text} is this server: queries would loop`);
    return text;
  });
}

/** `[dns]`: on in DHCP server mode; the domain is `[dhcp] domain`. */
export function readDns(
  t: Raw,
  r: ConfigReader,
  o: {
    network: Network;
    dhcp: Config["dhcp"];
    origins: Record<string, string>;
    resolvConf: () => string | null;
  },
): Config["dns"] {
  const port = r.int(t, "dns", "port", 1, 65535) ?? 53;
  let enabled = r.bool(t, "dns", "enabled");
  if (enabled === undefined) {
    enabled = o.dhcp.mode === "server";
    o.origins["dns.enabled"] = enabled
      ? "default: on, as DHCP hands out addresses (mode server)"
      : `default: off, as DHCP mode is ${o.dhcp.mode}`;
  }
  if (enabled && !o.dhcp.domain) {
    r.fail(
      "dns",
      "enabled",
      'needs [dhcp] domain, the zone it answers for (domain = "" turns it off)',
    );
  }
  const self = formatUpstream({ address: o.network.server_ip, port });
  const ttl = r.seconds(t, "dns", "ttl") ?? 60;
  if (ttl > 86400) r.fail("dns", "ttl", `at most a day (86400), got ${ttl}`);
  return {
    enabled,
    upstream: readUpstream(t, r, self, o.origins, o.resolvConf),
    ttl,
    port,
  };
}

/** `[tftp]`: the largest block fills one frame of the interface's MTU. */
export function readTftp(
  t: Raw,
  r: ConfigReader,
  net: Network,
  origins: Record<string, string>,
): Config["tftp"] {
  let maxBlksize = r.int(t, "tftp", "max_blksize", 512, 65464);
  if (maxBlksize === undefined) {
    maxBlksize = blksizeForMtu(net.mtu ?? 1500);
    const on = net.interface || "the interface";
    origins["tftp.max_blksize"] = net.mtu === undefined
      ? `default: the MTU of ${on} is unknown, 1500 (Ethernet) assumed`
      : `default: MTU ${net.mtu} of ${on} minus 32 (IPv4, UDP, TFTP headers)` +
        (net.mtu - 32 > maxBlksize ? `, capped at ${maxBlksize}` : "");
  }
  return {
    port: r.int(t, "tftp", "port", 1, 65535) ?? 69,
    max_blksize: maxBlksize,
    windowsize: r.int(t, "tftp", "windowsize", 1, 65535) ?? 64,
    // The server runs at most 256 transfers at once; one address may hold all of them.
    max_per_client: r.int(t, "tftp", "max_per_client", 1, 256) ?? 4,
  };
}

/** `[http]`: the public URL follows the address and port; the connection limits. */
export function readHttp(t: Raw, r: ConfigReader, serverIp: string): Config["http"] {
  const port = r.int(t, "http", "port", 1, 65535) ?? 80;
  const address = r.ip(t, "http", "address") ?? serverIp;
  const host = address === "0.0.0.0" ? serverIp : address;
  const url = r.str(t, "http", "public_url") ?? `http://${host}${port === 80 ? "" : `:${port}`}`;
  const idle = r.seconds(t, "http", "idle_timeout") ?? 15;
  // Under a second the watchdog (which looks every second) could not keep it.
  if (idle < 1 || idle > 3600) {
    r.fail("http", "idle_timeout", `must be between 1 s and 1 h ("1h"), got ${idle} s`);
  }
  const maxConnections = r.int(t, "http", "max_connections", 1, 100_000) ?? 512;
  const maxPerClient = r.int(t, "http", "max_per_client", 1, 100_000) ?? 32;
  if (maxPerClient > maxConnections) {
    r.fail(
      "http",
      "max_per_client",
      `${maxPerClient} is more than max_connections (${maxConnections}); keep it at or below`,
    );
  }
  return {
    port,
    address,
    public_url: url.replace(/\/+$/, ""),
    idle_timeout: idle,
    max_connections: maxConnections,
    max_per_client: maxPerClient,
  };
}

/** `[ipfs]`. */
export function readIpfs(t: Raw, r: ConfigReader): Config["ipfs"] {
  const v = t.gateways ?? ["http://127.0.0.1:8080"];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length === 0) {
    r.fail("ipfs", "gateways", "expected a list of gateway URLs");
  }
  const gateways = list.map((g) => {
    if (typeof g !== "string" || !/^https?:\/\/[^/]+/.test(g)) {
      r.fail(
        "ipfs",
        "gateways",
        `expected http(s) URLs like "http://127.0.0.1:8080", got ${JSON.stringify(g)}`,
      );
    }
    return g.replace(/\/+$/, "");
  });
  return {
    gateways,
    timeout: r.seconds(t, "ipfs", "timeout") ?? 30,
    cache_max: r.bytes(t, "ipfs", "cache_max") ?? 10 * 2 ** 30,
    min_rate: r.bytes(t, "ipfs", "min_rate") ?? DOWNLOAD_MIN_RATE,
  };
}

/** `[boot]`. */
export function readBoot(t: Raw, r: ConfigReader): Config["boot"] {
  return {
    default: r.str(t, "boot", "default"),
    menu_timeout: r.int(t, "boot", "menu_timeout", 0, 86400) ?? 10,
    secure_boot: r.bool(t, "boot", "secure_boot") ?? false,
  };
}

/** `[api]`. */
export function readApi(t: Raw, r: ConfigReader, dataDir: string): Config["api"] {
  return { token_file: r.str(t, "api", "token_file") ?? join(dataDir, "api-token") };
}

const HOSTNAME = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

/** `mac` of a `[[machine]]`, parsed; `seen` catches a MAC listed twice. */
function readMachineMac(m: Raw, r: ConfigReader, seen: Set<string>): Mac | undefined {
  const text = r.str(m, "machine", "mac");
  if (text === undefined) return undefined;
  const mac = parseMac(text);
  if (!mac) r.fail("machine", "mac", `not a MAC address: ${JSON.stringify(text)}`);
  if (seen.has(mac)) r.fail("machine", "mac", `${mac} appears in two [[machine]] entries`);
  seen.add(mac);
  return mac;
}

/** `uuid` of a `[[machine]]`, in canonical form; `seen` catches a UUID listed twice. */
function readMachineUuid(m: Raw, r: ConfigReader, seen: Set<string>): Uuid | undefined {
  const text = r.str(m, "machine", "uuid");
  if (text === undefined) return undefined;
  const uuid = parseUuid(text);
  if (!uuid) {
    r.fail(
      "machine",
      "uuid",
      `not a UUID: ${JSON.stringify(text)} (expected 8-4-4-4-12 hex digits, as ` +
        `dmidecode -s system-uuid prints it; the nil UUID means "none")`,
    );
  }
  if (seen.has(uuid)) r.fail("machine", "uuid", `${uuid} appears in two [[machine]] entries`);
  seen.add(uuid);
  return uuid;
}

/**
 * One `[[machine]]` (number `index`), named by `mac`, `uuid` or both; `seen` catches a MAC or
 * UUID listed twice. Without `mac` DHCP cannot know the machine: no `ip`, no DHCP options, and
 * none under `known_only`.
 */
function readMachine(
  m: Raw,
  r: ConfigReader,
  seen: Set<string>,
  index: number,
  dhcp: Pick<Config["dhcp"], "known_only">,
): MachineEntry {
  const mac = readMachineMac(m, r, seen);
  const uuid = readMachineUuid(m, r, seen);
  if (!mac && !uuid) {
    r.fail(
      "machine",
      "mac",
      'every [[machine]] needs mac = "52:54:00:12:34:56", uuid = "…" (the SMBIOS UUID it ' +
        "reports), or both",
    );
  }
  const vars = m.vars ?? {};
  if (typeof vars !== "object" || Array.isArray(vars)) {
    r.fail("machine", "vars", 'expected a table, e.g. vars = { disk = "/dev/sda" }');
  }
  const hostname = r.str(m, "machine", "hostname");
  if (hostname !== undefined && !HOSTNAME.test(hostname)) {
    r.fail("machine", "hostname", `not a valid host name: ${JSON.stringify(hostname)}`);
  }
  if (hostname !== undefined) {
    // DNS names are one per address and any case: two would answer one name two ways.
    const key = hostname.toLowerCase();
    if (key === SERVER_HOST) {
      r.fail("machine", "hostname", `${SERVER_HOST} is this server's own name in DNS`);
    }
    if (seen.has(`host:${key}`)) {
      r.fail("machine", "hostname", `${hostname} appears in two [[machine]] entries (any case)`);
    }
    seen.add(`host:${key}`);
  }
  const ip = r.ip(m, "machine", "ip");
  if (ip !== undefined) {
    if (seen.has(`ip:${ip}`)) {
      r.fail("machine", "ip", `${ip} is reserved in two [[machine]] entries`);
    }
    seen.add(`ip:${ip}`);
  }
  if (ip !== undefined && !mac) {
    r.fail(
      "machine",
      "ip",
      "a reservation needs mac: DHCP gives the address before the machine reports its " +
        "UUID; add mac, or leave ip out (it then gets one from the range)",
    );
  }
  if (!mac && dhcp.known_only) {
    r.fail(
      "machine",
      "uuid",
      "with [dhcp] known_only = true a [[machine]] without mac gets no address (DHCP knows " +
        "machines by MAC); add its mac",
    );
  }
  const place = { section: "machine", at: { array: "machine", index } };
  const options = readOptions(m, r, place);
  const force = readForceOptions(m, r, place);
  if (!mac && (Object.keys(options).length || force.length)) {
    r.fail("machine", "options", "DHCP options need mac: DHCP knows machines by MAC");
  }
  return {
    ...(mac ? { mac } : {}),
    ...(uuid ? { uuid } : {}),
    hostname,
    ip,
    os: r.str(m, "machine", "os"),
    class: r.str(m, "machine", "class"),
    vars: plainObject(vars) as Record<string, unknown>,
    ...(Object.keys(options).length ? { options } : {}),
    ...(force.length ? { force_options: force } : {}),
  };
}

/** Every `[[machine]]`; `dhcp` says whether one without `mac` can get an address. */
export function readMachines(
  raw: Raw,
  r: ConfigReader,
  dhcp: Pick<Config["dhcp"], "known_only">,
): MachineEntry[] {
  const list = raw.machine ?? [];
  if (!Array.isArray(list)) r.fail("", "machine", "expected [[machine]] tables");
  const seen = new Set<string>();
  return (list as Raw[]).map((m, i) => readMachine(m, r, seen, i, dhcp));
}

/** smol-toml gives null-prototype tables; templates and deepEqual want plain objects. */
function plainObject(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plainObject);
  if (typeof v === "object" && v !== null && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainObject(x)]));
  }
  return v;
}
