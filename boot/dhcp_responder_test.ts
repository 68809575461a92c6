import assert from "node:assert/strict";
import { openDatabase } from "../state/db.ts";
import { LeaseStore, poolExclusions } from "../state/leases.ts";
import {
  type DhcpOutcome,
  type DhcpPolicyOptions,
  handleDhcp,
  handlePxeRequest,
} from "./dhcp_responder.ts";
import { chooseBootfile } from "./bootfile.ts";
import { isIpxe } from "../protocols/dhcp/client.ts";
import { encodeReply } from "../protocols/dhcp/wire.ts";
import { Subnet } from "../net/ipv4.ts";
import { macHyphens, mustParseMac } from "../net/mac.ts";
import { DhcpOption, type DhcpOptions, MessageType } from "../protocols/dhcp/options.ts";
import { decodeDhcp, type DhcpPacket, macOf } from "../protocols/dhcp/packet.ts";
import { decodePxeVendorOptions, encodeClientArch } from "../protocols/dhcp/pxe.ts";

// Requests captured from real clients (see protocols/dhcp/testdata/*.txt for readable dumps).
const TESTDATA = new URL("../protocols/dhcp/testdata/", import.meta.url);

function capture(name: string): DhcpPacket {
  return decodeDhcp(Deno.readFileSync(new URL(`${name}.bin`, TESTDATA)));
}

/** A copy of `p` with changed options (and fields). */
function variant(
  p: DhcpPacket,
  change: (o: DhcpOptions) => void,
  fields: Partial<DhcpPacket> = {},
): DhcpPacket {
  const options = p.options.clone();
  change(options);
  return { ...p, chaddr: p.chaddr.slice(), ...fields, options };
}

const SERVER = "10.77.0.1";
const HTTP = "http://10.77.0.1:8080";
const NET = Subnet.of(SERVER, "255.255.255.0");

/** The script URL an iPXE client gets: with its own MAC. */
function script(req: DhcpPacket): string {
  return `${HTTP}/boot.ipxe?mac=${macHyphens(macOf(req)!)}`;
}

/** The outcome's event as one word: offer, ack, nak, proxy-offer, release, ignored … */
function label(out: DhcpOutcome): string {
  return out.event.kind === "reply" ? out.event.reply : out.event.kind;
}

function policy(
  overrides: Partial<DhcpPolicyOptions> = {},
): DhcpPolicyOptions & { leases: LeaseStore } {
  const leases = new LeaseStore(openDatabase(":memory:"), {
    range: ["10.77.0.100", "10.77.0.150"],
    exclude: poolExclusions(SERVER, NET, "10.77.0.254"),
    reservations: [
      { mac: mustParseMac("52:54:00:00:99:01"), ip: "10.77.0.20", hostname: "reserved-one" },
    ],
  });
  return {
    mode: "server",
    serverIp: SERVER,
    subnet: NET,
    router: "10.77.0.254",
    dns: ["10.77.0.53", "10.77.0.54"],
    domain: "lab.example",
    leaseSeconds: 3600,
    boot: { httpUrl: HTTP },
    leases,
    ...overrides,
  };
}

const ovmf = capture("ovmf_discover");
const arch = (n: number, vc: string) =>
  variant(ovmf, (o) => {
    o.set(DhcpOption.ClientArch, encodeClientArch([n]));
    o.setString(DhcpOption.VendorClassId, vc);
  });

