/**
 * The forwarder against fake upstreams on loopback (127.0.0.1, ephemeral ports; nothing
 * leaves the host): new IDs, answers checked, the next upstream after a timeout, TCP after TC
 * and for TCP clients, the bounds on waiting queries.
 */
import assert from "node:assert/strict";
import { decodeDns, type DnsMessage, DnsType, encodeDns, Rcode } from "./message.ts";
import { DnsForwarder, formatUpstream, parseUpstream, type Upstream } from "./forwarder.ts";
import { frame, FrameReader } from "./tcp.ts";
import { responseTo } from "./wire.ts";
import { queryFor } from "./_test_utils.ts";

/** How a fake upstream treats a query. */
type Behaviour = "answer" | "silent" | "truncate" | "spoof-first" | "wrong-question";

/** The A answer a fake upstream gives: 10.9.9.<its port's last digit>. */
function answerOf(q: DnsMessage, marker: number): DnsMessage {
  const r = responseTo(q, Rcode.NoError, null);
  r.flags.ra = true;
  // The upstream is an authority for it; the forwarder is not.
  r.flags.aa = true;
  r.answers = [{
    name: q.questions[0]!.name,
    type: DnsType.A,
    class: 1,
    ttl: 30,
    data: { kind: "a", address: `10.9.9.${marker}` },
  }];
  return r;
}

/** A UDP socket and a TCP listener on one free port of 127.0.0.1 (another test may hold it for TCP). */
function udpAndTcp() {
  for (let i = 0;; i++) {
    const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const port = (udp.addr as Deno.NetAddr).port;
    try {
      return { udp, tcp: Deno.listen({ hostname: "127.0.0.1", port }), port };
    } catch (e) {
      udp.close();
      if (!(e instanceof Deno.errors.AddrInUse) || i === 20) throw e;
    }
  }
}

/** A fake upstream on 127.0.0.1: UDP and TCP on one port; records the IDs it saw. */
function fakeUpstream(behaviour: Behaviour, marker: number) {
  const { udp, tcp, port } = udpAndTcp();
  const ids: number[] = [];
  const tcpQueries: number[] = [];
  const udpLoop = (async () => {
    for (;;) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await udp.receive();
      } catch {
        return;
      }
      const [data, from] = got;
      const q = decodeDns(data);
      ids.push(q.id);
      const to = from as Deno.NetAddr;
      if (behaviour === "silent") continue;
      if (behaviour === "truncate") {
        const r = responseTo(q, Rcode.NoError, null);
        r.flags.tc = true;
        await udp.send(encodeDns(r), to);
        continue;
      }
      if (behaviour === "spoof-first") {
        // Another socket (another source port), and a wrong ID: neither may be taken.
        const other = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
        await other.send(encodeDns(answerOf(q, 66)), to);
        other.close();
        await udp.send(encodeDns({ ...answerOf(q, 67), id: (q.id + 1) & 0xffff }), to);
      }
      if (behaviour === "wrong-question") {
        const r = answerOf(q, 68);
        r.questions = [{ ...r.questions[0]!, name: "other.example" }];
        await udp.send(encodeDns(r), to);
      }
      await udp.send(encodeDns(answerOf(q, marker)), to);
    }
  })();
  const tcpLoop = (async () => {
    for await (const conn of tcp) {
      try {
        const m = await new FrameReader(conn).next();
        if (!m) continue;
        const q = decodeDns(m);
        tcpQueries.push(q.id);
        await conn.write(frame(encodeDns(answerOf(q, marker + 100))));
      } catch {
        /* the client went away */
      } finally {
        conn.close();
      }
    }
  })();
  return {
    upstream: { address: "127.0.0.1", port } as Upstream,
    ids,
    tcpQueries,
    async close() {
      udp.close();
      tcp.close();
      await Promise.all([udpLoop, tcpLoop]);
    },
  };
}

const ask = (f: DnsForwarder, name: string, o: { id?: number; tcp?: boolean; client?: string }) => {
  const q = queryFor(name, DnsType.A, { id: o.id ?? 4242 });
  return f.forward(encodeDns(q), q.questions[0]!, {
    client: o.client ?? "10.0.0.5",
    tcp: o.tcp ?? false,
  });
};

function addressOf(r: Awaited<ReturnType<DnsForwarder["forward"]>>): string | undefined {
  if (r.kind !== "answer") return undefined;
  const d = decodeDns(r.bytes).answers[0]?.data;
  return d?.kind === "a" ? d.address : undefined;
}

