import assert from "node:assert/strict";
import { MalformedPacketError } from "../../net/bytes.ts";
import { hex, mutate, prng } from "../../tests/fuzz_mutator.ts";
import { DNS_MUTATION } from "../../tests/fuzz_mutator.ts";
import {
  decodeDns,
  decodeDnsHead,
  type DnsMessage,
  DnsType,
  encodeDns,
  Rcode,
  typeName,
} from "./message.ts";
import { dnsCaptures } from "./_test_utils.ts";

const captures = dnsCaptures();
const get = (name: string) => captures.get(name)!;

Deno.test("dig's queries decode as dig sent them", async (t) => {
  const cases: { file: string; name: string; type: number; edns: boolean }[] = [
    { file: "a_query", name: "web-1.erf", type: DnsType.A, edns: true },
    { file: "ptr_query", name: "50.0.76.10.in-addr.arpa", type: DnsType.PTR, edns: true },
    { file: "tcp_query", name: "web-1.erf", type: DnsType.A, edns: true },
    { file: "multi_query", name: "multi.erf", type: DnsType.A, edns: true },
    { file: "noedns_aaaa_query", name: "web-1.erf", type: DnsType.AAAA, edns: false },
    { file: "nxdomain_query", name: "nothing.erf", type: DnsType.A, edns: true },
    { file: "mx_query", name: "mail.erf", type: DnsType.MX, edns: true },
  ];
  for (const c of cases) {
    await t.step(c.file, () => {
      const m = decodeDns(get(c.file));
      assert.equal(m.flags.qr, false);
      assert.equal(m.flags.rd, true);
      assert.equal(m.flags.ad, true);
      assert.equal(m.opcode, 0);
      assert.deepEqual(m.questions, [{ name: c.name, type: c.type, class: 1 }]);
      assert.equal(m.answers.length + m.authority.length, 0);
      if (c.edns) {
        const [opt] = m.additional;
        assert.equal(opt?.type, DnsType.OPT);
        assert.equal(opt?.name, "");
        assert.equal(opt?.class, 1232);
        // dig's client cookie: option 10, 8 bytes.
        assert.equal(opt?.data.kind, "raw");
        assert.deepEqual([...(opt!.data as { bytes: Uint8Array }).bytes.subarray(0, 4)], [
          0,
          10,
          0,
          8,
        ]);
      } else {
        assert.deepEqual(m.additional, []);
      }
      // Queries carry no repeated names: encoding gives dig's bytes back.
      assert.equal(hex(encodeDns(m)), hex(get(c.file)));
    });
  }
});

Deno.test("dnsmasq's answers decode, compressed names included", async (t) => {
  const cases: { file: string; check: (m: DnsMessage) => void; sameBytes: boolean }[] = [
    {
      file: "a_answer",
      sameBytes: true,
      check: (m) => {
        assert.equal(m.flags.aa, true);
        assert.deepEqual(m.answers, [{
          name: "web-1.erf",
          type: DnsType.A,
          class: 1,
          ttl: 0,
          data: { kind: "a", address: "10.76.0.50" },
        }]);
      },
    },
    {
      file: "multi_answer",
      sameBytes: true,
      check: (m) =>
        assert.deepEqual(m.answers.map((a) => [a.name, a.data]), [
          ["multi.erf", { kind: "a", address: "10.76.0.60" }],
          ["multi.erf", { kind: "a", address: "10.76.0.61" }],
        ]),
    },
    {
      file: "ptr_answer",
      sameBytes: true,
      check: (m) =>
        assert.deepEqual(m.answers.map((a) => [a.name, a.type, a.data]), [
          ["50.0.76.10.in-addr.arpa", DnsType.PTR, { kind: "name", name: "web-1.erf" }],
        ]),
    },
    {
      file: "tcp_answer",
      sameBytes: true,
      check: (m) => assert.equal(m.answers.length, 1),
    },
    {
      file: "noedns_aaaa_answer",
      sameBytes: true,
      check: (m) => {
        assert.equal(m.rcode, Rcode.NoError);
        assert.deepEqual([m.answers, m.additional], [[], []]);
      },
    },
    {
      file: "nxdomain_answer",
      sameBytes: true,
      check: (m) => assert.equal(m.rcode, Rcode.NXDomain),
    },
    {
      // dnsmasq writes the MX target in full and points the additional A at it; MX data stays
      // raw here, so the additional owner is written in full on the way back.
      file: "mx_answer",
      sameBytes: false,
      check: (m) => {
        assert.equal(m.answers[0]?.type, DnsType.MX);
        assert.deepEqual(m.additional[0]?.name, "web-1.erf");
        assert.deepEqual(m.additional[0]?.data, { kind: "a", address: "10.76.0.50" });
      },
    },
  ];
  for (const c of cases) {
    await t.step(c.file, () => {
      const m = decodeDns(get(c.file));
      assert.equal(m.flags.qr, true);
      assert.equal(m.id, decodeDns(get(c.file.replace("_answer", "_query"))).id);
      c.check(m);
      const again = encodeDns(m);
      assert.deepEqual(decodeDns(again), m);
      if (c.sameBytes) assert.equal(hex(again), hex(get(c.file)));
    });
  }
});

