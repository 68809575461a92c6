/**
 * The program as one file: `deno task bundle` makes dist/astralboot.js, which runs on its own
 * (no source tree, no deno.json): `--version`, `config` with a temporary config, and a BIOS VM
 * PXE-booting the lab fixture from the bundle, whose reads are limited to the tree and its
 * scratch folder (so its templates must be inside it). The compiled executable cannot be run
 * here (tools/build_test.ts checks it with a stand-in runtime); this is the same module graph.
 */
import assert from "node:assert/strict";
import { buildFixture, MARKER } from "../lab/fixture.ts";
import { runLab } from "../lab/lab.ts";
import { astralbootServer } from "../lab/servers.ts";
import { formatStages } from "../lab/stages.ts";
import { readVersion, repoRoot, RUN_FLAGS } from "../tools/build.ts";
import { type Logger, silentLogger } from "../log.ts";
import { run } from "./netns.ts";

const ROOT = repoRoot();
const BUNDLE = `${ROOT}/dist/astralboot.js`;

Deno.test({
  name: "deno task bundle: dist/astralboot.js runs, and a VM PXE-boots from it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "ab-bundle-" });
    try {
      await t.step("deno task bundle writes dist/astralboot.js", async () => {
        await Deno.remove(BUNDLE).catch(() => {});
        await run([Deno.execPath(), "task", "--cwd", ROOT, "bundle"], { timeoutMs: 120_000 });
        assert.ok((await Deno.stat(BUNDLE)).size > 100_000);
      });
      // Started from an empty folder with no deno.json, as an operator would.
      const bundled = (...args: string[]) =>
        new Deno.Command(Deno.execPath(), {
          args: ["run", "--no-config", "--no-lock", ...RUN_FLAGS, BUNDLE, ...args],
          cwd: dir,
        }).output();

      await t.step("--version is deno.json's", async () => {
        const out = await bundled("--version");
        assert.equal(
          new TextDecoder().decode(out.stdout),
          `astralboot ${await readVersion(ROOT)}\n`,
        );
      });

      await t.step("config prints a temporary config with its values", async () => {
        await Deno.writeTextFile(
          `${dir}/config.toml`,
          `data_dir = "${dir}/data"\n[dhcp]\nmode = "proxy"\n[http]\nport = 8088\n`,
        );
        const out = await bundled("config", "-c", `${dir}/config.toml`);
        const text = new TextDecoder().decode(out.stdout);
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        assert.match(text, new RegExp(`^data_dir = "${dir}/data"`, "m"));
        assert.match(text, /^mode = "proxy"/m);
        assert.match(text, /^port = 8088/m);
      });

      await t.step("a BIOS VM boots the lab fixture served by the bundle", async () => {
        const fixture = await buildFixture({ logger: silentLogger });
        // The lab logs the server's argv at debug: the proof that the bundle served.
        const argvs: string[] = [];
        const logger: Logger = {
          ...silentLogger,
          debug: (_subsystem, message, fields = {}) => {
            if (message === "starting astralboot") argvs.push(String(fields.argv));
          },
        };
        const result = await runLab({
          firmware: "bios",
          nic: "virtio-net-pci",
          tree: fixture.tree,
          server: astralbootServer({ bundle: BUNDLE }),
          timeoutMs: 150_000,
          logger,
          // No iPXE text through the serial line: seconds of menu drawing this test needs not.
          sga: false,
        });
        const why = `${result.error}\n--- serial (tail)\n${result.serial.slice(-2000)}\n` +
          `--- server (tail)\n${result.serverLog.slice(-30).join("\n")}`;
        assert.ok(result.ok, why);
        assert.ok(result.serial.includes(MARKER));
        assert.equal(argvs.length, 1);
        assert.match(argvs[0]!, new RegExp(` --no-config .* ${BUNDLE} serve `));
        assert.ok(!argvs[0]!.includes("main.ts"), argvs[0]);
        assert.ok(result.serverLog.some((l) => l.includes("/tiny/vmlinuz")), why);
        console.log(`bundle, bios + virtio:\n${formatStages(result.stages)}`);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
