import assert from "node:assert/strict";
import type { Fields, Logger } from "../log.ts";
import type { TcpConnection } from "../net/tcp_connections.ts";
import type { HttpCutReason } from "../observe/watch.ts";
import { ConnectionWatchdog } from "./connection_watchdog.ts";

/** A watchdog over a fake kernel table, clock and shutdown. */
function rig(limits: { idleTimeoutMs?: number; maxConnections?: number; maxPerClient?: number }) {
  const state = {
    now: 0,
    conns: [] as TcpConnection[],
    shut: [] as number[],
    cuts: [] as HttpCutReason[],
    open: [] as number[],
    logs: [] as { level: string; message: string; fields?: Fields }[],
    listFails: null as Error | null,
  };
  const log = (level: string) => (_: string, message: string, fields?: Fields) =>
    state.logs.push({ level, message, fields });
  const logger: Logger = {
    debug: log("debug"),
    info: log("info"),
    warn: log("warn"),
    error: log("error"),
  };
  const dog = new ConnectionWatchdog({
    port: 80,
    address: "0.0.0.0",
    idleTimeoutMs: limits.idleTimeoutMs ?? 1000,
    maxConnections: limits.maxConnections ?? 100,
    maxPerClient: limits.maxPerClient ?? 100,
    warnEveryMs: 10_000,
    logger,
    onCut: (r) => state.cuts.push(r),
    onConnections: (n) => state.open.push(n),
    now: () => state.now,
    list: () => {
      if (state.listFails) throw state.listFails;
      return state.conns;
    },
    shutdown: (inodes) => {
      state.shut.push(...inodes);
      // The kernel drops them from its table once Deno closes them.
      return new Set(inodes);
    },
  });
  const connect = (inode: number, address: string, port: number) =>
    state.conns.push({
      inode,
      state: "established",
      local: { address: "10.0.0.1", port: 80 },
      remote: { address, port },
      sendQueue: 0,
    });
  const queue = (inode: number, bytes: number) =>
    state.conns = state.conns.map((c) => c.inode === inode ? { ...c, sendQueue: bytes } : c);
  const drop = (inode: number) => state.conns = state.conns.filter((c) => c.inode !== inode);
  return { dog, state, connect, drop, queue };
}

