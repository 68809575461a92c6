/**
 * DHCPv4 options: codes, an ordered raw store with typed accessors, and the TLV codec.
 *
 * Options are kept as raw bytes per code, in the order they were first seen or set; typed
 * accessors read them and return `undefined` (or an empty list) when an option is absent or
 * has the wrong shape, so a handler never throws on a value. The decoder in `packet.ts`
 * rejects malformed framing and the few options whose shape the server relies on.
 *
 * @module
 */

import { MalformedPacketError } from "../../net/bytes.ts";
import { ipv4ToBytes, ipv4ToString } from "../../net/ipv4.ts";

/** Option codes used by the boot server, each with the RFC that defines it. */
export const DhcpOption = {
  /** RFC 2132 §3.1: one zero byte, no length. */
  Pad: 0,
  /** RFC 2132 §3.3 */
  SubnetMask: 1,
  /** RFC 2132 §3.5: list of IPv4. */
  Router: 3,
  /** RFC 2132 §3.8: list of IPv4. */
  DNS: 6,
  /** RFC 2132 §3.14 */
  Hostname: 12,
  /** RFC 2132 §3.17 */
  DomainName: 15,
  /** RFC 2132 §5.3 */
  BroadcastAddr: 28,
  /** RFC 2132 §8.4; PXE puts its sub-options here (PXE 2.1 §2.4). */
  VendorSpecific: 43,
  /** RFC 2132 §9.1 */
  RequestedIP: 50,
  /** RFC 2132 §9.2: seconds, u32. */
  LeaseTime: 51,
  /** RFC 2132 §9.3: 1 = file, 2 = sname, 3 = both carry options. */
  Overload: 52,
  /** RFC 2132 §9.6 */
  MessageType: 53,
  /** RFC 2132 §9.7 */
  ServerId: 54,
  /** RFC 2132 §9.8 */
  ParamRequestList: 55,
  /** RFC 2132 §9.9 */
  Message: 56,
  /** RFC 2132 §9.10: u16, at least 576. */
  MaxMessageSize: 57,
  /** RFC 2132 §9.11: T1, seconds. */
  RenewalTime: 58,
  /** RFC 2132 §9.12: T2, seconds. */
  RebindingTime: 59,
  /** RFC 2132 §9.13: "PXEClient:Arch:…" from PXE firmware. */
  VendorClassId: 60,
  /** RFC 2132 §9.14: type byte + identifier. */
  ClientId: 61,
  /** RFC 2132 §9.4 */
  TftpServerName: 66,
  /** RFC 2132 §9.5 */
  BootfileName: 67,
  /** RFC 3004: length-prefixed list; iPXE sends raw "iPXE" instead. */
  UserClass: 77,
  /** RFC 3046: sub-options, echoed back by the server. */
  RelayAgentInfo: 82,
  /** RFC 4578 §2.1: list of u16 architecture types. */
  ClientArch: 93,
  /** RFC 4578 §2.2: type (1 = UNDI), major, minor. */
  ClientNdi: 94,
  /** RFC 4578 §2.3: type 0 + 16-byte UUID/GUID. */
  ClientUuid: 97,
  /** iPXE encapsulated options (ipxe include/ipxe/dhcp.h, DHCP_EB_ENCAP). */
  IpxeEncap: 175,
  /** RFC 2132 §3.2: end of options. */
  End: 255,
} as const;

/** DHCP message types, RFC 2132 §9.6. */
export const MessageType = {
  Discover: 1,
  Offer: 2,
  Request: 3,
  Decline: 4,
  Ack: 5,
  Nak: 6,
  Release: 7,
  Inform: 8,
} as const;

/** Name of an option code ("MessageType"), or `Option<n>` for codes not in {@linkcode DhcpOption}. */
export function optionName(code: number): string {
  return OPTION_NAMES.get(code) ?? `Option${code}`;
}

/** Name of a message type ("DISCOVER"), or `TYPE<n>` for unknown ones. */
export function messageTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `TYPE${type}`;
}

