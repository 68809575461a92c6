import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { LocalStore } from "../content/local.ts";
import { mustParseMac } from "../net/mac.ts";
import { ADMIN, testApp } from "../http/_test_utils.ts";

const EXAMPLES = fileURLToPath(new URL("../examples/tree", import.meta.url));
const K8S = mustParseMac("52:54:00:00:01:01");
const K8S_URL = "52-54-00-00-01-01";

const STRANGER = mustParseMac("52:54:00:00:0c:01");

function setup() {
  const s = testApp({
    store: new LocalStore(EXAMPLES),
    machines: [
      { mac: K8S, hostname: "k8s-1", ip: "10.0.0.11", os: "debian", class: "k8s-node", vars: {} },
    ],
    // k8s-1 has its reservation; an unconfigured machine holds a lease on 10.0.0.60.
    addressBook: {
      reservationOf: (mac) => mac === K8S ? "10.0.0.11" : null,
      reservedAt: (ip) => ip === "10.0.0.11" ? K8S : null,
      leaseOf: (mac) => mac === STRANGER ? "10.0.0.60" : null,
      leaseAt: (ip) => ip === "10.0.0.60" ? STRANGER : null,
    },
  });
  const req = async (path: string, method = "GET", ip = "10.0.0.11", headers = {}) => {
    const res = await s.get(path, { method, headers }, ip);
    return { status: res.status, type: res.headers.get("Content-Type"), body: await res.text() };
  };
  return { registry: s.registry, logger: s.logger, req };
}

Deno.test("install once, then boot from disk, until a reinstall", async (t) => {
  const { registry, logger, req } = setup();
  let installedUrl = "";
  await t.step(
    "a configured machine gets its OS's kernel line from /boot.ipxe at once",
    async () => {
      const res = await req(`/boot.ipxe?mac=${K8S_URL}`);
      assert.equal(res.status, 200);
      assert.match(
        res.body,
        /^kernel http:\/\/10\.0\.0\.1\/image\/debian\/linux initrd=initrd\.gz auto=true priority=critical url=http:\/\/10\.0\.0\.1\/config\/debian\/preseed\?mac=52-54-00-00-01-01 hostname=k8s-1$/m,
      );
    },
  );
  await t.step("its start script hands d-i the preseed URL with its MAC", async () => {
    const res = await req(`/boot/debian/${K8S_URL}`);
    assert.match(
      res.body,
      /^kernel http:\/\/10\.0\.0\.1\/image\/debian\/linux initrd=initrd\.gz auto=true priority=critical url=http:\/\/10\.0\.0\.1\/config\/debian\/preseed\?mac=52-54-00-00-01-01 hostname=k8s-1$/m,
    );
  });
  await t.step("the preseed is the class's, and the machine is installing", async () => {
    const res = await req(`/config/debian/preseed?mac=${K8S_URL}`);
    assert.equal(res.status, 200);
    assert.equal(res.type, "text/plain; charset=utf-8");
    assert.match(res.body, /^# k8s-node: one of k8s-1$/m);
    assert.match(res.body, /^d-i netcfg\/get_hostname string k8s-1$/m);
    assert.equal(registry.get(K8S)!.state, "installing");
    const callback = /^ {2}wget -q -O \/dev\/null (http:\/\/10\.0\.0\.1(\/\S+))$/m.exec(res.body);
    assert.ok(callback, res.body);
    assert.match(callback[1]!, /\/api\/machines\/52-54-00-00-01-01\/installed\/[0-9a-f]{32}$/);
    installedUrl = callback[2]!;
  });
  await t.step("another machine cannot fetch it, nor call back without the token", async () => {
    for (
      const [path, method] of [[`/config/debian/preseed?mac=${K8S_URL}`, "GET"], [
        `/api/machines/${K8S_URL}/installed`,
        "GET",
      ], [`/api/machines/${K8S_URL}/installed/${"0".repeat(32)}`, "POST"]]
    ) {
      const res = await req(path!, method, "10.0.0.60");
      assert.equal(res.status, 403, path);
    }
    assert.equal(registry.get(K8S)!.state, "installing");
  });
  await t.step("until the callback, /boot.ipxe still starts the installer", async () => {
    assert.match((await req(`/boot.ipxe?mac=${K8S_URL}`)).body, /^kernel .*\/debian\/linux /m);
  });
  await t.step("the late_command's wget marks it installed", async () => {
    const res = await req(installedUrl);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(res.body).state, "installed");
  });
  await t.step("its token is spent: a replay is refused", async () => {
    assert.equal((await req(installedUrl)).status, 403);
  });
  await t.step("now /boot.ipxe boots the local disk", async () => {
    const res = await req(`/boot.ipxe?mac=${K8S_URL}`);
    assert.match(res.body, /^sanboot --no-describe --drive 0x80 \|\| goto _exit$/m);
    assert.doesNotMatch(res.body, /^kernel /m);
  });
  await t.step("the menu is still there when asked for", async () => {
    assert.match((await req(`/menu.ipxe?mac=${K8S_URL}`)).body, /^menu Astral Boot$/m);
  });
  await t.step("the machine itself cannot ask for a reinstall; the admin can", async () => {
    assert.equal((await req(`/api/machines/${K8S_URL}/reinstall`, "POST")).status, 401);
    assert.match((await req(`/boot.ipxe?mac=${K8S_URL}`)).body, /^sanboot /m);
    assert.equal(
      (await req(`/api/machines/${K8S_URL}/reinstall`, "POST", "10.0.0.11", ADMIN)).status,
      200,
    );
    assert.match((await req(`/boot.ipxe?mac=${K8S_URL}`)).body, /^kernel .*\/debian\/linux /m);
  });
  await t.step("the history lists every script and config served, newest first", async () => {
    const detail = JSON.parse(
      (await req(`/api/machines/${K8S_URL}`, "GET", "10.0.0.11", ADMIN)).body,
    );
    assert.deepEqual(
      detail.history.map((e: { kind: string; what: string }) => `${e.kind} ${e.what}`),
      [
        "script start debian (configured)",
        "reinstall reinstall requested",
        "local-boot local disk (installed debian)",
        "menu menu",
        "local-boot local disk (installed debian)",
        "installed install finished",
        "script start debian (configured)",
        "config debian/k8s-node preseed",
        "script start debian (asked for)",
        "script start debian (configured)",
      ],
    );
  });
  await t.step("the log says when an install finished and when the disk was booted", () => {
    const messages = logger.lines.filter((l) => l.subsystem === "install").map((l) => l.message);
    assert.deepEqual(messages, [
      "config served",
      "install finished: next boot from local disk",
      "installed: booting the local disk",
      "installed: booting the local disk",
      "reinstall requested",
    ]);
  });
});

