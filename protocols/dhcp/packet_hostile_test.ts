import assert from "node:assert/strict";
import { MalformedPacketError } from "../../net/bytes.ts";
import { DhcpOption } from "./options.ts";
import { decodeDhcp, type DhcpPacket, encodeDhcp } from "./packet.ts";
import { describeDhcp } from "./_dump.ts";
import { assertSamePacket } from "./_test_utils.ts";
import { DHCP_MUTATION, mutate, prng } from "../../tests/fuzz_mutator.ts";

/** Raw packet bytes: a plain BOOTREQUEST header, the cookie, then `options` verbatim. */
function raw(
  options: number[] | Uint8Array,
  edit: { header?: (h: Uint8Array) => void; file?: number[]; sname?: number[] } = {},
): Uint8Array {
  const out = new Uint8Array(240 + options.length);
  out.set([1, 1, 6, 0, 0x12, 0x34, 0x56, 0x78]);
  out.set([0x52, 0x54, 0, 0xab, 0xc0, 1], 28);
  if (edit.sname) out.set(edit.sname, 44);
  if (edit.file) out.set(edit.file, 108);
  out.set([99, 130, 83, 99], 236);
  out.set(options, 240);
  edit.header?.(out);
  return out;
}

const ascii = (s: string) => [...new TextEncoder().encode(s)];

interface Hostile {
  name: string;
  bytes: Uint8Array;
  /** Expected MalformedPacketError: message pattern and offset. */
  error?: { message: RegExp; offset: number };
  /** Otherwise: what the decoded packet must look like. */
  check?: (p: DhcpPacket) => void;
}

