/**
 * DHCP address leases: the rules that pick, bind and free addresses, over the lease table of
 * `state/lease_table.ts` (in memory, written to SQLite by group commit; a bound lease is on disk
 * once {@linkcode LeaseStore.saved} resolves).
 *
 * One row per address that was ever handed out. A row remembers its last holder even after
 * the lease ran out, which is what lets a machine get its previous address back and lets the
 * pool reuse the address that was free the longest first. Holders are keyed by MAC, not by
 * option 61: a PXE ROM (OVMF sends no 61) and the iPXE it loads (sends 61 = 01+MAC) are the
 * same machine and must get the same address. Static reservations come from the config and
 * are never stored as leases of anyone else.
 *
 * One store serves one subnet's pool (`subnet`); the stores of several subnets share the table
 * (their addresses never overlap) and {@linkcode LeasePools} reads them as one. A MAC holds one
 * address across all of them: a machine that moves to another network gives up the old one.
 *
 * Times are milliseconds since the epoch; `now` is injectable for tests.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { ipv4ToNumber, numberToIpv4, type Subnet } from "../net/ipv4.ts";
import type { Mac } from "../net/mac.ts";
import { TokenBucket } from "../net/token_bucket.ts";
import { type LeaseRow, LeaseTable } from "./lease_table.ts";

/** A static address for one machine (`[[machine]] mac, ip`). */
export interface Reservation {
  mac: Mac;
  ip: string;
  hostname?: string;
}

/** Options for {@linkcode LeaseStore}. */
export interface LeaseStoreOptions {
  /** First and last address of the dynamic pool, inclusive. */
  range: [string, string];
  /**
   * The pool's network. With it the store lists, and looks up, only addresses inside it, and a
   * reservation outside it is another pool's: its machine is known here, not kept room for.
   * Without it the store sees the whole table (`astralboot leases`, tests).
   */
  subnet?: Subnet;
  /** Addresses never handed out: network, broadcast, server, router; see {@linkcode poolExclusions}. */
  exclude?: string[];
  reservations?: Reservation[];
  /** How long an OFFER holds its address for the client that was offered it. Default 60 s. */
  offerHoldSeconds?: number;
  /** How long a DECLINEd address stays out of the pool. Default 600 s. */
  declineSeconds?: number;
  /**
   * Machines the config names (`[[machine]]`): however many strangers ask, as many addresses
   * stay free as there are known machines without a reservation or a lease.
   */
  known?: Iterable<Mac>;
  /**
   * New bindings per second for machines nobody configured, with bursts of five seconds'
   * worth; default unlimited, else at least 0.2 (`RangeError`). A stranger that already holds
   * an address is not new.
   */
  newClientRate?: number;
  /** Clock in ms; tests pass their own. */
  now?: () => number;
}

/** Lease states as stored; "expired" is derived when a bound/offered row ran out. */
export type LeaseState = "offered" | "bound" | "released" | "declined" | "expired" | "reserved";

/** One row of {@linkcode LeaseStore.list}. */
export interface Lease {
  ip: string;
  mac: string;
  clientId?: string;
  hostname?: string;
  state: LeaseState;
  /** When the lease, offer or quarantine ends (or ended); 0 for a reservation without a lease. */
  expires: number;
}

/** Why {@linkcode LeaseStore.commit} refused an address (the caller answers with a NAK). */
export type RefuseReason =
  | "not-offered"
  | "not-in-pool"
  | "reserved-for-other"
  | "has-reservation"
  | "in-use"
  | "declined";

/** Result of {@linkcode LeaseStore.commit}. */
export type CommitResult = { ok: true; lease: Lease } | { ok: false; reason: RefuseReason };

/**
 * Why {@linkcode LeaseStore.offer} gave no address. `reserved-in-use`: the machine's reserved
 * address is still held by another client (its lease predates the reservation, a reload added
 * it): that client's next renewal is refused, and the address is the machine's once it is free.
 */
export type OfferRefusal = "pool-exhausted" | "rate-limited" | "reserved-in-use";

/** Result of {@linkcode LeaseStore.offer}. */
export type OfferResult = { ip: string } | { refused: OfferRefusal };

