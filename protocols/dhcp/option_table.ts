/**
 * The DHCP options an operator may configure, by name and number, each with its value type
 * (RFC 2132 and later RFCs), and the encoding of a configured value into option bytes.
 *
 * Options that belong to the exchange itself (message type, server id, lease times, what the
 * client sends …) are in the table too, so that a name finds them, but they are refused with
 * the reason. A number the table does not know takes `"hex:…"` bytes or a text.
 *
 * @module
 */
import { ipv4ToBytes, isIpv4 } from "../../net/ipv4.ts";
import { encodeClasslessRoutes } from "./classless_routes.ts";
import { encodeDomainList } from "./domain_list.ts";

/** How an option's value is written in config.toml and encoded. */
export type OptionType =
  | "ip"
  | "ips"
  | "u8"
  | "u16"
  | "u32"
  | "i32"
  | "bool"
  | "string"
  | "domains"
  | "routes"
  | "hex";

/** A configured value, normalised: what `astralboot config` prints and reads back. */
export type OptionValue = string | number | boolean | string[] | [string, string][];

/** One option of the table. */
export interface OptionSpec {
  code: number;
  /** The config name (snake_case). */
  name: string;
  type: OptionType;
  /** Smallest value of an integer option where the RFC sets one (MTU 68). */
  min?: number;
  /** Why the option cannot be configured: the server or the client owns it. */
  owned?: string;
}

const T1_T2 = "derived from lease (T1 = 1/2, T2 = 7/8 of it)";
const CLIENT = "the client sends it, the server never does";

