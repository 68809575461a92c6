/**
 * A machine acts only for itself, tried as a neighbour on the boot link would: `main.ts serve`
 * in a server namespace, two clients with udhcpc leases in their own namespaces. The listed
 * machine installs with the callback URL from its own preseed; the neighbour tries to read
 * that preseed, to call back for it, to choose at its menu and to ask for a reinstall, and
 * changes nothing. Nothing here touches the host's interfaces.
 */
import assert from "node:assert/strict";
import {
  bridgeLab,
  curlFrom,
  type LineFollower,
  serveConfig,
  startServe,
  udhcpcLease,
} from "./dhcp_harness.ts";
import type { Netns } from "./netns.ts";

const SERVER_IP = "10.83.0.1";
const BASE = `http://${SERVER_IP}:8080`;
const SENTINEL = "$6$sentinel$IDENTITY-0123456789";

/** A Debian-like OS: kernel, initrd and the built-in preseed. */
async function makeTree(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/tree/boot/debian/images`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/tree/boot/debian/os.toml`,
    'title = "Debian"\ncmdline = "auto=true url={{ http }}/config/debian/preseed?mac={{ mac_url }}"\n',
  );
  await Deno.writeFile(`${dir}/tree/boot/debian/images/linux`, new Uint8Array(4096));
  await Deno.writeFile(`${dir}/tree/boot/debian/images/initrd.gz`, new Uint8Array(1024));
}

/** What `curl` got for `path` of the server from `ns`: status and body. */
function fetchFrom(ns: Netns, path: string, init: { method?: string; headers?: string[] } = {}) {
  return curlFrom(ns, BASE + path, init);
}

