import assert from "node:assert/strict";
import { MalformedPacketError } from "../../net/bytes.ts";
import { frame, FrameReader, type FrameSource } from "./tcp.ts";

/** A source that yields `bytes` in chunks of `chunk` bytes, then EOF. */
function source(bytes: Uint8Array, chunk: number): FrameSource {
  let at = 0;
  return {
    read(p) {
      if (at >= bytes.length) return Promise.resolve(null);
      const n = Math.min(chunk, p.length, bytes.length - at);
      p.set(bytes.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
}

const messages = [
  Uint8Array.of(1, 2, 3),
  new Uint8Array(0),
  Uint8Array.from({ length: 5000 }, (_, i) => i & 0xff),
  Uint8Array.from({ length: 65535 }, (_, i) => (i * 7) & 0xff),
];
const stream = Uint8Array.from(messages.flatMap((m) => [...frame(m)]));

Deno.test("FrameReader reads every message however the stream is cut", async (t) => {
  for (const chunk of [1, 2, 3, 7, 4096, 1 << 20]) {
    await t.step(`chunks of ${chunk}`, async () => {
      const r = new FrameReader(source(stream, chunk));
      for (const m of messages) assert.deepEqual(await r.next(), m);
      assert.equal(await r.next(), null);
    });
  }
});

Deno.test("a connection closed inside a frame is malformed", async (t) => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["inside the length", Uint8Array.of(0), /inside a length/],
    ["inside the message", Uint8Array.of(0, 5, 1, 2), /inside a message of 5 bytes/],
  ];
  for (const [name, bytes, error] of cases) {
    await t.step(name, async () => {
      await assert.rejects(new FrameReader(source(bytes, 1)).next(), (e: unknown) => {
        assert.ok(e instanceof MalformedPacketError);
        assert.match(e.message, error);
        return true;
      });
    });
  }
});

Deno.test("frame: two length bytes; no message above 65535", () => {
  assert.deepEqual([...frame(Uint8Array.of(9, 8))], [0, 2, 9, 8]);
  assert.throws(() => frame(new Uint8Array(65536)), RangeError);
});
