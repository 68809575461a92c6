import assert from "node:assert/strict";
import { type BootEventInput, EventLog, RecentMap, type WatchEvent } from "./events.ts";
import { mustParseMac } from "../net/mac.ts";

const A = "52:54:00:00:00:0a";
const B = "52:54:00:00:00:0b";

function ev(mac: string | null, ip: string | null, stage: BootEventInput["stage"], detail = "") {
  return { mac: mac === null ? null : mustParseMac(mac), ip, stage, detail };
}

Deno.test("events get increasing sequence numbers and the log's time", () => {
  let now = 1000;
  const log = new EventLog({ now: () => now++ });
  const a = log.push(ev(A, null, "dhcp-offer"));
  const b = log.push({ ...ev(A, "10.0.0.5", "dhcp-ack"), time: 5 });
  assert.deepEqual([a.seq, a.time, b.seq, b.time], [1, 1000, 2, 5]);
  assert.equal(log.last, 2);
});

Deno.test("since() pages through the ring buffer", async (t) => {
  const log = new EventLog({ capacity: 4 });
  for (let i = 1; i <= 6; i++) log.push(ev(A, null, "script", `#${i}`));
  const cases: {
    since: number;
    limit?: number;
    seqs: number[];
    last: number;
    truncated: boolean;
  }[] = [
    { since: 0, seqs: [3, 4, 5, 6], last: 6, truncated: true },
    { since: 2, seqs: [3, 4, 5, 6], last: 6, truncated: false },
    { since: 4, seqs: [5, 6], last: 6, truncated: false },
    { since: 6, seqs: [], last: 6, truncated: false },
    { since: 3, limit: 2, seqs: [4, 5], last: 5, truncated: false },
    { since: 3, limit: 0, seqs: [4], last: 4, truncated: false },
    // A client of a previous run (the server restarted): start over.
    { since: 99, seqs: [3, 4, 5, 6], last: 6, truncated: true },
  ];
  for (const c of cases) {
    await t.step(`since ${c.since} limit ${c.limit ?? "-"}`, () => {
      const page = log.since(c.since, c.limit);
      assert.deepEqual(page.events.map((e) => e.seq), c.seqs);
      assert.deepEqual(page.events.map((e) => e.detail), c.seqs.map((s) => `#${s}`));
      assert.equal(page.last, c.last);
      assert.equal(page.truncated, c.truncated);
    });
  }
  assert.deepEqual(new EventLog().since(0), { events: [], last: 0, truncated: false });
});

Deno.test("each machine has a current stage, most recently active first", () => {
  const log = new EventLog();
  log.push(ev(A, null, "dhcp-offer"));
  log.push(ev(B, null, "dhcp-offer"));
  log.push(ev(A, "10.0.0.5", "dhcp-ack"));
  assert.equal(log.current(A)?.stage, "dhcp-ack");
  assert.equal(log.current(B)?.stage, "dhcp-offer");
  assert.deepEqual(log.stages().map((s) => s.mac), [A, B]);
});

Deno.test("an address seen without MAC is merged once the MAC shows up with it", () => {
  const log = new EventLog();
  log.push(ev(null, "10.0.0.7", "tftp-done", "undionly.kpxe"));
  assert.equal(log.current("10.0.0.7")?.stage, "tftp-done");
  log.push(ev(A, "10.0.0.7", "script"));
  assert.equal(log.current("10.0.0.7"), null);
  assert.deepEqual(log.stages().map((s) => [s.mac, s.stage]), [[A, "script"]]);
});

Deno.test("past machineLimit the least recently active machines go first", () => {
  const log = new EventLog({ machineLimit: 2 });
  log.push(ev(A, null, "dhcp-offer"));
  log.push(ev(B, null, "dhcp-offer"));
  log.push(ev(A, null, "dhcp-ack"));
  log.push(ev("52:54:00:00:00:0c", null, "dhcp-offer"));
  assert.deepEqual(log.stages().map((s) => s.mac), ["52:54:00:00:00:0c", A]);
  assert.equal(log.current(A)?.stage, "dhcp-ack");
  // A and C filled the young generation, so the old one, with only B left in it, went whole.
  assert.equal(log.current(B), null);
  log.push(ev("52:54:00:00:00:0d", null, "dhcp-offer"));
  log.push(ev("52:54:00:00:00:0e", null, "dhcp-offer"));
  for (const gone of [A, B, "52:54:00:00:00:0c"]) assert.equal(log.current(gone), null);
  assert.deepEqual(log.stages().map((s) => s.mac), ["52:54:00:00:00:0e", "52:54:00:00:00:0d"]);
});

