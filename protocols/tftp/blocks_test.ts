import assert from "node:assert/strict";
import { BlockSource } from "./blocks.ts";

function bytes(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);
}

/** A stream that hands out `data` in chunks of `chunk` bytes and counts pulls. */
function counted(data: Uint8Array, chunk: number) {
  let offset = 0;
  const state = { pulls: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      state.pulls++;
      if (offset >= data.length) return c.close();
      c.enqueue(data.slice(offset, offset + chunk));
      offset += chunk;
    },
    cancel() {
      state.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { stream, state };
}

Deno.test("BlockSource cuts streams into DATA packets", async (t) => {
  const cases: { size: number; blksize: number; chunk: number; blocks: number }[] = [
    { size: 0, blksize: 512, chunk: 100, blocks: 1 }, // one empty block
    { size: 100, blksize: 512, chunk: 100, blocks: 1 },
    { size: 512, blksize: 512, chunk: 100, blocks: 2 }, // full block + empty final block
    { size: 1024, blksize: 512, chunk: 4096, blocks: 3 },
    { size: 3000, blksize: 1468, chunk: 7, blocks: 3 },
    { size: 10000, blksize: 8, chunk: 65536, blocks: 1251 },
  ];
  for (const c of cases) {
    await t.step(`${c.size} bytes, blksize ${c.blksize}, chunks of ${c.chunk}`, async () => {
      const data = bytes(c.size);
      const { stream } = counted(data, c.chunk);
      const src = new BlockSource(stream, c.blksize);
      const parts: Uint8Array[] = [];
      for (let n = 1;; n++) {
        const { packet, final } = await src.next(n & 0xffff);
        assert.deepEqual([...packet.subarray(0, 4)], [0, 3, (n >> 8) & 0xff, n & 0xff]);
        assert.equal(final, packet.length - 4 < c.blksize);
        parts.push(packet.subarray(4));
        if (final) break;
      }
      assert.equal(parts.length, c.blocks);
      assert.deepEqual(Uint8Array.from(parts.flatMap((p) => [...p])), data);
      assert.equal(src.bytes, c.size);
    });
  }
});

Deno.test("BlockSource reads only as blocks are asked for", async () => {
  const { stream, state } = counted(bytes(1 << 20), 1000);
  const src = new BlockSource(stream, 1000);
  await src.next(1);
  await src.next(2);
  assert.ok(state.pulls <= 3, `pulled ${state.pulls} chunks for 2 blocks`);
  await src.cancel();
  assert.equal(state.cancelled, true);
});
