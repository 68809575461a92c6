import assert from "node:assert/strict";
import { buildMenu, decideEntry, type EntryDecision, macForUrl, type MenuInput } from "./menu.ts";
import type { CatalogProblem, OsEntry } from "./catalog.ts";
import { mustParseMac } from "../net/mac.ts";

function os(name: string, title = name): OsEntry {
  return {
    name,
    title,
    kernel: "vmlinuz",
    initrd: [],
    cmdline: "",
    classes: [],
    templates: [],
    source: `boot/${name}/`,
  };
}

Deno.test("buildMenu: items, default, timeout and notices", async (t) => {
  const base: MenuInput = {
    entries: [os("a", "Alpha"), os("b")],
    timeoutSeconds: 7,
    mac: null,
    hasBootTree: true,
  };
  const skipped: CatalogProblem = {
    os: "bad",
    file: "boot/bad/os.toml",
    message: "x",
    skipped: true,
  };
  const warned: CatalogProblem = {
    os: "odd",
    file: "boot/odd/os.toml",
    message: "y",
    skipped: false,
  };
  const cases: {
    name: string;
    input: Partial<MenuInput>;
    default: string;
    timeout: number;
    notices: string[];
  }[] = [
    { name: "no default waits", input: {}, default: "", timeout: 0, notices: [] },
    {
      name: "default boots after the timeout",
      input: { defaultOs: "b" },
      default: "b",
      timeout: 7000,
      notices: [],
    },
    {
      name: "timeout 0 waits with the default marked",
      input: { defaultOs: "a", timeoutSeconds: 0 },
      default: "a",
      timeout: 0,
      notices: [],
    },
    {
      name: "unknown default is a notice",
      input: { defaultOs: "zz" },
      default: "",
      timeout: 0,
      notices: ["Default OS zz is not in the tree"],
    },
    {
      name: "skipped OS is named once",
      input: { problems: [skipped, skipped, warned] },
      default: "",
      timeout: 0,
      notices: ["bad: left out, see the server log"],
    },
    {
      name: "empty tree",
      input: { entries: [] },
      default: "",
      timeout: 0,
      notices: ["No operating systems under boot/ (see the server log)"],
    },
    {
      name: "no tree at all",
      input: { entries: [], hasBootTree: false },
      default: "",
      timeout: 0,
      notices: ["No boot tree configured: use -l DIR or ref"],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const m = buildMenu({ ...base, ...c.input });
      assert.equal(m.default, c.default);
      assert.equal(m.timeout_ms, c.timeout);
      assert.deepEqual(m.notices, c.notices);
      assert.deepEqual(
        m.items,
        (c.input.entries ?? base.entries).map((e) => ({ name: e.name, title: e.title })),
      );
    });
  }
  await t.step("titles cannot expand iPXE settings", () => {
    const m = buildMenu({ ...base, entries: [os("x", "Leak ${net0/mac} here")] });
    assert.equal(m.items[0]!.title, "Leak $ {net0/mac} here");
  });
  await t.step("the MAC goes into URLs with hyphens, or as iPXE's setting", () => {
    assert.equal(
      buildMenu({ ...base, mac: mustParseMac("52:54:00:ab:cd:ef") }).mac_url,
      "52-54-00-ab-cd-ef",
    );
    assert.equal(buildMenu(base).mac_url, "${netX/mac:hexhyp}");
    assert.equal(macForUrl(null), "${netX/mac:hexhyp}");
  });
});

Deno.test("decideEntry: the machine's OS when the tree has it, else the menu", async (t) => {
  const known = new Set(["debian", "tiny"]);
  const cases: [string | null, boolean, EntryDecision][] = [
    [null, false, { kind: "menu" }],
    ["debian", true, { kind: "os", os: "debian", reason: "configured" }],
    ["tiny", false, { kind: "os", os: "tiny", reason: "chosen at the menu" }],
    ["gone", false, { kind: "menu", note: "chosen os gone is not in the tree" }],
    ["old", true, { kind: "menu", note: "configured os old is not in the tree" }],
  ];
  for (const [os, pinned, want] of cases) {
    await t.step(`${pinned ? "configured" : "chosen"} ${os}`, () => {
      assert.deepEqual(decideEntry({ os, pinned, known }), want);
    });
  }
});
