import assert from "node:assert/strict";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { openDatabase, openDatabaseFile, WriteAheadLog } from "./db.ts";
import { failureKind, type LeaseRow, LeaseTable } from "./lease_table.ts";
import { ipv4ToNumber, numberToIpv4 } from "../net/ipv4.ts";

function row(ip: string, mac: string, state: LeaseRow["state"] = "bound"): LeaseRow {
  return {
    ipnum: ipv4ToNumber(ip),
    mac,
    clientId: null,
    hostname: null,
    state,
    expires: 2_000_000_000_000,
  };
}

/** The address of `r` as text. */
const ipOf = (r: LeaseRow) => numberToIpv4(r.ipnum);

/** The rows another connection (another process: `astralboot leases`) reads from the file. */
function onDisk(file: string): string[] {
  const db = openDatabaseFile(file);
  try {
    return (db.prepare("SELECT ip, mac, state FROM dhcp_leases ORDER BY ipnum").all() as {
      ip: string;
      mac: string;
      state: string;
    }[]).map((r) => `${r.ip} ${r.mac} ${r.state}`);
  } finally {
    db.close();
  }
}

/** Commits by any connection so far, as another connection counts them. */
function commits(reader: DatabaseSync): number {
  return (reader.prepare("PRAGMA data_version").get() as { data_version: number }).data_version;
}

/** Whether a promise has settled (after the microtasks queued so far). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => done = true, () => done = true);
  await new Promise((r) => setTimeout(r, 0));
  return done;
}

async function withFile(fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "abd-lease-table-" });
  try {
    await fn(join(dir, "leases.db"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("group commit: changes are seen at once, written together, saved after the fsync", async (t) => {
  await withFile(async (file) => {
    const db = openDatabaseFile(file, { busyTimeoutMs: 0 });
    const table = LeaseTable.of(db);
    const reader = openDatabaseFile(file);
    try {
      await t.step("one table per connection, which syncs the log itself", () => {
        assert.equal(LeaseTable.of(db), table);
        // 1 = NORMAL: a commit returns before the write-ahead log is synced; the table syncs
        // it after, off the event loop, before saved() resolves (the next test, and the
        // strace of tests/dhcp_test.ts).
        assert.equal(
          (db.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous,
          1,
        );
        // Without a log file of its own (in memory), each commit syncs itself: 2 = FULL.
        const memory = openDatabase(":memory:");
        LeaseTable.of(memory);
        assert.equal(
          (memory.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous,
          2,
        );
        memory.close();
      });
      await t.step(
        "a change is visible in memory at once, on disk only after saved()",
        async () => {
          table.put(row("10.0.0.100", "52:54:00:00:00:01"));
          assert.equal(table.get(ipv4ToNumber("10.0.0.100"))?.mac, "52:54:00:00:00:01");
          assert.deepEqual(table.ofMac("52:54:00:00:00:01").map(ipOf), ["10.0.0.100"]);
          assert.deepEqual(onDisk(file), []);
          await table.saved();
          assert.deepEqual(onDisk(file), ["10.0.0.100 52:54:00:00:00:01 bound"]);
          assert.equal(table.pending, 0);
        },
      );
      await t.step(
        "the changes of one turn share one commit; promises resolve in order",
        async () => {
          const before = commits(reader);
          const order: number[] = [];
          const waits = [1, 2, 3].map((i) => {
            table.put(row(`10.0.0.${100 + i}`, `52:54:00:00:00:0${i}`));
            return table.saved().then(() => order.push(i));
          });
          // An offer in the same turn rides along without anyone waiting for it.
          table.put(row("10.0.0.110", "52:54:00:00:00:09", "offered"));
          await Promise.all(waits);
          assert.deepEqual(order, [1, 2, 3]);
          assert.equal(commits(reader) - before, 1);
          assert.equal(onDisk(file).length, 5);
        },
      );
      await t.step("an index follows a row that changes hands", async () => {
        table.put({ ...row("10.0.0.101", "52:54:00:00:00:0a"), hostname: "Alpha" });
        assert.deepEqual(table.ofMac("52:54:00:00:00:01").map(ipOf), ["10.0.0.100"]);
        assert.deepEqual(table.ofMac("52:54:00:00:00:0a").map(ipOf), ["10.0.0.101"]);
        assert.deepEqual(table.ofHostname("ALPHA").map(ipOf), ["10.0.0.101"]);
        await table.saved();
      });
      await t.step("a new connection loads what was saved", () => {
        const again = openDatabaseFile(file);
        try {
          const loaded = LeaseTable.of(again);
          assert.equal([...loaded.rows()].length, 5);
          assert.equal(loaded.ofHostname("alpha")[0]?.mac, "52:54:00:00:00:0a");
        } finally {
          again.close();
        }
      });
    } finally {
      reader.close();
      db.close();
    }
  });
});

/** A log whose syncs the test ends by hand; blocking syncs are counted. */
function handLog() {
  const log = {
    syncs: [] as PromiseWithResolvers<void>[],
    blocking: 0,
    closed: false,
    sync() {
      log.syncs.push(Promise.withResolvers<void>());
      return log.syncs.at(-1)!.promise;
    },
    syncNow() {
      log.blocking++;
    },
    close() {
      log.closed = true;
    },
  };
  return log;
}

