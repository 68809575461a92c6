import assert from "node:assert/strict";
import { MemoryStore } from "../content/memory.ts";
import { mustParseMac } from "../net/mac.ts";
import { callbackToken } from "../boot/callback_tokens.ts";
import { ADMIN, testApp } from "./_test_utils.ts";

const A = mustParseMac("52:54:00:00:00:0a");
const B = mustParseMac("52:54:00:00:00:0b");
const SECRET_HASH = "$6$SENTINEL$do-not-show-me";

function setup() {
  const s = testApp({
    store: new MemoryStore({}),
    machines: [{
      mac: A,
      hostname: "etcd-1",
      os: "debian",
      class: "k8s-node",
      vars: { password_hash: SECRET_HASH, disk: "/dev/vda" },
    }],
  });
  const req = (method: string, path: string, headers: Record<string, string> = {}) =>
    s.get(path, { method, headers });
  const admin = (method: string, path: string) => req(method, path, ADMIN);
  const said = (message: string) => s.logger.lines.findLast((l) => l.message === message);
  /** The callback token of A's current install, as its rendered config carries it. */
  const token = () => callbackToken(s.secret, A, s.registry.get(A)!.install_gen);
  return { ...s, req, admin, said, token };
}

Deno.test("the install callback with its token, by POST or GET, makes the machine boot from disk", async (t) => {
  for (const method of ["POST", "GET"]) {
    await t.step(method, async () => {
      const { registry, history, said, req, token } = setup();
      const res = await req(method, `/api/machines/52-54-00-00-00-0A/installed/${token()}`);
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

Deno.test("a forgotten stranger back again: the tokens of its earlier installs are refused", async () => {
  const { registry, req, admin, secret } = setup();
  const C = mustParseMac("52:54:00:00:00:0c");
  const tokenOf = (gen: number) => callbackToken(secret, C, gen);
  const installed = (token: string) => req("POST", `/api/machines/${C}/installed/${token}`);
  registry.seen(C, "10.0.0.50");
  registry.choose(C, "debian");
  const first = registry.get(C)!.install_gen;
  assert.equal((await installed(tokenOf(first))).status, 200);
  assert.equal((await admin("POST", `/api/machines/${C}/reinstall`)).status, 200);
  // A month and more later nobody has seen it: the server forgets it.
  assert.equal(registry.prune(Date.now() + 1, 10_000), 1);
  registry.seen(C, "10.0.0.50");
  registry.choose(C, "debian");
  const now = registry.get(C)!.install_gen;
  assert.ok(now > first + 2, `install ${now} is past ${first}, the callback's and the reinstall's`);
  for (let gen = 0; gen < now; gen++) {
    const res = await installed(tokenOf(gen));
    assert.equal(res.status, 403, `the token of install ${gen}`);
    await res.body?.cancel();
  }
  assert.equal(registry.get(C)!.state, "chosen");
  assert.equal((await installed(tokenOf(now))).status, 200);
});

Deno.test("HEAD of a callback says whether it would be taken, and takes nothing", async () => {
  const { registry, req, token, history } = setup();
  for (
    const path of [
      `/api/machines/${A}/installed/${token()}`,
      `/api/machines/${A}/progress/${token()}?step=x`,
    ]
  ) {
    assert.equal((await req("HEAD", path)).status, 200);
  }
  assert.equal((await req("HEAD", `/api/machines/${A}/installed/${"0".repeat(32)}`)).status, 403);
  assert.equal(registry.get(A)!.state, "chosen");
  assert.deepEqual(history.lines(A), []);
  // The token is still this install's: the real callback takes it.
  assert.equal((await req("POST", `/api/machines/${A}/installed/${token()}`)).status, 200);
  assert.equal(registry.get(A)!.state, "installed");
});

Deno.test("a callback without its install's token changes nothing", async (t) => {
  const { registry, req, admin, token } = setup();
  const cases: [string, string][] = [
    ["no token", `/api/machines/${A}/installed`],
    ["a made-up token", `/api/machines/${A}/installed/${"0".repeat(32)}`],
    ["another machine's token", `/api/machines/${B}/installed/${token()}`],
    ["progress without a token", `/api/machines/${A}/progress?step=x`],
  ];
  for (const [name, path] of cases) {
    await t.step(name, async () => {
      const res = await req("GET", path);
      assert.ok(res.status === 403 || res.status === 404, `${res.status}`);
      await res.body?.cancel();
      assert.equal(registry.get(A)!.state, "chosen");
    });
  }
  await t.step("a token is used once: after the callback it is an earlier install's", async () => {
    const first = token();
    assert.equal((await req("POST", `/api/machines/${A}/installed/${first}`)).status, 200);
    const again = await req("POST", `/api/machines/${A}/progress/${first}?step=late`);
    assert.equal(again.status, 403);
    assert.match((await again.json()).error, /not the token of .* current install/);
  });
  await t.step("the admin's token from another site's page marks nothing", async () => {
    registry.reinstall(A);
    const foreigns: Record<string, string>[] = [
      { Origin: "http://evil.example" },
      { "Sec-Fetch-Site": "cross-site" },
    ];
    for (const foreign of foreigns) {
      for (const path of [`/api/machines/${A}/installed`, `/api/machines/${A}/progress?step=x`]) {
        const res = await req("POST", path, { ...ADMIN, ...foreign });
        assert.equal(res.status, 403);
        await res.body?.cancel();
      }
    }
    assert.equal(registry.get(A)!.state, "chosen");
  });
  await t.step("an admin may mark it without a token", async () => {
    registry.reinstall(A);
    assert.equal((await admin("POST", `/api/machines/${A}/installed`)).status, 200);
    assert.equal(registry.get(A)!.state, "installed");
  });
});

Deno.test("reinstall is POST only, an admin's, and undoes the install", async (t) => {
  const { registry, req, admin } = setup();
  registry.installed(A);
  await t.step("GET does not reinstall", async () => {
    const res = await admin("GET", `/api/machines/${A}/reinstall`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
    assert.equal(registry.get(A)!.state, "installed");
  });
  await t.step("POST without the token is 401 and changes nothing", async () => {
    const res = await req("POST", `/api/machines/${A}/reinstall`);
    assert.equal(res.status, 401);
    assert.match(res.headers.get("WWW-Authenticate") ?? "", /^Bearer/);
    await res.body?.cancel();
    assert.equal(registry.get(A)!.state, "installed");
  });
  await t.step("POST with the token from another site's page is refused", async () => {
    const foreign: Record<string, string>[] = [{ Origin: "http://evil.example" }, {
      "Sec-Fetch-Site": "cross-site",
    }];
    for (const headers of foreign) {
      const res = await req("POST", `/api/machines/${A}/reinstall`, { ...ADMIN, ...headers });
      assert.equal(res.status, 403);
      await res.body?.cancel();
    }
    assert.equal(registry.get(A)!.state, "installed");
  });
  await t.step("POST with the token does it", async () => {
    const res = await admin("POST", `/api/machines/${A}/reinstall`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).state, "chosen");
    assert.equal(registry.get(A)!.state, "chosen");
  });
});

Deno.test("list and detail: the admin's, and without the values of vars", async (t) => {
  const { registry, history, req, admin } = setup();
  registry.seen(B, "10.0.0.61");
  history.record(B, "menu", "menu", "10.0.0.61");
  await t.step("without the token: 401", async () => {
    for (const path of ["/api/machines", `/api/machines/${A}`]) {
      const res = await req("GET", path);
      assert.equal(res.status, 401, path);
      await res.body?.cancel();
    }
  });
  await t.step("GET /api/machines lists config and wire machines", async () => {
    const res = await admin("GET", "/api/machines");
    assert.equal(res.headers.get("content-type"), "application/json");
    const text = await res.text();
    const list = JSON.parse(text);
    assert.deepEqual(list.map((m: { mac: string }) => m.mac), [A, B]);
    assert.deepEqual(list[0].var_names, ["disk", "password_hash"]);
    assert.equal("vars" in list[0], false);
    assert.equal("install_gen" in list[0], false);
    assert.ok(!text.includes("SENTINEL"));
  });
  await t.step("GET /api/machines/:mac has the history", async () => {
    const body = await (await admin("GET", "/api/machines/52540000000b")).json();
    assert.equal(body.hostname, "node-52540000000b");
    assert.deepEqual(body.history.map((e: { what: string }) => e.what), ["menu"]);
  });
});

Deno.test("progress reports reach the log and the watch, cleaned", async () => {
  const events: { step: unknown; path: string }[] = [];
  const s = testApp({
    store: new MemoryStore({}),
    machines: [{ mac: A, hostname: "etcd-1", os: "debian", class: "k8s-node", vars: {} }],
    onRequest: (e) => events.push(e),
  });
  const token = callbackToken(s.secret, A, s.registry.get(A)!.install_gen);
  const res = await s.get(
    `/api/machines/${A}/progress/${token}?step=preseed&hostname=etcd-1&mirror=deb.debian.org&x=%0Aevil`,
  );
  assert.equal(res.status, 200);
  assert.deepEqual(events.at(-1)!.step, {
    stage: "progress",
    detail: "step=preseed hostname=etcd-1 mirror=deb.debian.org x=?evil",
  });
  // The token is a secret: the access log and the event show the path without it.
  assert.match(events.at(-1)!.path, /^\/api\/machines\/[0-9a-f:]+\/progress\/\(token\)\?step=/);
  assert.ok(!s.logger.lines.some((l) => JSON.stringify(l).includes(token)));
  assert.deepEqual(s.logger.lines.findLast((l) => l.message === "installer progress")!.fields, {
    mac: A,
    report: "step=preseed hostname=etcd-1 mirror=deb.debian.org x=?evil",
    client: "10.0.0.50",
  });
  assert.equal(s.registry.get(A)!.state, "chosen", "a report does not change the state");
});

Deno.test("bad and unknown MACs", async (t) => {
  const { registry, admin } = setup();
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
      const res = await admin(method, path);
      assert.equal(res.status, status);
      assert.match((await res.json()).error, error);
    });
  }
  await t.step("no request for an unknown machine created it", () => {
    assert.equal(registry.get(mustParseMac("52:54:00:99:99:99")), null);
  });
});
