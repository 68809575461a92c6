import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ContentError } from "./store.ts";
import { embeddedDefaultStore, MemoryStore } from "./memory.ts";
import { FallbackStore, IPXE_PACKAGE_FILES } from "./fallback.ts";
import { LocalStore } from "./local.ts";

const TREE = fileURLToPath(new URL("../boot/testdata/tree", import.meta.url));

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

async function sh(...cmd: string[]): Promise<void> {
  const out = await new Deno.Command(cmd[0]!, { args: cmd.slice(1), stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A scratch tree with a secret beside it (outside the root) to try to reach. */
async function scratch(): Promise<{ base: string; root: string; secret: string }> {
  const base = await Deno.makeTempDir({ prefix: "astral-store-" });
  const root = join(base, "root");
  await Deno.mkdir(join(root, "boot/x/images"), { recursive: true });
  await Deno.writeTextFile(join(root, "boot/x/images/kernel"), "inside");
  const secret = join(base, "secret.txt");
  await Deno.writeTextFile(secret, "SECRET outside the tree");
  return { base, root, secret };
}

Deno.test("LocalStore stat and list describe the fixture tree", async (t) => {
  const store = new LocalStore(TREE);
  const cases: [string, "file" | "dir" | null, number][] = [
    ["boot/debian/images/linux", "file", 3000],
    ["/boot/debian/images/initrd.gz", "file", 2000],
    ["boot//tiny/./images/vmlinuz", "file", 1500],
    ["boot", "dir", 0],
    ["", "dir", 0],
    ["boot/nope", null, 0],
    ["tftp/undionly.kpxe/below-a-file", null, 0],
  ];
  for (const [path, kind, size] of cases) {
    await t.step(`stat ${JSON.stringify(path)} → ${kind}`, async () => {
      const e = await store.stat(path);
      assert.equal(e?.kind ?? null, kind);
      if (e) assert.equal(e.size, size);
    });
  }
  await t.step("list gives sorted names, empty for a missing folder", async () => {
    assert.deepEqual(await store.list("boot"), ["custom", "debian", "tiny"]);
    assert.deepEqual(await store.list("boot/debian/images"), ["initrd.gz", "linux"]);
    assert.deepEqual(await store.list("boot/missing"), []);
    assert.deepEqual(await store.list("tftp/undionly.kpxe"), []);
  });
  await t.step("etag is size-mtime-inode-ctime in hex: it follows each", async () => {
    const { base, root } = await scratch();
    try {
      const s = new LocalStore(root);
      const file = join(root, "boot/x/images/kernel");
      const etag = async () => (await s.stat("boot/x/images/kernel"))!.etag;
      await Deno.utime(file, 1_000, 1_000);
      assert.match(await etag(), new RegExp(`^6-${(1_000_000).toString(16)}-[0-9a-f]+-[0-9a-f]+$`));
      await Deno.utime(file, 2_000, 2_000);
      assert.match(await etag(), new RegExp(`^6-${(2_000_000).toString(16)}-`));
      assert.equal((await s.stat("boot/x/images/kernel"))!.mtime!.getTime(), 2_000_000);
      // Replaced by a file of the same size and mtime (cp -p, rsync -a): another etag.
      const before = await etag();
      const next = join(root, "boot/x/images/kernel.new");
      await Deno.writeTextFile(next, "KERNEL");
      await Deno.utime(next, 2_000, 2_000);
      await Deno.rename(next, file);
      assert.notEqual(await etag(), before);
    } finally {
      await Deno.remove(base, { recursive: true });
    }
  });
});

Deno.test("LocalStore read streams whole files and exact ranges", async (t) => {
  const { base, root } = await scratch();
  try {
    // Bigger than one read chunk so bounded ranges cross chunk boundaries.
    const big = new Uint8Array(700 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 11)) & 0xff;
    await Deno.writeFile(join(root, "boot/x/images/big"), big);
    const store = new LocalStore(root);
    const n = big.length;
    const ranges: [number, number][] = [
      [0, 0],
      [0, 99],
      [100, 199],
      [262_143, 262_144],
      [1, n - 2],
      [5000, n - 1],
      [n - 1, n - 1],
      [0, n - 1],
    ];
    await t.step("whole file", async () => {
      assert.deepEqual(await bytesOf(await store.read("boot/x/images/big")), big);
    });
    for (const [start, end] of ranges) {
      await t.step(`range ${start}-${end}`, async () => {
        const got = await bytesOf(await store.read("boot/x/images/big", { start, end }));
        assert.deepEqual(got, big.subarray(start, end + 1));
      });
    }
    const bad: [number, number][] = [[-1, 5], [10, 5], [0, n], [n, n + 10], [0.5, 3]];
    for (const [start, end] of bad) {
      await t.step(`range ${start}-${end} is a RangeError`, async () => {
        await assert.rejects(store.read("boot/x/images/big", { start, end }), RangeError);
      });
    }
    await t.step("a directory or a missing file is not-found", async () => {
      for (const path of ["boot/x/images", "boot/x/images/none"]) {
        await assert.rejects(
          store.read(path),
          (e) => e instanceof ContentError && e.code === "not-found",
        );
      }
    });
    await t.step("cancelled and finished streams close their files", async () => {
      const before = openFds();
      for (let i = 0; i < 20; i++) {
        await (await store.read("boot/x/images/big")).cancel();
        await (await store.read("boot/x/images/big", { start: 10, end: 300_000 })).cancel();
        await bytesOf(await store.read("boot/x/images/big", { start: 10, end: 20 }));
      }
      assert.equal(openFds(), before);
    });
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("LocalStore never reads a whole file to serve it", async () => {
  const { base, root } = await scratch();
  try {
    // 8 GiB sparse: a whole-file read would exhaust memory; a stream hands back a chunk.
    const path = join(root, "boot/x/images/huge");
    const f = await Deno.open(path, { create: true, write: true });
    await f.truncate(8 * 1024 ** 3);
    f.close();
    const store = new LocalStore(root);
    assert.equal((await store.stat("boot/x/images/huge"))!.size, 8 * 1024 ** 3);
    const rss = Deno.memoryUsage().rss;
    const stream = await store.read("boot/x/images/huge");
    const reader = stream.getReader();
    const first = await reader.read();
    assert.ok(first.value && first.value.length > 0 && first.value.length <= 1024 * 1024);
    await reader.cancel();
    const tail = await bytesOf(
      await store.read("boot/x/images/huge", { start: 8 * 1024 ** 3 - 10, end: 8 * 1024 ** 3 - 1 }),
    );
    assert.deepEqual(tail, new Uint8Array(10));
    assert.ok(Deno.memoryUsage().rss - rss < 256 * 1024 ** 2, "memory grew by a file's size");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("LocalStore refuses paths and links that leave the root", async (t) => {
  const { base, root, secret } = await scratch();
  try {
    await Deno.symlink(secret, join(root, "boot/x/images/abs-link"));
    await Deno.symlink("../../../../secret.txt", join(root, "boot/x/images/rel-link"));
    await Deno.symlink(base, join(root, "boot/escape-dir"));
    await Deno.symlink("kernel", join(root, "boot/x/images/inside-link"));
    await Deno.symlink(join(root, "boot/x"), join(root, "boot/alias"));
    await Deno.symlink("missing-target", join(root, "boot/x/images/dangling"));
    await Deno.symlink("loop-b", join(root, "boot/x/images/loop-a"));
    await Deno.symlink("loop-a", join(root, "boot/x/images/loop-b"));
    const store = new LocalStore(root);
    const forbidden = [
      "boot/x/images/abs-link",
      "boot/x/images/rel-link",
      "boot/escape-dir/secret.txt",
      "boot/escape-dir",
      "../secret.txt",
      "boot/../../secret.txt",
      "boot\\x",
      "boot/x\x00/images/kernel",
    ];
    for (const path of forbidden) {
      await t.step(`${JSON.stringify(path)} is forbidden for stat and read`, async () => {
        const isForbidden = (e: unknown) => e instanceof ContentError && e.code === "forbidden";
        await assert.rejects(store.stat(path), isForbidden);
        await assert.rejects(store.read(path), isForbidden);
      });
    }
    await t.step("links that stay inside are served", async () => {
      assert.equal(
        new TextDecoder().decode(await bytesOf(await store.read("boot/x/images/inside-link"))),
        "inside",
      );
      assert.equal((await store.stat("boot/alias/images/kernel"))?.kind, "file");
    });
    await t.step("a dangling link is simply missing", async () => {
      assert.equal(await store.stat("boot/x/images/dangling"), null);
    });
    await t.step("so is a loop of links (not a store failure)", async () => {
      assert.equal(await store.stat("boot/x/images/loop-a"), null);
      await assert.rejects(
        store.read("boot/x/images/loop-a"),
        (e: unknown) => e instanceof ContentError && e.code === "not-found",
      );
    });
    await t.step("list shows only what can be served", async () => {
      assert.deepEqual(await store.list("boot"), ["alias", "x"]);
      assert.deepEqual(await store.list("boot/x/images"), ["inside-link", "kernel"]);
    });
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("LocalStore refuses FIFOs, sockets and device files", async (t) => {
  const { base, root } = await scratch();
  const dir = join(root, "boot/x/images");
  const listener = Deno.listen({ transport: "unix", path: join(dir, "sock") });
  try {
    await sh("mkfifo", join(dir, "fifo"));
    await sh("mknod", join(dir, "null"), "c", "1", "3");
    const store = new LocalStore(root);
    for (const name of ["fifo", "sock", "null"]) {
      await t.step(`${name} is forbidden and never opened`, async () => {
        const isForbidden = (e: unknown) => e instanceof ContentError && e.code === "forbidden";
        await assert.rejects(store.stat(`boot/x/images/${name}`), isForbidden);
        // A FIFO opened for reading would block forever: rejecting proves it was not opened.
        await assert.rejects(store.read(`boot/x/images/${name}`), isForbidden);
      });
    }
    await t.step("and they are not listed", async () => {
      assert.deepEqual(await store.list("boot/x/images"), ["kernel"]);
    });
  } finally {
    listener.close();
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("LocalStore refuses to open something that is not a folder", () => {
  assert.throws(() => new LocalStore("/nonexistent/astral"), /cannot be opened/);
  assert.throws(() => new LocalStore(join(TREE, "tftp/undionly.kpxe")), /not a folder/);
});

Deno.test("FallbackStore fills missing first-stage loaders from host files", async (t) => {
  const { base, root } = await scratch();
  try {
    const host = join(base, "host-snponly.efi");
    await Deno.writeTextFile(host, "host snponly bytes");
    await Deno.mkdir(join(root, "tftp"));
    await Deno.writeTextFile(join(root, "tftp/undionly.kpxe"), "tree undionly");
    const store = new FallbackStore(new LocalStore(root), {
      "tftp/undionly.kpxe": join(base, "never-used"),
      "tftp/snponly.efi": host,
      "tftp/ipxe.efi": join(base, "not-installed.efi"),
    });
    const text = async (path: string) =>
      new TextDecoder().decode(await bytesOf(await store.read(path)));
    await t.step("the tree wins where it has the file", async () => {
      assert.equal(await text("tftp/undionly.kpxe"), "tree undionly");
    });
    await t.step("the host file fills the gap, ranges included", async () => {
      assert.equal(await text("/tftp/snponly.efi"), "host snponly bytes");
      assert.equal((await store.stat("tftp/snponly.efi"))?.size, 18);
      const part = await bytesOf(await store.read("tftp/snponly.efi", { start: 5, end: 12 }));
      assert.equal(new TextDecoder().decode(part), "snponly ");
    });
    await t.step("a host file that is not installed stays missing", async () => {
      assert.equal(await store.stat("tftp/ipxe.efi"), null);
      await assert.rejects(store.read("tftp/ipxe.efi"), ContentError);
    });
    await t.step("list merges tree and host names", async () => {
      assert.deepEqual(await store.list("tftp"), ["snponly.efi", "undionly.kpxe"]);
      assert.deepEqual(await store.list("boot"), ["x"]);
    });
    await t.step("the default map names the Debian ipxe package paths", () => {
      for (const name of ["tftp/undionly.kpxe", "tftp/snponly.efi", "tftp/ipxe.efi"]) {
        assert.match(IPXE_PACKAGE_FILES[name] ?? "", /^\/usr\/lib\/ipxe\//);
      }
    });
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("MemoryStore serves an in-memory tree", async (t) => {
  const store = new MemoryStore({
    "boot/a/os.toml": "title = 'A'",
    "tftp/x": new Uint8Array([1, 2, 3]),
  });
  await t.step("directories are implied by paths", async () => {
    assert.deepEqual(await store.list(""), ["boot", "tftp"]);
    assert.deepEqual(await store.list("boot"), ["a"]);
    assert.equal((await store.stat("boot/a"))?.kind, "dir");
    assert.equal(await store.stat("boot/b"), null);
  });
  await t.step("files, ranges and content etags", async () => {
    assert.deepEqual(await bytesOf(await store.read("tftp/x")), new Uint8Array([1, 2, 3]));
    assert.deepEqual(
      await bytesOf(await store.read("tftp/x", { start: 1, end: 2 })),
      new Uint8Array([2, 3]),
    );
    const other = new MemoryStore({ "tftp/x": new Uint8Array([1, 2, 4]) });
    assert.notEqual((await store.stat("tftp/x"))!.etag, (await other.stat("tftp/x"))!.etag);
    await assert.rejects(store.read("tftp/x", { start: 2, end: 3 }), RangeError);
    await assert.rejects(store.read("tftp/y"), ContentError);
  });
  await t.step("the embedded default has no boot folder", async () => {
    const embedded = embeddedDefaultStore();
    assert.equal(await embedded.stat("boot"), null);
    assert.match(embedded.description, /no boot tree configured/);
  });
});
