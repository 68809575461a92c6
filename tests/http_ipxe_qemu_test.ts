/**
 * Real iPXE against the HTTP layer: a QEMU BIOS VM whose NIC ROM is iPXE boots from
 * `/boot.ipxe`, whose chain script asks again with the MAC and what the VM reports (its QEMU
 * `-uuid` and `-smbios` serial, stored), gets the menu, which boots the default OS after its
 * timeout through `/choose/<os>/<mac>`, loads kernel and initrd from `/image/…`, and the
 * fixture's /init prints its marker. Proves the generated scripts (chain, menu, choose,
 * initrd=) work in iPXE.
 *
 * Network safety: QEMU user networking with `restrict=on`. Its DHCP is emulated inside the
 * QEMU process (no socket on port 67, nothing on the host's interfaces), the guest can reach
 * nothing but the one `guestfwd` rule, relayed to the HTTP server on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startHttpServer } from "../http/server.ts";
import { testApp } from "../http/_test_utils.ts";
import { LocalStore } from "../content/local.ts";
import { mustParseMac } from "../net/mac.ts";
import { buildFixture, FIXTURE_OS, MARKER } from "../lab/fixture.ts";
import { silentLogger } from "../log.ts";

const RELAY = fileURLToPath(new URL("./http_guestfwd_relay.ts", import.meta.url));
const MAC = "52:54:00:a5:7b:01";
const GUEST_SERVER = "10.0.2.100";
const LIMIT_MS = 300_000;
const UUID = "0dd5ba11-0000-4000-8000-00000000beef";

Deno.test({
  name: "iPXE in QEMU boots the default OS through the HTTP menu",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const fixture = await buildFixture({ logger: silentLogger });
    const store = new LocalStore(fixture.tree);
    const { app, logger, registry } = testApp({
      store,
      serverIp: GUEST_SERVER,
      baseUrl: `http://${GUEST_SERVER}`,
      defaultOs: FIXTURE_OS,
      menuTimeout: 1,
    });
    const server = await startHttpServer({ app, address: "127.0.0.1", port: 0, logger });
    const relay = `${Deno.execPath()} run --quiet --allow-net ${RELAY} ${server.port}`;
    const qemu = new Deno.Command("qemu-system-x86_64", {
      args: [
        ...["-accel", "tcg", "-m", "256", "-display", "none", "-monitor", "none"],
        ...["-serial", "stdio", "-no-reboot", "-boot", "n"],
        "-netdev",
        `user,id=n0,restrict=on,ipv6=off,bootfile=http://${GUEST_SERVER}/boot.ipxe,` +
        `guestfwd=tcp:${GUEST_SERVER}:80-cmd:${relay}`,
        ...["-device", `e1000,netdev=n0,mac=${MAC}`, "-device", "sga"],
        ...["-uuid", UUID, "-smbios", "type=1,serial=SN 7,manufacturer=Astral,product=QEMU VM"],
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const t0 = performance.now();
    const timer = setTimeout(() => qemu.kill("SIGKILL"), LIMIT_MS);
    let serial = "";
    let markerMs = -1;
    try {
      const dec = new TextDecoder();
      for await (const chunk of qemu.stdout) {
        serial += dec.decode(chunk, { stream: true });
        if (markerMs < 0 && serial.includes(MARKER)) markerMs = performance.now() - t0;
      }
      const status = await qemu.status;
      const err = await new Response(qemu.stderr).text();
      assert.ok(
        markerMs >= 0,
        `no ${MARKER} (qemu ${status.code}): ${err}\n${serial.slice(-3000)}`,
      );
      console.log(`    power-on to marker: ${(markerMs / 1000).toFixed(1)} s (TCG)`);

      const access = logger.lines.filter((l) => "ms" in l.fields)
        .map((l) => `${l.fields.status} ${l.fields.path}`);
      const hyphens = MAC.replaceAll(":", "-");
      const expected = [
        "200 /boot.ipxe",
        `200 /boot.ipxe?mac=${hyphens}&uuid=${UUID}&serial=SN%207&manufacturer=Astral` +
        "&product=QEMU%20VM&buildarch=i386&platform=pcbios",
        `200 /choose/${FIXTURE_OS}/${hyphens}`,
        `200 /image/${FIXTURE_OS}/vmlinuz`,
        `200 /image/${FIXTURE_OS}/initrd.gz`,
      ];
      assert.deepEqual(access.filter((a) => expected.includes(a)), expected, access.join("\n"));
      for (const file of ["vmlinuz", "initrd.gz"]) {
        const line = logger.lines.find((l) => l.fields.path === `/image/${FIXTURE_OS}/${file}`)!;
        const size =
          (await Deno.stat(join(fixture.tree, `boot/${FIXTURE_OS}/images/${file}`))).size;
        assert.equal(line.fields.bytes, size);
      }
      const chosen = registry.get(mustParseMac(MAC))!;
      assert.deepEqual([chosen.os, chosen.class], [FIXTURE_OS, null]);
      const inv = chosen.inventory;
      assert.deepEqual(
        [inv.uuid, inv.serial, inv.manufacturer, inv.product],
        [UUID, "SN 7", "Astral", "QEMU VM"],
      );
    } finally {
      clearTimeout(timer);
      try {
        qemu.kill("SIGKILL");
      } catch { /* already exited */ }
      await qemu.status;
      await server.close();
    }
  },
});
