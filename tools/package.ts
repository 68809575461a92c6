/**
 * Packages the program for operators: a `.tar.gz` and a `.deb` from the same files, and
 * `SHA256SUMS` over every archive in the output folder. The release workflow runs it on each
 * compiled executable; CI runs it on the bundle (with a launcher that runs the bundle on `deno`),
 * so every step but the compile is exercised on every change.
 *
 *   deno run -A tools/package.ts --binary FILE --target TRIPLE [--out DIR]
 *   deno run -A tools/package.ts --bundle dist/astralboot.js [--out DIR]
 *
 * Needs tar, gzip and dpkg-deb.
 *
 * @module
 */
import { readVersion, repoRoot, RUN_FLAGS, TARGETS } from "./build.ts";

/** What to package: a compiled executable for a target, or the bundle with its launcher. */
export type PackageInput =
  | { kind: "binary"; file: string; target: string }
  | { kind: "bundle"; file: string };

/** The parsed command line of `tools/package.ts`. */
export interface PackageRequest {
  input: PackageInput;
  out: string;
}

/** A bad command line of `tools/package.ts`. */
export class PackageUsageError extends Error {
  override name = "PackageUsageError";
}

/** Parses the arguments of `tools/package.ts`. Throws {@linkcode PackageUsageError}. */
export function parsePackageArgs(argv: readonly string[]): PackageRequest {
  const options: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (!["--binary", "--bundle", "--target", "--out"].includes(flag)) {
      throw new PackageUsageError(`unknown argument ${JSON.stringify(arg)}`);
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (!value) throw new PackageUsageError(`${flag} needs a value`);
    options[flag] = value;
  }
  const out = options["--out"] ?? "dist";
  if (options["--binary"] && !options["--bundle"]) {
    const target = options["--target"];
    if (!target || !(target in TARGETS)) {
      throw new PackageUsageError(
        `--binary needs --target, one of ${Object.keys(TARGETS).join(", ")}`,
      );
    }
    return { input: { kind: "binary", file: options["--binary"], target }, out };
  }
  if (options["--bundle"] && !options["--binary"] && !options["--target"]) {
    return { input: { kind: "bundle", file: options["--bundle"] }, out };
  }
  throw new PackageUsageError("give --binary FILE --target TRIPLE, or --bundle FILE");
}

/** Names of the archives: `astralboot-<v>-linux-<cpu>.tar.gz`, `astralboot_<v>_<arch>.deb`. */
export function artifactNames(
  version: string,
  input: PackageInput,
): { dir: string; tar: string; deb: string; debArch: string } {
  const flavour = input.kind === "binary" ? `linux-${input.target.split("-")[0]}` : "bundle";
  const debArch = input.kind === "binary" ? TARGETS[input.target]! : "all";
  const dir = `astralboot-${version}-${flavour}`;
  return { dir, tar: `${dir}.tar.gz`, deb: `astralboot_${version}_${debArch}.deb`, debArch };
}

/**
 * The launcher that stands for the executable in a bundle package: the bundle on the `deno` in
 * PATH with the program's flags, found beside it (archive) or in ../lib/astralboot (package).
 */
export function bundleLauncher(): string {
  return `#!/bin/sh
# Astral Boot from its bundle (one JS file) on the deno in PATH, with the permissions of the
# compiled program (tools/build.ts RUN_FLAGS). --no-config: a deno.json where it is started
# must not change how it runs.
here=$(dirname "$(readlink -f "$0")")
for js in "$here/astralboot.js" "$here/../lib/astralboot/astralboot.js"; do
  if [ -f "$js" ]; then
    exec deno run --no-config --no-lock ${RUN_FLAGS.join(" ")} "$js" "$@"
  fi
done
echo "astralboot: no astralboot.js beside $0 or in $here/../lib/astralboot" >&2
exit 127
`;
}

