/**
 * The zones this server is the authority for, and what it answers in them:
 *
 * - `<domain>`: an A record for `astralboot` and every host {@linkcode HostNames} knows; the
 *   apex has an SOA and an NS (`astralboot.<domain>`);
 * - the reverse names (`d.c.b.a.in-addr.arpa`, RFC 1035 §3.5) of the served subnet: a PTR to
 *   `<host>.<domain>` for the same addresses.
 *
 * A name of the zone that nobody holds is NXDOMAIN, a held name asked for another type is
 * NODATA (no answer, no error); both carry the SOA so resolvers cache the negative answer for
 * the TTL only (RFC 2308). Names compare in any case; answers keep the case of the question.
 * Everything outside these zones is not ours (null): the responder forwards it.
 *
 * @module
 */
import type { Subnet } from "../net/ipv4.ts";
import { DnsClass, type DnsRecord, DnsType, type SoaData } from "../protocols/dns/message.ts";
import { nameKey } from "../protocols/dns/name.ts";
import { type HostNames, SERVER_HOST } from "./dns_names.ts";

/** What the zone says about a question it is the authority for. */
export type ZoneAnswer =
  | { kind: "answer"; answers: DnsRecord[] }
  | { kind: "nodata"; authority: DnsRecord[] }
  | { kind: "nxdomain"; authority: DnsRecord[] };

/** Options of {@linkcode DnsZone}. */
export interface DnsZoneOptions {
  /** The domain of the machines, e.g. `erf`. */
  domain: string;
  /** The served subnet: its reverse names are ours. */
  subnet: Subnet;
  names: HostNames;
  /** TTL of every record and of negative answers, seconds. */
  ttl: number;
}

const REVERSE = "in-addr.arpa";

/** The address a reverse name stands for (`50.0.0.10.in-addr.arpa` → `10.0.0.50`), or null. */
export function reverseAddress(key: string): string | null {
  if (!key.endsWith(`.${REVERSE}`)) return null;
  const labels = key.slice(0, -REVERSE.length - 1).split(".");
  if (labels.length !== 4 || !labels.every((l) => /^(0|[1-9]\d{0,2})$/.test(l) && +l <= 255)) {
    return null;
  }
  return labels.reverse().join(".");
}

/** The reverse name of an address. */
export function reverseName(ip: string): string {
  return `${ip.split(".").reverse().join(".")}.${REVERSE}`;
}

/** The local zones; see the module doc. */
export class DnsZone {
  readonly domain: string;
  readonly #o: DnsZoneOptions;
  /** The reverse zone's apex: the octets the subnet fixes (`0.0.10.in-addr.arpa` for a /24). */
  readonly #reverseApex: string | null;
  /** How many octets the apex fixes. */
  readonly #apexOctets: number;

  constructor(o: DnsZoneOptions) {
    this.#o = o;
    this.domain = nameKey(o.domain);
    const octets = Math.floor(o.subnet.prefix / 8);
    this.#apexOctets = octets;
    this.#reverseApex = octets === 0
      ? null
      : `${o.subnet.network.split(".").slice(0, octets).reverse().join(".")}.${REVERSE}`;
  }

  /** What to answer for `name`/`type`, or null when the name is not in a local zone. */
  lookup(name: string, type: number): ZoneAnswer | null {
    const key = nameKey(name);
    if (key === this.domain) return this.#apex(name, type, this.domain);
    if (key.endsWith(`.${this.domain}`)) {
      const host = key.slice(0, -this.domain.length - 1);
      // One label only: `a.b.<domain>` names nobody.
      const ip = /^[a-z0-9-]+$/.test(host) ? this.#o.names.addressOf(host) : null;
      if (ip === null) return this.#negative("nxdomain", this.domain);
      if (type !== DnsType.A && type !== DnsType.ANY) return this.#negative("nodata", this.domain);
      return {
        kind: "answer",
        answers: [this.#record(name, DnsType.A, { kind: "a", address: ip })],
      };
    }
    return this.#reverse(name, key, type);
  }

  #reverse(name: string, key: string, type: number): ZoneAnswer | null {
    const apex = this.#reverseApex;
    const ip = reverseAddress(key);
    if (ip !== null) {
      if (!this.#o.subnet.contains(ip)) return null;
      const host = this.#o.names.hostAt(ip);
      const soaZone = apex ?? reverseName(ip);
      if (host === null) return this.#negative("nxdomain", soaZone);
      if (type !== DnsType.PTR && type !== DnsType.ANY) return this.#negative("nodata", soaZone);
      const target = `${host}.${this.domain}`;
      return {
        kind: "answer",
        answers: [this.#record(name, DnsType.PTR, { kind: "name", name: target })],
      };
    }
    if (apex === null) return null;
    if (key === apex) return this.#apex(name, type, apex);
    // Names between the apex and the addresses exist (empty non-terminals) when they are
    // numbers; anything else there names nothing.
    if (key.endsWith(`.${apex}`)) {
      const rest = key.slice(0, -apex.length - 1).split(".");
      const numbers = rest.every((l) => /^(0|[1-9]\d{0,2})$/.test(l) && +l <= 255);
      const between = numbers && rest.length < 4 - this.#apexOctets;
      return this.#negative(between ? "nodata" : "nxdomain", apex);
    }
    return null;
  }

  /** The apex of a zone: its SOA and NS; nothing else. */
  #apex(name: string, type: number, zone: string): ZoneAnswer {
    const soa = this.#record(name, DnsType.SOA, this.#soa());
    const ns = this.#record(name, DnsType.NS, { kind: "name", name: this.#serverName() });
    if (type === DnsType.SOA) return { kind: "answer", answers: [soa] };
    if (type === DnsType.NS) return { kind: "answer", answers: [ns] };
    if (type === DnsType.ANY) return { kind: "answer", answers: [soa, ns] };
    return this.#negative("nodata", zone);
  }

  #negative(kind: "nodata" | "nxdomain", zone: string): ZoneAnswer {
    return { kind, authority: [this.#record(zone, DnsType.SOA, this.#soa())] };
  }

  #serverName(): string {
    return `${SERVER_HOST}.${this.domain}`;
  }

  #soa(): SoaData {
    const ttl = this.#o.ttl;
    return {
      kind: "soa",
      mname: this.#serverName(),
      rname: `hostmaster.${this.domain}`,
      // Nothing transfers these zones; a fixed serial says there is only one version.
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      // RFC 2308 §4: the TTL of negative answers.
      minimum: ttl,
    };
  }

  #record(name: string, type: number, data: DnsRecord["data"]): DnsRecord {
    return { name, type, class: DnsClass.IN, ttl: this.#o.ttl, data };
  }
}
