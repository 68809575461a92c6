import assert from "node:assert/strict";
import { join } from "node:path";
import { openDatabase } from "./db.ts";
import { LeaseStore, type LeaseStoreOptions, poolExclusions } from "./leases.ts";
import { Subnet } from "../net/ipv4.ts";
import { type Mac, mustParseMac } from "../net/mac.ts";

const A = mustParseMac("52:54:00:00:00:0a");
const B = mustParseMac("52:54:00:00:00:0b");
const C = mustParseMac("52:54:00:00:00:0c");
const D = mustParseMac("52:54:00:00:00:0d");
const R1 = mustParseMac("52:54:00:aa:00:01");
const R2 = mustParseMac("52:54:00:aa:00:02");

function mac(i: number): Mac {
  return mustParseMac(`52:54:00:00:01:${i.toString(16).padStart(2, "0")}`);
}

/** The address an offer gave, or null when it was refused. */
function offerIp(
  s: LeaseStore,
  mac: Mac,
  options?: { clientId?: string; requestedIp?: string },
): string | null {
  const r = s.offer(mac, options);
  return "ip" in r ? r.ip : null;
}

/** A store on a fresh in-memory database with a clock the test moves. */
function store(options: Partial<LeaseStoreOptions> = {}) {
  const clock = { t: 1_000_000 };
  const s = new LeaseStore(openDatabase(":memory:"), {
    range: ["10.0.0.100", "10.0.0.109"],
    exclude: poolExclusions("10.0.0.1", Subnet.of("10.0.0.1", "255.255.255.0"), "10.0.0.254"),
    now: () => clock.t,
    ...options,
  });
  return { s, clock };
}

Deno.test("poolExclusions lists network, broadcast, server and router", async (t) => {
  const cases: [string, string, string | undefined, string[]][] = [
    ["10.0.0.1", "255.255.255.0", "10.0.0.254", [
      "10.0.0.0",
      "10.0.0.255",
      "10.0.0.1",
      "10.0.0.254",
    ]],
    ["192.168.7.33", "255.255.255.224", undefined, [
      "192.168.7.32",
      "192.168.7.63",
      "192.168.7.33",
    ]],
  ];
  for (const [ip, mask, router, want] of cases) {
    await t.step(
      `${ip}/${mask}`,
      () => assert.deepEqual(poolExclusions(ip, Subnet.of(ip, mask), router), want),
    );
  }
});

Deno.test("the same machine keeps its address", async (t) => {
  await t.step("repeated DISCOVERs get the same offer", () => {
    const { s } = store();
    const first = offerIp(s, A);
    assert.equal(first, "10.0.0.100");
    assert.equal(offerIp(s, A), first);
    assert.equal(offerIp(s, A, { clientId: "01525400" }), first);
  });
  await t.step("after ACK, a new DISCOVER gets the bound address and keeps the lease", () => {
    const { s, clock } = store();
    const ip = offerIp(s, A)!;
    const res = s.commit(A, ip, 3600);
    assert.ok(res.ok);
    clock.t += 1000;
    assert.equal(offerIp(s, B), "10.0.0.101");
    assert.equal(offerIp(s, A), ip);
    assert.equal(s.current(A)?.state, "bound");
    assert.equal(s.current(A)?.expires, 1_000_000 + 3600 * 1000);
  });
  await t.step("after the lease ran out, the previous address comes back if free", () => {
    const { s, clock } = store();
    const ip = offerIp(s, A)!;
    s.commit(A, ip, 60);
    clock.t += 3_600_000;
    assert.equal(s.current(A), null);
    assert.equal(offerIp(s, A), ip);
  });
});

Deno.test("two machines never share an address", async (t) => {
  await t.step("concurrent DISCOVERs are held apart", () => {
    const { s } = store();
    const a = offerIp(s, A), b = offerIp(s, B);
    assert.notEqual(a, b);
    assert.ok(s.commit(A, a!, 600).ok);
    assert.ok(s.commit(B, b!, 600).ok);
  });
  await t.step("the whole pool goes to distinct clients, then it is exhausted", () => {
    const { s } = store();
    const got = Array.from({ length: 10 }, (_, i) => offerIp(s, mac(i)));
    assert.equal(new Set(got).size, 10);
    assert.ok(got.every((ip) => ip !== null && s.inPool(ip)));
    assert.equal(offerIp(s, mac(99)), null);
  });
  await t.step("another client's address is refused on REQUEST and not offered", () => {
    const { s } = store();
    const a = offerIp(s, A)!;
    s.commit(A, a, 600);
    assert.deepEqual(s.commit(B, a, 600), { ok: false, reason: "in-use" });
    assert.notEqual(offerIp(s, B, { requestedIp: a }), a);
  });
  await t.step("an offer that was never taken frees its address after the hold", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.100"], offerHoldSeconds: 30 });
    assert.equal(offerIp(s, A), "10.0.0.100");
    assert.equal(offerIp(s, B), null);
    clock.t += 31_000;
    assert.equal(offerIp(s, B), "10.0.0.100");
    assert.deepEqual(s.commit(A, "10.0.0.100", 600), { ok: false, reason: "in-use" });
  });
});