const turn = () => new Promise((r) => setTimeout(r, 5));

/** A table in memory over a log synced by hand, with one row committed and waited for. */
async function oneCommit(options: { maxWaitMs?: number } = {}) {
  const log = handLog();
  const db = openDatabase(":memory:");
  const table = LeaseTable.of(db, { syncLog: log, commitGapMs: 0, ...options });
  table.put(row("10.0.0.1", "52:54:00:00:01:01"));
  const first = table.saved();
  await turn();
  return { log, db, table, first };
}

Deno.test("group commit: saved() waits for the log's sync, and commits during one share the next", async () => {
  const { log, db, table, first } = await oneCommit();
  try {
    // Committed (another connection would read it), not yet durable: no answer yet.
    assert.equal(table.pending, 0);
    assert.equal(log.syncs.length, 1);
    assert.equal(await settled(first), false);

    // Two commits while the first sync runs: they wait for the next one, which covers both.
    table.put(row("10.0.0.2", "52:54:00:00:01:02"));
    const second = table.saved();
    await turn();
    table.put(row("10.0.0.3", "52:54:00:00:01:03"));
    const third = table.saved();
    await turn();
    assert.equal(log.syncs.length, 1);
    log.syncs[0]!.resolve();
    await first;
    await turn();
    assert.equal(log.syncs.length, 2);
    assert.equal(await settled(second), false);

    // flush() (shutdown) while that sync runs: a blocking sync for what came after; those of
    // the running one get its own answer.
    table.put(row("10.0.0.4", "52:54:00:00:01:04"));
    const fourth = table.saved();
    table.flush();
    assert.equal(log.blocking, 1);
    assert.equal(await settled(fourth), true);
    assert.deepEqual([await settled(second), await settled(third)], [false, false]);
    log.syncs[1]!.resolve();
    await Promise.all([second, third]);
    await turn();

    // An offer nobody waits for is synced by flush() too; with nothing written, no sync.
    table.put(row("10.0.0.5", "52:54:00:00:01:05", "offered"));
    table.flush();
    assert.equal(log.blocking, 2);
    table.flush();
    assert.equal(log.blocking, 2);
    table.close();
    assert.equal(log.closed, true);
    // Closed: nobody is told a later change is on disk.
    table.put(row("10.0.0.6", "52:54:00:00:01:06"));
    await assert.rejects(table.saved(), /lease table closed/);
    assert.equal(log.syncs.length, 2);
  } finally {
    db.close();
  }
});

