/**
 * One served link for the DNS policy tests: server 10.76.0.1/24, domain `erf` (the names of
 * the golden captures in `protocols/dns/testdata/`), three `[[machine]]` entries and a lease
 * table with named, unnamed, clashing and expired leases, on a clock the test moves.
 *
 * @module
 */
import { Subnet } from "../net/ipv4.ts";
import { type Mac, mustParseMac } from "../net/mac.ts";
import { openDatabase } from "../state/db.ts";
import { LeaseStore } from "../state/leases.ts";
import { HostNames, type NamedMachine } from "./dns_names.ts";
import { DnsZone } from "./dns_zone.ts";

export const SERVER = "10.76.0.1";
export const SUBNET = Subnet.of(SERVER, "255.255.255.0");

const mac = (n: number): Mac => mustParseMac(`52:54:00:00:00:${n.toString(16).padStart(2, "0")}`);

/** `[[machine]]`: web-1 reserved, db-1 by lease, an unnamed one with a reservation. */
export const MACHINES: NamedMachine[] = [
  { mac: mac(1), hostname: "web-1", ip: "10.76.0.50" },
  { mac: mac(2), hostname: "db-1" },
  { mac: mac(3), ip: "10.76.0.60" },
];

/** The link: leases bound at t = 0 … and the clock at t = 1000 s. */
export function dnsLink() {
  let now = 1_000_000;
  const leases = new LeaseStore(openDatabase(":memory:"), {
    range: ["10.76.0.100", "10.76.0.199"],
    exclude: [SERVER],
    reservations: [
      { mac: mac(1), ip: "10.76.0.50", hostname: "web-1" },
      { mac: mac(3), ip: "10.76.0.60" },
    ],
    now: () => now,
  });
  const bind = (m: Mac, ip: string, seconds: number, hostname?: string) => {
    leases.offer(m, { requestedIp: ip });
    const r = leases.commit(m, ip, seconds, { hostname });
    if (!r.ok) throw new Error(`lease ${ip}: ${r.reason}`);
  };
  // db-1's installer calls itself "debian": the configured name wins.
  bind(mac(2), "10.76.0.100", 3600, "debian");
  // Two strangers call themselves "laptop": the lease that ends last has the name.
  bind(mac(0x20), "10.76.0.104", 1800, "laptop");
  bind(mac(0x21), "10.76.0.101", 3600, "Laptop");
  // Strangers may not take configured names or the server's.
  bind(mac(0x22), "10.76.0.102", 3600, "web-1");
  bind(mac(0x23), "10.76.0.103", 3600, "astralboot");
  // The unnamed machine's client names it.
  bind(mac(3), "10.76.0.60", 3600, "printer");
  // A lease that has run out by the time the tests ask.
  bind(mac(0x24), "10.76.0.105", 10, "old");
  bind(mac(0x25), "10.76.0.106", 3600);
  now += 1000 * 1000;
  const names = new HostNames(SERVER, MACHINES, leases);
  const zone = new DnsZone({ domain: "erf", subnet: SUBNET, names, ttl: 60 });
  return {
    leases,
    names,
    zone,
    bind,
    mac,
    advance: (seconds: number) => void (now += seconds * 1000),
  };
}
