import assert from "node:assert/strict";
import { CachedStore } from "../content/cached.ts";
import { MemoryStore } from "../content/memory.ts";
import type { ContentStore } from "../content/store.ts";
import { contentTypeFor, parseRange, type RangeRequest, serveTreeFile } from "./files.ts";

Deno.test("parseRange reads one byte range and ignores the rest", async (t) => {
  const p = (start: number, end: number): RangeRequest => ({
    kind: "partial",
    range: { start, end },
  });
  const full: RangeRequest = { kind: "full" };
  const none: RangeRequest = { kind: "unsatisfiable" };
  const cases: [string | null, number, RangeRequest][] = [
    [null, 1000, full],
    ["bytes=0-99", 1000, p(0, 99)],
    ["bytes=100-", 1000, p(100, 999)],
    ["bytes=-10", 1000, p(990, 999)],
    ["bytes=-5000", 1000, p(0, 999)],
    ["bytes=900-5000", 1000, p(900, 999)],
    ["bytes=999-999", 1000, p(999, 999)],
    ["BYTES = 5 - 6", 1000, p(5, 6)],
    ["bytes=1000-", 1000, none],
    ["bytes=1000-2000", 1000, none],
    ["bytes=-0", 1000, none],
    ["bytes=0-0", 0, none],
    ["bytes=-1", 0, none],
    ["bytes=0-1,5-6", 1000, full],
    ["bytes=5-1", 1000, full],
    ["bytes=-", 1000, full],
    ["bytes=a-b", 1000, full],
    ["items=0-1", 1000, full],
    // Past any file's end (RFC 9110 §14.1.1), however many digits; a last byte that far is the end.
    ["bytes=99999999999999999999-", 1000, none],
    ["bytes=0-99999999999999999999", 1000, p(0, 999)],
  ];
  for (const [header, size, want] of cases) {
    await t.step(`${JSON.stringify(header)} of ${size}`, () => {
      assert.deepEqual(parseRange(header, size), want);
    });
  }
});

Deno.test("contentTypeFor: scripts as text, binaries as octet-stream", async (t) => {
  const cases: [string, string][] = [
    ["boot/x/images/linux", "application/octet-stream"],
    ["tftp/undionly.kpxe", "application/octet-stream"],
    ["tftp/snponly.efi", "application/octet-stream"],
    ["boot/x/images/initrd.gz", "application/gzip"],
    ["boot/x/images/d.iso", "application/x-iso9660-image"],
    ["boot/x/images/boot.IPXE", "text/plain; charset=utf-8"],
    ["boot/x.d/images/noext", "application/octet-stream"],
    ["boot/x/images/page.html", "application/octet-stream"],
  ];
  for (const [path, type] of cases) {
    await t.step(path, () => assert.equal(contentTypeFor(path), type));
  }
});

Deno.test("serveTreeFile answers conditionals and ranges", async (t) => {
  const body = new TextEncoder().encode("0123456789abcdef");
  const store = new MemoryStore({ "tftp/f.bin": body });
  const etag = `"${(await store.stat("tftp/f.bin"))!.etag}"`;
  const cases: {
    name: string;
    method?: string;
    headers?: Record<string, string>;
    status: number;
    body: string | null;
    range?: string;
  }[] = [
    { name: "plain GET", status: 200, body: "0123456789abcdef" },
    { name: "HEAD", method: "HEAD", status: 200, body: null },
    {
      name: "range",
      headers: { Range: "bytes=2-5" },
      status: 206,
      body: "2345",
      range: "bytes 2-5/16",
    },
    {
      name: "HEAD range",
      method: "HEAD",
      headers: { Range: "bytes=2-5" },
      status: 206,
      body: null,
      range: "bytes 2-5/16",
    },
    {
      name: "suffix",
      headers: { Range: "bytes=-3" },
      status: 206,
      body: "def",
      range: "bytes 13-15/16",
    },
    {
      name: "past the end",
      headers: { Range: "bytes=16-" },
      status: 416,
      body: null,
      range: "bytes */16",
    },
    {
      name: "two ranges: whole file",
      headers: { Range: "bytes=0-1,3-4" },
      status: 200,
      body: "0123456789abcdef",
    },
    { name: "If-None-Match hit", headers: { "If-None-Match": etag }, status: 304, body: null },
    {
      name: "If-None-Match weak hit",
      headers: { "If-None-Match": `"x", W/${etag}` },
      status: 304,
      body: null,
    },
    { name: "If-None-Match *", headers: { "If-None-Match": "*" }, status: 304, body: null },
    {
      name: "If-None-Match miss",
      headers: { "If-None-Match": '"other"' },
      status: 200,
      body: "0123456789abcdef",
    },
    {
      name: "If-Range match",
      headers: { Range: "bytes=0-0", "If-Range": etag },
      status: 206,
      body: "0",
      range: "bytes 0-0/16",
    },
    {
      name: "If-Range stale",
      headers: { Range: "bytes=0-0", "If-Range": '"old"' },
      status: 200,
      body: "0123456789abcdef",
    },
  ];
  // The same answers from a store, from memory (a cached small file), and streamed past a cache.
  const stores: [string, ContentStore][] = [
    ["store", store],
    ["cached", new CachedStore(store, { revalidateMs: Infinity })],
    ["too big to cache", new CachedStore(store, { revalidateMs: Infinity, maxFileBytes: 4 })],
  ];
  for (const [kind, from] of stores) {
    for (const c of cases) {
      await t.step(`${kind}: ${c.name}`, () => check(from, c));
    }
  }
  async function check(store: ContentStore, c: typeof cases[number]) {
    const req = new Request("http://x/tftp/f.bin", {
      method: c.method ?? "GET",
      headers: c.headers,
    });
    const res = (await serveTreeFile(req, store, "tftp/f.bin"))!;
    assert.equal(res.status, c.status);
    assert.equal(res.headers.get("ETag"), etag);
    assert.equal(res.headers.get("Content-Range"), c.range ?? null);
    if (c.status !== 304) assert.equal(res.headers.get("Accept-Ranges"), "bytes");
    if (c.body === null) {
      assert.equal(res.body, null);
    } else {
      assert.equal(await res.text(), c.body);
      assert.equal(res.headers.get("Content-Length"), String(c.body.length));
    }
    if (c.method === "HEAD" && c.status === 200) {
      assert.equal(res.headers.get("Content-Length"), "16");
    }
  }
  await t.step("HEAD takes the stat only: the file is not loaded for it", async () => {
    const loaded: string[] = [];
    const cached = new CachedStore(store, { revalidateMs: Infinity });
    const watched: ContentStore = {
      description: "watched",
      stat: (p) => cached.stat(p),
      list: (p) => cached.list(p),
      read: (p, r) => cached.read(p, r),
      file: (p) => (loaded.push(p), cached.file(p)),
    };
    const head = await serveTreeFile(
      new Request("http://x/", { method: "HEAD" }),
      watched,
      "tftp/f.bin",
    );
    assert.deepEqual([head!.status, head!.headers.get("Content-Length"), loaded], [200, "16", []]);
    const get = await serveTreeFile(new Request("http://x/"), watched, "tftp/f.bin");
    assert.equal(get!.headers.get("ETag"), head!.headers.get("ETag"));
    assert.equal((await get!.text()).length, 16);
    assert.deepEqual(loaded, ["tftp/f.bin"]);
  });
  await t.step("a directory or a missing path gives null", async () => {
    assert.equal(await serveTreeFile(new Request("http://x/"), store, "tftp"), null);
    assert.equal(await serveTreeFile(new Request("http://x/"), store, "tftp/none"), null);
  });
});
