import assert from "node:assert/strict";
import { DhcpOption, DhcpOptions, MessageType } from "./options.ts";
import { decodeDhcp, type DhcpPacket, replyTo } from "./packet.ts";
import {
  encodeReply,
  finishReply,
  isForeignServerReply,
  orderOptions,
  replyDestination,
  selectsOtherServer,
} from "./wire.ts";
import { testRequest } from "./_test_utils.ts";

const TESTDATA = new URL("./testdata/", import.meta.url);
const capture = (name: string) => decodeDhcp(Deno.readFileSync(new URL(`${name}.bin`, TESTDATA)));

Deno.test("replies go where RFC 2131 §4.1 says", async (t) => {
  const cases: [string, Partial<DhcpPacket>, number, string, number][] = [
    ["broadcast flag", { flags: 0x8000 }, MessageType.Offer, "255.255.255.255", 68],
    [
      "no flag, no ciaddr: broadcast, never ARP-less unicast",
      {},
      MessageType.Offer,
      "255.255.255.255",
      68,
    ],
    [
      "a client with an address: unicast to ciaddr",
      { ciaddr: "10.0.0.9" },
      MessageType.Ack,
      "10.0.0.9",
      68,
    ],
    [
      "a NAK is broadcast even to a client with an address",
      { ciaddr: "10.0.0.9" },
      MessageType.Nak,
      "255.255.255.255",
      68,
    ],
    [
      "relayed: to the relay on port 67",
      { giaddr: "10.1.0.1", hops: 1 },
      MessageType.Offer,
      "10.1.0.1",
      67,
    ],
  ];
  for (const [name, fields, type, address, port] of cases) {
    await t.step(name, () => {
      assert.deepEqual(replyDestination(testRequest(undefined, fields), type), { address, port });
    });
  }
  await t.step("a NAK through a relay asks it to broadcast", () => {
    const req = testRequest(undefined, { giaddr: "10.1.0.1" });
    const nak = replyTo(req, MessageType.Nak);
    assert.equal(finishReply(req, nak).packet.flags & 0x8000, 0x8000);
  });
});

Deno.test("reply options: 53 first, then the client's order, relay info last", () => {
  const o = new DhcpOptions().setMessageType(2).set(82, Uint8Array.of(1, 1, 9))
    .setIp(1, "255.0.0.0").setIp(54, "10.0.0.1").setIp(3, "10.0.0.254");
  assert.deepEqual(orderOptions(o, [82, 3, 1]).codes(), [53, 3, 1, 54, 82]);
});

Deno.test("a reply too big for the client's option 57 gives up options from the end", () => {
  const req = testRequest(new DhcpOptions().setU16(DhcpOption.MaxMessageSize, 576));
  const reply = replyTo(req, MessageType.Offer);
  reply.options.setIp(DhcpOption.ServerId, "10.0.0.1").setU32(DhcpOption.LeaseTime, 60);
  reply.options.setIps(
    DhcpOption.DNS,
    Array.from({ length: 200 }, (_, i) => `10.0.${i >> 8}.${i & 255}`),
  );
  const bytes = encodeReply(finishReply(req, reply));
  assert.ok(bytes.length <= 576 - 28);
  const got = decodeDhcp(bytes);
  for (const code of [53, 54, 51]) assert.ok(got.options.has(code), `${code} kept`);
  assert.equal(got.options.has(DhcpOption.DNS), false);
});

Deno.test("telling another DHCP server apart (auto mode)", async (t) => {
  const cases: [string, boolean, boolean][] = [
    // [our address, foreign OFFER seen?, foreign REQUEST seen?]
    ["10.77.0.5", true, true],
    ["10.77.0.1", false, false],
  ];
  for (const [ours, offer, request] of cases) {
    await t.step(`we are ${ours}`, () => {
      assert.equal(isForeignServerReply(capture("dnsmasq_offer_to_ovmf"), ours), offer);
      assert.equal(isForeignServerReply(capture("dnsmasq_ack_to_udhcpc"), ours), offer);
      assert.equal(selectsOtherServer(capture("udhcpc_request"), ours), request);
    });
  }
  await t.step("a ProxyDHCP answer (no yiaddr) is no conflict", () => {
    const proxied = replyTo(capture("ovmf_discover"), MessageType.Offer);
    proxied.options.setIp(DhcpOption.ServerId, "10.77.0.1");
    assert.equal(isForeignServerReply(proxied, "10.77.0.5"), false);
  });
  await t.step("client messages are not server replies", () => {
    assert.equal(isForeignServerReply(capture("ovmf_discover"), "10.77.0.5"), false);
    assert.equal(selectsOtherServer(capture("ovmf_discover"), "10.77.0.5"), false);
  });
});
