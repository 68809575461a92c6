/**
 * IpfsStore against hostile gateways (simulated by an injected fetch that ignores abort
 * signals): a CAR that never ends, or ends far over its budget, must not hold a download.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CID } from "multiformats";
import { sha256 } from "multiformats/hashes/sha2";
import { identity } from "multiformats/hashes/identity";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { memoryLogger } from "../log.ts";
import { fileKey } from "./cache.ts";
import type { IpfsEvent } from "./events.ts";
import { IpfsStore } from "./store.ts";
import {
  buildTree,
  carHeader,
  carSection,
  fakeGateway,
  fetchOf,
  MemoryBlockstore,
  pseudoRandomBytes,
  pulledStream,
  readAll,
  sameBytes,
  tempDir,
} from "../tests/ipfs_fixture.ts";

const TIMEOUT_MS = 1000;
const GW = "http://gw.test";

async function fixture() {
  const content = pseudoRandomBytes(600_000, 21);
  const { root, blocks, cids } = await buildTree([{ path: "f", content }], {
    profile: "v1-raw",
  });
  const file = cids.get("f")!;
  // The file's root node, then its leaves, as a gateway would send them.
  const dfs = blocks.dfs(file, "entity");
  return { root, blocks, file, content, dfs };
}

/** A section of `n` bytes that no one asked for: framed right, hashed right, unwanted. */
async function junkSection(n: number, seed: number): Promise<Uint8Array> {
  const bytes = pseudoRandomBytes(n, seed);
  return carSection(CID.createV1(0x55, await sha256.digest(bytes)), bytes);
}

type Fx = Awaited<ReturnType<typeof fixture>>;

/** CAR bodies that never end (or end far too late), each with what should stop it. */
async function hostileCars(fx: Fx) {
  const header = await carHeader(fx.file);
  const sections = fx.dfs.map((b) => carSection(b.cid, b.bytes));
  const junk = await junkSection(16 * 1024, 7);
  const bigJunk = await junkSection(1024 * 1024, 8);
  const headed = new Uint8Array([...header, ...sections[0]!]);
  return [
    {
      name: "valid blocks repeating forever",
      // The root and first leaf, then both again and again: bytes flow, the file never does.
      car: () => pulledStream((i) => i === 0 ? header : sections[(i - 1) % 2]!),
      stop: /budget/,
    },
    {
      name: "junk sections after the last block sent",
      car: () => pulledStream((i) => i === 0 ? header : i <= 3 ? sections[i - 1]! : junk),
      stop: /budget/,
    },
    {
      name: "bytes trickling forever",
      // One byte every 50 ms: never idle long enough for the idle timeout.
      car: () =>
        pulledStream(
          (i) =>
            i === 0
              ? header
              : i === 1
              ? sections[0]!
              : sections[1]!.subarray((i - 2) % 100, (i - 2) % 100 + 1),
          50,
        ),
      stop: /no new block/,
    },
    {
      name: "new blocks trickling, each just inside the timeout",
      // Progress every 800 ms, never fast enough to finish: only the deadline ends it.
      car: () => pulledStream((i) => i === 0 ? headed : sections[i] ?? null, 800),
      stop: /deadline/,
    },
    {
      name: "a CAR over its byte budget (1 MiB of junk before every block)",
      car: () =>
        pulledStream((i) =>
          i === 0 ? header : i % 2 === 1 ? bigJunk : sections[(i >> 1) - 1] ?? null
        ),
      stop: /budget/,
    },
  ];
}

/** Waits until the download of "f" has committed it to the cache. */
async function settled(store: IpfsStore): Promise<void> {
  const found = await store.resolve("f");
  assert.equal(found?.node.kind, "file");
  if (found?.node.kind === "file") await store.ensureFile(found.node);
}

function openStore(fx: { root: CID }, cacheDir: string, fetchFn: typeof fetch, gateways = [GW]) {
  const logger = memoryLogger();
  const store = new IpfsStore({
    ref: fx.root.toString(),
    gateways,
    timeoutMs: TIMEOUT_MS,
    cacheDir,
    logger,
    fetch: fetchFn,
  });
  return { store, logger };
}

