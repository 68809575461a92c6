/**
 * The HTTP server's connection watchdog against real sockets on 127.0.0.1: half-sent request
 * heads, idle keep-alives and connection floods are shut down, while real requests (a slow
 * answer, a slowly read download, a keep-alive client) go on. Loopback only, random ports.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import type { Env } from "../http/context.ts";
import { startHttpServer } from "../http/server.ts";
import { memoryLogger } from "../log.ts";
import { listTcpConnections, openDescriptors, socketDescriptors } from "../net/tcp_connections.ts";
import type { HttpCutReason } from "../observe/watch.ts";
import { LineFollower, repoPath } from "./dhcp_harness.ts";
import { Netns } from "./netns.ts";

const BIG = 32 * 1024 * 1024;
const enc = new TextEncoder();
const dec = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function testServerApp(): Hono<Env> {
  const app = new Hono<Env>();
  const big = new Uint8Array(BIG);
  app.get("/small", (c) => c.text("x".repeat(1024)));
  app.get("/slow", async (c) => {
    await sleep(3000);
    return c.text("finally");
  });
  app.get("/big", () => new Response(big));
  return app;
}

async function startGuarded(o: {
  idleTimeoutMs: number;
  maxConnections: number;
  maxPerClient: number;
}) {
  const cuts: HttpCutReason[] = [];
  const server = await startHttpServer({
    app: testServerApp(),
    address: "127.0.0.1",
    port: 0,
    logger: memoryLogger(),
    watchIntervalMs: 200,
    onCut: (r) => cuts.push(r),
    ...o,
  });
  return { server, cuts };
}

const connect = (port: number) => Deno.connect({ hostname: "127.0.0.1", port });

/** When the server ends the connection (end of file or reset), whatever it sent before. */
async function endOf(conn: Deno.Conn): Promise<number> {
  const buf = new Uint8Array(65536);
  try {
    while ((await conn.read(buf)) !== null) { /* discard */ }
  } catch { /* reset: ended as well */ }
  return performance.now();
}

/** Reads one response (head and Content-Length body) off a keep-alive connection. */
async function readResponse(conn: Deno.Conn): Promise<{ status: number; body: string }> {
  let text = "";
  const buf = new Uint8Array(65536);
  for (;;) {
    const head = text.indexOf("\r\n\r\n");
    if (head >= 0) {
      const length = Number(/content-length: (\d+)/i.exec(text.slice(0, head))?.[1] ?? 0);
      if (text.length >= head + 4 + length) {
        return {
          status: Number(text.split(" ")[1]),
          body: text.slice(head + 4, head + 4 + length),
        };
      }
    }
    const n = await conn.read(buf);
    if (n === null) throw new Error(`connection ended after ${JSON.stringify(text)}`);
    text += dec.decode(buf.subarray(0, n));
  }
}

/**
 * One request on a fresh connection; the body is counted, read slowly for `slowMs` first
 * (16 KiB every 50 ms), then at full speed.
 */
async function request(
  port: number,
  path: string,
  slowMs = 0,
): Promise<{ status: number; bytes: number }> {
  const conn = await connect(port);
  try {
    await conn.write(enc.encode(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    const until = performance.now() + slowMs;
    let total = 0, head = "", headLength = -1;
    const buf = new Uint8Array(65536);
    for (;;) {
      const slow = performance.now() < until;
      const n = await conn.read(slow ? buf.subarray(0, 16384) : buf);
      if (n === null) break;
      if (headLength < 0) {
        head += dec.decode(buf.subarray(0, n));
        const end = head.indexOf("\r\n\r\n");
        if (end >= 0) headLength = end + 4;
      }
      total += n;
      if (slow) await sleep(50);
    }
    return { status: Number(head.split(" ")[1]), bytes: total - headLength };
  } finally {
    conn.close();
  }
}

/** The value, or the error it failed with: a failure shows in the assertion, not as stray. */
function settled<T>(p: Promise<T>): Promise<T | Error> {
  return p.catch((e: Error) => e);
}

/** Server-side sockets of `port` this process still holds, of those named. */
function stillHeld(inodes: number[]): number[] {
  const fds = socketDescriptors();
  return inodes.filter((i) => fds.has(i));
}

/** The value of `p`, or null when it takes longer than `ms`. */
async function within<T>(ms: number, p: Promise<T>): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<null>((r) => timer = setTimeout(() => r(null), ms))]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitFor(what: string, ms: number, ok: () => boolean): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(50);
  }
}

