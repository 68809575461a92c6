/**
 * The lab's fixture boot tree: a Debian kernel (signed, so it also boots under Secure Boot), a
 * busybox initramfs whose /init says whether Secure Boot is on, prints a marker and powers
 * off, and the first stages: iPXE, and shim + GRUB for Secure Boot; laid out as an Astral Boot
 * content tree. With the arm64 installer's netboot package on the host, the same for ARM64
 * (`fixture_arm64.ts`: OS `tiny-arm64`, shim and GRUB for arm64).
 *
 * The kernel, busybox, shim and GRUB come from Debian packages (`apt-get download`, never
 * installed: shim-signed's scripts would run grub-install on an EFI host); iPXE from the host's
 * `ipxe` package. Built into a cache folder and reused while its inputs (package versions,
 * iPXE files, init script, os.toml) stay the same.
 *
 * @module
 */

import { run } from "./netns.ts";
import type { Logger } from "../log.ts";
import { type CpioEntry, encodeCpio, gzip } from "./cpio.ts";
import { addArm64, ARM64_OS_TOML, ARM64_PACKAGE, arm64Version } from "./fixture_arm64.ts";

/** What the fixture's /init prints on the serial console once the kernel runs it. */
export const MARKER = "ASTRALBOOT-MARKER-OK";

/** The OS folder name of the fixture under `boot/`. */
export const FIXTURE_OS = "tiny";

/** The fixture's os.toml; the HTTP layer builds the start script from it. */
export const OS_TOML = `title = "Tiny test Linux"
kernel = "vmlinuz"
initrd = "initrd.gz"
cmdline = "console=ttyS0 quiet"
`;

/** What /init prints when the firmware says Secure Boot is on. */
export const SECURE_BOOT_ON = "secure boot: enabled";

/** What /init prints when the firmware says Secure Boot is off. */
export const SECURE_BOOT_OFF = "secure boot: disabled";

/** The SecureBoot variable (EFI global variable GUID) as efivarfs shows it. */
const SECURE_BOOT_VAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

// Applets by full path: /bin/sh is the only busybox link in the initramfs. Debian builds
// efivarfs as a module; under Secure Boot the kernel is locked down and loads only signed
// modules, which Debian's are. The variable is 4 bytes of attributes, then the value. The
// ARM64 initramfs has no module (its kernel's modules are not in the netboot package).
const INIT = `#!/bin/sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo "astralboot lab: init running on $(/bin/busybox uname -m) $(/bin/busybox uname -r)"
if [ -d /sys/firmware/efi ] && [ ! -e /lib/efivarfs.ko ]; then
  echo "secure boot: not checked (no efivarfs module)"
elif [ -d /sys/firmware/efi ]; then
  /bin/busybox insmod /lib/efivarfs.ko
  /bin/busybox mount -t efivarfs efivarfs /sys/firmware/efi/efivars
  sb=$(/bin/busybox tail -c 1 ${SECURE_BOOT_VAR} | /bin/busybox od -An -tu1 | /bin/busybox tr -d ' ')
  if [ "$sb" = 1 ]; then echo "${SECURE_BOOT_ON}"
  elif [ "$sb" = 0 ]; then echo "${SECURE_BOOT_OFF}"
  else echo "secure boot: unknown (SecureBoot variable: $sb)"; fi
else
  echo "secure boot: not an EFI boot"
fi
echo ${MARKER}
/bin/busybox sync
/bin/busybox poweroff -f
`;

// Bumped when the builder's output changes for the same inputs.
const BUILDER_VERSION = 3;

/** iPXE's first stages from the host's `ipxe` package, by their place in the tree. */
const IPXE_FILES: Record<string, string> = {
  "tftp/undionly.kpxe": "/usr/lib/ipxe/undionly.kpxe",
  "tftp/snponly.efi": "/usr/lib/ipxe/snponly.efi",
  "tftp/ipxe.efi": "/usr/lib/ipxe/ipxe.efi",
};

