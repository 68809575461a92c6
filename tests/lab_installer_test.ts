import assert from "node:assert/strict";
import {
  bootSector,
  CALLBACK_OS_TOML,
  callbackOverlay,
  DISK_MARKER,
  parseLogLine,
} from "./lab_installer.ts";
import { screenLines } from "../lab/screen.ts";
import { parseOsToml } from "../boot/catalog.ts";

Deno.test("bootSector: code, text, NUL and the 55 aa signature", () => {
  const s = bootSector("HI");
  assert.equal(s.length, 512);
  assert.deepEqual([...s.slice(0, 3)], [0xfa, 0xfc, 0x31]);
  // mov si, 0x7c17: the text starts right after the 23 bytes of code.
  assert.deepEqual([...s.slice(6, 9)], [0xbe, 0x17, 0x7c]);
  assert.deepEqual([...s.slice(23, 26)], [0x48, 0x49, 0]);
  assert.deepEqual([...s.slice(510)], [0x55, 0xaa]);
  assert.throws(() => bootSector("x".repeat(487)), RangeError);
});

Deno.test("the boot sector prints its text on serial when SeaBIOS boots the disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "abi-mbr-" });
  try {
    const disk = `${dir}/disk.img`;
    const image = new Uint8Array(1 << 20);
    image.set(bootSector(`\r\n${DISK_MARKER}\r\n`));
    await Deno.writeFile(disk, image);
    // No network device at all: nothing leaves this process.
    const qemu = new Deno.Command("qemu-system-x86_64", {
      args: [
        "-accel",
        "tcg",
        "-m",
        "64",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-nic",
        "none",
        "-no-reboot",
        "-boot",
        "c",
        "-drive",
        `file=${disk},format=raw,if=ide,index=0`,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let serial = "";
    const deadline = setTimeout(() => qemu.kill("SIGKILL"), 60_000);
    const reader = qemu.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (!serial.includes(DISK_MARKER)) {
      const { value, done } = await reader.read();
      if (done) break;
      serial += value;
    }
    clearTimeout(deadline);
    try {
      qemu.kill("SIGKILL");
    } catch { /* gone */ }
    await qemu.status;
    await reader.cancel().catch(() => {});
    await qemu.stderr.cancel().catch(() => {});
    assert.ok(
      screenLines(serial).some((l) => l.includes(DISK_MARKER)),
      JSON.stringify(serial.slice(-300)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the stand-in overlay is a gzip'd newc cpio holding /init, the driver and the udhcpc script", async () => {
  const gz = await callbackOverlay(new TextEncoder().encode("fake module"));
  assert.deepEqual([...gz.slice(0, 2)], [0x1f, 0x8b]);
  const cpio = new Uint8Array(
    await new Response(
      new Blob([gz as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
        new DecompressionStream("gzip"),
      ),
    )
      .arrayBuffer(),
  );
  const text = new TextDecoder().decode(cpio);
  for (const name of ["lib/e1000.ko", "bin/udhcpc.sh", "init", "TRAILER!!!"]) {
    assert.ok(text.includes(name + "\0"), name);
  }
  assert.ok(text.startsWith("070701"));
  assert.match(text, /wget -q -O - "\$url"/);
});

Deno.test("the stand-in's os.toml loads both initrds and renders the callback per machine", () => {
  const { meta } = parseOsToml(CALLBACK_OS_TOML, "boot/tiny/os.toml");
  assert.deepEqual(meta.initrd, ["initrd.gz", "callback.gz"]);
  // The install's own callback URL, with its token (boot/template_data.ts `callback`).
  assert.match(meta.cmdline!, /astralboot\.callback=\{\{ callback\.installed \}\}/);
});

Deno.test("parseLogLine", () => {
  assert.deepEqual(parseLogLine('{"msg":"x","n":1}'), { msg: "x", n: 1 });
  assert.equal(parseLogLine("Listening on http://0.0.0.0:80/"), null);
  assert.equal(parseLogLine("42"), null);
});
