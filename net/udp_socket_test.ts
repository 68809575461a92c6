import assert from "node:assert/strict";
import { Netns, vethPair } from "../lab/netns.ts";
import { jsonLines, spawnDeno } from "../tests/dhcp_harness.ts";
import { YIELD_EVERY } from "./epoll.ts";
import { interfaceInfo, type InterfaceSocketOptions, InterfaceUdpSocket } from "./udp_socket.ts";

const TOOL = "tests/dhcp_udp_tool.ts";

/** A socket on an ephemeral port of loopback: nothing it sends leaves the host's loopback. */
function loopback(options: Partial<InterfaceSocketOptions> = {}): InterfaceUdpSocket {
  return InterfaceUdpSocket.open({ interface: "lo", address: "127.0.0.1", port: 0, ...options });
}

Deno.test("interfaceInfo names a missing interface", () => {
  // Only a lookup: nothing is opened, so this is safe in the host namespace.
  assert.throws(() => interfaceInfo("abdnope0"), /Interface "abdnope0" does not exist/);
});

Deno.test("InterfaceUdpSocket inside namespaces", async (t) => {
  await using srv = await Netns.create("abd");
  await using a = await Netns.create("abd");
  await using b = await Netns.create("abd");
  await vethPair(srv, "10.77.0.1/24", a, "10.77.0.2/24", { a: "eth0", b: "eth0" });
  await vethPair(srv, "10.77.1.1/24", b, "10.77.1.2/24", { a: "eth1", b: "eth0" });
  await srv.exec(["ip", "link", "add", "eth2", "type", "veth", "peer", "name", "eth3"]);
  await srv.exec(["ip", "link", "set", "eth2", "up"]);

  await t.step("refuses interfaces that are missing or have no IPv4", async (t) => {
    const cases = [
      { iface: "nope9", error: /Interface "nope9" does not exist/ },
      { iface: "eth2", error: /Interface "eth2" has no IPv4 address/ },
    ];
    for (const c of cases) {
      await t.step(c.iface, async () => {
        const f = spawnDeno(srv, TOOL, ["open", c.iface]);
        const status = await f.finished(60_000);
        assert.equal(status.code, 2, f.output);
        const [res] = jsonLines(f);
        assert.match(String(res?.error), c.error);
      });
    }
  });

  await t.step("opens on an interface with IPv4 and reports its address", async () => {
    const f = spawnDeno(srv, TOOL, ["open", "eth0"]);
    const status = await f.finished(60_000);
    assert.equal(status.code, 0, f.output);
    const [res] = jsonLines(f);
    assert.equal(res?.address, "10.77.0.1");
  });

  await t.step("hears broadcasts only from its interface and replies only there", async () => {
    const eth0Index = Number(
      (await srv.exec(["cat", "/sys/class/net/eth0/ifindex"])).stdout.trim(),
    );
    const listener = spawnDeno(srv, TOOL, ["listen", "eth0", "6767", "20000"]);
    try {
      await listener.waitFor((l) => l.includes('"ready"'), 60_000, "listener ready");
      // Both senders stay bound to 6768 for 4 s so they see any broadcast echo.
      const fromA = spawnDeno(a, TOOL, [
        "send",
        "eth0",
        "6768",
        "255.255.255.255",
        "6767",
        "A",
        "4000",
      ]);
      const fromB = spawnDeno(b, TOOL, [
        "send",
        "eth0",
        "6768",
        "255.255.255.255",
        "6767",
        "B",
        "4000",
      ]);
      const [sa, sb] = await Promise.all([fromA.finished(60_000), fromB.finished(60_000)]);
      assert.equal(sa.code, 0, fromA.output);
      assert.equal(sb.code, 0, fromB.output);
      await listener.stop();
      const heard = jsonLines(listener).filter((l) => "text" in l);
      assert.deepEqual(heard.map((h) => h.text), ["A"], listener.output);
      assert.equal(heard[0]?.ifindex, eth0Index);
      assert.equal(heard[0]?.to, "255.255.255.255");
      assert.deepEqual(heard[0]?.from, { address: "10.77.0.2", port: 6768 });
      assert.deepEqual(jsonLines(fromA).map((l) => l.text), ["echo:A"], fromA.output);
      assert.deepEqual(jsonLines(fromB), [], fromB.output);
    } finally {
      await listener.stop();
    }
  });

  await t.step("a unicast reply reaches the sender", async () => {
    const listener = spawnDeno(srv, TOOL, ["listen", "eth0", "6767", "20000", "unicast"]);
    try {
      await listener.waitFor((l) => l.includes('"ready"'), 60_000, "listener ready");
      const fromA = spawnDeno(a, TOOL, ["send", "eth0", "6768", "10.77.0.1", "6767", "U", "3000"]);
      assert.equal((await fromA.finished(60_000)).code, 0, fromA.output);
      assert.deepEqual(jsonLines(fromA).map((l) => l.text), ["echo:U"], fromA.output);
      await listener.stop();
      const heard = jsonLines(listener).filter((l) => "text" in l);
      assert.equal(heard[0]?.to, "10.77.0.1");
    } finally {
      await listener.stop();
    }
  });
});