/** Network, broadcast, server and router addresses of a subnet, to keep out of the pool. */
export function poolExclusions(serverIp: string, subnet: Subnet, router?: string): string[] {
  const out = [subnet.network, subnet.broadcast, serverIp];
  if (router) out.push(router);
  return out;
}

/** The address selection rules of one pool, over the shared lease table. */
export class LeaseStore {
  #table: LeaseTable;
  #first: number;
  #last: number;
  #exclude: Set<number>;
  #byMac = new Map<string, Reservation>();
  #byIp = new Map<number, Reservation>();
  /** Machines whose reservation is in another subnet's pool. */
  #elsewhere = new Set<Mac>();
  /** The addresses this store looks at, network to broadcast (all of IPv4 without a subnet). */
  #lowest: number;
  #highest: number;
  #hold: number;
  #quarantine: number;
  #now: () => number;
  #cursor: number;
  /** The table's {@linkcode LeaseTable.deletions} when the cursor was last set. */
  #deletionsSeen = 0;
  #known: Set<Mac>;
  /** Known machines without a reservation: each keeps an address free while it holds none. */
  #unreserved: Mac[];
  #poolSize: number;
  /** The strangers' bucket; none when their rate is unlimited. */
  #strangers: TokenBucket | null;

  /** A pool over the lease table of `db` ({@linkcode LeaseTable.of}: one per connection). */
  constructor(db: DatabaseSync, options: LeaseStoreOptions) {
    this.#first = ipv4ToNumber(options.range[0]);
    this.#last = ipv4ToNumber(options.range[1]);
    if (this.#first > this.#last) {
      throw new RangeError(`DHCP range starts after it ends: ${options.range.join(" - ")}`);
    }
    this.#exclude = new Set((options.exclude ?? []).map(ipv4ToNumber));
    const subnet = options.subnet;
    this.#lowest = subnet ? ipv4ToNumber(subnet.network) : 0;
    this.#highest = subnet ? ipv4ToNumber(subnet.broadcast) : 0xffffffff;
    for (const r of options.reservations ?? []) {
      if (subnet && !subnet.contains(r.ip)) {
        this.#elsewhere.add(r.mac);
        continue;
      }
      this.#byMac.set(r.mac, r);
      this.#byIp.set(ipv4ToNumber(r.ip), r);
    }
    this.#hold = (options.offerHoldSeconds ?? 60) * 1000;
    this.#quarantine = (options.declineSeconds ?? 600) * 1000;
    this.#now = options.now ?? Date.now;
    this.#known = new Set(options.known ?? []);
    this.#unreserved = [...this.#known].filter((m) =>
      !this.#byMac.has(m) && !this.#elsewhere.has(m)
    );
    const rate = options.newClientRate ?? Infinity;
    // Five seconds' worth saved; a clock stepped back (NTP at boot) adds and takes nothing.
    this.#strangers = rate === Infinity ? null : new TokenBucket(rate, rate * 5, this.#now);
    let size = 0;
    for (let n = this.#first; n <= this.#last; n++) {
      if (!this.#exclude.has(n) && !this.#byIp.has(n)) size++;
    }
    this.#poolSize = size;
    this.#table = LeaseTable.of(db);
    this.#cursor = this.#first;
    this.#deletionsSeen = this.#table.deletions;
  }

  /** The reservation of a machine, if the config has one. */
  reservation(mac: Mac): Reservation | undefined {
    return this.#byMac.get(mac);
  }

  /** Whether an address is in the dynamic pool (inside the range, not excluded, not reserved). */
  inPool(ip: string): boolean {
    return this.#inPool(ipv4ToNumber(ip));
  }

