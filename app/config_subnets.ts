/**
 * `[[dhcp.subnet]]`: networks behind DHCP relays, each with its pool and what its clients are
 * told. The interface's own network stays the default one (`[dhcp] range` …); a subnet inherits
 * `dns`, `domain` and `lease` from `[dhcp]`, and its options come over `[dhcp.options]`.
 *
 * @module
 */
import { ipv4ToNumber, Subnet } from "../net/ipv4.ts";
import type { ConfigReader, Raw, TableIndex } from "./config_reader.ts";
import {
  type DhcpOptionValues,
  readForceOptions,
  readOptions,
  refuseTwice,
} from "./config_options.ts";

/** One `[[dhcp.subnet]]`, every default filled in. */
export interface DhcpSubnetConfig {
  /** `10.1.0.0/24`. */
  network: string;
  /** First and last address handed out; default every host of the network. */
  range: [string, string];
  /** Required: the relay's network reaches this server through it (kept out of the pool). */
  router: string;
  dns: string[];
  domain?: string;
  lease: number;
  options: DhcpOptionValues;
  force_options: string[];
}

/** What a subnet inherits from `[dhcp]`. */
export interface SubnetDefaults {
  dns: string[];
  domain?: string;
  lease: number;
}

const SECTION = "dhcp.subnet";

/** The `[[dhcp.subnet]]` tables of `[dhcp]`, as a list (for unknown-key checks too). */
export function subnetTables(dhcp: Raw, r: ConfigReader): Raw[] {
  const list = dhcp.subnet ?? [];
  if (!Array.isArray(list) || list.some((t) => typeof t !== "object" || Array.isArray(t))) {
    r.fail("dhcp", "subnet", "expected [[dhcp.subnet]] tables, one per network behind a relay");
  }
  return list as Raw[];
}

/** Every `[[dhcp.subnet]]`; none overlaps another or `own` (the interface's, when known). */
export function readSubnets(
  dhcp: Raw,
  r: ConfigReader,
  own: Subnet | undefined,
  defaults: SubnetDefaults,
): DhcpSubnetConfig[] {
  const read: { config: DhcpSubnetConfig; subnet: Subnet }[] = [];
  subnetTables(dhcp, r).forEach((t, index) => {
    const at = { array: SECTION, index };
    const subnet = readNetwork(t, r, at);
    const clash = own && overlaps(own, subnet)
      ? `the interface's network ${own}`
      : read.find((x) => overlaps(x.subnet, subnet))?.config.network;
    if (clash) r.fail(SECTION, "network", `${subnet} overlaps ${clash}`, at);
    const router = r.ip(t, SECTION, "router");
    if (router === undefined) {
      r.fail(
        SECTION,
        "router",
        `every [[dhcp.subnet]] needs router = "…": its clients reach this server through it`,
        at,
      );
    }
    if (!subnet.contains(router)) {
      r.fail(SECTION, "router", `${router} is not inside ${subnet}`, at);
    }
    const options = readOptions(t, r, { section: SECTION, at });
    refuseTwice(t, options, ["router", "dns", "domain"], r, { section: SECTION, at });
    read.push({
      subnet,
      config: {
        network: subnet.toString(),
        range: readRange(t, r, subnet, at),
        router,
        dns: r.ips(t, SECTION, "dns") ?? defaults.dns,
        domain: r.str(t, SECTION, "domain") ?? defaults.domain,
        lease: r.seconds(t, SECTION, "lease") ?? defaults.lease,
        options,
        force_options: readForceOptions(t, r, { section: SECTION, at }),
      },
    });
  });
  return read.map((x) => x.config);
}

function overlaps(a: Subnet, b: Subnet): boolean {
  return a.contains(b.network) || b.contains(a.network);
}

/** `network`: a CIDR with the host bits clear and room for hosts. */
function readNetwork(t: Raw, r: ConfigReader, at: TableIndex): Subnet {
  const text = r.str(t, SECTION, "network");
  if (text === undefined) {
    r.fail(SECTION, "network", 'every [[dhcp.subnet]] needs network = "10.1.0.0/24"', at);
  }
  let subnet: Subnet;
  try {
    subnet = Subnet.parse(text);
  } catch {
    return r.fail(
      SECTION,
      "network",
      `expected a network like "10.1.0.0/24", got ${JSON.stringify(text)}`,
      at,
    );
  }
  if (subnet.network !== text.split("/")[0]) {
    r.fail(SECTION, "network", `${text} has host bits set; did you mean "${subnet}"?`, at);
  }
  if (subnet.prefix > 30) {
    r.fail(SECTION, "network", `${text} has no room for clients (at most /30)`, at);
  }
  return subnet;
}

/** `range`: two addresses inside the network, else every host of it. */
function readRange(t: Raw, r: ConfigReader, subnet: Subnet, at: TableIndex): [string, string] {
  const list = r.ips(t, SECTION, "range");
  if (list === undefined) return subnet.hosts;
  if (list.length !== 2) {
    r.fail(SECTION, "range", `expected two addresses ["first", "last"], got ${list.length}`, at);
  }
  const [a, b] = list as [string, string];
  if (ipv4ToNumber(a) > ipv4ToNumber(b)) {
    r.fail(SECTION, "range", `first address ${a} is after last ${b}`, at);
  }
  if (!subnet.contains(a) || !subnet.contains(b)) {
    r.fail(SECTION, "range", `${a}..${b} is not inside ${subnet}`, at);
  }
  return [a, b];
}
