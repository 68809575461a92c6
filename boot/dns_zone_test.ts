import assert from "node:assert/strict";
import { Subnet } from "../net/ipv4.ts";
import { type DnsRecord, DnsType } from "../protocols/dns/message.ts";
import { HostNames } from "./dns_names.ts";
import { DnsZone, reverseAddress, reverseName, type ZoneAnswer } from "./dns_zone.ts";
import { dnsLink, MACHINES, SERVER } from "./_dns_test_utils.ts";

/** A short text of what the zone says: `answer A 10.76.0.50`, `nxdomain erf` (its SOA's owner). */
function said(a: ZoneAnswer | null): string | null {
  if (a === null) return null;
  const text = (r: DnsRecord) => {
    const d = r.data;
    const data = d.kind === "a" ? d.address : d.kind === "name" ? d.name : d.kind;
    return `${
      DnsType.A === r.type
        ? "A"
        : r.type === DnsType.PTR
        ? "PTR"
        : r.type === DnsType.NS
        ? "NS"
        : "SOA"
    } ${data}`;
  };
  if (a.kind === "answer") return `answer ${a.answers.map(text).join(", ")}`;
  return `${a.kind} ${a.authority.map((r) => r.name).join(", ")}`;
}

Deno.test("the zone of the domain: A for known hosts, NXDOMAIN and NODATA with the SOA", async (t) => {
  const { zone } = dnsLink();
  const cases: [string, number, string | null][] = [
    ["web-1.erf", DnsType.A, "answer A 10.76.0.50"],
    ["WEB-1.ERF.", DnsType.A, "answer A 10.76.0.50"],
    ["web-1.erf", DnsType.ANY, "answer A 10.76.0.50"],
    ["web-1.erf", DnsType.AAAA, "nodata erf"],
    ["web-1.erf", DnsType.MX, "nodata erf"],
    ["astralboot.erf", DnsType.A, `answer A ${SERVER}`],
    ["laptop.erf", DnsType.A, "answer A 10.76.0.101"],
    ["debian.erf", DnsType.A, "nxdomain erf"],
    ["nothing.erf", DnsType.A, "nxdomain erf"],
    ["nothing.erf", DnsType.AAAA, "nxdomain erf"],
    ["a.web-1.erf", DnsType.A, "nxdomain erf"],
    ["web\\.1.erf", DnsType.A, "nxdomain erf"],
    ["erf", DnsType.SOA, "answer SOA soa"],
    ["erf", DnsType.NS, "answer NS astralboot.erf"],
    ["erf", DnsType.ANY, "answer SOA soa, NS astralboot.erf"],
    ["erf", DnsType.A, "nodata erf"],
    ["example.com", DnsType.A, null],
    ["erf.example", DnsType.A, null],
    ["xerf", DnsType.A, null],
    ["", DnsType.NS, null],
  ];
  for (const [name, type, want] of cases) {
    await t.step(
      `${name} ${type} → ${want}`,
      () => assert.equal(said(zone.lookup(name, type)), want),
    );
  }
  await t.step("answers keep the question's case and carry the TTL", () => {
    const a = zone.lookup("WEB-1.Erf", DnsType.A);
    assert.deepEqual(a, {
      kind: "answer",
      answers: [{
        name: "WEB-1.Erf",
        type: DnsType.A,
        class: 1,
        ttl: 60,
        data: { kind: "a", address: "10.76.0.50" },
      }],
    });
  });
  await t.step("the SOA: the server, hostmaster, the TTL as the negative TTL", () => {
    const n = zone.lookup("nothing.erf", DnsType.A);
    assert.deepEqual(n?.kind === "nxdomain" && n.authority[0], {
      name: "erf",
      type: DnsType.SOA,
      class: 1,
      ttl: 60,
      data: {
        kind: "soa",
        mname: "astralboot.erf",
        rname: "hostmaster.erf",
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: 60,
      },
    });
  });
});