Deno.test("SOA, NS, CNAME and AAAA records round-trip", () => {
  const m: DnsMessage = {
    id: 7,
    opcode: 0,
    rcode: Rcode.NXDomain,
    flags: { qr: true, aa: true, tc: false, rd: true, ra: true, ad: false, cd: true },
    questions: [{ name: "x.erf", type: DnsType.A, class: 1 }],
    answers: [
      { name: "erf", type: DnsType.NS, class: 1, ttl: 60, data: { kind: "name", name: "ns.erf" } },
      {
        name: "c.erf",
        type: DnsType.CNAME,
        class: 1,
        ttl: 60,
        data: { kind: "name", name: "x.erf" },
      },
      {
        name: "x.erf",
        type: DnsType.AAAA,
        class: 1,
        ttl: 60,
        data: { kind: "aaaa", address: Uint8Array.from({ length: 16 }, (_, i) => i) },
      },
    ],
    authority: [{
      name: "erf",
      type: DnsType.SOA,
      class: 1,
      ttl: 300,
      data: {
        kind: "soa",
        mname: "ns.erf",
        rname: "admin.erf",
        serial: 2024010101,
        refresh: 7200,
        retry: 900,
        expire: 1209600,
        minimum: 300,
      },
    }],
    additional: [],
  };
  const bytes = encodeDns(m);
  assert.deepEqual(decodeDns(bytes), m);
  // Every "erf" after the first is a pointer.
  assert.equal(new TextDecoder().decode(bytes).split("erf").length - 1, 1);
});

Deno.test("decodeDnsHead reads the header and the first question only", () => {
  const head = decodeDnsHead(get("mx_answer"));
  assert.equal(head.flags.qr, true);
  assert.deepEqual(head.question, { name: "mail.erf", type: DnsType.MX, class: 1 });
  const header = get("a_query").slice(0, 12);
  header[5] = 0;
  assert.equal(decodeDnsHead(header).question, undefined);
});

/** A query for web-1.erf A with the bytes after the header given. */
function query(counts: number[], body: number[]): Uint8Array {
  return Uint8Array.from([
    0x12,
    0x34,
    0x01,
    0x00,
    ...counts.flatMap((n) => [n >> 8, n & 255]),
    ...body,
  ]);
}
const QNAME = [5, 0x77, 0x65, 0x62, 0x2d, 0x31, 3, 0x65, 0x72, 0x66, 0];

/** A response to web-1.erf A with one record of `type` and `data` (its length said as `length`). */
function answerWith(type: number, data: number[], length = data.length): Uint8Array {
  const record = [0xc0, 12, type >> 8, type & 255, 0, 1, 0, 0, 0, 0, length >> 8, length & 255];
  return query([1, 1, 0, 0], [...QNAME, 0, 1, 0, 1, ...record, ...data]);
}

Deno.test("malformed messages fail with MalformedPacketError naming the problem", async (t) => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["an empty datagram", new Uint8Array(0), /id needs 2 bytes/],
    ["11 bytes of header", get("a_query").subarray(0, 11), /arcount needs 2 bytes/],
    ["more questions than sent", query([2, 0, 0, 0], [...QNAME, 0, 1, 0, 1]), /past the end/],
    ["a question without its class", query([1, 0, 0, 0], [...QNAME, 0, 1]), /question class/],
    ["a truncated record", get("a_answer").subarray(0, 40), /record data needs 4 bytes/],
    ["an A record of 5 bytes", answerWith(DnsType.A, [1, 2, 3, 4, 5]), /A record of 5 bytes/],
    ["an AAAA record of 4 bytes", answerWith(DnsType.AAAA, [1, 2, 3, 4]), /AAAA record of 4/],
    ["a PTR running past its data", answerWith(DnsType.PTR, [1, 0x61, 0], 2), /past its record/],
    ["a PTR with bytes after its name", answerWith(DnsType.PTR, [0xc0, 12, 9]), /1 bytes left/],
    ["an SOA cut short", answerWith(DnsType.SOA, [0xc0, 12, 0xc0, 12, 0, 0]), /SOA numbers cut/],
    [
      "a question name pointing at itself",
      query([1, 0, 0, 0], [0xc0, 12, 0, 1, 0, 1]),
      /backwards/,
    ],
  ];
  for (const [name, bytes, error] of cases) {
    await t.step(name, () => {
      assert.throws(() => decodeDns(bytes), (e: unknown) => {
        assert.ok(e instanceof MalformedPacketError, `not malformed: ${e}`);
        assert.match(e.message, error);
        return true;
      });
    });
  }
  await t.step("bytes after the counted sections are ignored", () => {
    const bytes = new Uint8Array([...get("noedns_aaaa_query"), 1, 2, 3]);
    assert.deepEqual(decodeDns(bytes), decodeDns(get("noedns_aaaa_query")));
  });
});

Deno.test("20 000 mutations of the captures decode or fail with MalformedPacketError only", () => {
  const seeds = [...captures.values()];
  const rnd = prng(11);
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    const bytes = mutate(seeds[i % seeds.length]!, rnd, DNS_MUTATION);
    try {
      const m = decodeDns(bytes);
      decoded++;
      // What decodes encodes (labels and all) and decodes to the same again.
      assert.deepEqual(decodeDns(encodeDns(m)), m, hex(bytes));
    } catch (e) {
      if (!(e instanceof MalformedPacketError)) throw new Error(`${hex(bytes)}: ${e}`);
    }
  }
  assert.ok(decoded > 2000 && decoded < 18_000, `decoded ${decoded}`);
});

Deno.test("typeName", () => {
  assert.equal(typeName(1), "A");
  assert.equal(typeName(12), "PTR");
  assert.equal(typeName(65), "TYPE65");
});
