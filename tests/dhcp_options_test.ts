/**
 * Configured DHCP options against a real client: `main.ts serve` in a server namespace on a
 * bridge, busybox udhcpc in two client namespaces asking for NTP (42), a number udhcpc does
 * not know (224), the domain search list (119) and classless routes (121), which udhcpc
 * decodes itself and exports to its script. One client is a `[[machine]]` with its own NTP.
 * Nothing here touches the host's interfaces.
 */
import assert from "node:assert/strict";
import {
  bridgeLab,
  type LineFollower,
  readEnv,
  serveConfig,
  startServe,
  udhcpcLease,
} from "./dhcp_harness.ts";
import type { Netns } from "./netns.ts";

const SERVER_IP = "10.83.0.1";
/** Asks for 42 by udhcpc's name, 119, 121 and 26 by theirs, 224 by number. */
const ASK = ["-O", "ntpsrv", "-O", "224", "-O", "search", "-O", "staticroutes", "-O", "mtu"];

Deno.test({
  name: "udhcpc gets configured options: by name and number, a machine's over the global",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abo", `${SERVER_IP}/24`, 2);
    const [listed, other] = lab.clients as [Netns, Netns];
    const dir = await Deno.makeTempDir({ prefix: "abo-opts-" });
    await Deno.mkdir(`${dir}/tree`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/config.toml`,
      serveConfig(
        dir,
        `range = ["10.83.0.100", "10.83.0.120"]
force_options = ["224"]
[dhcp.options]
ntp = ["10.83.0.123", "10.83.0.124"]
"224" = "hex:c0ffee"
domain_search = ["lab.example.org", "example.org", "other.test"]
classless_routes = [["10.1.0.0/16", "10.83.0.254"], ["0.0.0.0/0", "10.83.0.1"]]
mtu = 1400
`,
        `
[[machine]]
mac = "${lab.macs[0]}"
[machine.options]
"42" = "10.83.0.9"
`,
      ),
    );
    let server: LineFollower | undefined;
    try {
      server = await startServe(lab.server, dir);
      await t.step("a client that asks gets every option, decoded by udhcpc", async () => {
        assert.ok(await udhcpcLease(other, dir, "other", 2, ASK), "bound");
        const env = await readEnv(`${dir}/other.bound.env`);
        assert.equal(env.ntpsrv?.trim(), "10.83.0.123 10.83.0.124");
        assert.equal(env.opt224, "c0ffee");
        assert.equal(env.search?.trim(), "lab.example.org example.org other.test");
        assert.equal(env.staticroutes?.trim(), "10.1.0.0/16 10.83.0.254 0.0.0.0/0 10.83.0.1");
        assert.equal(env.mtu, "1400");
      });
      await t.step(
        "the [[machine]]'s NTP replaces the global one; the rest is inherited",
        async () => {
          assert.ok(await udhcpcLease(listed, dir, "listed", 2, ASK), "bound");
          const env = await readEnv(`${dir}/listed.bound.env`);
          assert.equal(env.ntpsrv?.trim(), "10.83.0.9");
          assert.equal(env.opt224, "c0ffee");
          assert.equal(env.mtu, "1400");
        },
      );
      await t.step("a client that asks for nothing (-o) gets only the forced one", async () => {
        await other.exec(["ip", "addr", "flush", "dev", "eth0"]);
        assert.ok(await udhcpcLease(other, dir, "quiet", 2, ["-o"]), "bound");
        const env = await readEnv(`${dir}/quiet.bound.env`);
        for (const key of ["ntpsrv", "search", "staticroutes", "mtu"]) {
          assert.equal(env[key], undefined, key);
        }
        assert.equal(env.opt224, "c0ffee");
      });
    } finally {
      await server?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
