import assert from "node:assert/strict";
import { encodeClasslessRoutes } from "./classless_routes.ts";

Deno.test("encodeClasslessRoutes: the destination descriptors of RFC 3442 §3", async (t) => {
  const router = [10, 0, 0, 1];
  const cases: [string, number[]][] = [
    ["0.0.0.0/0", [0]],
    ["10.0.0.0/8", [8, 10]],
    ["10.0.0.0/24", [24, 10, 0, 0]],
    ["10.17.0.0/16", [16, 10, 17]],
    ["10.27.129.0/24", [24, 10, 27, 129]],
    ["10.229.0.128/25", [25, 10, 229, 0, 128]],
    ["10.198.122.47/32", [32, 10, 198, 122, 47]],
  ];
  for (const [destination, descriptor] of cases) {
    await t.step(destination, () => {
      const got = encodeClasslessRoutes([{ destination, router: "10.0.0.1" }]);
      assert.deepEqual([...got], [...descriptor, ...router]);
    });
  }
  await t.step("several routes one after another, in order", () => {
    const got = encodeClasslessRoutes([
      { destination: "10.1.0.0/16", router: "10.0.0.254" },
      { destination: "0.0.0.0/0", router: "10.0.0.1" },
    ]);
    assert.deepEqual([...got], [16, 10, 1, 10, 0, 0, 254, 0, 10, 0, 0, 1]);
  });
});

Deno.test("encodeClasslessRoutes refuses bad destinations", async (t) => {
  const cases: [string, RegExp][] = [
    ["10.1.0.5/16", /host bits set; did you mean "10\.1\.0\.0\/16"/],
    ["10.1.0.0", /Not a subnet/],
    ["10.1.0.0/33", /Not a prefix length/],
    ["10.1.0.300/16", /Not an IPv4 address/],
  ];
  for (const [destination, want] of cases) {
    await t.step(destination, () => {
      assert.throws(
        () => encodeClasslessRoutes([{ destination, router: "10.0.0.1" }]),
        (e: unknown) => e instanceof RangeError && want.test(e.message),
      );
    });
  }
});
