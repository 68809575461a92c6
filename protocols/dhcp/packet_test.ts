import assert from "node:assert/strict";
import { MalformedPacketError } from "../../net/bytes.ts";
import { DhcpOption, DhcpOptions, MessageType } from "./options.ts";
import {
  decodeDhcp,
  type DhcpPacket,
  encodeDhcp,
  isBroadcast,
  macOf,
  maxMessageSize,
  replyTo,
} from "./packet.ts";
import { describeDhcp } from "./_dump.ts";
import { assertSamePacket, testRequest } from "./_test_utils.ts";
import { ClientArch, decodeClientNdi, ipxeFeatures, IpxeOption, ipxeVersion } from "./pxe.ts";

const TESTDATA = new URL("./testdata/", import.meta.url);

function capture(name: string): Uint8Array {
  return Deno.readFileSync(new URL(`${name}.bin`, TESTDATA));
}

function captureNames(): string[] {
  return [...Deno.readDirSync(TESTDATA)]
    .filter((e) => e.name.endsWith(".bin"))
    .map((e) => e.name.slice(0, -4))
    .sort();
}

const request = testRequest;

Deno.test("golden captures decode to their reviewed dumps", async (t) => {
  const names = captureNames();
  // udhcpc, dhclient, iPXE BIOS, OVMF, iPXE EFI: DISCOVER + REQUEST each, plus dnsmasq's replies.
  assert.ok(names.length >= 20, `only ${names.length} captures in testdata`);
  for (const name of names) {
    await t.step(name, () => {
      const want = Deno.readTextFileSync(new URL(`${name}.txt`, TESTDATA));
      assert.equal(describeDhcp(decodeDhcp(capture(name))), want);
    });
  }
});

Deno.test("golden captures survive decode → encode → decode, byte for byte up to End", async (t) => {
  for (const name of captureNames()) {
    await t.step(name, () => {
      const bytes = capture(name);
      const first = decodeDhcp(bytes);
      const again = encodeDhcp(first, { maxSize: 1500 });
      assertSamePacket(decodeDhcp(again), first);
      // None of these clients pads between options or splits them, so the encoder reproduces
      // the capture exactly up to End; what follows is zero padding on both sides.
      // End is the last 255 byte: only zeros follow it.
      const endAt = 240 + again.subarray(240).findLastIndex((b) => b === DhcpOption.End);
      assert.ok(endAt >= 240);
      assert.deepEqual(again.subarray(0, endAt + 1), bytes.subarray(0, endAt + 1));
      assert.ok(bytes.subarray(endAt + 1).every((b) => b === 0), "capture tail is padding");
      assert.ok(again.subarray(endAt + 1).every((b) => b === 0), "our tail is padding");
    });
  }
});