/** Every option known by name, by code. */
const TABLE: readonly OptionSpec[] = [
  {
    code: 1,
    name: "subnet_mask",
    type: "ip",
    owned: "follows from netmask (or the subnet's network)",
  },
  { code: 2, name: "time_offset", type: "i32" },
  { code: 3, name: "router", type: "ips" },
  { code: 4, name: "time_servers", type: "ips" },
  { code: 5, name: "name_servers", type: "ips" },
  { code: 6, name: "dns", type: "ips" },
  { code: 7, name: "log_servers", type: "ips" },
  { code: 8, name: "cookie_servers", type: "ips" },
  { code: 9, name: "lpr_servers", type: "ips" },
  { code: 10, name: "impress_servers", type: "ips" },
  { code: 11, name: "resource_location_servers", type: "ips" },
  { code: 12, name: "hostname", type: "string", owned: "comes from [[machine]] hostname" },
  { code: 13, name: "boot_size", type: "u16" },
  { code: 14, name: "merit_dump", type: "string" },
  { code: 15, name: "domain", type: "string" },
  { code: 16, name: "swap_server", type: "ip" },
  { code: 17, name: "root_path", type: "string" },
  { code: 18, name: "extensions_path", type: "string" },
  { code: 19, name: "ip_forwarding", type: "bool" },
  { code: 20, name: "non_local_source_routing", type: "bool" },
  { code: 22, name: "max_datagram_reassembly", type: "u16", min: 576 },
  { code: 23, name: "default_ttl", type: "u8", min: 1 },
  { code: 24, name: "path_mtu_aging_timeout", type: "u32" },
  { code: 26, name: "mtu", type: "u16", min: 68 },
  { code: 27, name: "all_subnets_local", type: "bool" },
  { code: 28, name: "broadcast", type: "ip" },
  { code: 29, name: "perform_mask_discovery", type: "bool" },
  { code: 30, name: "mask_supplier", type: "bool" },
  { code: 31, name: "router_discovery", type: "bool" },
  { code: 32, name: "router_solicitation_address", type: "ip" },
  { code: 34, name: "trailer_encapsulation", type: "bool" },
  { code: 35, name: "arp_cache_timeout", type: "u32" },
  { code: 36, name: "ethernet_encapsulation", type: "bool" },
  { code: 37, name: "tcp_default_ttl", type: "u8", min: 1 },
  { code: 38, name: "tcp_keepalive_interval", type: "u32" },
  { code: 39, name: "tcp_keepalive_garbage", type: "bool" },
  { code: 40, name: "nis_domain", type: "string" },
  { code: 41, name: "nis_servers", type: "ips" },
  { code: 42, name: "ntp", type: "ips" },
  { code: 43, name: "vendor_specific", type: "hex" },
  { code: 44, name: "netbios_name_servers", type: "ips" },
  { code: 45, name: "netbios_dd_servers", type: "ips" },
  { code: 46, name: "netbios_node_type", type: "u8" },
  { code: 47, name: "netbios_scope", type: "string" },
  { code: 48, name: "font_servers", type: "ips" },
  { code: 49, name: "x_display_managers", type: "ips" },
  { code: 50, name: "requested_ip", type: "ip", owned: CLIENT },
  { code: 51, name: "lease_time", type: "u32", owned: "set by lease" },
  { code: 52, name: "overload", type: "u8", owned: "the encoder sets it when options overflow" },
  { code: 53, name: "message_type", type: "u8", owned: "the server's own: the message type" },
  { code: 54, name: "server_id", type: "ip", owned: "the server's own: its address" },
  { code: 55, name: "parameter_request_list", type: "hex", owned: CLIENT },
  { code: 56, name: "message", type: "string", owned: "the server's own: why it sent a NAK" },
  { code: 57, name: "max_message_size", type: "u16", owned: CLIENT },
  { code: 58, name: "renewal_time", type: "u32", owned: T1_T2 },
  { code: 59, name: "rebinding_time", type: "u32", owned: T1_T2 },
  {
    code: 60,
    name: "vendor_class",
    type: "string",
    owned: "the server's own: PXEClient or HTTPClient for boot clients",
  },
  { code: 61, name: "client_id", type: "hex", owned: CLIENT },
  { code: 62, name: "netware_domain", type: "string" },
  { code: 63, name: "netware_options", type: "hex" },
  { code: 64, name: "nisplus_domain", type: "string" },
  { code: 65, name: "nisplus_servers", type: "ips" },
  { code: 66, name: "tftp_server", type: "string" },
  { code: 67, name: "bootfile", type: "string" },
  { code: 68, name: "mobile_ip_home_agents", type: "ips" },
  { code: 69, name: "smtp_servers", type: "ips" },
  { code: 70, name: "pop3_servers", type: "ips" },
  { code: 71, name: "nntp_servers", type: "ips" },
  { code: 72, name: "www_servers", type: "ips" },
  { code: 73, name: "finger_servers", type: "ips" },
  { code: 74, name: "irc_servers", type: "ips" },
  { code: 75, name: "streettalk_servers", type: "ips" },
  { code: 76, name: "stda_servers", type: "ips" },
  {
    code: 82,
    name: "relay_agent_info",
    type: "hex",
    owned: "the relay's own: the server echoes it",
  },
  { code: 93, name: "client_arch", type: "hex", owned: CLIENT },
  { code: 94, name: "client_ndi", type: "hex", owned: CLIENT },
  { code: 97, name: "client_uuid", type: "hex", owned: "the client's own: the server echoes it" },
  { code: 100, name: "tz_posix", type: "string" },
  { code: 101, name: "tz_name", type: "string" },
  { code: 108, name: "ipv6_only_preferred", type: "u32" },
  { code: 114, name: "captive_portal", type: "string" },
  { code: 119, name: "domain_search", type: "domains" },
  { code: 121, name: "classless_routes", type: "routes" },
  { code: 150, name: "tftp_servers", type: "ips" },
  { code: 209, name: "pxelinux_config", type: "string" },
  { code: 210, name: "pxelinux_path_prefix", type: "string" },
  { code: 211, name: "pxelinux_reboot_time", type: "u32" },
  { code: 249, name: "ms_classless_routes", type: "routes" },
  { code: 252, name: "wpad", type: "string" },
];

const BY_CODE = new Map(TABLE.map((s) => [s.code, s]));
const BY_NAME = new Map(TABLE.map((s) => [s.name, s]));

/** A configured option that cannot be encoded: the message says what was expected. */
export class OptionValueError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "OptionValueError";
  }
}

/** The table's options, by code (for documentation and tests). */
export function knownOptions(): readonly OptionSpec[] {
  return TABLE;
}

/**
 * The option a config key names: a name of the table or a number 1..254 (an unknown number
 * gets type `hex`, which also takes a text). Throws {@linkcode OptionValueError} for unknown
 * names, numbers outside 1..254 and options the server or the client owns.
 */
