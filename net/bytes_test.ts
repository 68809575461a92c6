import assert from "node:assert/strict";
import { hexBytes } from "./bytes.ts";

Deno.test("hexBytes: two lower-case digits a byte, the separator between them", () => {
  const every = Uint8Array.from({ length: 256 }, (_, i) => i);
  const reference = (b: Uint8Array, sep: string) =>
    Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(sep);
  for (const sep of ["", ":", "-", " / "]) {
    assert.equal(hexBytes(every, sep), reference(every, sep));
  }
  assert.equal(hexBytes(new Uint8Array([0x52, 0x54, 0, 0xab, 0xc0, 1]), ":"), "52:54:00:ab:c0:01");
  assert.equal(hexBytes(new Uint8Array([0x0f])), "0f");
  assert.equal(hexBytes(new Uint8Array(0), ":"), "");
});
