/**
 * The lab proof of the router advertisement responder: a QEMU VM (BIOS, virtio-net, TCG)
 * PXE-boots the fixture from Astral Boot twice in throwaway namespaces (prefix `abr`): once as
 * the lab is (IPv6 on the bridge, so the responder answers iPXE's router solicitations), once
 * with IPv6 turned off on the bridge again (the responder declines). iPXE fetches its boot
 * script only after its IPv6 configuration ends: on an answer, or after ~16 s without one.
 */
import assert from "node:assert/strict";
import { buildFixture } from "../lab/fixture.ts";
import { type LabResult, runLab } from "../lab/lab.ts";
import { astralbootServer, type LabServer } from "../lab/servers.ts";
import { formatStages } from "../lab/stages.ts";
import { silentLogger } from "../log.ts";

const fixture = await buildFixture({ logger: silentLogger });

/** Astral Boot, with the bridge's IPv6 switched off first when `ipv6` is false. */
function server(ipv6: boolean): LabServer {
  const inner = astralbootServer();
  return {
    name: inner.name,
    httpPort: inner.httpPort,
    async start(ctx) {
      if (!ipv6) await ctx.ns.exec(["sysctl", "-qw", `net.ipv6.conf.${ctx.iface}.disable_ipv6=1`]);
      return await inner.start(ctx);
    },
  };
}

function ndpLog(result: LabResult): Record<string, unknown>[] {
  return result.serverLog.flatMap((l) => {
    try {
      const v = JSON.parse(l);
      return v?.subsystem === "ndp" ? [v] : [];
    } catch {
      return [];
    }
  });
}

function at(result: LabResult, stage: string): number {
  const s = result.stages.find((x) => x.name === stage);
  assert.ok(s, `no ${stage} stage: ${result.stages.map((x) => x.name)}`);
  return s.ms;
}

Deno.test("with router advertisements iPXE fetches its boot script without the IPv6 wait", async (t) => {
  const mac = "52:54:00:ab:0e:01";
  const runs: Record<"with" | "without", LabResult | undefined> = {
    with: undefined,
    without: undefined,
  };
  for (const [name, ipv6] of [["with", true], ["without", false]] as const) {
    await t.step(`${name} the responder`, async () => {
      const result = await runLab({
        firmware: "bios",
        nic: "virtio-net-pci",
        tree: fixture.tree,
        server: server(ipv6),
        prefix: "abr",
        mac,
        timeoutMs: 150_000,
        logger: silentLogger,
      });
      const why = `${result.error}\n--- serial (tail)\n${result.serial.slice(-2000)}\n` +
        `--- astralboot (tail)\n${result.serverLog.slice(-30).join("\n")}`;
      assert.ok(result.ok, why);
      const log = ndpLog(result);
      if (ipv6) {
        const answered = log.filter((l) =>
          l.msg === "answered router solicitation: no IPv6 router here"
        );
        assert.deepEqual(answered.map((l) => l.mac), [mac], why);
      } else {
        assert.ok(
          log.some((l) => l.level === "info" && /^IPv6 is off on br0/.test(String(l.msg))),
          why,
        );
        assert.ok(!log.some((l) => /answered/.test(String(l.msg))), why);
      }
      runs[name] = result;
    });
  }
  const withRa = runs.with, without = runs.without;
  if (!withRa || !without) return;
  const a = at(withRa, "boot-script") - at(withRa, "ipxe-dhcp");
  const b = at(without, "boot-script") - at(without, "ipxe-dhcp");
  console.log(
    `with router advertisements:\n${formatStages(withRa.stages)}\n\n` +
      `without:\n${formatStages(without.stages)}\n\n` +
      `iPXE DHCP → boot script: ${(a / 1000).toFixed(2)} s with, ${
        (b / 1000).toFixed(2)
      } s without`,
  );
  // The wait without an answer is ~16 s (iPXE's router solicitation timer); with one it is
  // gone. 8 s of margin on either side, so a slow machine does not flip the result.
  assert.ok(b >= 8000, `without: ${b} ms; iPXE did not wait for an advertisement?`);
  assert.ok(a < b - 8000, `with: ${a} ms, without: ${b} ms`);
});
