import assert from "node:assert/strict";
import { join } from "node:path";
import { memoryLogger } from "../log.ts";
import { mustParseMac } from "../net/mac.ts";
import { Bookkeeping } from "../state/bookkeeping.ts";
import { openDatabaseFile } from "../state/db.ts";
import { MachineRegistry } from "../state/machines.ts";
import { contactRecorder } from "./dhcp_contacts.ts";

const macs = [1, 2, 3].map((i) => mustParseMac(`52:54:00:00:00:0${i}`));

Deno.test("DHCP contacts: queued on the registry's bookkeeping, shown at once, written in one transaction per batch; a failure is logged, never thrown", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "abd-contacts-" });
  const file = join(dir, "leases.db");
  const main = openDatabaseFile(file);
  const quick = openDatabaseFile(file, { busyTimeoutMs: 0, synchronous: "NORMAL" });
  const other = openDatabaseFile(file);
  const logger = memoryLogger();
  // As the server has it: the batch waits for flush() (a timer would make the test slow).
  const bookkeeping = new Bookkeeping(quick, { delayMs: 60_000, logger });
  try {
    const registry = new MachineRegistry(main, { bestEffort: quick, bookkeeping });
    const record = contactRecorder(() => registry, logger);
    const commits = () =>
      (other.prepare("PRAGMA data_version").get() as { data_version: number }).data_version;
    const stored = (mac: string) =>
      other.prepare("SELECT ip FROM machines WHERE mac = ?").get(mac) as { ip: string } | undefined;
    await t.step("a burst: no write on the way, shown at once, one commit for all", () => {
      const before = commits();
      macs.forEach((mac, i) => record(mac, `10.0.0.${100 + i}`, { dhcp_arch: 7 }));
      assert.equal(commits(), before);
      assert.equal(stored(macs[0]!), undefined);
      assert.deepEqual(macs.map((m) => registry.get(m)?.ip), [
        "10.0.0.100",
        "10.0.0.101",
        "10.0.0.102",
      ]);
      assert.equal(registry.get(macs[1]!)?.inventory.dhcp_arch, 7);
      assert.equal(bookkeeping.flush(), true);
      assert.equal(commits() - before, 1);
      assert.deepEqual(macs.map((m) => stored(m)?.ip), ["10.0.0.100", "10.0.0.101", "10.0.0.102"]);
      const inv = other.prepare("SELECT dhcp_arch FROM machine_inventory WHERE mac = ?").get(
        macs[2]!,
      ) as { dhcp_arch: number };
      assert.equal(inv.dhcp_arch, 7);
    });
    await t.step("another process's lock: kept for the next batch, nothing thrown", () => {
      other.exec("BEGIN IMMEDIATE");
      record(macs[0]!, "10.0.0.200");
      assert.equal(bookkeeping.flush(), false);
      other.exec("COMMIT");
      assert.equal(registry.get(macs[0]!)?.ip, "10.0.0.200");
      assert.equal(bookkeeping.flush(), true);
      assert.equal(stored(macs[0]!)?.ip, "10.0.0.200");
      assert.equal(logger.lines.filter((l) => l.level !== "debug").length, 0);
    });
    await t.step("a registry that throws: one warning, the caller goes on", () => {
      const broken = contactRecorder(() => {
        throw new Error("registry gone");
      }, logger);
      broken(macs[0]!, "10.0.0.9");
      const warned = logger.lines.filter((l) => l.level === "warn");
      assert.equal(warned.length, 1);
      assert.equal(warned[0]!.message, "contact not recorded");
    });
  } finally {
    bookkeeping.close();
    other.close();
    quick.close();
    main.close();
    await Deno.remove(dir, { recursive: true });
  }
});
