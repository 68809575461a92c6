/**
 * The installer lab: Astral Boot serves install configs to real VMs, which call back.
 *
 * Two trees on top of the lab fixture (fixture.ts):
 *
 * - `tiny` as an *install stand-in*: the fixture's kernel and busybox initramfs plus an
 *   overlay initramfs (iPXE loads both; the kernel unpacks them in order, so the overlay's
 *   /init wins) whose /init loads the NIC driver, gets an address with udhcpc and fetches
 *   the callback URL from its kernel command line (`astralboot.callback=`, rendered by the
 *   server from os.toml for that machine), then powers off.
 * - `debian`: the real Debian installer (`linux`, `initrd.gz` from the Debian package
 *   debian-installer-12-netboot-amd64) with the example tree's templates.
 *
 * {@linkcode bootSector} makes the lab's "installed disk" for BIOS: a 512-byte MBR that prints
 * {@linkcode DISK_MARKER} on the serial port, so a boot that reaches the local disk shows;
 * {@linkcode efiDisk} the one for UEFI: a GPT disk whose EFI system partition holds
 * `\EFI\BOOT\BOOTX64.EFI`, a GRUB image that prints the same marker and powers off.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { run } from "../lab/netns.ts";
import type { Logger } from "../log.ts";
import { encodeCpio, gzip } from "../lab/cpio.ts";
import { defaultCacheDir, type Fixture } from "../lab/fixture.ts";
import { astralbootCommand, type LabServer, spawnAll } from "../lab/servers.ts";
import { gptDisk } from "./gpt.ts";

/** What the lab disk's boot sector prints on COM1. */
export const DISK_MARKER = "ASTRALBOOT-DISK-OK";

/** What the install stand-in prints once the server took its callback. */
export const CALLBACK_MARKER = "ASTRALBOOT-CALLBACK-OK";

/** Where debian-installer-12-netboot-amd64 puts the netboot kernel and initrd. */
export const DEBIAN_INSTALLER_DIR =
  "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64";

const EXAMPLE_DEBIAN = fileURLToPath(new URL("../examples/tree/boot/debian", import.meta.url));

/**
 * A BIOS boot sector (MBR) that writes `text` to the first serial port and halts.
 *
 * ```
 * 0x00 fa           cli
 * 0x01 fc           cld                  ; lodsb counts up
 * 0x02 31 c0        xor ax, ax
 * 0x04 8e d8        mov ds, ax
 * 0x06 be 17 7c     mov si, 0x7c17       ; the text, right after the code
 * 0x09 ba f8 03     mov dx, 0x3f8        ; COM1 data port
 * 0x0c ac           lodsb
 * 0x0d 84 c0        test al, al
 * 0x0f 74 03        jz 0x14
 * 0x11 ee           out dx, al
 * 0x12 eb f8        jmp 0x0c
 * 0x14 f4           hlt
 * 0x15 eb fd        jmp 0x14
 * 0x17 text, NUL
 * 0x1fe 55 aa       boot signature
 * ```
 *
 * QEMU's UART needs no set-up for output, and a raw port write does not depend on the
 * BIOS's serial redirection.
 */
