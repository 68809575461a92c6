import assert from "node:assert/strict";
import { MAX_BATCH } from "./send_batch.ts";
import { PACE_BURST, PACE_INTERVAL_MS, SendQueue } from "./send_queue.ts";
import { SendError } from "./errors.ts";
import { LINUX } from "./libc.ts";
import { InterfaceUdpSocket } from "./udp_socket.ts";

type Call = { packets: string[]; address: string; port: number };

/** A socket double: records each trySendMany and answers from `answers` (a count, or an Error). */
function recorder(answers: (number | Error)[] = []) {
  const calls: Call[] = [];
  const socket = {
    closed: false,
    trySendMany(packets: readonly Uint8Array[], address: string, port: number): number {
      calls.push({ packets: packets.map((p) => new TextDecoder().decode(p)), address, port });
      const a = answers.shift() ?? packets.length;
      if (a instanceof Error) throw a;
      return Math.min(a, packets.length);
    },
  };
  return { calls, socket: socket as unknown as InterfaceUdpSocket & { closed: boolean } };
}

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("SendQueue: one sendmmsg per run to one destination, at the end of the turn", async () => {
  const { calls, socket } = recorder();
  const failures: unknown[] = [];
  const q = new SendQueue(socket, (f) => failures.push(f));
  q.push(bytes("a1"), "10.0.0.2", 67);
  q.push(bytes("a2"), "10.0.0.2", 67);
  q.push(bytes("b1"), "255.255.255.255", 68);
  q.push(bytes("a3"), "10.0.0.2", 67);
  q.push(bytes("a4"), "10.0.0.2", 68);
  assert.equal(calls.length, 0, "nothing sent before the turn ends");
  await Promise.resolve();
  assert.deepEqual(calls, [
    { packets: ["a1", "a2"], address: "10.0.0.2", port: 67 },
    { packets: ["b1"], address: "255.255.255.255", port: 68 },
    { packets: ["a3"], address: "10.0.0.2", port: 67 },
    { packets: ["a4"], address: "10.0.0.2", port: 68 },
  ]);
  assert.deepEqual(failures, []);
  // A later push starts a new flush of its own.
  q.push(bytes("c1"), "10.0.0.3", 67);
  await Promise.resolve();
  assert.deepEqual(calls.at(-1), { packets: ["c1"], address: "10.0.0.3", port: 67 });
  assert.equal(calls.length, 5);
});

Deno.test("SendQueue: a datagram refused for itself is reported and the rest go; a full queue drops the rest", async () => {
  // 1st call takes 1 of 4, the 2nd refuses "x2" (the first it was given) as too long, the 3rd
  // takes 1, the 4th finds the send queue full.
  const tooLong = new SendError("sendmmsg: Message too long", LINUX.EMSGSIZE);
  const { calls, socket } = recorder([1, tooLong, 1, 0]);
  const failures: { count: number; error: Error; address: string; port: number }[] = [];
  const q = new SendQueue(socket, (f) => failures.push(f));
  for (const p of ["x1", "x2", "x3", "x4"]) q.push(bytes(p), "10.0.0.9", 68);
  await Promise.resolve();
  assert.deepEqual(calls.map((c) => c.packets), [
    ["x1", "x2", "x3", "x4"],
    ["x2", "x3", "x4"],
    ["x3", "x4"],
    ["x4"],
  ]);
  assert.deepEqual(failures.map((f) => [f.count, f.error.message, f.address, f.port]), [
    [1, "sendmmsg: Message too long", "10.0.0.9", 68],
    [1, "sendmmsg 10.0.0.9:68: send queue full", "10.0.0.9", 68],
  ]);
});

Deno.test("SendQueue: a refused destination is reported once for its whole run, not tried datagram by datagram", async () => {
  const unreachable = new SendError("sendmmsg: Network is unreachable", 101);
  // 5 go, then the route is gone: the other 25 are not offered again one by one (a later call
  // would succeed here, which is how the datagram-by-datagram retry of before showed).
  const { calls, socket } = recorder([5, unreachable]);
  const failures: { count: number; error: Error }[] = [];
  const q = new SendQueue(socket, (f) => failures.push(f));
  for (let i = 0; i < 30; i++) q.push(bytes(`u${i}`), "10.9.0.1", 68);
  q.push(bytes("b"), "255.255.255.255", 68);
  await Promise.resolve();
  assert.deepEqual(calls.map((c) => [c.address, c.packets.length]), [
    ["10.9.0.1", 30],
    ["10.9.0.1", 25],
    ["255.255.255.255", 1],
  ]);
  assert.deepEqual(failures.map((f) => [f.count, f.error.message]), [
    [25, "sendmmsg: Network is unreachable"],
  ]);
});