Deno.test("chooseBootfile picks by client and architecture", async (t) => {
  const cases: [string, DhcpPacket, string | undefined, string?][] = [
    [
      "QEMU BIOS ROM (iPXE, 77 + 175)",
      capture("ipxe_bios_discover"),
      script(capture("ipxe_bios_discover")),
      "ipxe",
    ],
    [
      "iPXE EFI snponly",
      capture("ipxe_efi_discover"),
      script(capture("ipxe_efi_discover")),
      "ipxe",
    ],
    [
      "iPXE known by 175 alone",
      variant(capture("ipxe_bios_discover"), (o) => o.delete(DhcpOption.UserClass)),
      script(capture("ipxe_bios_discover")),
    ],
    [
      "iPXE known by 77 alone",
      variant(capture("ipxe_bios_discover"), (o) => o.delete(DhcpOption.IpxeEncap)),
      script(capture("ipxe_bios_discover")),
    ],
    ["OVMF native PXE, arch 7", ovmf, "snponly.efi", "pxe"],
    ["BIOS PXE, arch 0", arch(0, "PXEClient:Arch:00000:UNDI:002001"), "undionly.kpxe"],
    ["IA32 UEFI, arch 6", arch(6, "PXEClient:Arch:00006:UNDI:003000"), "i386/ipxe.efi"],
    ["x86-64 UEFI sending 9", arch(9, "PXEClient:Arch:00009:UNDI:003000"), "snponly.efi"],
    ["ARM64 UEFI, arch 11", arch(11, "PXEClient:Arch:00011:UNDI:003000"), "arm64/ipxe.efi"],
    [
      "x86-64 UEFI HTTP boot, arch 16",
      arch(16, "HTTPClient:Arch:00016:UNDI:003001"),
      `${HTTP}/tftp/snponly.efi`,
      "http",
    ],
    [
      "ARM64 UEFI HTTP boot, arch 19",
      arch(19, "HTTPClient:Arch:00019:UNDI:003001"),
      `${HTTP}/tftp/arm64/ipxe.efi`,
    ],
    ["ARM32 UEFI, no loader", arch(10, "PXEClient:Arch:00010:UNDI:003000"), undefined],
    [
      "no option 93: arch from option 60",
      variant(ovmf, (o) => o.delete(DhcpOption.ClientArch)),
      "snponly.efi",
    ],
    ["udhcpc (no 93, no PXE)", capture("udhcpc_discover"), "undionly.kpxe", "other"],
    ["dhclient", capture("dhclient_discover"), "undionly.kpxe", "other"],
  ];
  for (const [name, req, want, client] of cases) {
    await t.step(name, () => {
      const got = chooseBootfile(req, { httpUrl: HTTP });
      assert.equal(got?.bootfile, want);
      if (client) assert.equal(got?.client, client);
    });
  }
  await t.step("configured loaders replace the defaults", () => {
    const boot = { httpUrl: HTTP, efiLoader: "ipxe.efi", arm64Loader: "a64.efi" };
    assert.equal(chooseBootfile(ovmf, boot)?.bootfile, "ipxe.efi");
    const a64 = arch(11, "PXEClient:Arch:00011:UNDI:003000");
    assert.equal(chooseBootfile(a64, boot)?.bootfile, "a64.efi");
  });
  await t.step("secure_boot: x86-64 UEFI PXE gets shim, nobody else changes", async (t) => {
    const boot = { httpUrl: HTTP, secureBoot: true };
    const rows: [string, DhcpPacket, string][] = [
      ["OVMF native PXE, arch 7", ovmf, "shimx64.efi"],
      ["x86-64 UEFI sending 9", arch(9, "PXEClient:Arch:00009:UNDI:003000"), "shimx64.efi"],
      // iPXE EFI could only be running because Secure Boot is off: it keeps its script.
      ["iPXE EFI", capture("ipxe_efi_discover"), script(capture("ipxe_efi_discover"))],
      ["BIOS PXE, arch 0", arch(0, "PXEClient:Arch:00000:UNDI:002001"), "undionly.kpxe"],
      ["ARM64 UEFI, arch 11", arch(11, "PXEClient:Arch:00011:UNDI:003000"), "arm64/ipxe.efi"],
      // The signed GRUB cannot read over HTTP: HTTP boot keeps iPXE.
      [
        "x86-64 UEFI HTTP boot, arch 16",
        arch(16, "HTTPClient:Arch:00016:UNDI:003001"),
        `${HTTP}/tftp/snponly.efi`,
      ],
    ];
    for (const [name, req, want] of rows) {
      await t.step(name, () => assert.equal(chooseBootfile(req, boot)?.bootfile, want));
    }
    await t.step("proxy mode offers shim too", () => {
      const out = handleDhcp(ovmf, policy({ mode: "proxy", boot }));
      assert.equal(label(out), "proxy-offer");
      assert.equal(onWire(out).file, "shimx64.efi");
    });
  });
  await t.step("iPXE never gets a first-stage loader", () => {
    for (const name of ["ipxe_bios_discover", "ipxe_efi_discover", "ipxe_bios_request"]) {
      const req = capture(name);
      assert.ok(isIpxe(req), name);
      assert.match(
        chooseBootfile(req, { httpUrl: HTTP })!.bootfile,
        /^http:\/\/.*boot\.ipxe\?mac=[0-9a-f-]{17}$/,
      );
    }
  });
});

