/**
 * Every firmware a site owns, booted from Astral Boot itself in throwaway namespaces (prefix
 * `abf`), each a real QEMU VM under TCG:
 *
 * - ARM64 UEFI (AAVMF on an emulated virt machine): its own PXE → shim → Debian's signed GRUB
 *   → an arm64 kernel, all over TFTP, GRUB reading the arm64 netboot prefix's grub.cfg.
 * - UEFI HTTP boot (OVMF with its PXE clients turned off): iPXE by URL, then iPXE's own chain
 *   over HTTP, and not one TFTP packet on the link.
 * - UEFI with Secure Boot on (OVMF with Microsoft's keys): shim → Debian's signed GRUB →
 *   the signed kernel, whose /init reads the SecureBoot variable and says it is on; with
 *   Astral Boot handing out addresses, and in proxy mode beside a dnsmasq that does.
 * - Plain UEFI (no keys) with the same chain: shim and GRUB boot with Secure Boot off too, so
 *   one `[boot] secure_boot` serves every x86-64 UEFI machine of a site.
 * - BIOS and UEFI in proxy mode beside dnsmasq: the iPXE chains, with the machine known to
 *   the server only through the neighbour table (another server gave its address).
 *
 * Needs root, qemu-system-x86, ovmf, ipxe, dnsmasq, tcpdump and tshark, and qemu-system-arm,
 * qemu-efi-aarch64 and debian-installer-12-netboot-arm64 for ARM64 (tests/setup.sh); the
 * fixture downloads shim-signed and grub-efi-amd64-signed with the kernel.
 */
import assert from "node:assert/strict";
import { buildFixture, SECURE_BOOT_OFF, SECURE_BOOT_ON } from "../lab/fixture.ts";
import { ARM64_OS } from "../lab/fixture_arm64.ts";
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

/** What the server's JSON log says was fetched: TFTP transfers done, HTTP requests answered. */
function fetched(serverLog: string[]): { tftp: string[]; http: string[] } {
  const log = jsonLog(serverLog);
  return {
    tftp: log.filter((l) => l.subsystem === "tftp" && l.msg === "transfer done")
      .map((l) => String(l.file)),
    http: log.filter((l) => l.subsystem === "http" && l.msg === "request")
      .map((l) => `${l.status} ${l.path}`),
  };
}

Deno.test({
  name: "ARM64 UEFI and UEFI HTTP boot reach the marker from Astral Boot",
  async fn(t) {
    const summary: string[] = [];
    const boot = async (firmware: Firmware, mac: string, stages: StageName[]) => {
      const started = Date.now();
      const result = await runLab({
        firmware,
        nic: "virtio-net-pci",
        mac,
        tree: fixture.tree,
        server: astralbootServer(),
        prefix: "abf",
        timeoutMs: 300_000,
        logger: silentLogger,
      });
      const marker = result.stages.find((s) => s.name === "marker");
      summary.push(
        `${firmware}: marker at ${marker ? (marker.ms / 1000).toFixed(1) : "-"} s, run ${
          ((Date.now() - started) / 1000).toFixed(1)
        } s, ${result.tftpPackets} TFTP packets\n${formatStages(result.stages)}`,
      );
      const why = assertBooted(result, stages);
      const left = await run(["ip", "netns", "list"]);
      assert.doesNotMatch(left.stdout, /^abf-/m, "namespaces removed");
      return { result, why, ...fetched(result.serverLog) };
    };

    await t.step("ARM64: AAVMF's PXE → shim → GRUB → the arm64 kernel, over TFTP", async () => {
      const { result, why, tftp, http } = await boot("arm64", "52:54:00:ab:f0:11", GRUB_CHAIN);
      // The arm64 kernel ran the fixture's /init (the VM is an aarch64 one).
      assert.match(result.serial, /init running on aarch64 /, why);
      const files = [
        "shimaa64.efi",
        "grubaa64.efi",
        "/debian-installer/arm64/grub/grub.cfg",
        `/grub/choose/${ARM64_OS}`,
        `/image/${ARM64_OS}/vmlinuz`,
        `/image/${ARM64_OS}/initrd.gz`,
      ];
      for (const file of files) assert.ok(tftp.includes(file), `${file} in ${tftp.join(", ")}`);
      assert.deepEqual(http, [], "GRUB reads everything over TFTP");
      // ARM64 asked as arch 11 and was offered shim (boot/bootfile.ts).
      const offer = jsonLog(result.serverLog).find((l) =>
        l.subsystem === "dhcp" && String(l.msg).startsWith("DHCPOFFER")
      );
      assert.deepEqual([offer?.arch, offer?.bootfile], [11, "shimaa64.efi"], JSON.stringify(offer));
    });

    await t.step("UEFI HTTP boot: the loader by URL, then iPXE over HTTP; no TFTP", async () => {
      const { result, why, tftp, http } = await boot("uefi-http", "52:54:00:ab:f0:12", [
        "dhcp-discover",
        "dhcp-offer",
        "first-stage-http",
        "ipxe-dhcp",
        "boot-script",
        "kernel",
        "initrd",
        "marker",
      ]);
      assert.equal(result.tftpPackets, 0, `TFTP on the wire: ${why}`);
      assert.deepEqual(tftp, []);
      for (const path of ["/tftp/snponly.efi", "/image/tiny/vmlinuz", "/image/tiny/initrd.gz"]) {
        assert.ok(http.includes(`200 ${path}`), `${path} in ${http.join("\n")}`);
      }
      // OVMF's own HTTP client asked first (vendor class HTTPClient, arch 16) and got a URL.
      assert.ok(result.serial.includes(">>Start HTTP Boot over IPv4"), why);
      assert.ok(!result.serial.includes("Start PXE"), why);
      const offer = jsonLog(result.serverLog).find((l) =>
        l.subsystem === "dhcp" && String(l.msg).startsWith("DHCPOFFER")
      );
      assert.deepEqual(
        [offer?.client, offer?.arch, offer?.bootfile],
        ["http", 16, "http://10.77.0.1/tftp/snponly.efi"],
        JSON.stringify(offer),
      );
    });
    console.log(summary.join("\n\n"));
  },
});
