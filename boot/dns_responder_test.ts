import assert from "node:assert/strict";
import { Subnet } from "../net/ipv4.ts";
import { silentLogger } from "../log.ts";
import type { ForwardResult } from "../protocols/dns/forwarder.ts";
import {
  decodeDns,
  DnsClass,
  type DnsMessage,
  DnsType,
  encodeDns,
  Rcode,
} from "../protocols/dns/message.ts";
import type { DnsRequest } from "../protocols/dns/server.ts";
import { optRecord } from "../protocols/dns/wire.ts";
import { dnsQueries, queryFor } from "../protocols/dns/_test_utils.ts";
import {
  answerDns,
  createDnsHandler,
  type DnsForward,
  type DnsPolicyOptions,
  type DnsQueryEvent,
} from "./dns_responder.ts";
import { dnsLink, SUBNET } from "./_dns_test_utils.ts";

const INSIDE = "10.76.0.123";
const OUTSIDE = "192.0.2.7";
const UPSTREAM = { address: "10.99.0.53", port: 53 };

/** A forwarder that answers with what `result` says and records what it was asked. */
function fakeForward(result: "answer" | "failed" | "busy") {
  const calls: { question: string; client: string; tcp: boolean }[] = [];
  const forward: DnsForward = (bytes, question, o) => {
    calls.push({ question: question.name, ...o });
    const r: ForwardResult = result === "answer"
      ? {
        kind: "answer",
        bytes: Uint8Array.of(...bytes.subarray(0, 2), 0x81, 0x80),
        upstream: UPSTREAM,
        transport: "udp",
      }
      : { kind: result, reason: `upstream ${result}` };
    return Promise.resolve(r);
  };
  return { forward, calls };
}

function request(message: DnsMessage, from = INSIDE, transport: "udp" | "tcp" = "udp"): DnsRequest {
  return { message, bytes: encodeDns(message), from: { address: from, port: 5353 }, transport };
}

/** What a reply says, in short: rcode, AA/RA/TC, sections; or "relayed" for forwarded bytes. */
function summary(reply: Uint8Array | DnsMessage | null): string {
  if (reply === null) return "none";
  if (reply instanceof Uint8Array) return "relayed";
  const f = reply.flags;
  const flags = [f.aa && "aa", f.ra && "ra", f.rd && "rd"].filter(Boolean).join(" ");
  const rcode = Object.entries(Rcode).find(([, v]) => v === reply.rcode)?.[0] ??
    String(reply.rcode);
  const opt = reply.additional.find((a) => a.type === DnsType.OPT);
  return `${rcode} [${flags}] an=${reply.answers.length} ns=${reply.authority.length}` +
    (opt ? ` opt(ext ${opt.ttl >>> 24})` : "");
}

