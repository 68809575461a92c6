/**
 * Path traversal corpus: hostile names sent as raw RRQs from a client namespace, against our
 * server with the test folder handler (which logs every real path it opens) and against
 * `main.ts serve -l DIR` as shipped (the real local content store). Every hostile name must get
 * an ERROR, and nothing outside the root may be read: the handler's log shows no such open, and
 * a canary file outside the root keeps its access time.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { DENO_NS_FLAGS, repoPath } from "./dhcp_harness.ts";
import { SERVER_IP, TftpLab } from "./tftp_harness.ts";

const enc = new TextEncoder();
const cat = (...parts: (Uint8Array | number[])[]) =>
  Uint8Array.from(parts.flatMap((p) => Array.from(p)));
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** An RRQ with raw filename bytes. */
function rrq(name: Uint8Array | string, mode = "octet", options: string[] = []): Uint8Array {
  const n = typeof name === "string" ? enc.encode(name) : name;
  return cat([0, 1], n, [0], enc.encode(mode), [0], ...options.map((o) => cat(enc.encode(o), [0])));
}

/** Builds the tree: files inside, links and special files pointing out, a canary outside. */
async function plant(lab: TftpLab) {
  const tftp = join(lab.root, "tftp");
  const outside = join(lab.scratch, "outside");
  await Deno.mkdir(outside);
  const canary = join(outside, "canary.txt");
  await Deno.writeTextFile(canary, "canary: must never be read\n");
  await lab.put("good.bin", enc.encode("the one file that may be served\n"));
  await Deno.mkdir(join(tftp, "sub"));
  await Deno.mkdir(join(lab.root, "boot"));
  await Deno.writeTextFile(join(lab.root, "boot", "secret.txt"), "outside tftp/\n");
  await Deno.symlink("/etc/passwd", join(tftp, "passwd"));
  await Deno.symlink(outside, join(tftp, "outdir"));
  await Deno.symlink("/dev/zero", join(tftp, "zero"));
  await Deno.symlink(
    `../../${basename(lab.scratch)}/outside/canary.txt`,
    join(tftp, "canary-link"),
  );
  await Deno.symlink("chain2", join(tftp, "chain1"));
  await Deno.symlink(canary, join(tftp, "chain2"));
  await Deno.symlink("../boot/secret.txt", join(tftp, "secret-link"));
  const fifo = await new Deno.Command("mkfifo", { args: [join(tftp, "fifo")] }).output();
  assert.equal(fifo.code, 0, "mkfifo");
  return { canary, rel: `../../${basename(lab.scratch)}/outside/canary.txt` };
}

/** The hostile corpus: [what it tries, datagram]. */
function corpus(canary: string, rel: string): [string, Uint8Array][] {
  return [
    ["parent escape", rrq("../../etc/passwd")],
    ["absolute path", rrq("/etc/passwd")],
    ["escape through tftp/..", rrq("tftp/../../x")],
    ["backslash escape", rrq("..\\..\\etc\\passwd")],
    ["URL-encoded dots", rrq("%2e%2e/%2e%2e/etc/passwd")],
    ["URL-encoded slashes", rrq("..%2f..%2fetc%2fpasswd")],
    ["symlink to /etc/passwd inside the root", rrq("passwd")],
    ["symlinked directory outside the root", rrq("outdir/canary.txt")],
    ["/dev/zero via symlink", rrq("zero")],
    ["FIFO (would block a naive open)", rrq("fifo")],
    ["a directory", rrq("sub")],
    ["the tftp/ directory itself", rrq("tftp")],
    ["root", rrq("/")],
    ["very long name", rrq("x".repeat(2000))],
    ["hundred parent segments", rrq("../".repeat(100) + "etc/passwd")],
    ["absolute path of the canary", rrq(canary)],
    ["relative path to the canary", rrq(rel)],
    ["relative symlink escaping", rrq("canary-link")],
    ["symlink chain escaping", rrq("chain1")],
    ["tree file outside tftp/ via ..", rrq("../boot/secret.txt")],
    ["tree file outside tftp/ by name (TFTP names map into tftp/)", rrq("boot/secret.txt")],
    ["control byte", rrq("a\x01b")],
    ["overlong UTF-8 slash", rrq(cat(enc.encode(".."), [0xc0, 0xaf], enc.encode("..etc")))],
    ["NUL-embedded name", rrq("good.bin\0../../etc/passwd")],
    ["empty name", rrq("")],
    ["dots without slash", rrq("....//....//etc/passwd")],
    ["UNC path", rrq("\\\\server\\share\\..\\..\\x")],
    ["drive letter and parents", rrq("C:\\..\\..\\canary")],
    ["fullwidth dots", rrq("\uff0e\uff0e/\uff0e\uff0e/etc/passwd")],
    ["netascii escape", rrq("../../etc/passwd", "netascii")],
    ["escape with options", rrq("../../etc/passwd", "octet", ["blksize", "1468", "tsize", "0"])],
  ];
}

