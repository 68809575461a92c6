import assert from "node:assert/strict";
import { MalformedPacketError } from "../../net/bytes.ts";
import {
  decodeSubOptions,
  DhcpOption,
  DhcpOptions,
  encodeSubOptions,
  MessageType,
  messageTypeName,
  optionChunks,
  optionName,
} from "./options.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);
const text = (s: string) => new TextEncoder().encode(s);

Deno.test("DhcpOptions keeps insertion order; re-setting keeps the position", () => {
  const o = new DhcpOptions().setMessageType(1).setString(60, "a").setU16(57, 1472);
  o.setString(60, "b");
  assert.deepEqual(o.codes(), [53, 60, 57]);
  assert.equal(o.vendorClass(), "b");
  assert.equal(o.delete(60), true);
  assert.equal(o.delete(60), false);
  assert.deepEqual(o.codes(), [53, 57]);
  assert.equal(o.size, 2);
  const c = o.clone().setU8(1, 0);
  assert.deepEqual(o.codes(), [53, 57]);
  assert.deepEqual(c.codes(), [53, 57, 1]);
});

Deno.test("DhcpOptions refuses Pad, End and codes outside a byte", async (t) => {
  for (const code of [0, 255, 256, -1, 1.5, NaN]) {
    await t.step(String(code), () => {
      assert.throws(() => new DhcpOptions().set(code, bytes(1)), RangeError);
    });
  }
});

Deno.test("typed setters check their range", async (t) => {
  const cases: [string, () => unknown][] = [
    ["setU8 256", () => new DhcpOptions().setU8(1, 256)],
    ["setU16 -1", () => new DhcpOptions().setU16(57, -1)],
    ["setU32 2^32", () => new DhcpOptions().setU32(51, 2 ** 32)],
    ["setU32 1.5", () => new DhcpOptions().setU32(51, 1.5)],
    ["setIp bad", () => new DhcpOptions().setIp(54, "10.0.0.256")],
    ["setIps bad", () => new DhcpOptions().setIps(6, ["1.1.1.1", "x"])],
  ];
  for (const [name, f] of cases) await t.step(name, () => assert.throws(f, RangeError));
});

Deno.test("typed accessors read well-formed values", async (t) => {
  const o = new DhcpOptions()
    .setMessageType(MessageType.Request)
    .setIp(DhcpOption.ServerId, "10.77.0.1")
    .setIps(DhcpOption.DNS, ["1.1.1.1", "9.9.9.9"])
    .setU32(DhcpOption.LeaseTime, 0xfffffffe)
    .setU16(DhcpOption.MaxMessageSize, 65280)
    .setString(DhcpOption.Hostname, "pc-1")
    .set(DhcpOption.ParamRequestList, bytes(1, 3, 6, 67))
    .set(DhcpOption.ClientArch, bytes(0, 7, 0, 9))
    .set(DhcpOption.ClientId, bytes(1, 2, 3))
    .set(DhcpOption.ClientUuid, bytes(0, ...Array(16).fill(0xaa)));
  const cases: [string, unknown, unknown][] = [
    ["messageType", o.messageType(), 3],
    ["ip", o.ip(54), "10.77.0.1"],
    ["ips", o.ips(6), ["1.1.1.1", "9.9.9.9"]],
    ["u32", o.u32(51), 0xfffffffe],
    ["u16", o.u16(57), 65280],
    ["u8", o.u8(53), 3],
    ["string", o.string(12), "pc-1"],
    ["paramRequestList", o.paramRequestList(), [1, 3, 6, 67]],
    ["clientArch", o.clientArch(), [7, 9]],
    ["clientId", o.clientId(), bytes(1, 2, 3)],
    ["uuid", o.uuid(), new Uint8Array(16).fill(0xaa)],
  ];
  for (const [name, got, want] of cases) await t.step(name, () => assert.deepEqual(got, want));
});

