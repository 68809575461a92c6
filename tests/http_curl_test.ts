/**
 * The HTTP server against real curl on 127.0.0.1: Range, resume, HEAD, ETag and
 * If-Modified-Since as a client sees them through Deno.serve, plus traversal with
 * `--path-as-is` (curl otherwise folds `..` itself). Loopback only, a random port.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startHttpServer } from "../http/server.ts";
import { LocalStore } from "../content/local.ts";
import { CachedStore } from "../content/cached.ts";
import { testApp } from "../http/_test_utils.ts";

const GOLDEN = fileURLToPath(new URL("../boot/testdata/golden", import.meta.url));

async function curl(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const res = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "60", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: res.code, out: dec.decode(res.stdout), err: dec.decode(res.stderr) };
}

/** Status line and headers of the last response in a `-D` dump, lower-cased names. */
function parseHeaders(dump: string): { status: number; headers: Map<string, string> } {
  const blocks = dump.trim().split(/\r?\n\r?\n/);
  const lines = blocks[blocks.length - 1]!.split(/\r?\n/);
  const status = Number(lines[0]!.split(" ")[1]);
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
  }
  return { status, headers };
}

/** A GET of `target` exactly as written (curl drops a fragment), the whole answer as text. */
async function rawGet(port: number, target: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(
      `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
    ));
    return await new Response(conn.readable).text();
  } catch (e) {
    conn.close();
    throw e;
  }
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("HTTP server with curl on 127.0.0.1", async (t) => {
  const base = await Deno.makeTempDir({ prefix: "astral-curl-" });
  const root = join(base, "root");
  await Deno.mkdir(join(root, "boot/demo/images"), { recursive: true });
  await Deno.writeTextFile(join(base, "secret.txt"), "SECRET outside the tree");
  // 3 MiB of varied bytes: ranges and resumes are checked against the exact slice.
  const big = new Uint8Array(3 * 1024 * 1024);
  for (let off = 0; off < big.length; off += 65536) {
    crypto.getRandomValues(big.subarray(off, off + 65536));
  }
  await Deno.writeFile(join(root, "boot/demo/images/vmlinuz"), big);
  await Deno.writeTextFile(join(root, "boot/demo/images/initrd.img"), "initrd");
  const store = new LocalStore(root);
  const { app, logger } = testApp({ store, serverIp: "127.0.0.1" });
  const server = await startHttpServer({ app, address: "127.0.0.1", port: 0, logger });
  const url = `http://127.0.0.1:${server.port}`;
  const out = join(base, "out");
  const hdr = join(base, "headers");
  try {
    await t.step("curl -r 0-99 gets 206 and the first 100 bytes", async () => {
      const r = await curl("-r", "0-99", "-D", hdr, "-o", out, `${url}/image/demo/vmlinuz`);
      assert.equal(r.code, 0, r.err);
      const { status, headers } = parseHeaders(await Deno.readTextFile(hdr));
      assert.equal(status, 206);
      assert.equal(headers.get("content-range"), `bytes 0-99/${big.length}`);
      assert.equal(headers.get("content-length"), "100");
      assert.deepEqual(await Deno.readFile(out), big.subarray(0, 100));
    });
    await t.step("a range in the middle and one to the end", async () => {
      for (
        const [spec, start, end] of [["1000000-1999999", 1000000, 2000000], [
          "3000000-",
          3000000,
          big.length,
        ]] as const
      ) {
        const r = await curl("-r", spec, "-o", out, `${url}/image/demo/vmlinuz`);
        assert.equal(r.code, 0, r.err);
        assert.deepEqual(await Deno.readFile(out), big.subarray(start, end));
      }
    });
    await t.step("curl -I (HEAD) has length, ETag and Last-Modified, no body", async () => {
      const r = await curl("-I", `${url}/image/demo/vmlinuz`);
      const { status, headers } = parseHeaders(r.out);
      assert.equal(status, 200);
      assert.equal(headers.get("content-length"), String(big.length));
      assert.equal(headers.get("accept-ranges"), "bytes");
      assert.match(headers.get("etag")!, /^"[0-9a-f]+(-[0-9a-f]+){3}"$/);
      assert.ok(headers.get("last-modified"));
      assert.equal(headers.get("content-type"), "application/octet-stream");
    });
    await t.step("If-None-Match with the ETag gives 304", async () => {
      const etag = parseHeaders((await curl("-I", `${url}/image/demo/vmlinuz`)).out).headers.get(
        "etag",
      )!;
      const r = await curl(
        ...["-D", hdr, "-o", out, "-w", "%{size_download}"],
        ...["-H", `If-None-Match: ${etag}`, `${url}/image/demo/vmlinuz`],
      );
      assert.equal(r.code, 0, r.err);
      assert.equal(parseHeaders(await Deno.readTextFile(hdr)).status, 304);
      assert.equal(r.out, "0");
    });
    await t.step(
      "curl -z: not modified since the file's time, modified since an older one",
      async () => {
        const mtime = (await Deno.stat(join(root, "boot/demo/images/vmlinuz"))).mtime!;
        const same = await curl(
          "-D",
          hdr,
          "-o",
          out,
          "-z",
          mtime.toUTCString(),
          `${url}/image/demo/vmlinuz`,
        );
        assert.equal(same.code, 0, same.err);
        assert.equal(parseHeaders(await Deno.readTextFile(hdr)).status, 304);
        const older = new Date(mtime.getTime() - 86_400_000).toUTCString();
        const r = await curl("-D", hdr, "-o", out, "-z", older, `${url}/image/demo/vmlinuz`);
        assert.equal(r.code, 0, r.err);
        assert.equal(parseHeaders(await Deno.readTextFile(hdr)).status, 200);
        assert.equal((await Deno.stat(out)).size, big.length);
      },
    );
    await t.step("an unsatisfiable range is 416", async () => {
      const r = await curl(
        "-D",
        hdr,
        "-o",
        out,
        "-r",
        `${big.length}-`,
        `${url}/image/demo/vmlinuz`,
      );
      assert.equal(r.code, 0, r.err);
      const { status, headers } = parseHeaders(await Deno.readTextFile(hdr));
      assert.equal(status, 416);
      assert.equal(headers.get("content-range"), `bytes */${big.length}`);
    });
    await t.step("curl -C - resumes a partial download to the exact file", async () => {
      await Deno.writeFile(out, big.subarray(0, 1234567));
      const r = await curl("-C", "-", "-o", out, `${url}/image/demo/vmlinuz`);
      assert.equal(r.code, 0, r.err);
      assert.equal(await sha256(await Deno.readFile(out)), await sha256(big));
    });
    await t.step("a full download is byte-exact; its speed is reported", async () => {
      const r = await curl(
        "-o",
        out,
        "-w",
        "%{speed_download} %{http_code}",
        `${url}/image/demo/vmlinuz`,
      );
      assert.equal(r.code, 0, r.err);
      const [speed, code] = r.out.split(" ");
      assert.equal(code, "200");
      assert.equal(await sha256(await Deno.readFile(out)), await sha256(big));
      console.log(`    3 MiB over loopback: ${(Number(speed) / 1e6).toFixed(0)} MB/s`);
    });
    await t.step("256 MiB streams at full size; the rate is reported", async () => {
      // Sparse: no disk space, but the server reads and sends every byte.
      const f = await Deno.open(join(root, "boot/demo/images/big.iso"), {
        create: true,
        write: true,
      });
      await f.truncate(256 * 1024 * 1024);
      f.close();
      const r = await curl(
        "-o",
        "/dev/null",
        "-w",
        "%{size_download} %{speed_download}",
        `${url}/image/demo/big.iso`,
      );
      assert.equal(r.code, 0, r.err);
      const [size, speed] = r.out.split(" ").map(Number);
      assert.equal(size, 256 * 1024 * 1024);
      console.log(`    256 MiB over loopback: ${(speed! / 1e6).toFixed(0)} MB/s`);
    });
    await t.step("scripts over the socket match the golden start script", async () => {
      const r = await curl(`${url}/boot/demo/52:54:00:12:34:56`);
      assert.equal(
        r.out,
        "#!ipxe\n# Astral Boot: demo for 52:54:00:12:34:56\n" +
          "kernel http://10.0.0.1/image/demo/vmlinuz initrd=initrd.img\n" +
          "initrd http://10.0.0.1/image/demo/initrd.img\nboot\n",
      );
      const chain = await curl(`${url}/boot.ipxe`);
      assert.equal(chain.out, await Deno.readTextFile(join(GOLDEN, "chain.ipxe")));
    });
    await t.step("traversal with --path-as-is reads nothing outside", async () => {
      const paths = [
        "/image/demo/../../../secret.txt",
        "/image/demo/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/image/demo/..%2f..%2f..%2fsecret.txt",
        "/tftp/../../secret.txt",
      ];
      for (const p of paths) {
        const r = await curl("--path-as-is", "-o", out, "-w", "%{http_code}", `${url}${p}`);
        assert.ok(["400", "403", "404"].includes(r.out), `${p}: ${r.out}`);
        assert.doesNotMatch(await Deno.readTextFile(out), /SECRET/);
      }
    });
    await t.step("an odd Host header: the routes read the path the router matched", async () => {
      // Deno.serve builds request.url from the Host header as sent; `new URL` would read
      // "http://a?x/image/…" as the path "/" and a query.
      for (const host of ["a?x", "a#x", "a\\x", "/", "/image"]) {
        const r = await curl("-H", `Host: ${host}`, `${url}/image/demo/initrd.img`);
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, "initrd", `Host: ${host}`);
      }
    });
    await t.step("the access log saw the client address", () => {
      const lines = logger.lines.filter((l) => "ms" in l.fields);
      assert.ok(lines.length >= 15);
      assert.ok(lines.every((l) => l.fields.client === "127.0.0.1"));
    });
    await t.step(
      "a small file from memory (the routes, then the fast lane): same headers",
      async () => {
        const cached = new CachedStore(store, { revalidateMs: Infinity });
        const { app } = testApp({ store: cached, serverIp: "127.0.0.1" });
        const fast = await startHttpServer({ app, address: "127.0.0.1", port: 0, logger });
        try {
          const seen = [];
          for (let i = 0; i < 2; i++) {
            const r = await curl(
              "-D",
              hdr,
              "-o",
              out,
              `http://127.0.0.1:${fast.port}/image/demo/initrd.img`,
            );
            assert.equal(r.code, 0, r.err);
            assert.equal(await Deno.readTextFile(out), "initrd");
            const { status, headers } = parseHeaders(await Deno.readTextFile(hdr));
            headers.delete("date");
            seen.push({ status, headers: [...headers].sort() });
          }
          assert.equal(seen[0]!.status, 200);
          assert.deepEqual(seen[1], seen[0]);
          assert.ok(seen[1]!.headers.some(([k, v]) => k === "content-length" && v === "6"));
          // A raw "#" ends the path for the router; the fast lane leaves such a request to it,
          // even with a file of that whole name in memory.
          await Deno.writeTextFile(join(root, "boot/demo/images/initrd.img#x"), "hash");
          const named = await curl(`http://127.0.0.1:${fast.port}/image/demo/initrd.img%23x`);
          assert.equal(named.out, "hash");
          for (let i = 0; i < 2; i++) {
            assert.match(await rawGet(fast.port, "/image/demo/initrd.img#x"), /\r\n\r\ninitrd$/);
          }
        } finally {
          await fast.close();
        }
      },
    );
  } finally {
    await server.close();
    await Deno.remove(base, { recursive: true });
  }
});
