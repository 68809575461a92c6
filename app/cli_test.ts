import assert from "node:assert/strict";
import { parseArgs, UsageError } from "./cli.ts";

Deno.test("parseArgs reads commands and flags", async (t) => {
  const cases: [string[], Partial<ReturnType<typeof parseArgs>>][] = [
    [[], { command: "serve", rest: [] }],
    [["-c", "a.toml", "-l", "data"], {
      command: "serve",
      config: "a.toml",
      local: "data",
      rest: [],
    }],
    [["serve", "--config=a.toml", "-i", "eth1"], {
      command: "serve",
      config: "a.toml",
      interface: "eth1",
      rest: [],
    }],
    [["config", "-c", "x.toml"], { command: "config", config: "x.toml", rest: [] }],
    [["export", "out"], { command: "export", rest: ["out"] }],
    [["lab", "--firmware", "uefi", "--nic", "e1000"], {
      command: "lab",
      rest: ["--firmware", "uefi", "--nic", "e1000"],
    }],
    [["machine", "reinstall", "52:54:00:00:00:01"], {
      command: "machine",
      rest: ["reinstall", "52:54:00:00:00:01"],
    }],
    [["--log-level", "debug", "leases"], { command: "leases", logLevel: "debug", rest: [] }],
    [["--version"], { command: "version" }],
    [["serve", "-h"], { command: "help" }],
    [["lab", "--help"], { command: "lab", rest: ["--help"] }],
    [["--help", "lab"], { command: "help" }],
  ];
  for (const [argv, expected] of cases) {
    await t.step(argv.join(" ") || "(none)", () => {
      const got = parseArgs(argv);
      for (const [k, v] of Object.entries(expected)) {
        assert.deepEqual(got[k as keyof typeof got], v, k);
      }
    });
  }
});

Deno.test("parseArgs refuses mistakes with one clear line", async (t) => {
  const cases: [string[], RegExp][] = [
    [["--bogus"], /unknown option --bogus/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["-c"], /-c needs a value/],
    [["-l", "-c"], /-l needs a value/],
    [["export"], /export needs one folder/],
    [["serve", "extra"], /unexpected argument "extra" for serve/],
    [["--log-level", "loud"], /--log-level must be/],
  ];
  for (const [argv, expected] of cases) {
    await t.step(argv.join(" "), () => {
      assert.throws(
        () => parseArgs(argv),
        (e: unknown) => e instanceof UsageError && expected.test(e.message),
      );
    });
  }
});
