/**
 * The implied config as TOML: every key with its effective value and a one-line comment
 * (`astralboot config`, and the start of the server log).
 *
 * @module
 */
import type { Config, DhcpOptionValues } from "./config.ts";
import { formatByteSize } from "./config_reader.ts";
import { optionSpec } from "../protocols/dhcp/option_table.ts";
import { SECURE_BOOT_FILES } from "../boot/secure_boot.ts";

function toml(v: unknown): string {
  if (v === undefined) return '""';
  if (Array.isArray(v)) return `[${v.map(toml).join(", ")}]`;
  if (typeof v === "object" && v !== null) {
    return `{ ${
      Object.entries(v).map(([k, x]) =>
        `${/^[\w-]+$/.test(k) ? k : JSON.stringify(k)} = ${toml(x)}`
      ).join(", ")
    } }`;
  }
  return JSON.stringify(v);
}

type Line = (key: string, value: unknown, comment: string, unset?: boolean) => void;

function top(c: Config, line: Line): void {
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
}

/** A comment, with where its value came from when a default derived it. */
function from(c: Config, key: string, comment: string): string {
  const origin = c.origins[key];
  return origin ? `${comment}; ${origin}` : comment;
}

function dhcp(c: Config, line: Line): void {
  const d = c.dhcp;
  line(
    "mode",
    d.mode,
    "server: addresses + boot info; proxy: boot info only; auto: proxy if another server answers; off",
  );
  line(
    "range",
    d.range,
    "first and last address handed out (minus network, broadcast, server, router)",
  );
  line("lease", d.lease, 'lease time in seconds (or "24h")');
  line(
    "router",
    d.router ?? "",
    from(
      c,
      "dhcp.router",
      `default gateway for clients (original: Gateway)${d.router ? "" : ": none"}`,
    ),
  );
  line(
    "dns",
    d.dns,
    from(
      c,
      "dhcp.dns",
      `DNS servers for clients (original: DNSServer)${d.dns.length ? "" : ": none"}`,
    ),
  );
  line(
    "domain",
    d.domain ?? "",
    from(
      c,
      "dhcp.domain",
      `domain for clients, the zone [dns] answers for (original: Domain)${
        d.domain ? "" : ": none"
      }`,
    ),
  );
  line("efi_loader", d.efi_loader, "first stage for x86-64 UEFI (tftp/<name>)");
  line("arm64_loader", d.arm64_loader, "first stage for ARM64 UEFI (tftp/<name>)");
  line(
    "router_advertisement",
    d.router_advertisement,
    "answer IPv6 router solicitations as a non-router (no route, no address): iPXE stops waiting ~15 s for one",
  );
  line("known_only", d.known_only, "hand out addresses to [[machine]] entries only");
  line(
    "new_client_rate",
    d.new_client_rate,
    "new leases per second for machines no [[machine]] names (bursts of 5 s' worth)",
  );
  line(
    "force_options",
    d.force_options,
    "options sent even to clients that do not ask for them in option 55",
  );
}

/** A key as TOML writes it: bare when it can be, quoted otherwise (`"224"` reads better quoted). */
function tomlKey(k: string): string {
  return /^[A-Za-z_][\w-]*$/.test(k) ? k : JSON.stringify(k);
}

/** An options table as its own section, one option a line with its code and type. */
function options(
  name: string,
  values: DhcpOptionValues,
  line: Line,
  section: (name: string) => void,
  out: string[],
): void {
  section(name);
  const entries = Object.entries(values).sort(([a], [b]) =>
    optionSpec(a).code - optionSpec(b).code
  );
  if (entries.length === 0) {
    out.push('# none: options by name or number, e.g. ntp = ["10.0.0.1"] (see README)');
  }
  for (const [key, value] of entries) {
    const spec = optionSpec(key);
    line(tomlKey(key), value, `option ${spec.code} (${spec.type})`);
  }
}

function subnets(c: Config, line: Line, section: (name: string) => void, out: string[]): void {
  for (const s of c.dhcp.subnets) {
    section("[dhcp.subnet]");
    line("network", s.network, "a network behind a DHCP relay (the relay's giaddr is in it)");
    line("range", s.range, "first and last address handed out there");
    line("router", s.router, "its clients' gateway, and their way to this server");
    line("dns", s.dns, "DNS servers for its clients ([dhcp] dns unless set)");
    line(
      "domain",
      s.domain ?? "",
      "domain name ([dhcp] domain unless set)",
      s.domain === undefined,
    );
    line("lease", s.lease, "lease time in seconds ([dhcp] lease unless set)");
    line("force_options", s.force_options, "options sent unasked in this subnet");
    options("dhcp.subnet.options", s.options, line, section, out);
  }
}

