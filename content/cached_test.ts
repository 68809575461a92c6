import assert from "node:assert/strict";
import { CachedStore } from "./cached.ts";
import { LocalStore } from "./local.ts";
import { type ByteRange, type ContentEntry, ContentError, type ContentStore } from "./store.ts";

/** A store whose files a test can change, counting what it was asked. */
class FakeStore implements ContentStore {
  readonly description = "fake";
  files = new Map<string, Uint8Array>();
  versions = new Map<string, number>();
  stats = 0;
  reads = 0;
  failing = false;

  put(path: string, bytes: Uint8Array): void {
    this.files.set(path, bytes);
    this.versions.set(path, (this.versions.get(path) ?? 0) + 1);
  }

  stat(path: string): Promise<ContentEntry | null> {
    this.stats++;
    if (this.failing) return Promise.reject(new ContentError("gateway down", "unavailable"));
    const f = this.files.get(path);
    if (!f) return Promise.resolve(path === "dir" ? { kind: "dir", size: 0, etag: "d" } : null);
    return Promise.resolve({ kind: "file", size: f.length, etag: `v${this.versions.get(path)}` });
  }

  list(): Promise<string[]> {
    return Promise.resolve([...this.files.keys()]);
  }

  /** Bytes handed out by read. */
  bytesRead = 0;
  /** When set, a read waits for it: a test changes the file meanwhile. */
  gate: Promise<void> | null = null;

  async read(path: string, range?: ByteRange): Promise<ReadableStream<Uint8Array>> {
    this.reads++;
    const f = this.files.get(path)!;
    if (range && range.end >= f.length) throw new RangeError(`${path}: range past the end`);
    const part = range ? f.subarray(range.start, range.end + 1) : f;
    this.bytesRead += part.length;
    if (this.gate) await this.gate;
    return new Response(part.slice()).body!;
  }
}

const bytes = (n: number, fill = 1) => new Uint8Array(n).fill(fill);

