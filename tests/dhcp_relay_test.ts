/**
 * A network behind a DHCP relay, with real parts: `main.ts serve` in a server namespace on a
 * bridge, ISC dhcrelay in a router namespace with one leg on that bridge and one on the client's
 * link, busybox udhcpc in the client namespace. The client gets an address of the relayed
 * `[[dhcp.subnet]]` with that subnet's router and options, boots from the server's address, and
 * fetches its own boot script over the routed path (its lease is what identifies it).
 * Nothing here touches the host's interfaces.
 */
import assert from "node:assert/strict";
import {
  bridgeLab,
  curlFrom,
  hookEvents,
  hookScript,
  LineFollower,
  readEnv,
  serveConfig,
  startServe,
  udhcpcLease,
  until,
} from "./dhcp_harness.ts";
import { Netns, vethPair } from "./netns.ts";

const SERVER_IP = "10.84.0.1";
/** The relay's legs: on the server's bridge, and the far network's router. */
const RELAY_UP = "10.84.0.2";
const RELAY_DOWN = "10.85.0.1";
const BASE = `http://${SERVER_IP}:8080`;

Deno.test({
  name: "a client behind ISC dhcrelay gets its subnet's address and boots from the server",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abr", `${SERVER_IP}/24`, 1);
    const relay = lab.clients[0]!;
    await using client = await Netns.create("abr");
    await relay.exec(["ip", "addr", "add", `${RELAY_UP}/24`, "dev", "eth0"]);
    await relay.exec(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await vethPair(relay, `${RELAY_DOWN}/24`, client, null, { a: "down0", b: "eth0" });
    const mac = (await client.exec(["cat", "/sys/class/net/eth0/address"])).stdout.trim();
    // The server answers the relay at giaddr, on the far network: it routes there via the relay.
    await lab.server.exec(["ip", "route", "add", "10.85.0.0/24", "via", RELAY_UP]);

    const dir = await Deno.makeTempDir({ prefix: "abr-relay-" });
    await Deno.mkdir(`${dir}/tree`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/config.toml`,
      serveConfig(
        dir,
        `range = ["10.84.0.100", "10.84.0.120"]
[dhcp.options]
ntp = ["10.84.0.123"]
[[dhcp.subnet]]
network = "10.85.0.0/24"
range = ["10.85.0.50", "10.85.0.60"]
router = "${RELAY_DOWN}"
dns = ["10.85.0.53"]
lease = "30m"
[dhcp.subnet.options]
ntp = ["10.85.0.123"]
`,
      ),
    );
    let server: LineFollower | undefined;
    let relayd: LineFollower | undefined;
    try {
      server = await startServe(lab.server, dir);
      relayd = new LineFollower(
        relay.spawn([
          "sh",
          "-c",
          `exec dhcrelay -4 -d -a --no-pid -iu eth0 -id down0 ${SERVER_IP} 2>&1`,
        ]),
      );
      await relayd.waitFor((l) => l.includes("Sending on"), 20_000, "dhcrelay ready");

      let ip = "";
      await t.step(
        "udhcpc behind the relay: the subnet's address, router, lease and options",
        async () => {
          const got = await udhcpcLease(client, dir, "far", 2, [
            "-O",
            "ntpsrv",
            "-O",
            "tftp",
            "-O",
            "bootfile",
          ]);
          assert.ok(got, `no lease; server:\n${server!.output}\nrelay:\n${relayd!.output}`);
          ip = got;
          const env = await readEnv(`${dir}/far.bound.env`);
          assert.match(ip, /^10\.85\.0\.(5\d|60)$/);
          assert.equal(env.subnet, "255.255.255.0");
          assert.equal(env.router, RELAY_DOWN);
          assert.equal(env.dns?.trim(), "10.85.0.53");
          assert.equal(env.lease, "1800");
          assert.equal(env.ntpsrv?.trim(), "10.85.0.123");
          // Where it boots from is the server, not the relay.
          assert.equal(env.serverid, SERVER_IP);
          assert.equal(env.siaddr, SERVER_IP);
          assert.equal(env.tftp, SERVER_IP);
          assert.equal(env.boot_file, "undionly.kpxe");
          const offer = server!.lines.find((l) => l.includes(`DHCPOFFER ${ip}`));
          assert.match(offer ?? "", new RegExp(`"dest":"${RELAY_DOWN.replaceAll(".", "\\.")}:67"`));
        },
      );

      await t.step(
        "its boot script over the routed path: 200, its lease identifies it",
        async () => {
          await client.exec(["ip", "route", "add", "default", "via", RELAY_DOWN]);
          const macUrl = mac.replaceAll(":", "-");
          const own = await curlFrom(client, `${BASE}/boot.ipxe?mac=${macUrl}`);
          assert.equal(own.status, 200, own.body);
          assert.match(own.body, /^#!ipxe/);
          const other = await curlFrom(client, `${BASE}/boot.ipxe?mac=52-54-00-00-00-99`);
          assert.equal(other.status, 403);
        },
      );

      await t.step(
        "a renewal comes by unicast, not through the relay, and is answered",
        async () => {
          const hook = await hookScript(dir, "renew");
          const udhcpc = new LineFollower(
            client.spawn(["udhcpc", "-f", "-i", "eth0", "-t", "5", "-T", "2", "-s", hook]),
          );
          try {
            await until(
              async () => (await hookEvents(dir, "renew")).includes("bound") || undefined,
              30_000,
              "bound",
            );
            udhcpc.child.kill("SIGUSR1");
            await until(
              async () => (await hookEvents(dir, "renew")).includes("renew") || undefined,
              30_000,
              "renew",
            );
            // udhcpc's renewal goes to the server by unicast; the answer goes straight back.
            const dest = `"dest":"${ip}:68"`;
            assert.ok(
              server!.lines.some((l) => l.includes(`DHCPACK ${ip}`) && l.includes(dest)),
              `no unicast ACK to ${ip}:68:\n${
                server!.lines.filter((l) => l.includes("DHCP")).join("\n")
              }`,
            );
          } finally {
            await udhcpc.stop();
          }
        },
      );

      await t.step("the pool gauges and the lease table know the relayed subnet", async () => {
        const metrics = (await curlFrom(client, `${BASE}/metrics`)).body;
        assert.match(metrics, /^astralboot_dhcp_pool_addresses\{subnet="10\.85\.0\.0\/24"\} 11$/m);
        assert.match(
          metrics,
          /^astralboot_dhcp_pool_held_addresses\{subnet="10\.85\.0\.0\/24"\} 1$/m,
        );
        assert.match(metrics, /^astralboot_dhcp_pool_addresses\{subnet="10\.84\.0\.0\/24"\} 21$/m);
        const token = (await Deno.readTextFile(`${dir}/data/api-token`)).trim();
        const r = await curlFrom(lab.server, `${BASE}/api/leases`, {
          headers: [`Authorization: Bearer ${token}`],
        });
        const leases = JSON.parse(r.body) as {
          ip: string;
          mac: string;
          state: string;
          subnet: string;
        }[];
        assert.deepEqual(
          leases.filter((l) => l.state === "bound").map((l) => [l.subnet, l.ip, l.mac]),
          [["10.85.0.0/24", ip, mac]],
        );
      });
    } finally {
      await relayd?.stop();
      await server?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
