/**
 * DHCPv4 / BOOTP packet codec (RFC 951, RFC 2131, RFC 2132, RFC 3396).
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +---------------+---------------+---------------+---------------+
 * |     op (1)    |   htype (1)   |   hlen (1)    |   hops (1)    |
 * +---------------+---------------+---------------+---------------+
 * |                            xid (4)                            |
 * +-------------------------------+-------------------------------+
 * |           secs (2)            |           flags (2)           |
 * +-------------------------------+-------------------------------+
 * |          ciaddr (4)   yiaddr (4)   siaddr (4)   giaddr (4)    |
 * +---------------------------------------------------------------+
 * |                          chaddr (16)                          |
 * +---------------------------------------------------------------+
 * |                          sname (64)                           |
 * +---------------------------------------------------------------+
 * |                          file (128)                           |
 * +---------------------------------------------------------------+
 * |              magic cookie 99.130.83.99 (4, offset 236)        |
 * +---------------------------------------------------------------+
 * |                       options (variable)                      |
 * +---------------------------------------------------------------+
 * ```
 *
 * @example Answer a DISCOVER
 * ```ts
 * import { decodeDhcp, encodeDhcp, maxMessageSize, replyTo } from "./packet.ts";
 * import { DhcpOption, DhcpOptions, MessageType } from "./options.ts";
 *
 * const discover = encodeDhcp({
 *   op: 1, htype: 1, hlen: 6, hops: 0, xid: 42, secs: 0, flags: 0x8000,
 *   ciaddr: "0.0.0.0", yiaddr: "0.0.0.0", siaddr: "0.0.0.0", giaddr: "0.0.0.0",
 *   chaddr: Uint8Array.of(0x52, 0x54, 0, 1, 2, 3), sname: "", file: "",
 *   options: new DhcpOptions().setMessageType(MessageType.Discover).setU16(57, 1472),
 * });
 * const req = decodeDhcp(discover);
 * const offer = replyTo(req, MessageType.Offer);
 * offer.yiaddr = "10.0.0.50";
 * offer.options.setIp(DhcpOption.ServerId, "10.0.0.1");
 * const bytes = encodeDhcp(offer, { maxSize: maxMessageSize(req) });
 * if (decodeDhcp(bytes).options.messageType() !== MessageType.Offer) throw new Error("bad");
 * ```
 *
 * @module
 */

import { ByteReader, ByteWriter, MalformedPacketError } from "../../net/bytes.ts";
import { ipv4ToNumber, ipv4ToString } from "../../net/ipv4.ts";
import { type Mac, macFromBytes } from "../../net/mac.ts";
import {
  decodeSubOptions,
  DhcpOption,
  DhcpOptions,
  optionChunks,
  readOptionsArea,
} from "./options.ts";

/** One DHCP (or plain BOOTP) message. */
export interface DhcpPacket {
  /** 1 = BOOTREQUEST (client), 2 = BOOTREPLY (server). */
  op: 1 | 2;
  /** Hardware type, 1 = Ethernet. */
  htype: number;
  /** Hardware address length, 0..16. */
  hlen: number;
  /** Relay hops. */
  hops: number;
  /** Transaction id chosen by the client. */
  xid: number;
  /** Seconds since the client began acquiring. */
  secs: number;
  /** Bit 15 (0x8000) = broadcast the reply. */
  flags: number;
  /** Client's own address when it already has one (renewing, INFORM). */
  ciaddr: string;
  /** "Your" address: the one the server assigns. */
  yiaddr: string;
  /** Next server (TFTP) address. */
  siaddr: string;
  /** Relay agent address; 0.0.0.0 when the client is on our link. */
  giaddr: string;
  /** The first `hlen` bytes of the 16-byte chaddr field. */
  chaddr: Uint8Array;
  /** Server host name ("" when the field carries options). */
  sname: string;
  /** Boot file name ("" when the field carries options). */
  file: string;
  /** Options; option 52 (overload) is framing and never appears here. */
  options: DhcpOptions;
}

