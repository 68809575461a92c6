import assert from "node:assert/strict";
import { openDatabase } from "./db.ts";
import { MachineStore } from "./machines.ts";
import {
  canonicalMac,
  defaultHostname,
  MachineError,
  MachineRegistry,
} from "./machine_registry.ts";

function clock(start = 1_700_000_000_000) {
  let t = start;
  return { now: () => t, tick: (ms: number) => t += ms };
}

const A = "52:54:00:00:00:0a";
const B = "52:54:00:00:00:0b";
const C = "52:54:00:00:00:0c";

function registry(c = clock()) {
  const db = openDatabase(":memory:");
  return new MachineRegistry(db, {
    now: c.now,
    machines: [
      {
        mac: A,
        hostname: "etcd-1",
        ip: "10.0.0.11",
        os: "debian",
        class: "k8s-node",
        vars: { a: 1 },
      },
      { mac: "52-54-00-00-00-0B", hostname: "etcd-2", os: "debian", class: "k8s-node", vars: {} },
    ],
  });
}

Deno.test("machines come from the config, the wire, or both", async (t) => {
  const c = clock();
  const reg = registry(c);
  await t.step("a configured machine that never booted is listed with its config", () => {
    const m = reg.get(A)!;
    assert.deepEqual(m, {
      mac: A,
      hostname: "etcd-1",
      ip: "10.0.0.11",
      os: "debian",
      class: "k8s-node",
      state: "chosen",
      vars: { a: 1 },
      configured: true,
      first_seen: null,
      last_seen: null,
      installed_at: null,
    });
  });
  await t.step("an unknown machine is null until it makes contact", () => {
    assert.equal(reg.get(C), null);
    c.tick(5);
    reg.seen(C, "10.0.0.99");
    const m = reg.get(C)!;
    assert.equal(m.state, "new");
    assert.equal(m.hostname, "node-52540000000c");
    assert.equal(m.ip, "10.0.0.99");
    assert.equal(m.configured, false);
    assert.equal(m.first_seen, 1_700_000_000_005);
  });
  await t.step("the config's address wins over the one the machine asked from", () => {
    reg.seen(A, "10.0.0.150");
    assert.equal(reg.get(A)!.ip, "10.0.0.11");
    reg.seen(B, "10.0.0.151");
    assert.equal(reg.get(B)!.ip, "10.0.0.151");
  });
  await t.step("list is sorted by host name and holds each MAC once", () => {
    assert.deepEqual(reg.list().map((m) => m.hostname), ["etcd-1", "etcd-2", "node-52540000000c"]);
  });
  await t.step("any MAC spelling finds the machine; nonsense is refused", () => {
    assert.equal(reg.get("52-54-00-00-00-0A")!.hostname, "etcd-1");
    assert.equal(reg.get("52540000000a")!.hostname, "etcd-1");
    for (const bad of ["", "52:54:00", "xx:54:00:00:00:0a"]) {
      assert.throws(() => reg.get(bad), MachineError);
      assert.throws(() => reg.installed(bad), MachineError);
    }
  });
});

Deno.test("install state moves new → chosen → installing → installed → chosen", async (t) => {
  const c = clock();
  const reg = registry(c);
  const steps: [string, () => void, string, string | null][] = [
    ["first contact", () => reg.seen(C, "10.0.0.50"), "new", null],
    ["menu choice", () => reg.choose(C, "debian", "minimal", "10.0.0.50"), "chosen", "minimal"],
    ["preseed served", () => reg.installing(C, "debian/minimal preseed"), "installing", "minimal"],
    ["callback", () => reg.installed(C, "10.0.0.50"), "installed", "minimal"],
    [
      "config fetched again",
      () => reg.installing(C, "debian/minimal preseed"),
      "installed",
      "minimal",
    ],
    ["reinstall", () => reg.reinstall(C), "chosen", "minimal"],
  ];
  for (const [name, act, state, cls] of steps) {
    await t.step(`${name} → ${state}`, () => {
      c.tick(1000);
      act();
      const m = reg.get(C)!;
      assert.equal(m.state, state);
      assert.equal(m.os, cls ? "debian" : null);
      assert.equal(m.class, cls);
    });
  }
  await t.step("installed_at keeps the last callback time", () => {
    assert.equal(reg.get(C)!.installed_at, 1_700_000_004_000);
  });
  await t.step("the history says what happened, newest first", () => {
    assert.deepEqual(reg.history(C).map((e) => [e.kind, e.what, e.at - 1_700_000_000_000]), [
      ["reinstall", "reinstall requested", 6000],
      ["config", "debian/minimal preseed", 5000],
      ["installed", "install finished", 4000],
      ["config", "debian/minimal preseed", 3000],
      ["script", "chose debian/minimal", 2000],
    ]);
  });
  await t.step("reinstall of an unknown machine is null and records nothing", () => {
    assert.equal(reg.reinstall("52:54:00:99:99:99"), null);
    assert.deepEqual(reg.history("52:54:00:99:99:99"), []);
  });
  await t.step("reinstall of a configured machine that never booted works", () => {
    assert.equal(reg.reinstall(A)!.state, "chosen");
    assert.equal(reg.history(A)[0]!.kind, "reinstall");
  });
});

