import assert from "node:assert/strict";
import { RecentRows, writesTo } from "./recent_rows.ts";

Deno.test("recent rows are read once per keptMs, again after a clear", () => {
  let t = 0, reads = 0;
  const rows = new RecentRows<number>({ n: 0 }, 1000, 10, () => t);
  const read = () => ++reads;
  assert.equal(rows.get("a", read), 1);
  t = 999;
  assert.equal(rows.get("a", read), 1, "kept");
  assert.equal(rows.get("b", read), 2, "another key reads");
  t = 1000;
  assert.equal(rows.get("a", read), 3, "time up: read again");
  rows.wrote();
  assert.equal(rows.get("a", read), 4, "a write of the store: read again");
});

Deno.test("recent rows are bounded, read every time with keptMs 0, and a clock step back reads", () => {
  let t = 5000, reads = 0;
  const read = () => ++reads;
  const few = new RecentRows<number>({ n: 0 }, 1000, 2, () => t);
  few.get("a", read);
  few.get("b", read);
  few.get("c", read); // full: starts over
  assert.equal(few.get("a", read), 4);
  const none = new RecentRows<number>({ n: 0 }, 0, 10, () => t);
  assert.deepEqual([none.get("a", read), none.get("a", read)], [5, 6]);
  t = 100;
  assert.equal(few.get("a", read), 7, "a clock that went back tells nothing");
});

Deno.test("a write through any store over a database drops the rows of all of them", () => {
  const db = {}, other = {};
  let reads = 0;
  const read = () => ++reads;
  const a = new RecentRows<number>(writesTo(db));
  const b = new RecentRows<number>(writesTo(db));
  const c = new RecentRows<number>(writesTo(other));
  assert.deepEqual([a.get("k", read), b.get("k", read), c.get("k", read)], [1, 2, 3]);
  a.wrote();
  assert.equal(b.get("k", read), 4, "the other store over the same database reads again");
  assert.equal(a.get("k", read), 5);
  assert.equal(c.get("k", read), 3, "another database's rows stay");
});
