import assert from "node:assert/strict";
import { join } from "node:path";
import { openDatabase, openDatabaseFile } from "./db.ts";
import { LeaseStore, poolExclusions, type Reservation } from "./leases.ts";
import { LeasePools } from "./lease_pools.ts";
import { Subnet } from "../net/ipv4.ts";
import { mustParseMac } from "../net/mac.ts";

const LOCAL = Subnet.parse("10.0.0.0/24");
const RELAYED = Subnet.parse("10.9.0.0/24");
const A = mustParseMac("52:54:00:00:00:0a");
const B = mustParseMac("52:54:00:00:00:0b");
const KNOWN = mustParseMac("52:54:00:00:00:0c");
const HERE = mustParseMac("52:54:00:aa:00:01");
const THERE = mustParseMac("52:54:00:aa:00:02");
const STRANGERS = Array.from(
  { length: 8 },
  (_, i) => mustParseMac(`52:54:00:00:01:${i.toString(16).padStart(2, "0")}`),
);

/** Two pools over one database, as `serve` makes them: the interface's and a relayed one. */
function pools(size = 5, db = openDatabase(":memory:")) {
  const clock = { t: 1_000_000 };
  const reservations: Reservation[] = [
    { mac: HERE, ip: "10.0.0.20", hostname: "here" },
    { mac: THERE, ip: "10.9.0.20", hostname: "there" },
  ];
  const make = (subnet: Subnet, range: [string, string], router: string) =>
    new LeaseStore(db, {
      range,
      subnet,
      exclude: poolExclusions("10.0.0.1", subnet, router),
      reservations,
      known: [KNOWN, HERE, THERE],
      now: () => clock.t,
    });
  const local = make(LOCAL, ["10.0.0.100", `10.0.0.${99 + size}`], "10.0.0.254");
  const relayed = make(RELAYED, ["10.9.0.100", `10.9.0.${99 + size}`], "10.9.0.1");
  return {
    local,
    relayed,
    all: new LeasePools([{ subnet: LOCAL, store: local }, { subnet: RELAYED, store: relayed }]),
    clock,
  };
}

function ip(r: ReturnType<LeaseStore["offer"]>): string | null {
  return "ip" in r ? r.ip : null;
}

Deno.test("each subnet's store hands out its own range; the pools read as one", async (t) => {
  const p = pools();
  await t.step("addresses come from the store's own range", () => {
    assert.equal(ip(p.local.offer(A)), "10.0.0.100");
    assert.equal(ip(p.relayed.offer(B)), "10.9.0.100");
    assert.equal(p.local.commit(A, "10.0.0.100", 60).ok, true);
    assert.equal(p.relayed.commit(B, "10.9.0.100", 60).ok, true);
  });
  await t.step("a store lists and finds only its own subnet's leases", () => {
    assert.deepEqual(p.local.list().map((l) => l.ip), ["10.0.0.20", "10.0.0.100"]);
    assert.deepEqual(p.relayed.list().map((l) => l.ip), ["10.9.0.20", "10.9.0.100"]);
    assert.equal(p.local.current(B), null);
    assert.equal(p.local.holderOf("10.9.0.100"), null);
    assert.equal(p.relayed.release(A, "10.0.0.100"), false);
  });
  await t.step("a reservation belongs to the store of its subnet", () => {
    assert.equal(p.local.reservation(THERE), undefined);
    assert.equal(p.relayed.reservation(THERE)?.ip, "10.9.0.20");
    assert.equal(ip(p.relayed.offer(THERE)), "10.9.0.20");
  });
  await t.step("the pools: every lease with its subnet, usage per subnet", () => {
    assert.deepEqual(
      p.all.list().map((l) => `${l.subnet} ${l.ip} ${l.state}`),
      [
        "10.0.0.0/24 10.0.0.20 reserved",
        "10.0.0.0/24 10.0.0.100 bound",
        "10.9.0.0/24 10.9.0.20 offered",
        "10.9.0.0/24 10.9.0.100 bound",
      ],
    );
    assert.deepEqual(p.all.usage(), [
      { subnet: "10.0.0.0/24", held: 1, size: 5 },
      { subnet: "10.9.0.0/24", held: 1, size: 5 },
    ]);
  });
  await t.step("the pools find a machine's lease and an address's holder in any subnet", () => {
    assert.equal(p.all.current(A)?.ip, "10.0.0.100");
    assert.equal(p.all.current(B)?.ip, "10.9.0.100");
    assert.equal(p.all.holderOf("10.9.0.100"), B);
    assert.equal(p.all.holderOf("10.0.0.100"), A);
    assert.equal(p.all.holderOf("10.5.0.1"), null);
    assert.equal(p.all.holderOf("::1"), null);
  });
  await t.step("a machine that moves to another subnet gives up its old address", () => {
    assert.equal(ip(p.relayed.offer(A)), "10.9.0.101");
    assert.equal(p.relayed.commit(A, "10.9.0.101", 60).ok, true);
    assert.equal(p.all.current(A)?.ip, "10.9.0.101");
    assert.equal(p.local.current(A), null);
  });
});

Deno.test("room for known machines: a machine reserved in another subnet is known, not kept room for", () => {
  // KNOWN has no reservation: each pool keeps one address for it. HERE and THERE are reserved,
  // each in one pool: neither pool keeps room for them, and neither is a stranger anywhere.
  const p = pools(3);
  const got = STRANGERS.map((m) => ip(p.relayed.offer(m)));
  assert.deepEqual(got.filter((x) => x !== null), ["10.9.0.100", "10.9.0.101"]);
  assert.equal(ip(p.relayed.offer(KNOWN)), "10.9.0.102");
  assert.equal(ip(p.relayed.offer(HERE)), null, "HERE is known; the relayed pool is full");
  assert.deepEqual(p.relayed.offer(HERE), { refused: "pool-exhausted" });
  // KNOWN holds an address now, so the local pool keeps none for it. Two strangers move (they
  // hold addresses, so they are not new) and give theirs up; the third is new and fits.
  const local = STRANGERS.slice(0, 3).map((m) => ip(p.local.offer(m)));
  assert.deepEqual(local, ["10.0.0.100", "10.0.0.101", "10.0.0.102"]);
  assert.deepEqual(p.all.usage().map((u) => u.held), [3, 1]);
});

Deno.test("the subnets share one lease table: their ACKs in one commit, all on disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "abd-pools-" });
  const file = join(dir, "leases.db");
  const db = openDatabaseFile(file, { busyTimeoutMs: 0 });
  const reader = openDatabaseFile(file);
  try {
    const p = pools(5, db);
    await p.local.saved();
    const commits = () =>
      (reader.prepare("PRAGMA data_version").get() as { data_version: number }).data_version;
    const before = commits();
    assert.equal(p.local.commit(A, ip(p.local.offer(A))!, 60).ok, true);
    assert.equal(p.relayed.commit(B, ip(p.relayed.offer(B))!, 60).ok, true);
    await Promise.all([p.local.saved(), p.relayed.saved()]);
    assert.equal(commits() - before, 1);
    const rows = reader.prepare(
      "SELECT mac, ip, state FROM dhcp_leases WHERE state = 'bound' ORDER BY ip",
    ).all();
    assert.deepEqual(rows.map((r) => `${r.mac} ${r.ip}`), [
      `${A} 10.0.0.100`,
      `${B} 10.9.0.100`,
    ]);
  } finally {
    reader.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
