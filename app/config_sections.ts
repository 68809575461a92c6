/**
 * The sections of config.toml, one reader each: what every key may hold and its default,
 * derived from the interface where the original did so.
 *
 * @module
 */
import { join } from "node:path";
import { ipv4ToNumber, Subnet } from "../net/ipv4.ts";
import { type Mac, parseMac } from "../net/mac.ts";
import type { MachineConfig } from "../state/machines.ts";
import { ConfigError, type ConfigReader, type Raw } from "./config_reader.ts";
import type { Config, InterfaceInfo } from "./config.ts";

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
  const info = name && !explicitIp ? o.lookup(name) : null;
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

/** `[dhcp]`. */
export function readDhcp(t: Raw, r: ConfigReader, net: Network): Config["dhcp"] {
  return {
    mode: r.oneOf(t, "dhcp", "mode", ["server", "proxy", "auto", "off"] as const) ?? "server",
    range: readRange(t, r, net),
    lease: r.seconds(t, "dhcp", "lease") ?? 86400,
    router: r.ip(t, "dhcp", "router"),
    dns: r.ips(t, "dhcp", "dns") ?? [],
    domain: r.str(t, "dhcp", "domain"),
    efi_loader: r.str(t, "dhcp", "efi_loader") ?? "snponly.efi",
    arm64_loader: r.str(t, "dhcp", "arm64_loader") ?? "arm64/ipxe.efi",
    router_advertisement: r.bool(t, "dhcp", "router_advertisement") ?? true,
    known_only: r.bool(t, "dhcp", "known_only") ?? false,
    new_client_rate: r.int(t, "dhcp", "new_client_rate", 1, 100_000) ?? 10,
  };
}

/** `[tftp]`: the largest block fits the interface's MTU. */
export function readTftp(t: Raw, r: ConfigReader, mtu: number | undefined): Config["tftp"] {
  return {
    port: r.int(t, "tftp", "port", 1, 65535) ?? 69,
    max_blksize: r.int(t, "tftp", "max_blksize", 512, 65464) ??
      Math.max(512, (mtu ?? 1500) - 32),
    windowsize: r.int(t, "tftp", "windowsize", 1, 65535) ?? 64,
    // The server runs at most 256 transfers at once; one address may hold all of them.
    max_per_client: r.int(t, "tftp", "max_per_client", 1, 256) ?? 4,
  };
}

/** `[http]`: the public URL follows the address and port. */
export function readHttp(t: Raw, r: ConfigReader, serverIp: string): Config["http"] {
  const port = r.int(t, "http", "port", 1, 65535) ?? 80;
  const address = r.ip(t, "http", "address") ?? serverIp;
  const host = address === "0.0.0.0" ? serverIp : address;
  const url = r.str(t, "http", "public_url") ?? `http://${host}${port === 80 ? "" : `:${port}`}`;
  return { port, address, public_url: url.replace(/\/+$/, "") };
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

/** One `[[machine]]`; `seen` catches a MAC listed twice. */
function readMachine(m: Raw, r: ConfigReader, seen: Set<Mac>): MachineConfig {
  const macText = r.str(m, "machine", "mac");
  if (!macText) r.fail("machine", "mac", 'every [[machine]] needs mac = "52:54:00:12:34:56"');
  const mac = parseMac(macText);
  if (!mac) r.fail("machine", "mac", `not a MAC address: ${JSON.stringify(macText)}`);
  if (seen.has(mac)) r.fail("machine", "mac", `${mac} appears in two [[machine]] entries`);
  seen.add(mac);
  const vars = m.vars ?? {};
  if (typeof vars !== "object" || Array.isArray(vars)) {
    r.fail("machine", "vars", 'expected a table, e.g. vars = { disk = "/dev/sda" }');
  }
  const hostname = r.str(m, "machine", "hostname");
  if (hostname !== undefined && !HOSTNAME.test(hostname)) {
    r.fail("machine", "hostname", `not a valid host name: ${JSON.stringify(hostname)}`);
  }
  return {
    mac,
    hostname,
    ip: r.ip(m, "machine", "ip"),
    os: r.str(m, "machine", "os"),
    class: r.str(m, "machine", "class"),
    vars: plainObject(vars) as Record<string, unknown>,
  };
}

/** Every `[[machine]]`. */
export function readMachines(raw: Raw, r: ConfigReader): MachineConfig[] {
  const list = raw.machine ?? [];
  if (!Array.isArray(list)) r.fail("", "machine", "expected [[machine]] tables");
  const seen = new Set<Mac>();
  return (list as Raw[]).map((m) => readMachine(m, r, seen));
}

/** smol-toml gives null-prototype tables; templates and deepEqual want plain objects. */
function plainObject(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plainObject);
  if (typeof v === "object" && v !== null && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainObject(x)]));
  }
  return v;
}
