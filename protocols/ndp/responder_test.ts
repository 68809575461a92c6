import assert from "node:assert/strict";
import { memoryLogger } from "../../log.ts";
import {
  answerSolicitation,
  isRealRouterAdvertisement,
  RaRateLimit,
  startRaResponder,
} from "./responder.ts";
import {
  decodeRouterAdvertisement,
  encodeRouterAdvertisement,
  encodeRouterSolicitation,
  NDP_OPTION,
  nonRouterAdvertisement,
  sourceLinkLayerOption,
} from "./packet.ts";
import { ipv6ToBytes, ipv6ToString } from "../../net/ipv6.ts";

const OUR_MAC = Uint8Array.from([0x02, 0, 0, 0, 0, 0x01]);
const OUR_LL = ipv6ToBytes("fe80::ff:fe00:1");
const CLIENT_MAC = Uint8Array.from([0x52, 0x54, 0, 0xab, 0xcd, 0x01]);
const WITH_LLA = encodeRouterSolicitation({ options: [sourceLinkLayerOption(CLIENT_MAC)] });
const BARE = encodeRouterSolicitation({ options: [] });

Deno.test("answerSolicitation validates (RFC 4861 §6.1.1) and addresses the answer", async (t) => {
  const own = { mac: OUR_MAC, addresses: [OUR_LL] };
  const cases = [
    {
      name: "iPXE: link-local source with its MAC → unicast back",
      rs: { data: WITH_LLA, source: ipv6ToBytes("fe80::5054:ff:feab:cd01"), hopLimit: 255 },
      to: "fe80::5054:ff:feab:cd01",
      mac: "52:54:00:ab:cd:01",
    },
    {
      name: "no address yet (::) → all nodes",
      rs: { data: BARE, source: ipv6ToBytes("::"), hopLimit: 255 },
      to: "ff02::1",
      mac: null,
    },
    {
      name: "link-local source without a MAC option → unicast back",
      rs: { data: BARE, source: ipv6ToBytes("fe80::1234"), hopLimit: 255 },
      to: "fe80::1234",
      mac: null,
    },
    {
      name: "hop limit 64: came through a router",
      rs: { data: WITH_LLA, source: ipv6ToBytes("fe80::1234"), hopLimit: 64 },
      drop: /hop limit 64, not 255/,
    },
    {
      name: "hop limit unknown",
      rs: { data: WITH_LLA, source: ipv6ToBytes("fe80::1234"), hopLimit: null },
      drop: /hop limit unknown/,
    },
    {
      name: "malformed: zero-length option",
      rs: {
        data: Uint8Array.from([133, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
        source: ipv6ToBytes("fe80::1234"),
        hopLimit: 255,
      },
      drop: /option 1 has length 0/,
    },
    {
      name: "malformed: code 1",
      rs: {
        data: Uint8Array.from([133, 1, 0, 0, 0, 0, 0, 0]),
        source: ipv6ToBytes("fe80::1234"),
        hopLimit: 255,
      },
      drop: /code 1/,
    },
    {
      name: ":: with a MAC option",
      rs: { data: WITH_LLA, source: ipv6ToBytes("::"), hopLimit: 255 },
      drop: /source :: with a source link-layer address option/,
    },
    {
      name: "our own solicitation",
      rs: { data: WITH_LLA, source: OUR_LL, hopLimit: 255 },
      drop: /sent by this host/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const answer = answerSolicitation(c.rs, own);
      if (c.drop) {
        assert.ok("drop" in answer, "dropped");
        assert.match(answer.drop, c.drop);
        return;
      }
      assert.ok(!("drop" in answer), JSON.stringify(answer));
      assert.equal(ipv6ToString(answer.to), c.to);
      assert.equal(answer.solicitorMac, c.mac);
      const ra = decodeRouterAdvertisement(answer.advertisement);
      assert.equal(ra.routerLifetime, 0);
      assert.equal(ra.managed || ra.other, false);
      assert.deepEqual(ra.options.map((o) => o.type), [1]);
      assert.deepEqual(ra.options[0]!.data, OUR_MAC);
    });
  }
});

Deno.test("answerSolicitation without a known MAC sends the advertisement without the option", () => {
  const answer = answerSolicitation(
    { data: WITH_LLA, source: ipv6ToBytes("fe80::5054:ff:feab:cd01"), hopLimit: 255 },
    { mac: null, addresses: [] },
  );
  assert.ok(!("drop" in answer));
  const ra = decodeRouterAdvertisement(answer.advertisement);
  assert.deepEqual(ra.options, []);
  assert.equal(ra.routerLifetime, 0);
});

Deno.test("isRealRouterAdvertisement: routers that offer something, seen on this link", async (t) => {
  const router = ipv6ToBytes("fe80::1");
  const ra = (changes: Partial<ReturnType<typeof nonRouterAdvertisement>>) =>
    encodeRouterAdvertisement({ ...nonRouterAdvertisement(CLIENT_MAC), ...changes });
  const prefix = { type: NDP_OPTION.PREFIX_INFORMATION, data: new Uint8Array(30) };
  const cases = [
    { name: "default router", data: ra({ routerLifetime: 1800 }), real: true },
    { name: "DHCPv6 (M)", data: ra({ managed: true }), real: true },
    { name: "DHCPv6 (O)", data: ra({ other: true }), real: true },
    { name: "a prefix, lifetime 0", data: ra({ options: [prefix] }), real: true },
    { name: "nothing offered (like ours)", data: ra({}), real: false },
    { name: "hop limit 254", data: ra({ routerLifetime: 1800 }), hop: 254, real: false },
    {
      name: "not from a link-local address",
      data: ra({ routerLifetime: 1800 }),
      source: ipv6ToBytes("2001:db8::1"),
      real: false,
    },
    { name: "from ourselves", data: ra({ routerLifetime: 1800 }), source: OUR_LL, real: false },
    { name: "truncated", data: ra({ routerLifetime: 1800 }).subarray(0, 12), real: false },
    { name: "a solicitation", data: WITH_LLA, real: false },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const m = { data: c.data, source: c.source ?? router, hopLimit: c.hop ?? 255 };
      assert.equal(isRealRouterAdvertisement(m, [OUR_LL]), c.real);
    });
  }
});

