/**
 * The DHCP service as `serve` runs it: the lease store of the pool, the policy of
 * `boot/dhcp_responder.ts` and the server loop of `protocols/dhcp/server.ts`, put together.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Logger } from "../log.ts";
import { Subnet } from "../net/ipv4.ts";
import type { Mac } from "../net/mac.ts";
import { interfaceInfo } from "../net/udp_socket.ts";
import { startDhcpServer } from "../protocols/dhcp/server.ts";
import type { BootfileOptions } from "../boot/bootfile.ts";
import { createDhcpHandler, type DhcpEvent } from "../boot/dhcp_responder.ts";
import type { ConfiguredOptions } from "../boot/dhcp_options.ts";
import { LeaseStore, poolExclusions } from "../state/leases.ts";

/** A known machine (`[[machine]]`): a reservation when it has an ip, a host name when named. */
export interface DhcpMachine {
  mac: Mac;
  ip?: string;
  hostname?: string;
  /** Its own options, over the network's. */
  options?: ConfiguredOptions;
}

/** Everything the DHCP service needs; `serve` maps config.toml onto this. */
export interface DhcpServiceOptions {
  /** The only interface DHCP ever answers on. */
  interface: string;
  mode: "server" | "proxy" | "auto" | "off";
  /** Our address (option 54, next-server); default the interface's first IPv4 address. */
  serverIp?: string;
  /** Default the interface's netmask. */
  netmask?: string;
  /** Dynamic pool, inclusive; required unless mode is "proxy" or "off". */
  range?: [string, string];
  /** Lease length in seconds. */
  leaseSeconds: number;
  router?: string;
  dns?: string[];
  domain?: string;
  /** `[dhcp.options]` and `force_options`. */
  options?: ConfiguredOptions;
  boot: BootfileOptions;
  machines?: DhcpMachine[];
  /** The shared database (state/db.ts); required unless mode is "proxy" or "off". */
  db?: DatabaseSync;
  /** The lease store, when the caller made it already (`createLeaseStore`). */
  leases?: LeaseStore;
  /** Answer `[[machine]]` entries only. */
  knownOnly?: boolean;
  /** New leases per second for strangers; default unlimited. */
  newClientRate?: number;
  logger: Logger;
  /** Every request's typed event (replies, releases, ignored requests). */
  onEvent?: (event: DhcpEvent) => void;
  /** Auto mode's listening time; see `startDhcpServer`. */
  probeSeconds?: number;
}

/** A running DHCP service. */
export interface DhcpService {
  readonly mode: "server" | "proxy" | "off";
  /** The lease store (undefined in proxy/off mode). */
  readonly leases?: LeaseStore;
  close(): Promise<void>;
}

/** The lease store for a pool: the range minus network, broadcast, server and router. */
export function createLeaseStore(
  db: DatabaseSync,
  o: {
    range: [string, string];
    serverIp: string;
    subnet: Subnet;
    router?: string;
    machines?: readonly DhcpMachine[];
    newClientRate?: number;
  },
): LeaseStore {
  return new LeaseStore(db, {
    range: o.range,
    exclude: poolExclusions(o.serverIp, o.subnet, o.router),
    reservations: (o.machines ?? []).flatMap((m) =>
      m.ip ? [{ mac: m.mac, ip: m.ip, hostname: m.hostname }] : []
    ),
    known: (o.machines ?? []).map((m) => m.mac),
    newClientRate: o.newClientRate,
  });
}

/** Starts DHCP on one interface (or logs that it is off); see `startDhcpServer`. */
export async function startDhcpService(o: DhcpServiceOptions): Promise<DhcpService> {
  if (o.mode === "off") {
    o.logger.info("dhcp", "DHCP is off", { interface: o.interface });
    return { mode: "off", close: () => Promise.resolve() };
  }
  const info = o.serverIp && o.netmask ? undefined : interfaceInfo(o.interface);
  const serverIp = o.serverIp ?? info!.address;
  const subnet = Subnet.of(serverIp, o.netmask ?? info!.netmask);
  let leases = o.leases;
  if (o.mode !== "proxy" && !leases) {
    if (!o.range || !o.db) throw new Error(`DHCP mode "${o.mode}" needs a range and a database`);
    leases = createLeaseStore(o.db, { ...o, range: o.range, serverIp, subnet });
  }
  const hostnames = new Map<Mac, string>(
    (o.machines ?? []).flatMap((m) => m.hostname ? [[m.mac, m.hostname]] : []),
  );
  const handler = createDhcpHandler({
    policy: {
      serverIp,
      subnet,
      router: o.router,
      dns: o.dns,
      domain: o.domain,
      leaseSeconds: o.leaseSeconds,
      boot: o.boot,
      leases,
      hostnames,
      knownOnly: o.knownOnly,
      known: new Set((o.machines ?? []).map((m) => m.mac)),
      options: o.options,
      machineOptions: new Map(
        (o.machines ?? []).flatMap((m) => m.options ? [[m.mac, m.options]] : []),
      ),
    },
    onEvent: o.onEvent,
    logger: o.logger,
  });
  const server = await startDhcpServer({
    interface: o.interface,
    mode: o.mode,
    serverIp,
    handler,
    logger: o.logger,
    probeSeconds: o.probeSeconds,
  });
  return {
    get mode() {
      return server.mode;
    },
    leases,
    close: () => server.close(),
  };
}
