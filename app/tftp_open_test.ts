import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { CachedStore } from "../content/cached.ts";
import { LocalStore } from "../content/local.ts";
import { MemoryStore } from "../content/memory.ts";
import { mustParseMac } from "../net/mac.ts";
import { memoryLogger } from "../log.ts";
import { testApp } from "../http/_test_utils.ts";
import type { Script } from "../boot/scripts.ts";
import { tftpOpener } from "./tftp_open.ts";

const TREE = fileURLToPath(new URL("../boot/testdata/tree", import.meta.url));
const MAC = mustParseMac("52:54:00:12:34:56");
const IP = "10.0.0.50";

Deno.test("the TFTP opener answers GRUB's configs, images and tree files", async (t) => {
  const store = new LocalStore(TREE);
  const s = testApp({
    store,
    addressBook: { leaseOf: (m) => m === MAC ? IP : null, leaseAt: (ip) => ip === IP ? MAC : null },
  });
  s.registry.choose(MAC, "tiny");
  const told: { script: Script; ip: string }[] = [];
  const logger = memoryLogger();
  const open = tftpOpener(store, {
    boot: s.tftp,
    onScript: (script, ip) => told.push({ script, ip }),
    logger,
  });
  const rows: { file: string; from: string; want: RegExp | string }[] = [
    // The client's address as the socket reports it on a dual-stack socket.
    { file: "/grub/grub.cfg", from: `::ffff:${IP}`, want: /^linux '\(tftp,10\.0\.0\.1\)/m },
    { file: "/image/tiny/vmlinuz", from: "10.0.0.99", want: "size" },
    { file: "undionly.kpxe", from: "10.0.0.99", want: "size" },
    { file: "/grub/x86_64-efi/command.lst", from: IP, want: "not-found: file not found" },
    {
      file: "/grub/choose/tiny",
      from: "10.0.0.99",
      want: /^not-found: no machine known at 10\.0\.0\.99/,
    },
    { file: "/grub/choose/nope", from: IP, want: /^not-found: no OS nope/ },
    { file: "/image/x/../../etc", from: IP, want: "forbidden: access violation" },
  ];
  for (const row of rows) {
    await t.step(`${row.file} from ${row.from}`, async () => {
      const got = await open(row.file, { address: row.from, port: 1234 });
      if ("error" in got) {
        const text = `${got.error}: ${got.message}`;
        if (typeof row.want === "string") assert.equal(text, row.want);
        else assert.match(text, row.want);
        return;
      }
      const body = await new Response(got.stream).text();
      assert.equal(new TextEncoder().encode(body).length, got.size);
      if (row.want instanceof RegExp) assert.match(body, row.want);
      else assert.equal(row.want, "size");
    });
  }
  await t.step("each rendered config was told, with the machine and its step", () => {
    assert.deepEqual(
      told.map((x) => [x.ip, x.script.machine?.mac, x.script.step.stage, x.script.step.detail]),
      [[IP, MAC, "script", "start tiny (chosen at the menu)"]],
    );
  });
});

Deno.test("a template mistake is TFTP error 0 naming the file and line, and a warning", async () => {
  const store = new MemoryStore({
    "boot/bad/images/vmlinuz": "k",
    "boot/bad/template/grub-start.vto": "linux {{ nope }}\n",
  });
  const s = testApp({
    store,
    addressBook: { leaseOf: (m) => m === MAC ? IP : null, leaseAt: (ip) => ip === IP ? MAC : null },
  });
  s.registry.choose(MAC, "bad");
  const logger = memoryLogger();
  const got = await tftpOpener(store, { boot: s.tftp, logger })("/grub/grub.cfg", {
    address: IP,
    port: 1,
  });
  assert.ok("error" in got);
  assert.equal(got.error, "unavailable");
  assert.match(got.message, /^template error: boot\/bad\/template\/grub-start\.vto:1:\d+: "nope"/);
  assert.ok(logger.lines.some((l) => l.level === "warn" && l.message === "template error"));
});

Deno.test("a file replaced within the cache's second: the size told is the file sent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "astral-tftp-open-" });
  try {
    await Deno.mkdir(`${dir}/tftp`);
    await Deno.writeFile(`${dir}/tftp/big.bin`, new Uint8Array(200).fill(1));
    await Deno.writeFile(`${dir}/tftp/small.bin`, new Uint8Array(5).fill(3));
    const store = new CachedStore(new LocalStore(dir), { revalidateMs: 60_000, maxFileBytes: 100 });
    const s = testApp({ store });
    const open = tftpOpener(store, { boot: s.tftp, logger: memoryLogger() });
    const fetch = async (name: string) => {
      const got = await open(name, { address: IP, port: 1 });
      assert.ok(!("error" in got), JSON.stringify(got));
      return {
        size: got.size,
        bytes: new Uint8Array(await new Response(got.stream).arrayBuffer()),
      };
    };
    assert.equal((await fetch("big.bin")).size, 200);
    await Deno.writeFile(`${dir}/tftp/big.bin.new`, new Uint8Array(300).fill(2));
    await Deno.rename(`${dir}/tftp/big.bin.new`, `${dir}/tftp/big.bin`);
    const big = await fetch("big.bin");
    assert.equal(big.size, 300);
    assert.deepEqual(big.bytes, new Uint8Array(300).fill(2));
    // A small file comes from memory, with its own size.
    assert.deepEqual(await fetch("small.bin"), { size: 5, bytes: new Uint8Array(5).fill(3) });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