Deno.test("a hostile CAR never holds a download: the file arrives as verified blocks", async (t) => {
  const fx = await fixture();
  const tmp = await tempDir("ipfs_store_hostile_");
  try {
    for (const [i, c] of (await hostileCars(fx)).entries()) {
      await t.step(c.name, async () => {
        const gw = fakeGateway(GW, fx.blocks, {
          car: (cid) => cid.equals(fx.file) ? c.car() : undefined,
        });
        const cache = join(tmp.path, `c${i}`);
        const { store, logger } = openStore(fx, cache, fetchOf(gw));
        try {
          await store.stat("f");
          const started = performance.now();
          const got = await readAll(await store.read("f"));
          const ms = performance.now() - started;
          assert.ok(sameBytes(got, fx.content), "byte-exact");
          assert.ok(ms < 3 * TIMEOUT_MS, `took ${Math.round(ms)} ms, timeout ${TIMEOUT_MS} ms`);
          console.log(`    ${c.name}: ${Math.round(ms)} ms (timeout ${TIMEOUT_MS} ms)`);
          assert.ok(gw.counts.raw > 0, "the rest came as single blocks");
          const warn = logger.lines.find((l) => l.message.startsWith("CAR stream"));
          assert.match(String(warn?.fields.error), c.stop);
          // Verified and complete in the cache, once the download has committed it.
          await settled(store);
          assert.equal(await store.cache.fileSize(fx.file), fx.content.length);
          assert.ok(
            sameBytes(await Deno.readFile(join(cache, "files", fileKey(fx.file))), fx.content),
          );
        } finally {
          await store.close();
        }
      });
    }
  } finally {
    await tmp.remove();
  }
});

Deno.test("a gateway whose CAR failed its limits is not asked for CAR again soon", async () => {
  const fx = await fixture();
  const tmp = await tempDir("ipfs_store_hostile_");
  const [trickle] = (await hostileCars(fx)).slice(2);
  const gw = fakeGateway(GW, fx.blocks, { car: () => trickle!.car() });
  const { store } = openStore(fx, join(tmp.path, "c"), fetchOf(gw));
  try {
    await readAll(await store.read("f"));
    assert.equal(gw.counts.car, 1);
    await settled(store);
    await Deno.remove(store.cache.filePath(fx.file));
    const started = performance.now();
    assert.ok(sameBytes(await readAll(await store.read("f")), fx.content));
    assert.equal(gw.counts.car, 1, "no second CAR request");
    assert.ok(performance.now() - started < TIMEOUT_MS, "the second download did not wait");
  } finally {
    await store.close();
    await tmp.remove();
  }
});

/**
 * Holds every download of `store` just after its commit has renamed the file into place, until
 * `go` resolves; `committed` resolves when the first gets there. With `remove`, the file is then
 * removed, as by hand.
 */
function pauseAfterRename(store: IpfsStore, remove = false) {
  const committed = Promise.withResolvers<void>();
  const go = Promise.withResolvers<void>();
  const createFile = store.cache.createFile.bind(store.cache);
  store.cache.createFile = async (cid) => {
    const writer = await createFile(cid);
    const commit = writer.commit;
    writer.commit = async (size) => {
      const path = await commit(size);
      if (remove) await Deno.remove(path);
      committed.resolve();
      await go.promise;
      return path;
    };
    return writer;
  };
  return { committed: committed.promise, go: () => go.resolve() };
}

Deno.test("a reader that joins a download as its file is removed by hand gets the bytes from blocks", async () => {
  const fx = await fixture();
  const tmp = await tempDir("ipfs_store_removed_");
  const { store } = openStore(fx, join(tmp.path, "c"), fetchOf(fakeGateway(GW, fx.blocks)));
  const paused = pauseAfterRename(store, true);
  try {
    assert.ok(sameBytes(await readAll(await store.read("f")), fx.content));
    await paused.committed;
    const late = await store.read("f");
    paused.go();
    assert.ok(sameBytes(await readAll(late), fx.content), "byte-exact");
    assert.equal(await store.cache.fileSize(fx.file), null, "from blocks, nothing kept");
  } finally {
    paused.go();
    await store.close();
    await tmp.remove();
  }
});

