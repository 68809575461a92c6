/**
 * Which host name has which address, read live from the config and the lease table on every
 * query, so a lease resolves the moment it is bound and stops when it ends.
 *
 * - `astralboot` is this server.
 * - A `[[machine]]` with a host name goes by it, at its reserved address or else its bound
 *   lease; nobody else can take that name (or `astralboot`) by sending it in DHCP.
 * - Any other client with a bound lease goes by the host name it sent (option 12, cleaned to
 *   letters, digits and hyphens). When two claim one name, the lease that ends last has it.
 *
 * Forward and reverse agree: an address is named only by the name that resolves to it.
 *
 * @module
 */
import type { Mac } from "../net/mac.ts";
import type { Lease } from "../state/leases.ts";

/** The host name of this server in its own domain (the original's `astralboot.<domain>`). */
export const SERVER_HOST = "astralboot";

/** What the names are read from; `state/leases.ts` `LeaseStore` is one. */
export interface NameLeases {
  boundAt(ip: string): Lease | null;
  boundByHostname(hostname: string): Lease[];
  current(mac: Mac): Lease | null;
}

/** A `[[machine]]` as far as names go. */
export interface NamedMachine {
  mac: Mac;
  hostname?: string;
  ip?: string;
}

/** Host names and addresses of the served link; see the module doc. */
export class HostNames {
  readonly #byName = new Map<string, NamedMachine>();
  readonly #byMac = new Map<Mac, NamedMachine>();
  readonly #byIp = new Map<string, NamedMachine>();

  constructor(
    readonly serverIp: string,
    machines: readonly NamedMachine[],
    readonly leases?: NameLeases,
  ) {
    for (const m of machines) {
      if (m.hostname) this.#byName.set(m.hostname.toLowerCase(), m);
      this.#byMac.set(m.mac, m);
      if (m.ip) this.#byIp.set(m.ip, m);
    }
  }

  /** The address of a host name (one label, any case), or null. */
  addressOf(host: string): string | null {
    const key = host.toLowerCase();
    if (key === SERVER_HOST) return this.serverIp;
    const machine = this.#byName.get(key);
    if (machine) return machine.ip ?? this.#boundLease(machine.mac)?.ip ?? null;
    for (const lease of this.leases?.boundByHostname(key) ?? []) {
      // A configured machine goes by its configured name, whatever its DHCP client says.
      if (!this.#byMac.get(lease.mac as Mac)?.hostname) return lease.ip;
    }
    return null;
  }

  /** The host name of an address, or null. */
  hostAt(ip: string): string | null {
    if (ip === this.serverIp) return SERVER_HOST;
    const reserved = this.#byIp.get(ip);
    if (reserved?.hostname) return reserved.hostname;
    const lease = this.leases?.boundAt(ip);
    if (!lease) return null;
    const name = this.#byMac.get(lease.mac as Mac)?.hostname ?? lease.hostname;
    return name && this.addressOf(name) === ip ? name : null;
  }

  #boundLease(mac: Mac): Lease | null {
    const lease = this.leases?.current(mac);
    return lease?.state === "bound" ? lease : null;
  }
}
