import assert from "node:assert/strict";
import { grubKernelArgs, grubQuote, grubTftpPath, type TftpName, tftpName } from "./grub.ts";

Deno.test("tftpName: GRUB's configs, its choices, OS images, the tree", async (t) => {
  const table: [string, TftpName | null][] = [
    // What Debian's signed grubnetx64 asks for (prefix /grub), and the installer build.
    ["/grub/grub.cfg", { kind: "grub-entry" }],
    ["grub/grub.cfg", { kind: "grub-entry" }],
    ["/debian-installer/amd64/grub/grub.cfg", { kind: "grub-entry" }],
    // The arm64 installer's netboot GRUB (grubaa64.efi), the lab's ARM64 chain.
    ["/debian-installer/arm64/grub/grub.cfg", { kind: "grub-entry" }],
    ["/debian-installer/arm64/grub/arm64-efi/command.lst", {
      kind: "file",
      path: "tftp/debian-installer/arm64/grub/arm64-efi/command.lst",
    }],
    ["/tftp/grub/grub.cfg", { kind: "grub-entry" }],
    // Everything else under the prefix is the tree's: fonts, themes, module lists.
    ["/grub/x86_64-efi/command.lst", { kind: "file", path: "tftp/grub/x86_64-efi/command.lst" }],
    ["/grub/grub.cfg-01-52-54-00-12-34-56", {
      kind: "file",
      path: "tftp/grub/grub.cfg-01-52-54-00-12-34-56",
    }],
    ["/grub/choose/debian", { kind: "grub-choose", os: "debian", cls: null }],
    ["/grub/choose/debian/k8s-node", { kind: "grub-choose", os: "debian", cls: "k8s-node" }],
    ["/grub/choose", { kind: "file", path: "tftp/grub/choose" }],
    ["/grub/choose/a/b/c", { kind: "file", path: "tftp/grub/choose/a/b/c" }],
    ["/image/tiny/vmlinuz", { kind: "file", path: "boot/tiny/images/vmlinuz" }],
    ["/image/tiny/sub/initrd.gz", { kind: "file", path: "boot/tiny/images/sub/initrd.gz" }],
    ["/image/.hidden/x", null],
    ["/image/tiny", { kind: "file", path: "tftp/image/tiny" }],
    ["shimx64.efi", { kind: "file", path: "tftp/shimx64.efi" }],
    ["grubx64.efi", { kind: "file", path: "tftp/grubx64.efi" }],
    ["grubaa64.efi", { kind: "file", path: "tftp/grubaa64.efi" }],
    ["/image/tiny/../../secret", null],
    ["../etc/passwd", null],
  ];
  for (const [name, want] of table) {
    await t.step(name, () => assert.deepEqual(tftpName(name), want));
  }
});

Deno.test("grubQuote: plain words stay, the rest in single quotes", async (t) => {
  const table: [string, string][] = [
    ["vmlinuz", "vmlinuz"],
    ["console=ttyS0,115200n8", "console=ttyS0,115200n8"],
    ["(tftp,10.0.0.1)/image/tiny/vmlinuz", "'(tftp,10.0.0.1)/image/tiny/vmlinuz'"],
    ["Debian 12: k8s node", "'Debian 12: k8s node'"],
    ["it's", "'it'\\''s'"],
    ["${root}; reboot", "'${root}; reboot'"],
    ["", "''"],
  ];
  for (const [input, want] of table) {
    await t.step(JSON.stringify(input), () => assert.equal(grubQuote(input), want));
  }
});

Deno.test("grubKernelArgs: the kernel gets its command line back", async (t) => {
  const table: [string, string][] = [
    ["", ""],
    ["console=ttyS0 quiet", "console=ttyS0 quiet"],
    ["  console=ttyS0\t quiet ", "console=ttyS0 quiet"],
    // GRUB hands `foo=a b` on as "foo=a b", which the kernel reads as foo="a b" was meant.
    ['foo="a b" bar', "'foo=a b' bar"],
    [
      "url=http://10.0.0.1/config/debian/preseed?mac=52-54-00-12-34-56&x=1",
      "'url=http://10.0.0.1/config/debian/preseed?mac=52-54-00-12-34-56&x=1'",
    ],
    ["init=/bin/sh;reboot", "'init=/bin/sh;reboot'"],
    ['empty=""', "empty="],
  ];
  for (const [input, want] of table) {
    await t.step(JSON.stringify(input), () => assert.equal(grubKernelArgs(input), want));
  }
});

Deno.test("grubTftpPath names a file on this server's TFTP", () => {
  assert.equal(
    grubTftpPath("10.0.0.1", "/image/tiny/vmlinuz"),
    "'(tftp,10.0.0.1)/image/tiny/vmlinuz'",
  );
});
