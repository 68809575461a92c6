import assert from "node:assert/strict";
import {
  formatBytes,
  formatDuration,
  formatProgress,
  type Progress,
  progressPrinter,
} from "./commands.ts";

const base: Progress = {
  phase: "fetch",
  files: 3,
  filesTotal: 10,
  bytes: 5 * 1024 * 1024,
  bytesTotal: 20 * 1024 * 1024,
  blocks: 42,
  elapsedMs: 2000,
  rate: 2.5 * 1024 * 1024,
  etaMs: 6000,
};

Deno.test("formatBytes and formatDuration", async (t) => {
  const bytes: [number, string][] = [
    [0, "0 B"],
    [1023, "1023 B"],
    [1024, "1.0 KiB"],
    [1536 * 1024, "1.5 MiB"],
    [3 * 1024 ** 3, "3.0 GiB"],
  ];
  for (const [n, s] of bytes) await t.step(`${n} bytes`, () => assert.equal(formatBytes(n), s));
  const durations: [number, string][] = [[0, "0:00"], [65_000, "1:05"], [7_384_000, "2:03:04"]];
  for (const [ms, s] of durations) {
    await t.step(`${ms} ms`, () => assert.equal(formatDuration(ms), s));
  }
});

Deno.test("formatProgress: percentage, sizes, files, blocks, rate, ETA, bar", async (t) => {
  await t.step("with a bar that fits the width", () => {
    const line = formatProgress(base, 120);
    assert.equal(
      line,
      "[########......................] 25.0%  5.0 MiB/20.0 MiB  3/10 files  42 blocks  2.5 MiB/s  ETA 0:06",
    );
    assert.ok(line.length <= 120);
  });
  await t.step("no bar when the width is too small", () => {
    assert.equal(formatProgress(base, 0).startsWith("25.0%"), true);
  });
  await t.step("unknown ETA and the walk phase", () => {
    const line = formatProgress({ ...base, phase: "walk", etaMs: null }, 0);
    assert.match(line, /^walking tree .*ETA --:--$/);
  });
  await t.step("done shows the total time", () => {
    assert.match(
      formatProgress({ ...base, phase: "done", bytes: base.bytesTotal }, 0),
      /100\.0%.*in 0:02$/,
    );
  });
});

Deno.test("progressPrinter redraws on a terminal and prints periodic lines otherwise", async (t) => {
  await t.step("terminal: carriage return, clear to end of line, newline when done", () => {
    const out: string[] = [];
    const print = progressPrinter({ write: (s) => out.push(s), terminal: true, columns: 100 });
    print(base);
    print({ ...base, bytes: base.bytes + 1 });
    print({ ...base, phase: "done" });
    assert.equal(out.length, 3);
    assert.ok(out.every((s) => s.startsWith("\r") && s.includes("\x1b[K")));
    assert.ok(out[2]!.endsWith("\n") && !out[0]!.endsWith("\n"));
  });
  await t.step("plain: at most one line per interval, always the final one", () => {
    const out: string[] = [];
    const print = progressPrinter({
      write: (s) => out.push(s),
      terminal: false,
      plainIntervalMs: 5000,
    });
    for (const ms of [0, 1000, 4999, 5000, 9000, 10_001]) print({ ...base, elapsedMs: ms });
    print({ ...base, phase: "done", elapsedMs: 10_500 });
    assert.equal(out.length, 4);
    assert.ok(out.every((s) => s.endsWith("\n") && !s.includes("\r")));
  });
});
