import assert from "node:assert/strict";
import { CID, varint } from "multiformats";
import { sha256 } from "multiformats/hashes/sha2";
import { CarWriter } from "@ipld/car/writer";
import { CarError, readCarBlocks } from "./car.ts";
import { BlockVerificationError, CODEC } from "./verify.ts";

async function rawBlock(text: string) {
  const bytes = new TextEncoder().encode(text);
  return { cid: CID.createV1(CODEC.raw, await sha256.digest(bytes)), bytes };
}

async function carBytes(roots: CID[], blocks: { cid: CID; bytes: Uint8Array }[]) {
  // @ipld/car is typed against its own multiformats; the CID objects are compatible.
  const { writer, out } = CarWriter.create(roots as never);
  const parts: Uint8Array[] = [];
  const done = (async () => {
    for await (const p of out) parts.push(p);
  })();
  for (const b of blocks) await writer.put({ cid: b.cid as never, bytes: b.bytes });
  await writer.close();
  await done;
  return new Uint8Array(await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer());
}

async function* chunks(bytes: Uint8Array, size = 7): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}

async function collect(source: AsyncIterable<Uint8Array>, accept?: (cid: CID) => boolean) {
  const out: string[] = [];
  for await (const b of readCarBlocks(source, { accept })) {
    out.push(new TextDecoder().decode(b.bytes));
  }
  return out;
}

Deno.test("readCarBlocks yields verified blocks and ignores the roots", async (t) => {
  const blocks = await Promise.all(["alpha", "beta", "gamma"].map(rawBlock));
  const unrelated = (await rawBlock("not in this CAR")).cid;
  const car = await carBytes([unrelated], blocks);
  await t.step("all blocks, in stream order", async () => {
    assert.deepEqual(await collect(chunks(car)), ["alpha", "beta", "gamma"]);
  });
  await t.step("accept() skips blocks nobody asked for", async () => {
    const want = new Set([blocks[0]!.cid.toString(), blocks[2]!.cid.toString()]);
    assert.deepEqual(await collect(chunks(car), (c) => want.has(c.toString())), ["alpha", "gamma"]);
  });
  await t.step("a cut exactly between sections ends early without error", async () => {
    const two = await carBytes([unrelated], blocks.slice(0, 2));
    const got = await collect(chunks(car.subarray(0, two.length)));
    assert.deepEqual(got, ["alpha", "beta"]);
  });
});

Deno.test("readCarBlocks refuses broken CAR streams", async (t) => {
  const blocks = await Promise.all(["alpha", "beta", "gamma"].map(rawBlock));
  const car = await carBytes([blocks[0]!.cid], blocks);
  const headerOnly = await carBytes([blocks[0]!.cid], []);
  const truncations: [string, number][] = [
    ["inside the header length", 0],
    ["inside the header", 5],
    ["inside the first section's CID", headerOnly.length + 3],
    ["inside the last block's bytes", car.length - 2],
  ];
  for (const [name, at] of truncations) {
    await t.step(`truncated ${name}`, async () => {
      const source = at === 0 ? chunks(new Uint8Array(0)) : chunks(car.subarray(0, at));
      await assert.rejects(collect(source), (err: Error) => {
        assert.ok(err instanceof CarError, `${err.name}: ${err.message}`);
        assert.equal(err.problem, "truncated");
        return true;
      });
    });
  }
  await t.step("a flipped byte in a block: refused, and the source is ended", async () => {
    const bad = car.slice();
    bad[bad.length - 2]! ^= 0x01;
    let ended = false;
    async function* source() {
      try {
        yield* chunks(bad);
        // A gateway still sending: the body is open until its reader ends it.
        await new Promise(() => {});
      } finally {
        ended = true;
      }
    }
    await assert.rejects(collect(source()), BlockVerificationError);
    assert.ok(ended, "the CAR body was left open");
  });
  await t.step("a consumer that stops early ends the source too", async () => {
    let ended = false;
    async function* source() {
      try {
        yield* chunks(car);
      } finally {
        ended = true;
      }
    }
    for await (const _ of readCarBlocks(source())) break;
    await new Promise((r) => setTimeout(r, 0)); // the source's return() is not awaited
    assert.ok(ended, "the CAR body was left open");
  });
  await t.step("garbage instead of a CAR", async () => {
    // A plausible header length, then bytes that are not a dag-cbor header, then more.
    const garbage = new TextEncoder().encode("\x05hello, this is not a CAR at all");
    await assert.rejects(collect(chunks(garbage)), { name: "CarError", problem: "malformed" });
  });
  await t.step("a section claiming 3 MiB is refused before it is read", async () => {
    const cid = blocks[0]!.cid.bytes;
    const head = new Uint8Array([
      ...headerOnly,
      ...varint.encodeTo(3 * 1024 * 1024, new Uint8Array(4)).subarray(
        0,
        varint.encodingLength(3 * 1024 * 1024),
      ),
      ...cid,
    ]);
    let pulled = 0;
    async function* endless() {
      yield head;
      for (let i = 0; i < 100; i++) {
        pulled += 65536;
        yield new Uint8Array(65536);
      }
    }
    await assert.rejects(collect(endless()), { name: "CarError", problem: "oversize" });
    assert.ok(pulled < 3 * 1024 * 1024, `pulled ${pulled} bytes`);
  });
  await t.step("an error of the byte source passes through unchanged", async () => {
    const boom = new Error("connection reset");
    async function* failing() {
      yield car.subarray(0, headerOnly.length + 10);
      throw boom;
    }
    await assert.rejects(collect(failing()), (err) => err === boom);
  });
});