function dns(c: Config, line: Line): void {
  const d = c.dns;
  line(
    "enabled",
    d.enabled,
    from(c, "dns.enabled", `answer <host>.${c.dhcp.domain ?? "<domain>"} and forward the rest`),
  );
  line(
    "upstream",
    d.upstream,
    from(c, "dns.upstream", "resolvers asked for other names, in order (original: UpstreamDNS)"),
  );
  line("ttl", d.ttl, "seconds answers may be cached (short: leases come and go)");
  line("port", d.port, "DNS port, UDP and TCP, on server_ip only");
}

function services(c: Config, line: Line, section: (name: string) => void): void {
  section("tftp");
  line("port", c.tftp.port, "TFTP port");
  line(
    "max_blksize",
    c.tftp.max_blksize,
    from(c, "tftp.max_blksize", "largest block size granted (one frame of the link)"),
  );
  line("windowsize", c.tftp.windowsize, "largest RFC 7440 window granted");
  line(
    "max_per_client",
    c.tftp.max_per_client,
    "transfers at once from one client address; more get an error (firmware asks one at a time)",
  );
  section("http");
  line("port", c.http.port, "HTTP port for scripts, menus and images");
  line("address", c.http.address, "address HTTP listens on");
  line("public_url", c.http.public_url, "base URL handed to clients");
  line(
    "idle_timeout",
    c.http.idle_timeout,
    'seconds (or "15s") a connection may sit with no request in flight before it is closed',
  );
  line(
    "max_connections",
    c.http.max_connections,
    "connections in all; beyond, idle ones are closed (longest idle first)",
  );
  line(
    "max_per_client",
    c.http.max_per_client,
    "connections from one address; beyond, its idle ones are closed",
  );
  section("ipfs");
  line("gateways", c.ipfs.gateways, "trustless gateways, tried in order (every block is verified)");
  line("timeout", c.ipfs.timeout, "seconds before a gateway request fails over");
  line(
    "cache_max",
    formatByteSize(c.ipfs.cache_max),
    'most the cache under data_dir may hold ("500MiB", bytes; 0: no limit); least recently used files go first',
  );
  line(
    "min_rate",
    formatByteSize(c.ipfs.min_rate),
    "slowest average a second a file over 1 MiB is given time for (0: no limit); slower, its download fails and frees its slot",
  );
  section("boot");
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
  line(
    "secure_boot",
    c.boot.secure_boot,
    `x86-64 UEFI PXE gets shim, then GRUB and signed kernels; the tree needs ${
      SECURE_BOOT_FILES.map((f) => `${f.path} (${f.source})`).join(", ")
    }`,
  );
  section("api");
  line("token_file", c.api.token_file, "the admin token (made on first start, mode 0600)");
}

function machines(
  c: Config,
  line: Line,
  section: (name: string) => void,
  hideVars: boolean,
  out: string[],
): void {
  for (const m of c.machines) {
    section("[machine]");
    if (m.mac) line("mac", m.mac, "this machine's MAC address");
    if (m.uuid) line("uuid", m.uuid, "the SMBIOS UUID it reports (bound to the first MAC)");
    if (m.hostname) line("hostname", m.hostname, "its host name");
    if (m.ip) line("ip", m.ip, "its reserved address");
    if (m.os) line("os", m.os, "OS it boots");
    if (m.class) line("class", m.class, "class (variant) of that OS");
    if (Object.keys(m.vars).length > 0) {
      const vars = hideVars
        ? Object.fromEntries(Object.keys(m.vars).map((k) => [k, "(hidden)"]))
        : m.vars;
      line("vars", vars, "template variables for this machine");
    }
    if (m.force_options) line("force_options", m.force_options, "its options sent unasked");
    if (m.options) options("machine.options", m.options, line, section, out);
  }
}

/**
 * The implied config as TOML: every key with its effective value and a one-line comment.
 * Unset optional keys are printed commented out. `hideVars` prints the names of `[[machine]]`
 * vars without their values, for the log (they hold password hashes and keys).
 */
export function formatConfig(c: Config, hide: { hideVars?: boolean } = {}): string {
  const out: string[] = [
    "# Astral Boot: the implied config (every key, its effective value; [where it was set])",
  ];
  let current = "";
  const line: Line = (key, value, comment, unset = false) => {
    const text = `${unset ? "# " : ""}${key} = ${toml(value)}`;
    const where = current.startsWith("[")
      ? undefined
      : c.sources[current ? `${current}.${key}` : key];
    out.push(`${text.padEnd(44)} # ${comment}${where ? ` [${where}]` : ""}`);
  };
  const section = (name: string) => {
    current = name;
    out.push("", `[${name}]`);
  };
  top(c, line);
  section("dhcp");
  dhcp(c, line);
  options("dhcp.options", c.dhcp.options, line, section, out);
  subnets(c, line, section, out);
  section("dns");
  dns(c, line);
  services(c, line, section);
  machines(c, line, section, hide.hideVars ?? false, out);
  return out.join("\n") + "\n";
}