/** RFC 2131 §3: the four bytes 99.130.83.99 that start the options. */
export const MAGIC_COOKIE = 0x63825363;
/** Size of the fixed BOOTP header before the magic cookie. */
export const HEADER_SIZE = 236;
/** RFC 951 vend field is 64 bytes: 300-byte BOOTP messages, and some PXE ROMs drop shorter ones. */
export const MIN_PACKET_SIZE = 300;
/** RFC 2131 §2: every client accepts a 576-byte IP datagram. */
export const DEFAULT_MAX_MESSAGE_SIZE = 576;
/** IPv4 (20) + UDP (8) headers, counted in option 57 (RFC 2131 §2: 576 − 28 = 548). */
export const IP_UDP_OVERHEAD = 28;

const SNAME_OFFSET = 44;
const FILE_OFFSET = 108;
const OPTIONS_OFFSET = 240;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Fixed lengths the server depends on; a wrong length makes the whole packet malformed. */
const FIXED_LENGTH: ReadonlyMap<number, number> = new Map([
  [DhcpOption.SubnetMask, 4],
  [DhcpOption.BroadcastAddr, 4],
  [DhcpOption.RequestedIP, 4],
  [DhcpOption.LeaseTime, 4],
  [DhcpOption.MessageType, 1],
  [DhcpOption.ServerId, 4],
  [DhcpOption.MaxMessageSize, 2],
  [DhcpOption.RenewalTime, 4],
  [DhcpOption.RebindingTime, 4],
  [DhcpOption.ClientNdi, 3],
]);

/** Longest relay agent information (option 82) accepted: one option's worth (RFC 3046). */
const MAX_RELAY_AGENT_INFO = 255;

/** Decodes a UDP payload (overload 52, RFC 3396 joining); throws MalformedPacketError. */
export function decodeDhcp(bytes: Uint8Array): DhcpPacket {
  // Options come from the options field, then file, then sname when option 52 says so; repeated
  // codes are joined in that order (RFC 3396 §6). Options the server relies on are checked here
  // so that a handler never meets a misshapen one.
  const r = new ByteReader(bytes);
  r.need(OPTIONS_OFFSET, "BOOTP header and magic cookie");
  const op = r.u8("op");
  if (op !== 1 && op !== 2) {
    throw new MalformedPacketError(`op ${op} is neither BOOTREQUEST nor BOOTREPLY`, 0);
  }
  const htype = r.u8("htype");
  const hlen = r.u8("hlen");
  if (hlen > 16) throw new MalformedPacketError(`hlen ${hlen} exceeds the 16-byte chaddr`, 2);
  const hops = r.u8("hops");
  const xid = r.u32("xid");
  const secs = r.u16("secs");
  const flags = r.u16("flags");
  const ciaddr = ipv4ToString(r.bytesOf(4, "ciaddr"));
  const yiaddr = ipv4ToString(r.bytesOf(4, "yiaddr"));
  const siaddr = ipv4ToString(r.bytesOf(4, "siaddr"));
  const giaddr = ipv4ToString(r.bytesOf(4, "giaddr"));
  const chaddr = r.bytesOf(16, "chaddr").slice(0, hlen);
  const snameField = r.bytesOf(64, "sname");
  const fileField = r.bytesOf(128, "file");
  const cookie = r.u32("magic cookie");
  if (cookie !== MAGIC_COOKIE) {
    throw new MalformedPacketError(
      `magic cookie is 0x${cookie.toString(16).padStart(8, "0")}, not 0x63825363`,
      HEADER_SIZE,
    );
  }

  // Straight into the options (one Map per packet, no list per code): a server decodes two
  // requests per client, and the lists and Maps of a first pass showed in its allocations.
  const options = new DhcpOptions();
  FIRST_OFFSET.fill(-1);
  readOptionsArea(r.rest(), OPTIONS_OFFSET, options, FIRST_OFFSET);
  const overload = overloadFlag(options);
  // Option 52 is honoured only in the options field; one seen inside file/sname is dropped,
  // which also rules out overload loops.
  if (overload & 1) readOptionsArea(fileField, FILE_OFFSET, options, FIRST_OFFSET);
  if (overload & 2) readOptionsArea(snameField, SNAME_OFFSET, options, FIRST_OFFSET);
  options.delete(DhcpOption.Overload);
  options.forEach((value, code) => validate(code, value, FIRST_OFFSET[code]!));
  return {
    op,
    htype,
    hlen,
    hops,
    xid,
    secs,
    flags,
    ciaddr,
    yiaddr,
    siaddr,
    giaddr,
    chaddr,
    sname: overload & 2 ? "" : cString(snameField),
    file: overload & 1 ? "" : cString(fileField),
    options,
  };
}

