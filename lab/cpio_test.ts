import assert from "node:assert/strict";
import { type CpioEntry, encodeCpio, gzip } from "./cpio.ts";
import { run } from "./netns.ts";

const encoder = new TextEncoder();

Deno.test("encodeCpio writes newc that GNU cpio extracts with types, modes and devices", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "abl-cpio-" });
  try {
    const payload = crypto.getRandomValues(new Uint8Array(1001)); // odd size: exercises padding
    const entries: CpioEntry[] = [
      { kind: "dir", path: "bin" },
      { kind: "file", path: "bin/tool", mode: 0o755, data: payload },
      { kind: "symlink", path: "bin/sh", target: "tool" },
      { kind: "dir", path: "dev", mode: 0o700 },
      { kind: "char", path: "dev/console", major: 5, minor: 1 },
      { kind: "file", path: "init", mode: 0o755, data: encoder.encode("#!/bin/sh\necho hi\n") },
      { kind: "file", path: "empty", data: new Uint8Array(0) },
    ];
    const bytes = encodeCpio(entries);
    assert.equal(bytes.length % 4, 0);
    await Deno.writeFile(`${dir}/a.cpio.gz`, await gzip(bytes));
    await run(["sh", "-c", `cd ${dir} && mkdir x && cd x && zcat ../a.cpio.gz | cpio -id`]);
    const x = `${dir}/x`;
    const table: { path: string; check: () => Promise<void> }[] = [
      {
        path: "bin/tool",
        check: async () => {
          assert.deepEqual(await Deno.readFile(`${x}/bin/tool`), payload);
          assert.equal((await Deno.stat(`${x}/bin/tool`)).mode! & 0o777, 0o755);
        },
      },
      {
        path: "bin/sh",
        check: async () => assert.equal(await Deno.readLink(`${x}/bin/sh`), "tool"),
      },
      {
        path: "dev",
        check: async () => assert.equal((await Deno.stat(`${x}/dev`)).mode! & 0o777, 0o700),
      },
      {
        path: "dev/console",
        check: async () => {
          const st = await Deno.lstat(`${x}/dev/console`);
          assert.equal(st.isCharDevice, true);
          assert.equal(st.rdev, (5 << 8) | 1);
        },
      },
      {
        path: "init",
        check: async () =>
          assert.equal(await Deno.readTextFile(`${x}/init`), "#!/bin/sh\necho hi\n"),
      },
      { path: "empty", check: async () => assert.equal((await Deno.stat(`${x}/empty`)).size, 0) },
    ];
    const listing = await run(["sh", "-c", `zcat ${dir}/a.cpio.gz | cpio -t`]);
    assert.deepEqual(listing.stdout.trim().split("\n"), entries.map((e) => e.path));
    for (const row of table) await t.step(row.path, row.check);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encodeCpio refuses paths the kernel would misplace", async (t) => {
  const bad = ["", "/abs", "nul\0byte"];
  for (const path of bad) {
    await t.step(JSON.stringify(path), () => {
      assert.throws(() => encodeCpio([{ kind: "dir", path }]), RangeError);
    });
  }
});

Deno.test("encodeCpio ends with the TRAILER!!! member and aligns every header", () => {
  const bytes = encodeCpio([{ kind: "file", path: "a", data: new Uint8Array([1, 2, 3]) }]);
  const text = new TextDecoder("latin1").decode(bytes);
  // header 110 bytes + "a\0" padded to 112, data 3 padded to 4 → trailer header at 116.
  assert.equal(text.indexOf("070701", 1), 116);
  assert.equal(text.slice(116 + 110, 116 + 110 + 10), "TRAILER!!!");
  assert.equal(Number.parseInt(text.slice(6 + 6 * 8, 6 + 7 * 8), 16), 3); // filesize field
});