Deno.test("answerDns: local names with authority, the rest forwarded for the subnet only", async (t) => {
  const link = dnsLink();
  const withEdns = (name: string, type: number) => queryFor(name, type, { edns: true });
  const twoOpts = withEdns("web-1.erf", DnsType.A);
  twoOpts.additional.push(optRecord());
  const version1 = withEdns("web-1.erf", DnsType.A);
  version1.additional[0]!.ttl = 1 << 16;
  const status = queryFor("web-1.erf", DnsType.A);
  status.opcode = 2;
  const none = queryFor("web-1.erf", DnsType.A);
  none.questions = [];
  const two = queryFor("web-1.erf", DnsType.A);
  two.questions.push(two.questions[0]!);
  const chaos = queryFor("version.bind", DnsType.TXT);
  chaos.questions[0]!.class = DnsClass.CH;
  const cases: {
    name: string;
    message: DnsMessage;
    from?: string;
    transport?: "udp" | "tcp";
    forward?: "answer" | "failed" | "busy" | "none";
    want: string;
    event: Partial<DnsQueryEvent>;
    forwarded?: boolean;
  }[] = [
    {
      name: "a reserved machine, from the subnet",
      message: queryFor("web-1.erf", DnsType.A),
      want: "NoError [aa ra rd] an=1 ns=0",
      event: { result: "answer", name: "web-1.erf", type: "A", client: INSIDE },
    },
    {
      name: "a local name from outside: answered, no recursion offered",
      message: queryFor("web-1.erf", DnsType.A),
      from: OUTSIDE,
      want: "NoError [aa rd] an=1 ns=0",
      event: { result: "answer" },
    },
    {
      name: "a lease's name, with EDNS: OPT back",
      message: withEdns("laptop.erf", DnsType.A),
      want: "NoError [aa ra rd] an=1 ns=0 opt(ext 0)",
      event: { result: "answer" },
    },
    {
      name: "an unknown name of the domain: NXDOMAIN with the SOA",
      message: queryFor("nothing.erf", DnsType.A),
      want: "NXDomain [aa ra rd] an=0 ns=1",
      event: { result: "nxdomain" },
    },
    {
      name: "AAAA of a known name: NODATA with the SOA",
      message: queryFor("web-1.erf", DnsType.AAAA),
      want: "NoError [aa ra rd] an=0 ns=1",
      event: { result: "nodata", type: "AAAA" },
    },
    {
      name: "PTR of a lease",
      message: queryFor("101.0.76.10.in-addr.arpa", DnsType.PTR),
      want: "NoError [aa ra rd] an=1 ns=0",
      event: { result: "answer", type: "PTR" },
    },
    {
      name: "another name, from the subnet: forwarded",
      message: queryFor("www.example.com", DnsType.A),
      forwarded: true,
      want: "relayed",
      event: { result: "forwarded", upstream: "10.99.0.53" },
    },
    {
      name: "a reverse name outside the subnet: forwarded",
      message: queryFor("8.8.8.8.in-addr.arpa", DnsType.PTR),
      forwarded: true,
      want: "relayed",
      event: { result: "forwarded" },
    },
    {
      name: "another name over TCP: forwarded over TCP",
      message: queryFor("www.example.com", DnsType.A),
      transport: "tcp",
      forwarded: true,
      want: "relayed",
      event: { result: "forwarded", transport: "tcp" },
    },
    {
      name: "another name from outside the subnet: REFUSED, not forwarded",
      message: queryFor("www.example.com", DnsType.A),
      from: OUTSIDE,
      want: "Refused [rd] an=0 ns=0",
      event: { result: "refused", reason: "outside the served subnet" },
    },
    {
      name: "no upstream: REFUSED",
      message: queryFor("www.example.com", DnsType.A),
      forward: "none",
      want: "Refused [rd] an=0 ns=0",
      event: { result: "refused", reason: "no upstream to forward to" },
    },
    {
      name: "no upstream answers: SERVFAIL",
      message: queryFor("www.example.com", DnsType.A),
      forward: "failed",
      forwarded: true,
      want: "ServFail [ra rd] an=0 ns=0",
      event: { result: "servfail", reason: "upstream failed" },
    },
    {
      name: "too many waiting: SERVFAIL",
      message: withEdns("www.example.com", DnsType.A),
      forward: "busy",
      forwarded: true,
      want: "ServFail [ra rd] an=0 ns=0 opt(ext 0)",
      event: { result: "busy" },
    },
    {
      name: "opcode STATUS: NOTIMP",
      message: status,
      want: "NotImp [ra rd] an=0 ns=0",
      event: { result: "notimp", reason: "opcode 2" },
    },
    {
      name: "no question: FORMERR",
      message: none,
      want: "FormErr [ra rd] an=0 ns=0",
      event: { result: "formerr", name: "", type: "" },
    },
    {
      name: "two questions: FORMERR",
      message: two,
      want: "FormErr [ra rd] an=0 ns=0",
      event: { result: "formerr", reason: "2 questions" },
    },
    {
      name: "two OPT records: FORMERR",
      message: twoOpts,
      want: "FormErr [rd] an=0 ns=0",
      event: { result: "formerr" },
    },
    {
      name: "EDNS version 1: BADVERS (16: 0 in the header, 1 in the OPT)",
      message: version1,
      want: "NoError [ra rd] an=0 ns=0 opt(ext 1)",
      event: { result: "badvers" },
    },
    {
      name: "class CHAOS: REFUSED",
      message: chaos,
      want: "Refused [ra rd] an=0 ns=0",
      event: { result: "refused", reason: "class 3" },
    },
    {
      name: "a zone transfer: REFUSED",
      message: queryFor("erf", DnsType.AXFR),
      transport: "tcp",
      want: "Refused [ra rd] an=0 ns=0",
      event: { result: "refused", reason: "zone transfers are not served" },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const fake = fakeForward(c.forward === "none" || !c.forward ? "answer" : c.forward);
      const policy: DnsPolicyOptions = {
        zone: link.zone,
        subnet: SUBNET,
        forward: c.forward === "none" ? undefined : fake.forward,
      };
      const { event, reply } = await answerDns(request(c.message, c.from, c.transport), policy);
      assert.equal(summary(reply), c.want);
      for (const [k, v] of Object.entries(c.event)) {
        assert.equal(event[k as keyof DnsQueryEvent], v, `event.${k}`);
      }
      assert.equal(fake.calls.length, c.forwarded ? 1 : 0);
      if (c.forwarded) {
        assert.equal(fake.calls[0]!.tcp, c.transport === "tcp");
        assert.equal(fake.calls[0]!.client, c.from ?? INSIDE);
      }
      if (reply && !(reply instanceof Uint8Array)) {
        // Every answer encodes and keeps the query's ID and question.
        const back = decodeDns(encodeDns(reply));
        assert.equal(back.id, c.message.id);
        assert.deepEqual(back.questions, c.message.questions.slice(0, 1));
      }
    });
  }
});

