import assert from "node:assert/strict";
import { openDatabase, openDatabaseFile } from "../state/db.ts";
import { BootHistory } from "../state/history.ts";
import { Bookkeeping } from "../state/bookkeeping.ts";
import { memoryLogger } from "../log.ts";
import { mustParseMac } from "../net/mac.ts";
import type { WatchEvent } from "./events.ts";
import { historyWriter, REPEAT_MS } from "./history.ts";

const MAC = mustParseMac("52:54:00:00:00:0a");
const OTHER = mustParseMac("52:54:00:00:00:0b");
const THIRD = mustParseMac("52:54:00:00:00:0c");

function event(stage: WatchEvent["stage"], id: number, mac = MAC): WatchEvent {
  return { seq: id, time: 1000 + id, mac, ip: "10.0.0.5", stage, detail: `${stage} ${id}` };
}

Deno.test("historyWriter keeps a machine's steps; a busy database loses a line, not a boot", async (t) => {
  const dir = Deno.makeTempDirSync();
  try {
    const db = openDatabaseFile(`${dir}/leases.db`, { busyTimeoutMs: 0 });
    const history = new BootHistory(db);
    const logger = memoryLogger();
    const write = historyWriter(history, logger);
    await t.step("history stages of a known MAC are written, the rest are not", () => {
      write(event("menu", 1));
      write(event("dhcp-offer", 2));
      write(event("kernel", 3));
      write({ ...event("script", 4), mac: null });
      write(event("installed", 5));
      assert.deepEqual(history.lines(MAC).map((l) => l.kind), ["installed", "menu"]);
    });
    await t.step("while another process holds the lock: a debug line, no throw", () => {
      const other = openDatabaseFile(`${dir}/leases.db`, { busyTimeoutMs: 0 });
      other.exec("BEGIN IMMEDIATE");
      write(event("chosen", 6));
      other.exec("ROLLBACK");
      other.close();
      const line = logger.lines.at(-1)!;
      assert.equal(line.level, "debug");
      assert.match(line.message, /database busy/);
      assert.equal(history.lines(MAC).length, 2);
    });
    await t.step("any other failure is a warning", () => {
      db.close();
      write(event("chosen", 7));
      const line = logger.lines.at(-1)!;
      assert.equal(line.level, "warn");
      assert.equal(line.message, "history line not written");
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("with a bookkeeping queue, history lines wait for their batch and survive a lock", async (t) => {
  const dir = Deno.makeTempDirSync();
  try {
    const db = openDatabaseFile(`${dir}/leases.db`, { busyTimeoutMs: 0 });
    const logger = memoryLogger();
    const books = new Bookkeeping(db, { delayMs: 60_000, logger });
    const history = new BootHistory(db, { bookkeeping: books, limit: 3 });
    const write = historyWriter(history, logger);
    const count = () =>
      (db.prepare("SELECT count(*) AS n FROM machine_boots").get() as { n: number }).n;
    await t.step("a line is queued, not written; lines() writes the queue first", () => {
      write(event("menu", 1));
      assert.equal(count(), 0);
      assert.deepEqual(history.lines(MAC).map((l) => l.kind), ["menu"]);
      assert.equal(count(), 1);
    });
    await t.step("the limit holds per batch", () => {
      for (let i = 2; i <= 6; i++) write(event("script", i));
      books.flush();
      assert.deepEqual(history.lines(MAC).map((l) => l.what), ["script 6", "script 5", "script 4"]);
    });
    await t.step("a line queued while another process holds the lock is written after", () => {
      const other = openDatabaseFile(`${dir}/leases.db`, { busyTimeoutMs: 0 });
      other.exec("BEGIN IMMEDIATE");
      write(event("chosen", 7));
      assert.equal(books.flush(), false);
      assert.equal(logger.lines.at(-1)!.level, "debug");
      other.exec("ROLLBACK");
      other.close();
      assert.equal(history.lines(MAC)[0]!.kind, "chosen");
    });
    books.close();
    db.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a machine's request line repeated within REPEAT_MS is written once; its older lines stay", () => {
  const history = new BootHistory(openDatabase(":memory:"), { limit: 5 });
  const write = historyWriter(history, memoryLogger());
  let time = 1_700_000_000_000;
  const line = (stage: WatchEvent["stage"], detail: string, ip: string, mac = MAC) =>
    write({ seq: 0, time, mac, ip, stage, detail });
  line("installed", "debian (callback)", "10.0.0.5");
  // Anyone asking for the machine's menu a thousand times in a few seconds: one line.
  for (let i = 0; i < 1000; i++) {
    line("menu", "menu (3 entries)", "10.0.0.5");
    if (i % 100 === 0) time += 100;
  }
  assert.deepEqual(history.lines(MAC).map((l) => l.kind), ["menu", "installed"]);
  // A different address, text or stage is a new line; so is the same one after REPEAT_MS.
  line("menu", "menu (3 entries)", "10.0.0.6");
  line("menu", "menu (4 entries)", "10.0.0.6");
  line("script", "menu (4 entries)", "10.0.0.6");
  assert.equal(history.lines(MAC).length, 5);
  line("script", "menu (4 entries)", "10.0.0.6");
  assert.equal(history.lines(MAC).length, 5);
  time += REPEAT_MS;
  line("script", "menu (4 entries)", "10.0.0.6");
  assert.deepEqual(history.lines(MAC, 2).map((l) => l.at), [time, time - REPEAT_MS]);
  // Another machine's lines are its own; a clock stepped back writes the line.
  line("script", "menu (4 entries)", "10.0.0.6", OTHER);
  assert.equal(history.lines(OTHER).length, 1);
  time -= 60_000;
  line("script", "menu (4 entries)", "10.0.0.6", OTHER);
  assert.equal(history.lines(OTHER).length, 2);
  // What a machine reports, or an admin does, is never a repeat to leave out.
  for (const stage of ["progress", "installed", "reinstall", "progress"] as const) {
    line(stage, "same text", "10.0.0.7", THIRD);
    line(stage, "same text", "10.0.0.7", THIRD);
  }
  assert.equal(history.lines(THIRD).length, 5);
});

Deno.test("a line that failed to be written is not a repeat; a reload's new store gets the next line", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const db = openDatabaseFile(`${dir}/leases.db`, { busyTimeoutMs: 0 });
    let store = new BootHistory(db);
    const write = historyWriter(() => store, memoryLogger());
    const other = openDatabaseFile(`${dir}/leases.db`, { busyTimeoutMs: 0 });
    other.exec("BEGIN IMMEDIATE");
    write(event("menu", 1));
    other.exec("ROLLBACK");
    other.close();
    assert.equal(store.lines(MAC).length, 0);
    // The same line again, within REPEAT_MS: written now, since the first never was.
    write({ ...event("menu", 1), time: 1002 });
    assert.deepEqual(store.lines(MAC).map((l) => l.what), ["menu 1"]);
    // A reload's store (here on a database of its own): the next line goes to it, and the
    // writer still knows the machine's last line, so its repeat is not written there.
    const old = store;
    store = new BootHistory(openDatabase(":memory:"));
    write({ ...event("menu", 1), time: 1003 });
    write(event("script", 3));
    assert.deepEqual(store.lines(MAC).map((l) => l.what), ["script 3"]);
    assert.deepEqual(old.lines(MAC).map((l) => l.what), ["menu 1"]);
    db.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
