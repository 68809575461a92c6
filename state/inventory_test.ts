import assert from "node:assert/strict";
import { openDatabaseFile } from "./db.ts";
import { cleanReported, emptyInventory, InventoryStore, MAX_REPORTED } from "./inventory.ts";
import { mustParseMac } from "../net/mac.ts";

Deno.test("cleanReported keeps what serials and names use, and nothing that means more", async (t) => {
  const table: [string, string | null | undefined, string | null][] = [
    ["a serial", "SN-42/7", "SN-42/7"],
    ["a vendor", "Gigabyte Technology Co., Ltd.", "Gigabyte Technology Co., Ltd."],
    ["a vendor class", "PXEClient:Arch:00007:UNDI:003000", "PXEClient:Arch:00007:UNDI:003000"],
    ["spaces collapse and trim", "  To Be   Filled  ", "To Be Filled"],
    ["terminal escapes", "\x1b]0;owned\x07x", "??0?owned?x"],
    ["iPXE and shell expansions", "${net0/ip} $(reboot) `id`", "??net0/ip? ?(reboot) ?id?"],
    ["markup and quotes", `<b onclick="x">'`, "?b onclick??x???"],
    ["line breaks", "a\nb\r\nc", "a?b??c"],
    ["non-ASCII", "Ärger™", "?rger?"],
    ["too long", "y".repeat(MAX_REPORTED + 10), "y".repeat(MAX_REPORTED)],
    ["empty", "", null],
    ["only spaces", "   ", null],
    ["null", null, null],
    ["undefined", undefined, null],
  ];
  for (const [name, text, want] of table) {
    await t.step(name, () => assert.equal(cleanReported(text), want));
  }
});

Deno.test("record gives up at once when another process holds the write lock", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/leases.db`;
  const mac = mustParseMac("52:54:00:00:00:01");
  try {
    const db = openDatabaseFile(path);
    const quick = openDatabaseFile(path, { busyTimeoutMs: 0 });
    const store = new InventoryStore(db, { bestEffort: quick, now: () => 5 });
    const other = openDatabaseFile(path, { busyTimeoutMs: 0 });
    other.exec("BEGIN IMMEDIATE");
    const t0 = performance.now();
    assert.equal(store.record(mac, { serial: "S" }), false);
    assert.ok(performance.now() - t0 < 100);
    assert.deepEqual(store.get(mac), emptyInventory());
    other.exec("COMMIT");
    assert.equal(store.record(mac, { serial: "S", dhcp_arch: -1 }), true);
    assert.deepEqual(store.get(mac), { ...emptyInventory(), serial: "S", reported_at: 5 });
    for (const h of [other, quick, db]) h.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
