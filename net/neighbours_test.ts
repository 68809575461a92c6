import assert from "node:assert/strict";
import { findNeighbour, parseArpTable } from "./neighbours.ts";

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

Deno.test("findNeighbour finds what parseArpTable finds, by the whole address", async (t) => {
  const text = `IP address       HW type     Flags       HW address            Mask     Device
10.0.0.5         0x1         0x2         52:54:00:00:00:05     *        br0
10.0.0.50        0x1         0x2         52:54:00:00:00:50     *        br0
10.0.0.51        0x1         0x0         00:00:00:00:00:00     *        br0
10.0.0.52        0x1         0x2         52:54:00:00:00:52     *        eth1
10.0.0.52        0x1         0x2         52:54:00:00:05:52     *        br0
10.0.0.53        0x1         0x0         52:54:00:00:00:53     *        br0
255.255.255.255  0x1         0x6         52:54:00:ff:ff:ff     *        br0`;
  const table = parseArpTable(text);
  const asked = ["10.0.0.5", "10.0.0.50", "10.0.0.51", "10.0.0.52", "10.0.0.53", "10.0.0.500"];
  for (const ip of [...asked, "255.255.255.255", "10.0.0", "IP"]) {
    for (const device of [undefined, "br0", "eth1"]) {
      await t.step(`${ip} on ${device ?? "any device"}`, () => {
        const want = table.find((n) =>
          n.ip === ip && (device === undefined || n.device === device)
        );
        assert.equal(findNeighbour(text, ip, device), want?.mac ?? null);
      });
    }
  }
  await t.step("a prefix of another address is not that address", () => {
    assert.equal(findNeighbour(text, "10.0.0.5"), "52:54:00:00:00:05");
    assert.equal(findNeighbour(text, "10.0.0.5", "eth1"), null);
  });
  await t.step("the entry of the asked device, not the first", () => {
    assert.equal(findNeighbour(text, "10.0.0.52", "br0"), "52:54:00:00:05:52");
  });
  await t.step("incomplete entries are no answer; nor is an empty table", () => {
    assert.equal(findNeighbour(text, "10.0.0.53"), null);
    assert.equal(findNeighbour("", "10.0.0.5"), null);
  });
});
