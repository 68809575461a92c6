import assert from "node:assert/strict";
import { openDatabase } from "../state/db.ts";
import { LeaseStore, poolExclusions } from "../state/leases.ts";
import {
  createDhcpHandler,
  type DhcpEvent,
  type DhcpOutcome,
  type DhcpPolicyOptions,
  handleDhcp,
  handlePxeRequest,
} from "./dhcp_responder.ts";
import { createLogger, type LogFormat, memoryLogger } from "../log.ts";
import { chooseBootfile } from "./bootfile.ts";
import { INVENTORY_QUERY } from "./inventory.ts";
import { isIpxe } from "../protocols/dhcp/client.ts";
import { encodeReply } from "../protocols/dhcp/wire.ts";
import { Subnet } from "../net/ipv4.ts";
import { type Mac, macHyphens, mustParseMac } from "../net/mac.ts";
import { DhcpOption, type DhcpOptions, MessageType } from "../protocols/dhcp/options.ts";
import { decodeDhcp, type DhcpPacket, macOf } from "../protocols/dhcp/packet.ts";
import { decodePxeVendorOptions, encodeClientArch } from "../protocols/dhcp/pxe.ts";
import { encodeOption } from "../protocols/dhcp/option_table.ts";
import type { ConfiguredOptions } from "./dhcp_options.ts";
import type { DhcpScope } from "./dhcp_responder.ts";

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

