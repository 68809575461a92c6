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
    const first = s.offer(A);
    assert.equal(first, "10.0.0.100");
    assert.equal(s.offer(A), first);
    assert.equal(s.offer(A, { clientId: "01525400" }), first);
  });
  await t.step("after ACK, a new DISCOVER gets the bound address and keeps the lease", () => {
    const { s, clock } = store();
    const ip = s.offer(A)!;
    const res = s.commit(A, ip, 3600);
    assert.ok(res.ok);
    clock.t += 1000;
    assert.equal(s.offer(B), "10.0.0.101");
    assert.equal(s.offer(A), ip);
    assert.equal(s.current(A)?.state, "bound");
    assert.equal(s.current(A)?.expires, 1_000_000 + 3600 * 1000);
  });
  await t.step("after the lease ran out, the previous address comes back if free", () => {
    const { s, clock } = store();
    const ip = s.offer(A)!;
    s.commit(A, ip, 60);
    clock.t += 3_600_000;
    assert.equal(s.current(A), null);
    assert.equal(s.offer(A), ip);
  });
});

Deno.test("two machines never share an address", async (t) => {
  await t.step("concurrent DISCOVERs are held apart", () => {
    const { s } = store();
    const a = s.offer(A), b = s.offer(B);
    assert.notEqual(a, b);
    assert.ok(s.commit(A, a!, 600).ok);
    assert.ok(s.commit(B, b!, 600).ok);
  });
  await t.step("the whole pool goes to distinct clients, then it is exhausted", () => {
    const { s } = store();
    const got = Array.from({ length: 10 }, (_, i) => s.offer(mac(i)));
    assert.equal(new Set(got).size, 10);
    assert.ok(got.every((ip) => ip !== null && s.inPool(ip)));
    assert.equal(s.offer(mac(99)), null);
  });
  await t.step("another client's address is refused on REQUEST and not offered", () => {
    const { s } = store();
    const a = s.offer(A)!;
    s.commit(A, a, 600);
    assert.deepEqual(s.commit(B, a, 600), { ok: false, reason: "in-use" });
    assert.notEqual(s.offer(B, { requestedIp: a }), a);
  });
  await t.step("an offer that was never taken frees its address after the hold", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.100"], offerHoldSeconds: 30 });
    assert.equal(s.offer(A), "10.0.0.100");
    assert.equal(s.offer(B), null);
    clock.t += 31_000;
    assert.equal(s.offer(B), "10.0.0.100");
    assert.deepEqual(s.commit(A, "10.0.0.100", 600), { ok: false, reason: "in-use" });
  });
});

Deno.test("address selection order", async (t) => {
  await t.step("a requested free address is honoured", () => {
    const { s } = store();
    assert.equal(s.offer(A, { requestedIp: "10.0.0.105" }), "10.0.0.105");
  });
  await t.step("requested addresses outside the pool are ignored", async (t) => {
    for (const req of ["10.0.0.1", "10.0.0.99", "10.0.0.254", "192.168.1.5", "not-an-ip"]) {
      await t.step(req, () => {
        const { s } = store();
        assert.equal(s.offer(A, { requestedIp: req }), "10.0.0.100");
      });
    }
  });
  await t.step("never-used addresses come before expired ones", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.102"] });
    s.commit(A, s.offer(A)!, 60);
    clock.t += 120_000;
    assert.equal(s.offer(B), "10.0.0.101");
  });
  await t.step("expired addresses are reused oldest first", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.102"] });
    // Leases end in the order .101, .102, .100.
    s.commit(A, s.offer(A)!, 300);
    s.commit(B, s.offer(B)!, 100);
    s.commit(C, s.offer(C)!, 200);
    clock.t += 1_000_000;
    assert.deepEqual([s.offer(mac(1)), s.offer(mac(2)), s.offer(mac(3))], [
      "10.0.0.101",
      "10.0.0.102",
      "10.0.0.100",
    ]);
    assert.equal(s.offer(D), null);
  });
  await t.step("a machine whose old address was taken gets another", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.101"] });
    s.commit(A, s.offer(A)!, 60);
    clock.t += 120_000;
    s.offer(B, { requestedIp: "10.0.0.100" });
    assert.equal(s.offer(A), "10.0.0.101");
  });
});

