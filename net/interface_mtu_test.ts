import assert from "node:assert/strict";
import { interfaceMtu } from "./interface_mtu.ts";

Deno.test("interfaceMtu reads the kernel's MTU, null for what is no interface", async (t) => {
  await t.step("loopback", () => {
    const mtu = interfaceMtu("lo");
    assert.ok(mtu !== null && mtu >= 1500, `lo MTU ${mtu}`);
  });
  for (const name of ["", "no-such-if0", "../lo", "lo/../lo", ".", "a-very-long-interface"]) {
    await t.step(JSON.stringify(name), () => assert.equal(interfaceMtu(name), null));
  }
});