Deno.test("a failed sync of the log withholds every later answer; a hung one turns its waiters away", async (t) => {
  await t.step("failed: the ones it covered and all later ones are rejected", async () => {
    const { log, db, table, first } = await oneCommit();
    try {
      log.syncs[0]!.reject(new Error("Input/output error (os error 5)"));
      await assert.rejects(first, /lease commit not synced to disk: Input\/output error/);
      assert.equal(failureKind(await first.catch((e) => e)), "sync");
      // The next commit and its sync would succeed, but the log before it may have a hole.
      table.put(row("10.0.0.2", "52:54:00:00:01:02"));
      await assert.rejects(table.saved(), /not synced to disk: Input\/output error/);
      assert.equal(log.syncs.length, 1);
      assert.throws(() => table.flush(), /not synced to disk/);
      // Memory keeps what was answered; the rows are in the database for readers.
      assert.equal(table.get(ipv4ToNumber("10.0.0.2"))?.mac, "52:54:00:00:01:02");
    } finally {
      db.close();
    }
  });
  await t.step("hung: after maxWaitMs its waiters and new ones are rejected", async () => {
    const { log, db, table, first } = await oneCommit({ maxWaitMs: 50 });
    try {
      assert.equal(log.syncs.length, 1);
      // One more commit waits behind it.
      table.put(row("10.0.0.2", "52:54:00:00:01:02"));
      const second = table.saved();
      await turn();
      for (const p of [first, second]) {
        await assert.rejects(p, /a sync has been running for \d+ ms/);
      }
      table.put(row("10.0.0.3", "52:54:00:00:01:03"));
      await assert.rejects(table.saved(), /a sync has been running for \d+ ms/);
      // The disk answers at last: later waiters go on.
      log.syncs[0]!.resolve();
      await turn();
      table.put(row("10.0.0.4", "52:54:00:00:01:04"));
      const third = table.saved();
      await turn();
      log.syncs[1]!.resolve();
      await third;
    } finally {
      db.close();
    }
  });
});

Deno.test("WriteAheadLog: the -wal file of a database on disk, none in memory; a log removed by hand is an error", async () => {
  assert.equal(WriteAheadLog.of(openDatabase(":memory:")), undefined);
  await withFile(async (file) => {
    const db = openDatabaseFile(file, { busyTimeoutMs: 0 });
    const log = WriteAheadLog.of(db)!;
    try {
      assert.equal(log.path, `${file}-wal`);
      db.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
      assert.ok(Deno.statSync(log.path).size > 0);
      await log.sync();
      log.syncNow();
      log.close();
      Deno.removeSync(log.path);
      await assert.rejects(() => log.sync(), Deno.errors.NotFound);
    } finally {
      log.close();
      db.close();
    }
  });
});

Deno.test("group commit: a busy database delays the ACKs, never the event loop", async (t) => {
  await withFile(async (file) => {
    const db = openDatabaseFile(file, { busyTimeoutMs: 0 });
    const table = LeaseTable.of(db, { maxWaitMs: 400 });
    // Another process's lock, as an admin's backup or a stuck script would hold it.
    const other = openDatabaseFile(file);
    try {
      await t.step("while the lock is held, saved() waits and the loop goes on", async () => {
        other.exec("BEGIN IMMEDIATE");
        table.put(row("10.0.0.100", "52:54:00:00:00:01"));
        const saved = table.saved();
        const t0 = performance.now();
        await new Promise((r) => setTimeout(r, 20));
        // A commit that waited for the lock (busy_timeout) would have held the loop 2 s.
        assert.ok(performance.now() - t0 < 200, `timer late: ${performance.now() - t0} ms`);
        assert.equal(await settled(saved), false);
        assert.equal(table.get(ipv4ToNumber("10.0.0.100"))?.state, "bound");
        other.exec("COMMIT");
        await saved;
        assert.deepEqual(onDisk(file), ["10.0.0.100 52:54:00:00:00:01 bound"]);
      });
      await t.step("held longer than maxWaitMs: saved() rejects, the change stays", async () => {
        other.exec("BEGIN IMMEDIATE");
        table.put(row("10.0.0.101", "52:54:00:00:00:02"));
        // Even with the wall clock stepped back an hour while it waits.
        const saved = table.saved();
        const realNow = Date.now;
        Date.now = () => realNow() - 3_600_000;
        try {
          const outcome = await Promise.race([
            saved.then(() => "saved", (e) => String(e)),
            new Promise((r) => setTimeout(r, 3000)).then(() => "still waiting"),
          ]);
          assert.match(outcome, /database busy/);
        } finally {
          Date.now = realNow;
        }
        other.exec("COMMIT");
        assert.equal(table.pending, 1);
        await table.saved();
        assert.equal(onDisk(file).length, 2);
      });
    } finally {
      other.close();
      db.close();
    }
  });
});