Deno.test({
  // Loopback only: an ephemeral port on lo, nothing leaves the host's loopback.
  name: "ephemeral ports on loopback: the kernel's port number, cut datagrams flagged",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const a = loopback({ receiveSize: 16 }), b = loopback();
    try {
      assert.ok(a.port > 0 && b.port > 0 && a.port !== b.port, `${a.port} ${b.port}`);
      b.send(new Uint8Array(10).fill(1), "127.0.0.1", a.port);
      b.send(new Uint8Array(100).fill(7), "127.0.0.1", a.port);
      const whole = await a.receive();
      assert.deepEqual([whole?.data.length, whole?.truncated, whole?.from.port], [
        10,
        false,
        b.port,
      ]);
      const cut = await a.receive();
      assert.deepEqual([cut?.data.length, cut?.truncated], [16, true]);
    } finally {
      await a.close();
      await b.close();
    }
  },
});

Deno.test({
  // Loopback only: ephemeral ports on lo, nothing leaves the host's loopback.
  name: "receiveBuffer: a burst the kernel's default buffer drops is kept whole",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const rmemMax = Number(Deno.readTextFileSync("/proc/sys/net/core/rmem_max"));
    const rmemDefault = Number(Deno.readTextFileSync("/proc/sys/net/core/rmem_default"));
    const plain = loopback(), big = loopback({ receiveBuffer: 1 << 20 });
    const beyond = loopback({ receiveBuffer: rmemMax * 2 }), sender = loopback();
    /** Sends `n` DHCP-sized datagrams to `to` unread, then counts what it can read. */
    const burst = async (to: InterfaceUdpSocket, n: number) => {
      for (let i = 0; i < n; i++) {
        sender.send(new Uint8Array(300).fill(i & 255), "127.0.0.1", to.port);
      }
      let got = 0;
      for (;;) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<null>((r) => timer = setTimeout(() => r(null), 200));
        const d = await Promise.race([to.receive(), late]);
        clearTimeout(timer);
        if (!d) return got;
        got++;
      }
    };
    try {
      assert.equal(plain.receiveBuffer, rmemDefault);
      // The kernel reports twice what it granted (its bookkeeping included).
      assert.equal(big.receiveBuffer, 2 << 20);
      // Tests run as root: SO_RCVBUFFORCE goes past net.core.rmem_max.
      assert.equal(beyond.receiveBuffer, rmemMax * 4);
      const n = Math.ceil(rmemDefault / 300) + 100;
      const kept = await burst(plain, n);
      assert.ok(kept < n, `the default buffer kept all ${n}: the burst proves nothing`);
      assert.equal(await burst(big, n), n);
    } finally {
      for (const s of [plain, big, beyond, sender]) await s.close();
    }
  },
});