Deno.test("the menu offers each class; choosing one makes it the machine's class", async (t) => {
  const { registry, req } = setup();
  const mac = STRANGER;
  const ip = "10.0.0.60";
  await t.step("an unknown machine gets the menu with OS and class items", async () => {
    const res = await req(`/boot.ipxe?mac=${mac}`, "GET", ip);
    for (const item of ["debian", "debian/minimal", "debian/desktop", "debian/k8s-node"]) {
      assert.match(res.body, new RegExp(`^item ${item} `, "m"));
    }
    assert.match(
      res.body,
      /^:debian\/minimal\nchain http:\/\/10\.0\.0\.1\/choose\/debian\/minimal\/52-54-00-00-0c-01 /m,
    );
  });
  await t.step("choosing debian/minimal starts the installer and records the class", async () => {
    const res = await req("/choose/debian/minimal/52-54-00-00-0c-01", "GET", ip);
    assert.match(res.body, /^kernel http:\/\/10\.0\.0\.1\/image\/debian\/linux /m);
    assert.equal(registry.get(mac)!.class, "minimal");
    assert.equal(registry.get(mac)!.state, "chosen");
  });
  await t.step("d-i fetching without ?mac= gets the preseed of that class", async () => {
    const res = await req("/config/debian/preseed", "GET", ip);
    assert.equal(res.status, 200);
    assert.match(res.body, /^tasksel tasksel\/first multiselect ssh-server$/m);
    assert.match(res.body, /^d-i netcfg\/get_hostname string node-525400000c01$/m);
  });
  await t.step("a class the OS does not have is a 404, and changes nothing", async () => {
    const res = await req("/choose/debian/nope/52-54-00-00-0c-01", "GET", ip);
    assert.equal(res.status, 404);
    assert.match(res.body, /no class nope for debian/);
    assert.equal(registry.get(mac)!.class, "minimal");
  });
  await t.step("installer errors reach the client with their status", async () => {
    const cases: [string, number, RegExp][] = [
      ["/config/debian/nothing?mac=52-54-00-00-0c-01", 404, /no template nothing for debian/],
      ["/config/nope/preseed?mac=52-54-00-00-0c-01", 404, /no OS nope in the tree/],
      ["/config/debian/preseed", 404, /no machine known at 10\.0\.0\.250/],
    ];
    for (const [path, status, message] of cases) {
      const res = await req(path, "GET", path.includes("mac=") ? ip : "10.0.0.250");
      assert.equal(res.status, status, path);
      assert.match(res.body, message, path);
    }
  });
});
