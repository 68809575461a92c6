/**
 * IpfsStore end to end: real UnixFS trees from an independent importer, served by a
 * Trustless Gateway on 127.0.0.1 (real sockets), read back through the cache.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { CID } from "multiformats";
import { memoryLogger } from "../log.ts";
import type { ContentStore } from "../content/store.ts";
import { blockKey, fileKey } from "../ipfs/cache.ts";
import { exportTree, prefetch, type Progress } from "../ipfs/commands.ts";
import { IpfsStore } from "../ipfs/store.ts";
import {
  type BuildOptions,
  buildTree,
  type FixtureEntry,
  keyOf,
  type MemoryBlockstore,
  pseudoRandomBytes,
  readAll,
  sameBytes,
  tempDir,
  TestGateway,
} from "./ipfs_fixture.ts";

const MiB = 1024 * 1024;

interface Fixture {
  root: CID;
  blocks: MemoryBlockstore;
  cids: Map<string, CID>;
  files: Map<string, Uint8Array>;
}

function fixtureEntries(): { files: Map<string, Uint8Array>; entries: FixtureEntry[] } {
  const files = new Map<string, Uint8Array>([
    ["tftp/undionly.kpxe", pseudoRandomBytes(70_000, 1)],
    ["tftp/arm64/ipxe.efi", pseudoRandomBytes(1_000, 2)],
    ["boot/debian/images/linux", pseudoRandomBytes(3 * MiB + 123, 3)],
    ["boot/debian/images/initrd.gz", pseudoRandomBytes(5 * MiB + 77, 4)],
    ["boot/debian/os.toml", new TextEncoder().encode('title = "Debian"\n')],
    ["boot/empty.txt", new Uint8Array(0)],
  ]);
  // Enough names to make the importer shard this directory several levels deep.
  for (let i = 0; i < 300; i++) {
    files.set(
      `boot/many/host-${String(i).padStart(3, "0")}.cfg`,
      pseudoRandomBytes(40 + i, 100 + i),
    );
  }
  const entries: FixtureEntry[] = [...files].map(([path, content]) => ({ path, content }));
  entries.push({ path: "tftp/pxelinux.0", link: "../boot/debian/images/linux" });
  return { files, entries };
}

async function buildFixtureStore(options: BuildOptions): Promise<Fixture> {
  const { files, entries } = fixtureEntries();
  const { root, blocks, cids } = await buildTree(entries, {
    shardSplitThresholdBytes: 1000,
    ...options,
  });
  return { root, blocks, cids, files };
}

function openTestStore(
  fx: Fixture,
  gateways: string[],
  cacheDir: string,
  logger = memoryLogger(),
): IpfsStore & ContentStore {
  // The return type checks at compile time that IpfsStore fits content/store.ts's interface.
  return new IpfsStore({
    ref: fx.root.toString(),
    gateways,
    timeoutMs: 3000,
    cacheDir,
    logger,
    penaltyMs: 60_000,
  });
}

async function cacheEntries(cacheDir: string, sub: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(cacheDir, sub))) out.push(e.name);
  return out.sort();
}

/** A leaf block in the middle of a file's DAG (depth first), by the fixture's blockstore. */
function middleLeaf(fx: Fixture, path: string): CID {
  const fileCid = fx.cids.get(importPath(fx, path))!;
  const leaves = fx.blocks.dfs(fileCid, "all").filter(({ cid, bytes }) =>
    cid.code === 0x55 || bytes.length > 1000
  ).filter(({ cid }) => !cid.equals(fileCid));
  return leaves[leaves.length >> 1]!.cid;
}

function importPath(fx: Fixture, path: string): string {
  // The importer reports paths without the wrapping directory.
  return [...fx.cids.keys()].find((k) => k === path || k.endsWith("/" + path))!;
}

