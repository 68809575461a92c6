import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ContentStore } from "../content/store.ts";
import { embeddedDefaultStore, MemoryStore } from "../content/memory.ts";
import { FallbackStore } from "../content/fallback.ts";
import { LocalStore } from "../content/local.ts";
import { CachedStore } from "../content/cached.ts";
import type { MachineConfig } from "../state/machines.ts";
import { mustParseMac } from "../net/mac.ts";
import type { AddressBook } from "../boot/identity.ts";
import { ADMIN, testApp } from "./_test_utils.ts";
import { plainBootEntry } from "./boot_routes.ts";
import type { HttpEvent } from "../observe/watch.ts";

const TREE = fileURLToPath(new URL("../boot/testdata/tree", import.meta.url));
const GOLDEN = fileURLToPath(new URL("../boot/testdata/golden", import.meta.url));
const MAC = mustParseMac("52:54:00:12:34:56");

function setup(
  options: {
    store?: ContentStore;
    defaultOs?: string;
    machines?: MachineConfig[];
    addressBook?: Partial<AddressBook>;
    onRequest?: (event: HttpEvent) => void;
  } = {},
) {
  return testApp({ ...options, store: options.store ?? new LocalStore(TREE) });
}

Deno.test("rendered scripts match the golden files byte for byte", async (t) => {
  const cases: {
    golden: string;
    url: string;
    store?: ContentStore;
    defaultOs?: string;
    sticky?: string;
  }[] = [
    { golden: "menu_default.ipxe", url: `/menu.ipxe?mac=${MAC}`, defaultOs: "debian" },
    { golden: "menu_no_default.ipxe", url: "/menu.ipxe" },
    { golden: "menu_no_default.ipxe", url: "/choose" },
    {
      golden: "menu_empty.ipxe",
      url: "/boot.ipxe?mac=52-54-00-12-34-56",
      store: new FallbackStore(embeddedDefaultStore()),
    },
    { golden: "start_debian.ipxe", url: "/boot/debian/52-54-00-12-34-56" },
    { golden: "start_tiny.ipxe", url: `/boot/tiny/${MAC}` },
    { golden: "start_custom.ipxe", url: "/boot/custom/525400123456" },
    { golden: "chain.ipxe", url: "/boot.ipxe" },
    // A machine whose OS is decided gets its kernel line from /boot.ipxe at once.
    { golden: "start_tiny.ipxe", url: `/boot.ipxe?mac=${MAC}`, sticky: "tiny" },
  ];
  for (const c of cases) {
    await t.step(`${c.url} → ${c.golden}`, async () => {
      const s = setup({ store: c.store, defaultOs: c.defaultOs });
      if (c.sticky) s.registry.choose(MAC, c.sticky);
      const res = await s.text(c.url);
      assert.equal(res.status, 200);
      assert.equal(res.type, "text/plain; charset=utf-8");
      assert.equal(res.cache, "no-store");
      assert.equal(res.body, await Deno.readTextFile(join(GOLDEN, c.golden)));
    });
  }
});