/**
 * Where each option code first appeared in the packet being decoded (-1: not yet): for the
 * offsets of errors. Decoding is synchronous, so one table serves every packet.
 */
const FIRST_OFFSET = new Int32Array(256);

function overloadFlag(options: DhcpOptions): number {
  const v = options.get(DhcpOption.Overload);
  if (!v) return 0;
  options.delete(DhcpOption.Overload);
  if (v.length !== 1 || v[0]! < 1 || v[0]! > 3) {
    throw new MalformedPacketError(
      `Cannot parse DHCP option 52: ${
        v.length === 1 ? `value ${v[0]} is not 1, 2 or 3` : `length ${v.length}`
      }`,
      FIRST_OFFSET[DhcpOption.Overload]!,
    );
  }
  return v[0]!;
}

function validate(code: number, v: Uint8Array, offset: number): void {
  const fixed = FIXED_LENGTH.get(code);
  let ok = true;
  if (fixed !== undefined) ok = v.length === fixed;
  else if (code === DhcpOption.Router || code === DhcpOption.DNS) {
    ok = v.length > 0 && v.length % 4 === 0;
  } else if (code === DhcpOption.ClientArch) ok = v.length > 0 && v.length % 2 === 0;
  // RFC 3046 §2.0: one option, so at most 255 bytes even when RFC 3396 joins several. Every
  // reply echoes it and may never drop it: a longer one leaves no reply that fits 576 bytes.
  else if (code === DhcpOption.RelayAgentInfo) ok = v.length <= MAX_RELAY_AGENT_INFO;
  if (!ok) {
    throw new MalformedPacketError(`Cannot parse DHCP option ${code}: length ${v.length}`, offset);
  }
  if (code === DhcpOption.IpxeEncap) decodeSubOptions(v, offset + 2);
}

function cString(field: Uint8Array): string {
  const nul = field.indexOf(0);
  if (nul === 0) return ""; // most requests: no call into the decoder
  return decoder.decode(nul < 0 ? field : field.subarray(0, nul));
}

/** Options for {@linkcode encodeDhcp}. */
export interface EncodeOptions {
  /** Largest IP datagram the client accepts, as in option 57 (payload ≤ maxSize − 28). Default 576. */
  maxSize?: number;
}

