import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ContentStore } from "../content/store.ts";
import { LocalStore } from "../content/local.ts";
import { MemoryStore } from "../content/memory.ts";
import {
  dataKey,
  DEFAULT_TEMPLATES,
  MEMO_KEY_MAX,
  MEMO_SIZE,
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

Deno.test("dataKey: equal data, equal key; anything a template could tell apart, another key", async (t) => {
  const f = () => "";
  const g = () => "";
  await t.step("equal data in other objects gives the same key", () => {
    const a = { x: [1, "a", { y: null }], f, z: true };
    const b = { x: [1, "a", { y: null }], f, z: true };
    assert.equal(dataKey(a), dataKey(b));
  });
  const apart: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ["NaN and null", { x: NaN }, { x: null }],
    ["Infinity and null", { x: Infinity }, { x: null }],
    ["NaN and the text NaN", { x: NaN }, { x: "NaN" }],
    ["-0 and 0", { x: -0 }, { x: 0 }],
    ["a number and its text", { x: 1 }, { x: "1" }],
    ["undefined and a missing key", { x: undefined }, {}],
    ["undefined and null", { x: undefined }, { x: null }],
    ["two functions", { x: f }, { x: g }],
    ["a function and a missing key", { x: f }, {}],
    ["where strings split", { x: ["ab", "c"] }, { x: ["a", "bc"] }],
    ["key and value boundary", { "a:": "b" }, { a: ":b" }],
    ["a string that looks like a mark", { x: "s1:a" }, { x: "a" }],
    ["an array and an object", { x: ["a"] }, { x: { 0: "a" } }],
    ["a bigint and a number", { x: 1n }, { x: 1 }],
    ["true and the text t", { x: true }, { x: "t" }],
  ];
  for (const [what, a, b] of apart) {
    await t.step(what, () => assert.notEqual(dataKey(a), dataKey(b)));
  }
  await t.step("an object with and one without a prototype", () => {
    assert.notEqual(dataKey({ x: {} }), dataKey({ x: Object.create(null) }));
    assert.notEqual(dataKey({ x: Object.create(null) }), null);
  });
  await t.step("a class (a date, a map), a symbol, a hole, a cycle: no key", () => {
    assert.equal(dataKey({ x: new Date(0) }), null);
    assert.equal(dataKey({ x: { y: [new Map()] } }), null);
    assert.equal(dataKey({ x: Symbol("s") }), null);
    // deno-lint-ignore no-sparse-arrays
    assert.equal(dataKey({ x: [1, , 3] }), null);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    assert.equal(dataKey(cycle), null);
  });
});

Deno.test("templates: a shipped template's text is remembered by its data", async (t) => {
  const store = new MemoryStore({ "boot/a/template/start.vto": "a {{ count() }}" });
  const r = new TemplateRenderer({
    store,
    defaults: { "start.vto": "{{ os }} {{ count() }}", "bad.vto": "{{ count() }}{{ nope }}" },
  });
  let calls = 0;
  const count = () => ++calls;
  await t.step("the same data renders once", async () => {
    assert.equal(await r.render("start", { os: "b", count }, "b"), "b 1");
    assert.equal(await r.render("start", { os: "b", count }, "b"), "b 1");
    assert.equal(await r.render("start", { os: "b", count }), "b 1");
    assert.equal(calls, 1);
  });
  await t.step("other data renders again", async () => {
    assert.equal(await r.render("start", { os: "c", count }, "c"), "c 2");
    assert.equal(await r.render("start", { os: "b", count: () => 7 }, "b"), "b 7");
  });
  await t.step("a tree's own template renders every time", async () => {
    assert.equal(await r.render("start", { os: "a", count }, "a"), "a 3");
    assert.equal(await r.render("start", { os: "a", count }, "a"), "a 4");
  });
  await t.step("data with a date renders every time", async () => {
    const at = new Date(0);
    assert.equal(await r.render("start", { os: "d", count, at }), "d 5");
    assert.equal(await r.render("start", { os: "d", count, at }), "d 6");
  });
  await t.step("a render that fails is not remembered", async () => {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(r.render("bad", { count }), /"nope" is not defined/);
    }
    assert.equal(calls, 8);
  });
  await t.step(`at most ${MEMO_SIZE} texts: the one used longest ago goes first`, async () => {
    const r = new TemplateRenderer({ store, defaults: { "start.vto": "{{ os }} {{ count() }}" } });
    calls = 0;
    for (let i = 0; i < MEMO_SIZE; i++) await r.render("start", { os: `o${i}`, count });
    assert.equal(await r.render("start", { os: "o0", count }), "o0 1"); // used again
    assert.equal(calls, MEMO_SIZE);
    await r.render("start", { os: `o${MEMO_SIZE}`, count }); // one more: o1 goes
    assert.equal(await r.render("start", { os: "o0", count }), "o0 1");
    assert.equal(calls, MEMO_SIZE + 1);
    assert.equal(await r.render("start", { os: "o1", count }), `o1 ${MEMO_SIZE + 2}`);
  });
  await t.step(
    `data written longer than ${MEMO_KEY_MAX} characters renders every time`,
    async () => {
      const big = "x".repeat(MEMO_KEY_MAX);
      calls = 0;
      await r.render("start", { os: "e", count, big });
      await r.render("start", { os: "e", count, big });
      assert.equal(calls, 2);
    },
  );
});

Deno.test("the shipped templates read nothing but their data (their texts are remembered)", () => {
  for (const [name, source] of Object.entries(DEFAULT_TEMPLATES)) {
    for (const global of ["Date", "Math", "crypto", "Deno", "globalThis", "performance"]) {
      assert.doesNotMatch(source, new RegExp(`\\b${global}\\b`), `${name} reads ${global}`);
    }
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
