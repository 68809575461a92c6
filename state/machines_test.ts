import assert from "node:assert/strict";
import { openDatabase, openDatabaseFile } from "./db.ts";
import { defaultHostname, MachineRegistry } from "./machines.ts";
import { BootHistory } from "./history.ts";
import { type Mac, mustParseMac } from "../net/mac.ts";
import { parseUuid, type Uuid } from "../net/uuid.ts";
import { emptyInventory } from "./inventory.ts";
import { Bookkeeping } from "./bookkeeping.ts";

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, tick: (ms: number) => t += ms };
}

const A = mustParseMac("52:54:00:00:00:0a");
const B = mustParseMac("52:54:00:00:00:0b");
const C = mustParseMac("52:54:00:00:00:0c");

function registry(c = clock()) {
  const db = openDatabase(":memory:");
  return new MachineRegistry(db, {
    now: c.now,
    machines: [
      {
        mac: A,
        hostname: "etcd-1",
        ip: "10.0.0.11",
        os: "debian",
        class: "k8s-node",
        vars: { a: 1 },
      },
      { mac: B, hostname: "etcd-2", os: "debian", class: "k8s-node", vars: {} },
    ],
  });
}

Deno.test("machines come from the config, the wire, or both", async (t) => {
  const c = clock();
  const reg = registry(c);
  await t.step("a configured machine that never booted is listed with its config", () => {
    assert.deepEqual(reg.get(A), {
      mac: A,
      hostname: "etcd-1",
      ip: "10.0.0.11",
      os: "debian",
      pinned: true,
      class: "k8s-node",
      state: "chosen",
      vars: { a: 1 },
      configured: true,
      matched_by: "mac",
      uuid: null,
      inventory: emptyInventory(),
      first_seen: null,
      last_seen: null,
      installed_at: null,
      install_gen: 0,
    });
  });
  await t.step("an unknown machine is null until it makes contact", () => {
    assert.equal(reg.get(C), null);
    c.tick(5);
    reg.seen(C, "10.0.0.99");
    const m = reg.get(C)!;
    assert.equal(m.state, "new");
    assert.equal(m.hostname, "node-52540000000c");
    assert.equal(m.ip, "10.0.0.99");
    assert.equal(m.configured, false);
    assert.equal(m.pinned, false);
    assert.equal(m.first_seen, 1_700_000_000_005);
  });
  await t.step("the config's address wins over the one the machine asked from", () => {
    reg.seen(A, "10.0.0.150");
    assert.equal(reg.get(A)!.ip, "10.0.0.11");
    reg.seen(B, "10.0.0.151");
    assert.equal(reg.get(B)!.ip, "10.0.0.151");
  });
  await t.step("seen without an address keeps the one it had", () => {
    reg.seen(B);
    assert.equal(reg.get(B)!.ip, "10.0.0.151");
  });
  await t.step("list is sorted by host name and holds each MAC once", () => {
    assert.deepEqual(reg.list().map((m) => m.hostname), ["etcd-1", "etcd-2", "node-52540000000c"]);
  });
});

Deno.test("install state moves new → chosen → installing → installed → chosen", async (t) => {
  const c = clock();
  const reg = registry(c);
  const steps: [string, () => void, string, string | null][] = [
    ["first contact", () => reg.seen(C, "10.0.0.50"), "new", null],
    ["menu choice", () => reg.choose(C, "debian", "minimal", "10.0.0.50"), "chosen", "minimal"],
    ["preseed served", () => reg.installing(C), "installing", "minimal"],
    ["callback", () => reg.installed(C, "10.0.0.50"), "installed", "minimal"],
    ["config fetched again", () => reg.installing(C), "installed", "minimal"],
    ["reinstall", () => reg.reinstall(C), "chosen", "minimal"],
  ];
  for (const [name, act, state, cls] of steps) {
    await t.step(`${name} → ${state}`, () => {
      c.tick(1000);
      act();
      const m = reg.get(C)!;
      assert.equal(m.state, state);
      assert.equal(m.os, cls ? "debian" : null);
      assert.equal(m.class, cls);
    });
  }
  await t.step("installed_at keeps the last callback time", () => {
    assert.equal(reg.get(C)!.installed_at, 1_700_000_004_000);
  });
  await t.step("reinstall of an unknown machine is null", () => {
    assert.equal(reg.reinstall(mustParseMac("52:54:00:99:99:99")), null);
  });
  await t.step("reinstall of a configured machine that never booted works", () => {
    assert.equal(reg.reinstall(A)!.state, "chosen");
  });
});