const HOSTILE: Hostile[] = [
  {
    name: "empty datagram",
    bytes: new Uint8Array(0),
    error: { message: /BOOTP header and magic cookie needs 240 bytes, only 0 remain/, offset: 0 },
  },
  {
    name: "header truncated before the cookie",
    bytes: raw([]).subarray(0, 239),
    error: { message: /needs 240 bytes, only 239 remain/, offset: 0 },
  },
  {
    name: "bad magic cookie",
    bytes: raw([53, 1, 1, 255], { header: (h) => h.set([1, 2, 3, 4], 236) }),
    error: { message: /magic cookie is 0x01020304/, offset: 236 },
  },
  {
    name: "op neither request nor reply",
    bytes: raw([255], { header: (h) => (h[0] = 3) }),
    error: { message: /op 3 is neither/, offset: 0 },
  },
  {
    name: "hlen 17 (> 16-byte chaddr)",
    bytes: raw([255], { header: (h) => (h[2] = 17) }),
    error: { message: /hlen 17 exceeds/, offset: 2 },
  },
  {
    name: "hlen 255",
    bytes: raw([255], { header: (h) => (h[2] = 255) }),
    error: { message: /hlen 255 exceeds/, offset: 2 },
  },
  {
    name: "option length past the end",
    bytes: raw([53, 1, 1, 60, 12, ...ascii("PXE")]),
    error: { message: /DHCP option 60 claims 12 bytes, only 3 remain/, offset: 243 },
  },
  {
    name: "option code with no length byte",
    bytes: raw([53, 1, 1, 60]),
    error: { message: /DHCP option 60 has no length byte/, offset: 243 },
  },
  {
    name: "zero-length option 53",
    bytes: raw([53, 0, 255]),
    error: { message: /Cannot parse DHCP option 53: length 0/, offset: 240 },
  },
  {
    name: "option 53 given twice (RFC 3396 joins them into 2 bytes)",
    bytes: raw([53, 1, 1, 53, 1, 3, 255]),
    error: { message: /Cannot parse DHCP option 53: length 2/, offset: 240 },
  },
  {
    name: "option 93 with odd length",
    bytes: raw([53, 1, 1, 93, 3, 0, 7, 0, 255]),
    error: { message: /Cannot parse DHCP option 93: length 3/, offset: 243 },
  },
  {
    name: "option 93 empty",
    bytes: raw([53, 1, 1, 93, 0, 255]),
    error: { message: /option 93: length 0/, offset: 243 },
  },
  {
    name: "option 54 of 3 bytes",
    bytes: raw([53, 1, 3, 54, 3, 10, 0, 0, 255]),
    error: { message: /option 54: length 3/, offset: 243 },
  },
  {
    name: "option 57 of 1 byte",
    bytes: raw([53, 1, 1, 57, 1, 5, 255]),
    error: { message: /option 57: length 1/, offset: 243 },
  },
  {
    name: "option 94 of 2 bytes",
    bytes: raw([53, 1, 1, 94, 2, 1, 2, 255]),
    error: { message: /option 94: length 2/, offset: 243 },
  },
  {
    name: "router list not a multiple of 4",
    bytes: raw([53, 1, 2, 3, 5, 10, 0, 0, 1, 9, 255], { header: (h) => (h[0] = 2) }),
    error: { message: /option 3: length 5/, offset: 243 },
  },
  {
    // Found by tests/fuzz.ts: echoed in every reply and never dropped, a longer 82 left no reply
    // that fits in 576 bytes.
    name: "option 82 joined past 255 bytes (RFC 3046: one option)",
    bytes: raw([53, 1, 1, 82, 200, ...Array(200).fill(1), 82, 100, ...Array(100).fill(2), 255]),
    error: { message: /Cannot parse DHCP option 82: length 300/, offset: 243 },
  },
  {
    name: "option 82 of 255 bytes in two parts is accepted",
    bytes: raw([53, 1, 1, 82, 200, ...Array(200).fill(1), 82, 55, ...Array(55).fill(2), 255]),
    check: (p) => assert.equal(p.options.get(82)?.length, 255),
  },
  {
    name: "175 with a sub-option overflowing its parent",
    bytes: raw([53, 1, 1, 175, 5, 177, 5, 1, 0x1a, 0xf4, 255]),
    error: { message: /DHCP option 177 claims 5 bytes, only 3 remain/, offset: 245 },
  },
  {
    name: "175 ending in a bare sub-option code",
    bytes: raw([53, 1, 1, 175, 4, 19, 1, 1, 21, 255]),
    error: { message: /option 21 has no length byte/, offset: 248 },
  },
  {
    name: "option 52 value 0",
    bytes: raw([53, 1, 1, 52, 1, 0, 255]),
    error: { message: /option 52: value 0 is not 1, 2 or 3/, offset: 243 },
  },
  {
    name: "option 52 value 200",
    bytes: raw([53, 1, 1, 52, 1, 200, 255]),
    error: { message: /option 52: value 200/, offset: 243 },
  },
  {
    name: "option 52 of 2 bytes",
    bytes: raw([52, 2, 1, 1, 53, 1, 1, 255]),
    error: { message: /option 52: length 2/, offset: 240 },
  },
  {
    name: "option 52 points at a file field whose option overruns it",
    bytes: raw([53, 1, 1, 52, 1, 1, 255], { file: [60, 200, ...ascii("PXEClient")] }),
    error: { message: /option 60 claims 200 bytes, only 126 remain/, offset: 108 },
  },
  {
    name: "option 52 points at a file field holding a plain file name",
    bytes: raw([53, 1, 1, 52, 1, 1, 255], { file: ascii("pxelinux.0") }),
    // 'p' (112) with length 'x' (120) fits in 128 bytes; it is garbage but well-framed.
    check: (p) => {
      assert.equal(p.file, "");
      assert.deepEqual(p.options.codes(), [53, 112]);
      assert.equal(p.options.get(112)?.length, 120);
    },
  },
  {
    name: "overload loop: file and sname each carry option 52 again",
    bytes: raw([53, 1, 1, 52, 1, 3, 255], {
      file: [52, 1, 3, 12, 2, ...ascii("h1"), 255],
      sname: [52, 1, 1, 15, 3, ...ascii("lan"), 255],
    }),
    check: (p) => {
      assert.deepEqual(p.options.codes(), [53, 12, 15]);
      assert.equal(p.options.string(12), "h1");
      assert.equal(p.options.string(15), "lan");
      assert.equal(p.sname, "");
      assert.equal(p.file, "");
    },
  },
  {
    name: "option 52 inside file is ignored when the options field has none",
    bytes: raw([53, 1, 1, 255], { file: [52, 1, 2] }),
    check: (p) => {
      assert.equal(p.file, "4\x01\x02");
      assert.deepEqual(p.options.codes(), [53]);
    },
  },
  {
    name: "overload = 2 reads only sname",
    bytes: raw([53, 1, 1, 52, 1, 2, 255], {
      sname: [66, 1, ...ascii("s"), 255],
      file: ascii("boot"),
    }),
    check: (p) => {
      assert.equal(p.options.string(66), "s");
      assert.equal(p.file, "boot");
      assert.equal(p.sname, "");
    },
  },
  {
    name: "64 KiB of Pad then End",
    bytes: raw([...new Uint8Array(65536), 53, 1, 1, 255]),
    check: (p) => assert.deepEqual(p.options.codes(), [53]),
  },
  {
    name: "64 KiB of Pad and no End",
    bytes: raw(new Uint8Array(65536)),
    check: (p) => assert.equal(p.options.size, 0),
  },
  {
    name: "no End option (accepted)",
    bytes: raw([53, 1, 1, 12, 3, ...ascii("pc1")]),
    check: (p) => {
      assert.equal(p.options.messageType(), 1);
      assert.equal(p.options.string(12), "pc1");
    },
  },
  {
    name: "garbage after End is ignored",
    bytes: raw([53, 1, 1, 255, 60, 200, 1, 2, 3]),
    check: (p) => assert.deepEqual(p.options.codes(), [53]),
  },
  {
    name: "no options at all (plain BOOTP)",
    bytes: raw([]),
    check: (p) => {
      assert.equal(p.options.messageType(), undefined);
      assert.equal(p.options.size, 0);
    },
  },
  {
    name: "duplicate option 60 is concatenated in order (RFC 3396)",
    bytes: raw([60, 4, ...ascii("PXEC"), 53, 1, 1, 60, 5, ...ascii("lient"), 255]),
    check: (p) => {
      assert.equal(p.options.vendorClass(), "PXEClient");
      assert.deepEqual(p.options.codes(), [60, 53]);
    },
  },
  {
    name: "an option split between the options field and file (RFC 3396)",
    bytes: raw([53, 1, 1, 52, 1, 1, 55, 2, 1, 3, 255], { file: [55, 2, 6, 67, 255] }),
    check: (p) => assert.deepEqual(p.options.paramRequestList(), [1, 3, 6, 67]),
  },
  {
    name: "zero-length option 55",
    bytes: raw([53, 1, 1, 55, 0, 255]),
    check: (p) => assert.deepEqual(p.options.paramRequestList(), []),
  },
  {
    name: "user class neither iPXE-raw nor RFC 3004: one raw class",
    bytes: raw([53, 1, 1, 77, 3, 5, 65, 66, 255]),
    check: (p) => assert.deepEqual(p.options.userClasses(), ["\x05AB"]),
  },
  {
    name: "option 97 of odd length is kept raw, uuid() undefined",
    bytes: raw([53, 1, 1, 97, 3, 0, 1, 2, 255]),
    check: (p) => {
      assert.deepEqual(p.options.get(97), Uint8Array.of(0, 1, 2));
      assert.equal(p.options.uuid(), undefined);
    },
  },
  {
    name: "hlen 0 (InfiniBand-style, identity in option 61)",
    bytes: raw([53, 1, 1, 255], { header: (h) => (h[2] = 0) }),
    check: (p) => assert.equal(p.chaddr.length, 0),
  },
  {
    name: "sname and file without NUL terminator",
    bytes: raw([53, 1, 1, 255], { sname: Array(64).fill(0x41), file: Array(128).fill(0x42) }),
    check: (p) => {
      assert.equal(p.sname, "A".repeat(64));
      assert.equal(p.file, "B".repeat(128));
    },
  },
  {
    name: "non-UTF-8 bytes in a string option decode without throwing",
    bytes: raw([53, 1, 1, 12, 3, 0xff, 0xfe, 0x80, 255]),
    check: (p) => assert.equal(p.options.string(12), "\ufffd\ufffd\ufffd"),
  },
];