/** Encodes a packet for `maxSize` (option 57 semantics); throws RangeError when it cannot. */
export function encodeDhcp(p: DhcpPacket, opts: EncodeOptions = {}): Uint8Array {
  // Options go in insertion order (long ones split at 255 bytes, RFC 3396), then End, then zero
  // padding to 300 bytes. When they do not fit and file and sname are empty, the rest goes
  // there with option 52 (RFC 2132 §9.3).
  const maxSize = opts.maxSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  const limit = maxSize - IP_UDP_OVERHEAD;
  if (limit < MIN_PACKET_SIZE) {
    throw new RangeError(`maxSize ${maxSize} is below the ${MIN_PACKET_SIZE + 28}-byte minimum`);
  }
  checkInt("op", p.op, 1, 2);
  checkInt("htype", p.htype, 0, 255);
  checkInt("hlen", p.hlen, 0, 16);
  checkInt("hops", p.hops, 0, 255);
  checkInt("xid", p.xid, 0, 0xffffffff);
  checkInt("secs", p.secs, 0, 0xffff);
  checkInt("flags", p.flags, 0, 0xffff);
  if (p.chaddr.length > 16) throw new RangeError(`chaddr is ${p.chaddr.length} bytes, at most 16`);
  let sname = textField("sname", p.sname, 64);
  let file = textField("file", p.file, 128);

  const total = optionsSize(p.options);
  // Most replies fit the options field: their options are written straight into the packet
  // (a server encodes two per client; a TLV array per option showed in its profile).
  let optionsArea: Uint8Array[] | null = null;
  if (OPTIONS_OFFSET + total + 1 > limit) {
    const chunks = optionChunks(p.options, NO_OVERLOAD);
    if (p.sname !== "" || p.file !== "") {
      throw new RangeError(
        `DHCP options need ${total + 1} bytes, only ${limit - OPTIONS_OFFSET} fit in ${maxSize}`,
      );
    }
    const placed = overloadAreas(chunks, limit - OPTIONS_OFFSET - 3 - 1, maxSize);
    optionsArea = [Uint8Array.of(DhcpOption.Overload, 1, placed.overload), ...placed.main];
    // Both fields are empty here: the option areas are the whole fields.
    file = optionArea(placed.file, 128);
    sname = optionArea(placed.sname, 64);
  }

  // Made at the size it ends at, so that finishing it is no copy.
  const area = optionsArea ? optionsArea.reduce((n, c) => n + c.length, 0) : total;
  const w = new ByteWriter(Math.max(MIN_PACKET_SIZE, OPTIONS_OFFSET + area + 1));
  w.u8(p.op).u8(p.htype).u8(p.hlen).u8(p.hops).u32(p.xid).u16(p.secs).u16(p.flags);
  w.u32(ipv4ToNumber(p.ciaddr)).u32(ipv4ToNumber(p.yiaddr));
  w.u32(ipv4ToNumber(p.siaddr)).u32(ipv4ToNumber(p.giaddr));
  w.bytes(p.chaddr).zeros(16 - p.chaddr.length);
  w.bytes(sname).zeros(64 - sname.length).bytes(file).zeros(128 - file.length).u32(MAGIC_COOKIE);
  if (optionsArea) {
    for (const c of optionsArea) w.bytes(c);
  } else {
    writeOptions(w, p.options);
  }
  w.u8(DhcpOption.End);
  if (w.length < MIN_PACKET_SIZE) w.zeros(MIN_PACKET_SIZE - w.length);
  return w.finish();
}

const NO_OVERLOAD: ReadonlySet<number> = new Set([DhcpOption.Overload]);

/** Bytes the options take as TLVs, split at 255 (RFC 3396) as {@linkcode optionChunks} does. */
function optionsSize(options: DhcpOptions): number {
  let total = 0;
  options.forEach((value, code) => {
    if (code !== DhcpOption.Overload) {
      total += value.length + 2 * Math.max(1, Math.ceil(value.length / 255));
    }
  });
  return total;
}

/** Writes the options as TLVs, in the same bytes as {@linkcode optionChunks} makes. */
function writeOptions(w: ByteWriter, options: DhcpOptions): void {
  options.forEach((value, code) => {
    if (code === DhcpOption.Overload) return;
    let pos = 0;
    do {
      const n = Math.min(255, value.length - pos);
      w.u8(code).u8(n).bytes(value, pos, pos + n);
      pos += n;
    } while (pos < value.length);
  });
}

/**
 * Places option chunks into the options field, then file, then sname, keeping their order.
 * A chunk is first moved whole to the next area; only when that fails are chunks cut at area
 * boundaries (RFC 3396 §5 allows it, but clients that predate it would misread a cut option).
 */
function overloadAreas(
  chunks: Uint8Array[],
  mainRoom: number,
  maxSize: number,
): { main: Uint8Array[]; file: Uint8Array[]; sname: Uint8Array[]; overload: number } {
  return place(chunks, mainRoom, false) ?? place(chunks, mainRoom, true) ?? (() => {
    throw new RangeError(`DHCP options do not fit in ${maxSize} bytes even with overload`);
  })();
}

