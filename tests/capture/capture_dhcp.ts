/**
 * Captures real DHCP packets into protocols/dhcp/testdata/ as golden vectors.
 *
 * Every source runs inside a throwaway network namespace (prefix "abc") with its own addresses;
 * nothing touches the host's interfaces. dnsmasq answers inside the namespace so that clients
 * go on to send REQUESTs. For each source the script writes `<source>.pcap`, the raw UDP
 * payloads `<source>_<type>.bin`, their `describeDhcp` dump `.txt`, and tshark's own decode
 * `<source>.tshark.txt` for review. It cross-checks the option codes our decoder finds against
 * tshark's and fails loudly when they differ.
 *
 * Run as root: deno run -A tests/capture/capture_dhcp.ts [source…]
 * Sources: udhcpc dhclient ipxe_bios ovmf ipxe_efi (default: all). Each is bounded to 60 s.
 * `--describe` only rewrites every `.txt` from its `.bin` (after a change to describeDhcp;
 * review the diff against the `.tshark.txt` files before committing).
 *
 * @module
 */

import { Netns, run, stopAndCollect, vethPair } from "../netns.ts";
import { decodeDhcp, type DhcpPacket } from "../../protocols/dhcp/packet.ts";
import { describeDhcp } from "../../protocols/dhcp/_dump.ts";
import { messageTypeName } from "../../protocols/dhcp/options.ts";

/** Where vectors go; CAPTURE_OUT=/some/dir/ tries a re-capture without touching testdata. */
const OUT = Deno.env.get("CAPTURE_OUT") ??
  new URL("../../protocols/dhcp/testdata/", import.meta.url).pathname;
const DEADLINE_MS = 60_000;
const SERVER_IP = "10.77.0.1";
const DNSMASQ_RANGE = "10.77.0.100,10.77.0.150,255.255.255.0,1h";

