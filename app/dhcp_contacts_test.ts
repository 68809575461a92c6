import assert from "node:assert/strict";
import { join } from "node:path";
import { memoryLogger } from "../log.ts";
import { mustParseMac } from "../net/mac.ts";
import { openDatabaseFile } from "../state/db.ts";
import { MachineRegistry } from "../state/machines.ts";
import { contactRecorder } from "./dhcp_contacts.ts";

const macs = [1, 2, 3].map((i) => mustParseMac(`52:54:00:00:00:0${i}`));

Deno.test("DHCP contacts: one transaction per burst (inventory included), given up when the database is busy", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "abd-contacts-" });
  const file = join(dir, "leases.db");
  const main = openDatabaseFile(file);
  const quick = openDatabaseFile(file, { busyTimeoutMs: 0, synchronous: "NORMAL" });
  const other = openDatabaseFile(file);
  const logger = memoryLogger();
  try {
    const registry = new MachineRegistry(main, { bestEffort: quick });
    const record = contactRecorder(() => registry, quick, logger);
    const commits = () =>
      (other.prepare("PRAGMA data_version").get() as { data_version: number }).data_version;
    await t.step("a burst is written once, after its callbacks", async () => {
      const before = commits();
      macs.forEach((mac, i) => record(mac, `10.0.0.${100 + i}`));
      assert.equal(registry.get(macs[0]!), null);
      await Promise.resolve();
      assert.deepEqual(macs.map((m) => registry.get(m)?.ip), [
        "10.0.0.100",
        "10.0.0.101",
        "10.0.0.102",
      ]);
      assert.equal(commits() - before, 1);
    });
    await t.step("what the request said rides in the same transaction", async () => {
      const before = commits();
      record(macs[1]!, "10.0.0.111", { dhcp_arch: 7, vendor_class: "PXEClient" });
      record(macs[2]!, "10.0.0.112");
      await Promise.resolve();
      const inv = registry.get(macs[1]!)?.inventory;
      assert.equal(inv?.dhcp_arch, 7);
      assert.equal(inv?.vendor_class, "PXEClient");
      assert.equal(registry.get(macs[2]!)?.ip, "10.0.0.112");
      assert.equal(commits() - before, 1);
    });
    await t.step("another process's lock: the burst is dropped, nothing thrown", async () => {
      other.exec("BEGIN IMMEDIATE");
      record(macs[0]!, "10.0.0.200");
      await Promise.resolve();
      other.exec("COMMIT");
      assert.equal(registry.get(macs[0]!)?.ip, "10.0.0.100");
      assert.equal(logger.lines.length, 0);
      record(macs[0]!, "10.0.0.200");
      await Promise.resolve();
      assert.equal(registry.get(macs[0]!)?.ip, "10.0.0.200");
    });
  } finally {
    other.close();
    quick.close();
    main.close();
    await Deno.remove(dir, { recursive: true });
  }
});
