import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ContentStore } from "../content/store.ts";
import { LocalStore } from "../content/local.ts";
import { MemoryStore } from "../content/memory.ts";
import {
  strictData,
  TemplateNotFoundError,
  TemplateRenderer,
  TemplateRenderError,
} from "./templates.ts";
import { EMBEDDED_TEMPLATES } from "../templates/embedded.ts";
import { GRUB_TEMPLATES } from "../templates/grub/embedded.ts";

const TEMPLATES_DIR = fileURLToPath(new URL("../templates", import.meta.url));

/** A store that counts reads, to see what is compiled again. */
function counting(inner: ContentStore): ContentStore & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    description: inner.description,
    stat: (p) => inner.stat(p),
    list: (p) => inner.list(p),
    read: (p, r) => {
      reads.push(p);
      return inner.read(p, r);
    },
  };
}

/** The .vto files of a folder by name. */
async function vtoFiles(dir: string): Promise<Record<string, string>> {
  const onDisk: Record<string, string> = {};
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".vto")) {
      onDisk[e.name] = await Deno.readTextFile(join(dir, e.name));
    }
  }
  return onDisk;
}

Deno.test("the embedded templates are exactly the .vto files in templates/", async (t) => {
  await t.step("templates/", async () => {
    assert.deepEqual({ ...EMBEDDED_TEMPLATES }, await vtoFiles(TEMPLATES_DIR));
  });
  await t.step("templates/grub/", async () => {
    assert.deepEqual({ ...GRUB_TEMPLATES }, await vtoFiles(join(TEMPLATES_DIR, "grub")));
  });
});

Deno.test("every default template renders a script that starts with #!ipxe", async (t) => {
  const r = new TemplateRenderer({ store: new MemoryStore({}) });
  const data = {
    server: "10.0.0.1",
    http: "http://10.0.0.1",
    mac: "52:54:00:00:00:01",
    mac_url: "52-54-00-00-00-01",
    ip: "10.0.0.50",
    hostname: "node-525400000001",
    os: "x",
    reason: "chosen at the menu",
    inventory_query: "&uuid=${uuid}",
    config: {},
    machine: {},
    menu: {
      items: [{ name: "x", title: "X" }],
      notices: [],
      default: "x",
      timeout_ms: 5000,
      mac_url: "m",
    },
    os_info: {
      title: "X",
      kernel_url: "http://10.0.0.1/image/x/k",
      initrd_names: ["i"],
      initrd_urls: ["http://10.0.0.1/image/x/i"],
      cmdline: "quiet",
    },
  };
  for (const file of Object.keys(EMBEDDED_TEMPLATES)) {
    await t.step(file, async () => {
      const out = await r.render(file.replace(/\.vto$/, ""), data);
      assert.ok(out.startsWith("#!ipxe\n"), JSON.stringify(out.slice(0, 40)));
      assert.doesNotMatch(out, /\n\n/, "no blank lines left by tags");
      assert.doesNotMatch(out, /undefined|\[object Object\]/);
    });
  }
});

Deno.test("templates: the OS folder overrides the default, includes too", async (t) => {
  const store = new MemoryStore({
    "boot/a/template/start.vto": '#!ipxe\n{{ include "part.vto" }}start of {{ os }}\n',
    "boot/a/template/part.vto": "part from a\n",
    "boot/b/template/start.vto": '{{ include "part.vto" }}',
    "boot/b/template/preseed.vto": "d-i hostname {{ hostname }}\n",
  });
  const r = new TemplateRenderer({
    store,
    defaults: { "start.vto": "default start of {{ os }}\n", "part.vto": "default part\n" },
  });
  const cases: [string, string | undefined, string][] = [
    ["start", "a", "#!ipxe\npart from a\nstart of c\n"],
    ["start", "b", "default part\n"],
    ["start", "c", "default start of c\n"],
    ["start", undefined, "default start of c\n"],
    ["preseed", "b", "d-i hostname h1\n"],
  ];
  for (const [name, os, want] of cases) {
    await t.step(`${name} for ${os}`, async () => {
      assert.equal(await r.render(name, { os: "c", hostname: "h1" }, os), want);
    });
  }
  await t.step("unknown and invalid names are not found", async () => {
    assert.equal(await r.has("preseed", "a"), false);
    assert.equal(await r.has("preseed", "b"), true);
    for (const name of ["preseed", "../start", "a/b", ""]) {
      await assert.rejects(r.render(name, {}, "a"), TemplateNotFoundError);
    }
  });
});