Deno.test("hostile packets decode to a defined value or throw MalformedPacketError", async (t) => {
  assert.ok(HOSTILE.length >= 15);
  for (const h of HOSTILE) {
    await t.step(h.name, () => {
      if (h.error) {
        const { message, offset } = h.error;
        assert.throws(() => decodeDhcp(h.bytes), (e) => {
          assert.ok(e instanceof MalformedPacketError, `not a MalformedPacketError: ${e}`);
          assert.match(e.message, message);
          assert.equal(e.offset, offset);
          return true;
        });
      } else {
        const p = decodeDhcp(h.bytes);
        h.check!(p);
        assert.equal(typeof describeDhcp(p), "string");
      }
    });
  }
});

Deno.test("fuzz: 20 000 seeded mutations of the captures never throw anything but MalformedPacketError", () => {
  const dir = new URL("./testdata/", import.meta.url);
  const seeds = [...Deno.readDirSync(dir)]
    .filter((e) => e.name.endsWith(".bin"))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((e) => Deno.readFileSync(new URL(e.name, dir)));
  assert.ok(seeds.length > 0);
  const rnd = prng(0x5eed);
  let decoded = 0, rejected = 0, reencoded = 0;
  const started = performance.now();
  for (let i = 0; i < 20_000; i++) {
    const b = mutate(seeds[i % seeds.length]!, rnd, DHCP_MUTATION);
    let p: DhcpPacket;
    try {
      p = decodeDhcp(b);
    } catch (e) {
      if (!(e instanceof MalformedPacketError)) {
        throw new Error(`mutation ${i} threw ${e}; bytes ${Array.from(b)}`, { cause: e });
      }
      rejected++;
      continue;
    }
    decoded++;
    describeDhcp(p);
    let again: Uint8Array;
    try {
      again = encodeDhcp(p, { maxSize: 65535 });
    } catch (e) {
      // A decoded packet may legitimately not re-encode: e.g. a 128-byte file with no NUL.
      if (!(e instanceof RangeError)) throw e;
      continue;
    }
    reencoded++;
    assertSamePacket(decodeDhcp(again), p);
  }
  // Both paths must be exercised, or the mutator is too gentle or too rough to mean anything.
  assert.ok(decoded > 2000, `only ${decoded} mutations decoded`);
  assert.ok(rejected > 2000, `only ${rejected} mutations rejected`);
  assert.ok(reencoded > 1000, `only ${reencoded} re-encoded`);
  assert.ok(performance.now() - started < 60_000, "fuzz loop took over a minute");
});