Deno.test("ensureFile waits for a download whose file is in place but not yet synced", async () => {
  const fx = await fixture();
  const tmp = await tempDir("ipfs_store_synced_");
  const { store } = openStore(fx, join(tmp.path, "c"), fetchOf(fakeGateway(GW, fx.blocks)));
  const paused = pauseAfterRename(store);
  try {
    await readAll(await store.read("f"));
    await paused.committed;
    assert.equal(await store.cache.fileSize(fx.file), fx.content.length, "in place");
    let ensured = false;
    const ensuring = settled(store).then(() => ensured = true);
    // Time for an ensureFile that does not wait to resolve (it cannot resolve early here).
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(ensured, false, "not before the download has ended");
    paused.go();
    await ensuring;
    assert.equal(ensured, true);
  } finally {
    paused.go();
    await store.close();
    await tmp.remove();
  }
});

Deno.test("IpfsStore cache_max: gc evicts the least recently used files, not one in use", async (t) => {
  const files = Array.from({ length: 4 }, (_, i) => pseudoRandomBytes(300_000, 70 + i));
  const { root, blocks, cids } = await buildTree(
    files.map((content, i) => ({ path: `d/f${i}`, content })),
    { profile: "v1-raw" },
  );
  const gw = fakeGateway(GW, blocks);
  const tmp = await tempDir("ipfs_store_gc_");
  const events: IpfsEvent[] = [];
  const store = new IpfsStore({
    ref: root.toString(),
    gateways: [GW],
    timeoutMs: TIMEOUT_MS,
    cacheDir: join(tmp.path, "cache"),
    fetch: fetchOf(gw),
    cacheMaxBytes: 700_000,
    onEvent: (e) => events.push(e),
  });
  const cidOf = (i: number) => cids.get(`d/f${i}`)!;
  try {
    for (let i = 0; i < 4; i++) {
      assert.ok(sameBytes(await readAll(await store.read(`d/f${i}`)), files[i]!));
      const found = await store.resolve(`d/f${i}`);
      if (found?.node.kind === "file") await store.ensureFile(found.node);
      // f0 is the least recently used, f3 the most.
      const used = new Date(Date.now() - (10 - i) * 60_000);
      await Deno.utime(store.cache.filePath(cidOf(i)), used, used);
    }
    await t.step("the oldest file, open for reading, survives; the next oldest go", async () => {
      const reading = await store.read("d/f0");
      try {
        const result = await store.gc();
        assert.equal(await store.cache.fileSize(cidOf(0)), 300_000, "in use");
        assert.equal(await store.cache.fileSize(cidOf(1)), null);
        assert.equal(await store.cache.fileSize(cidOf(2)), null);
        assert.equal(await store.cache.fileSize(cidOf(3)), 300_000);
        assert.ok(result.sizeBytes <= 700_000, `${result.sizeBytes} bytes left`);
        const gc = events.filter((e) => e.kind === "cache-gc");
        assert.equal(gc.length, 1);
        assert.deepEqual(gc[0], {
          kind: "cache-gc",
          freedBytes: 600_000,
          removedFiles: 2,
          removedBlocks: 0,
          evictedFiles: 2,
          sizeBytes: result.sizeBytes,
          maxBytes: 700_000,
        });
        assert.ok(sameBytes(await readAll(reading), files[0]!));
      } finally {
        await reading.cancel().catch(() => {});
      }
    });
    await t.step("an evicted file is fetched again on its next read", async () => {
      const asked = gw.counts.raw + gw.counts.car;
      assert.ok(sameBytes(await readAll(await store.read("d/f1")), files[1]!));
      assert.ok(gw.counts.raw + gw.counts.car > asked);
    });
  } finally {
    await store.close();
    await tmp.remove();
  }
});

