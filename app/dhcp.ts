/**
 * The DHCP service as `serve` runs it: a lease store per served subnet (the interface's and
 * those behind relays), the policy of `boot/dhcp_responder.ts` and the server loop of
 * `protocols/dhcp/server.ts`, put together.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Logger } from "../log.ts";
import { numberToIpv4, Subnet } from "../net/ipv4.ts";
import type { Mac } from "../net/mac.ts";
import { interfaceInfo } from "../net/udp_socket.ts";
import { startDhcpServer } from "../protocols/dhcp/server.ts";
import type { BootfileOptions } from "../boot/bootfile.ts";
import { createDhcpHandler, type DhcpEvent, type DhcpScope } from "../boot/dhcp_responder.ts";
import { type ConfiguredOptions, mergeOptions } from "../boot/dhcp_options.ts";
import { LeaseStore, poolExclusions } from "../state/leases.ts";
import { LeasePools } from "../state/lease_pools.ts";
import { LeaseTable } from "../state/lease_table.ts";

/** A known machine (`[[machine]]`): a reservation when it has an ip, a host name when named. */
export interface DhcpMachine {
  mac: Mac;
  ip?: string;
  hostname?: string;
  /** Its own options, over the network's. */
  options?: ConfiguredOptions;
}

/** A network behind a DHCP relay (`[[dhcp.subnet]]`). */
export interface DhcpSubnet {
  subnet: Subnet;
  /** Dynamic pool, inclusive. */
  range: [string, string];
  router: string;
  dns?: string[];
  domain?: string;
  leaseSeconds: number;
  /** Its own options, over the service's. */
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
  /** Networks behind relays, each with its own pool. */
  subnets?: DhcpSubnet[];
  boot: BootfileOptions;
  machines?: DhcpMachine[];
  /**
   * The database (state/db.ts) the lease table is kept in; required unless mode is "proxy" or
   * "off". A handle of its own that never waits for a lock (`busyTimeoutMs: 0`): a busy
   * database then delays ACKs instead of freezing the server (`state/lease_table.ts`).
   */
  db?: DatabaseSync;
  /** The lease stores, when the caller made them already (`createLeasePools`). */
  leases?: LeasePools;
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
  /** The lease stores (undefined in proxy/off mode). */
  readonly leases?: LeasePools;
  /**
   * Answers from now on as `o` says (a reload): machines, options, subnets, lease stores. The
   * interface and the mode stay as they were started.
   */
  update(o: DhcpServiceOptions): void;
  close(): Promise<void>;
}

/**
 * A lease store per served subnet, the interface's first: each pool is its range minus
 * network, broadcast, server and router. Every store knows every reservation (one outside
 * its subnet is another pool's) and every `[[machine]]`.
 */
export function createLeasePools(
  db: DatabaseSync,
  o: {
    range: [string, string];
    serverIp: string;
    subnet: Subnet;
    router?: string;
    subnets?: readonly Pick<DhcpSubnet, "subnet" | "range" | "router">[];
    machines?: readonly DhcpMachine[];
    newClientRate?: number;
    /** Told of a lease row the database refused (the table's first user sets it). */
    logger?: Logger;
  },
): LeasePools {
  // Made here first, so that it has its hook: a refused row nobody waits for (an offer, a
  // release) is otherwise seen nowhere.
  const logger = o.logger;
  LeaseTable.of(db, {
    onRefused: logger &&
      ((row, error) =>
        logger.warn("dhcp", "lease row refused by the database: left as it was on disk", {
          ip: numberToIpv4(row.ipnum),
          mac: row.mac,
          state: row.state,
          error,
        })),
  });
  const reservations = (o.machines ?? []).flatMap((m) =>
    m.ip ? [{ mac: m.mac, ip: m.ip, hostname: m.hostname }] : []
  );
  const pool = (subnet: Subnet, range: [string, string], router?: string) => ({
    subnet,
    store: new LeaseStore(db, {
      range,
      subnet,
      exclude: poolExclusions(o.serverIp, subnet, router),
      reservations,
      known: (o.machines ?? []).map((m) => m.mac),
      newClientRate: o.newClientRate,
    }),
  });
  return new LeasePools([
    pool(o.subnet, o.range, o.router),
    ...(o.subnets ?? []).map((s) => pool(s.subnet, s.range, s.router)),
  ]);
}

/** Starts DHCP on one interface (or logs that it is off); see `startDhcpServer`. */
export async function startDhcpService(o: DhcpServiceOptions): Promise<DhcpService> {
  if (o.mode === "off") {
    o.logger.info("dhcp", "DHCP is off", { interface: o.interface });
    return { mode: "off", update: () => {}, close: () => Promise.resolve() };
  }
  const info = o.serverIp && o.netmask ? undefined : interfaceInfo(o.interface);
  const serverIp = o.serverIp ?? info!.address;
  const subnet = Subnet.of(serverIp, o.netmask ?? info!.netmask);
  let current = handlerFor(o, serverIp, subnet);
  const server = await startDhcpServer({
    interface: o.interface,
    mode: o.mode,
    serverIp,
    // Through `current`, so that a reload changes the answers, not the sockets.
    handler: (req, ctx) => current.handler(req, ctx),
    logger: o.logger,
    probeSeconds: o.probeSeconds,
  });
  return {
    get mode() {
      return server.mode;
    },
    get leases() {
      return current.leases;
    },
    update: (next) => {
      current = handlerFor({ ...next, interface: o.interface, mode: o.mode }, serverIp, subnet);
    },
    close: async () => {
      await server.close();
      try {
        // Offers and releases ride along with the next ACK's commit; at the end there is none.
        current.leases?.flush();
      } catch (e) {
        o.logger.warn("dhcp", "lease changes not saved at shutdown", { error: e });
      }
    },
  };
}

/** The handler (and its lease stores) of `o`. */
function handlerFor(o: DhcpServiceOptions, serverIp: string, subnet: Subnet) {
  let leases = o.leases;
  if (o.mode !== "proxy" && !leases) {
    if (!o.range || !o.db) throw new Error(`DHCP mode "${o.mode}" needs a range and a database`);
    leases = createLeasePools(o.db, { ...o, range: o.range, serverIp, subnet });
  }
  const subnets = (o.subnets ?? []).map((s): DhcpScope => ({
    subnet: s.subnet,
    router: s.router,
    dns: s.dns,
    domain: s.domain,
    leaseSeconds: s.leaseSeconds,
    leases: leases?.storeFor(s.subnet.network),
    options: mergeOptions(o.options, s.options),
  }));
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
      leases: leases?.storeFor(serverIp),
      subnets,
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
  return { handler, leases };
}
