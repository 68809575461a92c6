import assert from "node:assert/strict";
import {
  cint,
  controlMessages,
  cstring,
  ifIndex,
  listDirectory,
  readKernelFile,
  readLink,
  strerror,
} from "./libc.ts";

/** A control buffer holding `msgs` laid out as the kernel does (cmsghdr, data, 8-byte pad). */
function control(msgs: { level: number; type: number; data: number[] }[]): Uint8Array {
  const parts: Uint8Array[] = msgs.map((m) => {
    const len = 16 + m.data.length;
    const out = new Uint8Array((len + 7) & ~7);
    const v = new DataView(out.buffer);
    v.setBigUint64(0, BigInt(len), true);
    v.setInt32(8, m.level, true);
    v.setInt32(12, m.type, true);
    out.set(m.data, 16);
    return out;
  });
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  return all;
}

Deno.test("controlMessages walks cmsghdr records and stops at anything malformed", async (t) => {
  const two = control([
    { level: 41, type: 52, data: [255, 0, 0, 0] },
    { level: 41, type: 50, data: Array.from({ length: 20 }, (_, i) => i) },
  ]);
  const broken = two.slice();
  new DataView(broken.buffer).setBigUint64(24, 9999n, true);
  const cases = [
    {
      name: "two messages, the first padded to 8 bytes",
      buf: two,
      length: two.length,
      want: [[41, 52, 4], [41, 50, 20]],
    },
    { name: "length cut inside the second", buf: two, length: 30, want: [[41, 52, 4]] },
    { name: "nothing received", buf: two, length: 0, want: [] },
    { name: "length beyond the buffer", buf: two, length: 4096, want: [[41, 52, 4], [41, 50, 20]] },
    {
      name: "second claims more than remains",
      buf: broken,
      length: broken.length,
      want: [[41, 52, 4]],
    },
    { name: "a record shorter than its header", buf: bad(8n), length: 32, want: [] },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const got = controlMessages(c.buf, c.length).map((m) => [m.level, m.type, m.data.length]);
      assert.deepEqual(got, c.want);
    });
  }
  await t.step("data is a view of the message's bytes", () => {
    const [first] = controlMessages(two, two.length);
    assert.deepEqual([...first!.data], [255, 0, 0, 0]);
  });
});

function bad(len: bigint): Uint8Array {
  const out = new Uint8Array(32);
  new DataView(out.buffer).setBigUint64(0, len, true);
  return out;
}

Deno.test("C helpers", async (t) => {
  await t.step("cstring ends in NUL", () => {
    assert.deepEqual([...cstring("br0")], [98, 114, 48, 0]);
  });
  await t.step("cint is a native-endian int", () => {
    assert.equal(new Int32Array(cint(255).buffer)[0], 255);
  });
  await t.step("ifIndex of lo is positive, of a missing or overlong name 0", () => {
    assert.ok(ifIndex("lo") > 0);
    assert.equal(ifIndex("abrnope0"), 0);
    assert.equal(ifIndex("x".repeat(16)), 0);
  });
  await t.step("readKernelFile reads /proc and /sys, null for what is not there", () => {
    assert.match(readKernelFile("/proc/sys/net/ipv4/ip_forward") ?? "", /^[01]\n$/);
    assert.match(readKernelFile("/sys/class/net/lo/address") ?? "", /^00:00:00:00:00:00\n$/);
    assert.equal(readKernelFile("/proc/sys/net/abrnope"), null);
  });
  await t.step("readKernelFile reads past the first read, up to max", async () => {
    const dir = await Deno.makeTempDir({ prefix: "astral-libc-" });
    try {
      const text = Array.from({ length: 20000 }, (_, i) => `line ${i}\n`).join("");
      await Deno.writeTextFile(`${dir}/big`, text);
      assert.equal(readKernelFile(`${dir}/big`, 1 << 20), text);
      assert.equal(readKernelFile(`${dir}/big`, 1000), text.slice(0, 1000));
      assert.ok((readKernelFile("/proc/net/tcp", 1 << 20) ?? "").startsWith("  sl  local_address"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
  await t.step("listDirectory and readLink", async () => {
    const dir = await Deno.makeTempDir({ prefix: "astral-libc-" });
    try {
      await Deno.writeTextFile(`${dir}/a`, "");
      await Deno.symlink("a", `${dir}/b`);
      assert.deepEqual(listDirectory(dir)?.sort(), ["a", "b"]);
      assert.equal(readLink(`${dir}/b`), "a");
      assert.equal(readLink(`${dir}/a`), null);
      assert.equal(listDirectory(`${dir}/nope`), null);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
  await t.step("strerror names errno values", () => {
    assert.match(strerror(98), /Address already in use/);
  });
});