  #inPool(n: number): boolean {
    return n >= this.#first && n <= this.#last && !this.#exclude.has(n) && !this.#byIp.has(n);
  }

  /**
   * Picks an address for a DISCOVER and holds it for the client: its reservation or current
   * lease > its previous address if free > the requested address if free > a never-used address
   * > the address free the longest. A stranger (no `[[machine]]`) asking for a new address is
   * refused when it would take one kept for the known machines (`pool-exhausted`) or when
   * strangers ask faster than `newClientRate` (`rate-limited`). The hold is not waited for (see
   * `state/lease_table.ts`: an offer need not survive a crash).
   */
  offer(mac: Mac, options: { clientId?: string; requestedIp?: string } = {}): OfferResult {
    const now = this.#now();
    const stranger = !this.#known.has(mac) && !this.#byMac.has(mac) && !this.#elsewhere.has(mac);
    const holds = this.#holds(mac, now);
    if (stranger && !holds) {
      const kept = this.#keptForKnown(now);
      // Without known machines to keep room for, an empty pool shows in #pick: no count needed.
      if (kept > 0 && this.#free(now) <= kept) return { refused: "pool-exhausted" };
      if (this.#strangers && !this.#strangers.take()) return { refused: "rate-limited" };
    }
    const n = this.#pick(mac, options.requestedIp, now);
    if (n === null) return { refused: "pool-exhausted" };
    const ip = numberToIpv4(n);
    const current = this.#table.get(n);
    // Only a reservation picks an address another client holds: two machines on one address
    // until the other renews (and is refused) would be worse than waiting.
    if (current && current.mac !== mac && this.#isActive(current, now)) {
      return { refused: "reserved-in-use" };
    }
    // An offer never shortens a lease the client already has.
    const active = current && current.mac === mac && this.#isActive(current, now);
    if (!active || current.state === "offered") {
      this.#freeOthers(mac, n, now);
      const hostname = current?.hostname ?? undefined;
      this.#put(n, mac, options.clientId, hostname, "offered", now + this.#hold);
    }
    return { ip };
  }

  /** Whether `mac` holds an active offer or lease in any pool. */
  #holds(mac: Mac, now: number): boolean {
    return this.#table.ofMac(mac).some((r) => this.#isActive(r, now));
  }

  /** Addresses of the pool nobody holds now (offered, bound or quarantined). */
  #free(now: number): number {
    let held = 0;
    for (const r of this.#table.rows()) {
      // Reserved and excluded addresses are never leased, so every counted row is a pool address.
      if (r.ipnum < this.#first || r.ipnum > this.#last || r.state === "released") continue;
      if (r.expires > now) held++;
    }
    return this.#poolSize - held;
  }

  /** Known machines without a reservation that hold no address now: each keeps one free. */
  #keptForKnown(now: number): number {
    let kept = 0;
    for (const m of this.#unreserved) if (!this.#holds(m, now)) kept++;
    return kept;
  }

  /** How many pool addresses are held now, and how many the pool has. */
  usage(): { held: number; size: number } {
    const now = this.#now();
    return { held: this.#poolSize - this.#free(now), size: this.#poolSize };
  }

  /** Whether `ip` may be given to `mac` right now; the reason when not. */
  check(mac: Mac, ip: string): RefuseReason | null {
    return this.#refusal(mac, ip, this.#now());
  }

  /**
   * Binds `ip` to `mac` for `seconds` (the ACK) in memory; the ACK may leave once
   * {@linkcode saved} resolves. Refuses addresses the client may not have, and addresses it was
   * never given (`not-offered`, RFC 2131 §4.3.2: a REQUEST needs an OFFER, a lease, or a
   * reservation behind it): a stranger cannot take addresses by REQUEST alone.
   */
  commit(
    mac: Mac,
    ip: string,
    seconds: number,
    options: { clientId?: string; hostname?: string } = {},
  ): CommitResult {
    const now = this.#now();
    const reason = this.#refusal(mac, ip, now) ?? this.#unoffered(mac, ip);
    if (reason) return { ok: false, reason };
    const n = ipv4ToNumber(ip);
    this.#freeOthers(mac, n, now);
    const hostname = options.hostname ?? this.#table.get(n)?.hostname ?? undefined;
    const expires = now + seconds * 1000;
    this.#put(n, mac, options.clientId, hostname, "bound", expires);
    return {
      ok: true,
      lease: { ip, mac, clientId: options.clientId, hostname, state: "bound", expires },
    };
  }

  /**
   * Resolves once every change made so far (of every store over this database) is on disk;
   * rejects when it could not be written, or, with `ip`, when the database refused that
   * address's row. See `state/lease_table.ts`.
   */
  saved(ip?: string): Promise<void> {
    return this.#table.saved(ip === undefined ? undefined : ipv4ToNumber(ip));
  }

  /** Writes every pending change now (shutdown, tests); throws when it cannot. */
  flush(): void {
    this.#table.flush();
  }

  /** `not-offered` unless `mac` has a reservation of `ip` or a row of it (offered, leased before). */
  #unoffered(mac: Mac, ip: string): RefuseReason | null {
    if (this.#byMac.get(mac)?.ip === ip) return null;
    return this.#row(ip)?.mac === mac ? null : "not-offered";
  }

  /** The client gives its address back (DHCPRELEASE); ignored unless it holds it. */
  release(mac: Mac, ip: string): boolean {
    if (!this.#sees(ip)) return false;
    const row = this.#row(ip);
    const now = this.#now();
    if (!row || row.mac !== mac || !this.#isActive(row, now)) return false;
    this.#table.put({ ...row, state: "released", expires: now });
    return true;
  }

  /**
   * The client found `ip` in use (DHCPDECLINE): the address leaves the pool for a while.
   * Only the client holding the address can decline it, so nobody can drain the pool.
   */
  decline(mac: Mac, ip: string): boolean {
    const now = this.#now();
    if (!this.#sees(ip)) return false;
    const row = this.#row(ip);
    if (!row || row.mac !== mac || !this.#isActive(row, now)) return false;
    this.#table.put({
      ...row,
      state: "declined",
      mac: "",
      clientId: null,
      expires: now + this.#quarantine,
    });
    return true;
  }

  /** The active lease (offered or bound, not run out) of a machine, in this store's subnet. */
  current(mac: Mac): Lease | null {
    const now = this.#now();
    const rows = this.#table.ofMac(mac).filter((r) =>
      this.#isActive(r, now) && r.ipnum >= this.#lowest && r.ipnum <= this.#highest
    );
    const row = rows.find((r) => r.state === "bound") ?? rows[0];
    return row ? this.#lease(row, now) : null;
  }

  /**
   * Whether `ip` is still bound to `mac`, run out or not: what an ACK waiting for its commit
   * asks (a RELEASE, a DECLINE or the client's move elsewhere ended it meanwhile; a lease shorter
   * than that wait, or a clock stepped forward, does not).
   */
  stillBound(mac: Mac, ip: string): boolean {
    if (!this.#sees(ip)) return false;
    const row = this.#row(ip);
    return row !== undefined && row.mac === mac && row.state === "bound";
  }

  /** The bound lease (not run out) on `ip`, or null: what the DNS server names. */
  boundAt(ip: string): Lease | null {
    const now = this.#now();
    const row = this.#row(ip);
    return row && row.state === "bound" && row.expires > now ? this.#lease(row, now) : null;
  }

  /** The bound leases (not run out) of a host name, any case, the latest to end first. */
  boundByHostname(hostname: string): Lease[] {
    const now = this.#now();
    return this.#table.ofHostname(hostname)
      .filter((r) => r.state === "bound" && r.expires > now)
      .sort((a, b) => b.expires - a.expires || a.ipnum - b.ipnum)
      .map((r) => this.#lease(r, now));
  }

  /** The MAC holding an active offer or lease on `ip` (in this store's subnet), or null. */
  holderOf(ip: string): Mac | null {
    if (!this.#sees(ip)) return null;
    const row = this.#row(ip);
    return row && row.mac && this.#isActive(row, this.#now()) ? row.mac as Mac : null;
  }

  /** Every lease row (of this store's subnet) plus reservations that have none yet, by address. */
  list(): Lease[] {
    const now = this.#now();
    const out: [number, Lease][] = [];
    for (const r of this.#table.rows()) {
      if (r.ipnum >= this.#lowest && r.ipnum <= this.#highest) {
        out.push([r.ipnum, this.#lease(r, now)]);
      }
    }
    for (const [n, r] of this.#byIp) {
      if (!this.#table.get(n)) {
        out.push([n, {
          ip: r.ip,
          mac: r.mac,
          hostname: r.hostname,
          state: "reserved",
          expires: 0,
        }]);
      }
    }
    return out.sort((a, b) => a[0] - b[0]).map(([, l]) => l);
  }

  /** Whether `ip` is an address of this store's subnet. */
  #sees(ip: string): boolean {
    try {
      const n = ipv4ToNumber(ip);
      return n >= this.#lowest && n <= this.#highest;
    } catch {
      return false;
    }
  }

  #lease(r: LeaseRow, now: number): Lease {
    const ran = (r.state === "offered" || r.state === "bound") && r.expires <= now;
    return {
      ip: numberToIpv4(r.ipnum),
      mac: r.mac,
      clientId: r.clientId ?? undefined,
      hostname: r.hostname ?? undefined,
      state: ran ? "expired" : r.state,
      expires: r.expires,
    };
  }

  /** The address (as a number) to offer `mac`, or null when the pool has none. */
  #pick(mac: string, requested: string | undefined, now: number): number | null {
    const res = this.#byMac.get(mac);
    if (res) return ipv4ToNumber(res.ip);
    const mine = this.#table.ofMac(mac).sort((a, b) =>
      Number(b.state === "bound") - Number(a.state === "bound") || b.expires - a.expires
    );
    const active = mine.find((r) => this.#isActive(r, now) && this.#inPool(r.ipnum));
    if (active) return active.ipnum;
    const previous = mine.find((r) => this.#inPool(r.ipnum) && this.#isFree(r, now));
    if (previous) return previous.ipnum;
    if (requested && this.#refusal(mac, requested, now) === null) return ipv4ToNumber(requested);
    const fresh = this.#neverUsed();
    if (fresh !== null) return fresh;
    // Reuse the address whose lease ended longest ago (its holder is least likely to return).
    let best: LeaseRow | undefined;
    for (const r of this.#table.rows()) {
      if (!this.#inPool(r.ipnum) || !this.#isFree(r, now)) continue;
      if (
        !best || r.expires < best.expires || (r.expires === best.expires && r.ipnum < best.ipnum)
      ) {
        best = r;
      }
    }
    return best?.ipnum ?? null;
  }

  #neverUsed(): number | null {
    // Rows are deleted only when the database refused an address's first row (rarely: a bug),
    // so the lowest never-used address only moves up: a cursor makes this amortised O(1)
    // instead of a scan of every lease per DISCOVER. After a deletion it starts over.
    if (this.#table.deletions !== this.#deletionsSeen) {
      this.#deletionsSeen = this.#table.deletions;
      this.#cursor = this.#first;
    }
    for (; this.#cursor <= this.#last; this.#cursor++) {
      const n = this.#cursor;
      if (this.#exclude.has(n) || this.#byIp.has(n) || this.#table.get(n)) continue;
      return n;
    }
    return null;
  }

  #refusal(mac: string, ip: string, now: number): RefuseReason | null {
    let n: number;
    try {
      n = ipv4ToNumber(ip);
    } catch {
      return "not-in-pool";
    }
    const mineReserved = this.#byMac.get(mac);
    if (mineReserved) {
      if (mineReserved.ip !== ip) return "has-reservation";
      const row = this.#table.get(n);
      // Still another client's (see OfferRefusal): not the machine's until that one is gone.
      return row && row.mac !== mac && this.#isActive(row, now) ? "in-use" : null;
    }
    if (this.#byIp.has(n)) return "reserved-for-other";
    if (!this.#inPool(n)) return "not-in-pool";
    const row = this.#table.get(n);
    if (!row || row.mac === mac && this.#isActive(row, now)) return null;
    if (row.state === "declined" && row.expires > now) return "declined";
    return this.#isFree(row, now) ? null : "in-use";
  }

  #isActive(r: LeaseRow, now: number): boolean {
    return (r.state === "offered" || r.state === "bound") && r.expires > now;
  }

  #isFree(r: LeaseRow, now: number): boolean {
    return r.state === "released" || r.expires <= now;
  }

  #row(ip: string): LeaseRow | undefined {
    let n: number;
    try {
      n = ipv4ToNumber(ip);
    } catch {
      return undefined;
    }
    return this.#table.get(n);
  }

  /** A machine holds one address: its other offers and leases end now (the row keeps its MAC). */
  #freeOthers(mac: string, n: number, now: number): void {
    for (const r of this.#table.ofMac(mac)) {
      if (r.ipnum !== n && this.#isActive(r, now)) {
        this.#table.put({ ...r, state: "released", expires: now });
      }
    }
  }

  #put(
    n: number,
    mac: string,
    clientId: string | undefined,
    hostname: string | undefined,
    state: "offered" | "bound",
    expires: number,
  ): void {
    this.#table.put({
      ipnum: n,
      mac,
      clientId: clientId ?? null,
      hostname: hostname ?? null,
      state,
      expires,
    });
  }
}