export function optionSpec(key: string): OptionSpec {
  const spec = /^\d+$/.test(key) ? byNumber(Number(key)) : BY_NAME.get(key);
  if (!spec) {
    const near = nearestName(key);
    throw new OptionValueError(
      `unknown DHCP option; use a name${
        near ? ` (did you mean ${near}?)` : " such as ntp or domain_search"
      } or a number 1..254`,
    );
  }
  if (spec.owned) {
    throw new OptionValueError(`option ${spec.code} (${spec.name}) cannot be set: ${spec.owned}`);
  }
  return spec;
}

function byNumber(code: number): OptionSpec | undefined {
  if (code < 1 || code > 254) return undefined;
  return BY_CODE.get(code) ?? { code, name: String(code), type: "hex" };
}

/** The table's name closest to `key` (at most two edits away), for "did you mean". */
function nearestName(key: string): string | undefined {
  let best: [string, number] | undefined;
  for (const name of BY_NAME.keys()) {
    const d = editDistance(key, name);
    if (d <= 2 && (!best || d < best[1])) best = [name, d];
  }
  return best?.[0];
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        row[j]! + 1,
        next[j - 1]! + 1,
        row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length]!;
}

/** A configured option, checked and encoded. */
export interface EncodedOption {
  spec: OptionSpec;
  /** The value as `astralboot config` prints it. */
  value: OptionValue;
  bytes: Uint8Array;
}

/** Longest value accepted: longer ones fit no reply (RFC 2131 lets a client take 576 bytes). */
export const MAX_OPTION_BYTES = 1024;

