import assert from "node:assert/strict";
import { buildFixture, type FixtureInputs, fixtureKey, MARKER, OS_TOML } from "./fixture.ts";
import { run } from "./netns.ts";
import { silentLogger } from "../log.ts";
import {
  ARM64_DIR,
  ARM64_OS,
  ARM64_OS_TOML,
  ARM64_PACKAGE,
  arm64Version,
} from "./fixture_arm64.ts";

Deno.test("fixtureKey changes with every input", async (t) => {
  const base: FixtureInputs = {
    packages: ["linux-image-6.1.0-56-amd64=6.1.192-2", "busybox-static=1:1.35.0-4"],
    ipxe: { "tftp/undionly.kpxe": "aa" },
    init: "#!/bin/sh\n",
    osToml: OS_TOML,
  };
  const baseKey = await fixtureKey(base);
  assert.match(baseKey, /^[0-9a-f]{64}$/);
  assert.equal(await fixtureKey({ ...base }), baseKey);
  const table: [string, FixtureInputs][] = [
    ["kernel version", {
      ...base,
      packages: ["linux-image-6.1.0-57-amd64=6.1.193-1", "busybox-static=1:1.35.0-4"],
    }],
    ["busybox version", { ...base, packages: [base.packages[0]!, "busybox-static=1:1.36.0-1"] }],
    ["iPXE file", { ...base, ipxe: { "tftp/undionly.kpxe": "bb" } }],
    ["init script", { ...base, init: "#!/bin/sh\necho\n" }],
    ["os.toml", { ...base, osToml: OS_TOML + "# changed\n" }],
    ["the ARM64 OS", { ...base, arm64OsToml: ARM64_OS_TOML }],
  ];
  for (const [name, inputs] of table) {
    await t.step(name, async () => assert.notEqual(await fixtureKey(inputs), baseKey));
  }
});