/** Encodes the reply the way the server does and decodes it again, as a client would see it. */
function onWire(out: DhcpOutcome): DhcpPacket {
  assert.ok(out.reply, `expected a reply, got ${JSON.stringify(out.event)}`);
  const bytes = encodeReply(out.reply);
  assert.ok(bytes.length <= out.reply.maxSize - 28);
  return decodeDhcp(bytes);
}

Deno.test("server mode OFFERs carry address, network and boot fields", async (t) => {
  const cases: {
    name: string;
    req: DhcpPacket;
    bootfile: string;
    vendorClass?: string;
    uuid: boolean;
  }[] = [
    { name: "OVMF", req: ovmf, bootfile: "snponly.efi", vendorClass: "PXEClient", uuid: true },
    {
      name: "QEMU BIOS iPXE",
      req: capture("ipxe_bios_discover"),
      bootfile: script(capture("ipxe_bios_discover")),
      vendorClass: "PXEClient",
      uuid: true,
    },
    {
      name: "HTTP boot",
      req: arch(16, "HTTPClient:Arch:00016:UNDI:003001"),
      bootfile: `${HTTP}/tftp/snponly.efi`,
      vendorClass: "HTTPClient",
      uuid: true,
    },
    { name: "udhcpc", req: capture("udhcpc_discover"), bootfile: "undionly.kpxe", uuid: false },
    { name: "dhclient", req: capture("dhclient_discover"), bootfile: "undionly.kpxe", uuid: false },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const o = policy();
      const out = handleDhcp(c.req, o);
      assert.equal(label(out), "offer");
      assert.deepEqual(
        { address: out.reply?.address, port: out.reply?.port },
        { address: "255.255.255.255", port: 68 },
      );
      const r = onWire(out);
      assert.equal(r.op, 2);
      assert.equal(r.xid, c.req.xid);
      assert.equal(r.options.messageType(), MessageType.Offer);
      assert.equal(r.yiaddr, "10.77.0.100");
      assert.equal(r.siaddr, SERVER);
      assert.equal(r.file, c.bootfile);
      assert.equal(r.options.string(DhcpOption.BootfileName), c.bootfile);
      assert.equal(r.options.string(DhcpOption.TftpServerName), SERVER);
      assert.equal(r.options.ip(DhcpOption.ServerId), SERVER);
      assert.equal(r.options.ip(DhcpOption.SubnetMask), "255.255.255.0");
      assert.deepEqual(r.options.ips(DhcpOption.Router), ["10.77.0.254"]);
      assert.deepEqual(r.options.ips(DhcpOption.DNS), ["10.77.0.53", "10.77.0.54"]);
      assert.equal(r.options.string(DhcpOption.DomainName), "lab.example");
      assert.equal(r.options.ip(DhcpOption.BroadcastAddr), "10.77.0.255");
      assert.equal(r.options.u32(DhcpOption.LeaseTime), 3600);
      assert.equal(r.options.u32(DhcpOption.RenewalTime), 1800);
      assert.equal(r.options.u32(DhcpOption.RebindingTime), 3150);
      assert.equal(r.options.vendorClass(), c.vendorClass);
      assert.equal(r.options.has(DhcpOption.ClientUuid), c.uuid);
      if (c.uuid) {
        assert.deepEqual(
          r.options.get(DhcpOption.ClientUuid),
          c.req.options.get(DhcpOption.ClientUuid),
        );
      }
      if (c.vendorClass === "PXEClient") {
        const pxe = decodePxeVendorOptions(r.options.get(DhcpOption.VendorSpecific)!);
        assert.equal(pxe.discoveryControl, 8);
      } else {
        assert.equal(r.options.has(DhcpOption.VendorSpecific), false);
      }
      assert.equal(o.leases.current(macOf(c.req)!)?.state, "offered");
    });
  }
});

