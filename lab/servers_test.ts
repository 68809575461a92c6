import assert from "node:assert/strict";
import { astralbootCommand, HOST_READ_PATHS } from "./servers.ts";

Deno.test("the lab runs Astral Boot with reads and writes limited to its tree and data dir", () => {
  const argv = astralbootCommand({ read: ["/srv/tree", "/tmp/work"], write: ["/tmp/work"] });
  const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const read = argv.find((a) => a.startsWith("--allow-read"));
  const write = argv.find((a) => a.startsWith("--allow-write"));
  assert.equal(read, `--allow-read=/srv/tree,/tmp/work,${HOST_READ_PATHS.join(",")}`);
  assert.equal(write, "--allow-write=/tmp/work");
  // Not the source tree: every boot in tests/lab_test.ts runs like this, so the templates and
  // everything else the server needs must come embedded in the program.
  assert.ok(!read!.split(/[=,]/).includes(repo), read);
  assert.ok(!argv.includes("-A") && !argv.includes("--allow-all") && !argv.includes("--allow-run"));
  assert.ok(!argv.some((a) => a.startsWith("--allow-env")));
});

Deno.test("with a bundle the lab runs that file, on its own and with the same limits", () => {
  const argv = astralbootCommand({ read: ["/srv/tree"], write: ["/tmp/work"] }, "/b/astralboot.js");
  assert.equal(argv.at(-1), "/b/astralboot.js");
  assert.ok(argv.includes("--no-config") && !argv.some((a) => a.startsWith("--config")));
  assert.ok(argv.includes("--allow-write=/tmp/work"));
  assert.ok(!argv.some((a) => a.endsWith("main.ts")));
});