/** The control file of the .deb. */
export function debControl(
  version: string,
  debArch: string,
  installedKiB: number,
  maintainer: string,
): string {
  const bundle = debArch === "all";
  return [
    "Package: astralboot",
    `Version: ${version}`,
    `Architecture: ${debArch}`,
    `Maintainer: ${maintainer}`,
    `Installed-Size: ${installedKiB}`,
    ...(bundle ? [] : ["Depends: libc6"]),
    "Section: net",
    "Priority: optional",
    "Description: network boot server: DHCP, TFTP, HTTP, boot files from IPFS",
    " Astral Boot PXE-boots BIOS, UEFI and ARM64 machines: DHCP (server, proxy or auto",
    " beside an existing server) on one interface, TFTP, HTTP scripts and images, per-machine",
    " installer configs, content from IPFS verified block by block, and a dashboard.",
    ...(bundle ? [" .", " This build is the JavaScript bundle: it runs on the deno in PATH."] : []),
    "",
  ].join("\n");
}

/** Maintainer scripts: the system user at configure, the service stopped at removal. */
export const MAINTAINER_SCRIPTS: Readonly<Record<string, string>> = {
  postinst: `#!/bin/sh
# The astralboot system user (from /usr/lib/sysusers.d/astralboot.conf) and a config only root and
# that user read. DPKG_ROOT is set when dpkg installs into another root (--root, chrootless):
# then nothing of the running system is touched.
set -e
root="\${DPKG_ROOT:-}"
[ "$1" = configure ] || exit 0
if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers \${root:+--root="$root"} astralboot.conf
elif [ -z "$root" ]; then
  getent passwd astralboot >/dev/null ||
    adduser --system --group --home /var/lib/astralboot --no-create-home astralboot
else
  echo "astralboot: cannot make the user in $root without systemd-sysusers" >&2
  exit 1
fi
# config.toml may hold installer secrets (vars). Only at the first install: later its owner and
# mode are the admin's.
if [ -z "$2" ]; then
  gid=$(sed -n 's/^astralboot:[^:]*:\\([0-9][0-9]*\\):.*/\\1/p' "$root/etc/group")
  if [ -n "$gid" ]; then
    chown "0:$gid" "$root/etc/astralboot/config.toml"
    chmod 0640 "$root/etc/astralboot/config.toml"
  fi
fi
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
  # An upgrade restarts a running server with the new program; a first install starts nothing:
  # a boot server must not answer before its interface is chosen.
  [ -z "$2" ] || systemctl try-restart astralboot.service || true
fi
exit 0
`,
  prerm: `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
  systemctl stop astralboot.service || true
fi
exit 0
`,
  postrm: `#!/bin/sh
# The data directory (leases, machines, cache, admin token) stays, even on purge: removing a
# boot server's leases is the admin's decision (rm -r /var/lib/astralboot).
set -e
if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
exit 0
`,
};

/** Files both archives carry: repository path → place in the archive and in the package. */
export const PAYLOAD: readonly { from: string; tar: string; deb: string; mode: number }[] = [
  {
    from: "contrib/systemd/astralboot.service",
    tar: "astralboot.service",
    deb: "lib/systemd/system/astralboot.service",
    mode: 0o644,
  },
  {
    from: "contrib/systemd/astralboot.sysusers",
    tar: "astralboot.sysusers",
    deb: "usr/lib/sysusers.d/astralboot.conf",
    mode: 0o644,
  },
  {
    from: "contrib/config.toml",
    tar: "config.toml",
    deb: "etc/astralboot/config.toml",
    mode: 0o644,
  },
  {
    from: "contrib/container/Containerfile",
    tar: "Containerfile",
    deb: "usr/share/doc/astralboot/Containerfile",
    mode: 0o644,
  },
  { from: "README.md", tar: "README.md", deb: "usr/share/doc/astralboot/README.md", mode: 0o644 },
  {
    from: "SECURITY.md",
    tar: "SECURITY.md",
    deb: "usr/share/doc/astralboot/SECURITY.md",
    mode: 0o644,
  },
  {
    from: "docs/OPERATING.md",
    tar: "OPERATING.md",
    deb: "usr/share/doc/astralboot/OPERATING.md",
    mode: 0o644,
  },
];

async function run(cmd: string[], cwd?: string): Promise<void> {
  const out = await new Deno.Command(cmd[0]!, { args: cmd.slice(1), cwd }).output();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`${cmd.join(" ")} exited ${out.code}: ${err}`);
  }
}

async function place(from: string, to: string, mode: number): Promise<void> {
  await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
  await Deno.copyFile(from, to);
  await Deno.chmod(to, mode);
}