Deno.test("address selection order", async (t) => {
  await t.step("a requested free address is honoured", () => {
    const { s } = store();
    assert.equal(offerIp(s, A, { requestedIp: "10.0.0.105" }), "10.0.0.105");
  });
  await t.step("requested addresses outside the pool are ignored", async (t) => {
    for (const req of ["10.0.0.1", "10.0.0.99", "10.0.0.254", "192.168.1.5", "not-an-ip"]) {
      await t.step(req, () => {
        const { s } = store();
        assert.equal(offerIp(s, A, { requestedIp: req }), "10.0.0.100");
      });
    }
  });
  await t.step("never-used addresses come before expired ones", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.102"] });
    s.commit(A, offerIp(s, A)!, 60);
    clock.t += 120_000;
    assert.equal(offerIp(s, B), "10.0.0.101");
  });
  await t.step("expired addresses are reused oldest first", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.102"] });
    // Leases end in the order .101, .102, .100.
    s.commit(A, offerIp(s, A)!, 300);
    s.commit(B, offerIp(s, B)!, 100);
    s.commit(C, offerIp(s, C)!, 200);
    clock.t += 1_000_000;
    assert.deepEqual([offerIp(s, mac(1)), offerIp(s, mac(2)), offerIp(s, mac(3))], [
      "10.0.0.101",
      "10.0.0.102",
      "10.0.0.100",
    ]);
    assert.equal(offerIp(s, D), null);
  });
  await t.step("a machine whose old address was taken gets another", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.101"] });
    s.commit(A, offerIp(s, A)!, 60);
    clock.t += 120_000;
    offerIp(s, B, { requestedIp: "10.0.0.100" });
    assert.equal(offerIp(s, A), "10.0.0.101");
  });
});

Deno.test("release and decline", async (t) => {
  await t.step("a released address is free for others and still remembered", () => {
    const { s } = store({ range: ["10.0.0.100", "10.0.0.100"] });
    s.commit(A, offerIp(s, A)!, 600);
    assert.equal(s.release(B, "10.0.0.100"), false);
    assert.equal(offerIp(s, B), null);
    assert.equal(s.release(A, "10.0.0.100"), true);
    assert.equal(s.current(A), null);
    assert.equal(offerIp(s, A), "10.0.0.100");
  });
  await t.step("a declined address is quarantined, then returns to the pool", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.101"], declineSeconds: 300 });
    const first = offerIp(s, A)!;
    assert.equal(s.decline(A, first), true);
    const second = offerIp(s, A)!;
    assert.notEqual(second, first);
    assert.ok(s.commit(A, second, 3600).ok);
    assert.equal(offerIp(s, B), null);
    assert.deepEqual(s.commit(B, first, 600), { ok: false, reason: "declined" });
    assert.equal(s.list().find((l) => l.ip === first)?.state, "declined");
    clock.t += 301_000;
    assert.equal(offerIp(s, B), first);
  });
  await t.step("only the holder can decline", () => {
    const { s } = store();
    const a = offerIp(s, A)!;
    assert.equal(s.decline(B, a), false);
    assert.equal(s.decline(A, "10.0.0.109"), false);
    assert.equal(offerIp(s, A), a);
  });
});

