import assert from "node:assert/strict";
import { crc32, ESP_TYPE, FIRST_LBA, gptDisk, guidBytes, SECTOR } from "./gpt.ts";

Deno.test("gptDisk lays out a disk firmware accepts", async (t) => {
  const part = new Uint8Array(16 * SECTOR).fill(0xab);
  const disk = gptDisk(part);
  const view = new DataView(disk.buffer);
  const total = disk.length / SECTOR;
  const header = (lba: number) => disk.subarray(lba * SECTOR, lba * SECTOR + 92);
  const rows: [string, () => void][] = [
    [
      "CRC-32 is zlib's",
      () => assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926),
    ],
    ["GUIDs are mixed-endian on disk", () =>
      assert.deepEqual(
        Array.from(guidBytes(ESP_TYPE).subarray(0, 4)),
        [0x28, 0x73, 0x2a, 0xc1],
      )],
    ["a protective MBR", () => {
      assert.equal(disk[446 + 4], 0xee);
      assert.deepEqual([disk[510], disk[511]], [0x55, 0xaa]);
    }],
    ["primary and backup headers point at each other, with valid CRCs", () => {
      for (const [mine, other] of [[1, total - 1], [total - 1, 1]] as const) {
        const h = Uint8Array.from(header(mine));
        assert.equal(new TextDecoder().decode(h.subarray(0, 8)), "EFI PART");
        const hv = new DataView(h.buffer);
        assert.equal(Number(hv.getBigUint64(24, true)), mine);
        assert.equal(Number(hv.getBigUint64(32, true)), other);
        const crc = hv.getUint32(16, true);
        hv.setUint32(16, 0, true);
        assert.equal(crc32(h), crc);
      }
    }],
    ["the partition holds the bytes, at LBA 2048", () => {
      const entry = 2 * SECTOR;
      assert.equal(Number(view.getBigUint64(entry + 32, true)), FIRST_LBA);
      assert.equal(Number(view.getBigUint64(entry + 40, true)), FIRST_LBA + 15);
      assert.deepEqual(disk.subarray(FIRST_LBA * SECTOR, (FIRST_LBA + 16) * SECTOR), part);
    }],
    ["partial sectors are refused", () => assert.throws(() => gptDisk(new Uint8Array(100)))],
  ];
  for (const [name, fn] of rows) await t.step(name, fn);
});