/** The Secure Boot chain from Debian's signed packages, by its place in the tree. */
const SECURE_BOOT_DEBS: Record<string, { pkg: string; member: string }> = {
  "tftp/shimx64.efi": { pkg: "shim-signed", member: "./usr/lib/shim/shimx64.efi.signed" },
  // Shim fetches grubx64.efi from the TFTP root (docs/FIRMWARE.md).
  "tftp/grubx64.efi": {
    pkg: "grub-efi-amd64-signed",
    member: "./usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
  },
};

/** A built fixture tree. */
export interface Fixture {
  /** Absolute path of the tree (the `-l DIR` of `astralboot serve`). */
  tree: string;
  /** Hash of every input; the tree's folder name carries its first 16 hex digits. */
  key: string;
  /** Debian package versions it was built from, e.g. `linux-image-6.1.0-56-amd64=6.1.192-2`. */
  packages: string[];
  /** True when this call built it, false when it came from the cache. */
  built: boolean;
}

/** Options for {@linkcode buildFixture}. */
export interface FixtureOptions {
  /** Where debs and trees are kept; default {@linkcode defaultCacheDir}. */
  cacheDir?: string;
  logger: Logger;
}

/**
 * The cache folder: `$ASTRALBOOT_CACHE/fixtures` when set, else `.cache/fixtures` in the source
 * checkout when running from one, else `~/.cache/astralboot/fixtures`.
 */
export function defaultCacheDir(): string {
  const env = Deno.env.get("ASTRALBOOT_CACHE");
  if (env) return `${env.replace(/\/+$/, "")}/fixtures`;
  const here = new URL(".", import.meta.url);
  if (here.protocol === "file:") {
    const repo = decodeURIComponent(new URL("..", here).pathname).replace(/\/$/, "");
    try {
      Deno.statSync(`${repo}/deno.json`);
      Deno.statSync(`${repo}/.git`);
      return `${repo}/.cache/fixtures`;
    } catch { /* not a checkout: compiled binary or installed copy */ }
  }
  return `${Deno.env.get("HOME") ?? "/root"}/.cache/astralboot/fixtures`;
}

