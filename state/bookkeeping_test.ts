import assert from "node:assert/strict";
import type { DatabaseSync } from "node:sqlite";
import { memoryLogger } from "../log.ts";
import { Bookkeeping } from "./bookkeeping.ts";
import { openDatabaseFile } from "./db.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function values(db: DatabaseSync): string[] {
  return (db.prepare("SELECT v FROM t ORDER BY id").all() as { v: string }[]).map((r) => r.v);
}

const insert = (v: string) => (db: DatabaseSync) => {
  db.prepare("INSERT INTO t (v) VALUES (?)").run(v);
};

Deno.test("Bookkeeping writes off the caller's path, in batches, and loses nothing to a lock", async (t) => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/leases.db`;
  const db = openDatabaseFile(file, { busyTimeoutMs: 0 });
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  const logger = memoryLogger();
  const books = new Bookkeeping(db, { delayMs: 30, retryMs: 30, maxPending: 5, logger });
  try {
    await t.step(
      "a queued write waits for its batch, then all of the batch is written",
      async () => {
        books.queue("history", null, insert("a"));
        books.queue("history", null, insert("b"));
        assert.deepEqual(values(db), []);
        assert.equal(books.pending, 2);
        await sleep(80);
        assert.deepEqual(values(db), ["a", "b"]);
        assert.equal(books.pending, 0);
      },
    );

    await t.step("a write under a key replaces the one waiting under it, and runs last", () => {
      books.queue("contact", "k", insert("old"));
      books.queue("history", null, insert("c"));
      books.queue("contact", "k", insert("new"));
      assert.equal(books.pending, 2);
      assert.equal(books.flush(), true);
      assert.deepEqual(values(db).slice(2), ["c", "new"]);
    });

    await t.step(
      "while another process holds the lock: kept, said at debug, written after",
      async () => {
        const other = openDatabaseFile(file, { busyTimeoutMs: 0 });
        other.exec("BEGIN IMMEDIATE");
        books.queue("history", null, insert("d"));
        assert.equal(books.flush(), false);
        assert.equal(books.pending, 1);
        const line = logger.lines.at(-1)!;
        assert.equal(line.level, "debug");
        assert.match(line.message, /database busy: bookkeeping kept/);
        assert.deepEqual(line.fields, { history: 1 });
        books.queue("history", null, insert("e"));
        other.exec("ROLLBACK");
        other.close();
        await sleep(80);
        assert.deepEqual(values(db).slice(4), ["d", "e"]);
      },
    );

    await t.step("beyond maxPending while busy, the oldest go, with one warning", () => {
      const other = openDatabaseFile(file, { busyTimeoutMs: 0 });
      other.exec("BEGIN IMMEDIATE");
      for (const v of ["1", "2", "3", "4", "5", "6", "7"]) books.queue("history", null, insert(v));
      assert.equal(books.pending, 5);
      other.exec("ROLLBACK");
      other.close();
      assert.equal(books.flush(), true);
      assert.deepEqual(values(db).slice(6), ["3", "4", "5", "6", "7"]);
      const warn = logger.lines.find((l) => l.level === "warn")!;
      assert.match(warn.message, /oldest bookkeeping dropped/);
      assert.deepEqual(warn.fields, { writes: 2 });
    });

    await t.step("a failing write costs itself, not its batch", () => {
      books.queue("inventory", null, () => {
        throw new Error("no such column");
      });
      books.queue("history", null, insert("f"));
      assert.equal(books.flush(), true);
      assert.equal(values(db).at(-1), "f");
      const warn = logger.lines.at(-1)!;
      assert.equal(warn.message, "inventory write failed");
    });

    await t.step("close writes what is queued", () => {
      books.queue("history", null, insert("last"));
      books.close();
      assert.equal(values(db).at(-1), "last");
    });
  } finally {
    books.close();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