Deno.test("idle, half-sent, trickling and keep-alive connections are shut down; requests go on", async () => {
  const fdsBefore = openDescriptors().size;
  const { server, cuts } = await startGuarded({
    idleTimeoutMs: 1000,
    maxConnections: 10_000,
    maxPerClient: 10_000,
  });
  const port = server.port;
  const idle: Deno.Conn[] = [];
  try {
    // A keep-alive client that asks every 300 ms stays under the idle timeout throughout.
    const regular = await connect(port);
    idle.push(regular);
    const regularRun = settled((async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        await regular.write(enc.encode("GET /small HTTP/1.1\r\nHost: x\r\n\r\n"));
        statuses.push((await readResponse(regular)).status);
        await sleep(300);
      }
      return statuses;
    })());

    for (let i = 0; i < 300; i++) {
      const c = await connect(port);
      idle.push(c);
      await c.write(enc.encode("GET /small HTTP/1.1\r\nHost: x\r\n"));
    }
    for (let i = 0; i < 20; i++) {
      const c = await connect(port);
      idle.push(c);
      await c.write(enc.encode("GET /small HTTP/1.1\r\nHost: x\r\n\r\n"));
      assert.equal((await readResponse(c)).status, 200);
    }
    // A request head sent a byte every 100 ms is idle all the same: no request ever starts.
    const trickled: number[] = [];
    for (let i = 0; i < 5; i++) {
      const c = await connect(port);
      idle.push(c);
      await c.write(enc.encode("GET /small HTTP/1.1\r\nHost: x\r\n"));
      trickled.push(0);
      (async () => {
        try {
          for (;;) {
            await c.write(enc.encode("X"));
            trickled[i]!++;
            await sleep(100);
          }
        } catch { /* cut */ }
      })();
    }
    const t0 = performance.now();
    const ends = idle.slice(1).map(endOf);
    const slow = settled(request(port, "/slow"));
    // A body given whole: Deno calls it sent long before this client has read it.
    const download = settled(request(port, "/big", 3000));
    const others = settled((async () => {
      const got: number[] = [];
      while (performance.now() - t0 < 3000) {
        got.push((await request(port, "/small")).status);
        await sleep(100);
      }
      return got;
    })());
    await sleep(300);
    const serverSide = listTcpConnections(port, "127.0.0.1").map((c) => c.inode);
    assert.ok(serverSide.length >= 325, `${serverSide.length} connections listed`);

    const ended = await within(5000, Promise.all(ends));
    assert.ok(ended, "every idle connection ended within 5 s");
    const last = Math.max(...ended) - t0;
    assert.ok(last < 3000, `the last one ended after ${Math.round(last)} ms`);
    assert.ok(trickled.every((n) => n >= 5), `bytes trickled before the cut: ${trickled}`);
    assert.equal(cuts.filter((r) => r === "idle").length, 325);
    assert.ok(cuts.every((r) => r === "idle"));

    assert.deepEqual(await slow, { status: 200, bytes: 7 });
    assert.deepEqual(await download, { status: 200, bytes: BIG });
    const statuses = await others;
    assert.ok(Array.isArray(statuses), String(statuses));
    assert.ok(statuses.length >= 10 && statuses.every((s) => s === 200), String(statuses));
    assert.deepEqual(await regularRun, new Array(12).fill(200));

    // Released by the server itself while the clients still hold their ends: all but the
    // regular keep-alive client's.
    await waitFor("the server drops the sockets it shut down", 2000, () => {
      return stillHeld(serverSide).length === 1;
    });
  } finally {
    for (const c of idle) c.close();
    await server.close();
  }
  await waitFor("descriptors back to where they were", 2000, () => {
    return openDescriptors().size <= fdsBefore;
  });
});

Deno.test("over max_connections, idle ones go; busy ones and new requests stay", async () => {
  const { server, cuts } = await startGuarded({
    idleTimeoutMs: 60_000,
    maxConnections: 50,
    maxPerClient: 10_000,
  });
  const port = server.port;
  const conns: Deno.Conn[] = [];
  try {
    const slow = settled(request(port, "/slow"));
    await sleep(100);
    for (let i = 0; i < 200; i++) conns.push(await connect(port));
    let ended = 0;
    for (const c of conns) endOf(c).then(() => ended++);
    // 201 with the slow request, which is busy: 151 idle ones go, 50 stay.
    await waitFor("151 idle connections cut", 3000, () => ended >= 151);
    await sleep(500);
    assert.equal(ended, 151);
    assert.equal(listTcpConnections(port, "127.0.0.1").length, 50);
    assert.ok(cuts.every((r) => r === "max_connections"), cuts.join());
    assert.deepEqual(await request(port, "/small"), { status: 200, bytes: 1024 });
    assert.deepEqual(await slow, { status: 200, bytes: 7 });
  } finally {
    for (const c of conns) c.close();
    await server.close();
  }
});