const encoder = new TextEncoder();
/** Bytes of the fixed-size types, checked on `hex:` values too. */
const FIXED_SIZE: Partial<Record<OptionType, number>> = {
  ip: 4,
  u8: 1,
  u16: 2,
  u32: 4,
  i32: 4,
  bool: 1,
};
const INT_RANGE: Partial<Record<OptionType, [number, number]>> = {
  u8: [0, 0xff],
  u16: [0, 0xffff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

/**
 * Encodes one configured option (`key` as in {@linkcode optionSpec}). Any option takes
 * `"hex:0102…"` raw bytes; fixed-size types check their length. Throws
 * {@linkcode OptionValueError} naming what was expected.
 */
export function encodeOption(key: string, value: unknown): EncodedOption {
  const spec = optionSpec(key);
  let out: { value: OptionValue; bytes: Uint8Array };
  try {
    out = typeof value === "string" && value.startsWith("hex:")
      ? fromHex(spec, value)
      : encodeTyped(spec, value);
  } catch (e) {
    if (e instanceof OptionValueError) throw e;
    if (e instanceof RangeError) throw new OptionValueError(e.message, { cause: e });
    throw e;
  }
  if (out.bytes.length > MAX_OPTION_BYTES) {
    throw new OptionValueError(
      `${out.bytes.length} bytes encoded, at most ${MAX_OPTION_BYTES} fit in a reply`,
    );
  }
  return { spec, ...out };
}

/** Encodes a whole options table (keys already checked) into code → bytes. */
export function encodeOptions(
  values: Readonly<Record<string, OptionValue>>,
): Map<number, Uint8Array> {
  return new Map(
    Object.entries(values).map(([k, v]) => {
      const o = encodeOption(k, v);
      return [o.spec.code, o.bytes];
    }),
  );
}

function fromHex(spec: OptionSpec, text: string): { value: OptionValue; bytes: Uint8Array } {
  const digits = text.slice(4).replace(/[:\s]/g, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) {
    throw new OptionValueError(
      `expected "hex:" and pairs of hex digits like "hex:0a0b0c" (colons allowed), got ${
        JSON.stringify(text)
      }`,
    );
  }
  const bytes = Uint8Array.from(digits.match(/../g) ?? [], (h) => parseInt(h, 16));
  const size = FIXED_SIZE[spec.type];
  const multiple = spec.type === "ips" ? 4 : undefined;
  if (
    (size !== undefined && bytes.length !== size) ||
    (multiple !== undefined && (bytes.length === 0 || bytes.length % multiple !== 0))
  ) {
    throw new OptionValueError(
      `${bytes.length} bytes of hex, but option ${spec.code} (${spec.name}) takes ${
        size ?? "a multiple of 4"
      }`,
    );
  }
  return { value: `hex:${digits.toLowerCase()}`, bytes };
}

function shown(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object" && v !== null) return "a table";
  return `${typeof v} ${JSON.stringify(typeof v === "bigint" ? Number(v) : v)}`;
}

function expected(what: string, v: unknown): OptionValueError {
  return new OptionValueError(`expected ${what}, got ${shown(v)}`);
}

function ip(v: unknown): string {
  if (typeof v !== "string" || !isIpv4(v)) throw expected('an IPv4 address like "10.0.0.1"', v);
  return v;
}

function list(v: unknown, what: string): unknown[] {
  const items = typeof v === "string" ? [v] : v;
  if (!Array.isArray(items) || items.length === 0) throw expected(what, v);
  return items;
}

function encodeTyped(spec: OptionSpec, v: unknown): { value: OptionValue; bytes: Uint8Array } {
  switch (spec.type) {
    case "ip": {
      const a = ip(v);
      return { value: a, bytes: ipv4ToBytes(a) };
    }
    case "ips": {
      const ips = list(v, 'IPv4 addresses like ["10.0.0.1"]').map((x) => {
        try {
          return ip(x);
        } catch {
          throw expected('IPv4 addresses like ["10.0.0.1"]', v);
        }
      });
      const bytes = new Uint8Array(ips.length * 4);
      ips.forEach((a, i) => bytes.set(ipv4ToBytes(a), i * 4));
      return { value: ips, bytes };
    }
    case "u8":
    case "u16":
    case "u32":
    case "i32":
      return integer(spec, v);
    case "bool":
      if (typeof v !== "boolean") throw expected("true or false", v);
      return { value: v, bytes: Uint8Array.of(v ? 1 : 0) };
    case "string":
      if (typeof v !== "string" || v === "") throw expected("a text", v);
      return { value: v, bytes: encoder.encode(v) };
    case "hex":
      // A number without a type: text is sent as it is; bytes need "hex:".
      if (typeof v !== "string") throw expected('"hex:0102…" or a text', v);
      return { value: v, bytes: encoder.encode(v) };
    case "domains": {
      const names = list(v, 'domain names like ["lab", "example.org"]');
      if (!names.every((n) => typeof n === "string")) {
        throw expected('domain names like ["lab", "example.org"]', v);
      }
      return { value: names as string[], bytes: encodeDomainList(names as string[]) };
    }
    case "routes":
      return routes(v);
  }
}

function integer(spec: OptionSpec, v: unknown): { value: OptionValue; bytes: Uint8Array } {
  const n = typeof v === "bigint" ? Number(v) : v;
  const [min, max] = INT_RANGE[spec.type]!;
  const low = spec.min ?? min;
  if (typeof n !== "number" || !Number.isInteger(n) || n < low || n > max) {
    throw expected(`a whole number in ${low}..${max}`, v);
  }
  const size = FIXED_SIZE[spec.type]!;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  if (size === 1) view.setUint8(0, n);
  else if (size === 2) view.setUint16(0, n);
  else if (spec.type === "i32") view.setInt32(0, n);
  else view.setUint32(0, n);
  return { value: n, bytes };
}

function routes(v: unknown): { value: OptionValue; bytes: Uint8Array } {
  const what = 'routes like [["10.1.0.0/16", "10.0.0.254"], ["0.0.0.0/0", "10.0.0.1"]]';
  if (!Array.isArray(v) || v.length === 0) throw expected(what, v);
  const pairs = v.map((r): [string, string] => {
    if (
      !Array.isArray(r) || r.length !== 2 || typeof r[0] !== "string" || typeof r[1] !== "string"
    ) {
      throw expected(what, v);
    }
    return [r[0], r[1]];
  });
  for (const [, router] of pairs) {
    if (!isIpv4(router)) {
      throw new OptionValueError(`router ${JSON.stringify(router)} is not an IPv4 address`);
    }
  }
  const bytes = encodeClasslessRoutes(
    pairs.map(([destination, router]) => ({ destination, router })),
  );
  return { value: pairs, bytes };
}
