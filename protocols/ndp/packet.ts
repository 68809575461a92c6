/**
 * Router Solicitation and Router Advertisement codecs (RFC 4861 §4.1, §4.2, options §4.6).
 *
 * Only the ICMPv6 message: the kernel's raw ICMPv6 socket strips the IPv6 header on receive
 * and fills in the checksum on send (RFC 3542 §3.1), so `encode*` leaves it 0 and `decode*`
 * does not look at it. {@linkcode icmpv6Checksum} exists for frames built by hand.
 *
 * @module
 */
import { ByteReader, ByteWriter, MalformedPacketError } from "../../net/bytes.ts";

/** ICMPv6 message types of router discovery (RFC 4861 §4.1, §4.2). */
export const ICMPV6_TYPE = {
  ROUTER_SOLICITATION: 133,
  ROUTER_ADVERTISEMENT: 134,
} as const;

/** Neighbour discovery option types (RFC 4861 §4.6). */
export const NDP_OPTION = {
  SOURCE_LINK_LAYER_ADDRESS: 1,
  TARGET_LINK_LAYER_ADDRESS: 2,
  PREFIX_INFORMATION: 3,
  REDIRECTED_HEADER: 4,
  MTU: 5,
} as const;

/**
 * One option, kept raw (RFC 4861 §4.6): `data` is everything after type and length, padding
 * included, so the option is `2 + data.length` bytes, a multiple of 8.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |     Type      |    Length     |              ...              |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ~                              ...                              ~
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   Length: of the whole option in units of 8 bytes; 0 is invalid
 * ```
 */
export interface NdpOption {
  type: number;
  data: Uint8Array;
}

/**
 * Router Solicitation (RFC 4861 §4.1): a host asks routers to advertise now.
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Type (133)   |   Code (0)    |          Checksum             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                            Reserved                           |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |   Options ... (source link-layer address, unless the source is ::)
 * +-+-+-+-+-+-+-+-+-+-+-+-
 * ```
 */
export interface RouterSolicitation {
  options: NdpOption[];
}

/**
 * Router Advertisement (RFC 4861 §4.2).
 *
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |  Type (134)   |   Code (0)    |          Checksum             |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * | Cur Hop Limit |M|O|  Reserved |       Router Lifetime         |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                         Reachable Time                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                          Retrans Timer                        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |   Options ...
 * +-+-+-+-+-+-+-+-+-+-+-+-
 *   M: addresses from DHCPv6; O: other configuration from DHCPv6
 *   Router Lifetime (s): 0 = not a default router
 * ```
 */
export interface RouterAdvertisement {
  /** Hop limit hosts should use; 0 = unspecified. */
  curHopLimit: number;
  /** M flag: addresses from DHCPv6. */
  managed: boolean;
  /** O flag: other configuration from DHCPv6. */
  other: boolean;
  /** Seconds this router is a default router; 0 = it is not one. */
  routerLifetime: number;
  /** ms; 0 = unspecified. */
  reachableTime: number;
  /** ms; 0 = unspecified. */
  retransTimer: number;
  options: NdpOption[];
}

const RS_FIXED = 8;
const RA_FIXED = 16;
const M_FLAG = 0x80;
const O_FLAG = 0x40;

function header(r: ByteReader, type: number, minLength: number, name: string): void {
  if (r.remaining < minLength) {
    throw new MalformedPacketError(
      `${name} needs at least ${minLength} bytes, got ${r.remaining}`,
      0,
    );
  }
  const t = r.u8("type");
  if (t !== type) throw new MalformedPacketError(`not a ${name}: ICMPv6 type ${t}`, 0);
  const code = r.u8("code");
  // RFC 4861 §6.1.1 / §6.1.2: a code other than 0 makes the message invalid.
  if (code !== 0) throw new MalformedPacketError(`${name} with code ${code} (must be 0)`, 1);
  r.u16("checksum");
}

/** Reads options up to the end; each must have a non-zero length that fits (RFC 4861 §4.6). */
function readOptions(r: ByteReader): NdpOption[] {
  const out: NdpOption[] = [];
  while (r.remaining > 0) {
    const at = r.offset;
    const type = r.u8("option type");
    const units = r.u8(`option ${type} length`);
    if (units === 0) throw new MalformedPacketError(`option ${type} has length 0`, at);
    const size = units * 8;
    if (size - 2 > r.remaining) {
      throw new MalformedPacketError(
        `option ${type} claims ${size} bytes, only ${r.remaining + 2} remain`,
        at,
      );
    }
    out.push({ type, data: r.bytesOf(size - 2, `option ${type}`).slice() });
  }
  return out;
}

function writeOptions(w: ByteWriter, options: readonly NdpOption[]): void {
  for (const o of options) {
    const size = o.data.length + 2;
    if (size % 8 !== 0 || size > 255 * 8) {
      throw new RangeError(
        `NDP option ${o.type}: ${o.data.length} data bytes; 2 + data must be a multiple of 8 up to 2040`,
      );
    }
    range(`option type`, o.type, 255);
    w.u8(o.type).u8(size / 8).bytes(o.data);
  }
}

