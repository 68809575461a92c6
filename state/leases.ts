/**
 * DHCP address leases kept in SQLite (the one handle from `state/db.ts`).
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
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { ipv4ToNumber, numberToIpv4, type Subnet } from "../net/ipv4.ts";
import type { Mac } from "../net/mac.ts";

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
   * worth; default unlimited. A stranger that already holds an address is not new.
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

/** Why {@linkcode LeaseStore.offer} gave no address. */
export type OfferRefusal = "pool-exhausted" | "rate-limited";

/** Result of {@linkcode LeaseStore.offer}. */
export type OfferResult = { ip: string } | { refused: OfferRefusal };

/** Network, broadcast, server and router addresses of a subnet, to keep out of the pool. */
export function poolExclusions(serverIp: string, subnet: Subnet, router?: string): string[] {
  const out = [subnet.network, subnet.broadcast, serverIp];
  if (router) out.push(router);
  return out;
}

interface Row {
  ip: string;
  ipnum: number;
  mac: string;
  client_id: string | null;
  hostname: string | null;
  state: string;
  expires: number;
}

/** The lease database and the address selection rules. */
export class LeaseStore {
  #db: DatabaseSync;
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
  #statements = new Map<string, StatementSync>();
  #cursor: number;
  #known: Set<Mac>;
  #poolSize: number;
  #rate: number;
  #tokens: number;
  #tokensAt: number;

  constructor(db: DatabaseSync, options: LeaseStoreOptions) {
    this.#db = db;
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
    this.#rate = options.newClientRate ?? Infinity;
    this.#tokens = this.#rate * 5;
    this.#tokensAt = this.#now();
    let size = 0;
    for (let n = this.#first; n <= this.#last; n++) {
      if (!this.#exclude.has(n) && !this.#byIp.has(n)) size++;
    }
    this.#poolSize = size;
    db.exec(`CREATE TABLE IF NOT EXISTS dhcp_leases (
      ip TEXT PRIMARY KEY,
      ipnum INTEGER NOT NULL,
      mac TEXT NOT NULL,
      client_id TEXT,
      hostname TEXT,
      state TEXT NOT NULL,
      expires INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS dhcp_leases_mac ON dhcp_leases(mac);
    CREATE INDEX IF NOT EXISTS dhcp_leases_ipnum ON dhcp_leases(ipnum);
    CREATE INDEX IF NOT EXISTS dhcp_leases_hostname ON dhcp_leases(hostname COLLATE NOCASE);`);
    this.#cursor = this.#first;
  }

  /** The reservation of a machine, if the config has one. */
  reservation(mac: Mac): Reservation | undefined {
    return this.#byMac.get(mac);
  }

  /** Whether an address is in the dynamic pool (inside the range, not excluded, not reserved). */
  inPool(ip: string): boolean {
    const n = ipv4ToNumber(ip);
    return n >= this.#first && n <= this.#last && !this.#exclude.has(n) && !this.#byIp.has(n);
  }

  /**
   * Picks an address for a DISCOVER and holds it for the client: its reservation or current
   * lease > its previous address if free > the requested address if free > a never-used address
   * > the address free the longest. A stranger (no `[[machine]]`) asking for a new address is
   * refused when it would take one kept for the known machines (`pool-exhausted`) or when
   * strangers ask faster than `newClientRate` (`rate-limited`).
   */
  offer(mac: Mac, options: { clientId?: string; requestedIp?: string } = {}): OfferResult {
    const now = this.#now();
    return this.#tx((): OfferResult => {
      const stranger = !this.#known.has(mac) && !this.#byMac.has(mac) &&
        !this.#elsewhere.has(mac);
      const holds = this.#holds(mac, now);
      if (stranger && !holds) {
        if (this.#free(now) <= this.#keptForKnown(now)) return { refused: "pool-exhausted" };
        if (!this.#takeToken(now)) return { refused: "rate-limited" };
      }
      const ip = this.#pick(mac, options.requestedIp, now);
      if (ip === null) return { refused: "pool-exhausted" };
      const current = this.#row(ip);
      // An offer never shortens a lease the client already has.
      const active = current && current.mac === mac && this.#isActive(current, now);
      if (!active || current.state === "offered") {
        this.#freeOthers(mac, ip, now);
        this.#upsert(
          ip,
          mac,
          options.clientId,
          current?.hostname ?? undefined,
          "offered",
          now + this.#hold,
        );
      }
      return { ip };
    });
  }