Deno.test({
  // Loopback only: ephemeral ports on lo, nothing leaves the host's loopback.
  name: "a socket with a backlog lets timers run between its reads (YIELD_EVERY datagrams)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const readers = [
      // One datagram a read: the timer runs at the YIELD_EVERY-th.
      { name: "receive", max: 1, read: async (s: InterfaceUdpSocket) => [(await s.receive())!] },
      // Up to 16 a read: counted in reads, the timer would wait for the whole backlog.
      {
        name: "receiveMany",
        max: 16,
        read: async (s: InterfaceUdpSocket) => (await s.receiveMany(16))!,
      },
    ];
    for (const reader of readers) {
      await t.step(reader.name, async () => {
        const open = () => loopback({ receiveBuffer: 1 << 20 });
        const to = open(), sender = open();
        try {
          const n = YIELD_EVERY * 8;
          for (let i = 0; i < n; i++) sender.send(new Uint8Array([i & 255]), "127.0.0.1", to.port);
          let read = 0;
          let timerAt = -1;
          setTimeout(() => timerAt = read, 0);
          // Due before the first read: it runs at the first wait the reader makes.
          const due = performance.now() + 5;
          while (performance.now() < due) { /* the timer's delay passes */ }
          const seen: number[] = [];
          while (read < n) {
            for (const d of await reader.read(to)) seen.push(d.data[0]!);
            read = seen.length;
          }
          // Without the waits the timer runs after the whole backlog (timerAt = n).
          assert.ok(
            timerAt >= YIELD_EVERY && timerAt < YIELD_EVERY + reader.max,
            `timer ran after ${timerAt} of ${n} datagrams`,
          );
          assert.deepEqual(seen, Array.from({ length: n }, (_, i) => i & 255));
        } finally {
          await to.close();
          await sender.close();
        }
      });
    }
  },
});

Deno.test({
  // Loopback only: ephemeral ports on lo, nothing leaves the host's loopback.
  name: "receiveMany: what is queued in one read, in order, at most max; cut ones flagged",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const a = loopback({ receiveSize: 16 }), b = loopback();
    const text = (d: { data: Uint8Array }) => new TextDecoder().decode(d.data);
    try {
      for (let i = 0; i < 20; i++) b.send(new TextEncoder().encode(`#${i}`), "127.0.0.1", a.port);
      b.send(new Uint8Array(100).fill(7), "127.0.0.1", a.port);
      const first = await a.receiveMany(16);
      assert.deepEqual(first!.map(text), Array.from({ length: 16 }, (_, i) => `#${i}`));
      assert.ok(first!.every((d) => d.from.port === b.port && !d.truncated));
      const rest = await a.receiveMany(16);
      assert.deepEqual(rest!.slice(0, 4).map(text), ["#16", "#17", "#18", "#19"]);
      assert.deepEqual([rest!.length, rest![4]!.data.length, rest![4]!.truncated], [5, 16, true]);
      // The copies outlive the next read into the same buffers.
      b.send(new TextEncoder().encode("later"), "127.0.0.1", a.port);
      assert.deepEqual((await a.receiveMany(16))!.map(text), ["later"]);
      assert.equal(text(first![0]!), "#0");
      await assert.rejects(a.receiveMany(0), /receive batch of 0 slots: 1 to 1024/);
      // A read parked on an empty socket ends with null when it closes.
      const pending = a.receiveMany(16);
      await a.close();
      assert.equal(await pending, null);
    } finally {
      await a.close();
      await b.close();
    }
  },
});

Deno.test({
  // Each nonblocking FFI call holds one of Deno's 32 blocking threads: sockets must share one.
  name: "300 sockets waiting at once each get their datagram (one shared epoll wait)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const sockets = Array.from(
      { length: 300 },
      () => loopback(),
    );
    const sender = loopback();
    try {
      assert.equal(new Set(sockets.map((s) => s.port)).size, 300, "every port its own");
      const waiting = sockets.map((s) => s.receive());
      // Every receive is parked before anything arrives.
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      sockets.forEach((s, i) =>
        sender.send(new TextEncoder().encode(`#${i}`), "127.0.0.1", s.port)
      );
      const got = await Promise.all(waiting);
      const ms = performance.now() - t0;
      got.forEach((d, i) => assert.equal(new TextDecoder().decode(d!.data), `#${i}`));
      assert.ok(ms < 1000, `${ms} ms`);
      // A closed socket's pending receive ends with null.
      const pending = sockets[0]!.receive();
      await sockets[0]!.close();
      assert.equal(await pending, null);
    } finally {
      for (const s of sockets) await s.close();
      await sender.close();
    }
  },
});