async function write(to: string, text: string, mode: number): Promise<void> {
  await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(to, text);
  await Deno.chmod(to, mode);
}

async function sizeKiB(dir: string): Promise<number> {
  let bytes = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.name === "DEBIAN") continue;
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) bytes += (await sizeKiB(path)) * 1024;
    else bytes += (await Deno.stat(path)).size;
  }
  return Math.ceil(bytes / 1024);
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Writes `dir/SHA256SUMS` (sha256sum's format) over every .tar.gz and .deb in `dir`. */
export async function writeChecksums(dir: string): Promise<string> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && (e.name.endsWith(".tar.gz") || e.name.endsWith(".deb"))) names.push(e.name);
  }
  const lines = await Promise.all(
    names.sort().map(async (n) => `${await sha256(`${dir}/${n}`)}  ${n}`),
  );
  const text = lines.join("\n") + "\n";
  await Deno.writeTextFile(`${dir}/SHA256SUMS`, text);
  return text;
}

/** Builds the .tar.gz and the .deb into `request.out`; resolves to their paths. */
export async function buildPackages(
  request: PackageRequest,
  options: { root?: string; maintainer?: string } = {},
): Promise<{ tar: string; deb: string }> {
  const root = options.root ?? repoRoot();
  const version = await readVersion(root);
  const names = artifactNames(version, request.input);
  await Deno.mkdir(request.out, { recursive: true });
  const out = await Deno.realPath(request.out);
  const work = await Deno.makeTempDir({ prefix: "ab-package-" });
  try {
    const tarDir = `${work}/${names.dir}`;
    const debDir = `${work}/deb`;
    const { input } = request;
    if (input.kind === "binary") {
      await place(input.file, `${tarDir}/astralboot`, 0o755);
      await place(input.file, `${debDir}/usr/bin/astralboot`, 0o755);
    } else {
      await write(`${tarDir}/astralboot`, bundleLauncher(), 0o755);
      await place(input.file, `${tarDir}/astralboot.js`, 0o644);
      await write(`${debDir}/usr/bin/astralboot`, bundleLauncher(), 0o755);
      await place(input.file, `${debDir}/usr/lib/astralboot/astralboot.js`, 0o644);
    }
    for (const file of PAYLOAD) {
      await place(`${root}/${file.from}`, `${tarDir}/${file.tar}`, file.mode);
      await place(`${root}/${file.from}`, `${debDir}/${file.deb}`, file.mode);
    }
    for (const license of ["LICENSE", "COPYING"]) {
      try {
        await place(`${root}/${license}`, `${tarDir}/${license}`, 0o644);
        await place(`${root}/${license}`, `${debDir}/usr/share/doc/astralboot/copyright`, 0o644);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    const maintainer = options.maintainer ?? "Astral Boot developers <noreply@astralboot.invalid>";
    await write(
      `${debDir}/DEBIAN/control`,
      debControl(version, names.debArch, await sizeKiB(debDir), maintainer),
      0o644,
    );
    // A conffile: an upgrade keeps the admin's edits (and asks when both sides changed).
    await write(`${debDir}/DEBIAN/conffiles`, "/etc/astralboot/config.toml\n", 0o644);
    for (const [name, text] of Object.entries(MAINTAINER_SCRIPTS)) {
      await write(`${debDir}/DEBIAN/${name}`, text, 0o755);
    }
    // Owned by root in both archives, whoever builds them.
    await run([
      "tar",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "-czf",
      `${out}/${names.tar}`,
      "-C",
      work,
      names.dir,
    ]);
    await run(["dpkg-deb", "--root-owner-group", "--build", debDir, `${out}/${names.deb}`]);
    await writeChecksums(out);
    return { tar: `${out}/${names.tar}`, deb: `${out}/${names.deb}` };
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    const made = await buildPackages(parsePackageArgs(Deno.args), {
      maintainer: Deno.env.get("DEB_MAINTAINER"),
    });
    console.log(`${made.tar}\n${made.deb}`);
  } catch (e) {
    console.error(`tools/package.ts: ${(e as Error).message}`);
    Deno.exit(e instanceof PackageUsageError ? 2 : 1);
  }
}
