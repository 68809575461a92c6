/**
 * The release's packaging, run in CI on the bundle: tools/package.ts makes the .tar.gz and the
 * .deb (the bundle with its launcher standing for the executable), dpkg installs the .deb into a
 * scratch root (chrootless: the maintainer scripts act on that root only), systemd-analyze
 * verifies the installed unit, and tools/smoke.sh runs the installed program (its `serve` in a
 * network namespace of its own). Only the compile differs from the release.
 */
import assert from "node:assert/strict";
import {
  artifactNames,
  buildPackages,
  PackageUsageError,
  parsePackageArgs,
} from "../tools/package.ts";
import { readVersion, repoRoot } from "../tools/build.ts";
import { inPrivateMounts, run } from "./netns.ts";

const ROOT = repoRoot();
const VERSION = await readVersion(ROOT);

Deno.test("tools/package.ts names its archives by version and target", async (t) => {
  const table = [
    {
      argv: ["--binary", "a", "--target", "x86_64-unknown-linux-gnu"],
      tar: `astralboot-${VERSION}-linux-x86_64.tar.gz`,
      deb: `astralboot_${VERSION}_amd64.deb`,
    },
    {
      argv: ["--binary=a", "--target=aarch64-unknown-linux-gnu", "--out", "o"],
      tar: `astralboot-${VERSION}-linux-aarch64.tar.gz`,
      deb: `astralboot_${VERSION}_arm64.deb`,
    },
    {
      argv: ["--bundle", "dist/astralboot.js"],
      tar: `astralboot-${VERSION}-bundle.tar.gz`,
      deb: `astralboot_${VERSION}_all.deb`,
    },
  ];
  for (const row of table) {
    await t.step(row.argv.join(" "), () => {
      const names = artifactNames(VERSION, parsePackageArgs(row.argv).input);
      assert.equal(names.tar, row.tar);
      assert.equal(names.deb, row.deb);
    });
  }
  for (
    const bad of [[], ["--binary", "a"], ["--binary", "a", "--target", "mips"], [
      "--bundle",
      "a",
      "--target",
      "x86_64-unknown-linux-gnu",
    ], ["--strip"]]
  ) {
    await t.step(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parsePackageArgs(bad), PackageUsageError);
    });
  }
});

/** `cmd` in the scratch dpkg root `root`: maintainer scripts run outside a chroot with DPKG_ROOT. */
function dpkg(root: string, ...args: string[]) {
  return run([
    "dpkg",
    `--root=${root}`,
    "--force-script-chrootless",
    "--force-depends",
    "--force-confold",
    ...args,
  ], { timeoutMs: 60_000 });
}

