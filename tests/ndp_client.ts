/**
 * Test client for the router advertisement responder: sends hand-built router solicitations
 * as whole Ethernet frames through an AF_PACKET socket (so hop limit, source `::` and broken
 * options are possible) and reports every router advertisement that arrives, with the hop
 * limit and addresses of its IPv6 header. Runs inside a test namespace only.
 *
 * Usage: `deno run -A tests/ndp_client.ts '<json options>'` (see {@linkcode ClientOptions});
 * prints one JSON line per advertisement and a final `{"done": true, …}` line.
 *
 * @module
 */
import { errno, ifIndex, libc, LINUX, MessageReader, ReadableWait, strerror } from "../net/libc.ts";
import { macFromBytes } from "../net/mac.ts";
import {
  decodeRouterAdvertisement,
  encodeRouterAdvertisement,
  encodeRouterSolicitation,
  ICMPV6_TYPE,
  icmpv6Checksum,
  sourceLinkLayerAddress,
  sourceLinkLayerOption,
} from "../protocols/ndp/packet.ts";
import { ipv6ToBytes, ipv6ToString, isLinkLocal } from "../net/ipv6.ts";

/** What to send and how long to listen. */
export interface ClientOptions {
  iface: string;
  /** Hop limit of the solicitation's IPv6 header; default 255. */
  hopLimit?: number;
  /** "ll" (this interface's link-local address, the default), "::" or an address. */
  source?: string;
  /** "lla" (our MAC, the default), "none", or "zero" (a zero-length option: malformed). */
  option?: "lla" | "none" | "zero";
  /** Destination; default ff02::2 (all routers) at 33:33:00:00:00:02. */
  dst?: string;
  dstMac?: string;
  /** Solicitations sent back to back; default 1. */
  count?: number;
  /** Listen this long after sending; default 3000. */
  listenMs?: number;
  /** Stop early once this many advertisements arrived; default: listen the whole time. */
  stopAfter?: number;
  /**
   * First send a router advertisement to ff02::1 with this router lifetime, as a router on
   * the link would (0: one like the responder's own, offering nothing).
   */
  advertiseFirst?: number;
}

const ETH_P_IPV6 = 0x86dd;
const PACKET_OUTGOING = 4;

function macBytes(text: string): Uint8Array {
  return Uint8Array.from(text.split(":"), (h) => parseInt(h, 16));
}

function sockaddrLl(ifindex: number, mac?: Uint8Array): Uint8Array<ArrayBuffer> {
  // struct sockaddr_ll { u16 family; be16 protocol; int ifindex; u16 hatype; u8 pkttype;
  //                      u8 halen; u8 addr[8]; }
  const sa = new Uint8Array(20);
  const v = new DataView(sa.buffer);
  v.setUint16(0, LINUX.AF_PACKET, true);
  v.setUint16(2, ETH_P_IPV6, false);
  v.setInt32(4, ifindex, true);
  if (mac) {
    sa[11] = 6;
    sa.set(mac, 12);
  }
  return sa;
}

/** Ethernet + IPv6 + ICMPv6 with its checksum. */
function ethernetFrame(
  o: { dstMac: Uint8Array; srcMac: Uint8Array; src: Uint8Array; dst: Uint8Array; hop: number },
  icmp: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const msg = icmp.slice();
  const sum = icmpv6Checksum(o.src, o.dst, msg);
  msg[2] = sum >> 8;
  msg[3] = sum & 0xff;
  const f = new Uint8Array(14 + 40 + msg.length);
  const v = new DataView(f.buffer);
  f.set(o.dstMac, 0);
  f.set(o.srcMac, 6);
  v.setUint16(12, ETH_P_IPV6, false);
  v.setUint32(14, 0x60000000, false);
  v.setUint16(18, msg.length, false);
  f[20] = 58;
  f[21] = o.hop;
  f.set(o.src, 22);
  f.set(o.dst, 38);
  f.set(msg, 54);
  return f;
}

