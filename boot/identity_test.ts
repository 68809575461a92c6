import assert from "node:assert/strict";
import { type Mac, mustParseMac } from "../net/mac.ts";
import { type AddressBook, MachineIdentity } from "./identity.ts";
import { BootRequestError } from "./errors.ts";

const LEASED = mustParseMac("52:54:00:00:00:01");
const RESERVED = mustParseMac("52:54:00:00:00:02");
const NEIGHBOUR = mustParseMac("52:54:00:00:00:03");
const UNKNOWN = mustParseMac("52:54:00:00:00:04");

function lookup(table: Record<string, Mac>) {
  return {
    of: (mac: Mac) => Object.entries(table).find(([, m]) => m === mac)?.[0] ?? null,
    at: (ip: string) => table[ip] ?? null,
  };
}

const leases = lookup({ "10.0.0.100": LEASED });
const LATE = mustParseMac("52:54:00:00:00:05");
const reservations = lookup({ "10.0.0.20": RESERVED, "10.0.0.100": LATE });
const neighbours = lookup({ "10.0.0.30": NEIGHBOUR });
const book: AddressBook = {
  leaseOf: leases.of,
  leaseAt: leases.at,
  reservationOf: reservations.of,
  reservedAt: reservations.at,
  neighbourAt: neighbours.at,
};

Deno.test("a MAC may act only from the address it holds", async (t) => {
  const identity = new MachineIdentity(book);
  const cases: [string, Mac, string | null, boolean][] = [
    ["a lease, from its address", LEASED, "10.0.0.100", true],
    ["a lease, from elsewhere", LEASED, "10.0.0.101", false],
    ["a reservation, from its address", RESERVED, "10.0.0.20", true],
    ["a reservation, from a leased address of another", RESERVED, "10.0.0.100", false],
    ["a neighbour entry (proxy mode), from its address", NEIGHBOUR, "10.0.0.30", true],
    ["a neighbour, claiming a leased MAC", LEASED, "10.0.0.30", false],
    ["a MAC nobody knows", UNKNOWN, "10.0.0.77", false],
    // A reservation added while another client still holds the address (reserved-in-use).
    ["a reservation whose address another still holds", LATE, "10.0.0.100", false],
    ["… and that holder, for itself", LEASED, "10.0.0.100", true],
    ["no client address", LEASED, null, false],
  ];
  for (const [name, mac, ip, ok] of cases) {
    await t.step(`${name}: ${ok ? "yes" : "no"}`, () => {
      assert.equal(identity.check(mac, ip).ok, ok);
    });
  }
  await t.step("the refusal says what is known, and is a 403", () => {
    const r = identity.check(LEASED, "10.0.0.30");
    assert.ok(!r.ok);
    assert.equal(
      r.why,
      "52:54:00:00:00:01 does not ask from 10.0.0.30 (its lease is 10.0.0.100; 10.0.0.30 " +
        "belongs to 52:54:00:00:00:03): a machine acts only for itself",
    );
    assert.throws(() => identity.require(LEASED, "10.0.0.30"), (e: unknown) => {
      assert.ok(e instanceof BootRequestError);
      assert.equal(e.status, 403);
      return true;
    });
    const unknown = identity.check(UNKNOWN, "10.0.0.77");
    assert.ok(!unknown.ok);
    assert.match(unknown.why, /\(no lease, reservation or neighbour entry\)/);
  });
  await t.step("machineAt: lease, then reservation, then neighbour", () => {
    assert.equal(identity.machineAt("10.0.0.100"), LEASED);
    assert.equal(identity.machineAt("10.0.0.20"), RESERVED);
    assert.equal(identity.machineAt("10.0.0.30"), NEIGHBOUR);
    assert.equal(identity.machineAt("10.0.0.99"), null);
    assert.equal(identity.machineAt(null), null);
  });
});