Deno.test("ConnectionWatchdog", async (t) => {
  await t.step(
    "idle counts from first sight, or from the first look after a response ended",
    () => {
      const { dog, state, connect } = rig({});
      connect(1, "10.0.0.5", 4000);
      connect(2, "10.0.0.5", 4001);
      dog.tick();
      state.now = 500;
      const end = dog.begin({ hostname: "10.0.0.5", port: 4001 });
      state.now = 900;
      end();
      end(); // twice is once
      state.now = 1000;
      dog.tick();
      assert.deepEqual(state.shut, []);
      state.now = 1001;
      dog.tick();
      assert.deepEqual(state.shut, [1]);
      state.now = 2000;
      dog.tick();
      assert.deepEqual(state.shut, [1]);
      state.now = 2001;
      dog.tick();
      assert.deepEqual(state.shut, [1, 2]);
      assert.deepEqual(state.cuts, ["idle", "idle"]);
      assert.deepEqual(state.open, [2, 2, 1, 1, 0]);
      assert.deepEqual(state.logs.map((l) => `${l.level} ${l.message}`), [
        "debug idle connections shut down",
        "debug idle connections shut down",
      ]);
    },
  );

  await t.step("a request in flight keeps its connection; the address matches mapped IPv4", () => {
    const { dog, state, connect } = rig({});
    connect(1, "10.0.0.5", 4000);
    dog.tick();
    const end = dog.begin({ hostname: "::ffff:10.0.0.5", port: 4000 });
    state.now = 60_000;
    dog.tick();
    assert.deepEqual(state.shut, []);
    end();
    state.now = 61_000;
    dog.tick();
    state.now = 62_000;
    dog.tick();
    assert.deepEqual(state.shut, []);
    state.now = 62_001;
    dog.tick();
    assert.deepEqual(state.shut, [1]);
  });

  await t.step("two clients on the same port are two connections", () => {
    const { dog, state, connect } = rig({});
    connect(1, "10.0.0.5", 4000);
    connect(2, "10.0.0.6", 4000);
    dog.tick();
    dog.begin({ hostname: "10.0.0.6", port: 4000 });
    state.now = 5000;
    dog.tick();
    assert.deepEqual(state.shut, [1]);
  });

  await t.step("bytes still queued for the client keep it busy after the response is done", () => {
    const { dog, state, connect, queue } = rig({});
    connect(1, "10.0.0.5", 4000);
    dog.begin({ hostname: "10.0.0.5", port: 4000 })();
    queue(1, 3_800_000);
    for (state.now = 0; state.now <= 5000; state.now += 1000) dog.tick();
    assert.deepEqual(state.shut, []);
    queue(1, 0);
    state.now = 6000;
    dog.tick();
    assert.deepEqual(state.shut, []);
    state.now = 6001;
    dog.tick();
    assert.deepEqual(state.shut, [1]);
  });

  await t.step("a connection cut is not cut again while the kernel still lists it", () => {
    const { dog, state, connect, drop } = rig({});
    connect(1, "10.0.0.5", 4000);
    dog.tick();
    state.now = 2000;
    dog.tick();
    dog.tick();
    assert.deepEqual(state.shut, [1]);
    drop(1);
    // The same client port again: a new connection, new inode, its own clock.
    connect(7, "10.0.0.5", 4000);
    dog.tick();
    state.now = 2500;
    dog.tick();
    assert.deepEqual(state.shut, [1]);
  });

  await t.step("caps cut idle ones and warn once per interval with the counts", () => {
    const { dog, state, connect } = rig({ maxConnections: 3, maxPerClient: 2 });
    for (let i = 1; i <= 4; i++) connect(i, "10.0.0.66", 5000 + i);
    connect(10, "10.0.0.7", 6000);
    connect(11, "10.0.0.8", 6000);
    dog.tick();
    // The attacker's four: two over its cap; then five minus two is still over three.
    assert.deepEqual(state.shut, [1, 2, 3]);
    assert.deepEqual(state.cuts, ["max_per_client", "max_per_client", "max_connections"]);
    const warns = () => state.logs.filter((l) => l.level === "warn");
    assert.equal(warns().length, 1);
    assert.equal(warns()[0]!.fields!.max_per_client, 2);
    assert.equal(warns()[0]!.fields!.max_connections, 1);
    assert.equal(warns()[0]!.fields!.clients, "10.0.0.66 (3)");
    for (let i = 20; i < 30; i++) connect(i, "10.0.0.9", i);
    state.now = 100;
    dog.tick();
    assert.equal(warns().length, 1, "within the interval: counted, not logged");
    state.now = 10_100;
    dog.tick();
    assert.equal(warns().length, 2);
    assert.equal(warns()[1]!.fields!.max_per_client, 8);
  });

  await t.step("a table it cannot read: warned about once per interval, tried again", () => {
    const { dog, state, connect } = rig({});
    connect(1, "10.0.0.5", 4000);
    state.listFails = new Error("EMFILE");
    dog.tick();
    state.now = 5000;
    dog.tick();
    assert.deepEqual(state.logs.map((l) => l.message), ["cannot list connections"]);
    state.listFails = null;
    state.now = 6000;
    dog.tick();
    state.now = 7001;
    dog.tick();
    assert.deepEqual(state.shut, [1], "seen again, and cut once idle");
    state.listFails = new Error("EMFILE");
    state.now = 10_000;
    dog.tick();
    assert.equal(state.logs.filter((l) => l.message === "cannot list connections").length, 2);
  });

  await t.step("without the FFI permission it stops for good, saying so once", () => {
    const { dog, state } = rig({});
    state.listFails = new Deno.errors.NotCapable("Requires ffi access");
    dog.start();
    dog.tick();
    state.listFails = null;
    dog.tick();
    assert.deepEqual(state.logs.map((l) => l.message), [
      "connection watchdog off: cannot list connections",
    ]);
    assert.deepEqual(state.open, []);
    dog.stop();
  });
});
