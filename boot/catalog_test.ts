import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ContentError, type ContentStore } from "../content/store.ts";
import { LocalStore } from "../content/local.ts";
import { MemoryStore } from "../content/memory.ts";
import { loadCatalog, OsCatalog, OsTomlError, parseOsToml } from "./catalog.ts";
import { memoryLogger } from "../log.ts";

const TREE = fileURLToPath(new URL("./testdata/tree", import.meta.url));

Deno.test("loadCatalog reads the fixture tree", async () => {
  const { entries, problems } = await loadCatalog(new LocalStore(TREE));
  assert.deepEqual(problems, []);
  assert.deepEqual(entries, [
    {
      name: "custom",
      title: "Custom (own start script)",
      kernel: "kernel.efi",
      initrd: [],
      cmdline: "",
      classes: [],
      templates: ["start"],
      source: "boot/custom/os.toml",
    },
    {
      name: "debian",
      title: "Debian 12 (bookworm) installer",
      kernel: "linux",
      initrd: ["initrd.gz"],
      cmdline:
        "auto=true priority=critical preseed/url={{ http }}/action/debian/preseed hostname={{ hostname }}",
      classes: [
        { name: "desktop", title: "Debian with a desktop", vars: { tasks: "standard, desktop" } },
        { name: "server", title: "Debian server", vars: { tasks: "standard, ssh-server" } },
      ],
      templates: ["preseed"],
      source: "boot/debian/os.toml",
    },
    {
      name: "tiny",
      title: "tiny",
      kernel: "vmlinuz",
      initrd: ["initrd.img"],
      cmdline: "",
      classes: [],
      templates: [],
      source: "boot/tiny/",
    },
  ]);
});

Deno.test("without os.toml the kernel and initrd follow the naming rule", async (t) => {
  const cases: { images: string[]; kernel: string | null; initrd: string[] }[] = [
    {
      images: ["vmlinuz", "linux", "initrd.gz", "initrd.img"],
      kernel: "vmlinuz",
      initrd: ["initrd.gz"],
    },
    {
      images: ["linux", "kernel-6.1", "initrd.img", "initrd-extra"],
      kernel: "linux",
      initrd: ["initrd.img"],
    },
    {
      images: ["kernel-b", "kernel-a", "initrd-z", "initrd-y"],
      kernel: "kernel-a",
      initrd: ["initrd-y"],
    },
    { images: ["vmlinuz"], kernel: "vmlinuz", initrd: [] },
    { images: ["bzImage", "initrd.gz"], kernel: null, initrd: ["initrd.gz"] },
  ];
  for (const c of cases) {
    await t.step(`${c.images.join(",")} → ${c.kernel} + ${c.initrd.join(",")}`, async () => {
      const files: Record<string, string> = { "boot/x/template/start.vto": "#!ipxe" };
      for (const n of c.images) files[`boot/x/images/${n}`] = n;
      const { entries } = await loadCatalog(new MemoryStore(files));
      assert.equal(entries[0]?.kernel, c.kernel);
      assert.deepEqual(entries[0]?.initrd, c.initrd);
    });
  }
});

Deno.test("a bad os.toml leaves only that OS out, naming file, line and key", async (t) => {
  const cases: { name: string; toml: string; line?: number; key?: string; text: RegExp }[] = [
    { name: "syntax", toml: 'title = "x"\nkernel = \n', line: 2, text: /invalid value/ },
    {
      name: "title type",
      toml: 'kernel = "k"\n\ntitle = 5\n',
      line: 3,
      key: "title",
      text: /must be a string \(got number\)/,
    },
    {
      name: "empty title",
      toml: 'title = "  "\n',
      line: 1,
      key: "title",
      text: /must not be empty/,
    },
    { name: "initrd type", toml: "initrd = 5\n", line: 1, key: "initrd", text: /string or a list/ },
    {
      name: "initrd item",
      toml: 'initrd = ["i", 3]\n',
      line: 1,
      key: "initrd",
      text: /got number/,
    },
    {
      name: "kernel escape",
      toml: 'kernel = "../../etc/passwd"\n',
      line: 1,
      key: "kernel",
      text: /not a path under images/,
    },
    {
      name: "cmdline newline",
      toml: 'cmdline = "a\\nb"\n',
      line: 1,
      key: "cmdline",
      text: /one line/,
    },
    {
      name: "classes type",
      toml: "classes = 5\n",
      line: 1,
      key: "classes",
      text: /must be a table/,
    },
    {
      name: "class name",
      toml: '[classes."bad name"]\ntitle = "x"\n',
      line: 1,
      key: "classes.bad name",
      text: /class names/,
    },
    {
      name: "class title",
      toml: "[classes.a]\ntitle = 1\n",
      line: 2,
      key: "classes.a.title",
      text: /got number/,
    },
    {
      name: "class vars",
      toml: '[classes.a]\ntitle = "A"\nvars = "s"\n',
      line: 3,
      key: "classes.a.vars",
      text: /must be a table/,
    },
    {
      name: "missing kernel",
      toml: 'title = "T"\nkernel = "nope"\n',
      line: 2,
      key: "kernel",
      text: /boot\/x\/images\/nope does not exist/,
    },
    {
      name: "missing initrd",
      toml: 'initrd = ["k", "gone.gz"]\n',
      line: 1,
      key: "initrd",
      text: /gone\.gz does not exist/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const store = new MemoryStore({
        "boot/x/os.toml": c.toml,
        "boot/x/images/k": "kernel",
        "boot/good/images/vmlinuz": "kernel",
      });
      const { entries, problems } = await loadCatalog(store);
      assert.deepEqual(entries.map((e) => e.name), ["good"]);
      assert.equal(problems.length, 1);
      const p = problems[0]!;
      assert.equal(p.skipped, true);
      assert.equal(p.file, "boot/x/os.toml");
      assert.equal(p.line, c.line);
      assert.equal(p.key, c.key);
      assert.match(p.message, c.text);
      assert.ok(p.message.startsWith(`boot/x/os.toml:${c.line}: `), p.message);
    });
  }
});