Deno.test("reservations", async (t) => {
  const reservations = [
    { mac: R1, ip: "10.0.0.100", hostname: "inpool" },
    { mac: R2, ip: "10.0.0.50", hostname: "outside" },
  ];
  await t.step("a reserved machine gets its address, inside the range or not", () => {
    const { s } = store({ reservations });
    assert.equal(offerIp(s, R1), "10.0.0.100");
    assert.equal(offerIp(s, R2), "10.0.0.50");
    assert.ok(s.commit(R2, "10.0.0.50", 600).ok);
  });
  await t.step("reserved addresses are never offered to others", () => {
    const { s } = store({ reservations });
    const got = Array.from({ length: 10 }, (_, i) => offerIp(s, mac(i)));
    assert.ok(!got.includes("10.0.0.100"));
    assert.equal(got.filter((x) => x !== null).length, 9);
  });
  const refusals: [Mac, string, string][] = [
    [A, "10.0.0.100", "reserved-for-other"],
    [A, "10.0.0.50", "reserved-for-other"],
    [R1, "10.0.0.105", "has-reservation"],
    [A, "10.0.0.1", "not-in-pool"],
    [A, "10.0.0.110", "not-in-pool"],
  ];
  for (const [who, ip, reason] of refusals) {
    await t.step(`REQUEST ${ip} from ${who} is refused: ${reason}`, () => {
      const { s } = store({ reservations });
      assert.deepEqual(s.commit(who, ip, 600), { ok: false, reason });
      assert.equal(s.check(who, ip), reason);
    });
  }
  /** A holds .100; then a reload adds R1's reservation of it: never both on it at once. */
  const leasedThenReserved = () => {
    const clock = { t: 1_000_000 };
    const db = openDatabase(":memory:");
    const range: [string, string] = ["10.0.0.100", "10.0.0.109"];
    const before = new LeaseStore(db, { range, now: () => clock.t });
    assert.equal(offerIp(before, A), "10.0.0.100");
    assert.ok(before.commit(A, "10.0.0.100", 600).ok);
    const s = new LeaseStore(db, { range, reservations, now: () => clock.t });
    assert.deepEqual(s.offer(R1), { refused: "reserved-in-use" });
    return { s, clock };
  };
  await t.step("a reservation added later: the address is R1's once its holder left", () => {
    const { s } = leasedThenReserved();
    assert.deepEqual(s.commit(R1, "10.0.0.100", 600), { ok: false, reason: "in-use" });
    assert.equal(s.holderOf("10.0.0.100"), A);
    // The old holder is refused on renewal and moved elsewhere; then it is R1's.
    assert.deepEqual(s.commit(A, "10.0.0.100", 600), { ok: false, reason: "reserved-for-other" });
    assert.equal(offerIp(s, A), "10.0.0.101");
    assert.ok(s.commit(A, "10.0.0.101", 600).ok);
    assert.equal(offerIp(s, R1), "10.0.0.100");
    assert.ok(s.commit(R1, "10.0.0.100", 600).ok);
  });
  await t.step("… or once the holder's lease ran out", () => {
    const { s, clock } = leasedThenReserved();
    clock.t += 601_000;
    assert.equal(offerIp(s, R1), "10.0.0.100");
  });
  await t.step("list shows reservations without a lease", () => {
    const { s } = store({ reservations });
    assert.deepEqual(s.list().map((l) => [l.ip, l.state, l.hostname]), [
      ["10.0.0.50", "reserved", "outside"],
      ["10.0.0.100", "reserved", "inpool"],
    ]);
  });
});