Deno.test("IpfsStore.startGc runs gc at once and then on its interval, until closed", async () => {
  const { root, blocks } = await buildTree([{ path: "f", content: new Uint8Array(10) }], {
    profile: "v1-raw",
  });
  const tmp = await tempDir("ipfs_store_gc_");
  const events: IpfsEvent[] = [];
  const store = new IpfsStore({
    ref: root.toString(),
    gateways: [GW],
    timeoutMs: TIMEOUT_MS,
    cacheDir: join(tmp.path, "cache"),
    fetch: fetchOf(fakeGateway(GW, blocks)),
    cacheMaxBytes: 1_000_000,
    gcIntervalMs: 50,
    onEvent: (e) => events.push(e),
  });
  try {
    store.startGc();
    const until = performance.now() + 3000;
    while (events.length < 3 && performance.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(events.length >= 3, `${events.length} runs`);
    assert.ok(events.every((e) => e.kind === "cache-gc" && e.maxBytes === 1_000_000));
  } finally {
    await store.close();
  }
  const runs = events.length;
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(events.length, runs, "no gc after close");
  await tmp.remove();
});

Deno.test("a file inline in its CID (identity hash) is served from the CID, whatever its size", async () => {
  const content = pseudoRandomBytes(300, 5);
  const inline = CID.createV1(0x55, identity.digest(content));
  const dir = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: [{ Name: "inline.bin", Hash: inline, Tsize: content.length }],
  }));
  const root = CID.createV1(0x70, await sha256.digest(dir));
  const blocks = new MemoryBlockstore();
  blocks.put(root, dir);
  const gw = fakeGateway(GW, blocks);
  const tmp = await tempDir("ipfs_store_inline_");
  const { store, logger } = openStore({ root }, join(tmp.path, "cache"), fetchOf(gw));
  try {
    assert.equal((await store.stat("inline.bin"))?.size, 300);
    assert.ok(sameBytes(await readAll(await store.read("inline.bin")), content));
    assert.ok(
      sameBytes(
        await readAll(await store.read("inline.bin", { start: 10, end: 19 })),
        content.subarray(10, 20),
      ),
    );
    // Never a cache file: nothing failed to be written, nothing was asked of the gateway.
    assert.ok(!logger.lines.some((l) => l.level === "warn"), JSON.stringify(logger.lines));
    assert.equal(gw.counts.raw + gw.counts.car, 1);
  } finally {
    await store.close();
    await tmp.remove();
  }
});

Deno.test("at most maxDownloads large files download at once; the others wait their turn", async (t) => {
  const files = Array.from({ length: 5 }, (_, i) => pseudoRandomBytes(1_200_000, 90 + i));
  const small = pseudoRandomBytes(600_000, 99);
  const { root, blocks, cids } = await buildTree(
    [...files.map((content, i) => ({ path: `d/f${i}`, content })), { path: "d/s", content: small }],
    { profile: "v1-raw" },
  );
  const gw = fakeGateway(GW, blocks);
  const plain = fetchOf(gw);
  // Each file's download starts with a CAR request for its root: held until let go.
  const held: { cid: string; go: () => void }[] = [];
  const asked: string[] = [];
  const gated = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.searchParams.get("format") === "car") {
      const cid = url.pathname.replace(/^\/ipfs\//, "");
      asked.push(cid);
      await new Promise<void>((go) => held.push({ cid, go }));
    }
    return plain(input, init);
  }) as typeof fetch;
  const open = async (maxDownloads: number) => {
    const tmp = await tempDir("ipfs_store_slots_");
    const store = new IpfsStore({
      ref: root.toString(),
      gateways: [GW],
      timeoutMs: 10_000,
      cacheDir: join(tmp.path, "cache"),
      fetch: gated,
      maxDownloads,
    });
    return { store, tmp };
  };
  const settle = () => new Promise((r) => setTimeout(r, 50));
  const roots = files.map((_, i) => cids.get(`d/f${i}`)!.toString());

  await t.step("five files asked at once: two download, the rest start as those end", async () => {
    const { store, tmp } = await open(2);
    try {
      const reads = files.map((_, i) => store.read(`d/f${i}`).then(readAll));
      // Should a check below fail, closing the store fails these: not the failure to report.
      for (const r of reads) r.catch(() => {});
      await settle();
      // Paths resolve in any order: which two start first is not fixed, how many is.
      assert.equal(asked.length, 2, asked.join(", "));
      assert.ok(asked.every((cid) => roots.includes(cid)));
      // A file under SMALL_DOWNLOAD does not wait for them (its CAR is held like theirs).
      const smallRead = store.read("d/s").then(readAll);
      await settle();
      assert.equal(asked.length, 3);
      held.pop()!.go();
      assert.ok(sameBytes(await smallRead, small));
      asked.pop();
      const first = roots.indexOf(held[0]!.cid);
      held.shift()!.go();
      await reads[first];
      await settle();
      assert.equal(asked.length, 3, "the first to wait starts when one ends");
      while (asked.length < 5 || held.length > 0) {
        held.shift()?.go();
        await settle();
      }
      const got = await Promise.all(reads);
      got.forEach((bytes, i) => assert.ok(sameBytes(bytes, files[i]!), `f${i}`));
    } finally {
      await store.close();
      await tmp.remove();
    }
  });

  await t.step("closing the store fails the waiting ones; nothing is left behind", async () => {
    asked.length = 0;
    const { store, tmp } = await open(1);
    try {
      const reads = Promise.allSettled([0, 1, 2].map((i) => store.read(`d/f${i}`).then(readAll)));
      await settle();
      assert.equal(asked.length, 1);
      const closed = store.close();
      for (const h of held.splice(0)) h.go();
      await closed;
      for (const r of await reads) {
        assert.equal(r.status, "rejected");
        assert.match(String((r as PromiseRejectedResult).reason), /closed/);
      }
      assert.equal(asked.length, 1, "no download started after the close");
      // The running download was stopped, the waiting ones never began: no part file left.
      const names = (sub: string) =>
        [...Deno.readDirSync(join(tmp.path, "cache", sub))].map((e) => e.name);
      assert.deepEqual(names("tmp"), []);
      assert.deepEqual(names("files"), []);
    } finally {
      await tmp.remove();
    }
  });

  await t.step("a limit below one is refused", () => {
    assert.throws(
      () =>
        new IpfsStore({
          ref: root.toString(),
          gateways: [GW],
          timeoutMs: 1,
          cacheDir: "/nonexistent",
          maxDownloads: 0,
        }),
      RangeError,
    );
  });
});

