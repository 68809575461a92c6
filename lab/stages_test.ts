import assert from "node:assert/strict";
import {
  formatStages,
  type Packet,
  parseTsharkFields,
  type Stage,
  stagesFromPackets,
  TSHARK_FIELDS,
} from "./stages.ts";

const C = "10.77.0.116", S = "10.77.0.1", ANY = "0.0.0.0", BC = "255.255.255.255";
const T0 = 1_800_000_000; // capture seconds; the VM starts at T0

function dhcp(t: number, type: number, xid: number, options: number[] = [53]): Packet {
  const fromClient = type === 1 || type === 3;
  return {
    time: T0 + t,
    src: fromClient ? ANY : S,
    dst: fromClient ? BC : C,
    udp: fromClient ? { src: 68, dst: 67 } : { src: 67, dst: 68 },
    dhcp: { type, xid, options },
  };
}
function tftp(
  t: number,
  from: [string, number],
  to: [string, number],
  opcode?: number,
  file?: string,
) {
  return {
    time: T0 + t,
    src: from[0],
    dst: to[0],
    udp: { src: from[1], dst: to[1] },
    ...(opcode === undefined ? {} : { tftp: { opcode, file } }),
  } satisfies Packet;
}
/** A client segment on HTTP connection `stream`: a request (with `uri`) or a bare ACK. */
function cli(t: number, stream: number, ack: number, uri?: string): Packet {
  return {
    time: T0 + t,
    src: C,
    dst: S,
    tcp: { stream, src: 40000 + stream, len: uri ? 120 : 0, seq: 1, ack },
    ...(uri ? { httpUri: uri } : {}),
  };
}
/** A server segment carrying response bytes [seq, seq + len). */
function srv(t: number, stream: number, seq: number, len: number): Packet {
  return { time: T0 + t, src: S, dst: C, tcp: { stream, src: 80, len, seq, ack: 121 } };
}
const IPXE = [53, 57, 93, 94, 60, 77, 55, 175, 61, 97];
const ctx = { startedAt: T0 * 1000, kernel: "vmlinuz", initrd: "initrd.gz" };

