/**
 * The lease stores of every subnet the server hands out addresses in (the interface's own and
 * those behind relays), read as one: the lease table of the API and `astralboot leases`, the
 * pool gauges, and the addresses machines hold (`boot/identity.ts`).
 *
 * @module
 */
import { isIpv4, type Subnet } from "../net/ipv4.ts";
import type { Mac } from "../net/mac.ts";
import type { Lease, LeaseStore } from "./leases.ts";

/** One subnet and its store. */
export interface LeasePool {
  subnet: Subnet;
  store: LeaseStore;
}

/** A lease and the subnet (`10.0.0.0/24`) whose pool it is in. */
export interface PoolLease extends Lease {
  subnet: string;
}

/** How much of one subnet's pool is held. */
export interface PoolUsage {
  subnet: string;
  held: number;
  size: number;
}

/** Every served subnet's lease store; the first is the interface's own. */
export class LeasePools {
  constructor(readonly pools: readonly LeasePool[]) {}

  /** The store of the subnet that contains `ip`, if one does (none for an IPv6 client). */
  storeFor(ip: string): LeaseStore | undefined {
    if (!isIpv4(ip)) return undefined;
    return this.pools.find((p) => p.subnet.contains(ip))?.store;
  }

  /** Every pool's leases and reservations, by subnet then address. */
  list(): PoolLease[] {
    return this.pools.flatMap((p) =>
      p.store.list().map((l) => ({ ...l, subnet: p.subnet.toString() }))
    );
  }

  /** Each pool's use. */
  usage(): PoolUsage[] {
    return this.pools.map((p) => ({ subnet: p.subnet.toString(), ...p.store.usage() }));
  }

  /** The active lease of `mac` in any pool (a bound one before an offer). */
  current(mac: Mac): Lease | null {
    const all = this.pools.map((p) => p.store.current(mac)).filter((l) => l !== null);
    return all.find((l) => l.state === "bound") ?? all[0] ?? null;
  }

  /** The MAC holding `ip` in the pool of its subnet, or null. */
  holderOf(ip: string): Mac | null {
    return this.storeFor(ip)?.holderOf(ip) ?? null;
  }

  /** The bound lease on `ip` in any pool, or null: what the DNS server names. */
  boundAt(ip: string): Lease | null {
    return this.storeFor(ip)?.boundAt(ip) ?? null;
  }

  /** Writes every pending lease change now (shutdown); throws when it cannot. */
  flush(): void {
    // One table holds every pool's leases: any store writes them all.
    this.pools[0]?.store.flush();
  }

  /** The bound leases of a host name in every pool, the latest to end first. */
  boundByHostname(hostname: string): Lease[] {
    // One table holds every pool's leases: any store reads them all.
    return this.pools[0]?.store.boundByHostname(hostname) ?? [];
  }
}