Deno.test("over max_per_client, that client's idle ones go", async () => {
  const { server, cuts } = await startGuarded({
    idleTimeoutMs: 60_000,
    maxConnections: 10_000,
    maxPerClient: 10,
  });
  const port = server.port;
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 40; i++) conns.push(await connect(port));
    let ended = 0;
    for (const c of conns) endOf(c).then(() => ended++);
    await waitFor("30 connections cut", 3000, () => ended >= 30);
    await sleep(500);
    assert.equal(ended, 30);
    assert.equal(listTcpConnections(port, "127.0.0.1").length, 10);
    assert.deepEqual(cuts, new Array(30).fill("max_per_client"));
    assert.deepEqual(await request(port, "/small"), { status: 200, bytes: 1024 });
  } finally {
    for (const c of conns) c.close();
    await server.close();
  }
});

Deno.test("a flood that takes every descriptor: the server listens again once they are freed", async () => {
  // 256 descriptors: Deno.serve stops accepting for good at EMFILE (and would end the process).
  const server = new LineFollower(
    new Deno.Command("prlimit", {
      args: [
        "--nofile=256:256",
        Deno.execPath(),
        "run",
        "-A",
        "--unstable-net",
        repoPath("tests/http_guard_runner.ts"),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
  );
  const flood: Deno.Conn[] = [];
  try {
    const listening = (l: string) => l.includes('"msg":"listening"');
    const port = JSON.parse(await server.waitFor(listening, 20_000, "listening")).port as number;
    await sleep(500);
    for (let i = 0; i < 400; i++) {
      try {
        flood.push(await connect(port));
      } catch {
        break; // refused: the server stopped accepting
      }
    }
    await server.waitFor((l) => l.includes("server stopped accepting"), 5000, "EMFILE");
    // Idle for 1 s, then cut by the watchdog (whose table and descriptor list stay open).
    await server.waitFor((l) => l.includes('"msg":"idle connections shut down"'), 5000, "cuts");
    await waitFor("listening again", 5000, () => server.lines.filter(listening).length >= 2);
    // Until the cuts have freed enough, a new connection may stop it once more (and be reset).
    const deadline = performance.now() + 5000;
    let answer = await settled(request(port, "/small"));
    while (answer instanceof Error && performance.now() < deadline) {
      await sleep(200);
      answer = await settled(request(port, "/small"));
    }
    assert.deepEqual(answer, { status: 200, bytes: 1024 });
    assert.deepEqual(await request(port, "/small"), { status: 200, bytes: 1024 });
    assert.ok(flood.length > 150, `${flood.length} connections before the server stopped`);
  } finally {
    for (const c of flood) c.close();
    try {
      server.child.kill("SIGKILL");
    } catch { /* gone */ }
    await server.finished();
  }
});

Deno.test({
  name: 'dual stack ("::", in a namespace): IPv4 clients as ::ffff:… and IPv6 clients alike',
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // "::" takes every interface: only inside a namespace of its own, with nothing but lo.
    await using ns = await Netns.create("abg");
    await ns.exec(["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0"]);
    await ns.exec(["sysctl", "-qw", "net.ipv6.conf.lo.disable_ipv6=0"]);
    const server = new LineFollower(
      ns.spawn([Deno.execPath(), "run", "-A", repoPath("tests/http_guard_runner.ts"), "::"]),
    );
    try {
      const listening = await server.waitFor((l) => l.includes('"msg":"listening"'), 20_000);
      const port = JSON.parse(listening).port as number;
      // A half-sent request over each family: the server ends it (bash's /dev/tcp sees EOF).
      const half = (host: string) =>
        ns.exec([
          "timeout",
          "10",
          "bash",
          "-c",
          `exec 3<>/dev/tcp/${host}/${port}; printf 'GET /small HTTP/1.1\\r\\nHost: x\\r\\n' >&3; ` +
          `s=$SECONDS; cat <&3; echo "ended after $((SECONDS - s)) s"`,
        ], { check: false });
      // A request in flight for 3 s over each family: never cut.
      const slow = (url: string) =>
        ns.exec(["curl", "-sS", "--max-time", "10", url], { check: false });
      const [h4, h6, s4, s6] = await Promise.all([
        half("127.0.0.1"),
        half("::1"),
        slow(`http://127.0.0.1:${port}/slow`),
        slow(`http://[::1]:${port}/slow`),
      ]);
      for (const h of [h4, h6]) {
        assert.equal(h.code, 0, h.stderr);
        assert.match(h.stdout, /ended after [0-2] s/);
      }
      for (const s of [s4, s6]) assert.equal(s.stdout, "finally", s.stderr);
      const cut = server.lines.filter((l) => l.includes("idle connections shut down"))
        .reduce((n, l) => n + (JSON.parse(l).count as number), 0);
      assert.equal(cut, 2, server.output);
    } finally {
      try {
        server.child.kill("SIGKILL");
      } catch { /* gone */ }
      await server.finished();
    }
  },
});
