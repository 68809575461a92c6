import assert from "node:assert/strict";
import { MalformedPacketError } from "../../net/bytes.ts";
import {
  decodeRouterAdvertisement,
  decodeRouterSolicitation,
  encodeRouterAdvertisement,
  encodeRouterSolicitation,
  ICMPV6_TYPE,
  icmpv6Checksum,
  NDP_OPTION,
  nonRouterAdvertisement,
  type RouterAdvertisement,
  sourceLinkLayerAddress,
  sourceLinkLayerOption,
} from "./packet.ts";
import { ipv6ToBytes, ipv6ToString } from "../../net/ipv6.ts";

/** Bytes from hex text; `#` comments and white space are ignored. */
function hex(text: string): Uint8Array {
  const clean = text.replace(/#.*$/gm, "").replace(/\s+/g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}

const MAC = hex("52 54 00 ab cd 01");

Deno.test("a captured iPXE router solicitation", async (t) => {
  const frame = hex(
    await Deno.readTextFile(new URL("./testdata/ipxe_bios_rs.txt", import.meta.url)),
  );
  // Ethernet 14 bytes, IPv6 header 40, then the ICMPv6 message.
  const ip = frame.subarray(14, 54);
  const message = frame.subarray(54);
  const source = ip.subarray(8, 24), destination = ip.subarray(24, 40);

  await t.step("decodes with its source link-layer address", () => {
    const rs = decodeRouterSolicitation(message);
    assert.deepEqual(rs.options.map((o) => o.type), [NDP_OPTION.SOURCE_LINK_LAYER_ADDRESS]);
    assert.deepEqual(sourceLinkLayerAddress(rs.options), MAC);
    assert.equal(ipv6ToString(source), "fe80::5054:ff:feab:cd01");
    assert.equal(ipv6ToString(destination), "ff02::2");
    assert.equal(ip[7], 255, "iPXE sends with hop limit 255");
  });
  await t.step("its checksum is what icmpv6Checksum computes", () => {
    const onWire = (message[2]! << 8) | message[3]!;
    assert.equal(icmpv6Checksum(source, destination, message), onWire);
  });
  await t.step("re-encodes to the same bytes apart from the checksum", () => {
    const again = encodeRouterSolicitation(decodeRouterSolicitation(message));
    const expected = message.slice();
    expected[2] = expected[3] = 0;
    assert.deepEqual(again, expected);
  });
});

Deno.test("decodeRouterSolicitation accepts valid solicitations", async (t) => {
  const cases = [
    { name: "no options (source ::)", bytes: "85 00 00 00 00 00 00 00", types: [] },
    {
      name: "source link-layer address",
      bytes: "85 00 12 34 00 00 00 00  01 01 52 54 00 ab cd 01",
      types: [1],
    },
    {
      // RFC 4861 §4.1: reserved bits are ignored by the receiver.
      name: "reserved bits set",
      bytes: "85 00 00 00 ff ff ff ff  01 01 52 54 00 ab cd 01",
      types: [1],
    },
    {
      // §4.6: unknown options are skipped, kept raw here.
      name: "an unknown 16-byte option after the address",
      bytes: "85 00 00 00 00 00 00 00  01 01 52 54 00 ab cd 01  c8 02" + " 00".repeat(14),
      types: [1, 200],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const rs = decodeRouterSolicitation(hex(c.bytes));
      assert.deepEqual(rs.options.map((o) => o.type), c.types);
      for (const o of rs.options) assert.equal((o.data.length + 2) % 8, 0);
    });
  }
});

Deno.test("decodeRouterSolicitation refuses hostile input with the offset", async (t) => {
  const cases = [
    { name: "empty", bytes: "", error: /needs at least 8 bytes, got 0/, offset: 0 },
    { name: "7 bytes", bytes: "85 00 00 00 00 00 00", error: /at least 8 bytes/, offset: 0 },
    {
      name: "a router advertisement",
      bytes: "86 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
      error: /ICMPv6 type 134/,
      offset: 0,
    },
    { name: "an echo request", bytes: "80 00 00 00 00 00 00 00", error: /type 128/, offset: 0 },
    { name: "code 1", bytes: "85 01 00 00 00 00 00 00", error: /code 1/, offset: 1 },
    {
      name: "zero-length option",
      bytes: "85 00 00 00 00 00 00 00  01 00 52 54 00 ab cd 01",
      error: /option 1 has length 0/,
      offset: 8,
    },
    {
      name: "zero-length option after a valid one",
      bytes: "85 00 00 00 00 00 00 00  01 01 52 54 00 ab cd 01  05 00 00 00 00 00 00 00",
      error: /option 5 has length 0/,
      offset: 16,
    },
    {
      name: "option longer than the packet",
      bytes: "85 00 00 00 00 00 00 00  01 02 52 54 00 ab cd 01",
      error: /option 1 claims 16 bytes, only 8 remain/,
      offset: 8,
    },
    {
      name: "option length 255 in a short packet",
      bytes: "85 00 00 00 00 00 00 00  03 ff 00 00",
      error: /option 3 claims 2040 bytes, only 4 remain/,
      offset: 8,
    },
    {
      name: "a lone option type byte",
      bytes: "85 00 00 00 00 00 00 00  01",
      error: /option 1 length needs 1 bytes, only 0 remain/,
      offset: 9,
    },
    {
      name: "option header without its data",
      bytes: "85 00 00 00 00 00 00 00  01 01",
      error: /option 1 claims 8 bytes, only 2 remain/,
      offset: 8,
    },
    {
      name: "trailing bytes that are not an option",
      bytes: "85 00 00 00 00 00 00 00  01 01 52 54 00 ab cd 01  00 00 00",
      error: /option 0 has length 0/,
      offset: 16,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      let caught: unknown;
      try {
        decodeRouterSolicitation(hex(c.bytes));
      } catch (e) {
        caught = e;
      }
      assert.ok(caught instanceof MalformedPacketError, `threw ${caught}`);
      assert.match(caught.message, c.error);
      assert.equal(caught.offset, c.offset);
    });
  }
});

