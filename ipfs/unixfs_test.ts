import assert from "node:assert/strict";
import { CID } from "multiformats";
import { sha256 } from "multiformats/hashes/sha2";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import {
  type BlockGetter,
  decodeNode,
  findInDirectory,
  listDirectory,
  loadNode,
  readFile,
  resolvePath,
  UnixfsError,
} from "./unixfs.ts";
import { buildTree, MemoryBlockstore, pseudoRandomBytes } from "../tests/ipfs_fixture.ts";

function counting(blocks: MemoryBlockstore): { get: BlockGetter; fetched: CID[] } {
  const fetched: CID[] = [];
  const get: BlockGetter = (cid) => {
    fetched.push(cid);
    const bytes = blocks.get(cid);
    return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no block ${cid}`));
  };
  return { get, fetched };
}

async function concat(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of it) parts.push(p);
  return new Uint8Array(await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer());
}

async function put(blocks: MemoryBlockstore, node: dagPb.PBNode): Promise<CID> {
  const bytes = dagPb.encode(node);
  const cid = CID.createV1(dagPb.code, await sha256.digest(bytes));
  blocks.put(cid, bytes);
  return cid;
}

Deno.test("HAMT lookups fetch only the shards on the name's hash path", async (t) => {
  const entries: { path: string; content: Uint8Array }[] = [];
  for (let i = 0; i < 2000; i++) {
    entries.push({ path: `many/entry-${i}.txt`, content: pseudoRandomBytes(8, i + 1) });
  }
  for (const profile of ["kubo-v0", "v1-raw"] as const) {
    await t.step(profile, async () => {
      const { blocks, cids } = await buildTree(entries, {
        profile,
        shardSplitThresholdBytes: 1000,
      });
      const dirCid = cids.get("many")!;
      const { get, fetched } = counting(blocks);
      const dir = await loadNode(get, dirCid);
      assert.equal(dir.kind, "hamt");
      const shards = blocks.dfs(dirCid, "entity").length;
      assert.ok(shards > 3, `a sharded directory with ${shards} shard blocks`);
      for (const i of [0, 1, 999, 1999]) {
        fetched.length = 0;
        const link = await findInDirectory(get, dir, `entry-${i}.txt`);
        assert.ok(link?.cid.equals(cids.get(`many/entry-${i}.txt`)!), `entry-${i}.txt`);
        // One block per shard level below the root, never a scan of the whole HAMT.
        assert.ok(fetched.length <= 2, `entry-${i}: fetched ${fetched.length} of ${shards}`);
      }
      assert.equal(await findInDirectory(get, dir, "entry-2000.txt"), null);
      const names = (await listDirectory(get, dir)).map((l) => l.name);
      assert.equal(names.length, 2000);
      assert.deepEqual(names, [...names].sort());
    });
  }
});

Deno.test("readFile uses blocksizes to fetch only the blocks of a range", async (t) => {
  const content = pseudoRandomBytes(100 * 1024 + 17, 5);
  const { blocks, cids } = await buildTree([{ path: "f", content }], {
    profile: "v1-raw",
    chunkSize: 1024,
    maxChildrenPerNode: 4,
  });
  const root = cids.get("f")!;
  const cases: [string, number, number][] = [
    ["first byte", 0, 1],
    ["inside one leaf", 5000, 5100],
    ["across two leaves", 50_000, 51_100],
    ["last bytes", content.length - 3, content.length],
    ["everything", 0, content.length],
  ];
  for (const [name, start, end] of cases) {
    await t.step(name, async () => {
      const { get, fetched } = counting(blocks);
      const got = await concat(readFile(get, root, { start, end }));
      assert.deepEqual(got, content.subarray(start, end));
      const leaves = fetched.filter((c) => c.code === 0x55).length;
      const expectedLeaves = Math.floor((end - 1) / 1024) - Math.floor(start / 1024) + 1;
      assert.equal(leaves, expectedLeaves);
      // Interior nodes: at most one path per leaf boundary, a tree of depth 4 over 101 leaves.
      assert.ok(fetched.length - leaves <= 4 * expectedLeaves, `${fetched.length - leaves} nodes`);
    });
  }
});

Deno.test("symlinks resolve inside the tree only", async (t) => {
  const { root, blocks } = await buildTree([
    { path: "a/file", content: new TextEncoder().encode("x") },
    { path: "a/up", link: "../b/target" },
    { path: "b/target", content: new TextEncoder().encode("target") },
    { path: "a/escape", link: "../../etc/passwd" },
    { path: "a/absolute", link: "/etc/passwd" },
    { path: "a/loop1", link: "loop2" },
    { path: "a/loop2", link: "loop1" },
    { path: "a/dirlink", link: "../b" },
  ], { profile: "v1-raw" });
  const { get } = counting(blocks);
  const cases: [string, string | null][] = [
    ["a/up", "target"],
    ["a/dirlink/target", "target"],
    ["a/escape", null],
    ["a/absolute", null],
    ["a/loop1", null],
  ];
  for (const [path, expected] of cases) {
    await t.step(path, async () => {
      const found = await resolvePath(get, root, path.split("/"));
      if (expected === null) return assert.equal(found, null);
      assert.equal(found?.node.kind, "file");
      assert.equal(new TextDecoder().decode(await concat(readFile(get, found!.cid))), expected);
    });
  }
});

Deno.test("hostile nodes are refused with UnixfsError", async (t) => {
  const blocks = new MemoryBlockstore();
  const leafBytes = new TextEncoder().encode("12345");
  const leaf = CID.createV1(0x55, await sha256.digest(leafBytes));
  blocks.put(leaf, leafBytes);
  const lyingSize = await put(blocks, {
    Data: new UnixFS({ type: "file", blockSizes: [10n] }).marshal(),
    Links: [{ Hash: leaf as never, Tsize: 5 }],
  });
  const missingSizes = await put(blocks, {
    Data: new UnixFS({ type: "file" }).marshal(),
    Links: [{ Hash: leaf as never, Tsize: 5 }],
  });
  const noData = await put(blocks, { Links: [] });
  const badFanout = await put(blocks, {
    Data: new UnixFS({ type: "hamt-sharded-directory", fanout: 100n, hashType: 0x22n }).marshal(),
    Links: [],
  });
  const badHash = await put(blocks, {
    Data: new UnixFS({ type: "hamt-sharded-directory", fanout: 256n, hashType: 0x12n }).marshal(),
    Links: [],
  });
  const notPb = CID.createV1(dagPb.code, await sha256.digest(leafBytes));
  blocks.put(notPb, leafBytes);
  const { get } = counting(blocks);
  const cases: [string, () => Promise<unknown>, RegExp][] = [
    [
      "a child smaller than blocksizes says",
      () => concat(readFile(get, lyingSize)),
      /parent says 10/,
    ],
    ["links without blocksizes", () => loadNode(get, missingSizes), /1 links but 0 blocksizes/],
    ["dag-pb without Data", () => loadNode(get, noData), /no Data/],
    ["HAMT fanout not a power of two", () => loadNode(get, badFanout), /fanout 100/],
    ["HAMT with another hash", () => loadNode(get, badHash), /hash 0x12/],
    ["bytes that are not dag-pb", () => loadNode(get, notPb), /not a UnixFS node/],
  ];
  for (const [name, run, message] of cases) {
    await t.step(name, async () => {
      await assert.rejects(run(), (err: Error) => {
        assert.ok(err instanceof UnixfsError, `${err.name}: ${err.message}`);
        assert.match(err.message, message);
        return true;
      });
    });
  }
  await t.step("a raw block is a whole file", () => {
    const node = decodeNode(leaf, leafBytes);
    assert.equal(node.kind === "file" && node.size, 5);
  });
});
