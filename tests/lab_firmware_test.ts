/**
 * Every firmware a site owns, booted from Astral Boot itself in throwaway namespaces (prefix
 * `abf`), each a real QEMU VM under TCG:
 *
 * - UEFI with Secure Boot on (OVMF with Microsoft's keys): shim → Debian's signed GRUB →
 *   the signed kernel, whose /init reads the SecureBoot variable and says it is on; with
 *   Astral Boot handing out addresses, and in proxy mode beside a dnsmasq that does.
 * - Plain UEFI (no keys) with the same chain: shim and GRUB boot with Secure Boot off too, so
 *   one `[boot] secure_boot` serves every x86-64 UEFI machine of a site.
 * - BIOS and UEFI in proxy mode beside dnsmasq: the iPXE chains, with the machine known to
 *   the server only through the neighbour table (another server gave its address).
 *
 * Needs root, qemu-system-x86, ovmf, ipxe, dnsmasq, tcpdump and tshark (tests/setup.sh); the
 * fixture downloads shim-signed and grub-efi-amd64-signed with the kernel.
 */
import assert from "node:assert/strict";
import { buildFixture, SECURE_BOOT_OFF, SECURE_BOOT_ON } from "../lab/fixture.ts";
import type { Firmware } from "../lab/firmware.ts";
import { runLab } from "../lab/lab.ts";
import { astralbootServer, type LabDhcp } from "../lab/servers.ts";
import { formatStages, type StageName } from "../lab/stages.ts";
import { run } from "./netns.ts";
import { assertBooted, jsonLog } from "./lab_checks.ts";
import { silentLogger } from "../log.ts";

const fixture = await buildFixture({ logger: silentLogger });

const GRUB_CHAIN: StageName[] = [
  "dhcp-discover",
  "dhcp-offer",
  "first-stage-tftp",
  "second-stage-tftp",
  "boot-script",
  "kernel",
  "initrd",
  "marker",
];

Deno.test({
  name: "Secure Boot and proxy mode: every row reaches the marker from Astral Boot",
  async fn(t) {
    const table: {
      firmware: Firmware;
      dhcp: LabDhcp;
      mac: string;
      stages: StageName[];
      /** The server hands out shim → GRUB; default what the firmware needs. */
      secureBoot?: boolean;
    }[] = [
      { firmware: "uefi-secure", dhcp: "server", mac: "52:54:00:ab:f0:01", stages: GRUB_CHAIN },
      { firmware: "uefi-secure", dhcp: "proxy", mac: "52:54:00:ab:f0:02", stages: GRUB_CHAIN },
      {
        firmware: "uefi",
        dhcp: "server",
        mac: "52:54:00:ab:f0:05",
        stages: GRUB_CHAIN,
        secureBoot: true,
      },
      {
        firmware: "bios",
        dhcp: "proxy",
        mac: "52:54:00:ab:f0:03",
        stages: [
          "dhcp-discover",
          "dhcp-offer",
          "ipxe-dhcp",
          "boot-script",
          "kernel",
          "initrd",
          "marker",
        ],
      },
      {
        firmware: "uefi",
        dhcp: "proxy",
        mac: "52:54:00:ab:f0:04",
        stages: [
          "dhcp-discover",
          "dhcp-offer",
          "first-stage-tftp",
          "ipxe-dhcp",
          "boot-script",
          "kernel",
          "initrd",
          "marker",
        ],
      },
    ];
    const summary: string[] = [];
    for (const row of table) {
      const chain = row.secureBoot ? " with shim → GRUB" : "";
      const name = `${row.firmware}${chain}, DHCP ${row.dhcp}`;
      await t.step(name, async () => {
        const started = Date.now();
        const result = await runLab({
          firmware: row.firmware,
          nic: "virtio-net-pci",
          dhcp: row.dhcp,
          secureBoot: row.secureBoot,
          mac: row.mac,
          tree: fixture.tree,
          server: astralbootServer(),
          // BIOS: no sga, whose drawing of iPXE's menu costs ~8 s under TCG.
          sga: false,
          prefix: "abf",
          timeoutMs: 240_000,
          logger: silentLogger,
        });
        const marker = result.stages.find((s) => s.name === "marker");
        summary.push(
          `${name}: marker at ${marker ? (marker.ms / 1000).toFixed(1) : "-"} s, run ${
            ((Date.now() - started) / 1000).toFixed(1)
          } s\n${formatStages(result.stages)}`,
        );
        const why = assertBooted(result, row.stages);

        const log = jsonLog(result.serverLog);
        const tftpDone = log.filter((l) => l.subsystem === "tftp" && l.msg === "transfer done")
          .map((l) => String(l.file));
        const requests = log.filter((l) => l.subsystem === "http" && l.msg === "request")
          .map((l) => `${l.status} ${l.path}`);
        if (row.firmware === "uefi-secure" || row.secureBoot) {
          // The firmware itself says whether Secure Boot is on, and the chain was ours, file by
          // file.
          const state = row.firmware === "uefi-secure" ? SECURE_BOOT_ON : SECURE_BOOT_OFF;
          assert.ok(result.serial.split("\n").includes(state), why);
          for (
            const file of ["shimx64.efi", "grubx64.efi", "/grub/grub.cfg", "/grub/choose/tiny"]
          ) {
            assert.ok(tftpDone.includes(file), `${file} in ${tftpDone.join(", ")}`);
          }
          for (const file of ["/image/tiny/vmlinuz", "/image/tiny/initrd.gz"]) {
            assert.ok(tftpDone.includes(file), `${file} in ${tftpDone.join(", ")}`);
          }
          // The menu choice was made for this machine, which the server knew by its address.
          const chosen = log.find((l) => l.msg === "sticky choice");
          assert.deepEqual([chosen?.mac, chosen?.os], [row.mac, "tiny"], why);
        } else {
          const mac = row.mac.replaceAll(":", "-");
          // One script request, naming the machine (and what iPXE knows of it).
          assert.ok(
            requests.some((r) => r.startsWith(`200 /boot.ipxe?mac=${mac}&`)),
            requests.join("\n"),
          );
          assert.ok(requests.includes("200 /image/tiny/vmlinuz"), requests.join("\n"));
        }
        const replies = log.filter((l) => l.subsystem === "dhcp").map((l) => String(l.msg));
        if (row.dhcp === "proxy") {
          // Boot information only: the address came from the peer, never from us.
          assert.ok(replies.some((m) => m.startsWith("ProxyDHCPOFFER")), replies.join("\n"));
          assert.ok(!replies.some((m) => /^DHCP(OFFER|ACK)/.test(m)), replies.join("\n"));
          const acks = (result.peerLog ?? []).filter((l) =>
            /DHCPACK\(eth0\) 10\.77\.0\.1[6-9]\d/.test(l)
          );
          assert.ok(acks.some((l) => l.includes(row.mac)), why);
        } else {
          assert.ok(replies.some((m) => m.startsWith("DHCPACK")), replies.join("\n"));
        }
        const left = await run(["ip", "netns", "list"]);
        assert.doesNotMatch(left.stdout, /^abf-/m, "namespaces removed (the peer's too)");
      });
    }
    console.log(summary.join("\n\n"));
  },
});