export function bootSector(text: string): Uint8Array {
  // The instructions drawn above, one group per line of the drawing.
  const hex = "fa fc 31c0 8ed8 be177c baf803 ac 84c0 7403 ee ebf8 f4 ebfd".replaceAll(" ", "");
  const code = hex.match(/../g)!.map((h) => parseInt(h, 16));
  const message = new TextEncoder().encode(text);
  if (code.length + message.length + 1 > 510) {
    throw new RangeError(`boot sector text too long: ${message.length} bytes`);
  }
  const sector = new Uint8Array(512);
  sector.set(code, 0);
  sector.set(message, code.length);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

/** Size of the EFI system partition of {@linkcode efiDisk}: 8 MiB of FAT16 (mkfs.vfat's pick). */
const ESP_KIB = 8192;

/**
 * The UEFI "installed disk" as an image file in `dir`: GPT, one EFI system partition, and in it
 * the removable-media path `\EFI\BOOT\BOOTX64.EFI` (what the firmware boots from a disk with
 * no boot entry of its own): a GRUB core image built by grub-mkimage (grub-efi-amd64-bin) whose
 * embedded config echoes `text`'s lines and halts. GRUB writes to the firmware's console, which
 * OVMF copies to the serial port. Needs grub-mkimage, mkfs.vfat (dosfstools) and mtools.
 */
export async function efiDisk(dir: string, text: string): Promise<string> {
  const cfg = `${dir}/embedded.cfg`;
  // The embedded config runs in GRUB's rescue parser: plain commands, no quoting rules to fear
  // for a marker of letters and dashes.
  const lines = text.split("\n").filter((l) => /^[\w -]+$/.test(l));
  await Deno.writeTextFile(cfg, [...lines.map((l) => `echo ${l}`), "halt", ""].join("\n"));
  const app = `${dir}/BOOTX64.EFI`;
  await run([
    "grub-mkimage",
    "-O",
    "x86_64-efi",
    "-o",
    app,
    "-p",
    "/EFI/BOOT",
    "-c",
    cfg,
    "echo",
    "halt",
  ]);
  const esp = `${dir}/esp.img`;
  await run(["mkfs.vfat", "-C", "-n", "ESP", esp, String(ESP_KIB)]);
  await run(["mmd", "-i", esp, "::/EFI", "::/EFI/BOOT"]);
  await run(["mcopy", "-i", esp, app, "::/EFI/BOOT/BOOTX64.EFI"]);
  const disk = `${dir}/disk-efi.img`;
  await Deno.writeFile(disk, gptDisk(await Deno.readFile(esp)));
  await Deno.remove(esp);
  return disk;
}

/** The install stand-in's /init: driver, address, callback, power off. */
export const CALLBACK_INIT = `#!/bin/sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
echo "astralboot lab: install stand-in on $($B uname -r)"
$B insmod /lib/e1000.ko
$B ip link set eth0 up
$B udhcpc -i eth0 -f -q -n -t 20 -T 1 -s /bin/udhcpc.sh
url=$($B sed -n 's/.*astralboot\\.callback=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
echo "astralboot lab: calling back $url"
if $B wget -q -O - "$url"; then
  echo
  echo ${CALLBACK_MARKER}
  echo ${CALLBACK_MARKER}
fi
$B sync
$B poweroff -f
`;

// udhcpc only reports a lease; this puts the address on the interface.
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew) /bin/busybox ifconfig "$interface" "$ip" netmask "$subnet" up ;;
esac
`;

/** os.toml of the install stand-in: the callback URL is rendered per machine. */
export const CALLBACK_OS_TOML = `title = "Install stand-in (calls back, powers off)"
kernel = "vmlinuz"
initrd = ["initrd.gz", "callback.gz"]
cmdline = "console=ttyS0 astralboot.callback={{ callback.installed }}"
`;

/** The e1000 driver of the fixture's kernel, from the kernel package the fixture used. */
async function e1000Rom(fixture: Fixture, cacheDir: string, logger: Logger): Promise<Uint8Array> {
  const spec = fixture.packages.find((p) => p.startsWith("linux-image-"));
  if (!spec) throw new Error("installer lab: the fixture names no linux-image package");
  const [pkg, version] = spec.split("=") as [string, string];
  const debs = `${cacheDir}/debs`;
  const deb = `${debs}/${pkg}_${version.replace(":", "%3a")}_amd64.deb`;
  try {
    await Deno.stat(deb);
  } catch {
    logger.info("lab", "downloading Debian package", { package: pkg, version });
    await Deno.mkdir(debs, { recursive: true });
    await run(["sh", "-c", 'cd "$1" && apt-get download -q "$2"', "sh", debs, spec], {
      timeoutMs: 600_000,
    });
  }
  const release = pkg.replace(/^linux-image-/, "");
  const member = `./lib/modules/${release}/kernel/drivers/net/ethernet/intel/e1000/e1000.ko`;
  const out = await new Deno.Command("sh", {
    args: ["-c", 'dpkg-deb --fsys-tarfile "$1" | tar -xO "$2"', "sh", deb, member],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success || out.stdout.length === 0) {
    throw new Error(
      `installer lab: no ${member} in ${deb}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return out.stdout;
}

/** The overlay initramfs of the install stand-in (gzip'd cpio). */
export async function callbackOverlay(e1000: Uint8Array): Promise<Uint8Array> {
  const text = new TextEncoder();
  return await gzip(encodeCpio([
    { kind: "dir", path: "lib" },
    { kind: "file", path: "lib/e1000.ko", mode: 0o644, data: e1000 },
    { kind: "dir", path: "bin" },
    { kind: "file", path: "bin/udhcpc.sh", mode: 0o755, data: text.encode(UDHCPC_SCRIPT) },
    { kind: "file", path: "init", mode: 0o755, data: text.encode(CALLBACK_INIT) },
  ]));
}

