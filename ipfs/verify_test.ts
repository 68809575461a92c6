import assert from "node:assert/strict";
import { CID } from "multiformats";
import { identity } from "multiformats/hashes/identity";
import { sha256, sha512 } from "multiformats/hashes/sha2";
import * as Digest from "multiformats/hashes/digest";
import {
  BlockVerificationError,
  CODEC,
  identityBlock,
  MAX_BLOCK_SIZE,
  parseCid,
  UnsupportedCidError,
  verifyBlock,
} from "./verify.ts";

const bytes = new TextEncoder().encode("astral boot block\n");

type Hasher = { digest(input: Uint8Array): unknown };

async function cidOf(
  code: number,
  data: Uint8Array,
  hasher: Hasher = sha256,
  version: 0 | 1 = 1,
): Promise<CID> {
  const digest = (await hasher.digest(data)) as Digest.Digest<number, number>;
  return version === 0 ? CID.createV0(digest as never) : CID.createV1(code, digest);
}

Deno.test("verifyBlock accepts blocks that hash to their CID", async (t) => {
  const cases: [string, () => Promise<CID>][] = [
    ["raw, sha2-256", () => cidOf(CODEC.raw, bytes)],
    ["dag-pb CIDv0", () => cidOf(CODEC.dagPb, bytes, sha256, 0)],
    ["raw, sha2-512", () => cidOf(CODEC.raw, bytes, sha512)],
    ["raw, identity", () => cidOf(CODEC.raw, bytes, identity)],
  ];
  for (const [name, make] of cases) {
    await t.step(name, async () => {
      const cid = await make();
      await verifyBlock(cid, bytes);
      // The same CID parsed back from text is usable too.
      assert.ok(parseCid(cid.toString()).equals(cid));
    });
  }
});

Deno.test("verifyBlock refuses wrong, oversized and unsupported blocks", async (t) => {
  const good = await cidOf(CODEC.raw, bytes);
  const flipped = bytes.slice();
  flipped[3]! ^= 0x40;
  const big = new Uint8Array(MAX_BLOCK_SIZE + 1);
  const bigCid = await cidOf(CODEC.raw, big);
  const cbor = CID.createV1(0x71, await sha256.digest(bytes));
  const blake = CID.createV1(CODEC.raw, Digest.create(0xb220, new Uint8Array(32)));
  const shortDigest = CID.createV1(CODEC.raw, Digest.create(0x12, new Uint8Array(20)));
  const cases: [string, CID, Uint8Array, new (...a: never[]) => Error, RegExp][] = [
    ["one flipped bit", good, flipped, BlockVerificationError, /failed verification/],
    ["a truncated block", good, bytes.subarray(1), BlockVerificationError, /failed verification/],
    ["over 2 MiB", bigCid, big, BlockVerificationError, /over the 2097152-byte limit/],
    ["dag-cbor codec", cbor, bytes, UnsupportedCidError, /codec 0x71/],
    ["blake2b hash", blake, bytes, UnsupportedCidError, /multihash 0xb220/],
    ["sha2-256 with a 20-byte digest", shortDigest, bytes, UnsupportedCidError, /20 bytes/],
  ];
  for (const [name, cid, data, type, message] of cases) {
    await t.step(name, async () => {
      await assert.rejects(verifyBlock(cid, data), (err: Error) => {
        assert.ok(err instanceof type, `${err.name}: ${err.message}`);
        assert.match(err.message, message);
        return true;
      });
    });
  }
});

Deno.test("identity CIDs carry their block inline; hashed ones do not", async () => {
  const id = await cidOf(CODEC.raw, bytes, identity);
  assert.deepEqual(identityBlock(id), bytes);
  assert.equal(identityBlock(await cidOf(CODEC.raw, bytes)), null);
});

Deno.test("parseCid refuses text that is not a usable CID", async (t) => {
  for (
    const text of [
      "",
      "hello",
      "Qm123",
      "bafy!!",
      "zdpuAyvkgEDQm9TenwGkd5eNaosSxjgEYd8QatfPetgB1CdEZ",
    ]
  ) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => parseCid(text), UnsupportedCidError);
    });
  }
});
