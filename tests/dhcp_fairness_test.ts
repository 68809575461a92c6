/**
 * DHCP fairness against real load: `main.ts serve` in a server namespace on a bridge, Kea's
 * perfdhcp playing 80 strangers from one client namespace, udhcpc as the machine the config
 * lists from another. Strangers must not starve a listed machine, too many new clients at once
 * are slowed down, and `known_only` serves listed machines only. Nothing here touches the
 * host's interfaces.
 */
import assert from "node:assert/strict";
import {
  bridgeLab,
  type LineFollower,
  serveConfig,
  startServe,
  udhcpcLease,
} from "./dhcp_harness.ts";
import type { Netns } from "./netns.ts";
import { parsePerfdhcp } from "./bench/dhcp.ts";

const SERVER_IP = "10.82.0.1";
const STRANGERS_IP = "10.82.0.2";
const BASE = `http://${SERVER_IP}:8080`;

/** Starts `main.ts serve` with `dhcp` as the [dhcp] table and `machine` as one [[machine]]. */
async function serve(server: Netns, dir: string, dhcp: string, mac: string) {
  await Deno.mkdir(`${dir}/tree`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/config.toml`,
    serveConfig(
      dir,
      dhcp,
      `
[[machine]]
mac = "${mac}"
hostname = "listed"
`,
    ),
  );
  return await startServe(server, dir);
}

/** perfdhcp as `n` strangers, all at once; DISCOVERs sent and ACKs received. */
async function strangers(ns: Netns, n: number) {
  const r = await ns.exec(
    // -R: n distinct client MACs; -n: n exchanges; -r: all within about a quarter second.
    ["perfdhcp", "-4", "-l", "eth0", "-R", String(n), "-n", String(n), "-r", String(n * 4)]
      .concat(["-W", "1000000", SERVER_IP]),
    { check: false, timeoutMs: 60_000 },
  );
  const got = parsePerfdhcp(r.stdout + r.stderr);
  assert.ok(got, `perfdhcp printed no report (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  return got;
}

/** One sample of the server's /metrics, asked from `ns`. */
async function metric(ns: Netns, series: string): Promise<number> {
  const r = await ns.exec(["curl", "-sS", "--fail", "--max-time", "10", `${BASE}/metrics`], {
    check: false,
    timeoutMs: 20_000,
  });
  assert.equal(r.code, 0, r.stderr);
  const line = r.stdout.split("\n").find((l) => l.startsWith(series + " "));
  assert.ok(line, `${series} not in:\n${r.stdout}`);
  return Number(line.slice(series.length + 1));
}

Deno.test({
  name: "80 strangers cannot starve a listed machine; new clients are rate-limited; known_only",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abf", `${SERVER_IP}/24`, 2);
    const [listed, crowd] = lab.clients as [Netns, Netns];
    const listedMac = lab.macs[0]!;
    // perfdhcp relays: it needs an address of its own on the link.
    await crowd.exec(["ip", "addr", "add", `${STRANGERS_IP}/24`, "dev", "eth0"]);
    const dir = await Deno.makeTempDir({ prefix: "abf-fair-" });
    let server: LineFollower | undefined;
    try {
      await t.step("a 41-address pool: strangers get 40, the listed machine the last", async () => {
        server = await serve(
          lab.server,
          `${dir}/a`,
          // The rate limit is the next step's subject: out of the way here.
          'range = ["10.82.0.100", "10.82.0.140"]\nnew_client_rate = 10000',
          listedMac,
        );
        const got = await strangers(crowd, 80);
        assert.equal(got.discovers, 80);
        assert.equal(got.acks, 40, "one address stays free for the listed machine");
        const ip = await udhcpcLease(listed, dir, "listed-a");
        assert.match(ip ?? "none", /^10\.82\.0\.1[0-4]\d$/);
        assert.equal(
          await metric(listed, 'astralboot_dhcp_refused_total{reason="pool-exhausted"}') >= 40,
          true,
        );
        const subnet = '{subnet="10.82.0.0/24"}';
        assert.equal(await metric(listed, `astralboot_dhcp_pool_addresses${subnet}`), 41);
        assert.equal(await metric(listed, `astralboot_dhcp_pool_held_addresses${subnet}`), 41);
        assert.ok(
          server.lines.some((l) => l.includes('"level":"warn"') && l.includes("pool")),
          "exhaustion is a warning in the log",
        );
        await server.stop();
        server = undefined;
      });

      await t.step("new_client_rate = 2: 80 strangers at once get about 10", async () => {
        server = await serve(
          lab.server,
          `${dir}/b`,
          'range = ["10.82.0.100", "10.82.0.199"]\nnew_client_rate = 2',
          listedMac,
        );
        const got = await strangers(crowd, 80);
        // A bucket of five seconds' worth (10), plus what trickles in while perfdhcp runs.
        assert.ok(got.acks >= 10 && got.acks <= 14, `${got.acks} strangers bound`);
        assert.ok(
          await metric(listed, 'astralboot_dhcp_refused_total{reason="rate-limited"}') >= 60,
        );
        // The listed machine is no stranger: the limit does not slow it down.
        assert.match(await udhcpcLease(listed, dir, "listed-b") ?? "none", /^10\.82\.0\.1\d\d$/);
        await server.stop();
        server = undefined;
      });

      await t.step(
        "known_only: strangers get nothing, the listed machine its address",
        async () => {
          server = await serve(
            lab.server,
            `${dir}/c`,
            'range = ["10.82.0.100", "10.82.0.140"]\nknown_only = true',
            listedMac,
          );
          const got = await strangers(crowd, 20);
          assert.equal(got.acks, 0);
          assert.ok(
            await metric(listed, 'astralboot_dhcp_refused_total{reason="known-only"}') >= 20,
          );
          assert.match(
            await udhcpcLease(listed, dir, "listed-c") ?? "none",
            /^10\.82\.0\.1[0-4]\d$/,
          );
        },
      );
    } finally {
      if (server) await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