Deno.test({
  // Loopback only: ephemeral ports on lo.
  name: "loopback: batches, spinning and sleeping readers get every datagram in order",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const open = () => loopback();
    const a = open(), b = open(), c = open();
    const text = (d: { data: Uint8Array } | null) => new TextDecoder().decode(d?.data);
    const bytes = (s: string) => new TextEncoder().encode(s);
    try {
      await t.step("trySendMany: one call, in order, views of one buffer", async () => {
        const ring = bytes("0123456789");
        const packets = [ring.subarray(0, 3), ring.subarray(3, 4), ring.subarray(4, 10)];
        assert.equal(b.trySendMany(packets, "127.0.0.1", a.port), 3);
        assert.deepEqual([text(await a.receive()), text(await a.receive())], ["012", "3"]);
        assert.equal(text(await a.receive()), "456789");
        assert.equal(b.trySendMany([], "127.0.0.1", a.port), 0);
      });
      await t.step("runs of one size go segmented and arrive as separate datagrams", async (t) => {
        // More than 64 segments, then more than 65 000 bytes: the batch is cut into several
        // segmented messages. Small enough for the receiver's buffer (nothing dropped).
        const cases = [
          {
            name: "70 × 200 bytes, a short one, two more",
            sizes: [...Array(70).fill(200), 10, 200, 3],
          },
          { name: "40 × 1800 bytes", sizes: Array(40).fill(1800) },
        ];
        for (const c of cases) {
          await t.step(c.name, async () => {
            const ring = new Uint8Array(c.sizes.reduce((x, y) => x + y, 0));
            let at = 0;
            const packets = c.sizes.map((n, i) => {
              const p = ring.subarray(at, at += n);
              p.fill(i & 0xff);
              return p;
            });
            assert.equal(b.trySendMany(packets, "127.0.0.1", a.port), packets.length);
            for (const [i, n] of c.sizes.entries()) {
              const d = await a.receive();
              assert.deepEqual([d?.data.length, d?.data[0], d?.data[n - 1]], [
                n,
                i & 0xff,
                i & 0xff,
              ]);
            }
          });
        }
      });
      await t.step("a destination refused either way leaves segmentation on", async () => {
        assert.equal(b.segmenting, true, "loopback segments");
        // Port 0: EINVAL with UDP_SEGMENT and without; the socket must not blame segmentation.
        assert.throws(
          () => b.trySendMany([bytes("xx"), bytes("yy")], "127.0.0.1", 0),
          /sendmmsg 127\.0\.0\.1:0 .*Invalid argument/,
        );
        assert.equal(b.segmenting, true);
        assert.equal(b.trySendMany([bytes("s1"), bytes("s2")], "127.0.0.1", a.port), 2);
        assert.deepEqual([text(await a.receive()), text(await a.receive())], ["s1", "s2"]);
      });
      await t.step("the destination may change between sends", async () => {
        b.send(bytes("to-a"), "127.0.0.1", a.port);
        assert.equal(b.trySendMany([bytes("to-c")], "127.0.0.1", c.port), 1);
        b.send(bytes("to-a again"), "127.0.0.1", a.port);
        assert.deepEqual([text(await a.receive()), text(await a.receive())], [
          "to-a",
          "to-a again",
        ]);
        assert.equal(text(await c.receive()), "to-c");
      });
      await t.step(
        "a reader that sleeps, wakes and reads on awake is woken every time",
        async () => {
          for (let i = 0; i < 200; i++) {
            const pending = a.receive();
            // Every third round the datagram waits in the queue before the reader asks.
            if (i % 3 === 0) await new Promise((r) => setTimeout(r, 0));
            b.send(bytes(`#${i}`), "127.0.0.1", a.port);
            if (i % 5 === 0) b.send(bytes(`extra ${i}`), "127.0.0.1", a.port);
            assert.equal(text(await pending), `#${i}`);
            if (i % 5 === 0) assert.equal(text(await a.receive()), `extra ${i}`);
          }
        },
      );
      await t.step("a spin that finds nothing sleeps, and the next datagram wakes it", async () => {
        const t0 = performance.now();
        const pending = a.receive({ spinUs: 2000 });
        const spun = performance.now() - t0;
        assert.ok(spun >= 2, `spun ${spun} ms`);
        setTimeout(() => b.send(bytes("late"), "127.0.0.1", a.port), 20);
        assert.equal(text(await pending), "late");
      });
      await t.step("a spin takes a datagram already queued at once", async () => {
        b.send(bytes("queued"), "127.0.0.1", a.port);
        const t0 = performance.now();
        assert.equal(text(await a.receive({ spinUs: 500_000 })), "queued");
        assert.ok(performance.now() - t0 < 400, "did not spin out");
      });
    } finally {
      await a.close();
      await b.close();
      await c.close();
    }
  },
});