function place(
  chunks: Uint8Array[],
  mainRoom: number,
  cut: boolean,
): { main: Uint8Array[]; file: Uint8Array[]; sname: Uint8Array[]; overload: number } | undefined {
  // Each area keeps one byte for its End option.
  const areas: { list: Uint8Array[]; room: number }[] = [
    { list: [], room: mainRoom },
    { list: [], room: 128 - 1 },
    { list: [], room: 64 - 1 },
  ];
  let at = 0;
  for (let c of chunks) {
    for (;;) {
      const area = areas[at];
      if (!area) return undefined;
      if (c.length <= area.room) {
        area.list.push(c);
        area.room -= c.length;
        break;
      }
      if (cut && area.room >= 3) {
        const n = area.room - 2;
        area.list.push(Uint8Array.of(c[0]!, n, ...c.subarray(2, 2 + n)));
        area.room = 0;
        c = Uint8Array.of(c[0]!, c.length - 2 - n, ...c.subarray(2 + n));
      }
      at++;
    }
  }
  return {
    main: areas[0]!.list,
    file: areas[1]!.list,
    sname: areas[2]!.list,
    overload: at >= 2 ? 3 : 1,
  };
}

function optionArea(chunks: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  out[at] = DhcpOption.End;
  return out;
}

const NO_BYTES = new Uint8Array(0);

/** The last texts of sname and file encoded: a server names the same few boot files. */
const fieldTexts = new Map<string, Uint8Array>();

/** The bytes of an sname or file text, without the zeros after them (shared: never written to). */
function textField(name: string, value: string, size: number): Uint8Array {
  if (value === "") return NO_BYTES;
  let b = fieldTexts.get(value);
  if (b && b.length < size) return b;
  b = encoder.encode(value);
  // One byte is kept for the NUL: PXE ROMs copy these fields as C strings.
  if (b.length > size - 1) {
    throw new RangeError(`${name} is ${b.length} bytes, at most ${size - 1} fit`);
  }
  if (fieldTexts.size >= 64) fieldTexts.clear();
  fieldTexts.set(value, b);
  return b;
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${v}`);
  }
}

/** Largest reply the client accepts (option 57, at least 576 as RFC 2132 §9.10 requires). */
export function maxMessageSize(request: DhcpPacket): number {
  const v = request.options.u16(DhcpOption.MaxMessageSize);
  return v === undefined ? DEFAULT_MAX_MESSAGE_SIZE : Math.max(DEFAULT_MAX_MESSAGE_SIZE, v);
}

/** The client's MAC from chaddr, or null when the hardware address is not Ethernet's 6 bytes. */
export function macOf(p: DhcpPacket): Mac | null {
  return p.htype === 1 && p.chaddr.length === 6 ? macFromBytes(p.chaddr) : null;
}

/** True when the client asked for a broadcast reply (flags bit 15, RFC 2131 §4.1). */
export function isBroadcast(p: DhcpPacket): boolean {
  return (p.flags & 0x8000) !== 0;
}

/** Reply skeleton (RFC 2131 table 3): same xid/flags/giaddr/chaddr, type set, 82 echoed. */
export function replyTo(request: DhcpPacket, type: number): DhcpPacket {
  const options = new DhcpOptions().setMessageType(type);
  const relay = request.options.get(DhcpOption.RelayAgentInfo);
  if (relay) options.set(DhcpOption.RelayAgentInfo, relay);
  return {
    op: 2,
    htype: request.htype,
    hlen: request.hlen,
    hops: 0,
    xid: request.xid,
    secs: 0,
    // RFC 2131 §2: only the broadcast bit is defined; the reserved bits go back as zero.
    flags: request.flags & 0x8000,
    // Table 3: ciaddr is echoed only in an ACK (to a renewing client or an INFORM).
    ciaddr: type === 5 ? request.ciaddr : "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: request.giaddr,
    chaddr: request.chaddr.slice(),
    sname: "",
    file: "",
    options,
  };
}
