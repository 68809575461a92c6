import assert from "node:assert/strict";
import { tftpPathToTree } from "./paths.ts";

Deno.test("tftpPathToTree maps client names into tftp/", async (t) => {
  const cases: [string, string][] = [
    ["undionly.kpxe", "tftp/undionly.kpxe"],
    ["/undionly.kpxe", "tftp/undionly.kpxe"],
    ["tftp/undionly.kpxe", "tftp/undionly.kpxe"],
    ["/tftp/undionly.kpxe", "tftp/undionly.kpxe"],
    ["//tftp//arm64/./ipxe.efi", "tftp/arm64/ipxe.efi"],
    ["arm64/ipxe.efi", "tftp/arm64/ipxe.efi"],
    ["boot\\x86\\wdsnbp.com", "tftp/boot/x86/wdsnbp.com"],
    ["\\tftp\\snponly.efi", "tftp/snponly.efi"],
    ["tftp/tftp/x", "tftp/tftp/x"],
    ["%2e%2e/passwd", "tftp/%2e%2e/passwd"],
    ["...", "tftp/..."],
    ["..foo", "tftp/..foo"],
    ["pxelinux.cfg/01-52-54-00-12-34-56", "tftp/pxelinux.cfg/01-52-54-00-12-34-56"],
    ["C:\\ipxe.efi", "tftp/C:/ipxe.efi"],
    ["ümlaut.efi", "tftp/ümlaut.efi"],
  ];
  for (const [name, want] of cases) {
    await t.step(JSON.stringify(name), () => assert.equal(tftpPathToTree(name), want));
  }
});

Deno.test("tftpPathToTree refuses names that could leave the tree", async (t) => {
  const cases: string[] = [
    "",
    "/",
    "//",
    ".",
    "tftp",
    "/tftp/",
    "..",
    "../../etc/passwd",
    "tftp/../../x",
    "a/../b",
    "a/..",
    "..\\..\\windows\\win.ini",
    "tftp\\..\\boot\\x",
    "x\0y",
    "x\ny",
    "x\x7fy",
    "a/" + "b".repeat(256),
    "x".repeat(1025),
  ];
  for (const name of cases) {
    await t.step(JSON.stringify(name.slice(0, 40)), () => assert.equal(tftpPathToTree(name), null));
  }
});

Deno.test("tftpPathToTree output never contains .., backslashes or a leading slash", () => {
  const alphabet = ["a", ".", "..", "/", "\\", "tftp", "%2e", "b.c"];
  let checked = 0;
  // Every name of up to 5 pieces from the alphabet: 8^5 = 32768 names.
  const walk = (prefix: string, depth: number) => {
    const out = tftpPathToTree(prefix);
    if (out !== null) {
      checked++;
      assert.ok(out.startsWith("tftp/"), out);
      assert.ok(!out.split("/").includes(".."), out);
      assert.ok(!out.includes("\\") && !out.includes("//"), out);
    }
    if (depth === 5) return;
    for (const p of alphabet) walk(prefix + p, depth + 1);
  };
  walk("", 0);
  assert.ok(checked > 1000, `only ${checked} names were accepted`);
});