Deno.test("group commit: a failed commit rejects its waiters and is written with the next", async () => {
  const db = openDatabase(":memory:");
  const table = LeaseTable.of(db);
  // A database that may not grow: a write needing a new page fails as on a full disk
  // (SQLITE_FULL), rows big enough to need one each.
  const pages = (db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
  db.exec(`PRAGMA max_page_count = ${pages}`);
  const big = (ip: string, mac: string) => ({ ...row(ip, mac), hostname: "h".repeat(5000) });
  table.put(big("10.0.0.100", "52:54:00:00:00:01"));
  const first = table.saved();
  table.put(big("10.0.0.101", "52:54:00:00:00:02"));
  const second = table.saved();
  await assert.rejects(first, /disk is full/);
  await assert.rejects(second, /disk is full/);
  // Memory keeps the answer the clients will get when they ask again.
  assert.equal(table.pending, 2);
  assert.throws(() => table.flush(), /disk is full/);
  db.exec(`PRAGMA max_page_count = ${pages + 100}`);
  await table.saved();
  assert.equal(table.pending, 0);
  const n = db.prepare("SELECT count(*) AS n FROM dhcp_leases").get() as { n: number };
  assert.equal(n.n, 2);
  db.close();
});

Deno.test("a database of an earlier release: rows kept, its unused indexes dropped", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "state.db");
    const old = openDatabaseFile(file);
    old.exec(`CREATE TABLE dhcp_leases (ip TEXT PRIMARY KEY, ipnum INTEGER NOT NULL,
      mac TEXT NOT NULL, client_id TEXT, hostname TEXT, state TEXT NOT NULL, expires INTEGER NOT NULL);
    CREATE INDEX dhcp_leases_mac ON dhcp_leases(mac);
    CREATE INDEX dhcp_leases_ipnum ON dhcp_leases(ipnum);
    CREATE INDEX dhcp_leases_hostname ON dhcp_leases(hostname COLLATE NOCASE);
    INSERT INTO dhcp_leases VALUES ('10.0.0.100', ${ipv4ToNumber("10.0.0.100")},
      '52:54:00:00:00:01', NULL, 'web1', 'bound', 2000000000000);`);
    old.close();

    // Another process holding the write lock: the drop waits for a later start, the rows load.
    const other = openDatabaseFile(file);
    other.exec("BEGIN IMMEDIATE");
    const locked = openDatabaseFile(file, { busyTimeoutMs: 0 });
    assert.deepEqual([...LeaseTable.of(locked).rows()].map(ipOf), ["10.0.0.100"]);
    locked.close();
    other.exec("ROLLBACK");
    other.close();

    const db = openDatabaseFile(file);
    const table = LeaseTable.of(db);
    assert.deepEqual(table.ofHostname("WEB1").map(ipOf), ["10.0.0.100"]);
    assert.deepEqual(table.ofMac("52:54:00:00:00:01").map((r) => r.state), ["bound"]);
    const indexes = db.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'dhcp_leases'",
    ).all() as { name: string }[];
    // Only the primary key's own index is left.
    assert.deepEqual(indexes.map((i) => i.name), ["sqlite_autoindex_dhcp_leases_1"]);
    table.put(row("10.0.0.101", "52:54:00:00:00:02"));
    await table.saved();
    db.close();
    assert.deepEqual(onDisk(file), [
      "10.0.0.100 52:54:00:00:00:01 bound",
      "10.0.0.101 52:54:00:00:00:02 bound",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a row the database refuses is left out; the others of its commit and later ones are written", async () => {
  const db = openDatabase(":memory:");
  const table = LeaseTable.of(db, { commitGapMs: 0 });
  const bad = (ip: string, mac: string) => ({
    ...row(ip, mac),
    expires: null as unknown as number,
  });
  table.put(row("10.0.0.100", "52:54:00:00:00:01"));
  await table.saved();

  // A change of a saved row and a new row, both of values NOT NULL refuses, beside a good one.
  table.put(bad("10.0.0.100", "52:54:00:00:00:0a"));
  const changed = table.saved(ipv4ToNumber("10.0.0.100"));
  table.put(bad("10.0.0.101", "52:54:00:00:00:0b"));
  const added = table.saved(ipv4ToNumber("10.0.0.101"));
  table.put(row("10.0.0.102", "52:54:00:00:00:02"));
  const good = table.saved(ipv4ToNumber("10.0.0.102"));
  const unnamed = table.saved();
  await assert.rejects(changed, /lease row of 10\.0\.0\.100 refused: NOT NULL/);
  await assert.rejects(added, /lease row of 10\.0\.0\.101 refused/);
  await good;
  await unnamed;
  // Memory went back to what is on disk, indexes included.
  assert.equal(table.get(ipv4ToNumber("10.0.0.100"))?.mac, "52:54:00:00:00:01");
  assert.deepEqual(table.ofMac("52:54:00:00:00:0a"), []);
  assert.equal(table.get(ipv4ToNumber("10.0.0.101")), undefined);
  assert.deepEqual(table.ofMac("52:54:00:00:00:0b"), []);
  assert.equal(table.pending, 0);

  // Nothing is left to fail the next commit.
  table.put(row("10.0.0.103", "52:54:00:00:00:03"));
  await table.saved(ipv4ToNumber("10.0.0.103"));
  const onDiskNow = db.prepare("SELECT ip, mac FROM dhcp_leases ORDER BY ipnum").all() as {
    ip: string;
    mac: string;
  }[];
  assert.deepEqual(onDiskNow.map((r) => `${r.ip} ${r.mac}`), [
    "10.0.0.100 52:54:00:00:00:01",
    "10.0.0.102 52:54:00:00:00:02",
    "10.0.0.103 52:54:00:00:00:03",
  ]);
  db.close();
});

