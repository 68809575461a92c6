import assert from "node:assert/strict";
import { MalformedPacketError } from "../../net/bytes.ts";
import { decodeDns, decodeDnsHead, type DnsMessage, DnsType, encodeDns, Rcode } from "./message.ts";
import {
  ednsOf,
  fitAnswer,
  formatError,
  MAX_UDP,
  optRecord,
  randomId,
  relayed,
  responseTo,
  udpLimit,
  withId,
} from "./wire.ts";
import { dnsCaptures } from "./_test_utils.ts";

const captures = dnsCaptures();
const query = (name: string) => decodeDns(captures.get(`${name}_query`)!);

Deno.test("ednsOf and udpLimit: the UDP answer size a query may get", async (t) => {
  const cases: { name: string; message: () => DnsMessage; edns: unknown; limit: number }[] = [
    {
      name: "dig: EDNS 0, 1232 bytes",
      message: () => query("a"),
      edns: { udpSize: 1232, version: 0, dnssecOk: false },
      limit: 1232,
    },
    { name: "+noedns: 512", message: () => query("noedns_aaaa"), edns: null, limit: 512 },
    {
      name: "4096 offered: no more than 1232 sent",
      message: () => withOpt(4096, 0),
      edns: { udpSize: 4096, version: 0, dnssecOk: false },
      limit: MAX_UDP,
    },
    {
      name: "below 512 counts as 512, DO and version read",
      message: () => withOpt(100, (1 << 16) | 0x8000),
      edns: { udpSize: 100, version: 1, dnssecOk: true },
      limit: 512,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const edns = ednsOf(c.message());
      assert.deepEqual(edns, c.edns);
      assert.equal(udpLimit(edns), c.limit);
    });
  }
  await t.step("two OPTs, or one not at the root: malformed (FORMERR)", () => {
    const two = query("a");
    two.additional.push(optRecord());
    assert.throws(() => ednsOf(two), MalformedPacketError);
    const named = query("a");
    named.additional[0]!.name = "erf";
    assert.throws(() => ednsOf(named), MalformedPacketError);
  });
});

function withOpt(udpSize: number, ttl: number): DnsMessage {
  const m = query("a");
  m.additional = [{ ...optRecord(), class: udpSize, ttl }];
  return m;
}

Deno.test("responseTo: ID, opcode, RD, CD and the question of the query; OPT when it had one", () => {
  const q = query("a");
  const r = responseTo(q, Rcode.Refused, ednsOf(q));
  assert.equal(r.id, q.id);
  assert.deepEqual(r.flags, {
    qr: true,
    aa: false,
    tc: false,
    rd: true,
    ra: false,
    ad: false,
    cd: false,
  });
  assert.equal(r.rcode, Rcode.Refused);
  assert.deepEqual(r.questions, q.questions);
  assert.deepEqual(r.additional.map((a) => [a.type, a.class, a.ttl]), [[DnsType.OPT, MAX_UDP, 0]]);
  const badvers = responseTo(q, Rcode.BadVers, ednsOf(q));
  assert.equal(badvers.rcode, 0);
  // The upper eight bits of BADVERS (16) are 1, in the OPT's TTL.
  assert.equal(badvers.additional[0]!.ttl >>> 24, 1);
  assert.deepEqual(responseTo(query("noedns_aaaa"), Rcode.NoError, null).additional, []);
});

Deno.test("fitAnswer: an answer longer than the limit becomes its header and question, TC set", async (t) => {
  const answer = captures.get("multi_answer")!;
  await t.step("fits: the same bytes", () => {
    assert.equal(fitAnswer(answer, answer.length), answer);
  });
  await t.step("one byte too long: truncated", () => {
    const cut = fitAnswer(answer, answer.length - 1);
    const m = decodeDns(cut);
    assert.equal(m.flags.tc, true);
    assert.equal(m.flags.aa, true);
    assert.equal(m.id, decodeDnsHead(answer).id);
    assert.deepEqual(m.questions, [{ name: "multi.erf", type: DnsType.A, class: 1 }]);
    assert.deepEqual([m.answers, m.authority], [[], []]);
    // The capture's answer had EDNS: its OPT stays (RFC 6891 §7), nothing else.
    const opt = decodeDns(answer).additional.filter((r) => r.type === DnsType.OPT);
    assert.equal(opt.length, 1);
    assert.deepEqual(m.additional, opt);
  });
  await t.step("an answer with EDNS keeps its OPT when truncated", () => {
    const q = query("a"); // dig: EDNS 0
    const r = responseTo(q, Rcode.NoError, ednsOf(q));
    r.answers = Array.from({ length: 100 }, (_, i) => ({
      name: "big.erf",
      type: DnsType.A,
      class: 1,
      ttl: 60,
      data: { kind: "a" as const, address: `10.0.0.${i}` },
    }));
    const cut = decodeDns(fitAnswer(encodeDns(r), 512));
    assert.equal(cut.flags.tc, true);
    assert.deepEqual(cut.answers, []);
    assert.deepEqual(cut.additional.map((a) => [a.type, a.class]), [[DnsType.OPT, MAX_UDP]]);
  });
});

Deno.test("formatError: FORMERR to a query that does not decode; nothing to a response or a stub", async (t) => {
  const cases: [string, Uint8Array, string | null][] = [
    [
      "a query with its header",
      Uint8Array.of(0xab, 0xcd, 0x79, 0xff, 9, 9, 9, 9, 9, 9, 9, 9, 7),
      "abcdf9010000000000000000",
    ],
    ["a response", Uint8Array.of(0xab, 0xcd, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0), null],
    ["11 bytes", new Uint8Array(11), null],
  ];
  for (const [name, bytes, want] of cases) {
    await t.step(name, () => {
      const got = formatError(bytes);
      assert.equal(got && Array.from(got, (b) => b.toString(16).padStart(2, "0")).join(""), want);
    });
  }
});

Deno.test("withId copies with another ID; relayed clears AA too; randomId gives 16 bits", () => {
  const q = captures.get("a_query")!;
  const other = withId(q, 0xbeef);
  assert.deepEqual([other[0], other[1]], [0xbe, 0xef]);
  assert.deepEqual(other.subarray(2), q.subarray(2));
  assert.notEqual(other, q);
  const ids = new Set(Array.from({ length: 200 }, randomId));
  assert.ok(ids.size > 190 && [...ids].every((i) => i >= 0 && i < 65536));
  assert.equal(encodeDns(decodeDns(other)).length, q.length);
  const answer = captures.get("a_answer")!;
  const relay = decodeDns(relayed(answer, 7));
  assert.deepEqual([relay.id, relay.flags.aa, relay.flags.ra], [7, false, true]);
  assert.deepEqual(relay.answers, decodeDns(answer).answers);
});