Deno.test("release and decline", async (t) => {
  await t.step("a released address is free for others and still remembered", () => {
    const { s } = store({ range: ["10.0.0.100", "10.0.0.100"] });
    s.commit(A, s.offer(A)!, 600);
    assert.equal(s.release(B, "10.0.0.100"), false);
    assert.equal(s.offer(B), null);
    assert.equal(s.release(A, "10.0.0.100"), true);
    assert.equal(s.current(A), null);
    assert.equal(s.offer(A), "10.0.0.100");
  });
  await t.step("a declined address is quarantined, then returns to the pool", () => {
    const { s, clock } = store({ range: ["10.0.0.100", "10.0.0.101"], declineSeconds: 300 });
    const first = s.offer(A)!;
    assert.equal(s.decline(A, first), true);
    const second = s.offer(A)!;
    assert.notEqual(second, first);
    assert.ok(s.commit(A, second, 3600).ok);
    assert.equal(s.offer(B), null);
    assert.deepEqual(s.commit(B, first, 600), { ok: false, reason: "declined" });
    assert.equal(s.list().find((l) => l.ip === first)?.state, "declined");
    clock.t += 301_000;
    assert.equal(s.offer(B), first);
  });
  await t.step("only the holder can decline", () => {
    const { s } = store();
    const a = s.offer(A)!;
    assert.equal(s.decline(B, a), false);
    assert.equal(s.decline(A, "10.0.0.109"), false);
    assert.equal(s.offer(A), a);
  });
});

Deno.test("reservations", async (t) => {
  const reservations = [
    { mac: R1, ip: "10.0.0.100", hostname: "inpool" },
    { mac: R2, ip: "10.0.0.50", hostname: "outside" },
  ];
  await t.step("a reserved machine gets its address, inside the range or not", () => {
    const { s } = store({ reservations });
    assert.equal(s.offer(R1), "10.0.0.100");
    assert.equal(s.offer(R2), "10.0.0.50");
    assert.ok(s.commit(R2, "10.0.0.50", 600).ok);
  });
  await t.step("reserved addresses are never offered to others", () => {
    const { s } = store({ reservations });
    const got = Array.from({ length: 10 }, (_, i) => s.offer(mac(i)));
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
  await t.step("a reservation added later wins over a dynamic lease of its address", () => {
    const db = openDatabase(":memory:");
    const range: [string, string] = ["10.0.0.100", "10.0.0.109"];
    assert.ok(new LeaseStore(db, { range }).commit(A, "10.0.0.100", 600).ok);
    const s = new LeaseStore(db, { range, reservations });
    assert.equal(s.offer(R1), "10.0.0.100");
    // The old holder is refused on renewal and moved elsewhere.
    assert.deepEqual(s.commit(A, "10.0.0.100", 600), { ok: false, reason: "reserved-for-other" });
    assert.equal(s.offer(A), "10.0.0.101");
  });
  await t.step("list shows reservations without a lease", () => {
    const { s } = store({ reservations });
    assert.deepEqual(s.list().map((l) => [l.ip, l.state, l.hostname]), [
      ["10.0.0.50", "reserved", "outside"],
      ["10.0.0.100", "reserved", "inpool"],
    ]);
  });
});

Deno.test("leases survive a restart of the file database", async () => {
  const dir = await Deno.makeTempDir({ prefix: "abd-leases-" });
  try {
    const options: LeaseStoreOptions = { range: ["10.0.0.100", "10.0.0.109"] };
    let db = openDatabase(dir);
    let s = new LeaseStore(db, options);
    const a = s.offer(A)!;
    assert.ok(s.commit(A, a, 3600, { hostname: "alpha" }).ok);
    const b = s.offer(B)!;
    db.close();

    db = openDatabase(dir);
    s = new LeaseStore(db, options);
    assert.equal(s.offer(A), a);
    assert.equal(s.current(A)?.hostname, "alpha");
    assert.equal(s.current(A)?.state, "bound");
    // B's pending offer is still held across the restart.
    assert.equal(s.offer(B), b);
    assert.notEqual(s.offer(C), a);
    assert.deepEqual(s.list().map((l) => [l.ip, l.mac, l.state]), [
      [a, A, "bound"],
      [b, B, "offered"],
      ["10.0.0.102", C, "offered"],
    ]);
    db.close();
    assert.ok((await Deno.stat(join(dir, "leases.db"))).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