Deno.test("a menu choice is sticky until cleared", async (t) => {
  const s = setup();
  await t.step("an unknown machine gets the menu", async () => {
    assert.match((await s.text(`/boot.ipxe?mac=${MAC}`)).body, /^menu Astral Boot$/m);
    assert.equal(s.registry.get(MAC)?.ip, "10.0.0.50");
  });
  await t.step("HEAD on /choose changes nothing", async () => {
    const res = await s.get(`/choose/debian/${MAC}`, { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(s.registry.get(MAC)?.os, null);
  });
  await t.step("/choose records the choice and answers the start script", async () => {
    const res = await s.text("/choose/debian/52-54-00-12-34-56");
    assert.equal(res.body, await Deno.readTextFile(join(GOLDEN, "start_debian.ipxe")));
    assert.deepEqual([s.registry.get(MAC)?.os, s.registry.get(MAC)?.class], ["debian", null]);
  });
  await t.step("the next boot gets the chosen OS's kernel line in one request", async () => {
    assert.equal(
      (await s.text(`/boot.ipxe?mac=${MAC}`)).body,
      await Deno.readTextFile(join(GOLDEN, "start_debian.ipxe")),
    );
  });
  await t.step("/menu.ipxe still shows the menu", async () => {
    assert.match((await s.text(`/menu.ipxe?mac=${MAC}`)).body, /^item debian /m);
  });
  await t.step("after clearChoice the menu is back", async () => {
    s.registry.clearChoice(MAC);
    assert.match((await s.text(`/boot.ipxe?mac=${MAC}`)).body, /^menu Astral Boot$/m);
  });
  await t.step("a chosen OS that left the tree gives the menu and a warning", async () => {
    s.registry.choose(MAC, "gone");
    assert.match((await s.text(`/boot.ipxe?mac=${MAC}`)).body, /^menu Astral Boot$/m);
    assert.ok(s.logger.lines.some((l) => l.level === "warn" && /gone/.test(String(l.fields.why))));
  });
  await t.step("/choose for an OS not in the tree is 404 and records nothing", async () => {
    s.registry.clearChoice(MAC);
    assert.equal((await s.text(`/choose/nope/${MAC}`)).status, 404);
    assert.equal(s.registry.get(MAC)?.os, null);
  });
});

Deno.test("a machine asking again for its menu gets it without a render while nothing changed", async (t) => {
  const s = setup();
  const renders: string[] = [];
  const render = s.renderer.render.bind(s.renderer);
  s.renderer.render = (name, data, os) => {
    renders.push(name);
    return render(name, data, os);
  };
  const menu = async (query = "", ip?: string) => {
    const res = await s.text(`/boot.ipxe?mac=${MAC}${query}`, ip);
    assert.equal(res.status, 200);
    return res.body;
  };
  const first = await menu();
  assert.match(first, /^menu Astral Boot$/m);
  await t.step("the same machine from the same address: the same text, no render", async () => {
    await new Promise((r) => setTimeout(r, 5)); // its contact time moves on
    assert.equal(await menu(), first);
    assert.deepEqual(renders, ["menu"]);
  });
  await t.step("rendered again when what it is made of changes", async () => {
    await menu("", "10.0.0.51"); // another address
    assert.equal(renders.length, 2);
    await menu("&serial=SN-2"); // a new report: its inventory
    assert.equal(renders.length, 3);
    await menu("&serial=SN-2");
    assert.equal(renders.length, 3, "the same report again");
    s.catalog.invalidate(); // the tree read again: a new catalog list
    await menu("&serial=SN-2");
    assert.equal(renders.length, 4);
    s.registry.choose(MAC, "debian");
    s.registry.clearChoice(MAC); // its install generation moved on: new callback tokens
    await menu("&serial=SN-2");
    assert.equal(renders.length, 5);
    await menu("&serial=SN-2");
    assert.equal(renders.length, 5);
  });
});

Deno.test("[[machine]] entries pin the OS and name the machine", async () => {
  const s = setup({
    machines: [
      {
        mac: mustParseMac("52-54-00-00-00-0A"),
        os: "custom",
        hostname: "web1",
        vars: { disk: "/dev/vda" },
      },
      { mac: mustParseMac("52:54:00:00:00:0b"), os: "retired", vars: {} },
    ],
  });
  s.registry.choose(mustParseMac("52:54:00:00:00:0a"), "tiny");
  const pinned = await s.text("/boot.ipxe?mac=52:54:00:00:00:0a");
  assert.match(pinned.body, /^echo Booting custom on web1$/m);
  assert.match(
    (await s.text("/boot/custom/52:54:00:00:00:0a")).body,
    /^echo Booting custom on web1$/m,
  );
  const stale = await s.text("/boot.ipxe?mac=52:54:00:00:00:0b");
  assert.match(stale.body, /^menu Astral Boot$/m);
});

Deno.test("/action and /config render the OS's templates for the asking machine", async (t) => {
  // MAC holds a lease on 10.0.0.77; nothing else is known.
  const s = setup({
    addressBook: {
      leaseOf: (mac) => mac === MAC ? "10.0.0.77" : null,
      leaseAt: (ip) => ip === "10.0.0.77" ? MAC : null,
    },
  });
  const want = "# preseed for node-525400123456 (52:54:00:12:34:56), served by 10.0.0.1\n" +
    "d-i netcfg/get_hostname string node-525400123456\nd-i netcfg/get_domain string lab\n";
  await t.step("HEAD: checked as the GET, and the machine is not marked installing", async () => {
    const head = (ip: string) => s.get(`/action/debian/preseed?mac=${MAC}`, { method: "HEAD" }, ip);
    assert.equal((await head("10.9.9.9")).status, 403);
    const res = await head("10.0.0.77");
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "");
    assert.notEqual(s.registry.get(MAC)?.state, "installing");
    await s.text(`/action/debian/preseed?mac=${MAC}`, "10.0.0.77");
    assert.equal(s.registry.get(MAC)?.state, "installing");
  });
  await t.step("the admin's preview: any machine from anywhere, nothing recorded", async () => {
    const other = mustParseMac("52:54:00:00:77:01");
    const url = `/action/debian/preseed?mac=${other}`;
    const res = await s.get(url, { headers: ADMIN }, "10.9.9.9");
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^# preseed for node-525400007701 /);
    assert.equal(s.registry.get(other), null);
    // The token from another site's page is no admin: the machine check applies, and refuses.
    const foreigns: Record<string, string>[] = [
      { Origin: "http://evil.example" },
      { "Sec-Fetch-Site": "cross-site" },
    ];
    for (const foreign of foreigns) {
      const refused = await s.get(url, { headers: { ...ADMIN, ...foreign } }, "10.9.9.9");
      assert.equal(refused.status, 403);
      await refused.body?.cancel();
    }
    assert.equal(s.registry.get(other), null);
  });
  await t.step("with ?mac=", async () => {
    const res = await s.text(`/action/debian/preseed?mac=${MAC}`, "10.0.0.77");
    assert.equal(res.status, 200);
    assert.ok(res.body.startsWith(want), res.body);
  });
  await t.step("with ?mac= of a machine at another address: 403", async () => {
    const res = await s.text(`/action/debian/preseed?mac=${MAC}`, "10.9.9.9");
    assert.equal(res.status, 403);
    assert.match(
      res.body,
      /52:54:00:12:34:56 does not ask from 10\.9\.9\.9 \(its lease is 10\.0\.0\.77\)/,
    );
  });
  await t.step("from the same address as a dual-stack socket gives it (::ffff:)", async () => {
    const res = await s.text(`/action/debian/preseed?mac=${MAC}`, "::ffff:10.0.0.77");
    assert.equal(res.status, 200);
  });
  await t.step("without ?mac=, the machine holding this address", async () => {
    const res = await s.text("/config/debian/preseed", "10.0.0.77");
    assert.equal(res.status, 200);
    assert.ok(res.body.startsWith(want), res.body);
  });
  const refusals: [string, string, number, RegExp][] = [
    ["/action/debian/preseed", "10.1.1.1", 404, /no machine known at 10\.1\.1\.1/],
    ["/action/debian/start", "10.0.0.77", 404, /no template start for debian/],
    ["/action/nope/preseed", "10.0.0.77", 404, /no OS nope/],
    ["/action/debian/..%2fos.toml", "10.0.0.77", 400, /not a template name/],
    [`/action/debian/preseed?mac=zz`, "10.0.0.77", 400, /not a MAC address/],
  ];
  for (const [url, ip, status, body] of refusals) {
    await t.step(`${url} from ${ip} → ${status}`, async () => {
      const res = await s.text(url, ip);
      assert.equal(res.status, status);
      assert.match(res.body, body);
    });
  }
});

Deno.test("template mistakes answer 500 naming the file and line", async (t) => {
  const store = new MemoryStore({
    "boot/x/images/vmlinuz": "k",
    "boot/x/template/preseed.vto": "ok\n{{ machine.vars.nope }}\n",
    "boot/y/os.toml": 'cmdline = "a={{ nope }}"\n',
    "boot/y/images/vmlinuz": "k",
    "boot/z/template/start.vto": "#!ipxe\n{{ if }}\n",
  });
  const s = setup({ store });
  const cases: [string, RegExp][] = [
    [
      `/action/x/preseed?mac=${MAC}`,
      /^template error: boot\/x\/template\/preseed\.vto:2:1: "machine\.vars\.nope" is not defined/,
    ],
    [`/boot/y/${MAC}`, /^template error: boot\/y\/os\.toml#cmdline:1:3: "nope" is not defined/],
    [`/boot/z/${MAC}`, /^template error: boot\/z\/template\/start\.vto:2:/],
  ];
  for (const [url, body] of cases) {
    await t.step(url, async () => {
      const res = await s.text(url);
      assert.equal(res.status, 500);
      assert.match(res.body, body);
    });
  }
  assert.equal(s.logger.lines.filter((l) => l.level === "error").length, 3);
});

Deno.test("images and loaders: HEAD, Range, ETag, Content-Type", async (t) => {
  const s = setup();
  const linux = await Deno.readFile(join(TREE, "boot/debian/images/linux"));
  await t.step("GET streams the whole file with validators", async () => {
    const res = await s.get("/image/debian/linux");
    assert.equal(res.status, 200);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), linux);
    assert.equal(res.headers.get("Content-Length"), "3000");
    assert.equal(res.headers.get("Accept-Ranges"), "bytes");
    assert.equal(res.headers.get("Content-Type"), "application/octet-stream");
    assert.match(res.headers.get("ETag")!, /^"bb8-[0-9a-f-]+"$/);
    assert.ok(res.headers.get("Last-Modified"));
  });
  await t.step("HEAD has the headers and no body", async () => {
    const res = await s.get("/image/debian/linux", { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("Content-Length"), "3000");
    assert.equal(await res.text(), "");
  });
  await t.step("Range gives 206 and exactly those bytes", async () => {
    const res = await s.get("/image/debian/linux", { headers: { Range: "bytes=100-199" } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get("Content-Range"), "bytes 100-199/3000");
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), linux.subarray(100, 200));
  });
  await t.step("unsatisfiable Range is 416", async () => {
    const res = await s.get("/image/debian/linux", { headers: { Range: "bytes=3000-" } });
    assert.equal(res.status, 416);
    assert.equal(res.headers.get("Content-Range"), "bytes */3000");
    await res.body?.cancel();
  });
  await t.step("If-None-Match with the ETag is 304", async () => {
    const etag = (await s.get("/image/debian/linux", { method: "HEAD" })).headers.get("ETag")!;
    const res = await s.get("/image/debian/linux", { headers: { "If-None-Match": etag } });
    assert.equal(res.status, 304);
    assert.equal(await res.text(), "");
  });
  await t.step("/tftp serves loaders, from the host package when the tree lacks them", async () => {
    const dir = await Deno.makeTempDir({ prefix: "astral-http-" });
    try {
      await Deno.writeTextFile(join(dir, "snponly.efi"), "host snponly");
      const store = new FallbackStore(new LocalStore(TREE), {
        "tftp/snponly.efi": join(dir, "snponly.efi"),
      });
      const f = setup({ store });
      assert.equal((await f.text("/tftp/undionly.kpxe")).body, "fake undionly.kpxe for tests\n");
      const efi = await f.text("/tftp/snponly.efi");
      assert.equal(efi.body, "host snponly");
      assert.equal(efi.type, "application/octet-stream");
      assert.equal((await f.text("/tftp/ipxe.efi")).status, 404);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("a small file from memory skips the router and answers as the routes do", async (t) => {
  // Counts the answers memory gave at once: each one is a request the fast lane answered.
  let fromMemory = 0;
  class Counting extends CachedStore {
    override peek(path: string) {
      const whole = super.peek(path);
      if (whole) fromMemory++;
      return whole;
    }
  }
  const s = setup({ store: new Counting(new LocalStore(TREE), { revalidateMs: Infinity }) });
  const events: unknown[] = [];
  s.watch.events.subscribe((e) => events.push(e && { ...e, seq: 0, time: 0 }));
  const answer = async (path: string, init: RequestInit = {}) => {
    const res = await s.get(path, init, "10.0.0.9");
    // Deno.serve sets Content-Length for a body of bytes; in process only the routes set it.
    const headers = [...res.headers].filter(([k]) => k !== "date" && k !== "content-length");
    return { status: res.status, headers, body: new Uint8Array(await res.arrayBuffer()) };
  };
  const access = () =>
    s.logger.lines.filter((l) => l.subsystem === "http" && "ms" in l.fields)
      .map((l) => ({ ...l.fields, ms: 0 }));

  for (const path of ["/image/debian/linux", "/tftp/undionly.kpxe"]) {
    await t.step(`${path}: the same answer, log line and event both ways`, async () => {
      fromMemory = 0;
      const routed = await answer(path); // loads the file: the routes answer
      assert.equal(fromMemory, 0);
      const fast = await answer(path);
      assert.equal(fromMemory, 1);
      assert.equal(fast.status, 200);
      assert.deepEqual(fast, routed);
      const [a, b] = access().slice(-2);
      assert.deepEqual(a, b);
      assert.deepEqual(events.at(-1), events.at(-2));
      assert.ok(events.length >= 2);
    });
  }
  await t.step("HEAD, Range, validators and encoded paths go through the routes", async () => {
    const etag = (await s.get("/image/debian/linux")).headers.get("ETag")!;
    fromMemory = 0;
    assert.equal((await answer("/image/debian/linux", { method: "HEAD" })).body.length, 0);
    const part = await answer("/image/debian/linux", { headers: { Range: "bytes=0-9" } });
    assert.equal(part.status, 206);
    assert.equal(part.body.length, 10);
    const same = await answer("/image/debian/linux", { headers: { "If-None-Match": etag } });
    assert.equal(same.status, 304);
    assert.equal((await answer("/image/debian/%6cinux")).status, 200);
    assert.equal((await answer("/image/debian//linux")).status, 200);
    assert.equal((await answer("/image/debian/linux?x=1")).status, 200);
    assert.equal(fromMemory, 0);
  });
});

Deno.test("a machine's /boot.ipxe?mac= skips the router and answers as the route does", async (t) => {
  const requests: HttpEvent[] = [];
  const s: ReturnType<typeof setup> = setup({
    onRequest: (e) => {
      requests.push(e);
      s.watch.http(e);
    },
    addressBook: {
      leaseOf: (mac) => mac === MAC ? "10.0.0.77" : null,
      leaseAt: (ip) => ip === "10.0.0.77" ? MAC : null,
    },
  });
  await t.step("the lane takes a plain ?mac= of a GET, the route everything else", () => {
    const taken = (path: string, method = "GET", url = `http://10.0.0.1${path}`) =>
      plainBootEntry({ method, url } as Request, path);
    assert.equal(taken(`/boot.ipxe?mac=${MAC}`), MAC);
    assert.equal(taken(`/boot.ipxe?serial=x&mac=52-54-00-12-34-56&uuid=y%20z`), MAC);
    assert.equal(taken(`/boot.ipxe?mac=52-54-00-12-34-56&mac=nonsense`), MAC); // the first
    for (
      const path of [
        "/boot.ipxe",
        "/boot.ipxe?serial=x",
        "/boot.ipxe?mac=",
        "/boot.ipxe?mac=52%3A54%3A00%3A12%3A34%3A56",
        "/boot.ipxe?mac=nonsense",
        "/boot.ipxe?mac=nonsense&mac=52-54-00-12-34-56",
        // The router decodes every key once one before `mac` is encoded: its `mac` is the first.
        "/boot.ipxe?m%61c=52:54:00:00:00:01&mac=52:54:00:12:34:56",
        "/boot.ipxe?a+b=1&mac=52:54:00:12:34:56",
        `/boot.ipxe?a=1#&mac=${MAC}`,
        `/menu.ipxe?mac=${MAC}`,
      ]
    ) assert.equal(taken(path), undefined, path);
    assert.equal(taken(`/boot.ipxe?mac=${MAC}`, "HEAD"), undefined);
    // A Host header with a "?": the router reads the query from there.
    const odd = `/boot.ipxe?mac=${MAC}`;
    assert.equal(taken(odd, "GET", `http://h?x${odd}`), undefined);
  });
  // Counts the requests the router matched: none for the lane's. Hono's router puts the one it
  // picked in place of its `match` at the first request: the count wraps that one.
  await s.text("/menu.ipxe");
  let matched = 0;
  const match = s.app.router.match.bind(s.app.router);
  s.app.router.match = (method, path) => {
    matched++;
    return match(method, path);
  };
  await t.step(
    "an encoded key before mac: the route's reading, a 400 for its bad MAC",
    async () => {
      matched = 0;
      const res = await s.text(`/boot.ipxe?m%61c=nonsense&mac=${MAC}`, "10.0.0.77");
      assert.equal(res.status, 400);
      assert.equal(matched, 1);
    },
  );
  const events: Record<string, unknown>[] = [];
  s.watch.events.subscribe((e) => events.push({ ...e, seq: 0, time: 0 }));
  const answer = async (path: string, ip: string) => {
    const res = await s.get(path, {}, ip);
    const headers = [...res.headers].filter(([k]) => k !== "date");
    const line = s.logger.lines.filter((l) => l.subsystem === "http" && "ms" in l.fields).at(-1)!;
    return {
      status: res.status,
      headers,
      body: await res.text(),
      line: { ...line.fields, ms: 0, path: "" },
      request: { ...requests.at(-1)!, ms: 0, path: "" },
      event: events.at(-1),
    };
  };
  const cases: [string, string, number][] = [
    ["its menu, from its own address", "10.0.0.77", 200],
    ["another address: 403", "10.9.9.9", 403],
  ];
  for (const [name, ip, status] of cases) {
    await t.step(`${name}: the same answer, log line and event both ways`, async () => {
      const query = "&serial=SN-1&manufacturer=QEMU%20x";
      matched = 0;
      const fast = await answer(`/boot.ipxe?mac=${MAC}${query}`, ip);
      assert.equal(matched, 0);
      const routed = await answer(`/boot.ipxe?mac=52%3a54%3a00%3a12%3a34%3a56${query}`, ip);
      assert.equal(matched, 1);
      assert.equal(fast.status, status);
      assert.deepEqual(fast, routed);
      assert.equal(fast.request.route, "script");
      assert.equal(fast.request.mac, status === 200 ? MAC : null);
      assert.equal(fast.event?.detail, status === 200 ? "menu" : "GET /boot.ipxe → 403");
    });
  }
  await t.step("an error of the lane is answered as the route's", async () => {
    const seen: HttpEvent[] = [];
    const failing = setup({ onRequest: (e) => seen.push(e) });
    failing.scripts.entry = () => Promise.reject(new Error("disk on fire"));
    const res = await failing.text(`/boot.ipxe?mac=${MAC}`);
    assert.equal(res.status, 500);
    assert.equal(res.body, "internal error\n");
    assert.ok(failing.logger.lines.some((l) => l.message === "request failed"));
    assert.deepEqual({ ...seen.at(-1)!, ms: 0 }, {
      method: "GET",
      path: `/boot.ipxe?mac=${MAC}`,
      route: "script",
      status: 500,
      bytes: 15,
      ms: 0,
      client: "10.0.0.50",
      mac: null,
      step: null,
    });
  });
});

Deno.test("traversal attempts never read outside the tree", async (t) => {
  const base = await Deno.makeTempDir({ prefix: "astral-trav-" });
  try {
    const root = join(base, "root");
    await Deno.mkdir(join(root, "boot/x/images"), { recursive: true });
    await Deno.mkdir(join(root, "tftp"));
    await Deno.writeTextFile(join(root, "boot/x/images/vmlinuz"), "kernel");
    await Deno.writeTextFile(join(root, "boot/x/os.toml"), 'title = "SECRET-IN-TREE-TOML"\n');
    await Deno.writeTextFile(join(base, "secret.txt"), "SECRET outside");
    await Deno.symlink(join(base, "secret.txt"), join(root, "boot/x/images/abs-link"));
    await Deno.symlink("../../../../secret.txt", join(root, "boot/x/images/rel-link"));
    await Deno.symlink(base, join(root, "boot/x/images/up"));
    await Deno.symlink(base, join(root, "tftp/up"));
    const s = setup({ store: new LocalStore(root) });
    const cases: [string, number][] = [
      ["/image/x/../../secret.txt", 404],
      ["/image/x/%2e%2e/%2e%2e/secret.txt", 404],
      ["/image/x/..%2f..%2f..%2fsecret.txt", 400],
      ["/image/x/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt", 400],
      ["/image/x/..%5c..%5csecret.txt", 400],
      ["/image/x/%00", 400],
      ["/image/x/%ZZ", 400],
      ["/image/..%2f..%2f/secret.txt", 400],
      ["/image/x/abs-link", 403],
      ["/image/x/rel-link", 403],
      ["/image/x/up/secret.txt", 403],
      ["/image/x/..%2fos.toml", 400],
      ["/tftp/up/secret.txt", 403],
      ["/tftp/..%2fboot%2fx%2fos.toml", 400],
      ["/files/boot/x/os.toml", 404],
      ["/image/x/../os.toml", 400],
    ];
    for (const [url, status] of cases) {
      await t.step(`${url} → ${status}`, async () => {
        const res = await s.get(url);
        const body = await res.text();
        assert.equal(res.status, status, body);
        assert.doesNotMatch(body, /SECRET/);
      });
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("bad MACs and OS names are 400, unknown routes 404", async (t) => {
  const s = setup();
  const cases: [string, number][] = [
    ["/boot.ipxe?mac=nonsense", 400],
    ["/menu.ipxe?mac=52:54:00", 400],
    ["/choose/debian/zz-54-00-12-34-56", 400],
    ["/boot/debian/52:54:00:12:34:56:78", 400],
    ["/boot/.hidden/52:54:00:12:34:56", 400],
    ["/boot/nope/52:54:00:12:34:56", 404],
    ["/image/debian/missing", 404],
    ["/image/debian/", 400],
    ["/nothing/here", 404],
  ];
  for (const [url, status] of cases) {
    await t.step(`${url} → ${status}`, async () => {
      assert.equal((await s.text(url)).status, status);
    });
  }
});

Deno.test("every request leaves one access log line", async () => {
  const s = setup();
  await s.get(`/boot/tiny/${MAC}`, {}, "10.0.0.9");
  await s.get("/image/tiny/vmlinuz", { method: "HEAD" }, "10.0.0.9");
  await s.get("/image/tiny/vmlinuz", { headers: { Range: "bytes=0-9" } }, "10.0.0.9");
  await s.get("/image/../etc/passwd", {}, "10.0.0.9");
  const access = s.logger.lines.filter((l) => l.subsystem === "http" && "ms" in l.fields);
  const script = (await Deno.readTextFile(join(GOLDEN, "start_tiny.ipxe"))).length;
  assert.deepEqual(
    access.map((
      l,
    ) => [l.fields.method, l.fields.path, l.fields.status, l.fields.bytes, l.fields.client]),
    [
      ["GET", `/boot/tiny/${MAC}`, 200, script, "10.0.0.9"],
      ["HEAD", "/image/tiny/vmlinuz", 200, 0, "10.0.0.9"],
      ["GET", "/image/tiny/vmlinuz", 206, 10, "10.0.0.9"],
      ["GET", "/etc/passwd", 404, 10, "10.0.0.9"],
    ],
  );
  for (const l of access) assert.equal(typeof l.fields.ms, "number");
});
