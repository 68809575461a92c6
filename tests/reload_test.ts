/**
 * Live reload with `main.ts serve` in namespaces: SIGHUP re-reads config.toml while a TFTP
 * transfer runs; a `[[machine]]` added with a reserved address gets it on its next DORA (udhcpc),
 * the transfer completes byte for byte, a broken config leaves the old one serving, and a port
 * change is reported as needing a restart. Nothing here touches the host's interfaces.
 */
import assert from "node:assert/strict";
import {
  bridgeLab,
  curlFrom,
  type LineFollower,
  readEnv,
  serveConfig,
  startServe,
  udhcpcLease,
} from "./dhcp_harness.ts";

const SERVER_IP = "10.86.0.1";
const RANGE = `range = ["10.86.0.100", "10.86.0.120"]`;

/** Sends SIGHUP and waits for the first line after it that says how the reload went. */
async function hup(serve: LineFollower, what: RegExp): Promise<string> {
  const seen = serve.lines.length;
  serve.child.kill("SIGHUP");
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const line = serve.lines.slice(seen).find((l) => what.test(l));
    if (line) return line;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no reload line ${what} after SIGHUP:\n${serve.output}`);
}

Deno.test({
  name: "main.ts serve: SIGHUP applies a new machine, keeps transfers, refuses a broken config",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abr", `${SERVER_IP}/24`, 1);
    const client = lab.clients[0]!;
    const mac = lab.macs[0]!;
    const dir = await Deno.makeTempDir({ prefix: "abr-reload-" });
    let serve: LineFollower | undefined;
    try {
      // Big enough that 512-byte lockstep TFTP takes seconds.
      const big = crypto.getRandomValues(new Uint8Array(65536));
      const file = new Uint8Array(24 << 20);
      for (let o = 0; o < file.length; o += big.length) file.set(big, o);
      file[12345] = 7;
      // The tree is a symlink to a release folder, as an atomic deploy keeps it.
      await Deno.mkdir(`${dir}/release1/tftp`, { recursive: true });
      await Deno.writeFile(`${dir}/release1/tftp/big.bin`, file);
      await Deno.writeTextFile(`${dir}/release1/tftp/release.txt`, "1");
      await Deno.symlink(`${dir}/release1`, `${dir}/tree`);
      await Deno.writeTextFile(`${dir}/config.toml`, serveConfig(dir, RANGE));
      serve = await startServe(lab.server, dir);
      const first = await udhcpcLease(client, dir, "c1");
      assert.match(first ?? "none", /^10\.86\.0\.1[0-2]\d$/);

      await t.step(
        "a machine added with a reserved address gets it; a transfer runs through",
        async () => {
          const tftp = client.spawn(
            ["tftp", "-m", "binary", SERVER_IP, "-c", "get", "big.bin", `${dir}/got.bin`],
            { stdout: "piped", stderr: "piped" },
          );
          // Let the transfer start before the reload.
          await new Promise((r) => setTimeout(r, 700));
          await Deno.writeTextFile(
            `${dir}/config.toml`,
            serveConfig(
              dir,
              RANGE,
              `\n[[machine]]\nmac = "${mac}"\nhostname = "pinned"\nip = "10.86.0.50"\n`,
            ),
          );
          const line = await hup(serve!, /"msg":"reloaded"|reload failed/);
          assert.match(line, /"msg":"reloaded","changed":"machine"/);
          const done = await tftp.output();
          assert.equal(done.code, 0, new TextDecoder().decode(done.stderr));
          const got = await Deno.readFile(`${dir}/got.bin`);
          assert.equal(got.length, file.length);
          assert.ok(got.every((b, i) => b === file[i]), "the file arrived whole");
          // The transfer was still running when the reload happened.
          const finished = serve!.lines.findIndex((l) => /"msg":"transfer done".*big\.bin/.test(l));
          const reloaded = serve!.lines.findIndex((l) => l.includes('"msg":"reloaded"'));
          assert.ok(
            reloaded >= 0 && finished > reloaded,
            `reload at line ${reloaded}, done at ${finished}`,
          );
          assert.equal(await udhcpcLease(client, dir, "c2"), "10.86.0.50");
        },
      );

      await t.step("a DHCP option added in the file reaches the next client", async () => {
        await Deno.writeTextFile(
          `${dir}/config.toml`,
          serveConfig(
            dir,
            `${RANGE}\n[dhcp.options]\nntp = ["10.86.0.9"]`,
            `\n[[machine]]\nmac = "${mac}"\nhostname = "pinned"\nip = "10.86.0.50"\n`,
          ),
        );
        assert.match(
          await hup(serve!, /"msg":"reloaded"|reload failed/),
          /"changed":"dhcp\.options"/,
        );
        assert.equal(await udhcpcLease(client, dir, "c2b", 2, ["-O", "ntpsrv"]), "10.86.0.50");
        assert.equal((await readEnv(`${dir}/c2b.bound.env`)).ntpsrv, "10.86.0.9");
      });

      await t.step("the tree's symlink moved to a new release: SIGHUP serves it", async () => {
        const release = () => curlFrom(client, `http://${SERVER_IP}:8080/tftp/release.txt`);
        assert.equal((await release()).body, "1");
        await Deno.mkdir(`${dir}/release2/tftp`, { recursive: true });
        await Deno.writeTextFile(`${dir}/release2/tftp/release.txt`, "2");
        await Deno.symlink(`${dir}/release2`, `${dir}/tree.next`);
        await Deno.rename(`${dir}/tree.next`, `${dir}/tree`);
        assert.equal((await release()).body, "1"); // the tree opened at start, until a reload
        assert.match(await hup(serve!, /"msg":"reloaded"|reload failed/), /"msg":"reloaded"/);
        assert.equal((await release()).body, "2");
      });

      await t.step("a broken config: one error line, the old one keeps serving", async () => {
        await Deno.writeTextFile(`${dir}/config.toml`, 'interface = "br0"\n[dhcp\nmode = 1\n');
        const line = await hup(serve!, /reload failed|"msg":"reloaded"/);
        assert.match(
          line,
          /"level":"error".*reload failed, still serving the old config: .*config\.toml:2/,
        );
        assert.equal(await udhcpcLease(client, dir, "c3"), "10.86.0.50");
        assert.equal((await curlFrom(client, `http://${SERVER_IP}:8080/healthz`)).status, 200);
      });

      await t.step(
        "a port change is said to need a restart; the server stays where it is",
        async () => {
          await Deno.writeTextFile(
            `${dir}/config.toml`,
            serveConfig(
              dir,
              RANGE,
              `\n[[machine]]\nmac = "${mac}"\nhostname = "pinned"\nip = "10.86.0.50"\n`,
            )
              .replace("port = 8080", "port = 8081"),
          );
          const seen = serve!.lines.length;
          await hup(serve!, /"msg":"reloaded"/);
          assert.ok(
            serve!.lines.slice(seen).some((l) =>
              /reload: http\.port changed; it takes effect after a restart/.test(l)
            ),
          );
          assert.equal((await curlFrom(client, `http://${SERVER_IP}:8080/healthz`)).status, 200);
        },
      );
    } finally {
      if (serve) await serve.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