Deno.test("golden captures carry what each firmware is known to send", async (t) => {
  const cases: { name: string; check: (p: DhcpPacket) => void }[] = [
    {
      name: "udhcpc_discover",
      check: (p) => {
        assert.equal(p.options.messageType(), MessageType.Discover);
        assert.equal(p.options.vendorClass(), "udhcp 1.35.0");
        assert.equal(p.options.u16(DhcpOption.MaxMessageSize), 576);
        assert.deepEqual(p.options.clientId(), Uint8Array.of(1, ...p.chaddr));
        assert.deepEqual(p.options.clientArch(), []);
        assert.equal(p.options.has(DhcpOption.IpxeEncap), false);
      },
    },
    {
      name: "dhclient_discover",
      check: (p) => {
        assert.equal(p.options.string(DhcpOption.Hostname), "astral-test");
        assert.equal(p.options.vendorClass(), undefined);
        assert.deepEqual(p.options.paramRequestList().slice(0, 4), [1, 28, 2, 3]);
      },
    },
    {
      name: "dhclient_request",
      check: (p) => {
        assert.equal(p.options.messageType(), MessageType.Request);
        assert.equal(p.options.ip(DhcpOption.ServerId), "10.77.0.1");
        assert.match(p.options.ip(DhcpOption.RequestedIP) ?? "", /^10\.77\.0\.\d+$/);
      },
    },
    {
      name: "ipxe_bios_discover",
      check: (p) => {
        assert.equal(macOf(p), "52:54:00:ab:c0:01");
        assert.deepEqual(p.options.clientArch(), [ClientArch.X86Bios]);
        assert.equal(p.options.vendorClass(), "PXEClient:Arch:00000:UNDI:002001");
        assert.deepEqual(p.options.userClasses(), ["iPXE"]);
        assert.deepEqual(decodeClientNdi(p.options.get(DhcpOption.ClientNdi)!), {
          type: 1,
          major: 2,
          minor: 1,
        });
        assert.equal(p.options.u16(DhcpOption.MaxMessageSize), 1472);
        assert.deepEqual(p.options.uuid(), new Uint8Array(16));
        const encap = p.options.ipxeEncap();
        assert.ok(encap.has(IpxeOption.BusId));
        assert.equal(ipxeVersion(encap), "1.0.0");
        for (const f of ["Http", "Tftp", "Dns", "Pxe", "BzImage", "Menu"]) {
          assert.ok(ipxeFeatures(encap).includes(f), `feature ${f}`);
        }
        const prl = p.options.paramRequestList();
        for (const c of [43, 60, 66, 67, 128, 135, 175]) assert.ok(prl.includes(c), `55 has ${c}`);
        assert.equal(isBroadcast(p), false);
      },
    },
    {
      name: "ovmf_discover",
      check: (p) => {
        assert.deepEqual(p.options.clientArch(), [ClientArch.EfiX64]);
        assert.equal(p.options.vendorClass(), "PXEClient:Arch:00007:UNDI:003000");
        assert.equal(p.options.has(DhcpOption.UserClass), false);
        assert.equal(p.options.has(DhcpOption.IpxeEncap), false);
        assert.equal(p.options.clientId(), undefined);
        assert.equal(isBroadcast(p), true);
        assert.equal(p.options.u16(DhcpOption.MaxMessageSize), 1472);
      },
    },
    {
      name: "ovmf_request",
      check: (p) => {
        assert.equal(p.options.u16(DhcpOption.MaxMessageSize), 65280);
        assert.equal(maxMessageSize(p), 65280);
      },
    },
    {
      name: "ipxe_efi_discover",
      check: (p) => {
        assert.deepEqual(p.options.clientArch(), [ClientArch.EfiX64]);
        assert.equal(p.options.vendorClass(), "PXEClient:Arch:00007:UNDI:003010");
        assert.deepEqual(p.options.userClasses(), ["iPXE"]);
        assert.ok(ipxeFeatures(p.options.ipxeEncap()).includes("Efi"));
      },
    },
    {
      name: "dnsmasq_offer_to_ipxe_bios",
      check: (p) => {
        assert.equal(p.op, 2);
        assert.equal(p.options.messageType(), MessageType.Offer);
        assert.equal(p.siaddr, "10.77.0.1");
        assert.equal(p.options.string(DhcpOption.BootfileName), "x");
        assert.equal(p.options.u32(DhcpOption.LeaseTime), 3600);
        assert.deepEqual(p.options.ips(DhcpOption.Router), ["10.77.0.1"]);
      },
    },
  ];
  for (const c of cases) await t.step(c.name, () => c.check(decodeDhcp(capture(c.name))));
});

