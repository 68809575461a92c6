/**
 * Installs in QEMU (TCG) inside throwaway namespaces (prefix `abi`), served by Astral Boot
 * itself:
 *
 * 1. Install once, on BIOS and on UEFI: a VM boots the install stand-in, which calls back; the
 *    same VM (same MAC, same disk) boots again and gets the local-disk script, which boots its
 *    disk: the MBR on BIOS (sanboot), `\EFI\BOOT\BOOTX64.EFI` on UEFI (exit to the firmware).
 * 2. The real Debian installer (from debian-installer-12-netboot-amd64) boots, fetches the
 *    preseed rendered for its machine, and its early_command reports what debconf holds.
 *
 * Needs root, qemu-system-x86, ovmf, ipxe, tcpdump, tshark, the Debian package above, and for
 * the UEFI disk grub-efi-amd64-bin, dosfstools and mtools.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../state/db.ts";
import { MachineRegistry } from "../state/machines.ts";
import { BootHistory } from "../state/history.ts";
import { mustParseMac } from "../net/mac.ts";
import { createLogger } from "../log.ts";
import { buildFixture, type Fixture } from "../lab/fixture.ts";
import type { Firmware, Nic } from "../lab/firmware.ts";
import {
  bootSector,
  buildInstallerTree,
  CALLBACK_MARKER,
  DISK_MARKER,
  efiDisk,
  installerServer,
  type LabMachine,
  parseLogLine,
} from "./lab_installer.ts";
import { type LabResult, runLab } from "../lab/lab.ts";
import { formatStages } from "../lab/stages.ts";

const logger = createLogger({ level: "info", format: "text", write: (l) => console.error(l) });

/** The server's JSON log lines. */
function serverLog(result: LabResult): Record<string, unknown>[] {
  return result.serverLog.map(parseLogLine).filter((l): l is Record<string, unknown> => l !== null);
}

/** The server's log, one short line per entry, for failure reports. */
function logSummary(result: LabResult): string {
  return serverLog(result).map((l) =>
    `${String(l.time).slice(11, 23)} ${l.subsystem} ${l.msg} ${l.path ?? l.report ?? ""}`
  ).join("\n");
}

/** Paths of the HTTP requests the server answered, with their status. */
function requests(result: LabResult): string[] {
  return serverLog(result).filter((l) => l.subsystem === "http" && l.msg === "request")
    .map((l) => `${l.status} ${l.path}`);
}

function report(name: string, result: LabResult): void {
  console.error(`--- ${name}: ${result.ok ? "ok" : result.error}`);
  console.error(formatStages(result.stages));
  console.error(result.ok ? requests(result).join("\n") : logSummary(result));
  if (!result.ok) console.error(result.serial.split("\n").slice(-40).join("\n"));
}

/** One firmware of the install-once lab: its VM, and the disk the install leaves behind. */
interface InstallRow {
  firmware: Firmware;
  mac: string;
  /** Writes the "installed" disk into `dir`; returns its file. */
  disk: (dir: string) => Promise<string>;
  /** QEMU arguments that attach that disk. */
  drive: (file: string) => string[];
  nicBootIndex?: number;
  /** The NIC of the second boot, when not e1000; see the UEFI row. */
  secondNic?: Nic;
  /** The second boot goes through shim → GRUB (an installed UEFI machine), not iPXE. */
  grubSecondBoot?: boolean;
}

const INSTALL_ROWS: InstallRow[] = [
  // BIOS: the local-disk script boots drive 0x80 (sanboot), the disk's MBR prints the marker.
  {
    firmware: "bios",
    mac: "52:54:00:ab:10:01",
    disk: async (dir) => {
      const file = `${dir}/disk.img`;
      const image = new Uint8Array(1 << 20);
      image.set(bootSector(`\r\n${DISK_MARKER}\r\n${DISK_MARKER}\r\n`));
      await Deno.writeFile(file, image);
      return file;
    },
    drive: (file) => ["-drive", `file=${file},format=raw,if=ide,index=0`],
  },
  // UEFI, with the server's defaults (no `secure_boot`): for the installed machine the DHCP
  // answer names shim (the tree holds the chain), so the second boot is OVMF's own PXE → shim →
  // GRUB, whose grub.cfg for that machine finds \EFI\BOOT\BOOTX64.EFI on the disk and
  // chainloads it; that prints the marker. virtio for it: OVMF's PXE drives virtio itself, while
  // e1000's iPXE ROM would take the boot (the stand-in's first boot needs e1000, its initramfs
  // loads e1000.ko). iPXE's own ways to the disk fail under OVMF (docs/FIRMWARE.md).
  {
    firmware: "uefi",
    mac: "52:54:00:ab:10:02",
    disk: (dir) => efiDisk(dir, `${DISK_MARKER}\n${DISK_MARKER}`),
    drive: (file) => [
      "-drive",
      `file=${file},format=raw,if=none,id=disk`,
      "-device",
      "virtio-blk-pci,drive=disk,bootindex=1",
    ],
    nicBootIndex: 0,
    secondNic: "virtio-net-pci",
    grubSecondBoot: true,
  },
];

