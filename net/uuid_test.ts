import assert from "node:assert/strict";
import { parseUuid, uuidFromPxe } from "./uuid.ts";

const CANON = "12345678-9abc-def0-1122-334455667788";

Deno.test("parseUuid accepts the spellings people and firmware use, and nothing else", async (t) => {
  const good = [
    CANON,
    CANON.toUpperCase(),
    CANON.replaceAll("-", ""),
    `{${CANON.toUpperCase()}}`,
  ];
  for (const text of good) {
    await t.step(`${text} → ${CANON}`, () => assert.equal(parseUuid(text), CANON));
  }
  const bad = [
    "",
    "12345678-9abc-def0-1122-33445566778",
    "12345678-9abc-def0-1122-3344556677889",
    "1234567-89abc-def0-1122-334455667788",
    "12345678-9abc-def0-1122-33445566778g",
    ` ${CANON}`,
    `${CANON}%00`,
    "00000000-0000-0000-0000-000000000000",
    "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    "x".repeat(1000),
  ];
  for (const text of bad) {
    await t.step(`${JSON.stringify(text.slice(0, 40))} is no UUID`, () => {
      assert.equal(parseUuid(text), null);
    });
  }
});

Deno.test("uuidFromPxe reads option 97 as iPXE and OVMF send it", async (t) => {
  // Bytes of the option as captured from QEMU `-uuid 12345678-9abc-def0-1122-334455667788`.
  const captured = Uint8Array.from(
    "0078563412bc9af0de1122334455667788".match(/../g)!,
    (h) => parseInt(h, 16),
  );
  const table: [string, Uint8Array, string | null][] = [
    ["captured from QEMU", captured, CANON],
    ["the nil UUID (QEMU without -uuid)", new Uint8Array(17), null],
    ["type 1 is not a UUID", Uint8Array.of(1, ...captured.subarray(1)), null],
    ["too short", captured.subarray(0, 16), null],
    ["empty", new Uint8Array(0), null],
  ];
  for (const [name, bytes, want] of table) {
    await t.step(name, () => assert.equal(uuidFromPxe(bytes), want));
  }
});