const OPTION_NAMES = new Map<number, string>(
  Object.entries(DhcpOption).map(([name, code]) => [code, name]),
);
const TYPE_NAMES = new Map<number, string>(
  Object.entries(MessageType).map(([name, code]) => [code, name.toUpperCase()]),
);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Ordered options, raw bytes per code; repeated codes are already concatenated (RFC 3396). */
export class DhcpOptions {
  #map = new Map<number, Uint8Array>();

  /** Options from `[code, bytes]` pairs, in that order. */
  constructor(entries: Iterable<readonly [number, Uint8Array]> = []) {
    for (const [code, bytes] of entries) this.set(code, bytes);
  }

  /** Raw value of `code`. */
  get(code: number): Uint8Array | undefined {
    return this.#map.get(code);
  }

  /** Sets the raw value; a code already present keeps its position. Pad and End are refused. */
  set(code: number, bytes: Uint8Array): this {
    if (!Number.isInteger(code) || code < 1 || code > 254) {
      throw new RangeError(`DHCP option code must be 1..254, got ${code}`);
    }
    this.#map.set(code, bytes);
    return this;
  }

  /** True when `code` is present (even with zero length). */
  has(code: number): boolean {
    return this.#map.has(code);
  }

  /** Removes `code`; true when it was there. */
  delete(code: number): boolean {
    return this.#map.delete(code);
  }

  /** Codes in order. */
  codes(): number[] {
    const out: number[] = [];
    this.#map.forEach((_, code) => out.push(code));
    return out;
  }

  /** `[code, bytes]` pairs in order. */
  entries(): IterableIterator<[number, Uint8Array]> {
    return this.#map.entries();
  }

  /** Calls `fn` with each option in order, without a pair made for each (the encoder's loop). */
  forEach(fn: (value: Uint8Array, code: number) => void): void {
    // Not the Map itself as a third argument: options change only through `set`.
    this.#map.forEach((value, code) => fn(value, code));
  }

  /** Number of options. */
  get size(): number {
    return this.#map.size;
  }