Deno.test("encodeDhcp frames options", async (t) => {
  await t.step("pads short messages to the 300-byte BOOTP minimum", () => {
    const b = encodeDhcp(request(new DhcpOptions().setMessageType(1)));
    assert.equal(b.length, 300);
    assert.deepEqual([...b.subarray(236, 244)], [99, 130, 83, 99, 53, 1, 1, 255]);
    assert.ok(b.subarray(244).every((x) => x === 0));
  });

  await t.step("keeps insertion order and puts End last", () => {
    const o = new DhcpOptions().setMessageType(2).setIp(54, "10.0.0.1").setU32(51, 60);
    const b = encodeDhcp(request(o, { op: 2 }));
    assert.deepEqual([...b.subarray(240, 256)], [
      ...[53, 1, 2],
      ...[54, 4, 10, 0, 0, 1],
      ...[51, 4, 0, 0, 0, 60],
      255,
    ]);
  });

  await t.step("splits a long option into 255-byte instances and decode joins them", () => {
    const long = Uint8Array.from({ length: 600 }, (_, i) => i % 251);
    const o = new DhcpOptions().setMessageType(5).set(DhcpOption.VendorSpecific, long);
    const b = encodeDhcp(request(o, { op: 2 }), { maxSize: 1500 });
    assert.deepEqual([b[243], b[244]], [43, 255]);
    assert.deepEqual([b[243 + 257], b[243 + 258]], [43, 255]);
    assert.deepEqual([b[243 + 514], b[243 + 515]], [43, 90]);
    assert.deepEqual(decodeDhcp(b).options.get(43), long);
  });

  await t.step("a zero-length option is written as code + 0", () => {
    const o = new DhcpOptions().setMessageType(1).set(80, new Uint8Array(0));
    const b = encodeDhcp(request(o));
    assert.deepEqual([...b.subarray(243, 246)], [80, 0, 255]);
    assert.deepEqual(decodeDhcp(b).options.get(80), new Uint8Array(0));
  });

  await t.step("uses file and sname (option 52) when the options field is full", () => {
    const o = new DhcpOptions().setMessageType(2);
    for (let code = 200; code < 205; code++) o.set(code, new Uint8Array(90).fill(code));
    const b = encodeDhcp(request(o, { op: 2 }));
    assert.ok(b.length <= 548);
    assert.deepEqual([...b.subarray(240, 243)], [52, 1, 3]);
    const back = decodeDhcp(b);
    assert.deepEqual(back.options.codes(), [53, 200, 201, 202, 203, 204]);
    assert.equal(back.file, "");
    assert.equal(back.sname, "");
    assertSamePacket(back, request(o, { op: 2 }));
  });

  await t.step("cuts an option at an area boundary only when whole moves cannot fit", () => {
    const o = new DhcpOptions().setMessageType(2).set(200, new Uint8Array(250).fill(1))
      .set(201, new Uint8Array(200).fill(2));
    const b = encodeDhcp(request(o, { op: 2 }));
    assertSamePacket(decodeDhcp(b), request(o, { op: 2 }));
  });

  await t.step("throws RangeError when nothing fits", () => {
    const o = new DhcpOptions().setMessageType(2).set(200, new Uint8Array(1000));
    assert.throws(() => encodeDhcp(request(o, { op: 2 })), RangeError);
    assert.throws(
      () => encodeDhcp(request(o, { op: 2, file: "pxelinux.0" }), { maxSize: 1200 }),
      RangeError,
    );
    assert.ok(encodeDhcp(request(o, { op: 2 }), { maxSize: 1500 }).length <= 1472);
  });

  await t.step(
    "file and sname: the text, then zeros; the same text twice is the same bytes",
    () => {
      const o = new DhcpOptions().setMessageType(2);
      const first = encodeDhcp(request(o, { op: 2, file: "undionly.kpxe", sname: "srv" }));
      const other = encodeDhcp(request(o, { op: 2, file: "ipxe.efi" }));
      const again = encodeDhcp(request(o, { op: 2, file: "undionly.kpxe", sname: "srv" }));
      assert.deepEqual(again, first);
      assert.equal(decodeDhcp(first).file, "undionly.kpxe");
      assert.equal(decodeDhcp(first).sname, "srv");
      assert.equal(decodeDhcp(other).file, "ipxe.efi");
      assert.equal(decodeDhcp(other).sname, "");
      assert.ok(first.subarray(44 + 3, 108).every((x) => x === 0)); // sname after "srv"
      assert.ok(other.subarray(108 + 8, 236).every((x) => x === 0)); // file after "ipxe.efi"
      assert.equal(first.length, 300); // padded to the minimum, exactly
    },
  );

  await t.step("refuses overload when file or sname are in use", () => {
    const o = new DhcpOptions().setMessageType(2).set(200, new Uint8Array(400));
    assert.throws(() => encodeDhcp(request(o, { op: 2, file: "undionly.kpxe" })), /fit in 576/);
  });

  await t.step("rejects out-of-range header fields", () => {
    const o = new DhcpOptions().setMessageType(1);
    const bad: Partial<DhcpPacket>[] = [
      { hlen: 17 },
      { xid: -1 },
      { secs: 70000 },
      { flags: 0x10000 },
      { chaddr: new Uint8Array(17) },
      { file: "f".repeat(128) },
      { sname: "s".repeat(64) },
      { ciaddr: "10.0.0" },
    ];
    for (const over of bad) assert.throws(() => encodeDhcp(request(o, over)), RangeError);
    assert.throws(() => encodeDhcp(request(o), { maxSize: 300 }), RangeError);
  });

  await t.step("writes sname and file as NUL-terminated strings", () => {
    const p = request(new DhcpOptions().setMessageType(2), {
      op: 2,
      sname: "astral",
      file: "tftp/undionly.kpxe",
    });
    const b = encodeDhcp(p);
    assert.equal(new TextDecoder().decode(b.subarray(44, 50)), "astral");
    assert.equal(b[50], 0);
    assert.equal(new TextDecoder().decode(b.subarray(108, 126)), "tftp/undionly.kpxe");
    assertSamePacket(decodeDhcp(b), p);
  });

  await t.step("drops a caller-set option 52: the encoder owns overload", () => {
    const o = new DhcpOptions().setMessageType(1).setU8(DhcpOption.Overload, 3);
    const back = decodeDhcp(encodeDhcp(request(o)));
    assert.deepEqual(back.options.codes(), [53]);
  });
});

