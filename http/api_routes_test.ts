import assert from "node:assert/strict";
import { MemoryStore } from "../content/memory.ts";
import { mustParseMac } from "../net/mac.ts";
import { testApp } from "./_test_utils.ts";

const A = mustParseMac("52:54:00:00:00:0a");
const B = mustParseMac("52:54:00:00:00:0b");

function setup() {
  const s = testApp({
    store: new MemoryStore({}),
    machines: [{ mac: A, hostname: "etcd-1", os: "debian", class: "k8s-node", vars: {} }],
  });
  const req = (method: string, path: string) => s.get(path, { method });
  const said = (message: string) => s.logger.lines.findLast((l) => l.message === message);
  return { ...s, req, said };
}

Deno.test("the install callback, by POST or GET, makes the machine boot from disk", async (t) => {
  for (const method of ["POST", "GET"]) {
    await t.step(method, async () => {
      const { registry, history, said, req } = setup();
      const res = await req(method, "/api/machines/52-54-00-00-00-0A/installed");
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.state, "installed");
      assert.equal(body.mac, A);
      assert.equal(registry.get(A)!.state, "installed");
      assert.equal(registry.get(A)!.ip, "10.0.0.50");
      assert.ok(said("install finished: next boot from local disk"));
      // Written by the watch's history subscriber (observe/history.ts) from the request's step.
      assert.deepEqual(history.lines(A).map((l) => [l.kind, l.what, l.ip]), [
        ["installed", "install finished", "10.0.0.50"],
      ]);
    });
  }
});

Deno.test("reinstall is POST only and undoes the install", async (t) => {
  const { registry, req } = setup();
  registry.installed(A);
  await t.step("GET does not reinstall", async () => {
    const res = await req("GET", `/api/machines/${A}/reinstall`);
    assert.equal(res.status, 404);
    assert.equal(registry.get(A)!.state, "installed");
  });
  await t.step("POST does", async () => {
    const res = await req("POST", `/api/machines/${A}/reinstall`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).state, "chosen");
    assert.equal(registry.get(A)!.state, "chosen");
  });
});

Deno.test("list and detail", async (t) => {
  const { registry, history, req } = setup();
  registry.seen(B, "10.0.0.61");
  history.record(B, "menu", "menu", "10.0.0.61");
  await t.step("GET /api/machines lists config and wire machines", async () => {
    const res = await req("GET", "/api/machines");
    assert.equal(res.headers.get("content-type"), "application/json");
    const list = await res.json();
    assert.deepEqual(list.map((m: { mac: string }) => m.mac), [A, B]);
    assert.deepEqual(list, JSON.parse(JSON.stringify(registry.list())));
  });
  await t.step("GET /api/machines/:mac has the history", async () => {
    const body = await (await req("GET", "/api/machines/52540000000b")).json();
    assert.equal(body.hostname, "node-52540000000b");
    assert.deepEqual(body.history.map((e: { what: string }) => e.what), ["menu"]);
  });
});

Deno.test("progress reports reach the log and the watch, cleaned", async () => {
  const events: { step: unknown }[] = [];
  const s = testApp({
    store: new MemoryStore({}),
    machines: [{ mac: A, hostname: "etcd-1", os: "debian", class: "k8s-node", vars: {} }],
    onRequest: (e) => events.push(e),
  });
  const req = (method: string, path: string) => s.get(path, { method });
  const { registry, logger } = s;
  const res = await req(
    "GET",
    `/api/machines/${A}/progress?step=preseed&hostname=etcd-1&mirror=deb.debian.org&x=%0Aevil`,
  );
  assert.equal(res.status, 200);
  assert.deepEqual(events.at(-1)!.step, {
    stage: "progress",
    detail: "step=preseed hostname=etcd-1 mirror=deb.debian.org x=?evil",
  });
  assert.deepEqual(logger.lines.findLast((l) => l.message === "installer progress")!.fields, {
    mac: A,
    report: "step=preseed hostname=etcd-1 mirror=deb.debian.org x=?evil",
    client: "10.0.0.50",
  });
  assert.equal(registry.get(A)!.state, "chosen", "a report does not change the state");
});

Deno.test("bad and unknown MACs", async (t) => {
  const { registry, req } = setup();
  const cases: [string, string, number, RegExp][] = [
    ["GET", "/api/machines/nonsense", 400, /not a MAC address: nonsense/],
    ["POST", "/api/machines/52:54:00/installed", 400, /not a MAC address/],
    ["GET", "/api/machines/52:54:00:99:99:99", 404, /unknown machine 52:54:00:99:99:99/],
    ["POST", "/api/machines/52:54:00:99:99:99/installed", 404, /unknown machine/],
    ["POST", "/api/machines/52:54:00:99:99:99/reinstall", 404, /unknown machine/],
    ["GET", "/api/machines/52:54:00:99:99:99/progress?step=x", 404, /unknown machine/],
  ];
  for (const [method, path, status, error] of cases) {
    await t.step(`${method} ${path} → ${status}`, async () => {
      const res = await req(method, path);
      assert.equal(res.status, status);
      assert.match((await res.json()).error, error);
    });
  }
  await t.step("no request for an unknown machine created it", () => {
    assert.equal(registry.get(mustParseMac("52:54:00:99:99:99")), null);
  });
});
