import assert from "node:assert/strict";
import { TokenBucket } from "./token_bucket.ts";

Deno.test("a token bucket gives its burst at once, then `rate` a second", () => {
  let t = 1000;
  const b = new TokenBucket(10, 3, () => t);
  assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
  t += 50; // half a token
  assert.equal(b.take(), false);
  t += 50;
  assert.equal(b.take(), true);
  assert.equal(b.take(), false);
  t += 60_000; // a long quiet time fills it to the burst, no more
  assert.deepEqual([b.take(), b.take(), b.take(), b.take()], [true, true, true, false]);
});

Deno.test("a clock going back neither fills nor empties the bucket", () => {
  let t = 1000;
  const b = new TokenBucket(10, 2, () => t);
  assert.equal(b.take(), true);
  t -= 500;
  assert.equal(b.take(), true);
  assert.equal(b.take(), false);
});

Deno.test("a token bucket refuses a rate or burst it cannot keep", () => {
  assert.throws(() => new TokenBucket(0, 5), RangeError);
  assert.throws(() => new TokenBucket(5, 0), RangeError);
  assert.throws(() => new TokenBucket(NaN, 5), RangeError);
});