Deno.test("the advertisement we send", async (t) => {
  const ra = nonRouterAdvertisement(MAC);
  const bytes = encodeRouterAdvertisement(ra);

  await t.step("is the RFC 4861 §4.2 layout with every field zero and our MAC", () => {
    assert.deepEqual(
      bytes,
      hex(`
        86 00 00 00   # type 134, code 0, checksum (the kernel fills it in)
        00 00 00 00   # cur hop limit 0, M=0 O=0, router lifetime 0: not a default router
        00 00 00 00   # reachable time unspecified
        00 00 00 00   # retrans timer unspecified
        01 01 52 54 00 ab cd 01   # source link-layer address
      `),
    );
  });
  await t.step("decodes back to itself, with no prefix option", () => {
    const back = decodeRouterAdvertisement(bytes);
    assert.deepEqual(back, ra);
    assert.equal(back.options.some((o) => o.type === NDP_OPTION.PREFIX_INFORMATION), false);
    assert.deepEqual(sourceLinkLayerAddress(back.options), MAC);
  });
});

Deno.test("router advertisement round trips and flags", async (t) => {
  const cases: { name: string; ra: RouterAdvertisement; flagsByte: number }[] = [
    {
      name: "a real router: M, O, lifetime 1800",
      ra: {
        curHopLimit: 64,
        managed: true,
        other: true,
        routerLifetime: 1800,
        reachableTime: 30000,
        retransTimer: 1000,
        options: [],
      },
      flagsByte: 0xc0,
    },
    {
      name: "O only, with a prefix option",
      ra: {
        curHopLimit: 255,
        managed: false,
        other: true,
        routerLifetime: 65535,
        reachableTime: 0xffffffff,
        retransTimer: 0,
        options: [{
          type: NDP_OPTION.PREFIX_INFORMATION,
          data: Uint8Array.from({ length: 30 }, (_, i) => i),
        }],
      },
      flagsByte: 0x40,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const bytes = encodeRouterAdvertisement(c.ra);
      assert.equal(bytes[0], ICMPV6_TYPE.ROUTER_ADVERTISEMENT);
      assert.equal(bytes[5], c.flagsByte);
      assert.deepEqual(decodeRouterAdvertisement(bytes), c.ra);
    });
  }
  await t.step("reserved flag bits are ignored on decode", () => {
    const bytes = encodeRouterAdvertisement(nonRouterAdvertisement(MAC));
    bytes[5] = 0x3f;
    const ra = decodeRouterAdvertisement(bytes);
    assert.equal(ra.managed, false);
    assert.equal(ra.other, false);
  });
  await t.step("a 15-byte advertisement is malformed", () => {
    assert.throws(
      () => decodeRouterAdvertisement(new Uint8Array(15).fill(0x86, 0, 1)),
      MalformedPacketError,
    );
  });
});