/** Options for {@linkcode buildInstallerTree}. */
export interface InstallerTreeOptions {
  fixture: Fixture;
  /** Add `boot/debian/` with the real Debian installer. */
  debian?: boolean;
  /** Extra kernel arguments for the Debian installer (e.g. the serial console). */
  debianCmdline?: string;
  cacheDir?: string;
  logger: Logger;
}

async function copyTree(from: string, to: string): Promise<void> {
  await run(["cp", "-r", "--no-preserve=ownership", `${from}/.`, to]);
}

/** Writes the installer lab's boot tree into `dir` (an empty folder). */
export async function buildInstallerTree(
  dir: string,
  options: InstallerTreeOptions,
): Promise<void> {
  const { fixture, logger } = options;
  await Deno.mkdir(`${dir}/tftp`, { recursive: true });
  await copyTree(`${fixture.tree}/tftp`, `${dir}/tftp`);
  const tiny = `${dir}/boot/tiny`;
  await Deno.mkdir(`${tiny}/images`, { recursive: true });
  await copyTree(`${fixture.tree}/boot/tiny/images`, `${tiny}/images`);
  await Deno.writeTextFile(`${tiny}/os.toml`, CALLBACK_OS_TOML);
  const e1000 = await e1000Rom(fixture, options.cacheDir ?? defaultCacheDir(), logger);
  await Deno.writeFile(`${tiny}/images/callback.gz`, await callbackOverlay(e1000));
  if (!options.debian) return;

  const deb = `${dir}/boot/debian`;
  await Deno.mkdir(`${deb}/images`, { recursive: true });
  await copyTree(EXAMPLE_DEBIAN, deb);
  for (const name of ["linux", "initrd.gz"]) {
    try {
      await Deno.copyFile(`${DEBIAN_INSTALLER_DIR}/${name}`, `${deb}/images/${name}`);
    } catch (err) {
      throw new Error(
        `installer lab: ${DEBIAN_INSTALLER_DIR}/${name} is missing (install debian-installer-12-netboot-amd64)`,
        { cause: err },
      );
    }
  }
  if (options.debianCmdline) {
    const toml = await Deno.readTextFile(`${deb}/os.toml`);
    const withConsole = toml.replace(
      /^cmdline = "(.*)"$/m,
      (_, line: string) => `cmdline = "${line} ${options.debianCmdline}"`,
    );
    if (withConsole === toml) throw new Error("installer lab: no cmdline line in debian os.toml");
    await Deno.writeTextFile(`${deb}/os.toml`, withConsole);
  }
}

/** A `[[machine]]` of the lab config. */
export interface LabMachine {
  mac: string;
  hostname: string;
  os: string;
  class?: string;
}

/** Options for {@linkcode installerServer}. */
export interface InstallerServerOptions {
  machines: LabMachine[];
  /** The database folder; kept between runs, so the second boot finds the first's state. */
  dataDir: string;
  httpPort?: number;
}

/** Astral Boot with `[[machine]]` entries and a data folder that outlives one lab run. */
export function installerServer(options: InstallerServerOptions): LabServer {
  const httpPort = options.httpPort ?? 80;
  return {
    name: "astralboot",
    httpPort,
    async start(ctx) {
      const lines = [
        `interface = ${JSON.stringify(ctx.iface)}`,
        `data_dir = ${JSON.stringify(options.dataDir)}`,
        'log_level = "info"',
        "[dhcp]",
        'mode = "server"',
        `range = ${JSON.stringify(ctx.range)}`,
        // No router or dns keys: both default to this server, as on a site network, so d-i
        // does not stop to ask about them.
        "[http]",
        `port = ${httpPort}`,
        "[boot]",
        "menu_timeout = 0",
        // The lab's Secure Boot chain (shim → GRUB) when the run asks for it.
        `secure_boot = ${ctx.secureBoot}`,
      ];
      for (const m of options.machines) {
        lines.push("[[machine]]");
        for (const [k, v] of Object.entries(m)) lines.push(`${k} = ${JSON.stringify(v)}`);
      }
      const config = `${ctx.workDir}/config.toml`;
      await Deno.writeTextFile(config, lines.join("\n") + "\n");
      const argv = [
        ...astralbootCommand(),
        "serve",
        "-c",
        config,
        "-l",
        ctx.tree,
        "--log-format",
        "json",
      ];
      return spawnAll(ctx.ns, [{ tag: "astralboot", argv }]);
    },
  };
}

/** One JSON log line of the server, or null for anything else. */
export function parseLogLine(line: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(line);
    return typeof v === "object" && v !== null ? v : null;
  } catch {
    return null;
  }
}