Deno.test("reply options follow the client's option 55 order", async (t) => {
  await t.step("udhcpc asks 1 3 6 12 15 28 42", () => {
    const r = onWire(handleDhcp(capture("udhcpc_discover"), policy()));
    const codes = r.options.codes();
    assert.equal(codes[0], DhcpOption.MessageType);
    // 12 (no host name known) and 42 (NTP, not configured) are not sent.
    assert.deepEqual(codes.slice(1, 6), [1, 3, 6, 15, 28]);
    for (const code of [54, 51, 58, 59, 66, 67]) assert.ok(codes.includes(code), `has ${code}`);
  });
  await t.step("dhclient asks 1 28 2 3 15 6 …", () => {
    const r = onWire(handleDhcp(capture("dhclient_discover"), policy()));
    assert.deepEqual(r.options.codes().slice(0, 6), [53, 1, 28, 3, 15, 6]);
  });
});

/** The REQUEST a client sends after an OFFER (SELECTING state). */
function selecting(discover: DhcpPacket, ip: string, serverId = SERVER): DhcpPacket {
  return variant(discover, (o) => {
    o.setMessageType(MessageType.Request);
    o.setIp(DhcpOption.RequestedIP, ip);
    o.setIp(DhcpOption.ServerId, serverId);
  });
}