Deno.test({
  name: "main.ts serve: a neighbour on the link can neither read nor change another machine",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await using lab = await bridgeLab("abi", `${SERVER_IP}/24`, 2);
    const [owner, neighbour] = lab.clients as [Netns, Netns];
    const mac = lab.macs[0]!;
    const macUrl = mac.replaceAll(":", "-");
    const dir = await Deno.makeTempDir({ prefix: "abi-identity-" });
    let serve: LineFollower | undefined;
    try {
      await makeTree(dir);
      await Deno.writeTextFile(
        `${dir}/config.toml`,
        serveConfig(
          dir,
          `range = ["10.83.0.100", "10.83.0.120"]`,
          `
[[machine]]
mac = "${mac}"
hostname = "owner"
os = "debian"
vars = { password_hash = "${SENTINEL}" }
`,
        ),
      );
      serve = await startServe(lab.server, dir);
      const token = (await Deno.readTextFile(`${dir}/data/api-token`)).trim();
      const admin = [`Authorization: Bearer ${token}`];
      const state = async () =>
        JSON.parse((await fetchFrom(owner, `/api/machines/${mac}`, { headers: admin })).body)
          .state;
      const ownerIp = await udhcpcLease(owner, dir, "owner");
      const neighbourIp = await udhcpcLease(neighbour, dir, "neighbour");
      assert.ok(ownerIp && neighbourIp);
      let installedUrl = "";

      await t.step("the owner's boot script and preseed are the owner's alone", async () => {
        const script = await fetchFrom(neighbour, `/boot.ipxe?mac=${macUrl}`);
        assert.equal(script.status, 403);
        assert.match(script.body, new RegExp(`${mac} does not ask from ${neighbourIp}`));
        for (const path of [`/menu.ipxe?mac=${macUrl}`, `/boot/debian/${macUrl}`]) {
          assert.equal((await fetchFrom(neighbour, path)).status, 403, path);
        }
        const preseed = await fetchFrom(neighbour, `/config/debian/preseed?mac=${macUrl}`);
        assert.equal(preseed.status, 403);
        assert.ok(!preseed.body.includes("sentinel"));
        assert.match((await fetchFrom(owner, `/boot.ipxe?mac=${macUrl}`)).body, /^kernel /m);
        const own = await fetchFrom(owner, `/config/debian/preseed?mac=${macUrl}`);
        assert.equal(own.status, 200);
        assert.ok(own.body.includes(SENTINEL), "the machine gets its own password hash");
        const m = /wget -q -O \/dev\/null (http:\/\/\S+\/installed\/[0-9a-f]{32})$/m.exec(own.body);
        assert.ok(m, own.body);
        installedUrl = m[1]!;
        assert.equal(await state(), "installing");
      });

      await t.step(
        "the neighbour's callbacks without the install's token change nothing",
        async () => {
          const tries: [string, string][] = [
            ["GET", `/api/machines/${macUrl}/installed`],
            ["POST", `/api/machines/${macUrl}/installed`],
            ["POST", `/api/machines/${macUrl}/installed/${"f".repeat(32)}`],
            ["GET", `/api/machines/${macUrl}/progress?step=x`],
          ];
          for (const [method, path] of tries) {
            assert.equal((await fetchFrom(neighbour, path, { method })).status, 403, path);
          }
          assert.equal(await state(), "installing");
        },
      );

      await t.step(
        "the owner's own callback URL, fetched as d-i does, marks it installed",
        async () => {
          const r = await owner.exec(["busybox", "wget", "-q", "-O", "/dev/null", installedUrl], {
            check: false,
            timeoutMs: 20_000,
          });
          assert.equal(r.code, 0, r.stderr);
          assert.equal(await state(), "installed");
          assert.match((await fetchFrom(owner, `/boot.ipxe?mac=${macUrl}`)).body, /^sanboot /m);
        },
      );

      await t.step("nobody on the link can make it install again", async () => {
        const tries: [Netns, string, string, string[], number][] = [
          [neighbour, "GET", `/choose/debian/${macUrl}`, [], 403],
          [owner, "GET", `/choose/debian/${macUrl}`, [], 409],
          [neighbour, "POST", `/api/machines/${macUrl}/reinstall`, [], 401],
          [owner, "POST", `/api/machines/${macUrl}/reinstall`, [], 401],
          [neighbour, "POST", `/api/machines/${macUrl}/reinstall`, [
            ...admin,
            "Origin: http://evil.example",
          ], 403],
          [neighbour, "GET", installedUrl.slice(BASE.length), [], 403],
        ];
        for (const [ns, method, path, headers, status] of tries) {
          const r = await fetchFrom(ns, path, { method, headers });
          assert.equal(
            r.status,
            status,
            `${method} ${path} from ${ns === owner ? "owner" : "neighbour"}`,
          );
        }
        assert.equal(await state(), "installed");
        assert.match((await fetchFrom(owner, `/boot.ipxe?mac=${macUrl}`)).body, /^sanboot /m);
      });

      await t.step("the machine list needs the token and shows no password hash", async () => {
        assert.equal((await fetchFrom(neighbour, "/api/machines")).status, 401);
        const list = await fetchFrom(neighbour, "/api/machines", { headers: admin });
        assert.equal(list.status, 200);
        const machines = JSON.parse(list.body) as { mac: string; var_names: string[] }[];
        assert.deepEqual(machines.find((m) => m.mac === mac)?.var_names, ["password_hash"]);
        assert.ok(!list.body.includes("sentinel"));
        assert.ok(!serve!.output.includes("sentinel"), "a log line holds the hash");
      });

      await t.step("made-up MACs add no machines", async () => {
        for (let i = 0; i < 20; i++) {
          const fake = `52-54-00-99-00-${i.toString(16).padStart(2, "0")}`;
          assert.equal((await fetchFrom(neighbour, `/boot.ipxe?mac=${fake}`)).status, 403);
        }
        const list = JSON.parse((await fetchFrom(owner, "/api/machines", { headers: admin })).body);
        assert.deepEqual(
          list.map((m: { ip: string }) => m.ip).sort(),
          [ownerIp, neighbourIp].sort(),
        );
      });

      await t.step(
        "the admin's reinstall brings the installer back; the old token is void",
        async () => {
          const r = await fetchFrom(owner, `/api/machines/${macUrl}/reinstall`, {
            method: "POST",
            headers: admin,
          });
          assert.equal(r.status, 200);
          assert.match((await fetchFrom(owner, `/boot.ipxe?mac=${macUrl}`)).body, /^kernel /m);
          assert.equal((await fetchFrom(owner, installedUrl.slice(BASE.length))).status, 403);
          assert.equal(await state(), "chosen");
        },
      );
    } finally {
      if (serve) await serve.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
