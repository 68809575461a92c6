import assert from "node:assert/strict";
import { templateData } from "./template_data.ts";
import { openDatabase } from "../state/db.ts";
import { MachineRegistry } from "../state/machines.ts";
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
