import assert from "node:assert/strict";
import { machineInputs, sameInputs, templateData, UNREAD_MACHINE_FIELDS } from "./template_data.ts";
import { openDatabase } from "../state/db.ts";
import { MachineRegistry } from "../state/machines.ts";
import { INVENTORY_FIELDS } from "../state/inventory.ts";
import { mustParseMac } from "../net/mac.ts";
import { parseUuid } from "../net/uuid.ts";

const SERVER = { serverIp: "10.0.0.1", baseUrl: "http://10.0.0.1", secret: new Uint8Array(32) };

Deno.test("templates see what a machine reported as data, cleaned, under machine.inventory", async (t) => {
  const uuid = parseUuid("12345678-9abc-def0-1122-334455667788")!;
  const mac = mustParseMac("52:54:00:00:00:01");
  const reg = new MachineRegistry(openDatabase(":memory:"), {
    machines: [{ uuid, hostname: "by-uuid", vars: {} }],
  });
  const data = () => templateData(SERVER, reg.get(mac)!, null).machine as Record<string, unknown>;
  await t.step("before a report: empty strings, no [[machine]] uuid", () => {
    reg.seen(mac, "10.0.0.50");
    assert.equal(data().uuid, "");
    assert.deepEqual(Object.values(data().inventory as object), Array(10).fill(""));
  });
  await t.step("after one: the values, the entry's uuid, markup cleaned", () => {
    reg.report(mac, { uuid, serial: "SN-1", product: "<script>${x}", dhcp_arch: 7 });
    const m = data();
    assert.equal(m.uuid, uuid);
    assert.equal(m.hostname, "by-uuid");
    assert.deepEqual(m.inventory, {
      uuid,
      serial: "SN-1",
      manufacturer: "",
      product: "?script???x?",
      buildarch: "",
      platform: "",
      dhcp_arch: 7,
      dhcp_uuid: "",
      vendor_class: "",
      user_class: "",
    });
  });
});

Deno.test("templateData reads no field of UNREAD_MACHINE_FIELDS; machineInputs every other", async (t) => {
  const mac = mustParseMac("52:54:00:00:00:02");
  const reg = new MachineRegistry(openDatabase(":memory:"), {
    machines: [{ mac, hostname: "box", vars: { disk: "/dev/vda" } }],
  });
  reg.seen(mac, "10.0.0.60");
  reg.report(mac, { serial: "SN-1" });
  const m = reg.get(mac)!;
  const os = { name: "debian", classes: [], vars: { tasks: "x" } };
  await t.step("the unread fields change nothing a template sees", () => {
    const other = { ...m, first_seen: 1, last_seen: 2, installed_at: 3 };
    assert.deepEqual(templateData(SERVER, other, os), templateData(SERVER, m, os));
    assert.ok(sameInputs(machineInputs(other), machineInputs(m)));
  });
  await t.step("every other field, and each inventory field, is an input", () => {
    const fields = Object.keys(m).filter((k) => !UNREAD_MACHINE_FIELDS.has(k));
    for (const k of fields) {
      const changed = k === "inventory"
        ? { ...m, inventory: { ...m.inventory, serial: "SN-2" } }
        : {
          ...m,
          [k]: k === "vars" ? { ...m.vars } : `${(m as unknown as Record<string, unknown>)[k]}!`,
        };
      assert.ok(!sameInputs(machineInputs(changed), machineInputs(m)), k);
    }
    for (const f of INVENTORY_FIELDS) {
      const changed = { ...m, inventory: { ...m.inventory, [f]: "other" } };
      assert.ok(!sameInputs(machineInputs(changed), machineInputs(m)), `inventory.${f}`);
    }
    // When it reported is not shown to templates.
    const later = { ...m, inventory: { ...m.inventory, reported_at: 1 } };
    assert.deepEqual(templateData(SERVER, later, os), templateData(SERVER, m, os));
    assert.ok(sameInputs(machineInputs(later), machineInputs(m)));
    assert.ok(sameInputs(machineInputs(reg.get(mac)!), machineInputs(m)), "read again: the same");
  });
});