/** The script URL an iPXE client gets: with its own MAC and the settings it reports. */
function script(req: DhcpPacket): string {
  return `${HTTP}/boot.ipxe?mac=${macHyphens(macOf(req)!)}${INVENTORY_QUERY}`;
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
    // Debian ships no arm64 iPXE: shim → signed GRUB (boot/bootfile.ts).
    ["ARM64 UEFI, arch 11", arch(11, "PXEClient:Arch:00011:UNDI:003000"), "shimaa64.efi"],
    [
      "x86-64 UEFI HTTP boot, arch 16",
      arch(16, "HTTPClient:Arch:00016:UNDI:003001"),
      `${HTTP}/tftp/snponly.efi`,
      "http",
    ],
    [
      "ARM64 UEFI HTTP boot, arch 19",
      arch(19, "HTTPClient:Arch:00019:UNDI:003001"),
      `${HTTP}/tftp/shimaa64.efi`,
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
      ["ARM64 UEFI, arch 11", arch(11, "PXEClient:Arch:00011:UNDI:003000"), "shimaa64.efi"],
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
  await t.step("an installed x86-64 UEFI machine gets shim → GRUB, to chainload its disk", () => {
    const asked: string[] = [];
    const installed = macOf(ovmf)!;
    const boot = {
      httpUrl: HTTP,
      diskChain: (mac: Mac) => (asked.push(mac), mac === installed),
    };
    assert.equal(chooseBootfile(ovmf, boot)?.bootfile, "shimx64.efi");
    const other = variant(ovmf, () => {}, { chaddr: new Uint8Array([0x52, 0x54, 0, 0, 0, 0x77]) });
    assert.equal(chooseBootfile(other, boot)?.bootfile, "snponly.efi");
    // Asked only for x86-64 UEFI PXE clients: iPXE and BIOS keep their paths without a look.
    const ipxe = capture("ipxe_efi_discover");
    assert.equal(chooseBootfile(ipxe, boot)?.bootfile, script(ipxe));
    assert.equal(
      chooseBootfile(arch(0, "PXEClient:Arch:00000:UNDI:002001"), boot)?.bootfile,
      "undionly.kpxe",
    );
    assert.deepEqual(asked, [installed, "52:54:00:00:00:77"]);
  });
  await t.step("iPXE never gets a first-stage loader", () => {
    for (const name of ["ipxe_bios_discover", "ipxe_efi_discover", "ipxe_bios_request"]) {
      const req = capture(name);
      assert.ok(isIpxe(req), name);
      assert.match(
        chooseBootfile(req, { httpUrl: HTTP })!.bootfile,
        /^http:\/\/.*boot\.ipxe\?mac=[0-9a-f-]{17}&uuid=\$\{uuid\}&/,
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
      // The file field holds 127 bytes: iPXE's script URL (with the inventory) is option 67's.
      assert.equal(r.file, c.bootfile.length <= 127 ? c.bootfile : "");
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

Deno.test("an ACK leaves once its lease is saved; an OFFER does not wait", async (t) => {
  const db = openDatabase(":memory:");
  let now = Date.now();
  const leases = new LeaseStore(db, { range: ["10.77.0.100", "10.77.0.150"], now: () => now });
  const events: DhcpEvent[] = [];
  const logger = memoryLogger();
  const { mode: _, ...rest } = policy({ leases });
  const handler = createDhcpHandler({ policy: rest, onEvent: (e) => events.push(e), logger });
  const ctx = { from: { address: "0.0.0.0", port: 68 }, port: 67, mode: "server" as const };
  const stored = () =>
    db.prepare("SELECT state FROM dhcp_leases WHERE ip = '10.77.0.100'").get()?.state;
  await t.step("the OFFER is sent at once, its hold not yet written", () => {
    const offer = handler(ovmf, ctx);
    assert.ok(offer && !(offer instanceof Promise));
    assert.equal(offer.packet.yiaddr, "10.77.0.100");
    assert.equal(stored(), undefined);
  });
  await t.step("the ACK, its log line and event come after the commit", async () => {
    const ack = handler(selecting(ovmf, "10.77.0.100"), ctx);
    assert.ok(ack instanceof Promise);
    assert.equal(events.map((e) => e.kind === "reply" ? e.reply : e.kind).join(), "offer");
    assert.equal((await ack)?.packet.yiaddr, "10.77.0.100");
    assert.equal(stored(), "bound");
    const last = events.at(-1);
    assert.equal(last?.kind === "reply" ? `${last.reply} ${last.ip}` : "", "ack 10.77.0.100");
    const line = logger.lines.find((l) => l.message === "DHCPACK 10.77.0.100 to 52:54:00:ab:c0:01");
    // The line carries the event's every field but the inventory (shown elsewhere), then dest.
    const { inventory: _, ...fields } = last as DhcpEvent & { inventory?: unknown };
    assert.deepEqual(line?.fields, { ...fields, dest: "255.255.255.255:68" });
  });
  await t.step("a lease given back while its ACK waited for the commit gets no ACK", async () => {
    const ack = handler(selecting(ovmf, "10.77.0.100"), ctx);
    assert.ok(ack instanceof Promise);
    // A RELEASE from the same MAC, answered before the commit (anyone can send one for it).
    const rel = variant(ovmf, (o) => o.setMessageType(MessageType.Release), {
      ciaddr: "10.77.0.100",
    });
    assert.equal(handler(rel, ctx), null);
    assert.equal(await ack, null);
    const e = events.at(-1)!;
    assert.equal(e.kind, "ignored");
    assert.match(e.kind === "ignored" ? e.why : "", /10\.77\.0\.100 no longer bound .* no ACK/);
    assert.equal(stored(), "released");
    // Asked again (the client did not get its ACK): a new lease, and its ACK.
    handler(ovmf, ctx);
    const again = await handler(selecting(ovmf, "10.77.0.100"), ctx);
    assert.equal(again?.packet.yiaddr, "10.77.0.100");
    assert.equal(stored(), "bound");
  });
  await t.step(
    "a REQUEST repeated before the commit, or a lease run out by then: both ACK",
    async () => {
      const first = handler(selecting(ovmf, "10.77.0.100"), ctx);
      const second = handler(selecting(ovmf, "10.77.0.100"), ctx);
      // The clock passes the lease's end (3600 s) while the ACKs wait: still the client's lease.
      now += 3_601_000;
      assert.deepEqual(
        [(await first)?.packet.yiaddr, (await second)?.packet.yiaddr],
        ["10.77.0.100", "10.77.0.100"],
      );
      now -= 3_601_000;
    },
  );
  await t.step("a lease the database refuses gets no ACK, and says why", async () => {
    db.exec(`CREATE TRIGGER refuse BEFORE UPDATE ON dhcp_leases
      BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END`);
    const saved = leases.current(macOf(ovmf)!);
    now += 60_000;
    const ack = handler(selecting(ovmf, "10.77.0.100"), ctx);
    // The renewal is in memory at once (a minute later: a new end)…
    assert.equal(leases.current(macOf(ovmf)!)?.expires, saved!.expires + 60_000);
    assert.ok(ack instanceof Promise);
    assert.equal(await ack, null);
    const e = events.at(-1)!;
    assert.equal(e.kind, "ignored");
    assert.match(
      e.kind === "ignored" ? e.why : "",
      /lease not saved, no ACK: lease row of 10\.77\.0\.100 refused: refused by a trigger/,
    );
    assert.ok(logger.lines.some((l) => l.level === "warn" && /ACKs withheld/.test(l.message)));
    // …and, refused, goes back to the lease on disk.
    assert.deepEqual(leases.current(macOf(ovmf)!), saved);
    now -= 60_000;
    db.exec("DROP TRIGGER refuse");
    leases.flush();
  });
  await t.step("a failure of another kind within the minute is told too", async () => {
    const withheld = () =>
      logger.lines.filter((l) => l.level === "warn" && /ACKs withheld/.test(l.message));
    assert.equal(withheld().length, 1);
    // The whole commit fails now (its statement finds no table), not one row.
    db.exec("ALTER TABLE dhcp_leases RENAME TO dhcp_leases_aside");
    try {
      assert.equal(await handler(selecting(ovmf, "10.77.0.100"), ctx), null);
      assert.equal(withheld().length, 2);
      assert.match(withheld()[1]!.message, /lease not saved, no ACK: .*dhcp_leases/);
      // The same kind again within the minute: not told twice.
      assert.equal(await handler(selecting(ovmf, "10.77.0.100"), ctx), null);
      assert.equal(withheld().length, 2);
    } finally {
      db.exec("ALTER TABLE dhcp_leases_aside RENAME TO dhcp_leases");
    }
    leases.flush();
  });
  await t.step("a lease declined while its ACK waited gets no ACK", async () => {
    const ack = handler(selecting(ovmf, "10.77.0.100"), ctx);
    const decline = variant(ovmf, (o) => {
      o.setMessageType(MessageType.Decline);
      o.setIp(DhcpOption.RequestedIP, "10.77.0.100");
    });
    assert.equal(handler(decline, ctx), null);
    assert.equal(await ack, null);
    const e = events.at(-1)!;
    assert.match(e.kind === "ignored" ? e.why : "", /no longer bound .* no ACK/);
    assert.equal(stored(), "declined");
  });
});

Deno.test("a reply's log line is the text the general path writes for the event's fields", async (t) => {
  for (const format of ["json", "text", "journal"] as LogFormat[]) {
    await t.step(format, async () => {
      const leases = new LeaseStore(openDatabase(":memory:"), {
        range: ["10.77.0.100", "10.77.0.150"],
      });
      const lines: string[] = [];
      const general: string[] = [];
      const events: DhcpEvent[] = [];
      const logger = createLogger({ format, write: (l) => lines.push(l) });
      const reference = createLogger({ format, write: (l) => general.push(l) });
      // Written by the prepared writer itself, never through the level's method.
      let generalCalls = 0;
      const info = logger.info;
      logger.info = (...args) => (generalCalls++, info(...args));
      const { mode: _, ...rest } = policy({ leases });
      const handler = createDhcpHandler({ policy: rest, onEvent: (e) => events.push(e), logger });
      const ctx = { from: { address: "0.0.0.0", port: 68 }, port: 67, mode: "server" as const };
      const sent = [
        handler(ovmf, ctx),
        await handler(selecting(ovmf, "10.77.0.100"), ctx),
        // Another network's address: a NAK, with its reason, and no yiaddr.
        await handler(selecting(ovmf, "10.99.0.1"), ctx),
      ];
      assert.deepEqual(
        events.map((e) => e.kind === "reply" ? e.reply : e.kind),
        ["offer", "ack", "nak"],
      );
      events.forEach((e, i) => {
        assert.ok(e.kind === "reply");
        const { inventory: _, ...fields } = e;
        const to = sent[i] as { address: string; port: number };
        reference.info(
          "dhcp",
          `${e.reply === "nak" ? "DHCPNAK" : `DHCP${e.reply.toUpperCase()} ${e.ip}`} to ${e.mac}`,
          {
            ...fields,
            dest: `${to.address}:${to.port}`,
          },
        );
      });
      const untimed = (l: string) =>
        l.replace(/"time":"[^"]*"/, '"time":""').replace(/^\d\d:\d\d:\d\d\.\d{3}/, "");
      assert.deepEqual(lines.map(untimed), general.map(untimed));
      assert.match(lines[2]!, /reason/);
      assert.equal(generalCalls, 0);
    });
  }
});

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
    assert.equal(again.options.string(DhcpOption.BootfileName), script(ipxeDiscover));
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
  await t.step("relay from a network no subnet covers is refused: no-subnet", () => {
    const out = handleDhcp(variant(ovmf, () => {}, { giaddr: "10.99.0.1" }), policy());
    assert.deepEqual([label(out), out.reply], ["ignored", undefined]);
    assert.deepEqual(out.event, {
      kind: "ignored",
      mac: macOf(ovmf),
      why: "relay 10.99.0.1: no [[dhcp.subnet]] contains it",
      refusal: "no-subnet",
    });
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
      onWire(handleDhcp(capture("ipxe_bios_discover"), proxy())).options.string(
        DhcpOption.BootfileName,
      ),
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
    assert.equal(r.options.string(DhcpOption.BootfileName), script(req));
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

Deno.test("iPXE's script URL goes in option 67 alone; the inventory only where it fits", async (t) => {
  const req = capture("ipxe_bios_discover");
  const mac = macHyphens(macOf(req)!);
  const table: [string, string, string][] = [
    // The file field holds 127 bytes; option 67 takes 255 in one piece.
    ["with the inventory (over 127 bytes)", HTTP, `${HTTP}/boot.ipxe?mac=${mac}${INVENTORY_QUERY}`],
    [
      "a public_url too long for it as well: the MAC alone",
      `http://boot.example/${"x".repeat(120)}`,
      `http://boot.example/${"x".repeat(120)}/boot.ipxe?mac=${mac}`,
    ],
  ];
  for (const [name, httpUrl, want] of table) {
    await t.step(name, () => {
      const r = onWire(handleDhcp(req, policy({ boot: { httpUrl } })));
      assert.equal(r.file, "");
      assert.equal(r.options.string(DhcpOption.BootfileName), want);
      assert.ok(want.length > 127 && want.length <= 255, `${want.length}`);
      assert.equal(r.options.messageType(), MessageType.Offer);
    });
  }
});

Deno.test("a reply's event says what the request told of its sender", () => {
  const out = handleDhcp(ovmf, policy());
  assert.equal(out.event.kind, "reply");
  assert.deepEqual(out.event.kind === "reply" && out.event.inventory, {
    dhcp_arch: 7,
    dhcp_uuid: null,
    vendor_class: "PXEClient:Arch:00007:UNDI:003000",
    user_class: null,
  });
});

/** Configured options from config-style values, `force` by name. */
function configured(
  values: Record<string, unknown>,
  force: string[] = [],
): ConfiguredOptions {
  const encoded = Object.entries(values).map(([k, v]) => encodeOption(k, v));
  return {
    values: new Map(encoded.map((e) => [e.spec.code, e.bytes])),
    force: new Set(force.map((k) => encodeOption(k, values[k] ?? "hex:").spec.code)),
  };
}

/** udhcpc's DISCOVER asking for `asked` (option 55) with room for 1472 bytes. */
function asking(asked: number[], mac?: string): DhcpPacket {
  return variant(capture("udhcpc_discover"), (o) => {
    o.set(DhcpOption.ParamRequestList, Uint8Array.from(asked));
    o.setU16(DhcpOption.MaxMessageSize, 1472);
  }, mac ? { chaddr: Uint8Array.from(mac.split(":"), (h) => parseInt(h, 16)) } : {});
}

Deno.test("configured options: sent when asked (option 55) or forced; machine over network", async (t) => {
  const MACHINE = "52:54:00:00:99:07";
  const global = configured({ ntp: ["10.77.0.123"], mtu: 9000, "224": "text", tz_name: "UTC" }, [
    "tz_name",
  ]);
  const machine = configured({ ntp: ["10.77.0.9"], "224": "mine" }, ["224"]);
  const machineOptions = new Map([[mustParseMac(MACHINE), machine]]);
  const ip = (s: string) => s.split(".").map(Number);
  const text = (s: string) => [...new TextEncoder().encode(s)];
  const cases: {
    name: string;
    req: DhcpPacket;
    want: Record<number, number[] | undefined>;
  }[] = [
    {
      name: "asked for 42: the network's NTP; 26 unasked stays out; forced 101 goes",
      req: asking([1, 3, 42]),
      want: { 42: ip("10.77.0.123"), 26: undefined, 224: undefined, 101: text("UTC") },
    },
    {
      name: "asked for 26 and 224",
      req: asking([26, 224]),
      want: { 26: [0x23, 0x28], 224: text("text"), 42: undefined },
    },
    {
      name: "the machine's NTP over the network's; its forced 224 goes unasked",
      req: asking([42], MACHINE),
      want: { 42: ip("10.77.0.9"), 224: text("mine"), 26: undefined, 101: text("UTC") },
    },
    {
      name: "the machine inherits what it does not set",
      req: asking([26], MACHINE),
      want: { 26: [0x23, 0x28] },
    },
    {
      name: "nothing asked: only the forced ones",
      req: asking([]),
      want: { 42: undefined, 26: undefined, 224: undefined, 101: text("UTC") },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const r = onWire(handleDhcp(c.req, policy({ options: global, machineOptions })));
      for (const [code, bytes] of Object.entries(c.want)) {
        const got = r.options.get(Number(code));
        assert.deepEqual(got && [...got], bytes, `option ${code}`);
      }
    });
  }
  await t.step("asked options come in the client's order, then the forced ones", () => {
    const r = onWire(handleDhcp(asking([224, 42, 1]), policy({ options: global })));
    assert.deepEqual(r.options.codes().slice(0, 4), [53, 224, 42, 1]);
    assert.ok(r.options.codes().indexOf(101) > 4);
  });
  await t.step("an ACK and an INFORM carry them too", () => {
    const o = policy({ options: global });
    const offer = handleDhcp(asking([42]), o);
    const req = variant(asking([42]), (x) => {
      x.setMessageType(MessageType.Request);
      x.setIp(DhcpOption.RequestedIP, offer.reply!.packet.yiaddr);
      x.setIp(DhcpOption.ServerId, SERVER);
    });
    assert.deepEqual([...onWire(handleDhcp(req, o)).options.get(42)!], ip("10.77.0.123"));
    const inform = variant(asking([42]), (x) => x.setMessageType(MessageType.Inform), {
      ciaddr: "10.77.0.77",
    });
    assert.deepEqual([...onWire(handleDhcp(inform, o)).options.get(42)!], ip("10.77.0.123"));
  });
  await t.step("a NAK and a proxy answer carry none", () => {
    const nak = variant(asking([42]), (x) => {
      x.setMessageType(MessageType.Request);
      x.setIp(DhcpOption.RequestedIP, "10.77.0.200");
    });
    const out = handleDhcp(nak, policy({ options: global }));
    assert.equal(label(out), "nak");
    assert.equal(onWire(out).options.has(42), false);
    const pxe = variant(ovmf, (x) => x.set(DhcpOption.ParamRequestList, Uint8Array.of(42)));
    const proxy = onWire(handleDhcp(pxe, policy({ mode: "proxy", options: global })));
    assert.equal(proxy.options.has(42), false);
  });
});

Deno.test("configured options replace what the server sends anyway, never a boot client's boot fields", async (t) => {
  const options = configured({
    router: ["10.77.0.250"],
    dns: ["9.9.9.9"],
    tftp_server: "tftp.phones.example",
    vendor_specific: "hex:0104c0a80101",
  });
  await t.step("udhcpc (not a boot client) gets all four, unasked router and DNS too", () => {
    const r = onWire(handleDhcp(asking([1, 66, 43]), policy({ options })));
    assert.deepEqual(r.options.ips(DhcpOption.Router), ["10.77.0.250"]);
    assert.deepEqual(r.options.ips(DhcpOption.DNS), ["9.9.9.9"]);
    assert.equal(r.options.string(DhcpOption.TftpServerName), "tftp.phones.example");
    assert.deepEqual([...r.options.get(DhcpOption.VendorSpecific)!], [1, 4, 192, 168, 1, 1]);
  });
  await t.step("OVMF (PXE) keeps the server's 43 and 66, gets the router", () => {
    const pxe = variant(ovmf, (x) => x.set(DhcpOption.ParamRequestList, Uint8Array.of(3, 43, 66)));
    const r = onWire(handleDhcp(pxe, policy({ options })));
    assert.deepEqual(r.options.ips(DhcpOption.Router), ["10.77.0.250"]);
    assert.equal(r.options.string(DhcpOption.TftpServerName), SERVER);
    assert.equal(
      decodePxeVendorOptions(r.options.get(DhcpOption.VendorSpecific)!).discoveryControl,
      8,
    );
  });
});

Deno.test("a configured option longer than 255 bytes is split (RFC 3396) and read back whole", async (t) => {
  const names = Array.from({ length: 30 }, (_, i) => `rack${i}.site${i}.example.org`);
  const options = configured({ domain_search: names });
  const value = options.values.get(119)!;
  assert.ok(value.length > 255, `${value.length} bytes`);
  await t.step("within 1472 bytes: in the options field, as consecutive parts", () => {
    const out = handleDhcp(asking([119]), policy({ options }));
    const bytes = encodeReply(out.reply!);
    const r = decodeDhcp(bytes);
    assert.deepEqual(r.options.get(119), value);
    // The parts follow each other: 119 255 … 119 n …
    const parts: [number, number][] = [];
    for (let at = 240; bytes[at] !== 255; at += 2 + bytes[at + 1]!) {
      parts.push([bytes[at]!, bytes[at + 1]!]);
    }
    const first = parts.findIndex(([code]) => code === 119);
    assert.deepEqual(parts.slice(first, first + 2), [[119, 255], [119, value.length - 255]]);
  });
  await t.step("within 576 bytes it does not fit and gives way; the reply still goes", () => {
    const req = variant(asking([119]), (x) => x.delete(DhcpOption.MaxMessageSize));
    const r = onWire(handleDhcp(req, policy({ options })));
    assert.equal(r.options.has(119), false);
    assert.equal(r.options.messageType(), MessageType.Offer);
  });
});

const RELAYED = Subnet.parse("10.88.0.0/24");
const RELAY = "10.88.0.1";

/** The policy with a second network behind a relay, its store on the same database. */
function relayedPolicy(
  machineOptions?: ReadonlyMap<ReturnType<typeof mustParseMac>, ConfiguredOptions>,
) {
  const o = policy({
    options: configured({ ntp: ["10.77.0.123"], mtu: 1400 }),
    machineOptions,
  });
  const far: DhcpScope & { leases: LeaseStore } = {
    subnet: RELAYED,
    router: RELAY,
    dns: ["10.88.0.53"],
    domain: "far.example",
    leaseSeconds: 600,
    leases: new LeaseStore(openDatabase(":memory:"), {
      range: ["10.88.0.100", "10.88.0.150"],
      subnet: RELAYED,
      exclude: poolExclusions(SERVER, RELAYED, RELAY),
    }),
    // Global < subnet, as app/dhcp.ts merges them.
    options: configured({ ntp: ["10.88.0.123"], mtu: 1400 }),
  };
  return { o: { ...o, subnets: [far] }, far };
}

/** A request `req` as the relay forwards it: giaddr, a hop, option 82 added. */
function relayed(req: DhcpPacket): DhcpPacket {
  return variant(
    req,
    (x) => x.set(DhcpOption.RelayAgentInfo, Uint8Array.of(1, 3, 0x65, 0x74, 0x31)),
    {
      giaddr: RELAY,
      hops: 1,
    },
  );
}

Deno.test("a request relayed from a [[dhcp.subnet]] is served from that subnet", async (t) => {
  const MACHINE = mustParseMac("52:54:00:00:88:07");
  const { o, far } = relayedPolicy(new Map([[MACHINE, configured({ mtu: 9000 })]]));
  const discover = relayed(asking([1, 3, 6, 15, 26, 42]));
  let ip = "";
  await t.step(
    "OFFER: its pool, its router, DNS, domain, lease and options; boot at the server",
    () => {
      const out = handleDhcp(discover, o);
      assert.equal(label(out), "offer");
      assert.deepEqual([out.reply?.address, out.reply?.port], [RELAY, 67]);
      const r = onWire(out);
      ip = r.yiaddr;
      assert.equal(ip, "10.88.0.100");
      assert.equal(r.giaddr, RELAY);
      assert.equal(r.options.ip(DhcpOption.SubnetMask), "255.255.255.0");
      assert.deepEqual(r.options.ips(DhcpOption.Router), [RELAY]);
      assert.deepEqual(r.options.ips(DhcpOption.DNS), ["10.88.0.53"]);
      assert.equal(r.options.string(DhcpOption.DomainName), "far.example");
      assert.equal(r.options.ip(DhcpOption.BroadcastAddr), "10.88.0.255");
      assert.equal(r.options.u32(DhcpOption.LeaseTime), 600);
      assert.deepEqual(r.options.ips(42), ["10.88.0.123"]);
      assert.equal(r.options.u16(26), 1400);
      // The boot information points at this server, whatever network the client is on.
      assert.equal(r.siaddr, SERVER);
      assert.equal(r.options.ip(DhcpOption.ServerId), SERVER);
      assert.equal(r.options.string(DhcpOption.TftpServerName), SERVER);
      assert.deepEqual(
        r.options.get(DhcpOption.RelayAgentInfo),
        Uint8Array.of(1, 3, 0x65, 0x74, 0x31),
      );
      assert.equal(r.options.codes().at(-1), DhcpOption.RelayAgentInfo);
      assert.equal(far.leases.current(macOf(discover)!)?.ip, ip);
      assert.equal(o.leases.current(macOf(discover)!), null);
    },
  );
  await t.step("ACK through the relay", () => {
    const req = relayed(variant(asking([42]), (x) => {
      x.setMessageType(MessageType.Request);
      x.setIp(DhcpOption.RequestedIP, ip);
      x.setIp(DhcpOption.ServerId, SERVER);
    }));
    const out = handleDhcp(req, o);
    assert.equal(label(out), "ack");
    assert.deepEqual([out.reply?.address, out.reply?.port], [RELAY, 67]);
    assert.equal(far.leases.current(macOf(req)!)?.state, "bound");
  });
  await t.step("RENEWING by unicast (ciaddr, no relay): served from the subnet, to ciaddr", () => {
    const req = variant(asking([42]), (x) => x.setMessageType(MessageType.Request), {
      ciaddr: ip,
    });
    const out = handleDhcp(req, o);
    assert.equal(label(out), "ack");
    assert.deepEqual([out.reply?.address, out.reply?.port], [ip, 68]);
    assert.equal(onWire(out).options.u32(DhcpOption.LeaseTime), 600);
  });
  await t.step("an address of the interface's network asked through the relay: NAK", () => {
    const req = relayed(variant(asking([]), (x) => {
      x.setMessageType(MessageType.Request);
      x.setIp(DhcpOption.RequestedIP, "10.77.0.100");
    }));
    const out = handleDhcp(req, o);
    assert.equal(label(out), "nak");
    assert.equal(out.event.kind === "reply" && out.event.reason, "wrong network");
  });
  await t.step("a machine's options over the subnet's, and the subnet's over the global", () => {
    const req = relayed(asking([26, 42], "52:54:00:00:88:07"));
    const r = onWire(handleDhcp(req, o));
    assert.equal(r.options.u16(26), 9000);
    assert.deepEqual(r.options.ips(42), ["10.88.0.123"]);
    assert.match(r.yiaddr, /^10\.88\.0\./);
  });
  await t.step("RELEASE by unicast from the subnet's address", () => {
    const rel = variant(asking([]), (x) => x.setMessageType(MessageType.Release), { ciaddr: ip });
    const out = handleDhcp(rel, o);
    assert.deepEqual(out.event, { kind: "release", mac: macOf(rel), ip, ok: true });
    assert.equal(far.leases.current(macOf(rel)!), null);
  });
  await t.step("a relay on the interface's own network still gets the interface's pool", () => {
    const out = handleDhcp(variant(asking([]), () => {}, { giaddr: "10.77.0.2" }), o);
    assert.match(onWire(out).yiaddr, /^10\.77\.0\./);
  });
});

Deno.test("a reserved machine whose address another client still holds waits, and is told", () => {
  const db = openDatabase(":memory:");
  const range: [string, string] = ["10.77.0.100", "10.77.0.150"];
  const holder = mustParseMac("52:54:00:00:99:02");
  const before = new LeaseStore(db, { range });
  assert.deepEqual(before.offer(holder), { ip: "10.77.0.100" });
  assert.ok(before.commit(holder, "10.77.0.100", 600).ok);
  // A reload reserves that address for the OVMF machine of the captures.
  const reserved = macOf(ovmf)!;
  const leases = new LeaseStore(db, {
    range,
    reservations: [{ mac: reserved, ip: "10.77.0.100", hostname: "late" }],
  });
  const events: DhcpEvent[] = [];
  const logger = memoryLogger();
  const { mode: _, ...rest } = policy({ leases });
  const handler = createDhcpHandler({ policy: rest, onEvent: (e) => events.push(e), logger });
  const ctx = { from: { address: "0.0.0.0", port: 68 }, port: 67, mode: "server" as const };
  assert.equal(handler(ovmf, ctx), null);
  assert.deepEqual(events.at(-1), {
    kind: "ignored",
    mac: reserved,
    why: "its reserved address is still leased to another client, which is refused at its " +
      "next renewal",
    refusal: "reserved-in-use",
  });
  assert.ok(
    logger.lines.some((l) =>
      l.level === "warn" && /^a \[\[machine\]\] waits for its address/.test(l.message)
    ),
  );
  assert.equal(leases.holderOf("10.77.0.100"), holder);
});