Deno.test("the reverse zone of the subnet: PTR for the same names", async (t) => {
  const { zone } = dnsLink();
  const apex = "0.76.10.in-addr.arpa";
  const cases: [string, number, string | null][] = [
    ["50.0.76.10.in-addr.arpa", DnsType.PTR, "answer PTR web-1.erf"],
    ["50.0.76.10.IN-ADDR.ARPA.", DnsType.PTR, "answer PTR web-1.erf"],
    ["1.0.76.10.in-addr.arpa", DnsType.PTR, "answer PTR astralboot.erf"],
    ["100.0.76.10.in-addr.arpa", DnsType.PTR, "answer PTR db-1.erf"],
    ["101.0.76.10.in-addr.arpa", DnsType.ANY, "answer PTR Laptop.erf"],
    ["50.0.76.10.in-addr.arpa", DnsType.A, `nodata ${apex}`],
    ["102.0.76.10.in-addr.arpa", DnsType.PTR, `nxdomain ${apex}`],
    ["200.0.76.10.in-addr.arpa", DnsType.PTR, `nxdomain ${apex}`],
    [apex, DnsType.SOA, "answer SOA soa"],
    [apex, DnsType.NS, "answer NS astralboot.erf"],
    [apex, DnsType.PTR, `nodata ${apex}`],
    [`x.${apex}`, DnsType.PTR, `nxdomain ${apex}`],
    [`1.2.${apex}`, DnsType.PTR, `nxdomain ${apex}`],
    ["050.0.76.10.in-addr.arpa", DnsType.PTR, `nxdomain ${apex}`],
    ["8.8.8.8.in-addr.arpa", DnsType.PTR, null],
    ["1.1.76.10.in-addr.arpa", DnsType.PTR, null],
    ["76.10.in-addr.arpa", DnsType.SOA, null],
    ["in-addr.arpa", DnsType.PTR, null],
  ];
  for (const [name, type, want] of cases) {
    await t.step(
      `${name} ${type} → ${want}`,
      () => assert.equal(said(zone.lookup(name, type)), want),
    );
  }
});

Deno.test("reverse zones of other prefixes: the subnet's addresses, the apex its whole octets", async (t) => {
  const names = new HostNames("10.77.3.1", MACHINES);
  const cases: [string, string, number, string | null][] = [
    ["255.255.0.0", "3.77.10.in-addr.arpa", DnsType.PTR, "nodata 77.10.in-addr.arpa"],
    ["255.255.0.0", "1.3.77.10.in-addr.arpa", DnsType.PTR, "answer PTR astralboot.lab.test"],
    ["255.255.0.0", "77.10.in-addr.arpa", DnsType.SOA, "answer SOA soa"],
    ["255.255.240.0", "1.3.77.10.in-addr.arpa", DnsType.PTR, "answer PTR astralboot.lab.test"],
    ["255.255.240.0", "2.3.77.10.in-addr.arpa", DnsType.PTR, "nxdomain 77.10.in-addr.arpa"],
    // Outside the /20, inside its /16: someone else's.
    ["255.255.240.0", "1.16.77.10.in-addr.arpa", DnsType.PTR, null],
    ["255.0.0.0", "1.3.77.10.in-addr.arpa", DnsType.PTR, "answer PTR astralboot.lab.test"],
    ["255.0.0.0", "10.in-addr.arpa", DnsType.NS, "answer NS astralboot.lab.test"],
  ];
  for (const [mask, query, type, want] of cases) {
    await t.step(`${mask}: ${query} → ${want}`, () => {
      const subnet = Subnet.of("10.77.3.1", mask);
      const zone = new DnsZone({ domain: "lab.test", subnet, names, ttl: 5 });
      assert.equal(said(zone.lookup(query, type)), want);
    });
  }
});

Deno.test("reverseAddress and reverseName", async (t) => {
  const cases: [string, string | null][] = [
    ["50.0.76.10.in-addr.arpa", "10.76.0.50"],
    ["0.0.0.0.in-addr.arpa", "0.0.0.0"],
    ["256.0.76.10.in-addr.arpa", null],
    ["01.0.76.10.in-addr.arpa", null],
    ["0.76.10.in-addr.arpa", null],
    ["1.0.0.76.10.in-addr.arpa", null],
    ["50.0.76.10.ip6.arpa", null],
  ];
  for (const [name, want] of cases) {
    await t.step(name, () => assert.equal(reverseAddress(name), want));
  }
  assert.equal(reverseName("10.76.0.50"), "50.0.76.10.in-addr.arpa");
});