Deno.test("RecentMap keeps the newest keys in order of their last set", () => {
  const m = new RecentMap<string, number>(3);
  for (const [k, v] of [["a", 1], ["b", 2], ["c", 3], ["a", 4]] as const) m.set(k, v);
  assert.deepEqual(m.newest(), [4, 3, 2]);
  for (let i = 0; i < 100; i++) m.set(`k${i}`, i);
  assert.deepEqual(m.newest(), [99, 98, 97]);
  assert.equal(m.get("a"), undefined);
  assert.equal(m.get("k99"), 99);
  assert.ok(m.delete("k99"));
  assert.deepEqual(m.newest().slice(0, 2), [98, 97]);
});

Deno.test("subscribers get every new event until they unsubscribe or the log closes", () => {
  const log = new EventLog();
  const got: (WatchEvent | null)[] = [];
  const gone: (WatchEvent | null)[] = [];
  const unsubscribe = log.subscribe((e) => got.push(e));
  const stop = log.subscribe((e) => gone.push(e));
  log.subscribe(() => {
    throw new Error("a broken stream");
  });
  assert.equal(log.subscribers, 3);
  log.push(ev(A, null, "dhcp-offer"));
  // The throwing one is dropped; the others still got the event.
  assert.equal(log.subscribers, 2);
  stop();
  log.push(ev(A, null, "dhcp-ack"));
  assert.deepEqual(got.map((e) => e?.stage), ["dhcp-offer", "dhcp-ack"]);
  assert.deepEqual(gone.map((e) => e?.stage), ["dhcp-offer"]);
  log.close();
  assert.equal(got.at(-1), null);
  assert.equal(log.subscribers, 0);
  assert.ok(log.closed);
  unsubscribe();
  const late: (WatchEvent | null)[] = [];
  log.subscribe((e) => late.push(e));
  assert.deepEqual(late, [null]);
  assert.equal(log.subscribers, 0);
});

Deno.test("RecentMap keeps at least its limit of the newest keys through generations", () => {
  const limit = 50;
  const m = new RecentMap<number, number>(limit);
  let order: number[] = []; // keys, least recent first, as a plain model
  let seed = 7;
  for (let i = 0; i < 5000; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    const key = seed % 120;
    m.set(key, i);
    const at = order.indexOf(key);
    if (at >= 0) order.splice(at, 1);
    order.push(key);
    const newest = order.slice(-limit).reverse();
    for (const k of newest) assert.notEqual(m.get(k), undefined, `key ${k} after set ${i}`);
    if (i % 97 === 0) {
      assert.deepEqual(m.newest(), newest.map((k) => m.get(k)));
      const dropped = newest[newest.length - 1]!;
      assert.ok(m.delete(dropped));
      assert.equal(m.get(dropped), undefined);
      assert.ok(!m.delete(dropped));
      // Only the newest `limit` were promised at each set: the model forgets what the map did.
      order = order.filter((k) => m.get(k) !== undefined);
    }
  }
});

Deno.test("details are kept as they were said, however many distinct ones come", () => {
  const log = new EventLog({ capacity: 5000, machineLimit: 5000 });
  const said: string[] = [];
  // Past the copies kept (1024), twice over, with repeats of earlier lines between.
  for (let i = 0; i < 2500; i++) {
    const detail = i % 3 === 0 ? `undionly.kpxe (bios, arch ${i % 7})` : `file-${i}.bin`;
    said.push(detail);
    log.push(ev(null, `10.0.${i >> 8}.${i & 255}`, "tftp-done", detail));
  }
  assert.deepEqual(log.since(0, 5000).events.map((e) => e.detail), said);
});