Deno.test("buildFixture lays out a tree whose kernel and initramfs print the marker", async (t) => {
  // The default cache: the first run downloads two debs, later runs reuse the tree.
  const first = await buildFixture({ logger: silentLogger });
  const again = await buildFixture({ logger: silentLogger });
  const tree = first.tree;

  await t.step("a second call finds the same tree in the cache", () => {
    assert.equal(again.tree, tree);
    assert.equal(again.built, false);
    assert.equal(again.key, first.key);
    assert.ok(tree.endsWith(`tree-${first.key.slice(0, 16)}`));
  });

  await t.step("layout: first stages, os.toml, kernel, initrd; all world-readable", async () => {
    for (const path of ["tftp/undionly.kpxe", "tftp/snponly.efi", "tftp/ipxe.efi"]) {
      const want = await Deno.readFile(`/usr/lib/ipxe/${path.slice(5)}`);
      assert.deepEqual(await Deno.readFile(`${tree}/${path}`), want, path);
    }
    // The Secure Boot chain, from the packages the fixture names.
    assert.ok(first.packages.some((p) => p.startsWith("shim-signed=")), first.packages.join());
    assert.ok(first.packages.some((p) => p.startsWith("grub-efi-amd64-signed=")));
    for (const path of ["tftp/shimx64.efi", "tftp/grubx64.efi"]) {
      const head = (await Deno.readFile(`${tree}/${path}`)).subarray(0, 2);
      assert.equal(new TextDecoder().decode(head), "MZ", `${path} is a PE image`);
    }
    assert.equal(await Deno.readTextFile(`${tree}/boot/tiny/os.toml`), OS_TOML);
    for (const path of ["boot/tiny/images/vmlinuz", "boot/tiny/images/initrd.gz"]) {
      const st = await Deno.stat(`${tree}/${path}`);
      assert.ok(st.size > 100_000, `${path} is ${st.size} bytes`);
      assert.equal(st.mode! & 0o004, 0o004, `${path} world-readable`);
    }
  });

  await t.step("the kernel is a bzImage (setup header magic HdrS at 0x202)", async () => {
    const head = (await Deno.readFile(`${tree}/boot/tiny/images/vmlinuz`)).subarray(0x202, 0x206);
    assert.equal(new TextDecoder().decode(head), "HdrS");
  });

  await t.step(
    "the initramfs holds busybox, /dev/console and an /init that prints the marker",
    async () => {
      const list = await run([
        "sh",
        "-c",
        'zcat "$1" | cpio -tv',
        "sh",
        `${tree}/boot/tiny/images/initrd.gz`,
      ]);
      assert.match(list.stdout, /^crw-------.*\bdev\/console$/m);
      assert.match(list.stdout, /^-rwxr-xr-x.*\bbin\/busybox$/m);
      assert.match(list.stdout, /^lrwxrwxrwx.*\bbin\/sh -> busybox$/m);
      assert.match(list.stdout, /^-rw-r--r--.*\blib\/efivarfs\.ko$/m);
      const init = await run([
        "sh",
        "-c",
        'zcat "$1" | cpio -i --to-stdout init',
        "sh",
        `${tree}/boot/tiny/images/initrd.gz`,
      ]);
      assert.match(init.stdout, /^#!\/bin\/sh\n/);
      assert.ok(init.stdout.includes(`echo ${MARKER}`));
    },
  );

  await t.step(
    "QEMU boots kernel + initrd directly (no network) to the marker and powers off",
    async () => {
      const res = await run([
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "512",
        "-nic",
        "none",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        `${tree}/boot/tiny/images/vmlinuz`,
        "-initrd",
        `${tree}/boot/tiny/images/initrd.gz`,
        "-append",
        "console=ttyS0 quiet",
      ], { timeoutMs: 120_000 });
      assert.ok(res.stdout.includes(MARKER), res.stdout.slice(-2000));
      // QEMU's -kernel boots through SeaBIOS: no EFI, so no Secure Boot variable to read.
      assert.match(res.stdout, /^secure boot: not an EFI boot\r?$/m);
      assert.match(res.stdout, /reboot: Power down/);
    },
  );

  const arm64 = await arm64Version();
  await t.step({
    name: "ARM64 (the arm64 netboot package installed): shim, GRUB, kernel and initramfs",
    ignore: arm64 === null,
    fn: async () => {
      assert.ok(first.packages.includes(`${ARM64_PACKAGE}=${arm64}`), first.packages.join());
      assert.deepEqual(
        await Deno.readFile(`${tree}/tftp/shimaa64.efi`),
        await Deno.readFile(`${ARM64_DIR}/bootnetaa64.efi`),
      );
      assert.deepEqual(
        await Deno.readFile(`${tree}/tftp/grubaa64.efi`),
        await Deno.readFile(`${ARM64_DIR}/grubaa64.efi`),
      );
      assert.equal(await Deno.readTextFile(`${tree}/boot/${ARM64_OS}/os.toml`), ARM64_OS_TOML);
      // An arm64 Image: "ARM\x64" at 0x38.
      const head = (await Deno.readFile(`${tree}/boot/${ARM64_OS}/images/vmlinuz`))
        .subarray(0x38, 0x3c);
      assert.deepEqual([...head], [0x41, 0x52, 0x4d, 0x64]);
      const list = await run([
        "sh",
        "-c",
        'zcat "$1" | cpio -tv',
        "sh",
        `${tree}/boot/${ARM64_OS}/images/initrd.gz`,
      ]);
      assert.match(list.stdout, /^-rwxr-xr-x.*\bbin\/busybox$/m);
      assert.match(list.stdout, /\blib\/ld-linux-aarch64\.so\.1 -> aarch64-linux-gnu\//m);
      assert.match(list.stdout, /\blib\/aarch64-linux-gnu\/libc\.so\.6$/m);
      assert.match(list.stdout, /^crw-------.*\bdev\/console$/m);
    },
  });

  await t.step({
    name: "QEMU boots the ARM64 kernel + initrd directly (no firmware) to the marker",
    ignore: arm64 === null,
    fn: async () => {
      const res = await run([
        "qemu-system-aarch64",
        "-M",
        "virt",
        "-cpu",
        "max,pauth-impdef=on",
        "-accel",
        "tcg",
        "-m",
        "1024",
        "-nic",
        "none",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        `${tree}/boot/${ARM64_OS}/images/vmlinuz`,
        "-initrd",
        `${tree}/boot/${ARM64_OS}/images/initrd.gz`,
        "-append",
        "console=ttyAMA0 quiet",
      ], { timeoutMs: 120_000 });
      assert.ok(res.stdout.includes(MARKER), res.stdout.slice(-2000));
      assert.match(res.stdout, /^astralboot lab: init running on aarch64 /m);
      // Without UEFI there is no Secure Boot variable to read.
      assert.match(res.stdout, /^secure boot: not an EFI boot\r?$/m);
    },
  });
});