Deno.test("RaRateLimit: one answer per solicitor per second, 20 a second overall", async (t) => {
  await t.step("the same solicitor within a second is refused, after it allowed", () => {
    const limit = new RaRateLimit();
    const at = [0, 10, 999, 1000, 1500, 2000];
    assert.deepEqual(at.map((ms) => limit.allow("fe80::1", ms)), [
      true,
      false,
      false,
      true,
      false,
      true,
    ]);
  });
  await t.step("different solicitors do not hold each other up", () => {
    const limit = new RaRateLimit();
    assert.deepEqual(["a", "b", "c", "a"].map((k) => limit.allow(k, 5)), [
      true,
      true,
      true,
      false,
    ]);
  });
  await t.step("a flood of 100 spoofed sources in one second gets 20 answers", () => {
    const limit = new RaRateLimit();
    let allowed = 0;
    for (let i = 0; i < 100; i++) if (limit.allow(`fe80::${i.toString(16)}`, i * 5)) allowed++;
    assert.equal(allowed, 20);
    // A second later the window has moved on.
    assert.equal(limit.allow("fe80::ffff", 1000 + 100 * 5), true);
  });
  await t.step("the overall limit is a sliding second", () => {
    const limit = new RaRateLimit({ perSecond: 2 });
    const got = [0, 100, 200, 999, 1000, 1050, 1100].map((ms, i) => limit.allow(`k${i}`, ms));
    assert.deepEqual(got, [true, true, false, false, true, false, true]);
  });
  await t.step("the per-solicitor map stays bounded under spoofing", () => {
    const limit = new RaRateLimit({ perSecond: 1e9 });
    let most = 0;
    for (let i = 0; i < 20_000; i++) {
      limit.allow(`s${i}`, i * 2);
      most = Math.max(most, limit.tracked);
    }
    assert.ok(most <= 4096, `remembered ${most}`);
    // Entries older than a second were swept; the newest source is still limited.
    assert.equal(limit.allow("s19999", 20_000 * 2), false);
    assert.equal(limit.allow("s0", 20_000 * 2), true);
  });
});

Deno.test("startRaResponder on a missing interface logs one info line and does nothing", async () => {
  // Only a lookup: nothing is opened, so this is safe in the host namespace.
  const log = memoryLogger();
  const ra = await startRaResponder({ interface: "abrnope0", logger: log });
  assert.equal(ra.answering, false);
  await ra.close();
  assert.equal(log.lines.length, 1);
  assert.equal(log.lines[0]!.level, "info");
  assert.match(log.lines[0]!.message, /iPXE will wait ~15 s/);
  assert.match(String(log.lines[0]!.fields.reason), /"abrnope0" does not exist/);
});
