/**
 * The router advertisement responder inside throwaway namespaces (prefix `abr`): a server
 * namespace runs it on eth0 (tests/ndp_runner.ts); a client on that link sends real router
 * solicitations as raw Ethernet frames (tests/ndp_client.ts) and reads what comes back; a
 * client on the server's second link (eth1, IPv6 on as well) must get nothing.
 */
import assert from "node:assert/strict";
import { Netns, vethPair } from "./netns.ts";
import { jsonLines, type LineFollower, spawnDeno } from "./dhcp_harness.ts";
import type { ClientOptions } from "./ndp_client.ts";
import type { RouterAdvertisement } from "../protocols/ndp/packet.ts";

/** Turns IPv6 on for one interface, usable at once (no DAD) and deaf to advertisements. */
async function enableIpv6(ns: Netns, dev: string): Promise<void> {
  await ns.exec([
    "sysctl",
    "-qw",
    `net.ipv6.conf.${dev}.accept_dad=0`,
    `net.ipv6.conf.${dev}.accept_ra=0`,
  ]);
  await ns.exec(["sysctl", "-qw", `net.ipv6.conf.${dev}.disable_ipv6=0`]);
}

/** Waits (bounded) until the interface has a usable link-local address and returns it. */
async function linkLocal(ns: Netns, dev: string): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const out = (await ns.exec(["ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link"]))
      .stdout;
    const m = /inet6 (fe80::[0-9a-f:]+)\/64/.exec(out);
    if (m && !out.includes("tentative")) return m[1]!;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${ns.name} ${dev}: no link-local address after 10 s`);
}

interface Heard {
  ra: Omit<RouterAdvertisement, "options"> & {
    options: { type: number; length: number }[];
    sourceMac: string | null;
  };
  hopLimit: number;
  src: string;
  dst: string;
  ethDst: string;
  checksumOk: boolean;
}

/** Runs the client once; returns the advertisements it heard and its summary line. */
async function solicit(
  ns: Netns,
  options: ClientOptions,
): Promise<{ heard: Heard[]; done: Record<string, unknown> }> {
  const c = spawnDeno(ns, "tests/ndp_client.ts", [JSON.stringify(options)]);
  const status = await c.finished(90_000);
  assert.equal(status.code, 0, c.output);
  const lines = jsonLines(c);
  const done = lines.find((l) => l.done);
  assert.ok(done, c.output);
  return { heard: lines.filter((l) => l.ra) as unknown as Heard[], done };
}

function logOf(f: LineFollower): Record<string, unknown>[] {
  return jsonLines(f).filter((l) => l.subsystem === "ndp");
}

/** The number of NDP lines once no new one has come for 200 ms (at most 4 s). */
async function settledLog(f: LineFollower): Promise<number> {
  let n = logOf(f).length;
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const now = logOf(f).length;
    if (now === n) return n;
    n = now;
  }
  return n;
}

Deno.test("RA responder answers solicitations on its link only", async (t) => {
  await using srv = await Netns.create("abr");
  await using cli = await Netns.create("abr");
  await using other = await Netns.create("abr");
  await vethPair(srv, "10.78.0.1/24", cli, "10.78.0.2/24", { a: "eth0", b: "eth0" });
  await vethPair(srv, "10.78.1.1/24", other, "10.78.1.2/24", { a: "eth1", b: "eth0" });
  // eth2 keeps the namespace's default: IPv6 off.
  await srv.exec(["ip", "link", "add", "eth2", "type", "veth", "peer", "name", "eth3"]);
  await srv.exec(["ip", "link", "set", "eth2", "up"]);
  // As in the lab, where the tap has no carrier until QEMU opens it: the server's eth0 has no
  // link-local address yet when the responder starts.
  await cli.exec(["ip", "link", "set", "eth0", "down"]);
  // The operational state follows the carrier asynchronously (linkwatch); wait for it.
  for (let i = 0; i < 50; i++) {
    const state = await srv.exec(["cat", "/sys/class/net/eth0/operstate"]);
    if (state.stdout.trim() !== "up") break;
    await new Promise((r) => setTimeout(r, 200));
  }
  for (const [ns, dev] of [[srv, "eth0"], [srv, "eth1"], [cli, "eth0"], [other, "eth0"]] as const) {
    await enableIpv6(ns, dev);
  }
  const serverLl1 = await linkLocal(srv, "eth1");
  await linkLocal(other, "eth0");
  const serverMac = (await srv.exec(["cat", "/sys/class/net/eth0/address"])).stdout.trim();
  const serverMac1 = (await srv.exec(["cat", "/sys/class/net/eth1/address"])).stdout.trim();
  const clientMac = (await cli.exec(["cat", "/sys/class/net/eth0/address"])).stdout.trim();

  const quietMs = 4000;
  const runner = spawnDeno(srv, "tests/ndp_runner.ts", [
    "eth0",
    JSON.stringify({ routerQuietMs: quietMs }),
  ]);
  try {
    await runner.waitFor((l) => l.includes('"started"'), 90_000, "responder started");
    assert.ok(runner.lines.some((l) => l.includes('"started":true')), runner.output);
    const ready = logOf(runner).find((l) => String(l.msg).startsWith("answering"));
    assert.equal(ready?.address, "none yet", runner.output);
    await cli.exec(["ip", "link", "set", "eth0", "up"]);
    const serverLl = await linkLocal(srv, "eth0");
    const clientLl = await linkLocal(cli, "eth0");

    await t.step("an iPXE-like solicitation gets a non-router advertisement back", async () => {
      const { heard } = await solicit(cli, { iface: "eth0", listenMs: 10_000, stopAfter: 1 });
      assert.equal(heard.length, 1, runner.output);
      const h = heard[0]!;
      assert.equal(h.hopLimit, 255, "receivers drop advertisements with any other hop limit");
      assert.equal(h.src, serverLl, "from the server's link-local address");
      assert.equal(h.dst, clientLl, "unicast to the solicitor");
      assert.equal(h.ethDst, clientMac);
      assert.ok(h.checksumOk);
      assert.equal(h.ra.routerLifetime, 0, "not a default router");
      assert.equal(h.ra.managed, false);
      assert.equal(h.ra.other, false);
      assert.equal(h.ra.curHopLimit, 0);
      assert.equal(h.ra.reachableTime, 0);
      assert.equal(h.ra.retransTimer, 0);
      assert.deepEqual(h.ra.options, [{ type: 1, length: 8 }], "no prefix, only our MAC");
      assert.equal(h.ra.sourceMac, serverMac);
      const info = logOf(runner).filter((l) => l.level === "info" && l.mac === clientMac);
      assert.equal(info.length, 1, "one info line for a new client");
    });

    await t.step("a solicitation from :: is answered to all nodes", async () => {
      const { heard } = await solicit(cli, {
        iface: "eth0",
        source: "::",
        option: "none",
        listenMs: 10_000,
        stopAfter: 1,
      });
      assert.equal(heard.length, 1, runner.output);
      assert.equal(heard[0]!.dst, "ff02::1");
      assert.equal(heard[0]!.ethDst, "33:33:00:00:00:01");
      assert.equal(heard[0]!.hopLimit, 255);
      assert.equal(heard[0]!.ra.routerLifetime, 0);
    });

    // Each solicitor gets at most one answer a second; these wait out that window first.
    const invalid = [
      { name: "hop limit 64", options: { hopLimit: 64 }, reason: /hop limit 64/ },
      { name: "a zero-length option", options: { option: "zero" as const }, reason: /length 0/ },
      {
        name: "source :: with a link-layer option",
        options: { source: "::" },
        reason: /source ::/,
      },
    ];
    for (const c of invalid) {
      await t.step(`${c.name}: no answer, logged at debug`, async () => {
        await new Promise((r) => setTimeout(r, 1100));
        const { heard } = await solicit(cli, { iface: "eth0", listenMs: 2500, ...c.options });
        assert.equal(heard.length, 0, JSON.stringify(heard));
        const dropped = logOf(runner).filter((l) =>
          l.msg === "dropped router solicitation" && c.reason.test(String(l.reason))
        );
        assert.equal(dropped.length, 1, runner.output);
        assert.equal(dropped[0]!.level, "debug");
      });
    }

    await t.step("a burst of 5 solicitations gets fewer than 5 answers", async () => {
      await new Promise((r) => setTimeout(r, 1100));
      const { heard } = await solicit(cli, { iface: "eth0", count: 5, listenMs: 3000 });
      assert.ok(heard.length >= 1 && heard.length < 5, `answers: ${heard.length}`);
      assert.ok(logOf(runner).some((l) => l.msg === "router solicitation rate-limited"));
    });

    await t.step("the responder still answers after all that", async () => {
      await new Promise((r) => setTimeout(r, 1100));
      const { heard } = await solicit(cli, { iface: "eth0", listenMs: 10_000, stopAfter: 1 });
      assert.equal(heard.length, 1, runner.output);
    });

    await t.step(
      "an advertisement that offers nothing (a second Astral Boot) changes nothing",
      async () => {
        await new Promise((r) => setTimeout(r, 1100));
        const { heard } = await solicit(cli, {
          iface: "eth0",
          advertiseFirst: 0,
          listenMs: 10_000,
          stopAfter: 1,
        });
        assert.equal(heard.length, 1, runner.output);
        assert.ok(!logOf(runner).some((l) => /router advertises/.test(String(l.msg))));
      },
    );

    await t.step("after a real router advertised, solicitations are left to it", async () => {
      await new Promise((r) => setTimeout(r, 1100));
      const { heard } = await solicit(cli, { iface: "eth0", advertiseFirst: 1800, listenMs: 2500 });
      assert.equal(heard.length, 0, JSON.stringify(heard));
      const told = logOf(runner).filter((l) => /router advertises on eth0/.test(String(l.msg)));
      assert.equal(told.length, 1, runner.output);
      assert.equal(told[0]!.level, "info");
      assert.equal(told[0]!.router, clientLl);
      assert.ok(
        logOf(runner).some((l) => l.msg === "router solicitation left to the router on the link"),
      );
    });

    await t.step(
      "once the router has been silent for routerQuietMs, it answers again",
      async () => {
        // 2.5 s of listening already passed since the router's advertisement.
        await new Promise((r) => setTimeout(r, quietMs));
        const { heard } = await solicit(cli, { iface: "eth0", listenMs: 10_000, stopAfter: 1 });
        assert.equal(heard.length, 1, runner.output);
      },
    );

    await t.step("a client on the second link gets nothing", async (t) => {
      const targets = [
        { name: "to all routers", dst: "ff02::2", dstMac: "33:33:00:00:00:02" },
        { name: "to the server's eth1 address", dst: serverLl1, dstMac: serverMac1 },
      ];
      for (const target of targets) {
        await t.step(target.name, async () => {
          // The lines of the step before may still be on their way (the responder gathers its
          // log lines for a few ms): count once nothing more has come for 200 ms.
          const before = await settledLog(runner);
          const { heard, done } = await solicit(other, {
            iface: "eth0",
            dst: target.dst,
            dstMac: target.dstMac,
            listenMs: 3000,
          });
          assert.equal(done.sent, 1);
          assert.equal(heard.length, 0, JSON.stringify(heard));
          assert.equal(logOf(runner).length, before, "the responder saw nothing of it");
        });
      }
    });
  } finally {
    const status = await runner.stop();
    assert.equal(status.code, 0, runner.output);
  }
  assert.ok(runner.lines.some((l) => l.includes('"closed":true')), "closed cleanly");

  await t.step("an interface with IPv6 off: one info line, no responder", async () => {
    const f = spawnDeno(srv, "tests/ndp_runner.ts", ["eth2"]);
    const status = await f.finished(90_000);
    assert.equal(status.code, 3, f.output);
    const lines = logOf(f);
    assert.equal(lines.length, 1, f.output);
    assert.equal(lines[0]!.level, "info");
    assert.equal(
      lines[0]!.msg,
      "IPv6 is off on eth2: no router advertisements; iPXE will wait ~15 s for one",
    );
    assert.equal(lines[0]!.reason, "net.ipv6.conf.eth2.disable_ipv6 = 1");
  });
});
