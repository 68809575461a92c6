/**
 * What every lab boot test checks: the VM reached the marker through the stages its firmware
 * takes, in order; and the server's JSON log lines, to see who answered what.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MARKER } from "../lab/fixture.ts";
import type { LabResult } from "../lab/lab.ts";
import type { StageName } from "../lab/stages.ts";

/** Server log lines that parse as JSON (Astral Boot logs JSON lines when not on a terminal). */
export function jsonLog(
  lines: string[],
): { subsystem?: string; msg?: string; [k: string]: unknown }[] {
  return lines.flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      return [];
    }
  });
}

/**
 * Asserts that the boot reached the marker through exactly `stages`, in boot order. Returns
 * the failure report (serial, server and peer tails) for the caller's own assertions.
 */
export function assertBooted(result: LabResult, stages: StageName[]): string {
  const why = `${result.error}\n--- serial (tail)\n${result.serial.slice(-3000)}\n` +
    `--- astralboot (tail)\n${result.serverLog.slice(-40).join("\n")}` +
    (result.peerLog ? `\n--- dnsmasq peer (tail)\n${result.peerLog.slice(-20).join("\n")}` : "");
  assert.ok(result.ok, why);
  assert.ok(result.serial.includes(MARKER));
  assert.deepEqual(result.stages.map((s) => s.name), stages, why);
  const ms = result.stages.map((s) => s.ms);
  assert.deepEqual(ms, [...ms].sort((a, b) => a - b), "stages in boot order");
  return why;
}