/** One UDP datagram from a pcap file. */
interface Datagram {
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

/** Reads IPv4/UDP datagrams from a classic pcap file with Ethernet link type. */
export function readPcap(bytes: Uint8Array): Datagram[] {
  if (bytes.length < 24) return [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = v.getUint32(0, true);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && v.getUint32(0, false) !== 0xa1b2c3d4 && v.getUint32(0, false) !== 0xa1b23c4d) {
    throw new Error("not a pcap file");
  }
  const out: Datagram[] = [];
  let at = 24;
  while (at + 16 <= bytes.length) {
    const caplen = v.getUint32(at + 8, le);
    const frame = bytes.subarray(at + 16, at + 16 + caplen);
    at += 16 + caplen;
    if (frame.length < caplen) break; // last record still being written
    if (frame.length < 14 + 20 + 8 || frame[12] !== 0x08 || frame[13] !== 0x00) continue;
    const ihl = (frame[14]! & 0x0f) * 4;
    if (frame[14 + 9] !== 17) continue;
    const udp = 14 + ihl;
    const srcPort = (frame[udp]! << 8) | frame[udp + 1]!;
    const dstPort = (frame[udp + 2]! << 8) | frame[udp + 3]!;
    const len = (frame[udp + 4]! << 8) | frame[udp + 5]!;
    out.push({ srcPort, dstPort, payload: frame.slice(udp + 8, udp + len) });
  }
  return out;
}

function packetsIn(pcap: string): DhcpPacket[] {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(pcap);
  } catch {
    return [];
  }
  return readPcap(bytes)
    .filter((d) => d.dstPort === 67 || d.srcPort === 67)
    .map((d) => decodeDhcp(d.payload));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls until `done(packets)` holds or the deadline passes. */
async function waitFor(pcap: string, done: (ps: DhcpPacket[]) => boolean): Promise<boolean> {
  const end = Date.now() + DEADLINE_MS;
  while (Date.now() < end) {
    if (done(packetsIn(pcap))) return true;
    await sleep(1000);
  }
  return false;
}

const has = (ps: DhcpPacket[], op: number, type: number) =>
  ps.some((p) => p.op === op && p.options.messageType() === type);

/** DISCOVER and REQUEST seen from the client, and a reply from dnsmasq. */
const gotDora = (ps: DhcpPacket[]) => has(ps, 1, 1) && has(ps, 1, 3) && has(ps, 2, 2);

/** Starts tcpdump on `dev` in `ns`, writing to `pcap`. */
async function startCapture(ns: Netns, dev: string, pcap: string): Promise<Deno.ChildProcess> {
  const child = ns.spawn([
    "tcpdump",
    "--immediate-mode",
    "-U",
    "-n",
    "-w",
    pcap,
    "-i",
    dev,
    "udp port 67 or udp port 68",
  ]);
  await sleep(1500);
  return child;
}

function startDnsmasq(ns: Netns, dev: string, tmp: string): Deno.ChildProcess {
  return ns.spawn([
    "dnsmasq",
    "--no-daemon",
    "--conf-file=/dev/null",
    "--port=0",
    `--interface=${dev}`,
    "--bind-interfaces",
    `--dhcp-range=${DNSMASQ_RANGE}`,
    `--dhcp-leasefile=${tmp}/leases`,
    `--pid-file=${tmp}/dnsmasq.pid`,
    "--dhcp-boot=x",
    "--no-ping",
    "--user=root",
    "--log-dhcp",
  ]);
}

/** A Linux client in its own namespace, linked by veth to a server namespace with dnsmasq. */
async function captureLinuxClient(
  source: string,
  tmp: string,
  pcap: string,
  clientCmd: (dev: string) => string[],
): Promise<void> {
  const server = await Netns.create("abc");
  const client = await Netns.create("abc");
  try {
    await vethPair(server, `${SERVER_IP}/24`, client, null);
    // A fixed, locally administered MAC keeps re-captures comparable.
    await client.exec(["ip", "link", "set", "eth0", "address", "02:00:00:ab:c0:02"]);
    const dump = await startCapture(server, "eth0", pcap);
    const dns = startDnsmasq(server, "eth0", tmp);
    await sleep(500);
    const cl = client.spawn(clientCmd("eth0"));
    const ok = await waitFor(pcap, (ps) => gotDora(ps) && has(ps, 2, 5));
    const clientLog = await stopAndCollect(cl);
    await sleep(500);
    await stopAndCollect(dump);
    const dnsLog = await stopAndCollect(dns);
    if (!ok) throw new Error(`${source}: no full exchange within 60 s\n${clientLog}\n${dnsLog}`);
  } finally {
    await client.dispose();
    await server.dispose();
  }
}

/** A QEMU VM on a tap in a bridge, in one namespace with dnsmasq and tcpdump on the bridge. */
async function captureQemu(
  source: string,
  tmp: string,
  pcap: string,
  machineArgs: string[],
): Promise<void> {
  const ns = await Netns.create("abc");
  try {
    await ns.addBridge("br0", `${SERVER_IP}/24`);
    await ns.addTap("tap0", "br0");
    await ns.exec(["ip", "link", "set", "br0", "up"]);
    const dump = await startCapture(ns, "br0", pcap);
    const dns = startDnsmasq(ns, "br0", tmp);
    await sleep(500);
    const vm = ns.spawn([
      "qemu-system-x86_64",
      "-accel",
      "tcg",
      "-m",
      "256",
      "-nographic",
      "-no-reboot",
      "-netdev",
      "tap,id=n0,ifname=tap0,script=no,downscript=no",
      ...machineArgs,
    ]);
    const ok = await waitFor(pcap, gotDora);
    // A little longer: firmware may follow up (a second DISCOVER from iPXE after the ROM's PXE).
    await sleep(3000);
    const vmLog = await stopAndCollect(vm, "SIGKILL");
    await stopAndCollect(dump);
    const dnsLog = await stopAndCollect(dns);
    if (!ok) {
      throw new Error(
        `${source}: no DISCOVER+REQUEST within 60 s\n${vmLog.slice(-2000)}\n${dnsLog}`,
      );
    }
  } finally {
    await ns.dispose();
  }
}

const MAC = "52:54:00:ab:c0:01";

/** OVMF with its own copy of the variable store; `nicExtra` is appended to the NIC device. */
async function captureUefi(source: string, tmp: string, pcap: string, nicExtra: string) {
  await Deno.copyFile("/usr/share/OVMF/OVMF_VARS.fd", `${tmp}/vars.fd`);
  await captureQemu(source, tmp, pcap, [
    "-drive",
    "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
    "-drive",
    `if=pflash,format=raw,file=${tmp}/vars.fd`,
    "-device",
    `virtio-net-pci,netdev=n0,mac=${MAC}${nicExtra}`,
  ]);
}

const SOURCES: Record<string, (tmp: string, pcap: string) => Promise<void>> = {
  udhcpc: (tmp, pcap) =>
    captureLinuxClient(
      "udhcpc",
      tmp,
      pcap,
      (dev) => ["udhcpc", "-i", dev, "-n", "-q", "-t", "3", "-T", "2", "-s", "/bin/true"],
    ),
  dhclient: async (tmp, pcap) => {
    // Debian's default request list, with a fixed host name instead of this machine's.
    const conf = (await Deno.readTextFile("/etc/dhcp/dhclient.conf"))
      .replace("send host-name = gethostname();", 'send host-name "astral-test";');
    await Deno.writeTextFile(`${tmp}/dhclient.conf`, conf);
    await captureLinuxClient("dhclient", tmp, pcap, (dev) => [
      "dhclient",
      "-4",
      "-d",
      "-1",
      "-sf",
      "/bin/true",
      "-lf",
      `${tmp}/dhclient.leases`,
      "-pf",
      `${tmp}/dhclient.pid`,
      "-cf",
      `${tmp}/dhclient.conf`,
      dev,
    ]);
  },
  ipxe_bios: (tmp, pcap) =>
    captureQemu("ipxe_bios", tmp, pcap, [
      "-boot",
      "n",
      "-device",
      `virtio-net-pci,netdev=n0,mac=${MAC}`,
    ]),
  // romfile= removes iPXE, so OVMF's own PXE client runs.
  ovmf: (tmp, pcap) => captureUefi("ovmf", tmp, pcap, ",romfile="),
  ipxe_efi: (tmp, pcap) => captureUefi("ipxe_efi", tmp, pcap, ""),
};

/** The option codes of each DHCP packet as tshark decodes them, in order. */
async function tsharkOptionCodes(pcap: string): Promise<number[][]> {
  const r = await run([
    "tshark",
    "-r",
    pcap,
    "-Y",
    "dhcp",
    "-T",
    "fields",
    "-e",
    "dhcp.option.type",
  ]);
  return r.stdout.trim().split("\n").filter(Boolean).map((l) =>
    l.split(",").map(Number).filter((c) => c !== 0 && c !== 255)
  );
}

/** Writes the first packet of each (op, type) as `<source>_<name>.bin` + `.txt`. */
async function store(source: string, pcap: string): Promise<string[]> {
  const datagrams = readPcap(await Deno.readFile(pcap)).filter((d) =>
    d.dstPort === 67 || d.srcPort === 67
  );
  const tshark = await tsharkOptionCodes(pcap);
  if (tshark.length !== datagrams.length) {
    throw new Error(
      `${source}: tshark sees ${tshark.length} DHCP packets, we see ${datagrams.length}`,
    );
  }
  const written: string[] = [];
  const seen = new Set<string>();
  datagrams.forEach((d, i) => {
    const p = decodeDhcp(d.payload);
    // Repeated codes are one entry for us (RFC 3396); tshark lists each instance.
    const theirs = [...new Set(tshark[i]!)].filter((c) => c !== 52);
    const ours = p.options.codes();
    if (JSON.stringify(theirs) !== JSON.stringify(ours)) {
      throw new Error(`${source} packet ${i}: tshark options ${theirs}, ours ${ours}`);
    }
    const type = messageTypeName(p.options.messageType() ?? 0).toLowerCase();
    const name = p.op === 1 ? `${source}_${type}` : `dnsmasq_${type}_to_${source}`;
    if (seen.has(name)) return;
    seen.add(name);
    Deno.writeFileSync(`${OUT}${name}.bin`, d.payload);
    Deno.writeTextFileSync(`${OUT}${name}.txt`, describeDhcp(p));
    written.push(name);
  });
  const full = await run(["tshark", "-r", pcap, "-Y", "dhcp", "-V", "-O", "dhcp"]);
  await Deno.writeTextFile(`${OUT}${source}.tshark.txt`, full.stdout);
  return written;
}

function redescribe(): void {
  for (const e of Deno.readDirSync(OUT)) {
    if (!e.name.endsWith(".bin")) continue;
    const p = decodeDhcp(Deno.readFileSync(OUT + e.name));
    Deno.writeTextFileSync(OUT + e.name.replace(/\.bin$/, ".txt"), describeDhcp(p));
  }
}

if (import.meta.main && Deno.args[0] === "--describe") redescribe();
else if (import.meta.main) {
  const wanted = Deno.args.length ? Deno.args : Object.keys(SOURCES);
  await Deno.mkdir(OUT, { recursive: true });
  for (const source of wanted) {
    const capture = SOURCES[source];
    if (!capture) throw new Error(`unknown source ${source}; known: ${Object.keys(SOURCES)}`);
    const tmp = await Deno.makeTempDir({ prefix: `abc-${source}-` });
    await Deno.chmod(tmp, 0o755);
    const pcap = `${OUT}${source}.pcap`;
    try {
      await capture(tmp, pcap);
      const names = await store(source, pcap);
      console.log(`${source}: ${names.join(", ")}`);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  }
}
