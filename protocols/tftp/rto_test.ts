import assert from "node:assert/strict";
import { backoffCeiling, RtoEstimator } from "./rto.ts";

const OPTS = { initialMs: 250, minMs: 50, maxMs: 2000 };

Deno.test("RtoEstimator follows RFC 6298", async (t) => {
  await t.step("starts at the initial value", () => {
    assert.equal(new RtoEstimator(OPTS).rto, 250);
    assert.equal(new RtoEstimator(OPTS).srtt, null);
  });
  await t.step("first sample: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR", () => {
    const e = new RtoEstimator({ ...OPTS, minMs: 1 });
    e.sample(100);
    assert.equal(e.srtt, 100);
    assert.equal(e.rto, 300);
  });
  await t.step("later samples smooth with alpha 1/8 and beta 1/4", () => {
    const e = new RtoEstimator({ ...OPTS, minMs: 1 });
    e.sample(100);
    e.sample(200);
    // RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5
    assert.equal(e.srtt, 112.5);
    assert.equal(e.rto, 112.5 + 4 * 62.5);
  });
  await t.step("LAN round trips settle at the floor", () => {
    const e = new RtoEstimator(OPTS);
    for (let i = 0; i < 50; i++) e.sample(0.2);
    assert.equal(e.rto, 50);
  });
  await t.step("backoff doubles up to the ceiling", () => {
    const e = new RtoEstimator(OPTS);
    const seen = [e.rto];
    for (let i = 0; i < 5; i++) {
      e.backoff();
      seen.push(e.rto);
    }
    assert.deepEqual(seen, [250, 500, 1000, 2000, 2000, 2000]);
  });
  await t.step("a new sample after backoff brings the timeout back down", () => {
    const e = new RtoEstimator(OPTS);
    e.backoff();
    e.backoff();
    e.sample(1);
    assert.equal(e.rto, 50);
  });
  await t.step("resetBackoff returns to the estimate (or the initial value before samples)", () => {
    const e = new RtoEstimator(OPTS);
    e.backoff();
    e.backoff();
    e.resetBackoff();
    assert.equal(e.rto, 250);
    e.sample(0.5);
    e.backoff();
    e.backoff();
    assert.equal(e.rto, 200);
    e.resetBackoff();
    assert.equal(e.rto, 50);
  });
  await t.step("a slow path raises it, within the ceiling", () => {
    const e = new RtoEstimator(OPTS);
    for (let i = 0; i < 20; i++) e.sample(900);
    assert.ok(e.rto >= 900 && e.rto <= 2000, String(e.rto));
    e.sample(5000);
    assert.equal(e.rto, 2000);
  });
  await t.step("an initial value outside the bounds is clamped", () => {
    assert.equal(new RtoEstimator({ ...OPTS, initialMs: 10 }).rto, 50);
    assert.equal(new RtoEstimator({ ...OPTS, initialMs: 10000 }).rto, 2000);
  });
});

Deno.test("backoffCeiling stays above the client's own retransmission timer", async (t) => {
  const cases: [number | null, number][] = [[null, 6000], [1000, 2000], [6000, 7000], [
    255_000,
    256_000,
  ]];
  for (const [client, want] of cases) {
    await t.step(`client timeout ${client} ms → ${want} ms`, () => {
      assert.equal(backoffCeiling(client), want);
      assert.ok(backoffCeiling(client) > (client ?? 5000));
    });
  }
});