Deno.test("a menu choice does not override the config, and its class stays with its OS", async (t) => {
  const reg = registry();
  await t.step("config os and class win over a sticky choice", () => {
    reg.choose(A, "tiny", "other");
    assert.equal(reg.get(A)!.os, "debian");
    assert.equal(reg.get(A)!.class, "k8s-node");
  });
  await t.step("a chosen class is dropped when the config pins another OS", () => {
    const db = openDatabase(":memory:");
    const r = new MachineRegistry(db, { machines: [{ mac: C, os: "debian", vars: {} }] });
    r.choose(C, "tiny", "big");
    assert.equal(r.get(C)!.os, "debian");
    assert.equal(r.get(C)!.class, null);
  });
  await t.step("the sticky store shared with the HTTP side sees the same rows", () => {
    const db = openDatabase(":memory:");
    const store = new MachineStore(db);
    const r = new MachineRegistry(db, { store });
    store.setChoice(C, "tiny", null);
    assert.equal(r.get(C)!.state, "chosen");
    assert.equal(r.store, store);
  });
});

Deno.test("cluster: every machine of the same OS and class", async (t) => {
  const reg = registry();
  reg.choose(C, "debian", "minimal");
  const cases: [string, string | null, string[]][] = [
    ["debian", "k8s-node", ["etcd-1", "etcd-2"]],
    ["debian", "minimal", ["node-52540000000c"]],
    ["debian", null, []],
    ["tiny", null, []],
  ];
  for (const [os, cls, hosts] of cases) {
    await t.step(`${os}/${cls}`, () => {
      assert.deepEqual(reg.cluster(os, cls).map((m) => m.hostname), hosts);
    });
  }
});

Deno.test("history is bounded per machine", () => {
  const c = clock();
  const reg = new MachineRegistry(openDatabase(":memory:"), { now: c.now, historyLimit: 3 });
  reg.seen(C);
  for (let i = 0; i < 10; i++) {
    c.tick(1);
    reg.record(C, "script", `boot ${i}`);
  }
  reg.record(B, "script", "other machine");
  assert.deepEqual(reg.history(C).map((e) => e.what), ["boot 9", "boot 8", "boot 7"]);
  assert.deepEqual(reg.history(B).map((e) => e.what), ["other machine"]);
});

Deno.test("the registry survives a reopen of the same database file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "abi-reg-" });
  try {
    const db1 = openDatabase(dir);
    new MachineRegistry(db1).installed(C, "10.0.0.7");
    db1.close();
    const db2 = openDatabase(dir);
    const m = new MachineRegistry(db2).get(C)!;
    db2.close();
    assert.equal(m.state, "installed");
    assert.equal(m.ip, "10.0.0.7");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("helpers: canonicalMac and defaultHostname", () => {
  assert.equal(canonicalMac("52-54-00-AB-CD-EF"), "52:54:00:ab:cd:ef");
  assert.equal(defaultHostname("52:54:00:ab:cd:ef"), "node-525400abcdef");
  assert.throws(() => canonicalMac("52:54"), /not a MAC address: "52:54"/);
});
