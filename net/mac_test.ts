import assert from "node:assert/strict";
import { macFromBytes, macHyphens, macToBytes, mustParseMac, parseMac } from "./mac.ts";

Deno.test("parseMac accepts every spelling people and firmware use, and nothing else", async (t) => {
  const good: [string, string][] = [
    ["52:54:00:ab:cd:ef", "52:54:00:ab:cd:ef"],
    ["52-54-00-AB-CD-EF", "52:54:00:ab:cd:ef"],
    ["525400abcdef", "52:54:00:ab:cd:ef"],
    ["5254.00ab.cdef", "52:54:00:ab:cd:ef"],
    ["52:54:00:aB:Cd:eF", "52:54:00:ab:cd:ef"],
    // Separators are dropped wherever they are: a mix is read as the bare hex would be.
    ["52:54-00:ab-cd:ef", "52:54:00:ab:cd:ef"],
  ];
  for (const [text, want] of good) {
    await t.step(`${text} → ${want}`, () => assert.equal(parseMac(text), want));
  }
  const bad = [
    "",
    "52:54:00",
    "52:54:00:ab:cd:ef:01",
    "xx:54:00:ab:cd:ef",
    "52:54:00:ab:cd:eg",
    " 52:54:00:ab:cd:ef",
    "52:54:00:ab:cd:ef%00",
    "52:54:00:ab:cd::f",
    "52:54:00:ab:cd:e ",
    "52 54 00 ab cd ef",
    "52:54:00:ab:cd:g0",
  ];
  for (const text of bad) {
    await t.step(`${JSON.stringify(text)} is not a MAC`, () => {
      assert.equal(parseMac(text), null);
      assert.throws(() => mustParseMac(text), /not a MAC address/);
    });
  }
});

Deno.test("bytes and URL segments round-trip", () => {
  const mac = mustParseMac("52:54:00:AB:cd:0e");
  assert.deepEqual([...macToBytes(mac)], [0x52, 0x54, 0, 0xab, 0xcd, 0x0e]);
  assert.equal(macFromBytes(macToBytes(mac)), mac);
  assert.equal(macHyphens(mac), "52-54-00-ab-cd-0e");
  assert.equal(parseMac(macHyphens(mac)), mac);
  assert.throws(() => macFromBytes(new Uint8Array(5)), /6 bytes/);
});