Deno.test("templates: a missing variable is an error naming file, line and name", async (t) => {
  const store = new MemoryStore({
    "boot/a/template/top.vto": "#!ipxe\nline two\n{{ mac }} {{ machine.vars.disk }}\n",
    "boot/a/template/inc.vto": 'one\n{{ include "bad.vto" }}',
    "boot/a/template/bad.vto": "x\ny\n  {{ hostnme }}\n",
    "boot/a/template/arr.vto": "{{ os_info.initrd[2] }}",
    "boot/a/template/syntax.vto": "a\n{{ if }}\n",
    "boot/a/template/optional.vto":
      '{{ if "disk" in machine.vars }}{{ machine.vars.disk }}{{ else }}none{{ /if }} {{ set n = 2 }}{{ n }}',
  });
  const r = new TemplateRenderer({ store, defaults: {} });
  const data = {
    mac: "m",
    hostname: "h",
    machine: { vars: { tasks: "x" } },
    os_info: { initrd: ["a", "b"] },
  };
  const cases: [string, RegExp, string, number][] = [
    [
      "top",
      /^boot\/a\/template\/top\.vto:3:\d+: "machine\.vars\.disk" is not defined \(there is: tasks\)$/,
      "boot/a/template/top.vto",
      3,
    ],
    [
      "inc",
      /^boot\/a\/template\/bad\.vto:3:3: "hostnme" is not defined/,
      "boot/a/template/bad.vto",
      3,
    ],
    [
      "arr",
      /"os_info\.initrd\[2\]" is not defined \(there is: 2 items\)/,
      "boot/a/template/arr.vto",
      1,
    ],
    ["syntax", /^boot\/a\/template\/syntax\.vto:2:1: /, "boot/a/template/syntax.vto", 2],
  ];
  for (const [name, message, file, line] of cases) {
    await t.step(name, async () => {
      const err = await r.render(name, data, "a").then(() => null, (e) => e);
      assert.ok(err instanceof TemplateRenderError, String(err));
      assert.match(err.message, message);
      assert.equal(err.file, file);
      assert.equal(err.line, line);
    });
  }
  await t.step("`in` tests optional keys and set defines new ones", async () => {
    assert.equal(await r.render("optional", data, "a"), "none 2");
    const withDisk = { ...data, machine: { vars: { disk: "/dev/vda" } } };
    assert.equal(await r.render("optional", withDisk, "a"), "/dev/vda 2");
  });
});

Deno.test("strictData passes through what exists and throws on the rest", () => {
  const d = strictData({ a: 1, o: { b: [1, { c: null }] }, z: "" });
  assert.equal(d.a, 1);
  assert.equal(d.z, "");
  assert.equal((d.o.b[1] as { c: null }).c, null);
  assert.equal(JSON.stringify(d), '{"a":1,"o":{"b":[1,{"c":null}]},"z":""}');
  assert.deepEqual({ ...d }.a, 1);
  assert.throws(
    () => (d as Record<string, unknown>).nope,
    /"nope" is not defined \(there is: a, o, z\)/,
  );
  assert.throws(() => (d.o.b[1] as Record<string, unknown>).x, /"o\.b\[1\]\.x" is not defined/);
});

Deno.test("templates are compiled once and again only when their file changes", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "astral-tpl-" });
  try {
    const file = join(dir, "boot/a/template/start.vto");
    await Deno.mkdir(join(dir, "boot/a/template"), { recursive: true });
    await Deno.writeTextFile(file, "v1 {{ os }}");
    await Deno.utime(file, 1000, 1000);
    const store = counting(new LocalStore(dir));
    const r = new TemplateRenderer({ store, defaults: { "start.vto": "default {{ os }}" } });
    await t.step("repeated renders read the file once", async () => {
      for (let i = 0; i < 5; i++) assert.equal(await r.render("start", { os: "a" }, "a"), "v1 a");
      assert.deepEqual(store.reads, ["boot/a/template/start.vto"]);
    });
    await t.step("a changed file is read and compiled again", async () => {
      await Deno.writeTextFile(file, "v2 {{ os }}");
      await Deno.utime(file, 2000, 2000);
      assert.equal(await r.render("start", { os: "a" }, "a"), "v2 a");
      assert.equal(await r.render("start", { os: "a" }, "a"), "v2 a");
      assert.equal(store.reads.length, 2);
    });
    await t.step("a removed override falls back to the default", async () => {
      await Deno.remove(file);
      assert.equal(await r.render("start", { os: "a" }, "a"), "default a");
    });
    await t.step("a new override replaces the default", async () => {
      await Deno.writeTextFile(file, "v3 {{ os }}");
      assert.equal(await r.render("start", { os: "a" }, "a"), "v3 a");
    });
    await t.step("renderString compiles each new source once", async () => {
      assert.equal(
        await r.renderString("boot/a/os.toml#cmdline", "u={{ os }}", { os: "a" }),
        "u=a",
      );
      assert.equal(
        await r.renderString("boot/a/os.toml#cmdline", "u={{ os }}", { os: "b" }),
        "u=b",
      );
      assert.equal(
        await r.renderString("boot/a/os.toml#cmdline", "w={{ os }}", { os: "b" }),
        "w=b",
      );
      await assert.rejects(
        r.renderString("boot/a/os.toml#cmdline", "x={{ nope }}", {}),
        /^TemplateRenderError: boot\/a\/os\.toml#cmdline:1:3: "nope" is not defined/,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lines holding only control tags vanish, text lines keep their newline", async (t) => {
  const cases: [string, string][] = [
    ["a {{ if x }}b{{ /if }}\nc", "a b\nc"],
    [
      "k{{ for i of [1, 2] }} i={{ i }}{{ /for }}{{ if x }} q{{ /if }}\nnext\n",
      "k i=1 i=2 q\nnext\n",
    ],
    ["{{ if x }}\nb\n{{ /if }}\nc", "b\nc"],
    ["  {{ for i of [1, 2] }}\n{{ i }}\n  {{ /for }}\nend", "1\n2\nend"],
    ["{{ if x }}{{ if x }}\nb\n{{ /if }}{{ /if }}\n", "b\n"],
    ["{{# note #}}\nx", "x"],
    ["x {{# note #}}\ny", "x \ny"],
    ["{{ set v = 3 }}\nv={{ v }}\n", "v=3\n"],
  ];
  const r = new TemplateRenderer({ store: new MemoryStore({}), defaults: {} });
  for (const [source, want] of cases) {
    await t.step(JSON.stringify(source), async () => {
      assert.equal(await r.renderString(`case:${source}`, source, { x: true }), want);
    });
  }
});
