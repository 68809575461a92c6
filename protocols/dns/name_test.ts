import assert from "node:assert/strict";
import { ByteWriter, MalformedPacketError } from "../../net/bytes.ts";
import { nameKey, nameLabels, readName, writeName } from "./name.ts";

/** Wire bytes from a readable description: strings are labels, numbers are raw bytes. */
function wire(...parts: (string | number)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else out.push(p.length, ...new TextEncoder().encode(p));
  }
  return Uint8Array.from(out);
}

Deno.test("readName decodes labels, pointers and the root", async (t) => {
  const cases: { name: string; bytes: Uint8Array; at: number; want: string; end: number }[] = [
    { name: "plain", bytes: wire("web-1", "erf", 0), at: 0, want: "web-1.erf", end: 11 },
    { name: "root", bytes: wire(0), at: 0, want: "", end: 1 },
    {
      name: "a pointer back to a suffix; end is after the pointer",
      bytes: wire("web-1", "erf", 0, "mail", 0xc0, 6),
      at: 11,
      want: "mail.erf",
      end: 18,
    },
    {
      name: "a pointer to a pointer, each further back",
      bytes: wire("erf", 0, "b", 0xc0, 0, "a", 0xc0, 5),
      at: 9,
      want: "a.b.erf",
      end: 13,
    },
    {
      name: "dots, backslashes and unprintable bytes are escaped",
      bytes: wire(3, 0x61, 0x2e, 0x5c, 2, 0x00, 0x20, 0),
      at: 0,
      want: "a\\.\\\\.\\000\\032",
      end: 8,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.deepEqual(readName(c.bytes, c.at), { name: c.want, end: c.end });
    });
  }
});

Deno.test("readName refuses hostile names with MalformedPacketError", async (t) => {
  const long = "x".repeat(63);
  const cases: { name: string; bytes: Uint8Array; at: number; error: RegExp }[] = [
    { name: "a pointer to itself", bytes: wire("a", 0xc0, 2), at: 2, error: /backwards/ },
    { name: "a pointer loop of two", bytes: wire(0xc0, 2, 0xc0, 0), at: 2, error: /backwards/ },
    {
      name: "a pointer into its own labels",
      bytes: wire("a", "b", 0xc0, 2),
      at: 0,
      error: /backwards/,
    },
    {
      name: "a pointer forward",
      bytes: wire(0xc0, 4, 0, 0, "a", 0),
      at: 0,
      error: /backwards/,
    },
    {
      // Backwards, yet a loop: the target's labels run into a pointer back to the target.
      name: "a loop through a label that swallows the pointer",
      bytes: wire(2, 0xc0, 0, 0xc0, 0),
      at: 1,
      error: /backwards/,
    },
    { name: "a pointer cut short", bytes: wire("a", 0xc0), at: 0, error: /pointer cut short/ },
    { name: "a label cut short", bytes: wire(5, 0x61, 0x62), at: 0, error: /label cut short/ },
    { name: "no terminating zero", bytes: wire("a", "b"), at: 0, error: /past the end/ },
    { name: "an offset past the end", bytes: wire(0), at: 1, error: /past the end/ },
    { name: "label type 01", bytes: wire(0x41, 0), at: 0, error: /label type 0x40/ },
    { name: "label type 10", bytes: wire(0x80, 0), at: 0, error: /label type 0x80/ },
    {
      name: "a label of 64 bytes reads as type 01",
      bytes: wire("x".repeat(64), 0),
      at: 0,
      error: /label type 0x40/,
    },
    {
      name: "a name of 257 bytes",
      bytes: wire(long, long, long, long, 0),
      at: 0,
      error: /longer than 255/,
    },
    {
      name: "a name longer than 255 through pointers",
      bytes: wire(long, long, 0, long, 0xc0, 0, long, 0xc0, 129),
      at: 195,
      error: /longer than 255/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.throws(() => readName(c.bytes, c.at), (e: unknown) => {
        assert.ok(e instanceof MalformedPacketError, `not malformed: ${e}`);
        assert.match(e.message, c.error);
        return true;
      });
    });
  }
});