Deno.test("stagesFromPackets finds each boot stage", async (t) => {
  const table: { name: string; packets: Packet[]; markerAt?: number; want: Stage[] }[] = [
    {
      name: "BIOS: the NIC ROM is iPXE, so no TFTP; one HTTP connection per file",
      packets: [
        dhcp(2.0, 1, 7, IPXE),
        dhcp(2.1, 2, 7),
        dhcp(2.2, 3, 7, IPXE),
        dhcp(2.25, 5, 7),
        cli(15.0, 0, 1, "/boot.ipxe"),
        srv(15.01, 0, 1, 300),
        cli(15.02, 0, 301),
        cli(15.1, 1, 1, "/image/tiny/vmlinuz"),
        srv(15.2, 1, 1, 60000),
        srv(15.5, 1, 60001, 60000),
        cli(15.6, 1, 120001),
        cli(15.7, 2, 1, "/image/tiny/initrd.gz"),
        srv(15.9, 2, 1, 9000),
        // Never acknowledged: the client booted; the server's retransmission is spurious.
        srv(20.0, 2, 1, 9000),
      ],
      markerAt: (T0 + 26) * 1000,
      want: [
        { name: "dhcp-discover", ms: 2000 },
        { name: "dhcp-offer", ms: 2100 },
        { name: "ipxe-dhcp", ms: 2250 },
        { name: "boot-script", ms: 15020 },
        { name: "kernel", ms: 15600 },
        { name: "initrd", ms: 15900 },
        { name: "marker", ms: 26000 },
      ],
    },
    {
      name:
        "UEFI: OVMF probes tsize, then downloads; iPXE keeps one connection and loses a segment",
      packets: [
        dhcp(7.0, 1, 1, [53, 57, 93, 94, 60, 97]),
        dhcp(10.0, 2, 1),
        dhcp(10.1, 3, 1, [53, 57, 93, 94, 60, 97]),
        dhcp(10.15, 5, 1),
        tftp(10.2, [C, 1001], [S, 69], 1, "tftp/snponly.efi"),
        tftp(10.21, [S, 5000], [C, 1001], 6),
        tftp(10.22, [C, 1001], [S, 5000], 5),
        tftp(10.3, [C, 1002], [S, 69], 1, "tftp/snponly.efi"),
        tftp(10.31, [S, 5001], [C, 1002], 3),
        tftp(10.5, [S, 5001], [C, 1002], 3),
        tftp(10.51, [C, 1002], [S, 5001], 4),
        dhcp(15.0, 1, 2, IPXE),
        dhcp(15.1, 2, 2),
        dhcp(15.2, 3, 2, IPXE),
        dhcp(15.3, 5, 99), // someone else's ACK
        dhcp(15.4, 5, 2),
        cli(28.0, 0, 1, "/boot.ipxe"),
        srv(28.1, 0, 1, 300),
        // The ACK of the script rides on the next request.
        cli(28.2, 0, 301, "/image/tiny/vmlinuz"),
        srv(28.3, 0, 301, 60000),
        srv(28.8, 0, 60301, 60000),
        cli(28.9, 0, 120301, "/image/tiny/initrd.gz"),
        srv(29.0, 0, 120301, 9000), // lost
        srv(29.1, 0, 129301, 1448),
        cli(29.2, 0, 120301), // duplicate ACK: the hole
        srv(35.9, 0, 120301, 9000), // retransmission after the backoff
        cli(35.95, 0, 130749),
      ],
      want: [
        { name: "dhcp-discover", ms: 7000 },
        { name: "dhcp-offer", ms: 10000 },
        { name: "first-stage-tftp", ms: 10510 },
        { name: "ipxe-dhcp", ms: 15400 },
        { name: "boot-script", ms: 28200 },
        { name: "kernel", ms: 28900 },
        { name: "initrd", ms: 35950 },
      ],
    },
    {
      name: "Secure Boot: shim, then GRUB, its config, kernel and initrd, all over TFTP",
      packets: [
        dhcp(7.0, 1, 1, [53, 57, 93, 94, 60, 97]),
        dhcp(7.1, 2, 1),
        dhcp(10.1, 3, 1, [53, 57, 93, 94, 60, 97]),
        dhcp(10.15, 5, 1),
        tftp(10.3, [C, 1002], [S, 69], 1, "shimx64.efi"),
        tftp(10.31, [S, 5001], [C, 1002], 3),
        tftp(10.5, [C, 1002], [S, 5001], 4),
        // Shim asks for files the tree lacks: refused, no data; it goes on.
        tftp(10.6, [C, 1003], [S, 69], 1, "revocations_sbat.efi"),
        tftp(10.61, [S, 5002], [C, 1003], 5),
        tftp(10.7, [C, 1004], [S, 69], 1, "grubx64.efi"),
        tftp(10.8, [S, 5003], [C, 1004], 3),
        tftp(13.0, [C, 1004], [S, 5003], 4),
        tftp(16.0, [C, 2000], [S, 69], 1, "/grub/x86_64-efi/command.lst"),
        tftp(16.01, [S, 5004], [C, 2000], 5),
        tftp(16.3, [C, 2001], [S, 69], 1, "/grub/grub.cfg"),
        tftp(16.31, [S, 5005], [C, 2001], 3),
        tftp(16.32, [C, 2001], [S, 5005], 4),
        tftp(17.7, [C, 2002], [S, 69], 1, "/grub/choose/tiny"),
        tftp(17.71, [S, 5006], [C, 2002], 3),
        tftp(17.72, [C, 2002], [S, 5006], 4),
        tftp(17.8, [C, 2003], [S, 69], 1, "/image/tiny/vmlinuz"),
        tftp(17.81, [S, 5007], [C, 2003], 3),
        tftp(23.2, [C, 2003], [S, 5007], 4),
        tftp(23.3, [C, 2004], [S, 69], 1, "/image/tiny/initrd.gz"),
        tftp(23.31, [S, 5008], [C, 2004], 3),
        tftp(24.0, [C, 2004], [S, 5008], 4),
      ],
      markerAt: (T0 + 33) * 1000,
      want: [
        { name: "dhcp-discover", ms: 7000 },
        { name: "dhcp-offer", ms: 7100 },
        { name: "first-stage-tftp", ms: 10500 },
        { name: "second-stage-tftp", ms: 13000 },
        { name: "boot-script", ms: 16320 },
        { name: "kernel", ms: 23200 },
        { name: "initrd", ms: 24000 },
        { name: "marker", ms: 33000 },
      ],
    },
    {
      name: "UEFI HTTP boot: the loader by URL, then iPXE's script, kernel and initrd; no TFTP",
      packets: [
        dhcp(5.6, 1, 1, [53, 57, 93, 94, 60, 97]),
        dhcp(5.61, 2, 1),
        dhcp(5.7, 3, 1, [53, 57, 93, 94, 60, 97]),
        dhcp(5.71, 5, 1),
        cli(9.0, 0, 1, "/tftp/snponly.efi"),
        srv(9.1, 0, 1, 170000),
        cli(9.3, 0, 170001),
        dhcp(11.0, 1, 2, IPXE),
        dhcp(11.1, 2, 2),
        dhcp(11.5, 3, 2, IPXE),
        dhcp(11.6, 5, 2),
        cli(12.0, 1, 1, "/boot.ipxe?mac=52-54-00-3f-32-d3"),
        srv(12.1, 1, 1, 600),
        cli(12.2, 1, 601, "/image/tiny/vmlinuz"),
        srv(12.3, 1, 601, 60000),
        cli(13.0, 1, 60601, "/image/tiny/initrd.gz"),
        srv(13.1, 1, 60601, 9000),
        cli(13.2, 1, 69601),
      ],
      markerAt: (T0 + 24) * 1000,
      want: [
        { name: "dhcp-discover", ms: 5600 },
        { name: "dhcp-offer", ms: 5610 },
        { name: "first-stage-http", ms: 9300 },
        { name: "ipxe-dhcp", ms: 11600 },
        { name: "boot-script", ms: 12200 },
        { name: "kernel", ms: 13000 },
        { name: "initrd", ms: 13200 },
        { name: "marker", ms: 24000 },
      ],
    },
    {
      name: "nothing answered: only the discover",
      packets: [dhcp(3, 1, 5, IPXE), dhcp(4, 1, 5, IPXE), dhcp(6, 3, 5, IPXE)],
      want: [{ name: "dhcp-discover", ms: 3000 }],
    },
    {
      name: "empty capture, marker only",
      packets: [],
      markerAt: T0 * 1000 + 5,
      want: [{ name: "marker", ms: 5 }],
    },
  ];
  for (const row of table) {
    await t.step(row.name, () => {
      assert.deepEqual(
        stagesFromPackets(row.packets, { ...ctx, markerAt: row.markerAt }),
        row.want,
      );
    });
  }
});