Deno.test("install generations: every new install, callback and reinstall moves it on", async (t) => {
  const reg = registry();
  const gen = () => reg.get(C)!.install_gen;
  reg.seen(C, "10.0.0.50");
  await t.step("a new machine is at 0", () => assert.equal(gen(), 0));
  await t.step("a choice starts an install", () => {
    reg.choose(C, "debian");
    assert.equal(gen(), 1);
  });
  await t.step("fetching the config does not", () => {
    reg.installing(C);
    assert.equal(gen(), 1);
  });
  await t.step("the callback ends it", () => {
    reg.installed(C);
    assert.equal(gen(), 2);
  });
  await t.step("choosing again at the menu leaves an installed machine alone", () => {
    reg.choose(C, "fedora");
    assert.equal(reg.get(C)!.state, "installed");
    assert.equal(reg.get(C)!.os, "debian");
    assert.equal(gen(), 2);
  });
  await t.step("a reinstall starts the next", () => {
    reg.reinstall(C);
    assert.equal(reg.get(C)!.state, "chosen");
    assert.equal(gen(), 3);
  });
});

Deno.test("prune forgets idle strangers, never configured or installing machines", () => {
  const c = clock();
  const reg = registry(c);
  const mac = (i: number) => mustParseMac(`52:54:00:00:01:${i.toString(16).padStart(2, "0")}`);
  for (let i = 0; i < 6; i++) {
    c.tick(1000);
    reg.seen(mac(i), `10.0.1.${i}`);
  }
  reg.seen(A);
  reg.choose(mac(0), "debian");
  reg.installing(mac(0));
  reg.choose(mac(1), "debian");
  reg.installing(mac(1));
  reg.installed(mac(1));
  // Idle before 1_700_000_003_500: 0 (installing), 1 (installed), 2 (a stranger: goes).
  // Then at most 2 strangers stay: 3, 4, 5 → the oldest, 3, goes.
  assert.equal(reg.prune(1_700_000_003_500, 2), 2);
  const left = reg.list().map((m) => m.mac);
  for (const i of [0, 1, 4, 5]) assert.ok(left.includes(mac(i)), `${mac(i)} kept`);
  for (const i of [2, 3]) assert.ok(!left.includes(mac(i)), `${mac(i)} pruned`);
  assert.ok(left.includes(A) && left.includes(B));
});

Deno.test("a forgotten stranger that comes back never has an install number it had", async (t) => {
  const c = clock();
  const db = openDatabase(":memory:");
  const machines = [{ mac: A, hostname: "etcd-1", os: "debian", vars: {} }];
  const reg = new MachineRegistry(db, { now: c.now, machines });
  const had: number[] = [];
  const gen = () => reg.get(C)!.install_gen;
  reg.seen(C, "10.0.0.50");
  had.push(gen());
  reg.choose(C, "debian");
  had.push(gen());
  reg.installed(C);
  had.push(gen());
  // A reinstall makes it a stranger again that prune may forget: earlier installs' tokens are
  // dead now, and must stay so.
  reg.reinstall(C);
  had.push(gen());
  assert.deepEqual(had, [0, 1, 2, 3]);
  await t.step("a configured machine not yet seen is at the floor, as its row will be", () => {
    assert.equal(reg.get(A)!.install_gen, 0);
  });
  c.tick(60_000);
  assert.equal(reg.prune(c.now(), 10), 1);
  assert.equal(reg.get(C), null);
  await t.step("back again, it starts past every number it had", () => {
    reg.seen(C, "10.0.0.50");
    assert.equal(gen(), 4);
    reg.choose(C, "debian");
    assert.equal(gen(), 5);
  });
  await t.step("so do a configured machine's first row and a stranger never seen", () => {
    assert.equal(reg.get(A)!.install_gen, 4);
    reg.seen(A, "10.0.0.11");
    assert.equal(reg.get(A)!.install_gen, 4);
    const D = mustParseMac("52:54:00:00:00:0d");
    reg.seen(D, "10.0.0.51");
    assert.equal(reg.get(D)!.install_gen, 4);
  });
  await t.step("the floor is kept in the database, and a prune that forgets none keeps it", () => {
    assert.equal(reg.prune(0, 10), 0);
    const again = new MachineRegistry(db, { now: c.now, machines });
    const E = mustParseMac("52:54:00:00:00:0e");
    again.seen(E, "10.0.0.52");
    assert.equal(again.get(E)!.install_gen, 4);
    assert.equal(again.placeholder(E, null).install_gen, 4);
  });
});