Deno.test("refused rows: the row on disk comes back whatever came between", async (t) => {
  const db = openDatabase(":memory:");
  const told: string[] = [];
  const table = LeaseTable.of(db, {
    commitGapMs: 0,
    onRefused: (r, e) => told.push(`${ipOf(r)} ${e.message.replace(/:.*/, "")}`),
  });
  const at = (ip: string) => table.get(ipv4ToNumber(ip));
  const disk = () =>
    (db.prepare("SELECT ip, mac, hostname FROM dhcp_leases ORDER BY ipnum").all() as {
      ip: string;
      mac: string;
      hostname: string | null;
    }[]).map((r) => `${r.ip} ${r.mac} ${r.hostname}`);
  table.put({ ...row("10.0.0.100", "52:54:00:00:00:01"), hostname: "one" });
  await table.saved();

  await t.step(
    "two changes before the commit, the last refused: back to the first on disk",
    async () => {
      table.put({ ...row("10.0.0.100", "52:54:00:00:00:02"), hostname: "two" });
      table.put({
        ...row("10.0.0.100", "52:54:00:00:00:03"),
        hostname: "three",
        state: undefined as never,
      });
      await assert.rejects(
        table.saved(ipv4ToNumber("10.0.0.100")),
        /refused: Provided value cannot be bound/,
      );
      assert.equal(at("10.0.0.100")?.mac, "52:54:00:00:00:01");
      assert.deepEqual(table.ofHostname("one").map(ipOf), ["10.0.0.100"]);
      assert.deepEqual([...table.ofHostname("two"), ...table.ofHostname("three")], []);
      assert.deepEqual(table.ofMac("52:54:00:00:00:02"), []);
      assert.deepEqual(told, ["10.0.0.100 lease row of 10.0.0.100 refused"]);
    },
  );

  await t.step(
    "the same holder under another name, refused: its MAC's list is kept, the name comes back",
    async () => {
      table.put({
        ...row("10.0.0.100", "52:54:00:00:00:01"),
        hostname: "renamed",
        state: undefined as never,
      });
      assert.deepEqual(table.ofHostname("renamed").map(ipOf), ["10.0.0.100"]);
      await assert.rejects(table.saved(ipv4ToNumber("10.0.0.100")), /refused/);
      assert.equal(at("10.0.0.100")?.hostname, "one");
      assert.deepEqual(table.ofMac("52:54:00:00:00:01").map(ipOf), ["10.0.0.100"]);
      assert.deepEqual(table.ofHostname("one").map(ipOf), ["10.0.0.100"]);
      assert.deepEqual(table.ofHostname("renamed"), []);
    },
  );

  await t.step("a commit that failed first, then a refusal: still the row on disk", async () => {
    const pages = (db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
    db.exec(`PRAGMA max_page_count = ${pages}`);
    table.put({ ...row("10.0.0.100", "52:54:00:00:00:04"), hostname: "h".repeat(5000) });
    await assert.rejects(table.saved(), /disk is full/);
    db.exec(`PRAGMA max_page_count = ${pages + 100}`);
    table.put({ ...row("10.0.0.100", "52:54:00:00:00:05"), expires: null as unknown as number });
    await assert.rejects(table.saved(ipv4ToNumber("10.0.0.100")), /NOT NULL/);
    assert.equal(at("10.0.0.100")?.mac, "52:54:00:00:00:01");
    assert.deepEqual(disk(), ["10.0.0.100 52:54:00:00:00:01 one"]);
  });

  await t.step(
    "a refusal that undoes the whole transaction: the others are written all the same",
    async () => {
      db.exec(`CREATE TRIGGER refuse BEFORE INSERT ON dhcp_leases WHEN NEW.mac = 'bad'
      BEGIN SELECT RAISE(ROLLBACK, 'refused whole'); END`);
      table.put(row("10.0.0.101", "52:54:00:00:00:11"));
      table.put(row("10.0.0.102", "bad"));
      table.put(row("10.0.0.103", "52:54:00:00:00:13"));
      const good = table.saved(ipv4ToNumber("10.0.0.103"));
      await assert.rejects(table.saved(ipv4ToNumber("10.0.0.102")), /refused whole/);
      await good;
      assert.equal(at("10.0.0.102"), undefined);
      assert.deepEqual(disk(), [
        "10.0.0.100 52:54:00:00:00:01 one",
        "10.0.0.101 52:54:00:00:00:11 null",
        "10.0.0.103 52:54:00:00:00:13 null",
      ]);
      db.exec("DROP TRIGGER refuse");
    },
  );

  await t.step("flush() writes the rest and does not throw for a refused row", () => {
    const deletions = table.deletions;
    table.put({
      ...row("10.0.0.104", "52:54:00:00:00:14"),
      hostname: "gone",
      expires: null as unknown as number,
    });
    table.put(row("10.0.0.105", "52:54:00:00:00:15"));
    table.flush();
    assert.equal(table.pending, 0);
    assert.equal(at("10.0.0.104"), undefined);
    assert.deepEqual(table.ofMac("52:54:00:00:00:14"), []);
    assert.deepEqual(table.ofHostname("gone"), []);
    // A first row refused is taken out again: the pools' cursor must hear of it.
    assert.equal(table.deletions, deletions + 1);
    assert.equal(disk().at(-1), "10.0.0.105 52:54:00:00:00:15 null");
    assert.equal(told.at(-1), "10.0.0.104 lease row of 10.0.0.104 refused");
  });
  db.close();
});

Deno.test("a refusal hook that throws loses nothing: the commit stands", async () => {
  const db = openDatabase(":memory:");
  const table = LeaseTable.of(db, {
    commitGapMs: 0,
    onRefused: () => {
      throw new Error("the log is gone");
    },
  });
  table.put({ ...row("10.0.0.100", "52:54:00:00:00:01"), expires: null as unknown as number });
  table.put(row("10.0.0.101", "52:54:00:00:00:02"));
  const refused = table.saved(ipv4ToNumber("10.0.0.100"));
  await table.saved(ipv4ToNumber("10.0.0.101"));
  await assert.rejects(refused, /refused/);
  assert.equal(table.pending, 0);
  assert.equal(table.get(ipv4ToNumber("10.0.0.101"))?.mac, "52:54:00:00:00:02");
  db.close();
});

Deno.test("LeaseTable.closeOf closes the table of a handle if it has one", async () => {
  const db = openDatabase(":memory:");
  try {
    LeaseTable.closeOf(db);
    const log = handLog();
    const table = LeaseTable.of(db, { syncLog: log });
    table.put(row("10.0.0.1", "52:54:00:00:01:01", "offered"));
    LeaseTable.closeOf(db);
    // What was pending was written and synced; the log's handle is closed.
    assert.deepEqual([table.pending, log.blocking, log.closed], [0, 1, true]);
    await assert.rejects(table.saved(), /lease table closed/);
  } finally {
    db.close();
  }
});

Deno.test("the lease table holds its own handle on the log from the start", async () => {
  await withFile(async (file) => {
    const db = openDatabaseFile(file, { busyTimeoutMs: 0 });
    const table = LeaseTable.of(db);
    try {
      // Opened when the table was made: the file's name may go, the handle stays. (A handle
      // opened per sync, or at the first one, would find no file now.)
      Deno.removeSync(`${file}-wal`);
      table.put(row("10.0.0.1", "52:54:00:00:01:01"));
      await table.saved();
    } finally {
      table.close();
      db.close();
    }
  });
});

Deno.test("the MAC and host name indexes follow rows across one, several and no addresses", () => {
  const db = openDatabase(":memory:");
  const table = LeaseTable.of(db);
  const A = "52:54:00:00:00:0a", B = "52:54:00:00:00:0b";
  const named = (ip: string, mac: string, hostname: string | null) => ({
    ...row(ip, mac),
    hostname,
  });
  const ips = (rows: LeaseRow[]) => rows.map(ipOf);
  try {
    // One MAC holding an address in three subnets, in the order they were handed out.
    table.put(named("10.0.0.5", A, "Web"));
    table.put(named("10.1.0.5", A, "web"));
    table.put(named("10.2.0.5", A, null));
    assert.deepEqual(ips(table.ofMac(A)), ["10.0.0.5", "10.1.0.5", "10.2.0.5"]);
    assert.deepEqual(ips(table.ofHostname("WEB")), ["10.0.0.5", "10.1.0.5"]);
    // Rewriting a row with the same holder and name keeps one entry for it, in its place.
    table.put(named("10.1.0.5", A, "WEB"));
    assert.deepEqual(ips(table.ofMac(A)), ["10.0.0.5", "10.1.0.5", "10.2.0.5"]);
    assert.deepEqual(ips(table.ofHostname("web")), ["10.0.0.5", "10.1.0.5"]);
    // A new name moves the row in that index only; back to its old name, it is that list's last.
    table.put(named("10.0.0.5", A, "mail"));
    assert.deepEqual(ips(table.ofMac(A)), ["10.0.0.5", "10.1.0.5", "10.2.0.5"]);
    assert.deepEqual(ips(table.ofHostname("web")), ["10.1.0.5"]);
    assert.deepEqual(ips(table.ofHostname("mail")), ["10.0.0.5"]);
    table.put(named("10.0.0.5", A, "Web"));
    assert.deepEqual(ips(table.ofHostname("web")), ["10.1.0.5", "10.0.0.5"]);
    assert.deepEqual(table.ofHostname("mail"), []);
    // Addresses move to B one by one: A goes from three to two, to one, to none.
    table.put(named("10.0.0.5", B, null));
    assert.deepEqual(ips(table.ofMac(A)), ["10.1.0.5", "10.2.0.5"]);
    assert.deepEqual(ips(table.ofHostname("web")), ["10.1.0.5"]);
    table.put(named("10.2.0.5", B, null));
    assert.deepEqual(ips(table.ofMac(A)), ["10.1.0.5"]);
    assert.deepEqual(ips(table.ofMac(B)), ["10.0.0.5", "10.2.0.5"]);
    table.put(named("10.1.0.5", B, "db"));
    assert.deepEqual(table.ofMac(A), []);
    assert.deepEqual(table.ofHostname("web"), []);
    assert.deepEqual(ips(table.ofMac(B)), ["10.0.0.5", "10.2.0.5", "10.1.0.5"]);
    assert.deepEqual(ips(table.ofHostname("DB")), ["10.1.0.5"]);
    // A declined address has no holder: it leaves the index of its last one.
    table.put(named("10.2.0.5", "", null));
    assert.deepEqual(ips(table.ofMac(B)), ["10.0.0.5", "10.1.0.5"]);
    // What a caller does with the list it got changes nothing in the table.
    (table.ofMac(B) as LeaseRow[]).pop();
    assert.deepEqual(ips(table.ofMac(B)), ["10.0.0.5", "10.1.0.5"]);
  } finally {
    table.close();
    db.close();
  }
});
