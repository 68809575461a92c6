/**
 * The ARM64 part of the lab fixture, all from one Debian package, the arm64 installer's
 * netboot image (`debian-installer-12-netboot-arm64`, Architecture: all, so it installs on an
 * x86-64 host): shim (`bootnetaa64.efi`) and Debian's signed GRUB (`grubaa64.efi`) as the
 * first stages, the installer's kernel, and an initramfs of the installer's own busybox with
 * the C library it links against, under the fixture's /init. No arm64 apt sources needed.
 *
 * | in the tree                          | from the package                        |
 * |--------------------------------------|-----------------------------------------|
 * | `tftp/shimaa64.efi`                  | `bootnetaa64.efi`                       |
 * | `tftp/grubaa64.efi`                  | `grubaa64.efi` (shim fetches this name) |
 * | `boot/tiny-arm64/images/vmlinuz`     | `linux` (an uncompressed arm64 Image)   |
 * | `boot/tiny-arm64/images/initrd.gz`   | busybox + ld.so + libc of `initrd.gz`   |
 *
 * @module
 */
import { run } from "./netns.ts";
import { type CpioEntry, encodeCpio, gzip } from "./cpio.ts";

/** The OS folder of the ARM64 fixture under `boot/`. */
export const ARM64_OS = "tiny-arm64";

/** The Debian package the ARM64 fixture comes from. */
export const ARM64_PACKAGE = "debian-installer-12-netboot-arm64";

/** Where that package puts its netboot files. */
export const ARM64_DIR = "/usr/lib/debian-installer/images/12/arm64/text/debian-installer/arm64";

/** os.toml of the ARM64 fixture: QEMU virt's serial port is a PL011, ttyAMA0. */
export const ARM64_OS_TOML = `title = "Tiny test Linux (arm64)"
kernel = "vmlinuz"
initrd = "initrd.gz"
cmdline = "console=ttyAMA0 quiet"
`;

/** The installer's busybox and what it links against (`readelf -d`: libc.so.6, ld.so). */
const FROM_INITRD = [
  "bin/busybox",
  "lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
  "lib/aarch64-linux-gnu/libc.so.6",
];

/** The installed version of {@linkcode ARM64_PACKAGE}, or null when it is not installed. */
export async function arm64Version(): Promise<string | null> {
  const res = await run(
    ["dpkg-query", "-W", "-f", "${Status} ${Version}", ARM64_PACKAGE],
    { check: false },
  );
  const m = /^install ok installed (\S+)$/.exec(res.stdout.trim());
  return m ? m[1]! : null;
}

/** Unpacks the members of {@linkcode FROM_INITRD} from the installer's initramfs into `dir`. */
async function busyboxFiles(dir: string): Promise<Map<string, Uint8Array>> {
  await run([
    "sh",
    "-c",
    'cd "$1" && shift && zcat "$0" | cpio -id --quiet "$@"',
    `${ARM64_DIR}/initrd.gz`,
    dir,
    ...FROM_INITRD,
  ], { timeoutMs: 120_000 });
  const files = new Map<string, Uint8Array>();
  for (const path of FROM_INITRD) files.set(path, await Deno.readFile(`${dir}/${path}`));
  return files;
}

/** The ARM64 initramfs members: dynamic busybox, its loader and libc, and the /init. */
function initramfsEntries(files: Map<string, Uint8Array>, init: string): CpioEntry[] {
  const file = (path: string, mode: number): CpioEntry => ({
    kind: "file",
    path,
    mode,
    data: files.get(path)!,
  });
  return [
    { kind: "dir", path: "bin" },
    { kind: "dir", path: "dev" },
    { kind: "dir", path: "lib" },
    { kind: "dir", path: "lib/aarch64-linux-gnu" },
    { kind: "dir", path: "proc" },
    { kind: "dir", path: "sys" },
    // Without /dev/console in the initramfs the kernel starts init with no stdout.
    { kind: "char", path: "dev/console", major: 5, minor: 1 },
    { kind: "char", path: "dev/null", mode: 0o666, major: 1, minor: 3 },
    file("lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", 0o755),
    file("lib/aarch64-linux-gnu/libc.so.6", 0o755),
    // busybox's ELF interpreter is /lib/ld-linux-aarch64.so.1.
    {
      kind: "symlink",
      path: "lib/ld-linux-aarch64.so.1",
      target: "aarch64-linux-gnu/ld-linux-aarch64.so.1",
    },
    file("bin/busybox", 0o755),
    { kind: "symlink", path: "bin/sh", target: "busybox" },
    { kind: "file", path: "init", mode: 0o755, data: new TextEncoder().encode(init) },
  ];
}

/** Writes the ARM64 first stages and OS into the tree being built at `work`. */
export async function addArm64(work: string, init: string): Promise<void> {
  const images = `${work}/boot/${ARM64_OS}/images`;
  await Deno.mkdir(images, { recursive: true });
  await Deno.mkdir(`${work}/tftp`, { recursive: true });
  await Deno.copyFile(`${ARM64_DIR}/bootnetaa64.efi`, `${work}/tftp/shimaa64.efi`);
  await Deno.copyFile(`${ARM64_DIR}/grubaa64.efi`, `${work}/tftp/grubaa64.efi`);
  // An arm64 Image is not compressed (33 MB). Gzip'd (11 MB) GRUB still reads it, but its
  // gunzip under TCG costs more than the bytes it saves: marker at 52.6 s instead of 39.4 s.
  await Deno.copyFile(`${ARM64_DIR}/linux`, `${images}/vmlinuz`);
  const scratch = `${work}/.arm64-initrd`;
  await Deno.mkdir(scratch);
  try {
    const initrd = encodeCpio(initramfsEntries(await busyboxFiles(scratch), init));
    await Deno.writeFile(`${images}/initrd.gz`, await gzip(initrd));
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
  await Deno.writeTextFile(`${work}/boot/${ARM64_OS}/os.toml`, ARM64_OS_TOML);
}
