/**
 * What machines report in `/boot.ipxe?mac=…&uuid=…&serial=…`: stored once the MAC asks from
 * its own address, shown by the admin API, and matched to `[[machine]] uuid` entries, first
 * come first served; the report never lets one machine act as another.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { LocalStore } from "../content/local.ts";
import { type Mac, macHyphens, mustParseMac } from "../net/mac.ts";
import { parseUuid } from "../net/uuid.ts";
import { ADMIN, testApp } from "./_test_utils.ts";

const TREE = fileURLToPath(new URL("../boot/testdata/tree", import.meta.url));
const UUID = parseUuid("12345678-9abc-def0-1122-334455667788")!;
const A = mustParseMac("52:54:00:00:00:0a");
const B = mustParseMac("52:54:00:00:00:0b");
const LEASES = new Map<Mac, string>([[A, "10.0.0.10"], [B, "10.0.0.11"]]);

function setup() {
  return testApp({
    store: new LocalStore(TREE),
    machines: [{ uuid: UUID, hostname: "by-uuid", os: "tiny", vars: {} }],
    addressBook: {
      leaseOf: (mac) => LEASES.get(mac) ?? null,
      leaseAt: (ip) => [...LEASES].find(([, a]) => a === ip)?.[0] ?? null,
    },
  });
}

/** The URL iPXE asks once it expanded `INVENTORY_QUERY` (as measured, boot/inventory.ts). */
function reportUrl(mac: Mac, serial: string): string {
  return `/boot.ipxe?mac=${macHyphens(mac)}&uuid=${UUID.toUpperCase()}&serial=${serial}` +
    "&manufacturer=QEMU&product=Standard%20PC%20(i440FX%20+%20PIIX,%201996)" +
    "&buildarch=i386&platform=pcbios";
}

Deno.test("a machine's report is stored, shown, and matches its [[machine]] uuid", async (t) => {
  const s = setup();
  const machine = async (mac: Mac) => {
    const res = await s.get(`/api/machines/${macHyphens(mac)}`, { headers: ADMIN });
    assert.equal(res.status, 200);
    return await res.json();
  };

  await t.step("from another address: 403, nothing recorded", async () => {
    const res = await s.text(reportUrl(A, "SN-A"), "10.0.0.11");
    assert.equal(res.status, 403);
    assert.equal(s.registry.get(A), null);
  });

  await t.step("from its own: the entry's OS at once, and the report in the API", async () => {
    const res = await s.text(reportUrl(A, "SN%20A%3Cb%3E"), "10.0.0.10");
    assert.equal(res.status, 200);
    assert.match(res.body, /^kernel http:\/\/10\.0\.0\.1\/image\/tiny\/vmlinuz/m);
    const m = await machine(A);
    assert.deepEqual(
      [m.hostname, m.os, m.configured, m.matched_by, m.uuid],
      ["by-uuid", "tiny", true, "uuid", UUID],
    );
    assert.deepEqual(
      [
        m.inventory.uuid,
        m.inventory.serial,
        m.inventory.manufacturer,
        m.inventory.product,
        m.inventory.buildarch,
        m.inventory.platform,
      ],
      [UUID, "SN A?b?", "QEMU", "Standard PC (i440FX + PIIX, 1996)", "i386", "pcbios"],
    );
    assert.ok(s.logger.lines.some((l) => l.message === "matched its [[machine]] by uuid"));
  });

  await t.step("the same UUID from another MAC: not matched, the menu", async () => {
    const res = await s.text(reportUrl(B, "SN-B"), "10.0.0.11");
    assert.equal(res.status, 200);
    assert.match(res.body, /^menu Astral Boot$/m);
    const m = await machine(B);
    assert.deepEqual([m.hostname, m.configured, m.matched_by], ["node-52540000000b", false, null]);
    assert.equal(m.inventory.uuid, UUID);
    const warned = s.logger.lines.find((l) => /UUID of another machine/.test(l.message));
    assert.equal(warned?.fields.holder, A);
  });

  await t.step("the list shows both, the admin API only", async () => {
    assert.equal((await s.get("/api/machines")).status, 401);
    const list = await (await s.get("/api/machines", { headers: ADMIN })).json();
    assert.deepEqual(
      list.map((m: { mac: string; inventory: { serial: string } }) => [m.mac, m.inventory.serial]),
      [[A, "SN A?b?"], [B, "SN-B"]],
    );
  });

  await t.step("a chain without the report changes nothing of it", async () => {
    const res = await s.text(`/boot.ipxe?mac=${macHyphens(A)}`, "10.0.0.10");
    assert.equal(res.status, 200);
    assert.equal((await machine(A)).inventory.serial, "SN A?b?");
  });
});