/** An empty dpkg root with the passwd and group files a system user goes into. */
async function scratchRoot(dir: string): Promise<string> {
  const root = `${dir}/root`;
  for (const sub of ["info", "updates", "triggers"]) {
    await Deno.mkdir(`${root}/var/lib/dpkg/${sub}`, { recursive: true });
  }
  await Deno.writeTextFile(`${root}/var/lib/dpkg/status`, "");
  await Deno.writeTextFile(`${root}/var/lib/dpkg/available`, "");
  await Deno.mkdir(`${root}/etc`);
  await Deno.writeTextFile(`${root}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  await Deno.writeTextFile(`${root}/etc/group`, "root:x:0:\n");
  return root;
}

Deno.test({
  name: "the bundle packaged as .tar.gz and .deb installs, verifies and passes the smoke test",
  sanitizeResources: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "ab-package-test-" });
    try {
      const bundle = `${dir}/astralboot.js`;
      await run([Deno.execPath(), "task", "--cwd", ROOT, "bundle", "--output", bundle]);
      const made = await buildPackages({
        input: { kind: "bundle", file: bundle },
        out: `${dir}/out`,
      });

      await t.step(
        "the archive holds the program, the unit, the config, docs, Containerfile",
        async () => {
          const list = (await run(["tar", "tzf", made.tar])).stdout.split("\n").filter(Boolean);
          const top = `astralboot-${VERSION}-bundle/`;
          const want = [
            "astralboot",
            "astralboot.js",
            "astralboot.service",
            "astralboot.sysusers",
            "config.toml",
            "Containerfile",
            "README.md",
            "SECURITY.md",
            "OPERATING.md",
          ];
          assert.deepEqual(list.sort(), [top, ...want.map((f) => top + f)].sort());
        },
      );

      await t.step("SHA256SUMS covers both and verifies", async () => {
        const check = await new Deno.Command("sha256sum", {
          args: ["-c", "SHA256SUMS"],
          cwd: `${dir}/out`,
        }).output();
        const text = new TextDecoder().decode(check.stdout);
        assert.ok(check.success, text);
        assert.match(text, /\.tar\.gz: OK/);
        assert.match(text, /\.deb: OK/);
      });

      await t.step(
        "dpkg-deb --info: name, the version of deno.json, conffile, scripts",
        async () => {
          const info = (await run(["dpkg-deb", "--info", made.deb])).stdout;
          assert.match(info, /^ Package: astralboot$/m);
          assert.match(info, new RegExp(`^ Version: ${VERSION.replaceAll(".", "\\.")}$`, "m"));
          assert.match(info, /^ Architecture: all$/m);
          for (const part of ["conffiles", "postinst", "prerm", "postrm"]) {
            assert.match(info, new RegExp(`\\b${part}\\b`), part);
          }
          const conffiles = (await run([
            "sh",
            "-c",
            'dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles',
            "sh",
            made.deb,
          ])).stdout;
          assert.equal(conffiles, "/etc/astralboot/config.toml\n");
        },
      );

      const root = await scratchRoot(dir);
      await t.step(
        "installs into a scratch root: user made, config 0640 to its group",
        async () => {
          await dpkg(root, "-i", made.deb);
          const status = (await dpkg(root, "-s", "astralboot")).stdout;
          assert.match(status, /^Status: install ok installed$/m);
          const passwd = await Deno.readTextFile(`${root}/etc/passwd`);
          const user = /^astralboot:x:(\d+):(\d+):[^:]*:\/var\/lib\/astralboot:/m.exec(passwd);
          assert.ok(user, passwd);
          const config = await Deno.stat(`${root}/etc/astralboot/config.toml`);
          assert.equal(config.mode! & 0o777, 0o640);
          assert.equal(config.uid, 0);
          assert.equal(String(config.gid), user[2]);
          for (
            const path of [
              "usr/bin/astralboot",
              "usr/lib/astralboot/astralboot.js",
              "lib/systemd/system/astralboot.service",
              "usr/lib/sysusers.d/astralboot.conf",
              "usr/share/doc/astralboot/OPERATING.md",
            ]
          ) {
            await Deno.stat(`${root}/${path}`);
          }
          const host = await run(["getent", "passwd", "astralboot"], { check: false });
          assert.equal(host.stdout, "", "the host's own users are untouched");
        },
      );

      await t.step("systemd-analyze verify passes on the installed unit", async () => {
        // The unit names /usr/bin/astralboot: a private mount namespace lays the package's
        // /usr/bin over the host's for the verify alone.
        const r = await run(
          inPrivateMounts(
            'mount -t overlay overlay -o "lowerdir=$1/usr/bin:/usr/bin" /usr/bin && ' +
              'systemd-analyze verify "$1/lib/systemd/system/astralboot.service"',
            [root],
          ),
          { check: false },
        );
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(r.stderr.trim(), "", "no warnings");
      });

      await t.step("tools/smoke.sh passes on the installed program", async () => {
        const r = await run([`${ROOT}/tools/smoke.sh`, `${root}/usr/bin/astralboot`, VERSION], {
          check: false,
          timeoutMs: 120_000,
        });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /smoke: all ok/);
      });

      await t.step("an upgrade keeps the admin's config and its mode", async () => {
        const path = `${root}/etc/astralboot/config.toml`;
        await Deno.writeTextFile(path, 'interface = "eth9"\n', { append: true });
        await Deno.chmod(path, 0o600);
        await dpkg(root, "-i", made.deb);
        assert.match(await Deno.readTextFile(path), /interface = "eth9"/);
        assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      });

      await t.step("remove keeps the config; purge removes it", async () => {
        await dpkg(root, "--remove", "astralboot");
        await assert.rejects(Deno.stat(`${root}/usr/bin/astralboot`), Deno.errors.NotFound);
        await Deno.stat(`${root}/etc/astralboot/config.toml`);
        await dpkg(root, "--purge", "astralboot");
        await assert.rejects(
          Deno.stat(`${root}/etc/astralboot/config.toml`),
          Deno.errors.NotFound,
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a compiled executable is packaged for its architecture", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ab-package-bin-" });
  try {
    // Stands for the executable: packaging copies it and never runs it.
    await Deno.writeTextFile(`${dir}/astralboot`, "#!/bin/sh\necho stand-in\n");
    const made = await buildPackages({
      input: { kind: "binary", file: `${dir}/astralboot`, target: "aarch64-unknown-linux-gnu" },
      out: `${dir}/out`,
    });
    const info = (await run(["dpkg-deb", "--info", made.deb])).stdout;
    assert.match(info, /^ Architecture: arm64$/m);
    assert.match(info, /^ Depends: libc6$/m);
    const list = (await run(["dpkg-deb", "--contents", made.deb])).stdout;
    assert.match(list, /^-rwxr-xr-x root\/root .* \.\/usr\/bin\/astralboot$/m);
    assert.ok(!list.includes("astralboot.js"));
    const tar = (await run(["tar", "tzf", made.tar])).stdout;
    assert.match(tar, new RegExp(`^astralboot-${VERSION}-linux-aarch64/astralboot$`, "m"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