Deno.test("SendQueue: a failure report that throws stops neither the flush nor the process", async () => {
  const tooLong = new SendError("sendmmsg: Message too long", LINUX.EMSGSIZE);
  const { calls, socket } = recorder([tooLong]);
  let reports = 0;
  const q = new SendQueue(socket, () => {
    reports++;
    throw new Error("a broken log sink");
  });
  q.push(bytes("r1"), "10.0.0.9", 68);
  q.push(bytes("r2"), "10.0.0.9", 68);
  q.push(bytes("r3"), "10.0.0.9", 68);
  q.push(bytes("o1"), "10.0.0.8", 68);
  await Promise.resolve();
  // r1's report threw; the rest of its run and the next run still went.
  assert.deepEqual(calls.map((c) => c.packets), [["r1", "r2", "r3"], ["r2", "r3"], ["o1"]]);
  assert.equal(reports, 1);
});

Deno.test("SendQueue: nothing goes out of a socket closed before the flush", async () => {
  const { calls, socket } = recorder();
  const q = new SendQueue(socket, () => assert.fail("no failure to report"));
  q.push(bytes("late"), "10.0.0.2", 67);
  socket.closed = true;
  await Promise.resolve();
  assert.deepEqual(calls, []);
});

Deno.test({
  // Loopback only: ephemeral ports on lo, nothing leaves the host's loopback.
  name: "SendQueue on loopback: every datagram arrives, in order; port 0 is refused alone",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const open = () => InterfaceUdpSocket.open({ interface: "lo", address: "127.0.0.1", port: 0 });
    const a = open(), b = open();
    const failures: { count: number; error: Error }[] = [];
    try {
      const q = new SendQueue(b, (f) => failures.push(f));
      const sent = Array.from({ length: 40 }, (_, i) => `datagram ${i} `.padEnd(1000, "."));
      // Port 0 cannot be sent to: the kernel refuses that datagram (its run), the rest go (one
      // run of 40 kB after it: more than the staging buffer starts with).
      q.push(bytes("nowhere"), "127.0.0.1", 0);
      for (const s of sent) q.push(bytes(s), "127.0.0.1", a.port);
      const got: string[] = [];
      while (got.length < sent.length) {
        const burst = await a.receiveMany(16);
        for (const d of burst!) got.push(new TextDecoder().decode(d.data));
      }
      assert.deepEqual(got, sent);
      assert.deepEqual(failures.map((f) => f.count), [1]);
      assert.match(failures[0]!.error.message, /sendmmsg 127\.0\.0\.1:0 .*Invalid argument/);
      // The kernel's errno comes with it: EINVAL refuses the destination, not one datagram.
      assert.ok(failures[0]!.error instanceof SendError);
      assert.equal(failures[0]!.error.errno, 22);
    } finally {
      await a.close();
      await b.close();
    }
  },
});

const settle = () => new Promise((r) => setTimeout(r, PACE_INTERVAL_MS + 10));

Deno.test("SendQueue: a burst to one destination leaves in paced parts, in order, others not held", async () => {
  const { calls, socket } = recorder();
  const q = new SendQueue(socket, () => {});
  for (let i = 0; i < 70; i++) q.push(bytes(`r${i}`), "10.0.0.2", 67);
  q.push(bytes("b0"), "255.255.255.255", 68);
  await Promise.resolve();
  assert.deepEqual(calls.map((c) => [c.address, c.packets.length]), [
    ["10.0.0.2", PACE_BURST],
    ["255.255.255.255", 1],
  ]);
  // Pushed while the rest waits: to that destination, behind it; to another, at once.
  q.push(bytes("late"), "10.0.0.2", 67);
  q.push(bytes("b1"), "255.255.255.255", 68);
  await Promise.resolve();
  assert.deepEqual(calls.at(-1), { packets: ["b1"], address: "255.255.255.255", port: 68 });
  await settle();
  await settle();
  const relay = calls.filter((c) => c.address === "10.0.0.2");
  assert.deepEqual(relay.map((c) => c.packets.length), [
    PACE_BURST,
    PACE_BURST,
    70 - 2 * PACE_BURST + 1,
  ]);
  const expected = [...Array.from({ length: 70 }, (_, i) => `r${i}`), "late"];
  assert.deepEqual(relay.flatMap((c) => c.packets), expected);
});