Deno.test("a large download slower than downloadMinRate fails at its deadline and frees its slot", async () => {
  const slow = pseudoRandomBytes(1_200_000, 71);
  const next = pseudoRandomBytes(1_100_000, 72);
  const { root, blocks } = await buildTree(
    [{ path: "d/slow", content: slow }, { path: "d/next", content: next }],
    { profile: "v1-raw" },
  );
  const plain = fetchOf(fakeGateway(GW, blocks));
  let delayMs = 150;
  // Every block comes just inside the per-request timeout (200 ms): none of them times out.
  const dribbling = (async (input: string | URL | Request, init?: RequestInit) => {
    await new Promise((r) => setTimeout(r, delayMs));
    return plain(input, init);
  }) as typeof fetch;
  const tmp = await tempDir("ipfs_store_slow_");
  const open = (downloadMinRate?: number) =>
    new IpfsStore({
      ref: root.toString(),
      gateways: [GW],
      timeoutMs: 200,
      cacheDir: join(tmp.path, "cache"),
      fetch: dribbling,
      car: false,
      window: 1,
      maxDownloads: 1,
      downloadMinRate,
    });
  try {
    // 200 ms + 1.2 MB at 10 MB/s: a 320 ms deadline for six blocks of 150 ms each.
    const store = open(10_000_000);
    try {
      const started = performance.now();
      await assert.rejects(
        store.read("d/slow").then(readAll),
        /download not complete within 320 ms \(slower than 9766 KiB\/s on average; .*min_rate/,
      );
      const took = performance.now() - started;
      assert.ok(took < 900, `failed after ${Math.round(took)} ms, not at its deadline`);
      // The one slot is free again: the next large file downloads (quickly now) and is whole.
      delayMs = 0;
      assert.ok(sameBytes(await store.read("d/next").then(readAll), next));
    } finally {
      await store.close();
    }
    // After the close (which waits for the second download's commit): nothing of the first.
    const names = (sub: string) =>
      [...Deno.readDirSync(join(tmp.path, "cache", sub))].map((e) => e.name);
    assert.deepEqual(names("tmp"), [], "no part file of the failed download is left");
    assert.equal(names("files").length, 1);
    // The same dribble within the default rate's time, with no limit (0), and with a limit so
    // low that its deadline is beyond a timer's range (no deadline, not one that fires at once).
    delayMs = 150;
    for (const rate of [undefined, 0, 0.5]) {
      const patient = open(rate);
      try {
        const got = await patient.read("d/slow").then(readAll);
        assert.ok(sameBytes(got, slow), `rate ${rate}`);
      } finally {
        await patient.close();
      }
      await Deno.remove(join(tmp.path, "cache"), { recursive: true });
    }
    assert.throws(() => open(-1), RangeError);
  } finally {
    await tmp.remove();
  }
});

Deno.test("at the deadline, the blocks still waited for from the CAR are not asked for singly", async () => {
  const content = pseudoRandomBytes(1_200_000, 73);
  const { root, blocks, cids } = await buildTree([{ path: "big", content }], {
    profile: "v1-raw",
  });
  const file = cids.get("big")!;
  const sections = blocks.dfs(file, "entity").map((b) => carSection(b.cid, b.bytes));
  const headed = new Uint8Array([...await carHeader(file), ...sections[0]!]);
  // A new block every 200 ms: inside the 300 ms the reader waits for one, far from the CAR's
  // own deadline (300 ms and the size at 1 MiB/s), slower than the download's (302 ms).
  const gw = fakeGateway(GW, blocks, {
    car: (cid) =>
      cid.equals(file)
        ? pulledStream((i) => i === 0 ? headed : sections[i] ?? null, 200)
        : undefined,
  });
  const tmp = await tempDir("ipfs_store_stalled_");
  const store = new IpfsStore({
    ref: root.toString(),
    gateways: [GW],
    timeoutMs: 300,
    cacheDir: join(tmp.path, "cache"),
    fetch: fetchOf(gw),
    downloadMinRate: 1e9,
  });
  try {
    await store.stat("big");
    const before = gw.counts.raw;
    await assert.rejects(store.read("big").then(readAll), /download not complete within 302 ms/);
    // Past the CAR's next block (its stream ends its sleep before the test does).
    await new Promise((r) => setTimeout(r, 250));
    // The leaves waiting for the CAR when it stopped were not fetched one by one instead.
    assert.equal(gw.counts.raw, before);
    assert.equal(gw.counts.car, 1);
  } finally {
    await store.close();
    await tmp.remove();
  }
});

Deno.test("a leaf inline in its CID inside a CAR download is read from its CID, not waited for", async () => {
  const a = pseudoRandomBytes(700_000, 81);
  const small = pseudoRandomBytes(100, 82);
  const b = pseudoRandomBytes(700_000, 83);
  const [aCid, bCid] = [
    CID.createV1(0x55, await sha256.digest(a)),
    CID.createV1(0x55, await sha256.digest(b)),
  ];
  const inline = CID.createV1(0x55, identity.digest(small));
  const file = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "file", blockSizes: [700_000n, 100n, 700_000n] }).marshal(),
    Links: [
      { Hash: aCid, Tsize: a.length },
      { Hash: inline, Tsize: small.length },
      { Hash: bCid, Tsize: b.length },
    ],
  }));
  const fileCid = CID.createV1(0x70, await sha256.digest(file));
  const dir = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: [{ Name: "f", Hash: fileCid, Tsize: file.length + a.length + b.length }],
  }));
  const root = CID.createV1(0x70, await sha256.digest(dir));
  const blocks = new MemoryBlockstore();
  blocks.put(root, dir);
  blocks.put(fileCid, file);
  blocks.put(aCid, a);
  blocks.put(bCid, b);
  // The CAR brings the file's node and its first leaf at once, the last one 400 ms later (within
  // the 1 s the reader waits for a new block), and never the inline leaf (it is no block).
  const head = new Uint8Array([
    ...await carHeader(fileCid),
    ...carSection(fileCid, file),
    ...carSection(aCid, a),
  ]);
  const last = carSection(bCid, b);
  const gw = fakeGateway(GW, blocks, {
    car: (cid) =>
      cid.equals(fileCid) ? pulledStream((i) => [head, last][i] ?? null, 400) : undefined,
  });
  const tmp = await tempDir("ipfs_store_inline_car_");
  const { store } = openStore({ root }, join(tmp.path, "cache"), fetchOf(gw));
  try {
    await store.stat("f");
    const before = gw.counts.raw;
    const started = performance.now();
    const reader = (await store.read("f")).getReader();
    const got: Uint8Array[] = [];
    let bytes = 0;
    let inlineAt = Infinity;
    for (let step = await reader.read(); !step.done; step = await reader.read()) {
      got.push(step.value);
      bytes += step.value.length;
      if (bytes >= a.length + small.length && inlineAt === Infinity) {
        inlineAt = performance.now() - started;
      }
    }
    const whole = new Uint8Array(await new Blob(got as Uint8Array<ArrayBuffer>[]).arrayBuffer());
    assert.ok(sameBytes(whole, new Uint8Array([...a, ...small, ...b])));
    // Before: the inline leaf waited for the CAR to end (after the last leaf, 400 ms on).
    assert.ok(inlineAt < 300, `the inline leaf after ${Math.round(inlineAt)} ms`);
    assert.equal(gw.counts.raw, before, "every hashed block from the CAR");
  } finally {
    await store.close();
    await tmp.remove();
  }
});