Deno.test("typed accessors return undefined or empty for absent or misshapen values", async (t) => {
  const o = new DhcpOptions()
    .set(DhcpOption.MessageType, bytes(1, 2))
    .set(DhcpOption.ServerId, bytes(10, 0, 0))
    .set(DhcpOption.DNS, bytes(1, 1, 1, 1, 2))
    .set(DhcpOption.LeaseTime, bytes(0, 1))
    .set(DhcpOption.MaxMessageSize, bytes(5))
    .set(DhcpOption.ClientArch, bytes(0, 7, 0))
    .set(DhcpOption.ClientUuid, bytes(1, ...Array(16).fill(0)))
    .set(DhcpOption.IpxeEncap, bytes(19, 5, 1));
  const cases: [string, unknown, unknown][] = [
    ["messageType of 2 bytes", o.messageType(), undefined],
    ["ip of 3 bytes", o.ip(54), undefined],
    ["ips of 5 bytes", o.ips(6), []],
    ["u32 of 2 bytes", o.u32(51), undefined],
    ["u16 of 1 byte", o.u16(57), undefined],
    ["clientArch odd", o.clientArch(), []],
    ["uuid of type 1", o.uuid(), undefined],
    ["ipxeEncap overflowing", o.ipxeEncap(), new Map()],
    ["absent string", o.string(12), undefined],
    ["absent list", o.paramRequestList(), []],
    ["absent user class", o.userClasses(), []],
    ["absent vendor class", o.vendorClass(), undefined],
    ["absent ipxeEncap", new DhcpOptions().ipxeEncap(), new Map()],
  ];
  for (const [name, got, want] of cases) await t.step(name, () => assert.deepEqual(got, want));
});

Deno.test("string() drops trailing NULs some clients add", () => {
  const o = new DhcpOptions().set(12, bytes(...text("pc"), 0, 0));
  assert.equal(o.string(12), "pc");
});

Deno.test("userClasses reads iPXE's raw form and RFC 3004 framing", async (t) => {
  const cases: [string, Uint8Array, string[]][] = [
    ["iPXE raw, as iPXE sends it", text("iPXE"), ["iPXE"]],
    ["RFC 3004 one class", bytes(4, ...text("iPXE")), ["iPXE"]],
    ["RFC 3004 two classes", bytes(4, ...text("iPXE"), 3, ...text("lab")), ["iPXE", "lab"]],
    ["a zero length is not RFC 3004", bytes(0, 65), ["\0A"]],
    ["a length past the end is not RFC 3004", bytes(9, 65), ["\tA"]],
    ["empty", new Uint8Array(0), []],
  ];
  for (const [name, value, want] of cases) {
    await t.step(name, () => {
      assert.deepEqual(new DhcpOptions().set(77, value).userClasses(), want);
    });
  }
});

Deno.test("sub-options: encode/decode round trip, Pad, End and RFC 3396 joining", async (t) => {
  await t.step("round trip", () => {
    const subs = new Map([[19, bytes(1)], [177, bytes(1, 0x1a, 0xf4, 0x10, 0)], [
      235,
      bytes(1, 0, 0),
    ]]);
    assert.deepEqual(decodeSubOptions(encodeSubOptions(subs)), subs);
  });
  await t.step("End terminates, Pad is skipped", () => {
    assert.deepEqual(encodeSubOptions([[6, bytes(8)]], true), bytes(6, 1, 8, 255));
    assert.deepEqual(decodeSubOptions(bytes(0, 6, 1, 8, 255, 7, 99)), new Map([[6, bytes(8)]]));
  });
  await t.step("repeated codes are joined", () => {
    assert.deepEqual(decodeSubOptions(bytes(9, 1, 1, 9, 2, 2, 3)), new Map([[9, bytes(1, 2, 3)]]));
  });
  await t.step("an overflow throws MalformedPacketError at base + offset", () => {
    assert.throws(() => decodeSubOptions(bytes(19, 1, 1, 21, 9), 100), (e) => {
      assert.ok(e instanceof MalformedPacketError);
      assert.equal(e.offset, 103);
      return true;
    });
  });
  await t.step("encode refuses values over 255 bytes and bad codes", () => {
    assert.throws(() => encodeSubOptions([[1, new Uint8Array(256)]]), RangeError);
    assert.throws(() => encodeSubOptions([[0, bytes()]]), RangeError);
  });
});

Deno.test("optionChunks splits at 255 bytes and skips the given codes", () => {
  const o = new DhcpOptions().setMessageType(1).set(43, new Uint8Array(256).fill(7)).setU8(52, 1);
  const chunks = optionChunks(o, new Set([52]));
  assert.deepEqual(chunks.map((c) => [c[0], c[1], c.length]), [[53, 1, 3], [43, 255, 257], [
    43,
    1,
    3,
  ]]);
});

Deno.test("names for codes and message types", () => {
  assert.equal(optionName(93), "ClientArch");
  assert.equal(optionName(250), "Option250");
  assert.equal(messageTypeName(MessageType.Inform), "INFORM");
  assert.equal(messageTypeName(13), "TYPE13");
});
