import assert from "node:assert/strict";
import {
  ALL_NODES,
  ALL_ROUTERS,
  canonicalAddress,
  ipv6ToBytes,
  ipv6ToString,
  isLinkLocal,
  isUnspecified,
  sameAddress,
} from "./ipv6.ts";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("ipv6ToBytes reads every RFC 4291 text form", async (t) => {
  const cases = [
    { text: "::", hex: "00".repeat(16) },
    { text: "::1", hex: "00".repeat(15) + "01" },
    { text: "ff02::2", hex: "ff02" + "00".repeat(13) + "02" },
    { text: "fe80::5054:ff:fe12:3456", hex: "fe80000000000000505400fffe123456" },
    { text: "FE80::A", hex: "fe80" + "00".repeat(13) + "0a" },
    { text: "2001:db8:0:0:1:0:0:1", hex: "20010db8000000000001000000000001" },
    { text: "2001:db8::", hex: "20010db8" + "00".repeat(12) },
    { text: "::ffff:10.77.0.1", hex: "00".repeat(10) + "ffff0a4d0001" },
    { text: "64:ff9b::192.0.2.33", hex: "0064ff9b" + "00".repeat(8) + "c0000221" },
    { text: "1:2:3:4:5:6:7:8", hex: "00010002000300040005000600070008" },
  ];
  for (const c of cases) {
    await t.step(c.text, () => assert.equal(hex(ipv6ToBytes(c.text)), c.hex));
  }
});

Deno.test("ipv6ToBytes refuses what is not an address", async (t) => {
  const bad = [
    "",
    ":",
    ":::",
    "1::2::3",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::8",
    "12345::",
    "g::1",
    "fe80::1%br0",
    "::ffff:10.0.0.256",
    "10.0.0.1",
    "1:2:3:4:5:6:7:1.2.3.4",
  ];
  for (const text of bad) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => ipv6ToBytes(text), RangeError);
    });
  }
});

Deno.test("ipv6ToString writes RFC 5952 canonical text", async (t) => {
  const cases = [
    { hex: "00".repeat(16), text: "::" },
    { hex: "fe80000000000000505400fffe123456", text: "fe80::5054:ff:fe12:3456" },
    // The first of two equally long zero runs is the one shortened (RFC 5952 §4.2.3).
    { hex: "20010db8000000000001000000000001", text: "2001:db8::1:0:0:1" },
    // A single zero group is never shortened (§4.2.2).
    { hex: "20010db8000000010001000100010001", text: "2001:db8:0:1:1:1:1:1" },
    { hex: "00010002000300040005000600070000", text: "1:2:3:4:5:6:7:0" },
    { hex: "ff02" + "00".repeat(13) + "01", text: "ff02::1" },
  ];
  for (const c of cases) {
    await t.step(c.text, () => {
      const bytes = Uint8Array.from(c.hex.match(/../g)!.map((h) => parseInt(h, 16)));
      assert.equal(ipv6ToString(bytes), c.text);
      assert.equal(hex(ipv6ToBytes(ipv6ToString(bytes))), c.hex, "round trip");
    });
  }
  await t.step("refuses a wrong length", () => {
    assert.throws(() => ipv6ToString(new Uint8Array(4)), RangeError);
  });
});

Deno.test("address classes", async (t) => {
  const cases = [
    { text: "::", unspecified: true, linkLocal: false },
    { text: "fe80::1", unspecified: false, linkLocal: true },
    { text: "febf::1", unspecified: false, linkLocal: true },
    { text: "fec0::1", unspecified: false, linkLocal: false },
    { text: "ff02::1", unspecified: false, linkLocal: false },
    { text: "2001:db8::1", unspecified: false, linkLocal: false },
  ];
  for (const c of cases) {
    await t.step(c.text, () => {
      const b = ipv6ToBytes(c.text);
      assert.equal(isUnspecified(b), c.unspecified);
      assert.equal(isLinkLocal(b), c.linkLocal);
    });
  }
  await t.step("the well-known groups", () => {
    assert.equal(ipv6ToString(ALL_NODES), "ff02::1");
    assert.equal(ipv6ToString(ALL_ROUTERS), "ff02::2");
    assert.ok(sameAddress(ALL_NODES, ipv6ToBytes("ff02:0::1")));
    assert.ok(!sameAddress(ALL_NODES, ALL_ROUTERS));
  });
});

Deno.test("canonicalAddress spells an address one way", async (t) => {
  const cases = [
    ["127.0.0.1", "127.0.0.1"],
    ["::ffff:127.0.0.1", "127.0.0.1"],
    ["::FFFF:7f00:1", "127.0.0.1"],
    ["::1", "::1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["not an address", "not an address"],
  ];
  for (const [input, want] of cases) {
    await t.step(`${input} → ${want}`, () => assert.equal(canonicalAddress(input!), want));
  }
});
