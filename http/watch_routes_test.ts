import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { BootEventInput, WatchEvent } from "../observe/events.ts";
import { machineRows, type Overview, sseMessage, watchRoutes } from "./watch_routes.ts";
import { LocalStore } from "../content/local.ts";
import { BootWatch } from "../observe/watch.ts";
import { mustParseMac } from "../net/mac.ts";
import { ADMIN, ADMIN_TOKEN, testApp } from "./_test_utils.ts";
import { emptyInventory } from "../state/inventory.ts";

const A = "52:54:00:00:00:0a";
const B = "52:54:00:00:00:0b";

function ev(mac: string | null, ip: string | null, stage: BootEventInput["stage"], detail = "") {
  return { mac: mac === null ? null : mustParseMac(mac), ip, stage, detail };
}

function setup(options: { keepAliveSeconds?: number; maxStreams?: number } = {}) {
  const watch = new BootWatch({ version: "1.2.3" });
  const routes = watchRoutes({ watch, adminToken: ADMIN_TOKEN, ...options });
  // As an admin's dashboard asks: with the token.
  const app = {
    request: (path: string, init: RequestInit = {}) =>
      routes.request(path, { ...init, headers: { ...ADMIN, ...init.headers } }),
  };
  return { watch, app, log: watch.events };
}

/** Reads an SSE body until `pred` holds for the text so far; throws after `ms`. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  pred: (text: string) => boolean,
  ms = 5000,
  sofar = { text: "" },
): Promise<string> {
  const dec = new TextDecoder();
  const deadline = Date.now() + ms;
  while (!pred(sofar.text)) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no match; got: ${sofar.text}`)),
        deadline - Date.now(),
      );
    });
    const r = await Promise.race([reader.read(), timeout]).finally(() => clearTimeout(timer));
    if (r.done) throw new Error(`stream ended; got: ${sofar.text}`);
    sofar.text += dec.decode(r.value, { stream: true });
  }
  return sofar.text;
}

/** The `data:` payloads of an SSE text, parsed. */
function sseEvents(text: string): WatchEvent[] {
  return text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)));
}

Deno.test("GET /metrics answers the exposition with its content type", async () => {
  const { app, watch } = setup();
  watch.tftp({
    result: "done",
    file: "undionly.kpxe",
    client: { address: "10.0.0.5", port: 2000 },
    bytes: 1234,
    blocks: 3,
    blksize: 512,
    windowsize: 1,
    ms: 20,
    retransmits: 0,
  });
  const res = await app.request("/metrics");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const body = await res.text();
  assert.equal(Number(res.headers.get("Content-Length")), new TextEncoder().encode(body).length);
  assert.match(body, /^astralboot_tftp_bytes_total 1234$/m);
  assert.match(body, /^# TYPE astralboot_tftp_transfer_duration_seconds histogram$/m);
});

Deno.test("GET /api/events pages by since, limit and mac", async (t) => {
  const { app, log } = setup();
  log.push(ev(A, null, "dhcp-offer"));
  log.push(ev(B, null, "dhcp-offer"));
  log.push(ev(A, "10.0.0.5", "dhcp-ack"));
  log.push(ev(A, "10.0.0.5", "tftp-done"));
  const cases: { query: string; seqs: number[]; last: number }[] = [
    { query: "", seqs: [1, 2, 3, 4], last: 4 },
    { query: "?since=2", seqs: [3, 4], last: 4 },
    { query: "?since=4", seqs: [], last: 4 },
    { query: "?limit=2", seqs: [1, 2], last: 2 },
    { query: `?mac=${B}`, seqs: [2], last: 4 },
    { query: "?mac=52-54-00-00-00-0A&since=1", seqs: [3, 4], last: 4 },
    { query: `?mac=${A}&limit=1`, seqs: [1], last: 1 },
  ];
  for (const c of cases) {
    await t.step(c.query || "(none)", async () => {
      const res = await app.request(`/api/events${c.query}`);
      assert.equal(res.status, 200);
      const page = await res.json();
      assert.deepEqual(page.events.map((e: WatchEvent) => e.seq), c.seqs);
      assert.equal(page.last, c.last);
    });
  }
  for (const bad of ["?since=-1", "?since=abc", "?limit=99999", "?mac=nope"]) {
    await t.step(`${bad} → 400`, async () => {
      const res = await app.request(`/api/events${bad}`);
      assert.equal(res.status, 400);
      assert.match((await res.json()).error, /since|limit|MAC/);
    });
  }
});

Deno.test("the event stream pushes new events live and unsubscribes a client that goes", async () => {
  const { app, log } = setup();
  log.push(ev(A, null, "dhcp-offer", "before"));
  const res = await app.request("/api/events/stream");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("Content-Type"), "text/event-stream; charset=utf-8");
  const reader = res.body!.getReader();
  const sofar = { text: "" };
  await readUntil(reader, (t) => t.includes("retry: 3000\n"), 5000, sofar);
  assert.equal(log.subscribers, 1);
  const pushed = log.push(ev(A, "10.0.0.5", "dhcp-ack", "live"));
  const text = await readUntil(reader, (t) => t.includes('"live"'), 5000, sofar);
  // Without since or Last-Event-ID only new events come.
  assert.deepEqual(sseEvents(text), [pushed]);
  assert.ok(text.includes(sseMessage(pushed)));
  assert.equal(sseMessage(pushed), `id: 2\ndata: ${JSON.stringify(pushed)}\n\n`);
  await reader.cancel();
  assert.equal(log.subscribers, 0);
  // Pushing after the client left must not throw.
  log.push(ev(A, null, "script"));
});

