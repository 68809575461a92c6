/**
 * The DNS server against real clients, inside throwaway namespaces (prefix `abn`): `main.ts
 * serve` on a bridge (10.74.0.1/24, domain `erf`), a client that takes a lease with udhcpc
 * and asks with dig, a client on the same link with an address outside the subnet, and a real
 * upstream resolver (dnsmasq) in its own namespace behind the server (10.73.0.53). Nothing
 * here touches the host's interfaces.
 */
import assert from "node:assert/strict";
import {
  bridgeLab,
  type LineFollower,
  readEnv,
  serveConfig,
  spawnDeno,
  startServe,
  udhcpcLease,
} from "./dhcp_harness.ts";
import { Netns, stopAndCollect, vethPair } from "./netns.ts";

const SERVER_IP = "10.74.0.1";
const UPSTREAM_IP = "10.73.0.53";
const OUTSIDE_IP = "10.75.9.9";
const WEB_MAC = "52:54:00:74:00:50";
/** Records of `big.served.upstream`: too many for one UDP answer of 1232 bytes. */
const BIG = 100;

/** What dig printed: the status, the header flags, the answer and authority records. */
interface Dug {
  status: string;
  flags: string[];
  answers: string[][];
  authority: string[][];
  tcpRetry: boolean;
  output: string;
}

async function dig(ns: Netns, args: string[]): Promise<Dug> {
  const r = await ns.exec(
    ["dig", `@${SERVER_IP}`, "+tries=1", "+time=5", "+nocmd", "+nostats", ...args],
    { check: false, timeoutMs: 30_000 },
  );
  const out = r.stdout;
  const section = (name: string) => {
    const m = new RegExp(`;; ${name} SECTION:\\n([\\s\\S]*?)(\\n\\n|$)`).exec(out);
    return m ? m[1]!.split("\n").filter(Boolean).map((l) => l.split(/\s+/)) : [];
  };
  return {
    status: /status: (\w+)/.exec(out)?.[1] ?? `none (exit ${r.code}) ${r.stderr}`,
    flags: (/;; flags: ([^;]*);/.exec(out)?.[1] ?? "").trim().split(" "),
    answers: section("ANSWER"),
    authority: section("AUTHORITY"),
    tcpRetry: out.includes("Truncated, retrying in TCP mode"),
    output: out,
  };
}

/** The data (last field) of each answer record, sorted. */
const data = (d: Dug) => d.answers.map((a) => a.at(-1)!).sort();

/** One sample of the server's /metrics, fetched from `ns`. */
async function metric(ns: Netns, series: string): Promise<number> {
  const r = await ns.exec(["curl", "-sS", "--max-time", "10", `http://${SERVER_IP}:8080/metrics`]);
  const line = r.stdout.split("\n").find((l) => l.startsWith(series + " "));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}

/** Runs tests/dns_query_loop.ts in `ns`; its JSON report. */
async function queryLoop(ns: Netns, names: string[], count: number, concurrency: number) {
  const f = spawnDeno(ns, "tests/dns_query_loop.ts", [
    JSON.stringify({ server: SERVER_IP, names, count, concurrency }),
  ]);
  await f.finished(120_000);
  return JSON.parse(f.lines.at(-1) ?? "{}") as Record<string, number>;
}

