import assert from "node:assert/strict";
import { domainLabels, encodeDomainList } from "./domain_list.ts";

const text = (s: string) => [...new TextEncoder().encode(s)];
const label = (s: string) => [s.length, ...text(s)];

Deno.test("encodeDomainList compresses repeated suffixes (RFC 3397 §2 and its example)", async (t) => {
  const cases: [string, string[], number[]][] = [
    [
      "RFC 3397 example: eng.apple.com, marketing.apple.com",
      ["eng.apple.com.", "marketing.apple.com."],
      [...label("eng"), ...label("apple"), ...label("com"), 0, ...label("marketing"), 0xc0, 4],
    ],
    ["one name", ["lab"], [...label("lab"), 0]],
    [
      "nothing shared",
      ["lab", "example.org"],
      [...label("lab"), 0, ...label("example"), ...label("org"), 0],
    ],
    [
      "a name that is a suffix already written is one pointer",
      ["a.example.org", "example.org"],
      [...label("a"), ...label("example"), ...label("org"), 0, 0xc0, 2],
    ],
    [
      "suffixes match case-insensitively",
      ["a.Example.ORG", "b.example.org"],
      [...label("a"), ...label("Example"), ...label("ORG"), 0, ...label("b"), 0xc0, 2],
    ],
  ];
  for (const [name, names, want] of cases) {
    await t.step(name, () => assert.deepEqual([...encodeDomainList(names)], want));
  }
});

/** RFC 1035 §4.1.4 reading, for the round trip: names with pointers followed. */
function decodeNames(b: Uint8Array): string[] {
  const nameAt = (at: number, hops = 0): string[] => {
    const len = b[at]!;
    if (len === 0) return [];
    if ((len & 0xc0) === 0xc0) {
      assert.ok(hops < 64, "pointer loop");
      return nameAt(((len & 0x3f) << 8) | b[at + 1]!, hops + 1);
    }
    return [new TextDecoder().decode(b.subarray(at + 1, at + 1 + len)), ...nameAt(at + 1 + len)];
  };
  const out: string[] = [];
  for (let at = 0; at < b.length;) {
    out.push(nameAt(at).join("."));
    while (b[at] !== 0 && (b[at]! & 0xc0) !== 0xc0) at += 1 + b[at]!;
    at += b[at] === 0 ? 1 : 2;
  }
  return out;
}

Deno.test("a long list is one value whose pointers read back (RFC 3396 splits it later)", () => {
  const names = Array.from({ length: 40 }, (_, i) => `host${i}.rack${i % 4}.example.org`);
  const bytes = encodeDomainList(names);
  assert.ok(bytes.length > 255, `${bytes.length} bytes`);
  assert.deepEqual(decodeNames(bytes), names);
});

Deno.test("domainLabels refuses what is not a domain name", async (t) => {
  const cases: [string, RegExp][] = [
    ["", /is not a domain name/],
    [".", /is not a domain name/],
    ["a..b", /label ""/],
    ["-lab", /label "-lab"/],
    ["la b", /label "la b"/],
    [`${"a".repeat(64)}.org`, /at most 63/],
    [Array(130).fill("ab").join("."), /bytes encoded, at most 255/],
  ];
  for (const [name, want] of cases) {
    await t.step(JSON.stringify(name).slice(0, 30), () => {
      assert.throws(() => domainLabels(name), (e: unknown) => {
        assert.ok(e instanceof RangeError);
        assert.match(e.message, want);
        return true;
      });
    });
  }
  await t.step("a trailing dot and underscores are fine", () => {
    assert.deepEqual(domainLabels("_srv.lab."), ["_srv", "lab"]);
  });
});
