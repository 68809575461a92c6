import assert from "node:assert/strict";
import { BlockSource } from "./blocks.ts";

function bytes(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff);
}

/**
 * A stream that hands out `data` in chunks of `chunk` bytes and counts pulls: a plain stream
 * (an IPFS fetch) or a byte stream read with a BYOB reader (a local file), which never gives
 * more than asked.
 */
function counted(data: Uint8Array, chunk: number, kind: "plain" | "bytes" = "plain") {
  let offset = 0;
  const state = { pulls: 0, cancelled: false };
  const cancel = () => {
    state.cancelled = true;
  };
  if (kind === "bytes") {
    const stream = new ReadableStream({
      type: "bytes",
      pull(c) {
        state.pulls++;
        if (offset >= data.length) {
          c.close();
          c.byobRequest?.respond(0);
          return;
        }
        const view = c.byobRequest!.view! as Uint8Array;
        const n = Math.min(chunk, view.length, data.length - offset);
        view.set(data.subarray(offset, offset + n));
        offset += n;
        c.byobRequest!.respond(n);
      },
      cancel,
    });
    return { stream: stream as ReadableStream<Uint8Array>, state };
  }
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      state.pulls++;
      if (offset >= data.length) return c.close();
      c.enqueue(data.slice(offset, offset + chunk));
      offset += chunk;
    },
    cancel,
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
    { size: 300_000, blksize: 1468, chunk: 200_000, blocks: 205 },
  ];
  for (const kind of ["plain", "bytes"] as const) {
    for (const c of cases) {
      const name = `${kind}: ${c.size} bytes, blksize ${c.blksize}, chunks of ${c.chunk}`;
      await t.step(name, async () => {
        const data = bytes(c.size);
        const { stream } = counted(data, c.chunk, kind);
        const src = new BlockSource(stream, c.blksize, 4);
        const parts: Uint8Array[] = [];
        for (let n = 1;; n++) {
          const packet = await src.packet(n);
          assert.deepEqual([...packet.subarray(0, 4)], [0, 3, (n >> 8) & 0xff, n & 0xff]);
          const final = packet.length - 4 < c.blksize;
          assert.equal(src.final, final ? n : null);
          // The ring is reused: keep a copy.
          parts.push(packet.slice(4));
          if (final) break;
        }
        assert.equal(parts.length, c.blocks);
        assert.deepEqual(Uint8Array.from(parts.flatMap((p) => [...p])), data);
        assert.equal(src.bytes, c.size);
      });
    }
  }
});

Deno.test("BlockSource keeps the window's blocks for retransmission, in fixed buffers", async (t) => {
  const data = bytes(20 * 100 + 5);
  const src = new BlockSource(counted(data, 333).stream, 100, 3);
  const first = [await src.packet(1), await src.packet(2), await src.packet(3)];
  await t.step("a kept block is the same packet, no read", () => {
    assert.equal(src.packet(2), first[1]);
    assert.equal(src.read, 3);
  });
  await t.step("the next new block reuses the oldest slot's buffer", async () => {
    const fourth = await src.packet(4);
    assert.equal(fourth.buffer, first[0]!.buffer);
    assert.deepEqual([...fourth.subarray(4, 8)], [...data.subarray(300, 304)]);
  });
  await t.step("blocks out of the window or out of order are refused", () => {
    assert.throws(() => src.packet(1), /no longer kept/);
    assert.throws(() => src.packet(6), /asked before 5/);
  });
});

Deno.test("BlockSource reads only as blocks are asked for", async (t) => {
  for (const kind of ["plain", "bytes"] as const) {
    await t.step(kind, async () => {
      const { stream, state } = counted(bytes(1 << 20), 1000, kind);
      const src = new BlockSource(stream, 1000);
      await src.packet(1);
      await src.packet(2);
      assert.ok(state.pulls <= 3, `pulled ${state.pulls} chunks for 2 blocks`);
      await src.cancel();
      assert.equal(state.cancelled, true);
    });
  }
});

Deno.test("BlockSource reads a byte stream in large pieces", async () => {
  const { stream, state } = counted(bytes(1 << 20), 1 << 20, "bytes");
  const src = new BlockSource(stream, 512);
  for (let n = 1; n <= 200; n++) await src.packet(n);
  assert.equal(state.pulls, 1, "200 blocks of 512 from one read");
});
