import assert from "node:assert/strict";
import { SendWindow } from "./window.ts";

/** Sends everything pending, marking `final` at absolute block `last`. */
function sendAll(w: SendWindow, last = Infinity): number[] {
  const sent: number[] = [];
  const range = w.pending();
  if (!range) return sent;
  for (let n = range.from; n <= range.to; n++) {
    w.markSent(n, n === last);
    sent.push(n);
    if (n === last) break;
  }
  return sent;
}

Deno.test("SendWindow in lockstep (windowsize 1)", async (t) => {
  await t.step("without OACK it starts at block 1", () => {
    const w = new SendWindow(1, { oack: false });
    assert.deepEqual(sendAll(w), [1]);
    assert.deepEqual(w.onAck(1), { kind: "advance", acked: 1, rewound: false });
    assert.deepEqual(sendAll(w), [2]);
  });
  await t.step("with OACK nothing is sent before ACK 0", () => {
    const w = new SendWindow(1, { oack: true });
    assert.equal(w.awaitingOack, true);
    assert.equal(w.pending(), null);
    assert.deepEqual(w.onAck(0), { kind: "advance", acked: 0, rewound: false });
    assert.equal(w.awaitingOack, false);
    assert.deepEqual(sendAll(w), [1]);
  });
  await t.step("duplicate ACKs send nothing (Sorcerer's Apprentice)", () => {
    const w = new SendWindow(1, { oack: false });
    sendAll(w);
    w.onAck(1);
    sendAll(w);
    assert.deepEqual(w.onAck(1), { kind: "duplicate" });
    assert.equal(w.pending(), null);
    assert.deepEqual(w.onAck(0), { kind: "duplicate" });
    assert.equal(w.pending(), null);
  });
  await t.step("an ACK for a block not yet sent is ignored", () => {
    const w = new SendWindow(1, { oack: false });
    sendAll(w);
    assert.deepEqual(w.onAck(2), { kind: "duplicate" });
    assert.deepEqual(w.onAck(9), { kind: "duplicate" });
  });
  await t.step("a timeout resends the unacknowledged block", () => {
    const w = new SendWindow(1, { oack: false });
    sendAll(w);
    w.onTimeout();
    assert.deepEqual(sendAll(w), [1]);
  });
  await t.step("the ACK of the final block ends the transfer", () => {
    const w = new SendWindow(1, { oack: false });
    sendAll(w, 1);
    assert.equal(w.final, 1);
    assert.equal(w.pending(), null);
    assert.deepEqual(w.onAck(1), { kind: "done" });
  });
});

Deno.test("SendWindow with windowsize 4 (RFC 7440)", async (t) => {
  await t.step("sends a full window, then waits for its last ACK", () => {
    const w = new SendWindow(4, { oack: true });
    w.onAck(0);
    assert.deepEqual(sendAll(w), [1, 2, 3, 4]);
    assert.equal(w.pending(), null);
    assert.deepEqual(w.onAck(4), { kind: "advance", acked: 4, rewound: false });
    assert.deepEqual(sendAll(w), [5, 6, 7, 8]);
  });
  await t.step("an ACK for an earlier block restarts after it", () => {
    const w = new SendWindow(4, { oack: false });
    sendAll(w);
    assert.deepEqual(w.onAck(2), { kind: "advance", acked: 2, rewound: true });
    assert.deepEqual(sendAll(w), [3, 4, 5, 6]);
    // The late ACK of the old window end is now inside the window again.
    assert.deepEqual(w.onAck(4), { kind: "advance", acked: 4, rewound: true });
    assert.deepEqual(sendAll(w), [5, 6, 7, 8]);
  });
  await t.step("the window stops at the final block", () => {
    const w = new SendWindow(4, { oack: false });
    assert.deepEqual(sendAll(w, 6), [1, 2, 3, 4]);
    w.onAck(4);
    assert.deepEqual(sendAll(w, 6), [5, 6]);
    assert.equal(w.pending(), null);
    assert.deepEqual(w.onAck(5), { kind: "advance", acked: 5, rewound: true });
    assert.deepEqual(sendAll(w, 6), [6]);
    assert.deepEqual(w.onAck(6), { kind: "done" });
  });
  await t.step("a timeout resends the whole unacknowledged window", () => {
    const w = new SendWindow(4, { oack: false });
    sendAll(w);
    w.onAck(4);
    sendAll(w);
    w.onTimeout();
    assert.deepEqual(sendAll(w), [5, 6, 7, 8]);
  });
  await t.step("a timeout while the OACK is out keeps waiting for ACK 0", () => {
    const w = new SendWindow(4, { oack: true });
    w.onTimeout();
    assert.equal(w.awaitingOack, true);
    assert.equal(w.pending(), null);
  });
});

Deno.test("SendWindow block numbers wrap from 65535 to 0", async (t) => {
  for (const windowsize of [1, 4, 64]) {
    await t.step(`windowsize ${windowsize}`, () => {
      const w = new SendWindow(windowsize, { oack: true });
      w.onAck(0);
      const wires: number[] = [];
      // Walk to absolute block 65536 + 2 * windowsize, acking each window by its wire number.
      while (w.acked < 65536 + 2 * windowsize) {
        const sent = sendAll(w);
        const last = sent.at(-1)!;
        wires.push(...sent.map((n) => n & 0xffff));
        assert.equal(w.toAbsolute(last & 0xffff), last);
        assert.deepEqual(w.onAck(last & 0xffff), { kind: "advance", acked: last, rewound: false });
      }
      const at = wires.indexOf(65535);
      assert.deepEqual(wires.slice(at, at + 3), [65535, 0, 1]);
      // An old ACK 0 (the OACK's) must not be taken for absolute block 65536 once past it.
      assert.deepEqual(w.onAck(0), { kind: "duplicate" });
    });
  }
});

Deno.test("SendWindow rejects invalid windowsizes and out-of-order marks", () => {
  for (const bad of [0, -1, 65536, 1.5]) {
    assert.throws(() => new SendWindow(bad, { oack: false }), RangeError);
  }
  const w = new SendWindow(4, { oack: false });
  assert.throws(() => w.markSent(2, false), RangeError);
});
