import assert from "node:assert/strict";
import { INVENTORY_QUERY, inventoryFromDhcp, inventoryFromUrl } from "./inventory.ts";
import { DhcpOption } from "../protocols/dhcp/options.ts";
import { decodeDhcp } from "../protocols/dhcp/packet.ts";

const UUID = "12345678-9abc-def0-1122-334455667788";
const TESTDATA = new URL("../protocols/dhcp/testdata/", import.meta.url);

Deno.test("the query asks iPXE for the UUID first, then the SMBIOS strings URI-encoded", () => {
  assert.equal(
    INVENTORY_QUERY,
    "&uuid=${uuid}&serial=${serial:uristring}&manufacturer=${manufacturer:uristring}" +
      "&product=${product:uristring}&buildarch=${buildarch}&platform=${platform}",
  );
});

Deno.test("inventoryFromUrl reads what iPXE sent, whatever it sent", async (t) => {
  const table: [string, string, Record<string, unknown> | null][] = [
    // What Debian's iPXE sent for `-uuid … -smbios type=1,serial=SN 42&x=1/ä%,,q,…` (measured).
    [
      "measured: BIOS, a serial with a space, &, ä and %",
      `/boot.ipxe?mac=52-54-00-a5-7b-09&uuid=${UUID}&serial=SN%2042&x=1/%FFFFFFFFFFFFC3` +
      "%FFFFFFFFFFFFA4%25,q&manufacturer=Astral%20Labs&product=Lab%20VM&buildarch=i386" +
      "&platform=pcbios",
      {
        uuid: UUID,
        serial: "SN 42",
        manufacturer: "Astral Labs",
        product: "Lab VM",
        buildarch: "i386",
        platform: "pcbios",
      },
    ],
    [
      "no SMBIOS: empty values are nulls",
      "/boot.ipxe?mac=52-54-00-a5-7b-09&uuid=&serial=&manufacturer=&product=&buildarch=x86_64" +
      "&platform=efi",
      {
        uuid: null,
        serial: null,
        manufacturer: null,
        product: null,
        buildarch: "x86_64",
        platform: "efi",
      },
    ],
    ["the nil UUID is none", "/boot.ipxe?uuid=00000000-0000-0000-0000-000000000000", {
      uuid: null,
    }],
    ["a UUID in capitals", `/boot.ipxe?uuid=${UUID.toUpperCase()}`, { uuid: UUID }],
    ["not a UUID", "/boot.ipxe?uuid=%24%7Bnet0%2Fip%7D", { uuid: null }],
    ["the first of a key counts", `/boot.ipxe?uuid=${UUID}&uuid=0`, { uuid: UUID }],
    ["+ is a plus", "/boot.ipxe?product=A+B", { product: "A+B" }],
    ["markup and escapes cleaned", "/boot.ipxe?serial=%3Cb%3E%1B%5B1m", { serial: "?b???1m" }],
    ["bad escapes never throw", "/boot.ipxe?serial=%E0%A4%A&product=%", {
      serial: "???A",
      product: "?",
    }],
    ["a fragment is not part of it", "/boot.ipxe?platform=efi#x", { platform: "efi" }],
    ["none of the keys", "/boot.ipxe?mac=52-54-00-a5-7b-09", null],
    ["no query", "/boot.ipxe", null],
  ];
  for (const [name, url, want] of table) {
    await t.step(name, () => assert.deepEqual(inventoryFromUrl(`http://10.0.0.1${url}`), want));
  }
});

Deno.test("inventoryFromDhcp reads options 93, 97, 60 and 77 of real requests", async (t) => {
  const capture = (name: string) => decodeDhcp(Deno.readFileSync(new URL(`${name}.bin`, TESTDATA)));
  const withUuid = capture("ipxe_bios_discover");
  // Option 97 as iPXE and OVMF sent it for QEMU -uuid 12345678-9abc-def0-1122-334455667788.
  withUuid.options.set(
    DhcpOption.ClientUuid,
    Uint8Array.from("0078563412bc9af0de1122334455667788".match(/../g)!, (h) => parseInt(h, 16)),
  );
  const table: [string, ReturnType<typeof capture>, Record<string, unknown>][] = [
    ["iPXE BIOS", capture("ipxe_bios_discover"), {
      dhcp_arch: 0,
      dhcp_uuid: null,
      vendor_class: "PXEClient:Arch:00000:UNDI:002001",
      user_class: "iPXE",
    }],
    ["iPXE BIOS with a UUID", withUuid, {
      dhcp_arch: 0,
      dhcp_uuid: UUID,
      vendor_class: "PXEClient:Arch:00000:UNDI:002001",
      user_class: "iPXE",
    }],
    ["OVMF", capture("ovmf_discover"), {
      dhcp_arch: 7,
      dhcp_uuid: null,
      vendor_class: "PXEClient:Arch:00007:UNDI:003000",
      user_class: null,
    }],
    ["udhcpc", capture("udhcpc_discover"), {
      dhcp_arch: null,
      dhcp_uuid: null,
      vendor_class: "udhcp 1.35.0",
      user_class: null,
    }],
  ];
  for (const [name, packet, want] of table) {
    await t.step(name, () => assert.deepEqual(inventoryFromDhcp(packet), want));
  }
});
