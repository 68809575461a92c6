import assert from "node:assert/strict";
import { HostNames } from "./dns_names.ts";
import { dnsLink, MACHINES, SERVER } from "./_dns_test_utils.ts";

Deno.test("addressOf: the server, configured names, then the names clients sent", async (t) => {
  const link = dnsLink();
  const cases: [string, string | null][] = [
    ["astralboot", SERVER],
    ["ASTRALBOOT", SERVER],
    ["web-1", "10.76.0.50"],
    ["Web-1", "10.76.0.50"],
    ["db-1", "10.76.0.100"],
    ["debian", null],
    ["laptop", "10.76.0.101"],
    ["LAPTOP", "10.76.0.101"],
    ["printer", "10.76.0.60"],
    ["old", null],
    ["nobody", null],
  ];
  for (const [host, want] of cases) {
    await t.step(`${host} → ${want}`, () => assert.equal(link.names.addressOf(host), want));
  }
});

Deno.test("hostAt: the same names backwards, and nothing a forward lookup would not give", async (t) => {
  const link = dnsLink();
  const cases: [string, string | null][] = [
    [SERVER, "astralboot"],
    ["10.76.0.50", "web-1"],
    ["10.76.0.100", "db-1"],
    ["10.76.0.101", "Laptop"],
    // The other "laptop": its name resolves elsewhere.
    ["10.76.0.104", null],
    ["10.76.0.102", null],
    ["10.76.0.103", null],
    ["10.76.0.60", "printer"],
    ["10.76.0.105", null],
    ["10.76.0.106", null],
    ["10.76.0.200", null],
  ];
  for (const [ip, want] of cases) {
    await t.step(`${ip} → ${want}`, () => assert.equal(link.names.hostAt(ip), want));
  }
});

Deno.test("names follow the lease table at once: bound, renewed elsewhere, run out", async (t) => {
  const link = dnsLink();
  await t.step("a new lease resolves the moment it is bound", () => {
    assert.equal(link.names.addressOf("new-host"), null);
    link.bind(link.mac(0x30), "10.76.0.110", 60, "new-host");
    assert.equal(link.names.addressOf("new-host"), "10.76.0.110");
    assert.equal(link.names.hostAt("10.76.0.110"), "new-host");
  });
  await t.step("when it runs out, the name is gone", () => {
    link.advance(61);
    assert.equal(link.names.addressOf("new-host"), null);
    assert.equal(link.names.hostAt("10.76.0.110"), null);
  });
  await t.step("the laptop whose lease ends last has the name", () => {
    link.bind(link.mac(0x20), "10.76.0.104", 7200, "laptop");
    assert.equal(link.names.addressOf("laptop"), "10.76.0.104");
    assert.equal(link.names.hostAt("10.76.0.101"), null);
  });
  await t.step("without a lease table: the server and the reservations", () => {
    const names = new HostNames(SERVER, MACHINES);
    assert.equal(names.addressOf("web-1"), "10.76.0.50");
    assert.equal(names.addressOf("db-1"), null);
    assert.equal(names.hostAt("10.76.0.60"), null);
  });
});