const CASES: { name: string; build: BuildOptions; full: boolean }[] = [
  { name: "Kubo classic: CIDv0, 256 KiB dag-pb leaves", build: { profile: "kubo-v0" }, full: true },
  { name: "CIDv1 raw leaves", build: { profile: "v1-raw" }, full: true },
  {
    name: "CIDv1 raw leaves, deep tree (16 KiB chunks, 4 children)",
    build: { profile: "v1-raw", chunkSize: 16 * 1024, maxChildrenPerNode: 4 },
    full: false,
  },
  {
    name: "CIDv0 dag-pb leaves, deep tree (32 KiB chunks, 3 children)",
    build: { profile: "kubo-v0", chunkSize: 32 * 1024, maxChildrenPerNode: 3 },
    full: false,
  },
];

for (const c of CASES) {
  Deno.test(`IpfsStore over a trustless gateway: ${c.name}`, async (t) => {
    const fx = await buildFixtureStore(c.build);
    const gw = new TestGateway(fx.blocks).start();
    const tmp = await tempDir("ipfs_store_test_");
    const stores: IpfsStore[] = [];
    const open = (
      gateways = [gw.url],
      cache = join(tmp.path, "cache"),
      logger = memoryLogger(),
    ) => {
      const s = openTestStore(fx, gateways, cache, logger);
      stores.push(s);
      return s;
    };
    try {
      await t.step("every file reads back byte-identical, whole", async () => {
        const store = open();
        for (const [path, content] of fx.files) {
          const got = await readAll(await store.read(path));
          assert.ok(sameBytes(got, content), `${path}: ${got.length} bytes vs ${content.length}`);
        }
      });

      await t.step("stat gives size and the CID as etag; list gives sorted names", async () => {
        const store = open();
        for (const path of ["boot/debian/images/linux", "boot/empty.txt", "tftp/undionly.kpxe"]) {
          const st = await store.stat(path);
          assert.equal(st?.kind, "file");
          assert.equal(st?.size, fx.files.get(path)!.length);
          assert.equal(st?.etag, fx.cids.get(importPath(fx, path))!.toString());
        }
        assert.equal((await store.stat("boot/debian"))?.kind, "dir");
        assert.equal(await store.stat("boot/nope"), null);
        assert.equal(await store.stat("boot/debian/os.toml/x"), null);
        assert.deepEqual(await store.list("boot/debian/images"), ["initrd.gz", "linux"]);
        assert.deepEqual(await store.list(""), ["boot", "tftp"]);
        assert.deepEqual(await store.list("nope"), []);
        await assert.rejects(store.read("boot/debian"), { code: "not-found" });
        await assert.rejects(store.read("boot/missing"), { code: "not-found" });
        await assert.rejects(store.stat("boot/../etc"), { code: "forbidden" });
      });

      await t.step("byte ranges, warm and cold, equal the slices", async () => {
        const linux = fx.files.get("boot/debian/images/linux")!;
        const initrd = fx.files.get("boot/debian/images/initrd.gz")!;
        const ranges: [string, Uint8Array, number, number][] = [
          ["boot/debian/images/linux", linux, 0, 0],
          ["boot/debian/images/linux", linux, 1, 262_145],
          ["boot/debian/images/linux", linux, linux.length - 10, linux.length - 1],
          ["boot/debian/images/initrd.gz", initrd, 4 * MiB + 5, 4 * MiB + 300_000],
          ["boot/debian/images/initrd.gz", initrd, initrd.length - 1, initrd.length - 1],
        ];
        for (const cold of [true, false]) {
          const store = open(
            [gw.url],
            cold ? join(tmp.path, `cold-range-${crypto.randomUUID()}`) : undefined,
          );
          for (const [path, content, start, end] of ranges) {
            const got = await readAll(await store.read(path, { start, end }));
            assert.ok(
              sameBytes(got, content.subarray(start, end + 1)),
              `${cold ? "cold" : "warm"} ${path} ${start}-${end}`,
            );
          }
          await store.close();
        }
      });

      await t.step("sharded directory: lookups and listing", async () => {
        const store = open();
        const names = await store.list("boot/many");
        assert.equal(names.length, 300);
        assert.deepEqual(names, [...names].sort());
        for (const i of [0, 17, 150, 299]) {
          const path = `boot/many/host-${String(i).padStart(3, "0")}.cfg`;
          assert.ok(sameBytes(await readAll(await store.read(path)), fx.files.get(path)!), path);
        }
        assert.equal(await store.stat("boot/many/host-300.cfg"), null);
      });

      await t.step("a relative symlink inside the tree is followed", async () => {
        const store = open();
        const got = await readAll(await store.read("tftp/pxelinux.0"));
        assert.ok(sameBytes(got, fx.files.get("boot/debian/images/linux")!));
      });

      if (!c.full) return;

      await t.step("two concurrent readers of a cold file share one download", async () => {
        const store = open([gw.url], join(tmp.path, "concurrent"));
        const path = "boot/debian/images/initrd.gz";
        const carBefore = gw.counts.car;
        const [a, b] = await Promise.all([
          store.read(path).then(readAll),
          store.read(path).then(readAll),
        ]);
        assert.ok(sameBytes(a, fx.files.get(path)!));
        assert.ok(sameBytes(b, fx.files.get(path)!));
        assert.equal(gw.counts.car - carBefore, 1);
      });

      await t.step("bytes reach the reader before the file is complete in the cache", async () => {
        const cache = join(tmp.path, "streaming");
        const store = open([gw.url], cache);
        const path = "boot/debian/images/linux";
        const cid = fx.cids.get(importPath(fx, path))!;
        await store.stat(path);
        gw.knobs.delayMs = 20;
        try {
          const reader = (await store.read(path)).getReader();
          const first = await reader.read();
          assert.ok(first.value && first.value.length > 0);
          assert.deepEqual((await cacheEntries(cache, "files")).includes(fileKey(cid)), false);
          const rest = await readAll(
            new ReadableStream({
              async pull(ctl) {
                const s = await reader.read();
                if (s.done) ctl.close();
                else ctl.enqueue(s.value);
              },
            }),
          );
          const whole = new Uint8Array(first.value!.length + rest.length);
          whole.set(first.value!);
          whole.set(rest, first.value!.length);
          assert.ok(sameBytes(whole, fx.files.get(path)!));
        } finally {
          gw.knobs.delayMs = 0;
        }
        await store.close();
        assert.ok((await cacheEntries(cache, "files")).includes(fileKey(cid)));
      });

      await t.step(
        "a flipped byte is caught: read fails, nothing cached, others serve",
        async () => {
          const cache = join(tmp.path, "corrupt");
          const logger = memoryLogger();
          const store = open([gw.url], cache, logger);
          const path = "boot/debian/images/linux";
          const fileCid = fx.cids.get(importPath(fx, path))!;
          const bad = middleLeaf(fx, path);
          gw.knobs.corrupt.add(keyOf(bad));
          try {
            await assert.rejects(
              readAll(await store.read(path)),
              (err: Error & { code?: string }) => {
                assert.equal(err.code, "unavailable");
                assert.match(err.message, /failed verification/);
                assert.match(err.message, new RegExp(bad.toString()));
                return true;
              },
            );
            assert.equal((await cacheEntries(cache, "files")).includes(fileKey(fileCid)), false);
            assert.equal((await cacheEntries(cache, "blocks")).includes(blockKey(bad)), false);
            assert.deepEqual(await cacheEntries(cache, "tmp"), []);
            const other = "boot/debian/images/initrd.gz";
            assert.ok(sameBytes(await readAll(await store.read(other)), fx.files.get(other)!));
            assert.ok(logger.lines.some((l) => l.level === "warn" && /failed/.test(l.message)));
          } finally {
            gw.knobs.corrupt.clear();
          }
          // Once the gateway serves good data again, the same store recovers.
          assert.ok(sameBytes(await readAll(await store.read(path)), fx.files.get(path)!));
        },
      );

      await t.step("a truncated CAR is detected; the rest comes as blocks", async () => {
        const cache = join(tmp.path, "truncated-ok");
        const logger = memoryLogger();
        const store = open([gw.url], cache, logger);
        const path = "boot/debian/images/linux";
        gw.knobs.truncateCarAt = MiB + 1000;
        const rawBefore = gw.counts.raw;
        try {
          assert.ok(sameBytes(await readAll(await store.read(path)), fx.files.get(path)!));
        } finally {
          gw.knobs.truncateCarAt = undefined;
        }
        const warn = logger.lines.find((l) => l.message.startsWith("CAR stream failed"));
        assert.match(String(warn?.fields.error), /truncated/);
        assert.ok(gw.counts.raw - rawBefore > 4, "missing blocks fetched singly");
      });

      await t.step("a truncated CAR with no other source fails cleanly", async () => {
        const cache = join(tmp.path, "truncated-fail");
        const store = open([gw.url], cache);
        const path = "boot/debian/images/initrd.gz";
        const fileCid = fx.cids.get(importPath(fx, path))!;
        await store.stat(path);
        gw.knobs.truncateCarAt = 2 * MiB + 77;
        gw.knobs.refuseRaw = 500;
        try {
          await assert.rejects(readAll(await store.read(path)), { code: "unavailable" });
        } finally {
          gw.knobs.truncateCarAt = undefined;
          gw.knobs.refuseRaw = undefined;
        }
        await store.close();
        assert.equal((await cacheEntries(cache, "files")).includes(fileKey(fileCid)), false);
        assert.deepEqual(await cacheEntries(cache, "tmp"), []);
      });

      await t.step("a gateway that refuses CAR is asked for blocks", async () => {
        for (const status of [406, 501]) {
          const store = open([gw.url], join(tmp.path, `nocar-${status}`));
          gw.knobs.refuseCar = status;
          try {
            const path = "boot/debian/images/linux";
            assert.ok(sameBytes(await readAll(await store.read(path)), fx.files.get(path)!));
            // The refusal is remembered: the next file does not ask for CAR again.
            const car = gw.counts.car;
            const other = "boot/debian/images/initrd.gz";
            assert.ok(sameBytes(await readAll(await store.read(other)), fx.files.get(other)!));
            assert.equal(gw.counts.car, car);
          } finally {
            gw.knobs.refuseCar = undefined;
          }
        }
      });

      await t.step("failover: a down first gateway is skipped and remembered", async () => {
        const dead = new TestGateway(fx.blocks).start();
        const deadUrl = dead.url;
        await dead.stop();
        const store = open([deadUrl, gw.url], join(tmp.path, "failover"));
        const path = "tftp/undionly.kpxe";
        assert.ok(sameBytes(await readAll(await store.read(path)), fx.files.get(path)!));
        assert.equal(store.gateway.isFailing(deadUrl), true);
        assert.deepEqual(store.gateway.order(), [gw.url, deadUrl]);
        const other = "boot/debian/images/linux";
        assert.ok(sameBytes(await readAll(await store.read(other)), fx.files.get(other)!));
      });

      await t.step("a slow gateway times out and the next one serves", async () => {
        const slow = new TestGateway(fx.blocks).start();
        slow.knobs.delayMs = 2000;
        try {
          const store = new IpfsStore({
            ref: fx.root.toString(),
            gateways: [slow.url, gw.url],
            timeoutMs: 300,
            cacheDir: join(tmp.path, "slow"),
          });
          stores.push(store);
          const path = "boot/debian/os.toml";
          assert.ok(sameBytes(await readAll(await store.read(path)), fx.files.get(path)!));
          assert.equal(store.gateway.isFailing(slow.url), true);
          await store.close();
        } finally {
          await slow.stop();
        }
      });

      await t.step("prefetch, then offline: everything serves from the cache", async () => {
        const cache = join(tmp.path, "offline");
        const seen: Progress[] = [];
        const store = open([gw.url], cache);
        const result = await prefetch(store, { onProgress: (p) => seen.push(p), intervalMs: 0 });
        const total = [...fx.files.values()].reduce((n, b) => n + b.length, 0);
        assert.equal(result.files, fx.files.size);
        assert.equal(result.bytes, total);
        assert.equal(seen.at(-1)?.phase, "done");
        assert.equal(seen.at(-1)?.bytes, total);
        assert.ok(seen.some((p) => p.phase === "fetch" && p.bytes > 0 && p.bytes < total));

        await gw.stop();
        try {
          // A new process (a new store on the same folder) walks the tree from disk alone.
          const again = await prefetch(open([gw.url], cache));
          assert.equal(again.cachedBytes, total);
          const offline = open([gw.url], cache);
          for (const [path, content] of fx.files) {
            assert.ok(sameBytes(await readAll(await offline.read(path)), content), path);
          }
          assert.equal((await offline.list("boot/many")).length, 300);
          const linux = fx.files.get("boot/debian/images/linux")!;
          const got = await readAll(
            await offline.read("boot/debian/images/linux", { start: 5, end: 2 * MiB }),
          );
          assert.ok(sameBytes(got, linux.subarray(5, 2 * MiB + 1)));

          const cold = open([gw.url], join(tmp.path, "offline-cold"));
          await assert.rejects(
            cold.stat("tftp/undionly.kpxe"),
            (err: Error & { code?: string }) => {
              assert.equal(err.code, "unavailable");
              assert.match(err.message, new RegExp(fx.root.toString()));
              assert.ok(err.message.includes(gw.url), err.message);
              return true;
            },
          );
        } finally {
          gw.start();
        }
      });

      await t.step("export writes an identical tree", async () => {
        const out = join(tmp.path, "export");
        const store = open([gw.url], join(tmp.path, "export-cache"));
        const result = await exportTree(store, out);
        assert.equal(result.files, fx.files.size);
        assert.equal(result.symlinks, 1);
        const written: string[] = [];
        const walk = async (dir: string, prefix: string) => {
          for await (const e of Deno.readDir(dir)) {
            const rel = prefix ? `${prefix}/${e.name}` : e.name;
            if (e.isDirectory) await walk(join(dir, e.name), rel);
            else written.push(rel);
          }
        };
        await walk(out, "");
        assert.deepEqual(written.sort(), [...fx.files.keys(), "tftp/pxelinux.0"].sort());
        for (const [path, content] of fx.files) {
          assert.ok(sameBytes(await Deno.readFile(join(out, path)), content), path);
        }
        assert.equal(
          await Deno.readLink(join(out, "tftp/pxelinux.0")),
          "../boot/debian/images/linux",
        );
        assert.ok(
          sameBytes(
            await Deno.readFile(join(out, "tftp/pxelinux.0")),
            fx.files.get("boot/debian/images/linux")!,
          ),
        );
      });

      await t.step(
        "a second export writes nothing through a symlink under a temp name",
        async () => {
          const out = join(tmp.path, "export");
          const victim = join(tmp.path, "victim.txt");
          await Deno.writeTextFile(victim, "not to be written");
          const [path, content] = [...fx.files][0]!;
          await Deno.symlink(victim, join(out, `${path}.astralboot-part`));
          const store = open([gw.url], join(tmp.path, "export-cache"));
          await exportTree(store, out);
          assert.equal(await Deno.readTextFile(victim), "not to be written");
          assert.ok(sameBytes(await Deno.readFile(join(out, path)), content), path);
          await assert.rejects(
            Deno.lstat(join(out, `${path}.astralboot-part`)),
            Deno.errors.NotFound,
          );
        },
      );

      await t.step(
        "a cache that cannot be set up is a 503 now, and tried again later",
        async () => {
          const cache = join(tmp.path, "broken-cache");
          await Deno.mkdir(cache, { recursive: true });
          await Deno.writeTextFile(join(cache, "tmp"), "a file where a folder belongs");
          const store = open([gw.url], cache);
          await assert.rejects(
            store.stat("tftp/undionly.kpxe"),
            (e: Error & { code?: string }) =>
              e.code === "unavailable" && /IPFS cache/.test(e.message),
          );
          await Deno.remove(join(cache, "tmp"));
          assert.equal((await store.stat("tftp/undionly.kpxe"))?.kind, "file");
        },
      );

      await t.step("a cache that cannot be written: files come from the gateways", async () => {
        const cache = join(tmp.path, "full-cache");
        const logger = memoryLogger();
        const store = open([gw.url], cache, logger);
        assert.equal((await store.stat("tftp/undionly.kpxe"))?.kind, "file");
        // As a full disk would: nothing new can be written in the cache.
        await Deno.remove(join(cache, "tmp"), { recursive: true });
        await Deno.writeTextFile(join(cache, "tmp"), "not a folder");
        const [path, content] = [...fx.files].sort((a, b) => b[1].length - a[1].length)[0]!;
        const got = new Uint8Array(await new Response(await store.read(path)).arrayBuffer());
        assert.ok(sameBytes(got, content), path);
        assert.ok(logger.lines.some((l) => /^cannot write to the cache/.test(l.message)));
      });

      await t.step(
        "a new ref reuses cached files; gc keeps only what kept refs reach",
        async () => {
          const cache = join(tmp.path, "gc");
          // Tree B: one file changed, one added, the rest shared with tree A.
          const { entries } = fixtureEntries();
          const changed = pseudoRandomBytes(2 * MiB + 5, 999);
          const added = pseudoRandomBytes(300_000, 998);
          const entriesB = entries.map((e) =>
            e.path === "boot/debian/images/linux" ? { path: e.path, content: changed } : e
          );
          entriesB.push({ path: "boot/new/kernel", content: added });
          const b = await buildTree(
            entriesB,
            { shardSplitThresholdBytes: 1000, ...c.build },
            fx.blocks,
          );
          const fxB: Fixture = {
            root: b.root,
            blocks: fx.blocks,
            cids: b.cids,
            files: new Map([...fx.files, ["boot/debian/images/linux", changed], [
              "boot/new/kernel",
              added,
            ]]),
          };

          const storeA = open([gw.url], cache);
          await prefetch(storeA);
          const storeB = openTestStore(fxB, [gw.url], cache);
          stores.push(storeB);
          const carBefore = gw.counts.car;
          const initrd = "boot/debian/images/initrd.gz";
          assert.ok(sameBytes(await readAll(await storeB.read(initrd)), fxB.files.get(initrd)!));
          assert.equal(gw.counts.car, carBefore, "unchanged file served from the cache");
          await prefetch(storeB);

          const filesBefore = await cacheEntries(cache, "files");
          const result = await storeB.gc([fxB.root.toString()]);
          const filesAfter = await cacheEntries(cache, "files");
          const oldLinux = fileKey(fx.cids.get(importPath(fx, "boot/debian/images/linux"))!);
          assert.ok(filesBefore.includes(oldLinux));
          assert.deepEqual(filesBefore.filter((f) => !filesAfter.includes(f)), [oldLinux]);
          assert.equal(result.removedFiles, 1);
          assert.ok(result.removedBlocks > 0, "A's root and changed directories removed");
          assert.equal(result.keptFiles, filesAfter.length);
          // gc forgets the refs it was not told to keep.
          const refs = (await storeB.cache.recentRefs()).map((r) => r.ref);
          assert.deepEqual(refs, [fxB.root.toString()]);

          // Everything of B still serves with the gateway gone; A's changed file does not.
          await gw.stop();
          try {
            const offlineB = openTestStore(fxB, [gw.url], cache);
            stores.push(offlineB);
            for (const [path, content] of fxB.files) {
              assert.ok(sameBytes(await readAll(await offlineB.read(path)), content), path);
            }
            const offlineA = open([gw.url], cache);
            await assert.rejects(offlineA.stat("boot/debian/images/linux"), {
              code: "unavailable",
            });
          } finally {
            gw.start();
          }
        },
      );
    } finally {
      for (const s of stores) await s.close();
      await gw.stop();
      await tmp.remove();
    }
  });
}