  /** Whether `mac` holds an active offer or lease in the pool. */
  #holds(mac: Mac, now: number): boolean {
    return this.#stmt(
      "SELECT 1 FROM dhcp_leases WHERE mac = ? AND state IN ('offered','bound') AND expires > ?",
    ).get(mac, now) !== undefined;
  }

  /** Addresses of the pool nobody holds now (offered, bound or quarantined). */
  #free(now: number): number {
    const row = this.#stmt(
      `SELECT count(*) AS n FROM dhcp_leases WHERE ipnum BETWEEN ? AND ? AND expires > ?
       AND state IN ('offered','bound','declined')`,
    ).get(this.#first, this.#last, now) as { n: number };
    // Reserved and excluded addresses are never leased, so every counted row is a pool address.
    return this.#poolSize - Number(row.n);
  }

  /** Known machines without a reservation that hold no address now: each keeps one free. */
  #keptForKnown(now: number): number {
    const unreserved = [...this.#known].filter((m) =>
      !this.#byMac.has(m) && !this.#elsewhere.has(m)
    );
    if (unreserved.length === 0) return 0;
    const holding = unreserved.filter((m) => this.#holds(m, now)).length;
    return unreserved.length - holding;
  }

  /** A token of the strangers' bucket: `rate` a second, at most five seconds' worth saved. */
  #takeToken(now: number): boolean {
    if (this.#rate === Infinity) return true;
    this.#tokens = Math.min(
      this.#rate * 5,
      this.#tokens + (now - this.#tokensAt) / 1000 * this.#rate,
    );
    this.#tokensAt = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
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
   * Binds `ip` to `mac` for `seconds` (the ACK). Refuses addresses the client may not have, and
   * addresses it was never given (`not-offered`, RFC 2131 §4.3.2: a REQUEST needs an OFFER, a
   * lease, or a reservation behind it): a stranger cannot take addresses by REQUEST alone.
   */
  commit(
    mac: Mac,
    ip: string,
    seconds: number,
    options: { clientId?: string; hostname?: string } = {},
  ): CommitResult {
    const now = this.#now();
    return this.#tx((): CommitResult => {
      const reason = this.#refusal(mac, ip, now) ?? this.#unoffered(mac, ip);
      if (reason) return { ok: false, reason };
      this.#freeOthers(mac, ip, now);
      const hostname = options.hostname ?? this.#row(ip)?.hostname ?? undefined;
      const expires = now + seconds * 1000;
      this.#upsert(ip, mac, options.clientId, hostname, "bound", expires);
      return {
        ok: true,
        lease: { ip, mac, clientId: options.clientId, hostname, state: "bound", expires },
      };
    });
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
    if (!row || row.mac !== mac || !this.#isActive(row, this.#now())) return false;
    this.#stmt("UPDATE dhcp_leases SET state = 'released', expires = ? WHERE ip = ?")
      .run(this.#now(), ip);
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
    this.#stmt(
      "UPDATE dhcp_leases SET state = 'declined', mac = '', client_id = NULL, expires = ? WHERE ip = ?",
    ).run(now + this.#quarantine, ip);
    return true;
  }

  /** The active lease (offered or bound, not run out) of a machine, in this store's subnet. */
  current(mac: Mac): Lease | null {
    const now = this.#now();
    const rows = this.#stmt(
      `SELECT * FROM dhcp_leases WHERE mac = ? AND state IN ('offered','bound') AND expires > ?
       AND ipnum BETWEEN ? AND ?`,
    ).all(mac, now, this.#lowest, this.#highest) as unknown as Row[];
    const row = rows.find((r) => r.state === "bound") ?? rows[0];
    return row ? this.#lease(row, now) : null;
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
    const rows = this.#stmt(
      `SELECT * FROM dhcp_leases WHERE hostname = ? COLLATE NOCASE AND state = 'bound'
       AND expires > ? ORDER BY expires DESC, ipnum ASC`,
    ).all(hostname, now) as unknown as Row[];
    return rows.map((r) => this.#lease(r, now));
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
    const rows = this.#stmt("SELECT * FROM dhcp_leases WHERE ipnum BETWEEN ? AND ? ORDER BY ipnum")
      .all(this.#lowest, this.#highest) as unknown as Row[];
    const out = rows.map((r) => this.#lease(r, now));
    const seen = new Set(out.map((l) => l.ip));
    for (const r of this.#byMac.values()) {
      if (!seen.has(r.ip)) {
        out.push({ ip: r.ip, mac: r.mac, hostname: r.hostname, state: "reserved", expires: 0 });
      }
    }
    return out.sort((a, b) => ipv4ToNumber(a.ip) - ipv4ToNumber(b.ip));
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

  #lease(r: Row, now: number): Lease {
    const ran = (r.state === "offered" || r.state === "bound") && r.expires <= now;
    return {
      ip: r.ip,
      mac: r.mac,
      clientId: r.client_id ?? undefined,
      hostname: r.hostname ?? undefined,
      state: ran ? "expired" : r.state as LeaseState,
      expires: r.expires,
    };
  }

  #pick(mac: string, requested: string | undefined, now: number): string | null {
    const res = this.#byMac.get(mac);
    if (res) return res.ip;
    const mine = this.#stmt(
      "SELECT * FROM dhcp_leases WHERE mac = ? ORDER BY (state = 'bound') DESC, expires DESC",
    ).all(mac) as unknown as Row[];
    const active = mine.find((r) => this.#isActive(r, now) && this.inPool(r.ip));
    if (active) return active.ip;
    const previous = mine.find((r) => this.inPool(r.ip) && this.#isFree(r, now));
    if (previous) return previous.ip;
    if (requested && this.#refusal(mac, requested, now) === null) return requested;
    const fresh = this.#neverUsed();
    if (fresh !== null) return fresh;
    // Reuse the address whose lease ended longest ago (its holder is least likely to return).
    const free = (limit: number) =>
      this.#stmt(
        `SELECT * FROM dhcp_leases WHERE ipnum BETWEEN ? AND ?
         AND (state = 'released' OR (state IN ('offered','bound','declined') AND expires <= ?))
         ORDER BY expires ASC, ipnum ASC LIMIT ?`,
      ).all(this.#first, this.#last, now, limit) as unknown as Row[];
    // Rows outside the pool (reserved since, or excluded) are rare: look at a few first.
    const pick = (rows: Row[]) => rows.find((r) => this.inPool(r.ip))?.ip;
    return pick(free(16)) ?? pick(free(-1)) ?? null;
  }

  #neverUsed(): string | null {
    // Rows are never deleted, so the lowest never-used address only moves up: a cursor makes
    // this amortised O(1) instead of a scan of every lease per DISCOVER.
    const used = this.#stmt("SELECT 1 FROM dhcp_leases WHERE ipnum = ?");
    for (; this.#cursor <= this.#last; this.#cursor++) {
      const n = this.#cursor;
      if (this.#exclude.has(n) || this.#byIp.has(n) || used.get(n)) continue;
      return numberToIpv4(n);
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
    if (mineReserved) return mineReserved.ip === ip ? null : "has-reservation";
    if (this.#byIp.has(n)) return "reserved-for-other";
    if (!this.inPool(ip)) return "not-in-pool";
    const row = this.#row(ip);
    if (!row || row.mac === mac && this.#isActive(row, now)) return null;
    if (row.state === "declined" && row.expires > now) return "declined";
    return this.#isFree(row, now) ? null : "in-use";
  }

  #isActive(r: Row, now: number): boolean {
    return (r.state === "offered" || r.state === "bound") && r.expires > now;
  }

  #isFree(r: Row, now: number): boolean {
    return r.state === "released" || r.expires <= now;
  }

  #row(ip: string): Row | undefined {
    return this.#stmt("SELECT * FROM dhcp_leases WHERE ip = ?").get(ip) as
      | Row
      | undefined;
  }

  /** A machine holds one address: its other offers and leases end now (the row keeps its MAC). */
  #freeOthers(mac: string, ip: string, now: number): void {
    this.#stmt(
      `UPDATE dhcp_leases SET state = 'released', expires = ?
       WHERE mac = ? AND ip <> ? AND state IN ('offered','bound') AND expires > ?`,
    ).run(now, mac, ip, now);
  }

  #upsert(
    ip: string,
    mac: string,
    clientId: string | undefined,
    hostname: string | undefined,
    state: "offered" | "bound",
    expires: number,
  ): void {
    this.#stmt(
      `INSERT INTO dhcp_leases (ip, ipnum, mac, client_id, hostname, state, expires)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(ip) DO UPDATE SET mac = excluded.mac, client_id = excluded.client_id,
         hostname = excluded.hostname, state = excluded.state, expires = excluded.expires`,
    ).run(ip, ipv4ToNumber(ip), mac, clientId ?? null, hostname ?? null, state, expires);
  }

  #stmt(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (!st) this.#statements.set(sql, st = this.#db.prepare(sql));
    return st;
  }

  #tx<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
  }
}