Deno.test("option 52 in a decoded packet never reaches the options map", () => {
  const p = decodeDhcp(raw([53, 1, 1, 52, 1, 1, 255], { file: [12, 1, 65, 255] }));
  assert.equal(p.options.has(DhcpOption.Overload), false);
  assert.equal(p.options.string(DhcpOption.Hostname), "A");
});

Deno.test("a packet that throws after a repeated option leaves nothing to the next one", () => {
  // Option 60 twice, then option 61 claiming more bytes than remain: thrown mid-area.
  const bad = raw([60, 1, ...ascii("a"), 60, 1, ...ascii("b"), 61, 200, 1]);
  assert.throws(() => decodeDhcp(bad), MalformedPacketError);
  const next = decodeDhcp(raw([53, 1, 1, 60, 1, ...ascii("x"), 255]));
  assert.equal(next.options.vendorClass(), "x");
  assert.deepEqual(next.options.codes(), [53, 60]);
});

Deno.test("a code repeated 250 times is joined once, in order", () => {
  const parts = Array.from({ length: 250 }, (_, i) => [43, 1, i]).flat();
  const p = decodeDhcp(raw([53, 1, 1, ...parts, 255]));
  assert.deepEqual([...p.options.get(43)!], Array.from({ length: 250 }, (_, i) => i));
});