function range(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} must be a whole number from 0 to ${max}, got ${value}`);
  }
}

/** Decodes a Router Solicitation; throws {@linkcode MalformedPacketError} on anything invalid. */
export function decodeRouterSolicitation(bytes: Uint8Array): RouterSolicitation {
  const r = new ByteReader(bytes);
  header(r, ICMPV6_TYPE.ROUTER_SOLICITATION, RS_FIXED, "router solicitation");
  r.skip(4, "reserved");
  return { options: readOptions(r) };
}

/** Encodes a Router Solicitation, checksum 0. */
export function encodeRouterSolicitation(rs: RouterSolicitation): Uint8Array {
  const w = new ByteWriter(RS_FIXED + 8 * rs.options.length);
  w.u8(ICMPV6_TYPE.ROUTER_SOLICITATION).u8(0).u16(0).u32(0);
  writeOptions(w, rs.options);
  return w.finish();
}

/** Decodes a Router Advertisement; throws {@linkcode MalformedPacketError} on anything invalid. */
export function decodeRouterAdvertisement(bytes: Uint8Array): RouterAdvertisement {
  const r = new ByteReader(bytes);
  header(r, ICMPV6_TYPE.ROUTER_ADVERTISEMENT, RA_FIXED, "router advertisement");
  const curHopLimit = r.u8("cur hop limit");
  const flags = r.u8("flags");
  return {
    curHopLimit,
    managed: (flags & M_FLAG) !== 0,
    other: (flags & O_FLAG) !== 0,
    routerLifetime: r.u16("router lifetime"),
    reachableTime: r.u32("reachable time"),
    retransTimer: r.u32("retrans timer"),
    options: readOptions(r),
  };
}

/** Encodes a Router Advertisement, checksum 0; throws RangeError on out-of-range fields. */
export function encodeRouterAdvertisement(ra: RouterAdvertisement): Uint8Array {
  range("cur hop limit", ra.curHopLimit, 255);
  range("router lifetime", ra.routerLifetime, 65535);
  range("reachable time", ra.reachableTime, 0xffffffff);
  range("retrans timer", ra.retransTimer, 0xffffffff);
  const w = new ByteWriter(RA_FIXED + 8 * ra.options.length);
  w.u8(ICMPV6_TYPE.ROUTER_ADVERTISEMENT).u8(0).u16(0);
  w.u8(ra.curHopLimit).u8((ra.managed ? M_FLAG : 0) | (ra.other ? O_FLAG : 0));
  w.u16(ra.routerLifetime).u32(ra.reachableTime).u32(ra.retransTimer);
  writeOptions(w, ra.options);
  return w.finish();
}

/**
 * Source link-layer address option for an Ethernet MAC (RFC 4861 §4.6.1, RFC 2464 §6).
 *
 * ```
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |   Type (1)    |  Length (1)   |    Link-Layer Address (6) ... |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
export function sourceLinkLayerOption(mac: Uint8Array): NdpOption {
  if (mac.length !== 6) throw new RangeError(`An Ethernet MAC has 6 bytes, got ${mac.length}`);
  return { type: NDP_OPTION.SOURCE_LINK_LAYER_ADDRESS, data: mac.slice() };
}

/** The link-layer address in the first source link-layer address option, or null. */
export function sourceLinkLayerAddress(options: readonly NdpOption[]): Uint8Array | null {
  const o = options.find((x) => x.type === NDP_OPTION.SOURCE_LINK_LAYER_ADDRESS);
  // Ethernet's option is 8 bytes: 6 of address after type and length (RFC 2464 §6).
  return o && o.data.length >= 6 ? o.data.subarray(0, 6) : null;
}

/**
 * The advertisement of a host that is no router: it ends a client's router discovery and
 * gives it nothing. Lifetime 0 (no default route, RFC 4861 §6.2.3), M and O clear (no
 * DHCPv6), no prefix (no addresses), every timer "unspecified", and our MAC (when known) so
 * the client needs no neighbour solicitation to answer.
 */
export function nonRouterAdvertisement(mac: Uint8Array | null): RouterAdvertisement {
  return {
    curHopLimit: 0,
    managed: false,
    other: false,
    routerLifetime: 0,
    reachableTime: 0,
    retransTimer: 0,
    // The option is optional (§4.2); without it a client that wants to talk back asks first.
    options: mac ? [sourceLinkLayerOption(mac)] : [],
  };
}

/**
 * The ICMPv6 checksum over the IPv6 pseudo-header and `message` (RFC 4443 §2.3, RFC 8200
 * §8.1), with the message's own checksum field counted as zero.
 */
export function icmpv6Checksum(
  source: Uint8Array,
  destination: Uint8Array,
  message: Uint8Array,
): number {
  if (source.length !== 16 || destination.length !== 16) {
    throw new RangeError("icmpv6Checksum: addresses must be 16 bytes");
  }
  let sum = 0;
  const add = (b: Uint8Array, skipChecksum = false) => {
    for (let i = 0; i < b.length; i += 2) {
      if (skipChecksum && i === 2) continue;
      sum += (b[i]! << 8) | (b[i + 1] ?? 0);
    }
  };
  add(source);
  add(destination);
  // Pseudo-header: upper-layer length (32 bits) and next header 58 (32 bits, zero-padded).
  sum += (message.length >>> 16) + (message.length & 0xffff) + 58;
  add(message, true);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
