import assert from "node:assert/strict";
import {
  ipv4ToBytes,
  ipv4ToNumber,
  isIpv4,
  netmaskToPrefix,
  numberToIpv4,
  prefixToNetmask,
  Subnet,
} from "./ipv4.ts";

Deno.test("addresses as text, bytes and numbers", async (t) => {
  await t.step("round trips", () => {
    for (const ip of ["0.0.0.0", "10.0.0.1", "192.168.255.254", "255.255.255.255"]) {
      assert.equal(numberToIpv4(ipv4ToNumber(ip)), ip);
      assert.ok(ipv4ToNumber(ip) >= 0, "unsigned");
      assert.deepEqual([...ipv4ToBytes(ip)], ip.split(".").map(Number));
    }
  });
  await t.step("nonsense is refused", () => {
    for (
      const bad of [
        "",
        "10.0.0",
        "10.0.0.256",
        "10.0.0.1.2",
        "a.b.c.d",
        "10.0.0.-1",
        "1e1.0.0.1",
        "10..0.1",
        ".10.0.1",
        "10.0.1.",
        "0010.0.0.1",
        "10.0.0.1 ",
      ]
    ) {
      assert.equal(isIpv4(bad), false, bad);
      assert.throws(() => ipv4ToNumber(bad), RangeError);
    }
  });
});

Deno.test("prefixes and netmasks", () => {
  assert.equal(prefixToNetmask(24), "255.255.255.0");
  assert.equal(prefixToNetmask(0), "0.0.0.0");
  assert.equal(prefixToNetmask(32), "255.255.255.255");
  assert.equal(netmaskToPrefix("255.255.255.224"), 27);
  assert.equal(netmaskToPrefix("255.0.255.0"), null);
  assert.throws(() => prefixToNetmask(33), RangeError);
});

Deno.test("Subnet: network, broadcast, hosts and membership", async (t) => {
  const cases: [Subnet, string, string, string, [string, string]][] = [
    [Subnet.of("10.0.0.7", "255.255.255.0"), "10.0.0.0/24", "10.0.0.255", "255.255.255.0", [
      "10.0.0.1",
      "10.0.0.254",
    ]],
    [Subnet.parse("192.168.7.40/27"), "192.168.7.32/27", "192.168.7.63", "255.255.255.224", [
      "192.168.7.33",
      "192.168.7.62",
    ]],
    [Subnet.parse("10.1.2.3/32"), "10.1.2.3/32", "10.1.2.3", "255.255.255.255", [
      "10.1.2.3",
      "10.1.2.3",
    ]],
  ];
  for (const [net, text, bcast, mask, hosts] of cases) {
    await t.step(text, () => {
      assert.equal(net.toString(), text);
      assert.equal(net.broadcast, bcast);
      assert.equal(net.netmask, mask);
      assert.deepEqual(net.hosts, hosts);
      assert.ok(net.contains(hosts[0]));
      assert.ok(!net.contains("172.16.0.1"));
    });
  }
  await t.step("a CIDR that is not one is refused", () => {
    for (const bad of ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "x/8"]) {
      assert.throws(() => Subnet.parse(bad), RangeError, bad);
    }
  });
});
