import assert from "node:assert/strict";
import { Readiness, YIELD_EVERY } from "./epoll.ts";

/** A Readiness whose descriptor "reports" at once when armed; counts the waits. */
function fakeReadiness() {
  let waits = 0;
  const r: Readiness = new Readiness("fake", {
    arm: () => {
      waits++;
      queueMicrotask(() => r.fired());
      return true;
    },
    unregister: () => {},
  });
  // Made armed, as a descriptor added to the set: its first report disarms it.
  r.fired();
  return { r, waits: () => waits };
}

Deno.test("a backlog read at once waits once every YIELD_EVERY reads", async () => {
  const { r, waits } = fakeReadiness();
  const n = YIELD_EVERY * 3;
  for (let i = 0; i < n; i++) assert.deepEqual(await r.until(() => ({ i }), () => false), { i });
  assert.equal(waits(), 2);
});

Deno.test("a read that finds nothing starts the count again: a spin's catch never waits", async () => {
  const { r, waits } = fakeReadiness();
  for (let round = 0; round < 3; round++) {
    // Reads that find data at once, short of the limit…
    for (let i = 0; i < YIELD_EVERY - 1; i++) await r.until(() => ({ i }), () => false);
    // …then one that finds nothing on its first try and its datagram while it spins (a TFTP
    // transfer's next ACK): no backlog behind it.
    let tries = 0;
    const got = await r.until(() => ++tries > 1 ? { round } : null, () => false, 1000);
    assert.deepEqual(got, { round });
  }
  assert.equal(waits(), 0);
});