Deno.test("server mode REQUEST, RELEASE, DECLINE, INFORM", async (t) => {
  await t.step("SELECTING: ACK with the offered address, lease bound", () => {
    const o = policy();
    const offer = onWire(handleDhcp(ovmf, o));
    const out = handleDhcp(selecting(ovmf, offer.yiaddr), o);
    assert.equal(label(out), "ack");
    const ack = onWire(out);
    assert.equal(ack.yiaddr, offer.yiaddr);
    assert.equal(ack.file, "snponly.efi");
    assert.equal(o.leases.current(mustParseMac("52:54:00:ab:c0:01"))?.state, "bound");
  });
  await t.step("the iPXE second DHCP gets the address of the first", () => {
    // OVMF and the iPXE it loads share the MAC 52:54:00:ab:c0:01 in these captures.
    const o = policy();
    handleDhcp(capture("udhcpc_discover"), o);
    const first = onWire(handleDhcp(ovmf, o));
    onWire(handleDhcp(selecting(ovmf, first.yiaddr), o));
    const ipxeDiscover = capture("ipxe_efi_discover");
    const again = onWire(handleDhcp(ipxeDiscover, o));
    assert.equal(again.yiaddr, first.yiaddr);
    assert.equal(again.file, script(ipxeDiscover));
    const ack = onWire(handleDhcp(selecting(ipxeDiscover, again.yiaddr), o));
    assert.equal(ack.yiaddr, first.yiaddr);
  });
  await t.step("a REQUEST for another server frees our offer, no reply", () => {
    const o = policy();
    const offer = onWire(handleDhcp(ovmf, o));
    const out = handleDhcp(selecting(ovmf, "10.77.0.200", "10.77.0.9"), o);
    assert.equal(label(out), "ignored");
    assert.equal(out.reply, undefined);
    assert.equal(o.leases.current(mustParseMac("52:54:00:ab:c0:01")), null);
    assert.equal(onWire(handleDhcp(capture("udhcpc_discover"), o)).yiaddr, "10.77.0.101");
    assert.equal(offer.yiaddr, "10.77.0.100");
  });
  const naks: [string, (o: DhcpPolicyOptions & { leases: LeaseStore }) => DhcpPacket, RegExp][] = [
    ["address held by another client", (o) => {
      const other = onWire(handleDhcp(capture("udhcpc_discover"), o));
      return selecting(ovmf, other.yiaddr);
    }, /in-use/],
    [
      "INIT-REBOOT on a wrong network",
      () =>
        variant(ovmf, (opt) => {
          opt.setMessageType(MessageType.Request);
          opt.setIp(DhcpOption.RequestedIP, "192.168.5.5");
        }),
      /wrong network/,
    ],
    ["another machine's reservation", () => selecting(ovmf, "10.77.0.20"), /reserved-for-other/],
    [
      "REQUEST with neither option 50 nor ciaddr",
      () => variant(ovmf, (opt) => opt.setMessageType(MessageType.Request)),
      /no address/,
    ],
  ];
  for (const [name, make, reason] of naks) {
    await t.step(`NAK: ${name}`, () => {
      const o = policy();
      const out = handleDhcp(make(o), o);
      assert.equal(label(out), "nak");
      assert.match(String(out.event.kind === "reply" && out.event.reason), reason);
      assert.deepEqual([out.reply?.address, out.reply?.port], ["255.255.255.255", 68]);
      const nak = onWire(out);
      assert.equal(nak.options.messageType(), MessageType.Nak);
      assert.equal(nak.yiaddr, "0.0.0.0");
      assert.equal(nak.options.ip(DhcpOption.ServerId), SERVER);
      assert.equal(nak.options.has(DhcpOption.LeaseTime), false);
      assert.equal(nak.file, "");
    });
  }
  await t.step("RENEWING: unicast ACK to ciaddr, ciaddr echoed", () => {
    const o = policy();
    const offer = onWire(handleDhcp(capture("udhcpc_discover"), o));
    onWire(handleDhcp(selecting(capture("udhcpc_discover"), offer.yiaddr), o));
    const renew = variant(capture("udhcpc_request"), (opt) => {
      opt.delete(DhcpOption.RequestedIP);
      opt.delete(DhcpOption.ServerId);
    }, { ciaddr: offer.yiaddr });
    const out = handleDhcp(renew, o);
    assert.deepEqual([label(out), out.reply?.address, out.reply?.port], [
      "ack",
      offer.yiaddr,
      68,
    ]);
    const ack = onWire(out);
    assert.equal(ack.ciaddr, offer.yiaddr);
    assert.equal(ack.yiaddr, offer.yiaddr);
  });
  await t.step("RELEASE frees the lease", () => {
    const o = policy();
    const offer = onWire(handleDhcp(ovmf, o));
    handleDhcp(selecting(ovmf, offer.yiaddr), o);
    const rel = variant(ovmf, (opt) => opt.setMessageType(MessageType.Release), {
      ciaddr: offer.yiaddr,
    });
    const out = handleDhcp(rel, o);
    assert.deepEqual([label(out), out.event.kind === "release" && out.event.ok, out.reply], [
      "release",
      true,
      undefined,
    ]);
    assert.equal(o.leases.current(mustParseMac("52:54:00:ab:c0:01")), null);
  });
  await t.step("DECLINE quarantines the address and the next offer differs", () => {
    const o = policy();
    const offer = onWire(handleDhcp(ovmf, o));
    handleDhcp(selecting(ovmf, offer.yiaddr), o);
    const dec = variant(ovmf, (opt) => {
      opt.setMessageType(MessageType.Decline);
      opt.setIp(DhcpOption.RequestedIP, offer.yiaddr);
    });
    const out = handleDhcp(dec, o);
    assert.deepEqual([label(out), out.event.kind === "decline" && out.event.ok], ["decline", true]);
    const next = onWire(handleDhcp(ovmf, o));
    assert.notEqual(next.yiaddr, offer.yiaddr);
  });
  await t.step("INFORM: ACK with configuration, no address, no lease times", () => {
    const o = policy();
    const inform = variant(capture("udhcpc_discover"), (opt) => {
      opt.setMessageType(MessageType.Inform);
    }, { ciaddr: "10.77.0.33" });
    const out = handleDhcp(inform, o);
    assert.deepEqual([out.reply?.address, out.reply?.port], ["10.77.0.33", 68]);
    const ack = onWire(out);
    assert.equal(ack.options.messageType(), MessageType.Ack);
    assert.equal(ack.yiaddr, "0.0.0.0");
    assert.equal(ack.ciaddr, "10.77.0.33");
    assert.equal(ack.options.has(DhcpOption.LeaseTime), false);
    assert.equal(ack.options.ip(DhcpOption.SubnetMask), "255.255.255.0");
  });
  await t.step("a known machine without reservation gets its host name", () => {
    const o = policy({ hostnames: new Map([[mustParseMac("02:00:00:ab:c0:02"), "named-one"]]) });
    const offer = onWire(handleDhcp(capture("udhcpc_discover"), o));
    assert.equal(offer.yiaddr, "10.77.0.100");
    assert.equal(offer.options.string(DhcpOption.Hostname), "named-one");
  });
  await t.step("a reserved machine gets its address and host name", () => {
    const o = policy();
    const req = variant(capture("udhcpc_discover"), () => {}, {
      chaddr: Uint8Array.of(0x52, 0x54, 0, 0, 0x99, 1),
    });
    const offer = onWire(handleDhcp(req, o));
    assert.equal(offer.yiaddr, "10.77.0.20");
    assert.equal(offer.options.string(DhcpOption.Hostname), "reserved-one");
  });
});