Deno.test("leases survive a restart of the file database", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "abd-leases-" });
  const options: LeaseStoreOptions = { range: ["10.0.0.100", "10.0.0.109"] };
  try {
    let a = "", b = "";
    await t.step("a saved lease and, after a clean stop, an offer are there again", async () => {
      let db = openDatabase(dir);
      let s = new LeaseStore(db, options);
      a = offerIp(s, A)!;
      assert.ok(s.commit(A, a, 3600, { hostname: "alpha" }).ok);
      await s.saved();
      b = offerIp(s, B)!;
      s.flush();
      db.close();

      db = openDatabase(dir);
      s = new LeaseStore(db, options);
      assert.equal(offerIp(s, A), a);
      assert.equal(s.current(A)?.hostname, "alpha");
      assert.equal(s.current(A)?.state, "bound");
      // B's pending offer is still held across the restart.
      assert.equal(offerIp(s, B), b);
      assert.notEqual(offerIp(s, C), a);
      assert.deepEqual(s.list().map((l) => [l.ip, l.mac, l.state]), [
        [a, A, "bound"],
        [b, B, "offered"],
        ["10.0.0.102", C, "offered"],
      ]);
      s.flush();
      db.close();
      assert.ok((await Deno.stat(join(dir, "leases.db"))).isFile);
    });
    await t.step("a crash loses what was not saved yet: offers, never an ACKed lease", async () => {
      let db = openDatabase(dir);
      let s = new LeaseStore(db, options);
      assert.equal(offerIp(s, D), "10.0.0.103");
      assert.ok(s.commit(D, "10.0.0.103", 3600).ok);
      await s.saved();
      const e = mustParseMac("52:54:00:00:00:0e");
      assert.equal(offerIp(s, e), "10.0.0.104");
      // Closed without a flush: as if the process died here.
      db.close();
      db = openDatabase(dir);
      s = new LeaseStore(db, options);
      assert.equal(s.current(D)?.state, "bound");
      assert.equal(s.current(e), null);
      db.close();
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a REQUEST alone takes nothing: an address needs an offer, a lease or a reservation", async (t) => {
  await t.step("a stranger's REQUEST for a free address is refused as not offered", () => {
    const { s } = store();
    assert.deepEqual(s.commit(A, "10.0.0.105", 600), { ok: false, reason: "not-offered" });
    assert.equal(s.current(A), null);
  });
  await t.step("after an offer, and again after the lease ran out, the same address binds", () => {
    const { s, clock } = store();
    const ip = offerIp(s, A)!;
    assert.ok(s.commit(A, ip, 60).ok);
    clock.t += 3_600_000;
    assert.ok(s.commit(A, ip, 60).ok, "INIT-REBOOT with its old address");
  });
  await t.step("a reservation binds without an offer", () => {
    const { s } = store({ reservations: [{ mac: R1, ip: "10.0.0.50" }] });
    assert.ok(s.commit(R1, "10.0.0.50", 600).ok);
  });
  await t.step("253 spoofed REQUESTs bind nothing", () => {
    const { s } = store();
    for (let i = 0; i < 253; i++) s.commit(mac(i), `10.0.0.${100 + (i % 10)}`, 600);
    assert.deepEqual(s.usage(), { held: 0, size: 10 });
  });
});

Deno.test("strangers cannot take the addresses known machines need", async (t) => {
  const known = [A, B];
  await t.step("with two known machines unleased, strangers get all but two", () => {
    const { s } = store({ known });
    const got = Array.from({ length: 20 }, (_, i) => offerIp(s, mac(i)));
    assert.equal(got.filter((x) => x !== null).length, 8);
    assert.deepEqual(s.offer(mac(50)), { refused: "pool-exhausted" });
    assert.ok(offerIp(s, A));
    assert.ok(offerIp(s, B));
    assert.deepEqual(s.usage(), { held: 10, size: 10 });
  });
  await t.step("a known machine that holds an address keeps none in reserve", () => {
    const { s } = store({ known });
    assert.ok(s.commit(A, offerIp(s, A)!, 600).ok);
    const got = Array.from({ length: 20 }, (_, i) => offerIp(s, mac(i)));
    assert.equal(got.filter((x) => x !== null).length, 8);
  });
  await t.step("a stranger with a lease renews whatever the pool holds", () => {
    const { s } = store({ known });
    const ip = offerIp(s, C)!;
    assert.ok(s.commit(C, ip, 600).ok);
    for (let i = 0; i < 20; i++) offerIp(s, mac(i));
    assert.equal(offerIp(s, C), ip);
  });
});

Deno.test("new strangers are rate-limited, with a burst of five seconds' worth", () => {
  const { s, clock } = store({ newClientRate: 1, range: ["10.0.0.100", "10.0.0.199"] });
  const burst = Array.from({ length: 8 }, (_, i) => s.offer(mac(i)));
  assert.equal(burst.filter((r) => "ip" in r).length, 5);
  assert.deepEqual(burst.at(-1), { refused: "rate-limited" });
  // A stranger already holding its offer is not new.
  assert.ok("ip" in s.offer(mac(0)));
  clock.t += 2000;
  assert.equal(
    Array.from({ length: 4 }, (_, i) => s.offer(mac(20 + i))).filter((r) => "ip" in r).length,
    2,
  );
  // A clock stepped back an hour neither empties the bucket nor stops it filling.
  clock.t -= 3_600_000;
  assert.equal(
    Array.from({ length: 8 }, (_, i) => s.offer(mac(40 + i))).filter((r) => "ip" in r).length,
    0,
  );
  clock.t += 3000;
  assert.equal(
    Array.from({ length: 8 }, (_, i) => s.offer(mac(60 + i))).filter((r) => "ip" in r).length,
    3,
  );
  // Known machines never wait for the strangers' bucket.
  const k = new LeaseStore(openDatabase(":memory:"), {
    range: ["10.0.0.100", "10.0.0.199"],
    known: [A],
    newClientRate: 1,
  });
  for (let i = 0; i < 10; i++) k.offer(mac(i));
  assert.ok("ip" in k.offer(A));
  // A rate that could never give a whole token is a mistake, not a silent "refuse all".
  assert.throws(() => store({ newClientRate: 0 }), RangeError);
  assert.throws(() => store({ newClientRate: 0.1 }), RangeError);
});

Deno.test("an address whose first row the database refused is offered again", () => {
  const db = openDatabase(":memory:");
  const s = new LeaseStore(db, { range: ["10.0.0.100", "10.0.0.102"], now: () => 1_000_000 });
  db.exec(`CREATE TRIGGER refuse BEFORE INSERT ON dhcp_leases WHEN NEW.ip = '10.0.0.100'
    BEGIN SELECT RAISE(ABORT, 'refused'); END`);
  assert.equal(offerIp(s, A), "10.0.0.100");
  assert.equal(offerIp(s, B), "10.0.0.101");
  s.flush();
  db.exec("DROP TRIGGER refuse");
  // The row of .100 is gone: the never-used cursor, already past it, starts over.
  assert.equal(offerIp(s, C), "10.0.0.100");
  assert.equal(offerIp(s, D), "10.0.0.102");
  db.close();
});