Deno.test("replyTo builds a reply skeleton", async (t) => {
  const relayed = request(
    new DhcpOptions().setMessageType(1).set(DhcpOption.RelayAgentInfo, Uint8Array.of(1, 2, 0, 7)),
    { giaddr: "10.9.0.1", flags: 0x8000 | 0x0123, hops: 1, secs: 9, ciaddr: "10.9.0.50" },
  );
  await t.step(
    "copies xid, the broadcast flag (not the reserved bits), giaddr, chaddr and echoes option 82",
    () => {
      const r = replyTo(relayed, MessageType.Offer);
      assert.equal(r.op, 2);
      assert.equal(r.xid, relayed.xid);
      assert.equal(r.flags, 0x8000);
      assert.equal(r.giaddr, "10.9.0.1");
      assert.equal(r.hops, 0);
      assert.equal(r.ciaddr, "0.0.0.0");
      assert.deepEqual(r.chaddr, relayed.chaddr);
      assert.notEqual(r.chaddr, relayed.chaddr);
      assert.deepEqual(r.options.codes(), [53, 82]);
      assert.equal(r.options.messageType(), MessageType.Offer);
      assert.deepEqual(r.options.get(82), Uint8Array.of(1, 2, 0, 7));
    },
  );
  await t.step("an ACK echoes ciaddr (RFC 2131 table 3)", () => {
    assert.equal(replyTo(relayed, MessageType.Ack).ciaddr, "10.9.0.50");
  });
  await t.step("a reply to a real capture encodes and decodes", () => {
    const req = decodeDhcp(capture("ovmf_discover"));
    const r = replyTo(req, MessageType.Offer);
    r.yiaddr = "10.77.0.20";
    r.options.setIp(DhcpOption.ServerId, "10.77.0.1").setString(
      DhcpOption.VendorClassId,
      "PXEClient",
    );
    const back = decodeDhcp(encodeDhcp(r, { maxSize: maxMessageSize(req) }));
    assertSamePacket(back, r);
    assert.equal(isBroadcast(back), true);
    assert.equal(back.options.has(82), false);
  });
});

Deno.test("maxMessageSize honours option 57 but never goes below 576", async (t) => {
  const cases: [number | undefined, number][] = [[undefined, 576], [1472, 1472], [300, 576], [
    65280,
    65280,
  ]];
  for (const [opt, want] of cases) {
    await t.step(`57=${opt} → ${want}`, () => {
      const o = new DhcpOptions().setMessageType(1);
      if (opt !== undefined) o.setU16(57, opt);
      assert.equal(maxMessageSize(request(o)), want);
    });
  }
});

Deno.test("decode errors are MalformedPacketError with an offset", () => {
  const b = capture("udhcpc_discover").slice();
  b[236] = 0;
  assert.throws(
    () => decodeDhcp(b),
    (e) =>
      e instanceof MalformedPacketError && e.offset === 236 &&
      /magic cookie is 0x00825363/.test(e.message),
  );
});
