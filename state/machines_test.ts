import assert from "node:assert/strict";
import { openDatabase } from "./db.ts";
import { MachineStore } from "./machines.ts";

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, tick: (ms: number) => t += ms };
}

Deno.test("MachineStore keeps a sticky choice per MAC", async (t) => {
  const c = clock();
  const store = new MachineStore(openDatabase(":memory:"), { now: c.now });
  await t.step("an unknown machine has no choice", () => {
    assert.equal(store.getChoice("52:54:00:00:00:01"), null);
    assert.equal(store.get("52:54:00:00:00:01"), null);
  });
  await t.step("setChoice is read back whatever the MAC spelling", () => {
    store.setChoice("52-54-00-AA-BB-01", "debian", "server");
    for (const mac of ["52:54:00:aa:bb:01", "52-54-00-aa-bb-01", "525400AABB01"]) {
      assert.deepEqual(store.getChoice(mac), { os: "debian", class: "server" });
    }
  });
  await t.step("a new choice replaces the old one", () => {
    c.tick(1000);
    store.setChoice("52:54:00:aa:bb:01", "tiny");
    assert.deepEqual(store.getChoice("52:54:00:aa:bb:01"), { os: "tiny", class: null });
    const rec = store.get("52:54:00:aa:bb:01")!;
    assert.equal(rec.first_seen, 1_700_000_000_000);
    assert.equal(rec.last_seen, 1_700_000_001_000);
  });
  await t.step("clearChoice brings the menu back, once", () => {
    assert.equal(store.clearChoice("52:54:00:aa:bb:01"), true);
    assert.equal(store.getChoice("52:54:00:aa:bb:01"), null);
    assert.equal(store.clearChoice("52:54:00:aa:bb:01"), false);
    assert.equal(store.clearChoice("52:54:00:00:00:99"), false);
  });
  await t.step("malformed MACs are refused", () => {
    for (const bad of ["", "52:54:00", "zz:54:00:aa:bb:01", "52:54:00:aa:bb:01:02"]) {
      assert.throws(() => store.setChoice(bad, "x"), RangeError);
      assert.throws(() => store.getChoice(bad), RangeError);
    }
  });
});

Deno.test("MachineStore finds the machine behind an address", () => {
  const c = clock();
  const store = new MachineStore(openDatabase(":memory:"), { now: c.now });
  store.seen("52:54:00:00:00:01", "10.0.0.50");
  c.tick(10);
  store.seen("52:54:00:00:00:02", "10.0.0.51");
  assert.equal(store.findByIp("10.0.0.50")?.mac, "52:54:00:00:00:01");
  // The address moved to another machine: the most recent one wins.
  c.tick(10);
  store.seen("52:54:00:00:00:03", "10.0.0.50");
  assert.equal(store.findByIp("10.0.0.50")?.mac, "52:54:00:00:00:03");
  assert.equal(store.findByIp("10.0.0.99"), null);
  store.seen("52:54:00:00:00:02");
  assert.equal(store.get("52:54:00:00:00:02")?.ip, "10.0.0.51", "seen without ip keeps it");
  assert.deepEqual(store.list().map((m) => m.mac), [
    "52:54:00:00:00:02",
    "52:54:00:00:00:03",
    "52:54:00:00:00:01",
  ]);
});

Deno.test("MachineStore survives reopening the database file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "astral-machines-" });
  try {
    const db1 = openDatabase(dir);
    new MachineStore(db1).setChoice("52:54:00:00:00:07", "debian");
    db1.close();
    const db2 = openDatabase(dir);
    assert.deepEqual(new MachineStore(db2).getChoice("52:54:00:00:00:07"), {
      os: "debian",
      class: null,
    });
    db2.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
