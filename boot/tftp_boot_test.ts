import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LocalStore } from "../content/local.ts";
import { mustParseMac } from "../net/mac.ts";
import { testApp } from "../http/_test_utils.ts";
import { BootRequestError } from "./errors.ts";
import type { TftpAnswer } from "./tftp_boot.ts";

const TREE = fileURLToPath(new URL("./testdata/tree", import.meta.url));
const GOLDEN = fileURLToPath(new URL("./testdata/golden/grub", import.meta.url));
// Set to rewrite the golden files from what the code renders now (then review the diff).
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";
const MAC = mustParseMac("52:54:00:12:34:56");
const IP = "10.0.0.50";
const STRANGER = "10.0.0.99";

/** The boot services over the test tree; MAC holds a lease on IP, nobody holds STRANGER. */
function setup(options: { defaultOs?: string } = {}) {
  return testApp({
    store: new LocalStore(TREE),
    defaultOs: options.defaultOs,
    addressBook: {
      leaseOf: (mac) => mac === MAC ? IP : null,
      leaseAt: (ip) => ip === IP ? MAC : null,
    },
  });
}

function text(answer: TftpAnswer | null): string {
  assert.equal(answer?.kind, "script", JSON.stringify(answer));
  return (answer as { kind: "script"; script: { text: string } }).script.text;
}

async function golden(name: string, got: string): Promise<void> {
  const file = join(GOLDEN, name);
  if (UPDATE) await Deno.writeTextFile(file, got);
  assert.equal(got, await Deno.readTextFile(file));
}

Deno.test("GRUB's grub.cfg over TFTP is the asking machine's, byte for byte", async (t) => {
  const rows: {
    name: string;
    file: string;
    golden: string;
    from?: string;
    defaultOs?: string;
    sticky?: string;
    installed?: boolean;
  }[] = [
    {
      name: "undecided: the menu",
      file: "/grub/grub.cfg",
      golden: "menu_default.cfg",
      defaultOs: "debian",
    },
    { name: "no default: the menu waits", file: "/grub/grub.cfg", golden: "menu_no_default.cfg" },
    {
      name: "a stranger's address: the menu of no machine",
      file: "/grub/grub.cfg",
      golden: "menu_anonymous.cfg",
      from: STRANGER,
    },
    {
      name: "its OS decided: the kernel lines",
      file: "/grub/grub.cfg",
      golden: "start_tiny.cfg",
      sticky: "tiny",
    },
    {
      name: "the installer build's prefix gets the same",
      file: "/debian-installer/amd64/grub/grub.cfg",
      golden: "start_debian.cfg",
      sticky: "debian",
    },
    {
      name: "installed: the local disk",
      file: "/grub/grub.cfg",
      golden: "local_tiny.cfg",
      sticky: "tiny",
      installed: true,
    },
  ];
  for (const row of rows) {
    await t.step(row.name, async () => {
      const s = setup({ defaultOs: row.defaultOs });
      if (row.sticky) s.registry.choose(MAC, row.sticky);
      if (row.installed) s.registry.installed(MAC);
      await golden(row.golden, text(await s.tftp.answer(row.file, row.from ?? IP)));
    });
  }
});

Deno.test("a GRUB menu choice over TFTP is the asking machine's, and sticky", async (t) => {
  const s = setup();
  await t.step(
    "grub/choose/<os>/<class> records the choice, answers the kernel lines",
    async () => {
      const answer = await s.tftp.answer("/grub/choose/debian/server", IP);
      assert.match(text(answer), /^linux '\(tftp,10\.0\.0\.1\)\/image\/debian\/linux' /m);
      assert.deepEqual([s.registry.get(MAC)?.os, s.registry.get(MAC)?.class], ["debian", "server"]);
      assert.deepEqual((answer as { script: { step: unknown } }).script.step, {
        stage: "chosen",
        detail: "debian/server",
      });
    },
  );
  await t.step("the next grub.cfg boots it at once", async () => {
    assert.match(text(await s.tftp.answer("/grub/grub.cfg", IP)), /^boot$/m);
  });
  const refusals: [string, string, string, number][] = [
    ["from an address nobody holds", "/grub/choose/tiny", STRANGER, 404],
    ["an OS the tree lacks", "/grub/choose/nope", IP, 404],
    ["a class the OS lacks", "/grub/choose/debian/nope", IP, 404],
  ];
  for (const [name, file, from, status] of refusals) {
    await t.step(`refused: ${name}`, async () => {
      await assert.rejects(s.tftp.answer(file, from), (e: unknown) => {
        assert.ok(e instanceof BootRequestError);
        assert.equal(e.status, status);
        return true;
      });
    });
  }
  await t.step("refused: a choice on an installed machine (409)", async () => {
    s.registry.installed(MAC);
    await assert.rejects(s.tftp.answer("/grub/choose/tiny", IP), /astralboot machine reinstall/);
  });
  await t.step("nothing a stranger asked changed the machine", () => {
    assert.deepEqual([s.registry.get(MAC)?.os, s.registry.get(MAC)?.class], ["debian", "server"]);
  });
});

Deno.test("images and tree files are paths, left to the store", async () => {
  const s = setup();
  assert.deepEqual(await s.tftp.answer("/image/tiny/vmlinuz", STRANGER), {
    kind: "file",
    path: "boot/tiny/images/vmlinuz",
  });
  assert.deepEqual(await s.tftp.answer("shimx64.efi", STRANGER), {
    kind: "file",
    path: "tftp/shimx64.efi",
  });
  assert.equal(await s.tftp.answer("../x", STRANGER), null);
});
