/**
 * Boot time: a real VM (QEMU, TCG) from power-on to the fixture's marker, served by Astral Boot
 * and by the dnsmasq reference (dnsmasq DHCP + TFTP with default settings, python's http.server
 * for the iPXE stage) from the same tree, alternating, medians. Each run is `runLab`: its own
 * namespace, bridge and tap, removed after.
 *
 * @module
 */
import { buildFixture } from "../../lab/fixture.ts";
import { type Firmware, type Nic, runLab } from "../../lab/lab.ts";
import { astralbootServer, dnsmasqServer, type LabServer } from "../../lab/servers.ts";
import { silentLogger } from "../../log.ts";
import { type BenchOptions, type BenchRow, type BenchTable, median, runAlone } from "./common.ts";

const ROWS: { firmware: Firmware; nic: Nic }[] = [
  { firmware: "bios", nic: "virtio-net-pci" },
  { firmware: "uefi", nic: "virtio-net-pci" },
];

/** Seconds from VM start to the marker, or an error naming the server and firmware. */
async function bootSeconds(
  server: LabServer,
  row: { firmware: Firmware; nic: Nic },
  tree: string,
): Promise<number> {
  const result = await runLab({
    ...row,
    tree,
    server,
    // Without sga BIOS iPXE does not draw its screen through the serial port (~8 s under TCG).
    sga: false,
    timeoutMs: 120_000,
    logger: silentLogger,
  });
  const marker = result.stages.find((s) => s.name === "marker");
  if (!result.ok || marker === undefined) {
    throw new Error(`${server.name} ${row.firmware}: no marker (${result.error ?? "?"})`);
  }
  return marker.ms / 1000;
}

/** BIOS and UEFI boot to the marker, Astral Boot against dnsmasq, runs alternated. */
export async function benchBoot(o: BenchOptions): Promise<BenchTable> {
  const fixture = await buildFixture({ logger: silentLogger });
  const runs = o.quick ? 1 : 3;
  const rows: BenchRow[] = [];
  for (const row of ROWS) {
    const ours: number[] = [];
    const ref: number[] = [];
    for (let i = 0; i < runs; i++) {
      // Alternated, so a machine that gets busier mid-run weighs on both sides alike.
      ours.push(await bootSeconds(astralbootServer(), row, fixture.tree));
      ref.push(await bootSeconds(dnsmasqServer(), row, fixture.tree));
      o.print(
        `  ${row.firmware} run ${i + 1}: astralboot ${ours.at(-1)!.toFixed(1)} s, ` +
          `dnsmasq ${ref.at(-1)!.toFixed(1)} s`,
      );
    }
    rows.push({
      name: `${row.firmware} ${row.nic === "virtio-net-pci" ? "virtio" : row.nic} to marker`,
      unit: "s",
      ours: median(ours),
      reference: median(ref),
      lowerIsBetter: true,
    });
  }
  return {
    title: "Boot time: power-on to the marker (QEMU under TCG, fixture kernel + busybox)",
    oursName: "astralboot",
    referenceName: "dnsmasq",
    rows,
    notes: [
      `median of ${runs} boots each, Astral Boot and dnsmasq alternated; lower is better`,
      "dnsmasq: DHCP + TFTP with default settings, python http.server for the iPXE script",
      "both hand out the same iPXE binaries and kernel; Astral Boot with its 1 s menu timeout",
    ],
  };
}

if (import.meta.main) await runAlone(benchBoot);