async function text(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function setup(options: { maxBytes?: number; maxEntries?: number; revalidateMs?: number } = {}) {
  let t = 0;
  const inner = new FakeStore();
  const store = new CachedStore(inner, {
    revalidateMs: options.revalidateMs ?? 1000,
    maxFileBytes: 100,
    maxBytes: options.maxBytes,
    maxEntries: options.maxEntries,
    now: () => t,
  });
  return { inner, store, tick: (ms: number) => t += ms };
}

Deno.test("CachedStore keeps stats and small files in memory, checked every revalidateMs", async (t) => {
  await t.step("a stat is asked below once while fresh, missing paths too", async () => {
    const { inner, store, tick } = setup();
    inner.put("a", bytes(10));
    assert.equal((await store.stat("a"))!.size, 10);
    assert.equal(await store.stat("nope"), null);
    tick(999);
    await store.stat("a");
    await store.stat("nope");
    assert.equal(inner.stats, 2);
    tick(2);
    await store.stat("a");
    assert.equal(inner.stats, 3);
  });

  await t.step("a small file is read once; peek has it without a promise", async () => {
    const { inner, store } = setup();
    inner.put("a", bytes(10, 7));
    assert.equal(store.peek("a"), undefined);
    const [x, y] = await Promise.all([store.file("a"), store.file("a")]);
    assert.deepEqual(x!.bytes, bytes(10, 7));
    assert.equal(y!.bytes, x!.bytes);
    assert.equal(inner.reads, 1);
    assert.equal(store.peek("a")!.bytes, x!.bytes);
    assert.deepEqual(await text(await store.read("a")), bytes(10, 7));
    assert.deepEqual(await text(await store.read("a", { start: 2, end: 4 })), bytes(3, 7));
    assert.equal(inner.reads, 1);
    assert.equal(store.heldBytes, 10);
  });

  await t.step(
    "a file changed below is served anew after revalidateMs, with its new etag",
    async () => {
      const { inner, store, tick } = setup();
      inner.put("a", bytes(10, 1));
      await store.file("a");
      inner.put("a", bytes(12, 2));
      assert.equal((await store.file("a"))!.bytes.length, 10);
      tick(1001);
      assert.equal(store.peek("a"), undefined);
      const f = await store.file("a");
      assert.deepEqual(f!.bytes, bytes(12, 2));
      assert.equal(f!.entry.etag, "v2");
      assert.equal(store.heldBytes, 12);
    },
  );

  await t.step("an unchanged file keeps its bytes across a check", async () => {
    const { inner, store, tick } = setup();
    inner.put("a", bytes(10));
    await store.file("a");
    tick(1001);
    await store.stat("a");
    assert.ok(store.peek("a"));
    assert.equal(inner.reads, 1);
  });

  await t.step("big files, directories and missing paths are not held", async () => {
    const { inner, store } = setup();
    inner.put("big", bytes(101));
    assert.equal(await store.file("big"), null);
    assert.equal(await store.file("dir"), null);
    assert.equal(await store.file("nope"), null);
    assert.equal(store.peek("big"), null);
    assert.equal((await text(await store.read("big"))).length, 101);
    assert.equal(store.heldBytes, 0);
  });

  await t.step("a failing store below is not remembered", async () => {
    const { inner, store } = setup();
    inner.failing = true;
    await assert.rejects(store.stat("a"), ContentError);
    inner.failing = false;
    inner.put("a", bytes(1));
    assert.equal((await store.stat("a"))!.size, 1);
  });

  await t.step("over maxBytes, files unused since the last sweep go first", async () => {
    const { inner, store } = setup({ maxBytes: 250 });
    for (const p of ["a", "b", "c"]) {
      inner.put(p, bytes(100));
      await store.file(p);
    }
    // a, b and c were just used: the first sweep spares them once, the second takes a.
    assert.equal(store.heldBytes, 200);
    assert.equal(store.peek("a"), undefined);
    store.peek("b");
    inner.put("d", bytes(100));
    await store.file("d");
    assert.equal(store.heldBytes, 200);
    assert.ok(store.peek("b"));
    assert.equal(store.peek("c"), undefined);
  });

  await t.step("over maxEntries, stats unused since the last sweep go first", async () => {
    const { inner, store } = setup({ maxEntries: 3 });
    for (const p of ["a", "b", "c", "d"]) {
      inner.put(p, bytes(1));
      await store.stat(p);
    }
    const before = inner.stats;
    await store.stat("d");
    assert.equal(inner.stats, before);
    await store.stat("a");
    assert.equal(inner.stats, before + 1);
  });

  await t.step("a file that changes size while it is read is not held", async () => {
    const { inner, store } = setup();
    inner.put("a", bytes(10));
    await store.stat("a");
    inner.files.set("a", bytes(20));
    assert.equal(await store.file("a"), null);
    assert.equal(store.heldBytes, 0);
  });

  await t.step("a file that grew since its stat is never read whole", async () => {
    const { inner, store } = setup();
    inner.put("a", bytes(10));
    await store.stat("a");
    inner.put("a", bytes(90_000));
    assert.equal(await store.file("a"), null);
    assert.ok(inner.bytesRead <= 10, `read ${inner.bytesRead} bytes`);
    assert.equal(store.heldBytes, 0);
  });

  await t.step("a request for a newer version never gets an older one's bytes", async () => {
    const { inner, store } = setup();
    inner.put("a", bytes(5, 1));
    let open!: () => void;
    inner.gate = new Promise((r) => open = r);
    const first = store.file("a"); // reads version 1, slowly
    await Promise.resolve();
    inner.put("a", bytes(9, 2));
    store.clear(); // a reload
    inner.gate = null;
    const second = store.file("a"); // version 2
    open();
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a, null); // changed while it was read: served from below instead
    assert.deepEqual(b, { entry: { kind: "file", size: 9, etag: "v2" }, bytes: bytes(9, 2) });
  });

  await t.step("a big file is asked below again before it streams", async () => {
    const { inner, store } = setup();
    inner.put("big", bytes(200, 1));
    assert.equal((await store.stat("big"))!.etag, "v1");
    inner.put("big", bytes(300, 2)); // replaced within revalidateMs
    assert.equal(await store.file("big"), null);
    assert.equal((await store.stat("big"))!.etag, "v2");
    assert.deepEqual(await text(await store.read("big")), bytes(300, 2));
  });

  await t.step("clear forgets every stat and file: the next request asks below", async () => {
    const { inner, store } = setup({ revalidateMs: Infinity });
    inner.put("a", bytes(10, 1));
    await store.file("a");
    inner.put("a", bytes(10, 2));
    assert.deepEqual((await store.file("a"))!.bytes, bytes(10, 1));
    store.clear();
    assert.equal(store.heldBytes, 0);
    assert.equal(store.peek("a"), undefined);
    const f = await store.file("a");
    assert.deepEqual(f!.bytes, bytes(10, 2));
    assert.equal(f!.entry.etag, "v2");
    assert.equal(inner.reads, 2);
    assert.equal(store.heldBytes, 10);
  });

  await t.step("a range past the end of a held file is refused like below", async () => {
    const { inner, store } = setup();
    inner.put("a", bytes(10));
    await store.file("a");
    await assert.rejects(store.read("a", { start: 5, end: 10 }), RangeError);
  });

  await t.step("held bytes never pass maxBytes, however many files are asked", async () => {
    const { inner, store } = setup({ maxBytes: 1000 });
    for (let i = 0; i < 100; i++) {
      inner.put(`f${i}`, bytes(60));
      await store.file(`f${i}`);
      assert.ok(store.heldBytes <= 1000, `${store.heldBytes} held after f${i}`);
    }
    // Every file was still served whole, from memory or read anew.
    assert.equal(inner.reads, 100);
  });
});

Deno.test("CachedStore over a local tree: an edited file is served anew after revalidateMs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let t = 0;
    const store = new CachedStore(new LocalStore(dir), { revalidateMs: 1000, now: () => t });
    await Deno.writeTextFile(`${dir}/menu.ipxe`, "#!ipxe\necho one\n");
    const first = await store.file("menu.ipxe");
    assert.equal(new TextDecoder().decode(first!.bytes), "#!ipxe\necho one\n");
    await Deno.writeTextFile(`${dir}/menu.ipxe`, "#!ipxe\necho two, longer\n");
    assert.equal((await store.file("menu.ipxe"))!.bytes, first!.bytes);
    t += 1001;
    const second = await store.file("menu.ipxe");
    assert.equal(new TextDecoder().decode(second!.bytes), "#!ipxe\necho two, longer\n");
    assert.notEqual(second!.entry.etag, first!.entry.etag);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