Deno.test("encoders refuse values that do not fit", async (t) => {
  const base = nonRouterAdvertisement(MAC);
  const cases = [
    { name: "hop limit 256", ra: { ...base, curHopLimit: 256 }, error: /cur hop limit/ },
    { name: "lifetime 65536", ra: { ...base, routerLifetime: 65536 }, error: /router lifetime/ },
    { name: "negative reachable", ra: { ...base, reachableTime: -1 }, error: /reachable time/ },
    { name: "fractional retrans", ra: { ...base, retransTimer: 1.5 }, error: /retrans timer/ },
    {
      name: "option data not filling 8-byte units",
      ra: { ...base, options: [{ type: 1, data: new Uint8Array(5) }] },
      error: /multiple of 8/,
    },
    {
      name: "option longer than 255 units",
      ra: { ...base, options: [{ type: 1, data: new Uint8Array(2046) }] },
      error: /multiple of 8/,
    },
    {
      name: "option type 256",
      ra: { ...base, options: [{ type: 256, data: new Uint8Array(6) }] },
      error: /option type/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.throws(() => encodeRouterAdvertisement(c.ra), (e: unknown) => {
        assert.ok(e instanceof RangeError);
        assert.match(e.message, c.error);
        return true;
      });
    });
  }
  await t.step("a MAC that is not 6 bytes", () => {
    assert.throws(() => sourceLinkLayerOption(new Uint8Array(8)), RangeError);
  });
});

Deno.test("icmpv6Checksum", async (t) => {
  const src = ipv6ToBytes("fe80::1"), dst = ipv6ToBytes("ff02::1");
  await t.step("with its checksum filled in, all words sum to 0xffff (RFC 1071)", () => {
    const msg = encodeRouterAdvertisement(nonRouterAdvertisement(MAC));
    const sum = icmpv6Checksum(src, dst, msg);
    msg[2] = sum >> 8;
    msg[3] = sum & 0xff;
    assert.equal(icmpv6Checksum(src, dst, msg), sum, "own checksum field is skipped");
    // Summing every 16-bit word, the checksum included, gives 0xffff.
    let total = 0;
    for (const b of [src, dst]) {
      for (let i = 0; i < 16; i += 2) total += (b[i]! << 8) | b[i + 1]!;
    }
    total += msg.length + 58;
    for (let i = 0; i < msg.length; i += 2) total += (msg[i]! << 8) | (msg[i + 1] ?? 0);
    while (total > 0xffff) total = (total & 0xffff) + (total >>> 16);
    assert.equal(total, 0xffff);
  });
  await t.step("an odd length is padded with a zero byte", () => {
    const odd = hex("85 00 00 00 00 00 00 00 01");
    const even = hex("85 00 00 00 00 00 00 00 01 00");
    // Same words summed; only the length in the pseudo-header differs by one.
    assert.equal(
      (icmpv6Checksum(src, dst, even) + 1) & 0xffff,
      icmpv6Checksum(src, dst, odd) & 0xffff,
    );
  });
  await t.step("refuses addresses that are not 16 bytes", () => {
    assert.throws(() => icmpv6Checksum(new Uint8Array(4), dst, new Uint8Array(8)), RangeError);
  });
});
