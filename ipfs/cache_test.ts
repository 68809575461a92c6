import assert from "node:assert/strict";
import { join } from "node:path";
import { CID } from "multiformats";
import { sha256 } from "multiformats/hashes/sha2";
import { memoryLogger } from "../log.ts";
import { blockKey, ContentCache, fileKey } from "./cache.ts";
import { buildTree, pseudoRandomBytes, tempDir } from "../tests/ipfs_fixture.ts";

async function rawCid(bytes: Uint8Array): Promise<CID> {
  return CID.createV1(0x55, await sha256.digest(bytes));
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("ContentCache blocks: verified on the way back, damaged entries dropped", async (t) => {
  const tmp = await tempDir("ipfs_cache_test_");
  try {
    const cache = new ContentCache(join(tmp.path, "cache"));
    await cache.init();
    const { blocks, root } = await buildTree(
      [{ path: "a/b", content: new TextEncoder().encode("hello") }],
      { profile: "kubo-v0" },
    );
    const bytes = blocks.get(root)!;
    await t.step("put then get returns the same bytes, keyed by multihash", async () => {
      await cache.putBlock(root, bytes);
      assert.deepEqual(await cache.getBlock(root), bytes);
      assert.deepEqual(await names(cache.blocksDir), [blockKey(root)]);
      // CIDv0 and its CIDv1 form name the same block.
      assert.deepEqual(await cache.getBlock(root.toV1()), bytes);
    });
    await t.step("a block altered on disk is removed and reported missing", async () => {
      const damaged = bytes.slice();
      damaged[damaged.length - 1]! ^= 0xff;
      await Deno.writeFile(cache.blockPath(root), damaged);
      assert.equal(await cache.getBlock(root), null);
      assert.deepEqual(await names(cache.blocksDir), []);
    });
  } finally {
    await tmp.remove();
  }
});

Deno.test("ContentCache files: only complete files appear in files/", async (t) => {
  const tmp = await tempDir("ipfs_cache_test_");
  try {
    const cache = new ContentCache(join(tmp.path, "cache"));
    await cache.init();
    const content = pseudoRandomBytes(100_000, 3);
    const cid = await rawCid(content);
    await t.step("commit with the right size moves it into place", async () => {
      const w = await cache.createFile(cid);
      await w.write(content.subarray(0, 40_000));
      assert.deepEqual(await names(cache.filesDir), []);
      await w.write(content.subarray(40_000));
      await w.commit(content.length);
      assert.deepEqual(await names(cache.filesDir), [fileKey(cid)]);
      assert.deepEqual(await names(cache.tmpDir), []);
      assert.deepEqual(await Deno.readFile(cache.filePath(cid)), content);
      assert.equal(await cache.fileSize(cid), content.length);
    });
    const other = await rawCid(content.subarray(1));
    await t.step("commit with a short file fails and leaves nothing", async () => {
      const w = await cache.createFile(other);
      await w.write(content.subarray(0, 10));
      await assert.rejects(w.commit(content.length - 1), /assembled 10 bytes/);
      assert.equal(await cache.fileSize(other), null);
      assert.deepEqual(await names(cache.tmpDir), []);
    });
    await t.step("abort leaves nothing", async () => {
      const w = await cache.createFile(other);
      await w.write(content.subarray(0, 10));
      await w.abort();
      assert.equal(await cache.fileSize(other), null);
      assert.deepEqual(await names(cache.tmpDir), []);
    });
    await t.step("init removes old temp files, not those another process may write", async () => {
      const w = await cache.createFile(other);
      await w.write(content.subarray(0, 5));
      assert.equal((await names(cache.tmpDir)).length, 1);
      await new ContentCache(cache.dir).init();
      assert.equal((await names(cache.tmpDir)).length, 1);
      await new ContentCache(cache.dir).init(Date.now() + 2 * 3600_000);
      assert.deepEqual(await names(cache.tmpDir), []);
      await w.abort();
    });
  } finally {
    await tmp.remove();
  }
});

Deno.test("ContentCache refs.json keeps recent refs, newest first", async () => {
  const tmp = await tempDir("ipfs_cache_test_");
  try {
    const cache = new ContentCache(join(tmp.path, "cache"));
    await cache.init();
    const t0 = Date.parse("2024-01-01T00:00:00Z");
    for (let i = 0; i < 20; i++) await cache.touchRef(`ref-${i % 18}`, new Date(t0 + i * 1000));
    const refs = await cache.recentRefs();
    assert.equal(refs.length, 16);
    assert.deepEqual(refs.slice(0, 3).map((r) => r.ref), ["ref-1", "ref-0", "ref-17"]);
    await Deno.writeTextFile(join(cache.dir, "refs.json"), "{not json");
    assert.deepEqual(await cache.recentRefs(), []);
  } finally {
    await tmp.remove();
  }
});

Deno.test("ContentCache.gc removes exactly what the kept refs do not reach", async () => {
  const tmp = await tempDir("ipfs_cache_test_");
  try {
    const cache = new ContentCache(join(tmp.path, "cache"));
    await cache.init();
    const shared = pseudoRandomBytes(5000, 1);
    const a = await buildTree([
      { path: "x/shared", content: shared },
      { path: "x/only-a", content: pseudoRandomBytes(700, 2) },
    ], { profile: "v1-raw" });
    const b = await buildTree([
      { path: "x/shared", content: shared },
      { path: "x/only-b", content: pseudoRandomBytes(900, 3) },
    ], { profile: "v1-raw" });
    // Cache every node block and every file, as a prefetch of both trees would.
    for (const tree of [a, b]) {
      for (const { cid, bytes } of tree.blocks.dfs(tree.root, "all")) {
        if (cid.code === 0x70) await cache.putBlock(cid, bytes);
        else await cache.putFile(cid, bytes);
      }
    }
    const stale = await cache.createFile(await rawCid(new Uint8Array([9])));
    await stale.write(new Uint8Array([9]));
    await stale.abort().then(() => Deno.writeFile(stale.tempPath, new Uint8Array([9])));
    const old = new Date(Date.now() - 2 * 3600_000);
    await Deno.utime(stale.tempPath, old, old);
    await cache.touchRef(a.root.toString());
    await cache.touchRef(b.root.toString());

    const result = await cache.gc([b.root.toString()]);
    const files = await names(cache.filesDir);
    assert.deepEqual(
      files.sort(),
      [
        fileKey(b.cids.get("x/shared")!),
        fileKey(b.cids.get("x/only-b")!),
      ].sort(),
    );
    assert.equal(result.removedFiles, 1);
    // A's root and its x/ directory are the only nodes B does not share.
    assert.equal(result.removedBlocks, 2);
    assert.equal(result.removedTemp, 1);
    assert.deepEqual(
      await names(cache.blocksDir),
      [blockKey(b.root), blockKey(b.cids.get("x")!)].sort(),
    );
    assert.deepEqual((await cache.recentRefs()).map((r) => r.ref), [b.root.toString()]);
  } finally {
    await tmp.remove();
  }
});

Deno.test("ContentCache.gc with maxBytes evicts least recently used files first", async (t) => {
  const KB = 1000;
  // Six 100 kB files, each one raw block (a whole file in files/), under one directory.
  const contents = Array.from({ length: 6 }, (_, i) => pseudoRandomBytes(100 * KB, 40 + i));
  const a = await buildTree(
    contents.map((content, i) => ({ path: `x/f${i}`, content })),
    { profile: "v1-raw" },
  );
  // A second, older ref: its own directory and one file of its own.
  const b = await buildTree([{ path: "y/old", content: pseudoRandomBytes(50 * KB, 60) }], {
    profile: "v1-raw",
  });
  const fileOf = (i: number) => fileKey(a.cids.get(`x/f${i}`)!);
  const t0 = Date.now() - 24 * 3600_000;
  const at = (minutes: number) => new Date(t0 + minutes * 60_000);

  async function filled(
    logger = memoryLogger(),
  ): Promise<{ cache: ContentCache; remove: () => Promise<void> }> {
    const tmp = await tempDir("ipfs_cache_gc_");
    const cache = new ContentCache(join(tmp.path, "cache"), logger);
    await cache.init();
    for (const tree of [b, a]) {
      for (const { cid, bytes } of tree.blocks.dfs(tree.root, "all")) {
        if (cid.code === 0x70) await cache.putBlock(cid, bytes);
        else await cache.putFile(cid, bytes);
      }
    }
    // f0 is the least recently used, f5 the most; B's entries are older than all of A's.
    for (let i = 0; i < 6; i++) {
      await Deno.utime(join(cache.filesDir, fileOf(i)), at(10 + i), at(10 + i));
    }
    for (const { cid } of b.blocks.dfs(b.root, "all")) {
      const path = cid.code === 0x70 ? cache.blockPath(cid) : cache.filePath(cid);
      await Deno.utime(path, at(1), at(1)).catch(() => {});
    }
    // A's directory blocks are the oldest of all: still never evicted.
    for (const { cid } of a.blocks.dfs(a.root, "all")) {
      if (cid.code === 0x70) await Deno.utime(cache.blockPath(cid), at(0), at(0));
    }
    return { cache, remove: tmp.remove };
  }

  async function total(cache: ContentCache): Promise<number> {
    let n = 0;
    for (const dir of [cache.blocksDir, cache.filesDir, cache.tmpDir]) {
      for await (const e of Deno.readDir(dir)) n += (await Deno.stat(join(dir, e.name))).size;
    }
    return n;
  }
  const refs = [a.root.toString(), b.root.toString()];
  const aBlocks = a.blocks.dfs(a.root, "all").filter((x) => x.cid.code === 0x70)
    .map((x) => blockKey(x.cid));

  await t.step("B's blocks and files go first, then A's files from the oldest", async () => {
    const { cache, remove } = await filled();
    try {
      const before = await total(cache);
      const max = before - 250 * KB;
      const result = await cache.gc(refs, { maxBytes: max });
      const files = await names(cache.filesDir);
      // B's blocks and file (50 kB), then f0 and f1 (100 kB each) make 250 kB.
      assert.deepEqual(files, [fileOf(2), fileOf(3), fileOf(4), fileOf(5)].sort());
      assert.deepEqual(await names(cache.blocksDir), [...aBlocks].sort());
      assert.equal(result.evictedFiles, 3);
      assert.equal(result.removedFiles, 0);
      assert.ok(result.evictedBlocks >= 2, `${result.evictedBlocks} blocks of B evicted`);
      assert.ok(result.sizeBytes <= max, `${result.sizeBytes} > ${max}`);
      assert.equal(result.sizeBytes, await total(cache));
      assert.equal(result.freedBytes, before - result.sizeBytes);
      assert.equal(result.maxBytes, max);
    } finally {
      await remove();
    }
  });

  await t.step("a file in use survives, whether told or open in this process", async () => {
    const { cache, remove } = await filled();
    const open = await Deno.open(join(cache.filesDir, fileOf(1)), { read: true });
    try {
      const max = (await total(cache)) - 250 * KB;
      const result = await cache.gc(refs, { maxBytes: max, inUse: (k) => k === fileOf(0) });
      const files = await names(cache.filesDir);
      assert.ok(files.includes(fileOf(0)), "told in use");
      assert.ok(files.includes(fileOf(1)), "open here");
      assert.deepEqual(files, [fileOf(0), fileOf(1), fileOf(4), fileOf(5)].sort());
      assert.ok(result.sizeBytes <= max);
    } finally {
      open.close();
      await remove();
    }
  });

  await t.step("a file touched is recently used", async () => {
    const { cache, remove } = await filled();
    try {
      await cache.touchFile(a.cids.get("x/f0")!);
      const max = (await total(cache)) - 250 * KB;
      await cache.gc(refs, { maxBytes: max });
      assert.deepEqual(
        await names(cache.filesDir),
        [fileOf(0), fileOf(3), fileOf(4), fileOf(5)].sort(),
      );
    } finally {
      await remove();
    }
  });

  await t.step("a limit below the tree's structure empties all but that, and says so", async () => {
    const logger = memoryLogger();
    const { cache, remove } = await filled(logger);
    try {
      const result = await cache.gc(refs, { maxBytes: 1, inUse: (k) => k === fileOf(3) });
      assert.deepEqual(await names(cache.filesDir), [fileOf(3)]);
      assert.deepEqual(await names(cache.blocksDir), [...aBlocks].sort());
      assert.ok(result.sizeBytes > 1);
      const warn = logger.lines.find((l) => l.level === "warn");
      assert.match(String(warn?.message), /still over its limit/);
    } finally {
      await remove();
    }
  });

  await t.step("no limit (0): only what no kept ref reaches goes", async () => {
    const { cache, remove } = await filled();
    try {
      const before = await total(cache);
      const result = await cache.gc(refs, { maxBytes: 0 });
      assert.equal(result.freedBytes, 0);
      assert.equal(result.sizeBytes, before);
      assert.equal((await names(cache.filesDir)).length, 7);
    } finally {
      await remove();
    }
  });
});
