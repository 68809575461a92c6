/**
 * The DHCP options configured in config.toml (`[dhcp.options]`, a subnet's, a machine's) and
 * which of them a reply carries: RFC 2132 §9.8 says a server answers the client's parameter
 * request list (option 55), so a configured option goes to clients that ask for it, or to every
 * client when it is forced (`force_options`, for clients that never ask).
 *
 * @module
 */
import { DhcpOption, type DhcpOptions } from "../protocols/dhcp/options.ts";
import type { ClientKind } from "../protocols/dhcp/client.ts";

/** Configured options of one level, or of several merged. */
export interface ConfiguredOptions {
  /** Option code → its bytes. */
  values: ReadonlyMap<number, Uint8Array>;
  /** Codes sent even to clients that do not ask for them. */
  force: ReadonlySet<number>;
}

/** Options of several levels, later winning (global < subnet < machine); forced codes joined. */
export function mergeOptions(...levels: (ConfiguredOptions | undefined)[]): ConfiguredOptions {
  const values = new Map<number, Uint8Array>();
  const force = new Set<number>();
  for (const level of levels) {
    for (const [code, bytes] of level?.values ?? []) values.set(code, bytes);
    for (const code of level?.force ?? []) force.add(code);
  }
  return { values, force };
}

/** What a boot client is told about its boot: the server decides it, whatever is configured. */
const BOOT_FIELDS = new Set<number>([
  DhcpOption.VendorSpecific,
  DhcpOption.VendorClassId,
  DhcpOption.TftpServerName,
  DhcpOption.BootfileName,
]);

/**
 * Adds the configured options to a reply. One the reply already carries (router, DNS, domain,
 * broadcast, 66, 67) is replaced: the server sends those to everyone. Any other goes only to a
 * client that asked for it in option 55, or when forced. PXE, iPXE and HTTP-boot clients keep
 * the server's boot fields (43, 60, 66, 67): a configured 43 for phones must not end PXE.
 */
export function addConfigured(
  reply: DhcpOptions,
  requested: readonly number[],
  configured: ConfiguredOptions,
  client: ClientKind | undefined,
): void {
  const asked = new Set(requested);
  const bootClient = client === "pxe" || client === "ipxe" || client === "http";
  for (const [code, bytes] of configured.values) {
    if (bootClient && BOOT_FIELDS.has(code)) continue;
    if (reply.has(code) || asked.has(code) || configured.force.has(code)) reply.set(code, bytes);
  }
}
