import assert from "node:assert/strict";
import { ByteWriter, hexBytes } from "./bytes.ts";

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

Deno.test("ByteWriter.finish: what was written, filled exactly, with room left or grown", () => {
  const exact = new ByteWriter(3);
  const a = exact.u8(1).u16(0x0203).finish();
  assert.deepEqual([...a], [1, 2, 3]);
  const short = new ByteWriter(8);
  const b = short.u8(9).finish();
  assert.deepEqual([...b], [9]);
  assert.equal(b.buffer.byteLength, 1); // a copy, not a view of the 8 bytes
  const grown = new ByteWriter(1);
  assert.deepEqual([...grown.u32(0x01020304).finish()], [1, 2, 3, 4]);
});

Deno.test("ByteWriter.bytes: a whole array or a range of it, short or long; a bad range throws", () => {
  const src = Uint8Array.from({ length: 40 }, (_, i) => i);
  const w = new ByteWriter(1);
  w.bytes(src, 2, 5).bytes(src, 10, 30).bytes(Uint8Array.of(99)).bytes(src, 7, 7);
  assert.deepEqual(
    [...w.finish()],
    [2, 3, 4, ...Array.from({ length: 20 }, (_, i) => 10 + i), 99],
  );
  for (const [start, end] of [[-1, 2], [3, 2], [0, 41], [0.5, 2]]) {
    assert.throws(() => new ByteWriter(4).bytes(src, start, end), RangeError);
  }
});
