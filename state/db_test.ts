import assert from "node:assert/strict";
import { checkDatabase, DatabaseError, isBusy, openDatabaseFile } from "./db.ts";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

function withDir(fn: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync();
  try {
    fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("a file that is no database, or a damaged one, is one DatabaseError with the way out", async (t) => {
  await t.step("not a database", () =>
    withDir((dir) => {
      Deno.writeTextFileSync(`${dir}/leases.db`, "hello, I am a text file ".repeat(100));
      assert.throws(() => {
        const db = openDatabaseFile(`${dir}/leases.db`);
        checkDatabase(db, `${dir}/leases.db`);
      }, (e: unknown) => {
        assert.ok(e instanceof DatabaseError);
        assert.match(
          e.message,
          /leases\.db is damaged \(file is not a database\); stop, move it aside/,
        );
        return true;
      });
    }));
  await t.step("pages overwritten", () =>
    withDir((dir) => {
      const file = `${dir}/leases.db`;
      const db = openDatabaseFile(file);
      db.exec("CREATE TABLE t (x TEXT); CREATE INDEX tx ON t (x)");
      for (let i = 0; i < 300; i++) db.exec(`INSERT INTO t VALUES ('${i}${"x".repeat(400)}')`);
      db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      db.close();
      const bytes = Deno.readFileSync(file);
      const page = new DataView(bytes.buffer).getUint16(16);
      bytes.fill(0x5a, page * 3, page * 8);
      Deno.writeFileSync(file, bytes);
      assert.throws(() => checkDatabase(openDatabaseFile(file), file), (e: unknown) => {
        assert.ok(e instanceof DatabaseError);
        assert.match(e.message, /is damaged \(.+\); stop, move it aside and start again/);
        return true;
      });
    }));
  await t.step("a sound one passes", () =>
    withDir((dir) => {
      const db = openDatabaseFile(`${dir}/leases.db`);
      db.exec("CREATE TABLE t (x)");
      checkDatabase(db, `${dir}/leases.db`);
      db.close();
    }));
});

Deno.test("isBusy knows node:sqlite's lock error and nothing else", () =>
  withDir((dir) => {
    const a = openDatabaseFile(`${dir}/leases.db`, { busyTimeoutMs: 0 });
    const b = openDatabaseFile(`${dir}/leases.db`, { busyTimeoutMs: 0 });
    a.exec("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)");
    let err: unknown;
    try {
      b.exec("INSERT INTO t VALUES (2)");
    } catch (e) {
      err = e;
    }
    assert.ok(isBusy(err), String(err));
    assert.equal(isBusy(new Error("no such table: t")), false);
    a.exec("COMMIT");
    a.close();
    b.close();
  }));

Deno.test("the database and its WAL are readable by their owner only, whatever the umask", async () => {
  const dir = await Deno.makeTempDir({ prefix: "astral-db-mode-" });
  const old = Deno.umask(0o022);
  try {
    const fresh = join(dir, "new", "leases.db");
    const db = openDatabaseFile(fresh);
    db.exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)");
    for (const f of [fresh, `${fresh}-wal`, `${fresh}-shm`]) {
      assert.equal(Deno.statSync(f).mode! & 0o777, 0o600, f);
    }
    db.close();
    const loose = join(dir, "old.db");
    new DatabaseSync(loose).close();
    Deno.chmodSync(loose, 0o644);
    openDatabaseFile(loose).close();
    assert.equal(Deno.statSync(loose).mode! & 0o777, 0o600);
  } finally {
    Deno.umask(old);
    await Deno.remove(dir, { recursive: true });
  }
});