Deno.test("parseOsToml reports unknown keys without failing", () => {
  const { meta, unknown } = parseOsToml(
    'title = "A"\nflavour = "x"\n[classes.s]\ncolour = 1\n',
    "boot/a/os.toml",
  );
  assert.equal(meta.title, "A");
  assert.deepEqual(unknown, ["flavour", "classes.s.colour"]);
  assert.throws(() => parseOsToml("title = [", "f.toml"), OsTomlError);
});

Deno.test("folders that cannot boot are reported, the rest still loads", async (t) => {
  const cases: { name: string; files: Record<string, string>; text: RegExp; skipped: boolean }[] = [
    {
      name: "no kernel, no start",
      files: { "boot/x/images/readme": "" },
      text: /no kernel/,
      skipped: true,
    },
    {
      name: "bad folder name",
      files: { "boot/bad name/images/vmlinuz": "" },
      text: /folder name/,
      skipped: true,
    },
    {
      name: "unknown key",
      files: { "boot/x/os.toml": 'colour = "red"\n', "boot/x/images/vmlinuz": "" },
      text: /"colour" is not known/,
      skipped: false,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const { entries, problems } = await loadCatalog(
        new MemoryStore({ ...c.files, "boot/good/images/linux": "k", "boot/file-not-dir": "" }),
      );
      assert.deepEqual(
        entries.map((e) => e.name),
        c.skipped ? ["good"] : ["good", "x"],
      );
      assert.equal(problems.length, 1);
      assert.equal(problems[0]!.skipped, c.skipped);
      assert.match(problems[0]!.message, c.text);
    });
  }
  await t.step("a store that fails on one OS costs only that OS", async () => {
    const inner = new MemoryStore({
      "boot/a/images/vmlinuz": "",
      "boot/b/os.toml": "",
      "boot/b/images/vmlinuz": "",
    });
    const failing: ContentStore = {
      description: "failing",
      stat: (p) => inner.stat(p),
      list: (p) => inner.list(p),
      read: (p, r) =>
        p === "boot/b/os.toml"
          ? Promise.reject(new ContentError("gateway timeout", "unavailable"))
          : inner.read(p, r),
    };
    const { entries, problems } = await loadCatalog(failing);
    assert.deepEqual(entries.map((e) => e.name), ["a"]);
    assert.match(problems[0]!.message, /boot\/b: cannot be read: gateway timeout/);
  });
});

Deno.test("OsCatalog caches, reloads after ttl and reports a problem once", async (t) => {
  let files: Record<string, string> = { "boot/a/images/vmlinuz": "", "boot/z/os.toml": "x = " };
  let reads = 0;
  const store: ContentStore = {
    description: "changing",
    stat: (p) => new MemoryStore(files).stat(p),
    list: (p) => {
      if (p === "boot") reads++;
      return new MemoryStore(files).list(p);
    },
    read: (p, r) => new MemoryStore(files).read(p, r),
  };
  await t.step("without ttl the first load is kept", async () => {
    const catalog = new OsCatalog(store);
    await catalog.entries();
    files = { ...files, "boot/b/images/vmlinuz": "" };
    assert.deepEqual((await catalog.entries()).map((e) => e.name), ["a"]);
    assert.equal(reads, 1);
    catalog.invalidate();
    assert.deepEqual((await catalog.entries()).map((e) => e.name), ["a", "b"]);
    assert.equal((await catalog.get("b"))?.kernel, "vmlinuz");
    assert.equal(await catalog.get("z"), undefined);
  });
  await t.step("with ttl 0 every call reads again; warnings are logged once", async () => {
    const logger = memoryLogger();
    const catalog = new OsCatalog(store, { ttlMs: 0, logger });
    reads = 0;
    await Promise.all([catalog.entries(), catalog.entries()]);
    await catalog.entries();
    assert.equal(reads, 2, "concurrent calls share one load");
    const warns = logger.lines.filter((l) => l.level === "warn");
    assert.equal(warns.length, 1);
    assert.match(String(warns[0]!.fields.problem), /boot\/z\/os.toml:1/);
    assert.equal(catalog.problems.length, 1);
  });
});