Deno.test("reply addressing (RFC 2131 §4.1)", async (t) => {
  const cases: [string, Partial<DhcpPacket>, string, number][] = [
    ["broadcast flag", { flags: 0x8000 }, "255.255.255.255", 68],
    [
      "no flag, no ciaddr: still broadcast, never ARP-less unicast",
      { flags: 0 },
      "255.255.255.255",
      68,
    ],
    ["relay in our subnet", { giaddr: "10.77.0.2", hops: 1 }, "10.77.0.2", 67],
  ];
  for (const [name, fields, address, port] of cases) {
    await t.step(name, () => {
      const out = handleDhcp(variant(ovmf, () => {}, fields), policy());
      assert.deepEqual([out.reply?.address, out.reply?.port], [address, port]);
      if (fields.giaddr) assert.equal(onWire(out).giaddr, fields.giaddr);
    });
  }
  await t.step("relay from another subnet is not served (one pool)", () => {
    const out = handleDhcp(variant(ovmf, () => {}, { giaddr: "10.99.0.1" }), policy());
    assert.deepEqual([label(out), out.reply], ["ignored", undefined]);
  });
  await t.step("NAK through a relay asks it to broadcast", () => {
    const req = variant(ovmf, (o) => {
      o.setMessageType(MessageType.Request);
      o.setIp(DhcpOption.RequestedIP, "10.77.0.20");
    }, { giaddr: "10.77.0.2" });
    const out = handleDhcp(req, policy());
    assert.deepEqual([label(out), out.reply?.address, out.reply?.port], [
      "nak",
      "10.77.0.2",
      67,
    ]);
    assert.equal(onWire(out).flags & 0x8000, 0x8000);
  });
});

Deno.test("maximum message size is respected", async (t) => {
  const dns = Array.from({ length: 60 }, (_, i) => `10.77.1.${i + 1}`);
  await t.step("everything fits in 1472 bytes", () => {
    const req = variant(
      capture("udhcpc_discover"),
      (o) => o.setU16(DhcpOption.MaxMessageSize, 1472),
    );
    const out = handleDhcp(req, policy({ dns }));
    assert.equal(out.reply?.maxSize, 1472);
    const r = onWire(out);
    assert.deepEqual(r.options.ips(DhcpOption.DNS), dns);
    assert.deepEqual(r.options.codes(), out.reply!.packet.options.codes());
  });
  for (const size of [undefined, 576]) {
    await t.step(`option 57 = ${size ?? "absent"}: unrequested options give way`, () => {
      const req = variant(capture("udhcpc_discover"), (o) => {
        if (size === undefined) o.delete(DhcpOption.MaxMessageSize);
        else o.setU16(DhcpOption.MaxMessageSize, size);
      });
      const out = handleDhcp(req, policy({ dns }));
      assert.equal(out.reply?.maxSize, 576);
      const r = onWire(out);
      // 53, 54 and 51 always stay; what udhcpc asked for (1 3 6 15 28) stays before the rest.
      for (const code of [53, 54, 51, 1, 3, 6, 15, 28]) assert.ok(r.options.has(code), `${code}`);
      assert.deepEqual(r.options.ips(DhcpOption.DNS), dns);
      assert.ok(r.options.size < out.reply!.packet.options.size);
    });
  }
  await t.step("a client announcing less than 576 still gets 576", () => {
    const req = variant(ovmf, (o) => o.setU16(DhcpOption.MaxMessageSize, 300));
    assert.equal(handleDhcp(req, policy()).reply?.maxSize, 576);
  });
});