Deno.test("the install floor: past rows the limit forgets, for queued contacts, kept when prune cannot run", async (t) => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/leases.db`;
  const c = clock();
  const D = mustParseMac("52:54:00:00:00:0d");
  const E = mustParseMac("52:54:00:00:00:0e");
  const db = openDatabaseFile(path);
  const quick = openDatabaseFile(path, { busyTimeoutMs: 0 });
  const books = new Bookkeeping(quick, { delayMs: 60_000 });
  const reg = new MachineRegistry(db, { now: c.now, bestEffort: quick, bookkeeping: books });
  const stored = (mac: Mac) =>
    (db.prepare("SELECT install_gen FROM machines WHERE mac = ?").get(mac) as
      | { install_gen: number }
      | undefined)?.install_gen;
  try {
    await t.step("a row the limit forgets raises the floor past its number", () => {
      reg.seen(C, "10.0.0.50");
      reg.choose(C, "debian");
      reg.choose(C, "fedora");
      assert.equal(reg.get(C)!.install_gen, 2);
      c.tick(1000);
      reg.seen(D, "10.0.0.51");
      // Nobody idle long enough; one stranger may stay, the newer: C goes.
      assert.equal(reg.prune(0, 1), 1);
      assert.equal(reg.get(C), null);
    });
    await t.step("a contact still queued shows the floor, and its row starts there", () => {
      reg.seen(C, "10.0.0.50");
      assert.equal(stored(C), undefined, "queued");
      assert.equal(reg.get(C)!.install_gen, 3);
      assert.equal(reg.fresh(C)!.install_gen, 3);
      assert.equal(books.flush(), true);
      assert.equal(stored(C), 3);
    });
    await t.step("while queued contacts cannot be written, prune forgets nothing", () => {
      c.tick(1000);
      reg.seen(E, "10.0.0.52");
      const other = openDatabaseFile(path, { busyTimeoutMs: 0 });
      other.exec("BEGIN IMMEDIATE");
      try {
        assert.equal(reg.prune(c.now() + 1, 0), 0);
      } finally {
        other.exec("ROLLBACK");
        other.close();
      }
      assert.deepEqual([stored(C), stored(D)], [3, 0]);
    });
    await t.step(
      "a prune SQLite rolls back itself throws its own error, and changes nothing",
      () => {
        db.exec(`CREATE TRIGGER held BEFORE DELETE ON machines
        BEGIN SELECT RAISE(ROLLBACK, 'held by a trigger'); END`);
        assert.throws(() => reg.prune(c.now() + 1, 0), /held by a trigger/);
        assert.equal(db.isTransaction, false);
        assert.deepEqual([stored(C), stored(D), stored(E)], [3, 0, 3]);
        db.exec("DROP TRIGGER held");
        assert.equal(reg.prune(c.now() + 1, 0), 3);
        assert.equal(reg.placeholder(C, null).install_gen, 4);
      },
    );
  } finally {
    books.close();
    for (const h of [quick, db]) h.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("seen gives up at once when another process holds the write lock", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/leases.db`;
  try {
    const db = openDatabaseFile(path);
    const quick = openDatabaseFile(path, { busyTimeoutMs: 0 });
    const reg = new MachineRegistry(db, { bestEffort: quick });
    const other = openDatabaseFile(path, { busyTimeoutMs: 0 });
    other.exec("BEGIN IMMEDIATE");
    const t0 = performance.now();
    assert.equal(reg.seen(C, "10.0.0.50"), false);
    assert.ok(performance.now() - t0 < 100);
    assert.equal(reg.get(C), null);
    other.exec("COMMIT");
    assert.equal(reg.seen(C, "10.0.0.50"), true);
    assert.equal(reg.get(C)!.ip, "10.0.0.50");
    for (const h of [other, quick, db]) h.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("get keeps a row for rowsKeptMs: this registry's writes show at once, another process's after", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/leases.db`;
  try {
    const db = openDatabaseFile(path);
    const quick = openDatabaseFile(path, { busyTimeoutMs: 0 });
    const bookkeeping = new Bookkeeping(quick, { delayMs: 5 });
    const server = new MachineRegistry(db, { bestEffort: quick, bookkeeping, rowsKeptMs: 300 });
    const cli = openDatabaseFile(path);
    const admin = new MachineRegistry(cli, { rowsKeptMs: 0 });
    server.seen(C, "10.0.0.50");
    server.choose(C, "tiny");
    assert.equal(server.get(C)!.state, "chosen");
    server.report(C, { serial: "SN1" });
    assert.equal(server.get(C)!.inventory.serial, "SN1", "its own report, at once");
    server.installed(C);
    assert.equal(server.get(C)!.state, "installed", "its own write, at once");
    await new Promise((r) => setTimeout(r, 30)); // the queued contact and report are written
    assert.equal(server.get(C)!.state, "installed");
    // Another process: an admin's `machine reinstall`, a report written behind the server's back.
    admin.reinstall(C);
    cli.prepare("UPDATE machine_inventory SET product = 'P2' WHERE mac = ?").run(C);
    const t0 = performance.now();
    assert.equal(server.get(C)!.state, "installed", "get: the row it read, for now");
    const now = server.fresh(C)!;
    assert.deepEqual([now.state, now.inventory.product], ["chosen", "P2"], "fresh: the database's");
    let seen = server.get(C)!;
    while (seen.state !== "chosen" && performance.now() - t0 < 2000) {
      await new Promise((r) => setTimeout(r, 20));
      seen = server.get(C)!;
    }
    const ms = performance.now() - t0;
    assert.equal(seen.state, "chosen");
    assert.equal(seen.inventory.product, "P2");
    assert.ok(ms >= 200 && ms < 1000, `the other process's write seen after ${ms} ms`);
    bookkeeping.flush();
    for (const h of [cli, quick, db]) h.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a write through the registry of an old configuration shows at once in the new one", () => {
  const db = openDatabase(":memory:");
  const old = new MachineRegistry(db);
  const current = new MachineRegistry(db); // after a reload: a new registry over the same handle
  old.choose(C, "tiny");
  old.installing(C);
  assert.equal(current.get(C)!.state, "installing");
  old.installed(C); // a callback that came in before the reload
  assert.equal(current.get(C)!.state, "installed");
  assert.equal(current.get(C)!.install_gen, 2);
  old.report(C, { serial: "SN-9" });
  assert.equal(current.get(C)!.inventory.serial, "SN-9");
});

Deno.test("a menu choice does not override the config, and its class stays with its OS", async (t) => {
  const reg = registry();
  await t.step("config os and class win over a sticky choice", () => {
    reg.choose(A, "tiny", "other");
    assert.equal(reg.get(A)!.os, "debian");
    assert.equal(reg.get(A)!.class, "k8s-node");
  });
  await t.step("a chosen class is dropped when the config pins another OS", () => {
    const r = new MachineRegistry(openDatabase(":memory:"), {
      machines: [{ mac: C, os: "debian", vars: {} }],
    });
    r.choose(C, "tiny", "big");
    assert.equal(r.get(C)!.os, "debian");
    assert.equal(r.get(C)!.class, null);
  });
  await t.step("clearChoice brings the menu back, once", () => {
    const r = new MachineRegistry(openDatabase(":memory:"));
    r.choose(C, "tiny");
    assert.equal(r.clearChoice(C), true);
    assert.equal(r.get(C)!.os, null);
    assert.equal(r.clearChoice(C), false);
  });
});

Deno.test("findByIp: the configured address, else the machine that asked last from there", () => {
  const c = clock();
  const reg = registry(c);
  const m = (i: number) => mustParseMac(`52:54:00:00:01:0${i}`);
  reg.seen(m(1), "10.0.0.50");
  c.tick(10);
  reg.seen(m(2), "10.0.0.51");
  assert.equal(reg.findByIp("10.0.0.50")?.mac, m(1));
  c.tick(10);
  reg.seen(m(3), "10.0.0.50");
  assert.equal(reg.findByIp("10.0.0.50")?.mac, m(3));
  assert.equal(reg.findByIp("10.0.0.11")?.mac, A);
  assert.equal(reg.findByIp("10.0.0.99"), null);
});

Deno.test("cluster: every machine of the same OS and class", async (t) => {
  const reg = registry();
  reg.choose(C, "debian", "minimal");
  const cases: [string, string | null, string[]][] = [
    ["debian", "k8s-node", ["etcd-1", "etcd-2"]],
    ["debian", "minimal", ["node-52540000000c"]],
    ["debian", null, []],
    ["tiny", null, []],
  ];
  for (const [os, cls, hosts] of cases) {
    await t.step(`${os}/${cls}`, () => {
      assert.deepEqual(reg.cluster(os, cls).map((m) => m.hostname), hosts);
    });
  }
});

Deno.test("history is bounded per machine, newest first", () => {
  const c = clock();
  const history = new BootHistory(openDatabase(":memory:"), { now: c.now, limit: 3 });
  for (let i = 0; i < 10; i++) {
    c.tick(1);
    history.record(C, "script", `boot ${i}`, "10.0.0.5");
  }
  history.record(B, "script", "other machine");
  assert.deepEqual(history.lines(C).map((e) => e.what), ["boot 9", "boot 8", "boot 7"]);
  assert.deepEqual(history.lines(B), [
    { at: 1_700_000_000_010, kind: "script", what: "other machine", ip: null },
  ]);
});

Deno.test("state survives a reopen, also of a database from before installed_at", async () => {
  const dir = await Deno.makeTempDir({ prefix: "abi-reg-" });
  try {
    const db0 = openDatabase(dir);
    // A database of the previous release: no installed_at column.
    db0.exec(`CREATE TABLE machines (mac TEXT PRIMARY KEY, os TEXT, class TEXT, hostname TEXT,
      ip TEXT, state TEXT, first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);
      INSERT INTO machines VALUES ('${B}', 'tiny', NULL, NULL, '10.0.0.8', NULL, 1, 1);
      INSERT INTO machines VALUES ('${A}', NULL, NULL, NULL, '10.0.0.9', 'installed', 1, 1);
      CREATE TABLE machine_boots (id INTEGER PRIMARY KEY AUTOINCREMENT, mac TEXT NOT NULL,
        at INTEGER NOT NULL, kind TEXT NOT NULL, what TEXT NOT NULL, ip TEXT);
      INSERT INTO machine_boots (mac, at, kind, what) VALUES ('${A}', 42, 'installed', 'x');`);
    db0.close();
    const db1 = openDatabase(dir);
    new MachineRegistry(db1).installed(C, "10.0.0.7");
    db1.close();
    const db2 = openDatabase(dir);
    const reg = new MachineRegistry(db2);
    const m = reg.get(C)!;
    const old = reg.get(B)!;
    const installedBefore = reg.get(A)!;
    db2.close();
    assert.equal(m.state, "installed");
    assert.equal(m.ip, "10.0.0.7");
    assert.ok(m.installed_at! > 0);
    assert.deepEqual([old.os, old.state, old.installed_at], ["tiny", "chosen", null]);
    // The callback time the old release kept in the history only is carried over.
    assert.deepEqual([installedBefore.state, installedBefore.installed_at], ["installed", 42]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const U1 = parseUuid("11111111-2222-3333-4444-555555555555")!;
const U2 = parseUuid("22222222-2222-3333-4444-555555555555")!;
const U3 = parseUuid("33333333-2222-3333-4444-555555555555")!;
const D = mustParseMac("52:54:00:00:00:0d");

/** A registry with uuid entries: U1 alone (bound to the first MAC reporting it), U2 with B. */
function uuidRegistry(c = clock()) {
  return new MachineRegistry(openDatabase(":memory:"), {
    now: c.now,
    machines: [
      { uuid: U1, hostname: "by-uuid", os: "tiny", vars: { disk: "/dev/vda" } },
      { mac: B, uuid: U2, hostname: "both", vars: {} },
      { mac: A, hostname: "by-mac", vars: {} },
    ],
  });
}

Deno.test("a [[machine]] uuid entry is bound to the first MAC that reports its UUID", async (t) => {
  const c = clock();
  const reg = uuidRegistry(c);
  const report = (mac: Mac, uuid: Uuid | null) => {
    reg.seen(mac, "10.0.0.5");
    return reg.report(mac, { uuid, serial: "S" });
  };
  await t.step("before any report the entry waits, and C is a stranger", () => {
    assert.deepEqual(reg.waiting().map((m) => m.hostname), ["by-uuid"]);
    reg.seen(C, "10.0.0.5");
    assert.deepEqual([reg.get(C)!.configured, reg.get(C)!.matched_by], [false, null]);
  });
  const table: [string, Mac, Uuid | null, Record<string, unknown>, Mac | null][] = [
    // name, who reports, what, the outcome (without recorded), who holds U1 after
    ["C reports U1: bound", C, U1, { bound: U1 }, C],
    ["C again: nothing changes", C, U1, {}, C],
    ["C reports no UUID: keeps it", C, null, {}, C],
    ["D reports U1: C holds it", D, U1, { conflict: { uuid: U1, holder: C } }, C],
    ["D reports U2: the entry's mac is B", D, U2, { conflict: { uuid: U2, holder: B } }, C],
    ["A reports U1: its own entry wins", A, U1, {}, C],
    ["B reports U3: its entry says U2", B, U3, { mismatch: U2 }, C],
    ["C reports U3: released", C, U3, { released: U1 }, null],
    ["D reports U1 now: bound", D, U1, { bound: U1 }, D],
  ];
  for (const [name, mac, uuid, outcome, holder] of table) {
    await t.step(name, () => {
      c.tick(1000);
      assert.deepEqual(report(mac, uuid), { recorded: true, ...outcome });
      const holders = reg.list().filter((m) => m.matched_by === "uuid").map((m) => m.mac);
      assert.deepEqual(holders, holder ? [holder] : []);
    });
  }
  await t.step("the bound machine has the entry's config; the others their own", () => {
    const d = reg.get(D)!;
    assert.deepEqual(
      [d.hostname, d.os, d.pinned, d.configured, d.matched_by, d.uuid, d.vars],
      ["by-uuid", "tiny", true, true, "uuid", U1, { disk: "/dev/vda" }],
    );
    assert.deepEqual([d.inventory.uuid, d.inventory.serial], [U1, "S"]);
    const c0 = reg.get(C)!;
    assert.deepEqual([c0.hostname, c0.configured, c0.inventory.uuid], [
      "node-52540000000c",
      false,
      U3,
    ]);
    assert.deepEqual([reg.get(A)!.hostname, reg.get(A)!.matched_by], ["by-mac", "mac"]);
    assert.deepEqual([reg.get(B)!.uuid, reg.get(B)!.inventory.uuid], [U2, U3]);
    assert.deepEqual(reg.waiting(), []);
  });
  await t.step("a bound machine is configured: prune keeps it, and forgets C's inventory", () => {
    c.tick(86_400_000);
    assert.equal(reg.prune(c.now(), 10), 1);
    assert.ok(reg.get(D)!.configured);
    assert.equal(reg.get(C), null);
    assert.deepEqual(reg.list().map((m) => m.mac).sort(), [A, B, D]);
  });
});

Deno.test("a report while another process holds the lock binds nothing and fails no boot", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/leases.db`;
  try {
    const db = openDatabaseFile(path, { busyTimeoutMs: 50 });
    const quick = openDatabaseFile(path, { busyTimeoutMs: 0 });
    const reg = new MachineRegistry(db, {
      bestEffort: quick,
      machines: [{ uuid: U1, hostname: "by-uuid", vars: {} }],
    });
    reg.seen(C, "10.0.0.5");
    const other = openDatabaseFile(path, { busyTimeoutMs: 0 });
    other.exec("BEGIN IMMEDIATE");
    assert.deepEqual(reg.report(C, { uuid: U1 }), { recorded: false });
    other.exec("COMMIT");
    assert.deepEqual(reg.report(C, { uuid: U1 }), { recorded: true, bound: U1 });
    assert.equal(reg.get(C)!.hostname, "by-uuid");
    for (const h of [other, quick, db]) h.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("report keeps what the other source said, and cleans what it stores", async (t) => {
  const reg = uuidRegistry();
  reg.seen(C, "10.0.0.5");
  const steps: [string, Parameters<MachineRegistry["report"]>[1], Record<string, unknown>][] = [
    [
      "DHCP: option 93, 97, 60 and 77",
      { dhcp_arch: 7, dhcp_uuid: U1, vendor_class: "PXEClient:Arch:00007", user_class: "iPXE" },
      { dhcp_arch: 7, dhcp_uuid: U1, serial: null },
    ],
    [
      "iPXE: the DHCP fields stay",
      { uuid: U2, serial: "SN\x1b[31m${x}", manufacturer: "  A   B  ", product: "" },
      { dhcp_arch: 7, uuid: U2, serial: "SN??31m??x?", manufacturer: "A B", product: null },
    ],
    ["a long serial is cut", { serial: "x".repeat(200) }, { serial: "x".repeat(64), uuid: U2 }],
  ];
  for (const [name, report, want] of steps) {
    await t.step(name, () => {
      assert.equal(reg.report(C, report).recorded, true);
      const inv = reg.get(C)!.inventory as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(want)) assert.deepEqual(inv[k], v, k);
    });
  }
});

Deno.test("defaultHostname", () => {
  assert.equal(defaultHostname(mustParseMac("52:54:00:ab:cd:ef")), "node-525400abcdef");
});

Deno.test("with a bookkeeping queue, contacts and reports wait for their batch", async (t) => {
  const c = clock();
  const db = openDatabase(":memory:");
  const books = new Bookkeeping(db, { delayMs: 60_000 });
  const reg = new MachineRegistry(db, { now: c.now, bookkeeping: books });
  const stored = (mac: Mac) =>
    db.prepare("SELECT ip, first_seen, last_seen FROM machines WHERE mac = ?").get(mac) as
      | { ip: string; first_seen: number; last_seen: number }
      | undefined;
  const t0 = c.now();
  try {
    await t.step("a first contact is queued, and get() shows it at once", () => {
      assert.equal(reg.seen(C, "10.0.0.50"), true);
      assert.equal(stored(C), undefined);
      const m = reg.get(C)!;
      assert.equal(m.ip, "10.0.0.50");
      assert.equal(m.first_seen, t0);
      assert.equal(books.pending, 1);
    });
    await t.step("another contact from that address within 10 s is not queued again", () => {
      books.flush();
      c.tick(5_000);
      reg.seen(C, "10.0.0.50");
      reg.seen(C);
      assert.equal(books.pending, 0);
      assert.equal(stored(C)!.last_seen, t0);
      assert.equal(reg.get(C)!.last_seen, t0 + 5_000);
    });
    await t.step("after 10 s, or from another address, it is written again", () => {
      c.tick(6_000);
      reg.seen(C, "10.0.0.50");
      assert.equal(books.pending, 1);
      books.flush();
      assert.equal(stored(C)!.last_seen, t0 + 11_000);
      reg.seen(C, "10.0.0.51");
      assert.equal(reg.get(C)!.ip, "10.0.0.51");
      books.flush();
      assert.equal(stored(C)!.ip, "10.0.0.51");
    });
    await t.step("reads of many machines and state changes write the queue first", () => {
      reg.seen(B, "10.0.0.61");
      assert.equal(reg.findByIp("10.0.0.61")?.mac, B);
      reg.seen(A, "10.0.0.62");
      assert.ok(reg.list().some((m) => m.mac === A && m.ip === "10.0.0.62"));
      reg.seen(C, "10.0.0.63");
      reg.choose(C, "debian");
      assert.equal(stored(C)!.ip, "10.0.0.63");
      assert.equal(books.pending, 0);
    });
    await t.step(
      "a report is shown at once; the same report again is not queued within 10 s",
      () => {
        reg.report(A, { serial: "S1", product: "P" });
        assert.equal(reg.get(A)!.inventory.serial, "S1");
        assert.equal(books.pending, 1);
        books.flush();
        c.tick(1_000);
        reg.report(A, { serial: "S1", product: "P" });
        assert.equal(books.pending, 0);
        reg.report(A, { serial: "S2", product: "P" });
        assert.equal(books.pending, 1);
        assert.equal(reg.get(A)!.inventory.serial, "S2");
        // A DHCP report carries other fields: it does not replace the waiting iPXE one.
        reg.report(A, { dhcp_arch: 7 });
        assert.equal(books.pending, 2);
        books.flush();
        const inv = reg.list().find((m) => m.mac === A)!.inventory;
        assert.equal(inv.serial, "S2");
        assert.equal(inv.dhcp_arch, 7);
      },
    );
  } finally {
    books.close();
  }
});
