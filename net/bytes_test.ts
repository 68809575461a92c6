import assert from "node:assert/strict";
import { toHex } from "./bytes.ts";

Deno.test("toHex writes every byte as two lower-case digits, with the separator between", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.equal(toHex(all), Array.from(all, (b) => b.toString(16).padStart(2, "0")).join(""));
  assert.equal(toHex(Uint8Array.of(0x52, 0x54, 0, 0xab, 0xcd, 0xef), ":"), "52:54:00:ab:cd:ef");
  assert.equal(toHex(new Uint8Array(0)), "");
  assert.equal(toHex(Uint8Array.of(7), ":"), "07");
});
