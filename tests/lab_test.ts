/**
 * The product test of the lab: QEMU VMs PXE-boot the fixture from Astral Boot itself
 * (`main.ts serve -c <lab config> -l <fixture tree>`), inside throwaway namespaces, in all four
 * firmware × NIC combinations, one after the other. Each must reach the marker its /init
 * prints, through the stages its firmware is known to take (docs/FIRMWARE.md).
 */
import assert from "node:assert/strict";
import { buildFixture, MARKER } from "../lab/fixture.ts";
import { type Firmware, type Nic, runLab } from "../lab/lab.ts";
import { astralbootServer } from "../lab/servers.ts";
import { formatStages, type StageName } from "../lab/stages.ts";
import { run } from "./netns.ts";
import { assertBooted, jsonLog } from "./lab_checks.ts";
import { silentLogger } from "../log.ts";

const fixture = await buildFixture({ logger: silentLogger });

const BASE: StageName[] = ["dhcp-discover", "dhcp-offer", "ipxe-dhcp", "boot-script", "kernel"];
const END: StageName[] = ["initrd", "marker"];

Deno.test("Astral Boot PXE-boots the fixture in every firmware × NIC combination", async (t) => {
  const table: { firmware: Firmware; nic: Nic; stages: StageName[] }[] = [
    // BIOS: QEMU's NIC ROM is iPXE, so its first DHCP already gets the HTTP script.
    { firmware: "bios", nic: "virtio-net-pci", stages: [...BASE, ...END] },
    { firmware: "bios", nic: "e1000", stages: [...BASE, ...END] },
    // UEFI virtio: OVMF's own PXE client fetches snponly.efi over TFTP, then iPXE asks again.
    {
      firmware: "uefi",
      nic: "virtio-net-pci",
      stages: ["dhcp-discover", "dhcp-offer", "first-stage-tftp", ...BASE.slice(2), ...END],
    },
    // UEFI e1000: OVMF has no e1000 driver, so the NIC's iPXE EFI ROM boots (no TFTP).
    { firmware: "uefi", nic: "e1000", stages: [...BASE, ...END] },
  ];
  const summary: string[] = [];
  for (const row of table) {
    await t.step(`${row.firmware} + ${row.nic}`, async () => {
      // The first boot's echo fails at once, as `astralboot lab | head` makes it: the boot goes
      // on, the console is still read whole.
      let echoes = 0;
      const brokenEcho = () => {
        echoes++;
        throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
      };
      const result = await runLab({
        firmware: row.firmware,
        nic: row.nic,
        tree: fixture.tree,
        server: astralbootServer(),
        timeoutMs: 150_000,
        logger: silentLogger,
        onSerialLine: row === table[0] ? brokenEcho : undefined,
      });
      summary.push(`${row.firmware} + ${row.nic}:\n${formatStages(result.stages)}`);
      const why = assertBooted(result, row.stages);
      if (row === table[0]) {
        assert.equal(echoes, 1, "echoed until it failed, then not again");
        assert.ok(result.serial.includes(MARKER), why);
      }

      // It was Astral Boot that answered: its own log shows the DHCP exchange and the fetches.
      const log = jsonLog(result.serverLog);
      assert.ok(log.some((l) => l.subsystem === "dhcp" && /ACK/.test(l.msg ?? "")), why);
      const fetched = log.filter((l) => l.subsystem === "http").map((l) => String(l.path ?? ""));
      for (const file of ["vmlinuz", "initrd.gz"]) {
        assert.ok(fetched.some((p) => p.endsWith(`/tiny/${file}`)), `${file} in ${fetched}`);
      }
      if (row.stages.includes("first-stage-tftp")) {
        assert.ok(log.some((l) => l.subsystem === "tftp" && JSON.stringify(l).includes("snponly")));
      }

      const left = await run(["ip", "netns", "list"]);
      assert.ok(!left.stdout.includes(result.namespace), "namespace removed");
    });
  }
  console.log(summary.join("\n\n"));
});