Deno.test("parseTsharkFields reads tshark's tab-separated lines", async (t) => {
  const line = (values: Partial<Record<typeof TSHARK_FIELDS[number], string>>) =>
    TSHARK_FIELDS.map((f) => values[f] ?? "").join("\t");
  const table: { name: string; text: string; want: Packet[] }[] = [
    {
      // Taken from a capture of QEMU's iPXE ROM (hex xid, aggregated option list).
      name: "DHCP discover",
      text: line({
        "frame.time_epoch": "1795632599.675124000",
        "ip.src": "0.0.0.0",
        "ip.dst": "255.255.255.255",
        "udp.srcport": "68",
        "udp.dstport": "67",
        "dhcp.option.dhcp": "1",
        "dhcp.id": "0xcb32ff3f",
        "dhcp.option.type": "53,57,93,94,60,77,55,175,61,97,0",
      }),
      want: [{
        time: 1795632599.675124,
        src: "0.0.0.0",
        dst: "255.255.255.255",
        udp: { src: 68, dst: 67 },
        dhcp: { type: 1, xid: 0xcb32ff3f, options: [53, 57, 93, 94, 60, 77, 55, 175, 61, 97, 0] },
      }],
    },
    {
      name: "HTTP request",
      text: line({
        "frame.time_epoch": "1795632615.863168000",
        "ip.src": C,
        "ip.dst": S,
        "tcp.stream": "1",
        "tcp.srcport": "46787",
        "tcp.len": "131",
        "tcp.seq": "1",
        "tcp.ack": "1",
        "http.request.uri": "/image/tiny/vmlinuz",
      }),
      want: [{
        time: 1795632615.863168,
        src: C,
        dst: S,
        tcp: { stream: 1, src: 46787, len: 131, seq: 1, ack: 1 },
        httpUri: "/image/tiny/vmlinuz",
      }],
    },
    {
      name: "TFTP read request",
      text: line({
        "frame.time_epoch": "10.5",
        "ip.src": C,
        "ip.dst": S,
        "udp.srcport": "1001",
        "udp.dstport": "69",
        "tftp.opcode": "1",
        "tftp.source_file": "tftp/snponly.efi",
      }),
      want: [{
        time: 10.5,
        src: C,
        dst: S,
        udp: { src: 1001, dst: 69 },
        tftp: { opcode: 1, file: "tftp/snponly.efi" },
      }],
    },
    {
      name: "blank lines and non-IP frames without a time are skipped; output is time-ordered",
      text: "\n" + line({ "frame.time_epoch": "5" }) + "\n" + line({ "frame.time_epoch": "4" }) +
        "\ngarbage\n",
      want: [{ time: 4, src: "", dst: "" }, { time: 5, src: "", dst: "" }],
    },
  ];
  for (const row of table) {
    await t.step(row.name, () => assert.deepEqual(parseTsharkFields(row.text), row.want));
  }
});

Deno.test("formatStages shows time since start and since the previous stage", () => {
  const text = formatStages([{ name: "dhcp-offer", ms: 1500 }, { name: "marker", ms: 4000 }]);
  const lines = text.split("\n");
  assert.equal(lines.length, 3);
  assert.match(lines[1]!, /^dhcp-offer\s+first DHCP offer\s+1\.50 s\s+1\.50 s$/);
  assert.match(lines[2]!, /^marker\s+marker on serial\s+4\.00 s\s+2\.50 s$/);
});