async function sendCorpus(lab: TftpLab, packets: Uint8Array[]) {
  const input = JSON.stringify({
    server: SERVER_IP,
    port: 69,
    waitMs: 5000,
    packets: packets.map(hex),
  });
  const r = await lab.clientNs.exec(
    ["deno", "run", ...DENO_NS_FLAGS, repoPath("tests/tftp_raw_client.ts")],
    { stdin: input, timeoutMs: 5000 * packets.length + 30_000 },
  );
  return JSON.parse(r.stdout) as { reply: string | null; fromPort: number | null }[];
}

async function atime(path: string): Promise<number> {
  return (await Deno.lstat(path)).atime!.getTime();
}

/** Old atime, fresh mtime: with relatime any read now moves atime. Returns whether reads show. */
async function primeAtime(path: string, control: string): Promise<boolean> {
  const old = new Date("2001-01-01T00:00:00Z");
  for (const p of [path, control]) await Deno.utime(p, old, new Date());
  await Deno.readFile(control);
  return (await atime(control)) > old.getTime();
}

for (const target of ["test runner (folder handler)", "main.ts serve -l (local store)"] as const) {
  Deno.test({
    name: `traversal corpus gets errors and reads nothing outside the root: ${target}`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      await using lab = await TftpLab.create();
      const { canary, rel } = await plant(lab);
      const control = join(lab.scratch, "outside", "control.txt");
      await Deno.writeTextFile(control, "control\n");
      const server = target.startsWith("test") ? await lab.startOurs() : await lab.startShipped();
      const atimeWorks = await primeAtime(canary, control);
      const before = await atime(canary);
      const cases = corpus(canary, rel);
      const packets = [rrq("good.bin"), rrq("secret-link"), ...cases.map(([, p]) => p)];
      const replies = await sendCorpus(lab, packets);
      assert.equal(replies.length, packets.length);
      await t.step("control: good.bin is served (DATA 1)", () => {
        assert.match(replies[0]!.reply ?? "", /^00030001/);
      });
      // The boundary is the root, not tftp/: a link the admin put in the tree may share a file
      // from boot/ (a kernel served by both TFTP and HTTP).
      await t.step("control: a symlink from tftp/ to elsewhere in the tree is served", () => {
        assert.match(replies[1]!.reply ?? "", /^00030001/);
      });
      for (let i = 0; i < cases.length; i++) {
        const [what] = cases[i]!;
        const r = replies[i + 2]!;
        await t.step(what, () => {
          assert.ok(r.reply, `${what}: no answer`);
          assert.match(r.reply, /^0005/, `${what}: answered ${r.reply.slice(0, 16)}, not ERROR`);
          const code = parseInt(r.reply.slice(4, 8), 16);
          assert.ok([1, 2, 4].includes(code), `${what}: error code ${code}`);
        });
      }
      await t.step("nothing outside the root was read", async () => {
        if (target.startsWith("test")) {
          const opened = lab.serverLog().filter((l) => l.msg === "opened").map((l) =>
            String(l.path)
          );
          const real = await Deno.realPath(lab.root);
          assert.deepEqual(opened, [
            join(real, "tftp", "good.bin"),
            join(real, "boot", "secret.txt"),
          ]);
        }
        assert.ok(atimeWorks, "reads must move atime here (relatime with an old atime)");
        assert.equal(await atime(canary), before, "canary atime changed: it was read");
      });
      await t.step("the server is still serving after the corpus", async () => {
        const again = await sendCorpus(lab, [rrq("good.bin")]);
        assert.match(again[0]!.reply ?? "", /^00030001/, server.output.slice(-1500));
      });
    },
  });
}
