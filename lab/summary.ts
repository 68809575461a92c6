/**
 * The table `astralboot lab --all` prints at the end: one row per boot of the matrix, with
 * whether it reached the marker, when, how long the whole run took and how many TFTP packets
 * it sent (none for UEFI HTTP boot).
 *
 * @module
 */
import type { LabResult } from "./lab.ts";
import type { LabRun } from "./main.ts";

/** One finished boot of the matrix. */
export interface SummaryRow {
  run: LabRun;
  result: Pick<LabResult, "ok" | "stages" | "tftpPackets">;
  /** Wall time of the whole run (namespace, server, VM, clean-up), ms. */
  runMs: number;
}

/** The summary table, a header and one line per row, columns aligned. */
export function formatSummary(rows: readonly SummaryRow[]): string {
  const table = [["firmware", "nic", "dhcp", "result", "marker", "run", "tftp packets"]];
  for (const { run, result, runMs } of rows) {
    const marker = result.stages.find((s) => s.name === "marker");
    table.push([
      run.firmware,
      run.nic,
      run.dhcp,
      result.ok ? "ok" : "FAILED",
      marker ? `${(marker.ms / 1000).toFixed(1)} s` : "-",
      `${(runMs / 1000).toFixed(1)} s`,
      String(result.tftpPackets),
    ]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return table.map((r) =>
    r.map((c, i) => (i >= 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ")
      .trimEnd()
  ).join("\n");
}