Deno.test("a reconnect with Last-Event-ID (or ?since) first replays what it missed", async (t) => {
  const cases: { name: string; init: RequestInit; query: string }[] = [
    { name: "Last-Event-ID", init: { headers: { "Last-Event-ID": "1" } }, query: "" },
    { name: "?since", init: {}, query: "?since=1" },
    { name: "header wins", init: { headers: { "Last-Event-ID": "1" } }, query: "?since=2" },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const { app, log } = setup();
      for (const d of ["one", "two", "three"]) log.push(ev(A, null, "script", d));
      const res = await app.request(`/api/events/stream${c.query}`, c.init);
      const reader = res.body!.getReader();
      const text = await readUntil(reader, (t) => t.includes('"three"'));
      assert.deepEqual(sseEvents(text).map((e) => e.detail), ["two", "three"]);
      await reader.cancel();
    });
  }
  const { app } = setup();
  const bad = await app.request("/api/events/stream", { headers: { "Last-Event-ID": "x" } });
  assert.equal(bad.status, 400);
});

Deno.test("the event stream sends keep-alive comments and ends when the watch closes", async () => {
  const { app, watch, log } = setup({ keepAliveSeconds: 0.05 });
  const res = await app.request("/api/events/stream");
  const reader = res.body!.getReader();
  await readUntil(reader, (t) => t.includes(": keep-alive\n\n"));
  watch.close();
  assert.equal(log.subscribers, 0);
  // The body ends: a server shutdown is not held open by watchers.
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
  }
  const after = await app.request("/api/events/stream");
  assert.equal(after.status, 503);
});

Deno.test("too many open streams are refused with 503", async () => {
  const { app, log } = setup({ maxStreams: 2 });
  const open = [await app.request("/api/events/stream"), await app.request("/api/events/stream")];
  const third = await app.request("/api/events/stream");
  assert.equal(third.status, 503);
  assert.match((await third.json()).error, /too many event streams/);
  for (const r of open) await r.body!.cancel();
  assert.equal(log.subscribers, 0);
});

Deno.test("GET /api/leases and /api/overview merge registry, leases and stages", async () => {
  const { app, watch, log } = setup();
  assert.deepEqual(await (await app.request("/api/leases")).json(), []);
  const leases = [
    { ip: "10.0.0.5", mac: A, state: "bound", hostname: "from-dhcp", expires: 2 },
    { ip: "10.0.0.9", mac: A, state: "expired", expires: 1 },
    { ip: "10.0.0.6", mac: B, state: "offered", expires: 3 },
  ];
  watch.leases = () => leases;
  log.push({ ...ev(A, "10.0.0.5", "kernel", "debian/linux"), time: 5000 });
  log.push({ ...ev(null, "10.0.0.77", "tftp-done", "ipxe.efi"), time: 6000 });
  const machines = () => [
    {
      mac: A,
      hostname: "node-a",
      ip: null,
      os: "debian",
      class: "server",
      state: "chosen",
      last_seen: 4000,
      inventory: { ...emptyInventory(), serial: "SN-1", reported_at: 4000 },
    },
    {
      mac: "52:54:00:00:00:0c",
      hostname: "never",
      ip: "10.0.0.30",
      os: null,
      state: "new",
      last_seen: null,
    },
  ];
  const full = watchRoutes({ watch, machines, adminToken: ADMIN_TOKEN });
  const admin = (path: string) => full.request(path, { headers: ADMIN });
  assert.deepEqual(await (await admin("/api/leases")).json(), leases);
  const o = await (await admin("/api/overview")).json() as Overview;
  assert.equal(o.version, "1.2.3");
  assert.equal(o.headline.leases_bound, 1);
  assert.deepEqual(o.machines, [
    {
      mac: null,
      ip: "10.0.0.77",
      hostname: null,
      os: null,
      class: null,
      state: null,
      lease: null,
      stage: "tftp-done",
      detail: "ipxe.efi",
      last_seen: 6000,
      inventory: null,
    },
    {
      mac: A,
      ip: "10.0.0.5",
      hostname: "node-a",
      os: "debian",
      class: "server",
      state: "chosen",
      lease: "bound",
      stage: "kernel",
      detail: "debian/linux",
      last_seen: 5000,
      inventory: { ...emptyInventory(), serial: "SN-1", reported_at: 4000 },
    },
    {
      mac: B,
      ip: "10.0.0.6",
      hostname: null,
      os: null,
      class: null,
      state: null,
      lease: "offered",
      stage: null,
      detail: null,
      last_seen: null,
      inventory: null,
    },
    {
      mac: "52:54:00:00:00:0c",
      ip: "10.0.0.30",
      hostname: "never",
      os: null,
      class: null,
      state: "new",
      lease: null,
      stage: null,
      detail: null,
      last_seen: null,
      inventory: null,
    },
  ]);
});