Deno.test("SendQueue: the burst counts every run to a destination, not each run alone", async () => {
  const { calls, socket } = recorder();
  const q = new SendQueue(socket, () => {});
  // Runs of 20 to the relay, split by broadcasts: 20 + 12 of the second run leave, 8 + 20 wait.
  for (let run = 0; run < 3; run++) {
    for (let i = 0; i < 20; i++) q.push(bytes(`r${run * 20 + i}`), "10.0.0.2", 67);
    q.push(bytes(`b${run}`), "255.255.255.255", 68);
  }
  await Promise.resolve();
  assert.deepEqual(calls.map((c) => [c.address, c.packets.length]), [
    ["10.0.0.2", 20],
    ["255.255.255.255", 1],
    ["10.0.0.2", PACE_BURST - 20],
    ["255.255.255.255", 2], // the third run held, the broadcasts around it meet in one call
  ]);
  await settle();
  const relay = calls.filter((c) => c.address === "10.0.0.2").flatMap((c) => c.packets);
  assert.deepEqual(relay, Array.from({ length: 60 }, (_, i) => `r${i}`));
  assert.equal(calls.length, 5, "the held 28 left together after the wait");
});

Deno.test("SendQueue: a large backlog leaves a quarter at a time, not a burst's worth", async () => {
  const { calls, socket } = recorder();
  const q = new SendQueue(socket, () => {});
  for (let i = 0; i < 1000; i++) q.push(bytes(`r${i}`), "10.0.0.2", 67);
  await Promise.resolve();
  for (let i = 0; i < 20 && calls.reduce((n, c) => n + c.packets.length, 0) < 1000; i++) {
    await settle();
  }
  assert.deepEqual(calls.map((c) => c.packets.length).slice(0, 3), [250, 188, 141]);
  assert.equal(calls.reduce((n, c) => n + c.packets.length, 0), 1000);
});

Deno.test("SendQueue: a run longer than one sendmmsg takes is staged a call's worth at a time", async () => {
  // 5 000 queued to one relay: a quarter (1 250) may leave now, as 1 024 and 226.
  const { calls, socket } = recorder();
  const q = new SendQueue(socket, () => {});
  for (let i = 0; i < 5000; i++) q.push(bytes(`r${i}`), "10.0.0.2", 67);
  await Promise.resolve();
  assert.deepEqual(calls.map((c) => c.packets.length), [MAX_BATCH, 1250 - MAX_BATCH]);
  assert.deepEqual(calls.flatMap((c) => c.packets).slice(MAX_BATCH - 1, MAX_BATCH + 1), [
    `r${MAX_BATCH - 1}`,
    `r${MAX_BATCH}`,
  ]);

  // Refused at its first call, the whole run is reported once, its second part included.
  const refused = recorder([new SendError("sendmmsg: Network is unreachable", 101)]);
  const failures: number[] = [];
  const r = new SendQueue(refused.socket, (f) => failures.push(f.count));
  for (let i = 0; i < 5000; i++) r.push(bytes(`r${i}`), "10.0.0.2", 67);
  await Promise.resolve();
  assert.deepEqual(refused.calls.map((c) => c.packets.length), [MAX_BATCH]);
  assert.deepEqual(failures, [1250]);
  // Both queues' held datagrams go after it (no timer outlives the test): all 5 000 of the
  // first; of the second, the 3 750 held (its later calls succeed), after the refused 1 024.
  const offered = (cs: Call[]) => cs.reduce((n, c) => n + c.packets.length, 0);
  for (let i = 0; i < 40 && (offered(calls) < 5000 || offered(refused.calls) < 4774); i++) {
    await settle();
  }
  assert.equal(offered(calls), 5000);
  assert.equal(offered(refused.calls), MAX_BATCH + 3750);
});

Deno.test("SendQueue: what is held when the socket closes is not sent", async () => {
  const { calls, socket } = recorder();
  const q = new SendQueue(socket, () => {});
  for (let i = 0; i < 40; i++) q.push(bytes(`r${i}`), "10.0.0.2", 67);
  await Promise.resolve();
  socket.closed = true;
  await settle();
  assert.deepEqual(calls.map((c) => c.packets.length), [PACE_BURST]);
});