Deno.test("a chain of pointers is read up to one per possible label, no further", async (t) => {
  /** "a" at 0, then `n` pointers, each to the one before: the last one's name is "a". */
  const chain = (n: number) => {
    const bytes = [1, 0x61, 0];
    for (let i = 0; i < n; i++) bytes.push(0xc0, i === 0 ? 0 : 3 + 2 * (i - 1));
    return { bytes: new Uint8Array(bytes), last: 3 + 2 * (n - 1) };
  };
  await t.step("127 pointers: read", () => {
    const { bytes, last } = chain(127);
    assert.deepEqual(readName(bytes, last), { name: "a", end: last + 2 });
  });
  await t.step("128 pointers: refused", () => {
    const { bytes, last } = chain(128);
    assert.throws(() => readName(bytes, last), /more compression pointers than a name has labels/);
  });
});

Deno.test("nameLabels parses presentation form and refuses what the wire cannot carry", async (t) => {
  const ok: [string, number[][]][] = [
    ["web-1.erf", [[...new TextEncoder().encode("web-1")], [0x65, 0x72, 0x66]]],
    ["web-1.erf.", [[...new TextEncoder().encode("web-1")], [0x65, 0x72, 0x66]]],
    ["", []],
    [".", []],
    ["a\\.b", [[0x61, 0x2e, 0x62]]],
    ["a\\\\.", [[0x61, 0x5c]]],
    ["a\\.", [[0x61, 0x2e]]],
    ["\\000\\255", [[0, 255]]],
  ];
  for (const [name, labels] of ok) {
    await t.step(JSON.stringify(name), () => {
      assert.deepEqual(nameLabels(name).map((l) => [...l]), labels);
    });
  }
  const bad: [string, RegExp][] = [
    ["a..b", /empty label/],
    [".a", /empty label/],
    [`${"x".repeat(64)}.erf`, /longer than 63/],
    [Array(64).fill("abc").join("."), /longer than 255/],
    ["a\\", /dangling/],
    ["\\256", /not a byte/],
    ["é.erf", /not ASCII/],
  ];
  for (const [name, error] of bad) {
    await t.step(`refuses ${name.slice(0, 20)}`, () => {
      assert.throws(() => nameLabels(name), (e: unknown) => {
        assert.ok(e instanceof RangeError);
        assert.match(e.message, error);
        return true;
      });
    });
  }
  await t.step("253 characters (255 on the wire) is the longest name", () => {
    const name = Array(4).fill("x".repeat(62)).join(".") + ".x";
    assert.equal(name.length, 253);
    assert.equal(nameLabels(name).length, 5);
    assert.throws(() => nameLabels(name + "x"), RangeError);
  });
});

Deno.test("nameKey: ASCII letters in lower case, without the final dot", () => {
  assert.equal(nameKey("WEB-1.Erf."), "web-1.erf");
  assert.equal(nameKey("a\\."), "a\\.");
  assert.equal(nameKey("\\065"), "\\065");
});

Deno.test("writeName compresses repeated suffixes of the same case, and reads back", async (t) => {
  const w = new ByteWriter();
  const table = new Map<string, number>();
  w.zeros(12);
  const names = ["web-1.erf", "mail.ERF", "web-1.erf", "", "a\\.b.erf", "WEB-1.erf"];
  const at: number[] = [];
  for (const n of names) {
    at.push(w.length);
    writeName(w, n, table);
  }
  const bytes = w.finish();
  await t.step("the bytes", () => {
    assert.deepEqual(
      [...bytes.subarray(12)],
      [
        ...wire("web-1", "erf", 0),
        ...wire("mail", "ERF", 0),
        ...wire(0xc0, 12),
        0,
        ...wire(3, 0x61, 0x2e, 0x62, 0xc0, 18),
        ...wire("WEB-1", 0xc0, 18),
      ],
    );
  });
  await t.step("each reads back", () => {
    names.forEach((n, i) => {
      assert.equal(readName(bytes, at[i]!).name, n);
    });
  });
  await t.step("no pointer past 0x3fff", () => {
    const big = new ByteWriter();
    const t2 = new Map<string, number>();
    big.zeros(0x4000);
    writeName(big, "far.erf", t2);
    writeName(big, "far.erf", t2);
    const out = big.finish();
    assert.equal(out.length, 0x4000 + 9 + 9);
  });
});