async function main(options: ClientOptions): Promise<number> {
  const out = (v: unknown) => console.log(JSON.stringify(v));
  const index = ifIndex(options.iface);
  if (index === 0) throw new Error(`no interface ${options.iface}`);
  const entry = Deno.networkInterfaces().find((i) => i.name === options.iface);
  if (!entry) throw new Error(`${options.iface} has no address`);
  const mac = macBytes(entry.mac);
  const source = (() => {
    const s = options.source ?? "ll";
    if (s !== "ll") return ipv6ToBytes(s);
    const ll = Deno.networkInterfaces().find((i) =>
      i.name === options.iface && i.family === "IPv6" && isLinkLocal(ipv6ToBytes(i.address))
    );
    if (!ll) throw new Error(`${options.iface} has no link-local address`);
    return ipv6ToBytes(ll.address);
  })();
  const icmp = (() => {
    switch (options.option ?? "lla") {
      case "lla":
        return encodeRouterSolicitation({ options: [sourceLinkLayerOption(mac)] });
      case "none":
        return encodeRouterSolicitation({ options: [] });
      case "zero": {
        const m = encodeRouterSolicitation({ options: [sourceLinkLayerOption(mac)] });
        m[9] = 0;
        return m;
      }
    }
  })();
  const frame = ethernetFrame({
    dstMac: macBytes(options.dstMac ?? "33:33:00:00:00:02"),
    srcMac: mac,
    src: source,
    dst: ipv6ToBytes(options.dst ?? "ff02::2"),
    hop: options.hopLimit ?? 255,
  }, icmp);

  const c = libc();
  const { AF_PACKET, SOCK_RAW, SOCK_NONBLOCK, SOCK_CLOEXEC } = LINUX;
  // The protocol argument is in network byte order (htons).
  const proto = ((ETH_P_IPV6 & 0xff) << 8) | (ETH_P_IPV6 >> 8);
  const fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) throw new Error(`AF_PACKET socket: ${strerror(errno())}`);
  const bindTo = sockaddrLl(index);
  if (c.bind(fd, bindTo, bindTo.length) < 0) throw new Error(`bind: ${strerror(errno())}`);
  const to = sockaddrLl(index, frame.subarray(0, 6));
  if (options.advertiseFirst !== undefined) {
    const ra = ethernetFrame(
      {
        dstMac: macBytes("33:33:00:00:00:01"),
        srcMac: mac,
        src: source,
        dst: ipv6ToBytes("ff02::1"),
        hop: 255,
      },
      encodeRouterAdvertisement({
        curHopLimit: 64,
        managed: false,
        other: false,
        routerLifetime: options.advertiseFirst,
        reachableTime: 0,
        retransTimer: 0,
        options: [sourceLinkLayerOption(mac)],
      }),
    );
    const allNodes = sockaddrLl(index, ra.subarray(0, 6));
    if (Number(c.sendto(fd, ra, BigInt(ra.length), 0, allNodes, allNodes.length)) < 0) {
      throw new Error(`sendto: ${strerror(errno())}`);
    }
  }
  const count = options.count ?? 1;
  for (let i = 0; i < count; i++) {
    const n = Number(c.sendto(fd, frame, BigInt(frame.length), 0, to, to.length));
    if (n < 0) throw new Error(`sendto: ${strerror(errno())}`);
  }
  const reader = new MessageReader({ dataSize: 65536, nameSize: 20, controlSize: 8 });
  const wait = new ReadableWait(fd);
  const deadline = Date.now() + (options.listenMs ?? 3000);
  let received = 0;
  while (Date.now() < deadline && received < (options.stopAfter ?? Infinity)) {
    const got = reader.read(fd);
    if (!got) {
      await wait.wait(Math.max(1, Math.min(200, deadline - Date.now())));
      continue;
    }
    const f = got.data;
    if (got.name[10] === PACKET_OUTGOING || f.length < 54 + 16) continue;
    if (((f[12]! << 8) | f[13]!) !== ETH_P_IPV6 || f[20] !== 58) continue;
    const msg = f.subarray(54, 54 + ((f[18]! << 8) | f[19]!));
    if (msg[0] !== ICMPV6_TYPE.ROUTER_ADVERTISEMENT) continue;
    const src = f.slice(22, 38), dst = f.slice(38, 54);
    const ra = decodeRouterAdvertisement(msg);
    received++;
    out({
      ra: {
        ...ra,
        options: ra.options.map((o) => ({ type: o.type, length: o.data.length + 2 })),
        sourceMac: (() => {
          const m = sourceLinkLayerAddress(ra.options);
          return m ? macFromBytes(m) : null;
        })(),
      },
      hopLimit: f[21],
      src: ipv6ToString(src),
      dst: ipv6ToString(dst),
      ethDst: macFromBytes(f.subarray(0, 6)),
      ethSrc: macFromBytes(f.subarray(6, 12)),
      checksumOk: icmpv6Checksum(src, dst, msg) === ((msg[2]! << 8) | msg[3]!),
    });
  }
  await wait.idle();
  c.close(fd);
  out({ done: true, sent: count, received, source: ipv6ToString(source), mac: macFromBytes(mac) });
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(JSON.parse(Deno.args[0] ?? "{}")));
  } catch (e) {
    console.log(JSON.stringify({ error: (e as Error).message }));
    Deno.exit(2);
  }
}
