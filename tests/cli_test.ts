/**
 * The command line as a user meets it: main.ts run as a process, exit codes and the one line
 * it prints for a mistake. Nothing here opens a DHCP or TFTP port.
 */
import assert from "node:assert/strict";
import { run } from "../lab/netns.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const FLAGS = [
  "run",
  "--unstable-net",
  "--allow-read",
  "--allow-sys",
  "--allow-ffi",
  "--allow-net",
];

function astralboot(...args: string[]) {
  return run([Deno.execPath(), ...FLAGS, MAIN, ...args], { check: false, timeoutMs: 60_000 });
}

Deno.test("main.ts: exit codes and one-line errors", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "abcli-" });
  try {
    await t.step("--version and --help exit 0", async () => {
      const v = await astralboot("--version");
      assert.equal(v.code, 0);
      assert.match(v.stdout, /^astralboot \d+\.\d+\.\d+\n$/);
      const h = await astralboot("--help");
      assert.equal(h.code, 0);
      assert.match(h.stdout, /astralboot \[serve\] \[-c config\.toml\] \[-l DIR\]/);
    });
    await t.step("an unknown flag: one line on stderr, exit 2", async () => {
      const r = await astralboot("--bogus");
      assert.equal(r.code, 2);
      assert.equal(r.stderr, "astralboot: unknown option --bogus (see astralboot --help)\n");
    });
    await t.step("a bad config value names file, line and key; exit 2", async () => {
      await Deno.writeTextFile(
        `${dir}/bad.toml`,
        `interface = "lo"\n[tftp]\nport = "sixty-nine"\n`,
      );
      const r = await astralboot("config", "-c", `${dir}/bad.toml`);
      assert.equal(r.code, 2);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`${dir}/bad\\.toml:3: tftp\\.port: expected a whole number`),
      );
    });
    await t.step(
      "token: a clear line before the server made one; then the token and the dashboard URL",
      async () => {
        await Deno.writeTextFile(`${dir}/tok.toml`, `interface = "lo"\ndata_dir = "${dir}/data"\n`);
        const none = await astralboot("token", "-c", `${dir}/tok.toml`);
        assert.equal(none.code, 1);
        assert.equal(
          none.stderr,
          "astralboot: no admin token yet: it is made when the server first starts\n",
        );
        await Deno.mkdir(`${dir}/data`);
        await Deno.writeTextFile(`${dir}/data/api-token`, "abcdefghijklmnopqrstuvwxyz012345\n");
        const r = await astralboot("token", "-c", `${dir}/tok.toml`);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "abcdefghijklmnopqrstuvwxyz012345\n");
        assert.match(
          r.stderr,
          /^dashboard: http:\/\/127\.0\.0\.1(:\d+)?\/ui#token=abcdefghijklmnopqrstuvwxyz012345\n$/,
        );
      },
    );
    await t.step("config shows an ASTRALBOOT_* override and where it came from", async () => {
      await Deno.writeTextFile(`${dir}/env.toml`, `interface = "lo"\n[http]\nport = 8080\n`);
      const r = await run(
        [Deno.execPath(), ...FLAGS, "--allow-env", MAIN, "config", "-c", `${dir}/env.toml`],
        { check: false, env: { ASTRALBOOT_HTTP_PORT: "8081" } },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^port = 8081 +# .* \[\$ASTRALBOOT_HTTP_PORT\]$/m);
      const typo = await run(
        [Deno.execPath(), ...FLAGS, "--allow-env", MAIN, "config", "-c", `${dir}/env.toml`],
        { check: false, env: { ASTRALBOOT_HTTP_PROT: "8081" } },
      );
      assert.equal(typo.code, 2);
      assert.match(typo.stderr, /^astralboot: ASTRALBOOT_HTTP_PROT: no config key has this name/);
    });
    await t.step("config prints the implied config derived from the interface", async () => {
      await Deno.writeTextFile(`${dir}/ok.toml`, `interface = "lo"\nGateway = "127.0.0.254"\n`);
      const r = await astralboot("config", "-c", `${dir}/ok.toml`);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^server_ip = "127\.0\.0\.1" +# /m);
      assert.match(
        r.stdout,
        /^router = "127\.0\.0\.254" +# default gateway for clients \(original: Gateway\)/m,
      );
    });
    await t.step(
      "serve refuses an interface without IPv4, before opening anything; exit 2",
      async () => {
        const r = await astralboot("serve", "-i", "nosuch0", "-d", `${dir}/data`);
        assert.equal(r.code, 2);
        assert.match(
          r.stderr,
          /^astralboot: interface "nosuch0" has no IPv4 address \(or does not exist\); interfaces with one: .*lo/,
        );
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