Deno.test("proxy mode answers PXE clients with boot info only", async (t) => {
  const proxy = () => policy({ mode: "proxy" });
  await t.step("OVMF DISCOVER → ProxyDHCPOFFER without address or lease", () => {
    const out = handleDhcp(ovmf, proxy());
    assert.equal(label(out), "proxy-offer");
    const r = onWire(out);
    assert.equal(r.options.messageType(), MessageType.Offer);
    assert.equal(r.yiaddr, "0.0.0.0");
    assert.equal(r.siaddr, SERVER);
    assert.equal(r.file, "snponly.efi");
    assert.equal(r.options.vendorClass(), "PXEClient");
    assert.equal(r.options.ip(DhcpOption.ServerId), SERVER);
    assert.ok(r.options.has(DhcpOption.VendorSpecific));
    for (const code of [1, 3, 6, 51, 58, 59]) assert.equal(r.options.has(code), false, `${code}`);
  });
  await t.step("iPXE gets the script", () => {
    assert.equal(
      onWire(handleDhcp(capture("ipxe_bios_discover"), proxy())).file,
      script(capture("ipxe_bios_discover")),
    );
  });
  const silent: [string, DhcpPacket][] = [
    ["udhcpc", capture("udhcpc_discover")],
    ["dhclient", capture("dhclient_discover")],
    ["PXE REQUEST on port 67 (for the real server)", capture("ovmf_request")],
  ];
  for (const [name, req] of silent) {
    await t.step(`${name} gets no answer`, () => {
      const out = handleDhcp(req, proxy());
      assert.deepEqual([label(out), out.reply], ["ignored", undefined]);
    });
  }
  await t.step("port 4011 REQUEST → ACK back to its sender", () => {
    const req = variant(capture("ipxe_efi_request"), () => {}, { ciaddr: "10.77.0.112" });
    const out = handlePxeRequest(req, proxy(), { address: "10.77.0.112", port: 68 });
    assert.deepEqual([label(out), out.reply?.address, out.reply?.port], [
      "proxy-ack",
      "10.77.0.112",
      68,
    ]);
    const r = onWire(out);
    assert.equal(r.options.messageType(), MessageType.Ack);
    assert.equal(r.yiaddr, "0.0.0.0");
    assert.equal(r.file, script(req));
  });
  await t.step("port 4011 ignores non-PXE and non-REQUEST", () => {
    const from = { address: "10.77.0.9", port: 68 };
    assert.equal(handlePxeRequest(capture("udhcpc_request"), proxy(), from).reply, undefined);
    assert.equal(handlePxeRequest(ovmf, proxy(), from).reply, undefined);
  });
});

Deno.test("requests that are not ours are ignored", async (t) => {
  const cases: [string, DhcpPacket][] = [
    ["a BOOTREPLY", capture("dnsmasq_offer_to_ovmf")],
    ["BOOTP without option 53", variant(ovmf, (o) => o.delete(DhcpOption.MessageType))],
    ["an OFFER type from a client", variant(ovmf, (o) => o.setMessageType(MessageType.Offer))],
    ["non-Ethernet hardware", { ...ovmf, htype: 6 }],
  ];
  for (const [name, req] of cases) {
    await t.step(name, () => {
      const out = handleDhcp(req, policy());
      assert.deepEqual([label(out), out.reply], ["ignored", undefined]);
    });
  }
});

Deno.test("a script URL too long for the file field goes in option 67 alone", () => {
  const long = `http://boot.example/${"x".repeat(120)}`;
  const req = capture("ipxe_bios_discover");
  const r = onWire(handleDhcp(req, policy({ boot: { httpUrl: long } })));
  assert.equal(r.file, "");
  assert.equal(
    r.options.string(DhcpOption.BootfileName),
    `${long}/boot.ipxe?mac=${macHyphens(macOf(req)!)}`,
  );
  assert.equal(r.options.messageType(), MessageType.Offer);
});