Deno.test({
  name: "install once: the callback makes the next boot of the same VM boot its disk",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const fixture = await buildFixture({ logger });
    for (const row of INSTALL_ROWS) {
      await t.step(row.firmware, (t) => installOnce(t, fixture, row));
    }
  },
});

async function installOnce(t: Deno.TestContext, fixture: Fixture, row: InstallRow) {
  const dir = await Deno.makeTempDir({ prefix: "abi-install-" });
  try {
    const tree = `${dir}/tree`;
    await buildInstallerTree(tree, { fixture, logger });
    const disk = await row.disk(dir);
    const mac = row.mac;
    const macUrl = mac.replaceAll(":", "-");
    const machines: LabMachine[] = [{ mac, hostname: "lab-tiny-1", os: "tiny" }];
    const dataDir = `${dir}/data`;
    const boot = (marker: string, nic: Nic = "e1000") =>
      runLab({
        firmware: row.firmware,
        // e1000: the install stand-in's initramfs loads e1000.ko; on UEFI the NIC's iPXE ROM
        // drives it (OVMF has no e1000 driver).
        nic,
        tree,
        server: installerServer({ machines, dataDir }),
        mac,
        qemuExtra: row.drive(disk),
        nicBootIndex: row.nicBootIndex,
        marker,
        images: { kernel: "vmlinuz", initrd: "initrd.gz" },
        prefix: "abi",
        timeoutMs: 180_000,
        logger,
      });

    await t.step("first boot: the stand-in installs and calls back", async () => {
      const first = await boot(CALLBACK_MARKER);
      report(`${row.firmware} first boot`, first);
      assert.ok(first.ok, first.error);
      const paths = requests(first);
      // The DHCP answer names the MAC, and /boot.ipxe answers the kernel line at once.
      assert.ok(
        paths.some((p) => p.startsWith(`200 /boot.ipxe?mac=${macUrl}&uuid=`)),
        paths.join("\n"),
      );
      assert.ok(!paths.some((p) => p.startsWith("200 /boot/")), paths.join("\n"));
      assert.ok(paths.includes("200 /image/tiny/callback.gz"), paths.join("\n"));
      // The access log shows the callback with its token redacted.
      assert.ok(
        paths.includes(`200 /api/machines/${macUrl}/installed/(token)`),
        paths.join("\n"),
      );
      const done = serverLog(first).find((l) =>
        l.msg === "install finished: next boot from local disk"
      );
      assert.equal(done?.mac, mac);
    });

    await t.step(
      "second boot: the local-disk script, and the disk's own boot code runs",
      async () => {
        const second = await boot(DISK_MARKER, row.secondNic);
        report(`${row.firmware} second boot`, second);
        assert.ok(second.ok, second.error);
        const paths = requests(second);
        if (row.grubSecondBoot) {
          // shim → GRUB: grub.cfg over TFTP, for the machine holding the asking address.
          const stages = second.stages.map((s) => s.name);
          assert.ok(stages.includes("second-stage-tftp"), stages.join(" "));
          assert.ok(!paths.some((p) => p.includes("/boot.ipxe")), paths.join("\n"));
          assert.match(
            second.serial,
            /Astral Boot: chainloading \(hd\d,gpt1\)\/efi\/boot\/bootx64\.efi/,
          );
        } else {
          assert.ok(
            paths.some((p) => p.startsWith(`200 /boot.ipxe?mac=${macUrl}&uuid=`)),
            paths.join("\n"),
          );
        }
        assert.ok(
          !paths.some((p) => p.includes("/image/")),
          `no image fetched: ${paths.join("\n")}`,
        );
        const local = serverLog(second).find((l) => l.msg === "installed: booting the local disk");
        assert.equal(local?.mac, mac);
      },
    );

    await t.step("the database remembers the install and what each boot was served", () => {
      const db = openDatabase(dataDir);
      try {
        const m = mustParseMac(mac);
        const registry = new MachineRegistry(db, {
          machines: [{ ...machines[0]!, mac: m, vars: {} }],
        });
        assert.equal(registry.get(m)!.state, "installed");
        const history = new BootHistory(db).lines(m).map((e) => `${e.kind} ${e.what}`);
        assert.deepEqual(history.reverse(), [
          "script start tiny (configured)",
          "installed install finished",
          "local-boot local disk (installed tiny)",
        ]);
      } finally {
        db.close();
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "the real Debian installer fetches its machine's preseed and applies it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "abi-di-" });
    try {
      const fixture = await buildFixture({ logger });
      const tree = `${dir}/tree`;
      await buildInstallerTree(tree, {
        fixture,
        logger,
        debian: true,
        // No IPv6: d-i would wait for router advertisements.
        debianCmdline: "console=ttyS0,115200n8 DEBIAN_FRONTEND=text ipv6.disable=1",
      });
      const mac = "52:54:00:ab:20:01";
      const macUrl = "52-54-00-ab-20-01";
      const machines: LabMachine[] = [
        { mac, hostname: "lab-deb-1", os: "debian", class: "minimal" },
      ];
      const serial: string[] = [];
      const result = await runLab({
        firmware: "bios",
        nic: "e1000",
        tree,
        server: installerServer({ machines, dataDir: `${dir}/data` }),
        mac,
        memoryMb: 1024,
        // d-i never prints our marker; the server seeing its early_command report ends the run.
        marker: "ASTRALBOOT-NOT-ON-SERIAL",
        serverMarker: /"msg":"installer progress".*hostname=lab-deb-1/,
        images: { kernel: "linux", initrd: "initrd.gz" },
        prefix: "abi",
        timeoutMs: 300_000,
        onSerialLine: (l) => serial.push(l),
        logger,
      });
      report("debian installer", result);
      assert.ok(result.ok, result.error);
      const paths = requests(result);
      // One script request: the DHCP answer names the MAC, /boot.ipxe answers the kernel line.
      assert.ok(
        paths.some((p) => p.startsWith(`200 /boot.ipxe?mac=${macUrl}&uuid=`)),
        paths.join("\n"),
      );
      assert.ok(!paths.some((p) => p.startsWith("200 /boot/")), paths.join("\n"));
      assert.ok(paths.includes("200 /image/debian/linux"), paths.join("\n"));
      assert.ok(paths.includes("200 /image/debian/initrd.gz"), paths.join("\n"));
      const preseed = serverLog(result).find((l) => l.msg === "config served");
      assert.deepEqual(
        [preseed?.mac, preseed?.config, preseed?.class, preseed?.template],
        [mac, "preseed", "minimal", "boot/debian/template/preseed.vto"],
      );
      assert.ok(paths.includes(`200 /config/debian/preseed?mac=${macUrl}`), paths.join("\n"));
      // The host name came from the kernel command line and the preseed; the mirror only
      // from the preseed: d-i's debconf holds both once the file was applied.
      const progress = serverLog(result).find((l) => l.msg === "installer progress");
      assert.equal(progress?.report, "step=preseed hostname=lab-deb-1 mirror=deb.debian.org");
      assert.equal(progress?.mac, mac);
      // The d-i kernel says on serial that it was booted with the rendered command line.
      assert.ok(
        serial.some((l) =>
          l.includes(`url=http://10.77.0.1/config/debian/preseed?mac=${macUrl} hostname=lab-deb-1`)
        ),
        "kernel command line on serial",
      );
      const db = openDatabase(`${dir}/data`);
      try {
        const m = mustParseMac(mac);
        const registry = new MachineRegistry(db, {
          machines: [{ ...machines[0]!, mac: m, vars: {} }],
        });
        assert.equal(registry.get(m)!.state, "installing");
        assert.deepEqual(
          new BootHistory(db).lines(m).filter((e) => e.kind !== "script").map((e) =>
            `${e.kind} ${e.what}`
          ),
          [
            "progress step=preseed hostname=lab-deb-1 mirror=deb.debian.org",
            "config debian/minimal preseed",
          ],
        );
      } finally {
        db.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