Deno.test("dig's captured queries, answered by the policy of the link they name", async (t) => {
  const link = dnsLink();
  const fake = fakeForward("answer");
  const policy = { zone: link.zone, subnet: SUBNET, forward: fake.forward };
  const want: Record<string, string> = {
    a_query: "NoError [aa ra rd] an=1 ns=0 opt(ext 0)",
    tcp_query: "NoError [aa ra rd] an=1 ns=0 opt(ext 0)",
    ptr_query: "NoError [aa ra rd] an=1 ns=0 opt(ext 0)",
    multi_query: "NXDomain [aa ra rd] an=0 ns=1 opt(ext 0)",
    nxdomain_query: "NXDomain [aa ra rd] an=0 ns=1 opt(ext 0)",
    noedns_aaaa_query: "NoError [aa ra rd] an=0 ns=1",
    mx_query: "NXDomain [aa ra rd] an=0 ns=1 opt(ext 0)",
  };
  for (const [name, bytes] of dnsQueries()) {
    await t.step(name, async () => {
      const message = decodeDns(bytes);
      const { reply } = await answerDns({ ...request(message), bytes }, policy);
      assert.equal(summary(reply), want[name]);
    });
  }
  await t.step("the A of web-1.erf is its reservation", async () => {
    const { reply } = await answerDns(request(decodeDns(dnsQueries().get("a_query")!)), policy);
    assert.deepEqual((reply as DnsMessage).answers[0]?.data, { kind: "a", address: "10.76.0.50" });
  });
});

Deno.test("clients behind a relay DHCP serves may have names forwarded too", async () => {
  const link = dnsLink();
  const fake = fakeForward("answer");
  const policy: DnsPolicyOptions = {
    zone: link.zone,
    subnet: SUBNET,
    relayed: [Subnet.parse("10.1.0.0/24")],
    forward: fake.forward,
  };
  const query = queryFor("www.example.com", DnsType.A);
  const relayed = await answerDns(request(query, "10.1.0.77"), policy);
  assert.equal(relayed.event.result, "forwarded");
  const stranger = await answerDns(request(query, OUTSIDE), policy);
  assert.equal(stranger.event.result, "refused");
  assert.equal(fake.calls.length, 1);
});

Deno.test("createDnsHandler emits one event per query and logs it at debug", async () => {
  const link = dnsLink();
  const events: DnsQueryEvent[] = [];
  const lines: string[] = [];
  const handler = createDnsHandler({
    policy: { zone: link.zone, subnet: SUBNET },
    onEvent: (e) => events.push(e),
    logger: { ...silentLogger, debug: (_s, m) => void lines.push(m) },
  });
  await handler(request(queryFor("web-1.erf", DnsType.A)));
  await handler(request(queryFor("example.com", DnsType.A)));
  assert.deepEqual(events.map((e) => e.result), ["answer", "refused"]);
  assert.deepEqual(lines, ["A web-1.erf: answer", "A example.com: refused"]);
});
