import assert from "node:assert/strict";
import { parseArpTable } from "./neighbours.ts";

Deno.test("parseArpTable keeps complete entries only", () => {
  const text = `IP address       HW type     Flags       HW address            Mask     Device
10.0.0.50        0x1         0x2         52:54:00:12:34:56     *        br0
10.0.0.51        0x1         0x0         00:00:00:00:00:00     *        br0
10.0.0.52        0x1         0x6         52:54:00:AB:CD:EF     *        eth1
`;
  assert.deepEqual(parseArpTable(text), [
    { ip: "10.0.0.50", mac: "52:54:00:12:34:56", device: "br0" },
    { ip: "10.0.0.52", mac: "52:54:00:ab:cd:ef", device: "eth1" },
  ]);
  assert.deepEqual(parseArpTable(""), []);
  assert.deepEqual(parseArpTable("header only\n"), []);
});