  /** A copy with its own map (values are shared; they are never mutated in place). */
  clone(): DhcpOptions {
    return new DhcpOptions(this.#map);
  }

  /** Option 53, or undefined when absent or not one byte. */
  messageType(): number | undefined {
    return this.u8(DhcpOption.MessageType);
  }

  /** A 4-byte option as dotted quad. */
  ip(code: number): string | undefined {
    const v = this.#map.get(code);
    return v?.length === 4 ? ipv4ToString(v) : undefined;
  }

  /** A list-of-IPv4 option; empty when absent or not a multiple of 4 bytes. */
  ips(code: number): string[] {
    const v = this.#map.get(code);
    if (!v || v.length % 4 !== 0) return [];
    const out: string[] = [];
    for (let i = 0; i < v.length; i += 4) out.push(ipv4ToString(v.subarray(i, i + 4)));
    return out;
  }

  /** A 4-byte unsigned option. */
  u32(code: number): number | undefined {
    const v = this.#map.get(code);
    if (v?.length !== 4) return undefined;
    return ((v[0]! << 24) | (v[1]! << 16) | (v[2]! << 8) | v[3]!) >>> 0;
  }

  /** A 2-byte unsigned option. */
  u16(code: number): number | undefined {
    const v = this.#map.get(code);
    return v?.length === 2 ? (v[0]! << 8) | v[1]! : undefined;
  }

  /** A 1-byte option. */
  u8(code: number): number | undefined {
    const v = this.#map.get(code);
    return v?.length === 1 ? v[0]! : undefined;
  }

  /** A text option (UTF-8, trailing NULs dropped: some clients NUL-terminate host names). */
  string(code: number): string | undefined {
    const v = this.#map.get(code);
    if (v === undefined) return undefined;
    let end = v.length;
    while (end > 0 && v[end - 1] === 0) end--;
    return decoder.decode(v.subarray(0, end));
  }

  /** Option 55: the codes the client asks for, in its order. */
  paramRequestList(): number[] {
    const v = this.#map.get(DhcpOption.ParamRequestList);
    const out: number[] = [];
    // A loop, not a spread: no iterator result per byte (every reply reads it).
    if (v) { for (let i = 0; i < v.length; i++) out.push(v[i]!); }
    return out;
  }

  /** Option 93 (RFC 4578 §2.1): architecture types; empty when absent or of odd length. */
  clientArch(): number[] {
    const v = this.#map.get(DhcpOption.ClientArch);
    if (!v || v.length % 2 !== 0) return [];
    const out: number[] = [];
    for (let i = 0; i < v.length; i += 2) out.push((v[i]! << 8) | v[i + 1]!);
    return out;
  }

  /** Option 77: RFC 3004 length-prefixed classes, or one raw class (iPXE sends bare "iPXE"). */
  userClasses(): string[] {
    const v = this.#map.get(DhcpOption.UserClass);
    if (!v || v.length === 0) return [];
    const framed: string[] = [];
    let i = 0;
    while (i < v.length) {
      const len = v[i]!;
      if (len === 0 || i + 1 + len > v.length) return [decoder.decode(v)];
      framed.push(decoder.decode(v.subarray(i + 1, i + 1 + len)));
      i += 1 + len;
    }
    return framed;
  }

  /** Option 175: iPXE's encapsulated sub-options; empty when absent or malformed. */
  ipxeEncap(): Map<number, Uint8Array> {
    const v = this.#map.get(DhcpOption.IpxeEncap);
    if (!v) return new Map();
    try {
      return decodeSubOptions(v);
    } catch (e) {
      if (e instanceof MalformedPacketError) return new Map();
      throw e;
    }
  }

  /** Option 60 as text. */
  vendorClass(): string | undefined {
    return this.string(DhcpOption.VendorClassId);
  }

  /** Option 61, raw (type byte + identifier). */
  clientId(): Uint8Array | undefined {
    return this.#map.get(DhcpOption.ClientId);
  }

  /** Option 97 (RFC 4578 §2.3): the 16 UUID bytes when the option is type 0 and 17 bytes long. */
  uuid(): Uint8Array | undefined {
    const v = this.#map.get(DhcpOption.ClientUuid);
    return v?.length === 17 && v[0] === 0 ? v.subarray(1) : undefined;
  }

  /** Sets a 4-byte IPv4 option. */
  setIp(code: number, ip: string): this {
    return this.set(code, ipv4ToBytes(ip));
  }

  /** Sets a list-of-IPv4 option. */
  setIps(code: number, ips: readonly string[]): this {
    const out = new Uint8Array(ips.length * 4);
    ips.forEach((ip, i) => out.set(ipv4ToBytes(ip), i * 4));
    return this.set(code, out);
  }

  /** Sets a 4-byte unsigned option. */
  setU32(code: number, value: number): this {
    checkUint(value, 0xffffffff, code);
    return this.set(
      code,
      Uint8Array.of(value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255),
    );
  }

  /** Sets a 2-byte unsigned option. */
  setU16(code: number, value: number): this {
    checkUint(value, 0xffff, code);
    return this.set(code, Uint8Array.of(value >>> 8, value & 255));
  }

  /** Sets a 1-byte option. */
  setU8(code: number, value: number): this {
    checkUint(value, 0xff, code);
    return this.set(code, Uint8Array.of(value));
  }

  /** Sets a text option (UTF-8, no terminator). */
  setString(code: number, value: string): this {
    return this.set(code, encoder.encode(value));
  }

  /** Sets option 53. */
  setMessageType(type: number): this {
    return this.setU8(DhcpOption.MessageType, type);
  }
}

function checkUint(value: number, max: number, code: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`DHCP option ${code}: ${value} is not an integer in 0..${max}`);
  }
}

/** What an options area is read into: a packet's {@linkcode DhcpOptions}, a Map of sub-options. */
export interface OptionSink {
  get(code: number): Uint8Array | undefined;
  set(code: number, value: Uint8Array): unknown;
}