Deno.test({
  name: "main.ts serve answers DNS for its machines and leases, forwards for its subnet only",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abn", `${SERVER_IP}/24`, 2);
    const [client, outside] = lab.clients as [Netns, Netns];
    await using upstream = await Netns.create("abn");
    await vethPair(lab.server, "10.73.0.1/24", upstream, `${UPSTREAM_IP}/24`, { a: "up0" });
    // The stranger on the link: an address of another subnet, routes both ways over br0.
    await outside.exec(["ip", "addr", "add", `${OUTSIDE_IP}/24`, "dev", "eth0"]);
    await outside.exec(["ip", "route", "add", `${SERVER_IP}/32`, "dev", "eth0"]);
    await lab.server.exec(["ip", "route", "add", `${OUTSIDE_IP}/32`, "dev", "br0"]);
    const dir = await Deno.makeTempDir({ prefix: "abn-dns-" });
    const resolver = upstream.spawn([
      "dnsmasq",
      "--no-daemon",
      "--conf-file=/dev/null",
      "--no-resolv",
      "--no-hosts",
      `--listen-address=${UPSTREAM_IP}`,
      "--bind-interfaces",
      `--pid-file=${dir}/dnsmasq.pid`,
      "--user=root",
      "--address=/name.served.upstream/10.73.9.9",
      ...Array.from({ length: BIG }, (_, i) => `--host-record=big.served.upstream,10.73.8.${i}`),
    ]);
    let serve: LineFollower | undefined;
    try {
      await Deno.mkdir(`${dir}/tree/boot`, { recursive: true });
      await Deno.writeTextFile(
        `${dir}/config.toml`,
        serveConfig(
          dir,
          `range = ["10.74.0.100", "10.74.0.150"]`,
          `[dns]
upstream = ["${UPSTREAM_IP}"]
[[machine]]
mac = "${WEB_MAC}"
hostname = "web-1"
ip = "10.74.0.50"
`,
        ),
      );
      serve = await startServe(lab.server, dir);
      const ip = await udhcpcLease(client, dir, "laptop", 2, ["-x", "hostname:laptop-7"]);
      assert.ok(ip, "udhcpc got no lease");

      await t.step("udhcpc got this server as router and name server, and the domain", async () => {
        const env = await readEnv(`${dir}/laptop.bound.env`);
        assert.equal(env.router, SERVER_IP);
        assert.equal(env.dns?.trim(), SERVER_IP);
        assert.equal(env.domain, "erf");
      });

      await t.step("DNS listens on the server's address only, UDP and TCP", async () => {
        // UDP is bound to br0 as well (SO_BINDTODEVICE); Deno's TCP listener cannot be.
        for (const [proto, want] of [["-u", `${SERVER_IP}%br0:53`], ["-t", `${SERVER_IP}:53`]]) {
          const r = await lab.server.exec(["ss", "-Hln", proto!, "sport = :53"]);
          const local = r.stdout.trim().split("\n").map((l) => l.split(/\s+/)[3]);
          assert.deepEqual(local, [want], `${proto}: ${r.stdout}`);
        }
      });

      await t.step("dig web-1.erf: its reserved address, authoritative, TTL 60", async () => {
        const d = await dig(client, ["web-1.erf"]);
        assert.equal(d.status, "NOERROR", d.output);
        assert.ok(d.flags.includes("aa") && d.flags.includes("ra"), d.output);
        assert.deepEqual(d.answers, [["web-1.erf.", "60", "IN", "A", "10.74.0.50"]]);
      });

      await t.step("dig -x: the name back", async () => {
        const d = await dig(client, ["-x", "10.74.0.50"]);
        assert.deepEqual(data(d), ["web-1.erf."], d.output);
        assert.deepEqual(data(await dig(client, ["-x", SERVER_IP])), ["astralboot.erf."]);
      });

      await t.step("the udhcpc client that sent a host name resolves, both ways", async () => {
        assert.deepEqual(data(await dig(client, ["laptop-7.erf"])), [ip]);
        assert.deepEqual(data(await dig(client, ["LAPTOP-7.ERF"])), [ip]);
        assert.deepEqual(data(await dig(client, ["-x", ip])), ["laptop-7.erf."]);
      });

      await t.step(
        "astralboot.erf is the server; unknown names NXDOMAIN, other types NODATA",
        async () => {
          assert.deepEqual(data(await dig(client, ["astralboot.erf"])), [SERVER_IP]);
          const nx = await dig(client, ["nothing.erf"]);
          assert.equal(nx.status, "NXDOMAIN", nx.output);
          assert.ok(nx.flags.includes("aa"));
          assert.equal(nx.authority[0]?.[3], "SOA");
          const nodata = await dig(client, ["web-1.erf", "AAAA"]);
          assert.equal(nodata.status, "NOERROR");
          assert.deepEqual(nodata.answers, []);
          assert.equal(nodata.authority[0]?.[3], "SOA");
        },
      );

      await t.step("dig +tcp works", async () => {
        const d = await dig(client, ["+tcp", "web-1.erf"]);
        assert.deepEqual(data(d), ["10.74.0.50"], d.output);
      });

      await t.step("another name: the upstream resolver's answer, not authoritative", async () => {
        const d = await dig(client, ["name.served.upstream"]);
        assert.equal(d.status, "NOERROR", d.output);
        assert.deepEqual(data(d), ["10.73.9.9"]);
        assert.ok(!d.flags.includes("aa") && d.flags.includes("ra"), d.output);
        assert.deepEqual(data(await dig(client, ["+tcp", "name.served.upstream"])), ["10.73.9.9"]);
      });

      await t.step(`an answer of ${BIG} records: truncated over UDP, whole over TCP`, async () => {
        const d = await dig(client, ["big.served.upstream"]);
        assert.ok(d.tcpRetry, d.output);
        assert.equal(d.answers.length, BIG, d.output);
      });

      await t.step(
        "a client outside the subnet: REFUSED for forwarding, local names answered",
        async () => {
          for (const extra of [[], ["+tcp"]]) {
            const d = await dig(outside, [...extra, "name.served.upstream"]);
            assert.equal(d.status, "REFUSED", d.output);
            assert.ok(!d.flags.includes("ra"), d.output);
          }
          const local = await dig(outside, ["web-1.erf"]);
          assert.deepEqual(data(local), ["10.74.0.50"]);
          assert.ok(!local.flags.includes("ra"));
        },
      );

      await t.step("a host behind another interface gets no answer, over TCP neither", async () => {
        // The upstream's side of up0 reaches the server's boot address through it: the kernel
        // takes TCP connections to that address on any interface; DNS must not answer them.
        await upstream.exec(["ip", "route", "add", `${SERVER_IP}/32`, "via", "10.73.0.1"]);
        for (const extra of [["+tcp"], ["+notcp", "+time=1"]]) {
          const d = await dig(upstream, [...extra, "web-1.erf"]);
          assert.match(d.status, /^none/, d.output);
          assert.deepEqual(d.answers, []);
        }
      });

      await t.step("metrics count the queries by result", async () => {
        const q = (result: string) =>
          metric(client, `astralboot_dns_queries_total{result="${result}"}`);
        assert.ok(await q("answer") >= 9, `answer ${await q("answer")}`);
        assert.ok(await q("forwarded") >= 3);
        assert.ok(await q("refused") >= 2);
        assert.ok(await q("nxdomain") >= 1);
      });

      await t.step(
        "a quick loop: local names and forwarded ones, every query answered",
        async () => {
          const rss = () => metric(client, "astralboot_process_resident_memory_bytes");
          const before = await rss();
          const local = await queryLoop(
            client,
            ["web-1.erf", "laptop-7.erf", "nothing.erf"],
            4000,
            8,
          );
          const forwarded = await queryLoop(client, ["name.served.upstream"], 2000, 8);
          const after = await rss();
          console.log(
            `DNS local: ${local.qps} q/s (${local.answered}/${local.sent}, ${local.ms} ms); ` +
              `forwarded: ${forwarded.qps} q/s (${forwarded.answered}/${forwarded.sent}, ` +
              `${forwarded.ms} ms); RSS ${Math.round(before / 2 ** 20)} → ${
                Math.round(after / 2 ** 20)
              } MiB`,
          );
          assert.equal(local.answered, 4000, JSON.stringify(local));
          assert.equal(forwarded.answered, 2000, JSON.stringify(forwarded));
        },
      );

      await t.step("nothing went wrong in the server log", () => {
        const errors = serve!.lines.filter((l) => l.includes('"level":"error"'));
        assert.deepEqual(errors, []);
      });
    } finally {
      await serve?.stop();
      await stopAndCollect(resolver);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