async function sha256(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Candidate versions of Debian packages from the local apt lists (no network). */
async function candidates(pkgs: string[]): Promise<string[]> {
  const res = await run(["apt-cache", "policy", ...pkgs]);
  // One block per package: "name:" at the start of a line, then "  Candidate: version".
  const blocks = new Map<string, string>();
  for (const block of res.stdout.split(/^(?=\S+:\s*$)/m)) {
    const name = /^(\S+):/.exec(block)?.[1];
    const version = /Candidate:\s*(\S+)/.exec(block)?.[1];
    if (name && version) blocks.set(name, version);
  }
  return pkgs.map((pkg) => {
    const version = blocks.get(pkg);
    if (!version || version === "(none)") {
      throw new Error(`fixture: Debian package ${pkg} has no candidate version (apt-get update?)`);
    }
    return version;
  });
}

/** The versioned kernel package behind the `linux-image-amd64` metapackage. */
async function kernelPackage(): Promise<string> {
  const res = await run(["apt-cache", "depends", "linux-image-amd64"]);
  const name = /Depends:\s*(linux-image-[\w.+-]+-amd64)/.exec(res.stdout)?.[1];
  if (!name) throw new Error("fixture: linux-image-amd64 names no linux-image-*-amd64 dependency");
  return name;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** A deb in `debs/`, downloaded on first use; apt names it `pkg_ver_arch.deb` (':' as %3a). */
async function fetchDeb(
  debs: string,
  pkg: string,
  version: string,
  logger: Logger,
): Promise<string> {
  const file = `${debs}/${pkg}_${version.replace(":", "%3a")}_amd64.deb`;
  if (await exists(file)) return file;
  await Deno.mkdir(debs, { recursive: true });
  logger.info("lab", "downloading Debian package", { package: pkg, version });
  try {
    // apt-get download writes into the working directory; run it there through sh -c.
    await run(
      ["sh", "-c", 'cd "$1" && apt-get download -q "$2"', "sh", debs, `${pkg}=${version}`],
      {
        timeoutMs: 600_000,
      },
    );
  } catch (err) {
    throw new Error(`fixture: cannot download ${pkg}=${version}`, { cause: err });
  }
  if (!(await exists(file))) throw new Error(`fixture: apt-get download left no ${file}`);
  return file;
}

/** Extracts one member of a deb's data archive to `dest`, without unpacking the rest. */
async function extractMember(deb: string, member: string, dest: string): Promise<void> {
  const res = await run([
    "sh",
    "-c",
    'dpkg-deb --fsys-tarfile "$1" | tar -xO "$2" > "$3"',
    "sh",
    deb,
    member,
    dest,
  ], { timeoutMs: 300_000 });
  if ((await Deno.stat(dest)).size === 0) {
    throw new Error(`fixture: ${member} in ${deb} is empty or missing (${res.stderr.trim()})`);
  }
}

/** The initramfs members: busybox, efivarfs, a console device node and the marker /init. */
function initramfsEntries(busybox: Uint8Array, efivarfs: Uint8Array): CpioEntry[] {
  const text = new TextEncoder();
  return [
    { kind: "dir", path: "bin" },
    { kind: "dir", path: "dev" },
    { kind: "dir", path: "lib" },
    { kind: "dir", path: "proc" },
    { kind: "dir", path: "sys" },
    { kind: "file", path: "lib/efivarfs.ko", mode: 0o644, data: efivarfs },
    // Without /dev/console in the initramfs the kernel starts init with no stdout.
    { kind: "char", path: "dev/console", major: 5, minor: 1 },
    { kind: "char", path: "dev/null", mode: 0o666, major: 1, minor: 3 },
    { kind: "file", path: "bin/busybox", mode: 0o755, data: busybox },
    { kind: "symlink", path: "bin/sh", target: "busybox" },
    { kind: "file", path: "init", mode: 0o755, data: text.encode(INIT) },
  ];
}

/** Removes trees of earlier inputs: each holds a kernel, and inputs only move forward. */
async function pruneOtherTrees(cache: string, keep: string, logger: Logger): Promise<void> {
  for await (const entry of Deno.readDir(cache)) {
    const path = `${cache}/${entry.name}`;
    if (!entry.isDirectory || !entry.name.startsWith("tree-") || path === keep) continue;
    logger.debug("lab", "removing old fixture tree", { tree: path });
    await Deno.remove(path, { recursive: true }).catch(() => {});
  }
}

/** What a fixture tree is built from; any change to these gives another tree. */
export interface FixtureInputs {
  /** `package=version` of the Debian packages it takes files from. */
  packages: string[];
  /** SHA-256 of each iPXE file, by its place in the tree. */
  ipxe: Record<string, string>;
  /** The initramfs /init script. */
  init: string;
  osToml: string;
  /** The ARM64 OS's os.toml, when it is built (the arm64 netboot package is in `packages`). */
  arm64OsToml?: string;
}

/** The cache key of a fixture: SHA-256 (hex) over its inputs and the builder version. */
export function fixtureKey(inputs: FixtureInputs): Promise<string> {
  return sha256(JSON.stringify({ v: BUILDER_VERSION, ...inputs }));
}

/** Builds the fixture tree (or finds it in the cache) and returns where it is. */
export async function buildFixture(options: FixtureOptions): Promise<Fixture> {
  const cache = options.cacheDir ?? defaultCacheDir();
  const logger = options.logger;
  const kernelPkg = await kernelPackage();
  const debs = [kernelPkg, "busybox-static", ...Object.values(SECURE_BOOT_DEBS).map((d) => d.pkg)];
  const versions = await candidates(debs);
  const [kernelVersion, busyboxVersion] = versions as [string, string];
  const packages = debs.map((pkg, i) => `${pkg}=${versions[i]}`);
  const ipxe: Record<string, string> = {};
  for (const [dest, src] of Object.entries(IPXE_FILES)) {
    try {
      ipxe[dest] = await sha256(await Deno.readFile(src));
    } catch (err) {
      throw new Error(`fixture: ${src} is missing (install the ipxe package)`, { cause: err });
    }
  }
  const arm64Installed = await arm64Version();
  const arm64 = arm64Installed ? `${ARM64_PACKAGE}=${arm64Installed}` : null;
  if (arm64) packages.push(arm64);
  const key = await fixtureKey({
    packages,
    ipxe,
    init: INIT,
    osToml: OS_TOML,
    ...(arm64 ? { arm64OsToml: ARM64_OS_TOML } : {}),
  });
  const tree = `${cache}/tree-${key.slice(0, 16)}`;
  if (await exists(`${tree}/manifest.json`)) return { tree, key, packages, built: false };

  logger.info("lab", "building fixture tree", { tree, packages });
  await Deno.mkdir(cache, { recursive: true });
  const work = await Deno.makeTempDir({ dir: cache, prefix: ".build-" });
  try {
    const kernelDeb = await fetchDeb(`${cache}/debs`, kernelPkg, kernelVersion, logger);
    const busyboxDeb = await fetchDeb(`${cache}/debs`, "busybox-static", busyboxVersion, logger);
    const images = `${work}/boot/${FIXTURE_OS}/images`;
    await Deno.mkdir(images, { recursive: true });
    await Deno.mkdir(`${work}/tftp`, { recursive: true });
    const release = kernelPkg.replace(/^linux-image-/, "");
    await extractMember(kernelDeb, `./boot/vmlinuz-${release}`, `${images}/vmlinuz`);
    await extractMember(busyboxDeb, "./bin/busybox", `${work}/busybox`);
    const efivarfs = `./lib/modules/${release}/kernel/fs/efivarfs/efivarfs.ko`;
    await extractMember(kernelDeb, efivarfs, `${work}/efivarfs.ko`);
    const initrd = await gzip(
      encodeCpio(initramfsEntries(
        await Deno.readFile(`${work}/busybox`),
        await Deno.readFile(`${work}/efivarfs.ko`),
      )),
    );
    await Deno.writeFile(`${images}/initrd.gz`, initrd);
    await Deno.remove(`${work}/busybox`);
    await Deno.remove(`${work}/efivarfs.ko`);
    await Deno.writeTextFile(`${work}/boot/${FIXTURE_OS}/os.toml`, OS_TOML);
    for (const [dest, src] of Object.entries(IPXE_FILES)) {
      await Deno.copyFile(src, `${work}/${dest}`);
    }
    for (const [dest, { pkg, member }] of Object.entries(SECURE_BOOT_DEBS)) {
      const deb = await fetchDeb(`${cache}/debs`, pkg, versions[debs.indexOf(pkg)]!, logger);
      await extractMember(deb, member, `${work}/${dest}`);
    }
    if (arm64) await addArm64(work, INIT);
    // dnsmasq and other stand-in servers drop root: everything must be world-readable.
    await run(["chmod", "-R", "a+rX", work]);
    await Deno.writeTextFile(
      `${work}/manifest.json`,
      JSON.stringify({ key, packages, ipxe, built: new Date().toISOString() }, null, 2) + "\n",
    );
    try {
      await Deno.rename(work, tree);
      await pruneOtherTrees(cache, tree, logger);
    } catch (err) {
      // Another run finished the same tree first: theirs is as good as ours.
      if (!(await exists(`${tree}/manifest.json`))) throw err;
      await Deno.remove(work, { recursive: true });
    }
  } catch (err) {
    await Deno.remove(work, { recursive: true }).catch(() => {});
    throw err;
  }
  return { tree, key, packages, built: true };
}