/** The chunks of each code repeated in the area being read (RFC 3396); empty between reads. */
const JOINS = new Map<number, Uint8Array[]>();

/**
 * Reads one options area (RFC 2132 §2: TLVs, Pad skipped, stops at End; a missing End is
 * accepted) into `into`, straight (no list per code: a server decodes two requests per client,
 * and the lists of a first pass showed in its allocations); a code seen again is joined to
 * what it had (RFC 3396 §6), once the area is read. `base` is the area's offset in the packet,
 * for errors; `firstOffset[code]`, when given, is set where a code first appears (it must hold
 * -1 for codes not seen yet). A malformed area throws with `into` half read: drop it whole.
 * The joins wait in one table of this module: `into` must not read another area meanwhile.
 */
export function readOptionsArea(
  area: Uint8Array,
  base: number,
  into: OptionSink,
  firstOffset?: Int32Array,
): void {
  JOINS.clear(); // left filled by an area that threw
  let i = 0;
  while (i < area.length) {
    const code = area[i]!;
    if (code === DhcpOption.Pad) {
      i++;
      continue;
    }
    if (code === DhcpOption.End) break;
    if (i + 1 >= area.length) {
      throw new MalformedPacketError(`DHCP option ${code} has no length byte`, base + i);
    }
    const len = area[i + 1]!;
    if (i + 2 + len > area.length) {
      throw new MalformedPacketError(
        `DHCP option ${code} claims ${len} bytes, only ${area.length - i - 2} remain`,
        base + i,
      );
    }
    const value = area.subarray(i + 2, i + 2 + len);
    const before = into.get(code);
    if (before === undefined) {
      into.set(code, value);
      if (firstOffset) firstOffset[code] = base + i;
    } else {
      // One copy however many times the code repeats.
      const chunks = JOINS.get(code);
      if (chunks) chunks.push(value);
      else JOINS.set(code, [before, value]);
    }
    i += 2 + len;
  }
  if (JOINS.size === 0) return;
  JOINS.forEach((chunks, code) => into.set(code, concatBytes(chunks)));
  JOINS.clear();
}

/** Options as TLV chunks of at most 255 data bytes (RFC 3396 §5), minus the `skip` codes. */
export function optionChunks(options: DhcpOptions, skip: ReadonlySet<number>): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const [code, value] of options.entries()) {
    if (skip.has(code)) continue;
    let pos = 0;
    do {
      const n = Math.min(255, value.length - pos);
      const tlv = new Uint8Array(2 + n);
      tlv[0] = code;
      tlv[1] = n;
      tlv.set(value.subarray(pos, pos + n), 2);
      out.push(tlv);
      pos += n;
    } while (pos < value.length);
  }
  return out;
}

/** Decodes encapsulated sub-options (43 PXE, 82 relay, 175 iPXE); repeated codes are joined. */
export function decodeSubOptions(bytes: Uint8Array, base = 0): Map<number, Uint8Array> {
  const subs = new Map<number, Uint8Array>();
  readOptionsArea(bytes, base, subs);
  return subs;
}

/** Encodes sub-options in map order; `end` appends an End byte (PXE option 43 wants one). */
export function encodeSubOptions(
  subs: ReadonlyMap<number, Uint8Array> | Iterable<readonly [number, Uint8Array]>,
  end = false,
): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const [code, value] of subs) {
    if (!Number.isInteger(code) || code < 1 || code > 254) {
      throw new RangeError(`Sub-option code must be 1..254, got ${code}`);
    }
    if (value.length > 255) {
      throw new RangeError(`Sub-option ${code} is ${value.length} bytes, at most 255 fit`);
    }
    chunks.push(Uint8Array.of(code, value.length), value);
  }
  if (end) chunks.push(Uint8Array.of(DhcpOption.End));
  return concatBytes(chunks);
}

/** Concatenates byte arrays (one part is returned as is). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