Deno.test("machineRows: the lease that says most wins, and a lease host name fills a gap", async (t) => {
  const cases: { name: string; states: [string, number][]; lease: string; ip: string }[] = [
    {
      name: "bound beats offered",
      states: [["offered", 9], ["bound", 1]],
      lease: "bound",
      ip: "ip1",
    },
    {
      name: "offered beats expired",
      states: [["expired", 9], ["offered", 1]],
      lease: "offered",
      ip: "ip1",
    },
    {
      name: "newest of equals",
      states: [["expired", 1], ["released", 5]],
      lease: "released",
      ip: "ip1",
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const leases = c.states.map(([state, expires], i) => ({
        ip: `ip${i}`,
        mac: A,
        state,
        expires,
        hostname: "h",
      }));
      const [row] = machineRows([], leases, []);
      assert.equal(row!.lease, c.lease);
      assert.equal(row!.ip, leases.find((l) => l.state === c.lease)!.ip);
      assert.equal(row!.hostname, "h");
    });
  }
});

Deno.test("/ui serves the dashboard; it references only same-origin URLs that exist", async () => {
  const { app } = setup();
  const res = await app.request("/ui");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("Content-Type"), "text/html; charset=utf-8");
  assert.match(
    res.headers.get("Content-Security-Policy")!,
    /default-src 'none'; script-src 'self'/,
  );
  const html = await res.text();
  assert.match(html, /^<!doctype html>/i);
  assert.equal(await (await app.request("/ui/")).text(), html);
  const js = await (await app.request("/ui/dashboard.js")).text();
  const css = await (await app.request("/ui/dashboard.css")).text();
  // An icon of its own (an empty data: URL, which loads nothing), or browsers ask /favicon.ico
  // and log its 404 as an error on every load.
  assert.match(html, /<link rel="icon" href="data:,">/);
  const refs = [
    ...[...html.matchAll(/\b(?:src|href)="([^"]*)"/g)].map((m) => m[1]!),
    ...[...js.matchAll(/\b(?:fetch|api)\(\s*[`"']([^`"'$?]*)/g)].map((m) => m[1]!),
    ...[...css.matchAll(/url\(([^)]*)\)/g)].map((m) => m[1]!),
  ].filter((ref) => ref !== "data:,");
  for (const used of ["/ui/dashboard.js", "/api/overview", "/api/events", "/api/events/stream"]) {
    assert.ok(refs.includes(used), `${used} not among ${refs.join(" ")}`);
  }
  for (const ref of refs) {
    // Same origin: a path, never a scheme or a protocol-relative `//host`.
    assert.match(ref, /^\/(?!\/)/, `not a same-origin path: ${ref}`);
  }
  assert.doesNotMatch(html + js + css, /\bhttps?:\/\//);
  // innerHTML would turn a client-sent host name into markup.
  assert.doesNotMatch(js, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  // Every URL the page uses answers (the machine API lives in api_routes.ts, not here); the
  // API ones only with the admin token.
  for (const ref of refs.filter((r) => r !== "/api/machines")) {
    const r = await app.request(ref);
    assert.equal(r.status, 200, ref);
    await r.body?.cancel();
    if (!ref.startsWith("/api/")) continue;
    const anon = await app.request(ref, { headers: { Authorization: "" } });
    assert.equal(anon.status, 401, ref);
    await anon.body?.cancel();
  }
});

Deno.test("mounted in the boot HTTP app, watch routes answer and the access log counts them", async () => {
  const store = new LocalStore(fileURLToPath(new URL("../boot/testdata/tree", import.meta.url)));
  const watch = new BootWatch({ version: "0" });
  const { get } = testApp({ store, watch });
  for (const path of ["/metrics", "/ui", "/api/events", "/api/overview"]) {
    const res = await get(path, { headers: ADMIN }, "10.0.0.9");
    assert.equal(res.status, 200, path);
    await res.arrayBuffer();
  }
  const missing = await get("/nothing-here");
  assert.equal(missing.status, 404);
  await missing.arrayBuffer();
  const text = watch.metrics.render();
  assert.match(text, /^astralboot_http_requests_total\{route="watch",status="200"\} 4$/m);
  assert.match(text, /^astralboot_http_requests_total\{route="other",status="404"\} 1$/m);
  assert.deepEqual(watch.events.since(0).events, []);
});