Deno.test("forwarder: answers come back with the client's ID, only from the upstream asked", async (t) => {
  const good = fakeUpstream("answer", 1);
  const silent = fakeUpstream("silent", 2);
  const spoofed = fakeUpstream("spoof-first", 3);
  const truncating = fakeUpstream("truncate", 4);
  const wrong = fakeUpstream("wrong-question", 5);
  const make = (ups: Upstream[]) =>
    new DnsForwarder({ upstreams: ups, timeoutMs: 300, bindAddress: "127.0.0.1" });
  try {
    await t.step("a new random ID goes up, the client's comes back", async () => {
      const r = await ask(make([good.upstream]), "web.example", { id: 4242 });
      assert.equal(r.kind, "answer");
      assert.equal(addressOf(r), "10.9.9.1");
      const m = decodeDns((r as { bytes: Uint8Array }).bytes);
      assert.equal(m.id, 4242);
      assert.deepEqual([m.flags.aa, m.flags.ra], [false, true]);
      assert.equal(good.ids.length, 1);
      assert.notEqual(good.ids[0], 4242);
    });
    await t.step("a silent upstream: the next one after the timeout", async () => {
      const started = Date.now();
      const r = await ask(make([silent.upstream, good.upstream]), "web.example", {});
      assert.equal(addressOf(r), "10.9.9.1");
      const ms = Date.now() - started;
      assert.ok(ms >= 280 && ms < 1500, `${ms} ms`);
      assert.equal(
        r.kind === "answer" && formatUpstream(r.upstream),
        formatUpstream(good.upstream),
      );
    });
    await t.step("none answers: failed, naming them", async () => {
      const r = await ask(make([silent.upstream]), "web.example", {});
      assert.equal(r.kind, "failed");
      assert.match((r as { reason: string }).reason, /127\.0\.0\.1:\d+ \(udp\) did not answer/);
    });
    await t.step("answers from another port or with another ID are not taken", async () => {
      assert.equal(addressOf(await ask(make([spoofed.upstream]), "web.example", {})), "10.9.9.3");
    });
    await t.step("an answer to another question is not taken", async () => {
      assert.equal(addressOf(await ask(make([wrong.upstream]), "web.example", {})), "10.9.9.5");
    });
    await t.step("a truncated UDP answer is asked again over TCP", async () => {
      const r = await ask(make([truncating.upstream]), "big.example", {});
      assert.equal(r.kind === "answer" && r.transport, "tcp");
      assert.equal(addressOf(r), "10.9.9.104");
      assert.equal(truncating.tcpQueries.length, 1);
    });
    await t.step("a client that asked over TCP is forwarded over TCP", async () => {
      const r = await ask(make([good.upstream]), "web.example", { tcp: true, id: 9 });
      assert.equal(addressOf(r), "10.9.9.101");
      assert.equal(decodeDns((r as { bytes: Uint8Array }).bytes).id, 9);
    });
    await t.step("no upstream: failed at once", async () => {
      assert.deepEqual(await ask(make([]), "web.example", {}), {
        kind: "failed",
        reason: "no upstream",
      });
    });
  } finally {
    for (const u of [good, silent, spoofed, truncating, wrong]) await u.close();
  }
});

/** A forwarder to `up` alone with the bounds of `limits`. */
const bounded = (up: Upstream, limits: { maxOutstanding?: number; maxPerClient: number }) =>
  new DnsForwarder({ upstreams: [up], timeoutMs: 300, ...limits, bindAddress: "127.0.0.1" });

/** Two queries of the client 10.0.0.5, for a.example and b.example. */
const twoOf10005 = (f: DnsForwarder) => [
  ask(f, "a.example", { client: "10.0.0.5" }),
  ask(f, "b.example", { client: "10.0.0.5" }),
];

Deno.test("forwarder: queries waiting for upstreams are bounded, overall and per client", async () => {
  const silent = fakeUpstream("silent", 2);
  const f = bounded(silent.upstream, { maxOutstanding: 3, maxPerClient: 2 });
  try {
    const waiting = twoOf10005(f);
    const third = await ask(f, "c.example", { client: "10.0.0.5" });
    assert.equal(third.kind, "busy");
    assert.match((third as { reason: string }).reason, /2 queries of this client/);
    waiting.push(ask(f, "d.example", { client: "10.0.0.6" }));
    assert.equal(f.outstanding, 3);
    const fourth = await ask(f, "e.example", { client: "10.0.0.7" });
    assert.equal(fourth.kind, "busy");
    assert.match((fourth as { reason: string }).reason, /3 queries wait/);
    assert.deepEqual((await Promise.all(waiting)).map((r) => r.kind), [
      "failed",
      "failed",
      "failed",
    ]);
    assert.equal(f.outstanding, 0);
    assert.equal((await ask(f, "f.example", { client: "10.0.0.5" })).kind, "failed");
  } finally {
    await silent.close();
  }
});

Deno.test("forwarder: new upstreams (a reload) are asked next; the queries waiting still count", async () => {
  const silent = fakeUpstream("silent", 2);
  const good = fakeUpstream("answer", 1);
  const f = bounded(silent.upstream, { maxPerClient: 2 });
  try {
    const waiting = twoOf10005(f);
    f.setUpstreams([good.upstream]);
    assert.deepEqual(f.upstreams, [good.upstream]);
    assert.equal((await ask(f, "c.example", { client: "10.0.0.5" })).kind, "busy");
    assert.equal(addressOf(await ask(f, "d.example", { client: "10.0.0.6" })), "10.9.9.1");
    // The two asked before the change asked the silent one, as they began to.
    assert.deepEqual((await Promise.all(waiting)).map((r) => r.kind), ["failed", "failed"]);
    assert.equal(silent.ids.length, 2);
    assert.equal(addressOf(await ask(f, "e.example", { client: "10.0.0.5" })), "10.9.9.1");
  } finally {
    await silent.close();
    await good.close();
  }
});

Deno.test("parseUpstream: an IPv4 address, with a port or 53", async (t) => {
  const cases: [string, Upstream | null][] = [
    ["10.0.0.53", { address: "10.0.0.53", port: 53 }],
    [" 10.0.0.53:5353 ", { address: "10.0.0.53", port: 5353 }],
    ["10.0.0.53:0", null],
    ["10.0.0.53:70000", null],
    ["10.0.0.300", null],
    ["dns.example", null],
    ["::1", null],
    ["", null],
  ];
  for (const [text, want] of cases) {
    await t.step(JSON.stringify(text), () => assert.deepEqual(parseUpstream(text), want));
  }
  assert.equal(formatUpstream({ address: "1.1.1.1", port: 53 }), "1.1.1.1");
  assert.equal(formatUpstream({ address: "1.1.1.1", port: 5353 }), "1.1.1.1:5353");
});
