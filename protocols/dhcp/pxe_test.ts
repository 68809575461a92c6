import assert from "node:assert/strict";
import { MalformedPacketError } from "../../net/bytes.ts";
import { DhcpOption } from "./options.ts";
import { decodeDhcp } from "./packet.ts";
import {
  ClientArch,
  clientArchName,
  decodeClientNdi,
  decodePxeVendorOptions,
  describeIpxeSubOption,
  encodeClientArch,
  encodeClientNdi,
  encodeClientUuid,
  encodePxeVendorOptions,
  ipxeFeatures,
  IpxeOption,
  ipxeVersion,
  parsePxeVendorClass,
  PxeDiscoveryControl,
  type PxeVendorOptions,
  uuidToString,
} from "./pxe.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);

Deno.test("option 43 for proxyDHCP: discovery control 8 is 06 01 08 ff", () => {
  const b = encodePxeVendorOptions({ discoveryControl: PxeDiscoveryControl.UseBootfile });
  assert.deepEqual(b, bytes(6, 1, 8, 255));
  assert.deepEqual(decodePxeVendorOptions(b), { discoveryControl: 8 });
});

Deno.test("PXE vendor options round trip", async (t) => {
  const cases: [string, PxeVendorOptions][] = [
    ["multicast discovery address", { discoveryMulticastAddr: "224.0.1.2" }],
    ["boot servers", { bootServers: [{ type: 0x8000, ips: ["10.0.0.1", "10.0.0.2"] }] }],
    [
      "menu, prompt and item",
      {
        discoveryControl: 7,
        bootMenu: [{ type: 0x8000, description: "Astral Boot" }, { type: 0, description: "disk" }],
        menuPrompt: { timeout: 10, prompt: "Press F8" },
        bootItem: { type: 0x8000, layer: 0x0102 },
      },
    ],
    ["unknown sub-options kept raw", { other: new Map([[200, bytes(1, 2)]]) }],
  ];
  for (const [name, value] of cases) {
    await t.step(
      name,
      () => assert.deepEqual(decodePxeVendorOptions(encodePxeVendorOptions(value)), value),
    );
  }
});

Deno.test("malformed PXE vendor options throw MalformedPacketError", async (t) => {
  const cases: [string, Uint8Array][] = [
    ["discovery control of 2 bytes", bytes(6, 2, 8, 8, 255)],
    ["boot server list claims 2 addresses, has 1", bytes(8, 7, 0x80, 0, 2, 10, 0, 0, 1, 255)],
    ["menu entry description past its end", bytes(9, 4, 0x80, 0, 9, 65, 255)],
    ["boot item of 3 bytes", bytes(71, 3, 0, 0, 0, 255)],
    ["empty menu prompt", bytes(10, 0, 255)],
    ["sub-option overflow", bytes(6, 5, 8)],
  ];
  for (const [name, b] of cases) {
    await t.step(name, () => assert.throws(() => decodePxeVendorOptions(b), MalformedPacketError));
  }
});

Deno.test("client arch, NDI and UUID payloads", async (t) => {
  await t.step("encodeClientArch writes u16s", () => {
    assert.deepEqual(
      encodeClientArch([ClientArch.EfiX64, ClientArch.EfiArm64]),
      bytes(0, 7, 0, 11),
    );
    assert.throws(() => encodeClientArch([65536]), RangeError);
  });
  await t.step("NDI round trip and length check", () => {
    assert.deepEqual(decodeClientNdi(encodeClientNdi({ type: 1, major: 3, minor: 16 })), {
      type: 1,
      major: 3,
      minor: 16,
    });
    assert.throws(() => decodeClientNdi(bytes(1, 2), 300), MalformedPacketError);
  });
  await t.step("UUID option is type 0 + 16 bytes", () => {
    const u = Uint8Array.from({ length: 16 }, (_, i) => i);
    assert.deepEqual(encodeClientUuid(u), bytes(0, ...u));
    assert.throws(() => encodeClientUuid(new Uint8Array(15)), RangeError);
    // SMBIOS order: first three fields little-endian.
    assert.equal(uuidToString(u), "03020100-0504-0706-0809-0a0b0c0d0e0f");
  });
  await t.step("arch names", () => {
    assert.equal(clientArchName(0), "X86Bios");
    assert.equal(clientArchName(7), "EfiX64");
    assert.equal(clientArchName(11), "EfiArm64");
    assert.equal(clientArchName(99), "Arch99");
  });
});

Deno.test("PXE vendor class strings from the captures parse", async (t) => {
  const cases: [string, ReturnType<typeof parsePxeVendorClass>][] = [
    ["ipxe_bios_discover", { arch: 0, undiMajor: 2, undiMinor: 1 }],
    ["ovmf_discover", { arch: 7, undiMajor: 3, undiMinor: 0 }],
    ["ipxe_efi_discover", { arch: 7, undiMajor: 3, undiMinor: 10 }],
    ["udhcpc_discover", undefined],
  ];
  for (const [name, want] of cases) {
    await t.step(name, () => {
      const p = decodeDhcp(Deno.readFileSync(new URL(`./testdata/${name}.bin`, import.meta.url)));
      assert.deepEqual(parsePxeVendorClass(p.options.vendorClass()), want);
    });
  }
  await t.step("a bare PXEClient (server side) has no fields", () => {
    assert.deepEqual(parsePxeVendorClass("PXEClient"), {});
  });
});

Deno.test("iPXE option 175 helpers", () => {
  const encap = new Map([
    [IpxeOption.BusId, bytes(1, 0x1a, 0xf4, 0x10, 0)],
    [IpxeOption.Version, bytes(1, 21, 1)],
    [IpxeOption.FeatureHttp, bytes(1)],
    [IpxeOption.FeatureEfi, bytes(1)],
    [IpxeOption.NoPxeDhcp, bytes(1)],
  ]);
  assert.equal(ipxeVersion(encap), "1.21.1");
  assert.deepEqual(ipxeFeatures(encap), ["Http", "Efi"]);
  assert.equal(
    describeIpxeSubOption(IpxeOption.BusId, encap.get(177)!),
    "PCI 1af4:1000 (01 1a f4 10 00)",
  );
  assert.equal(describeIpxeSubOption(IpxeOption.FeatureHttp, bytes(1)), "01");
  assert.equal(ipxeVersion(new Map()), undefined);
  assert.equal(DhcpOption.IpxeEncap, 175);
});
