/**
 * IPv4 addresses as text, bytes and numbers, and the subnet arithmetic every layer needs
 * (pools, broadcast addresses, "is this relay on our network"), in one place.
 *
 * @module
 */

/** Dotted-quad IPv4 from 4 bytes. */
export function ipv4ToString(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/**
 * A dotted-quad IPv4 as an unsigned 32-bit number, or -1 when `ip` is not one. By hand, one pass
 * over the characters and no allocation: DHCP parses several addresses per packet and every boot
 * script request a few (a split with a regular expression per part, then a byte array per
 * address, showed in their profiles).
 */
function parseIpv4(ip: string): number {
  let n = 0, parts = 0, value = 0, digits = 0;
  for (let i = 0; i <= ip.length; i++) {
    const c = i < ip.length ? ip.charCodeAt(i) : 46;
    if (c >= 48 && c <= 57 && digits < 3) {
      value = value * 10 + c - 48;
      digits++;
    } else if (c === 46 && digits > 0 && value <= 255 && parts < 4) {
      n = n * 256 + value;
      parts++;
      value = digits = 0;
    } else {
      return -1;
    }
  }
  return parts === 4 ? n : -1;
}

/** 4 bytes from a dotted-quad IPv4; throws RangeError on anything else. */
export function ipv4ToBytes(ip: string): Uint8Array {
  const n = ipv4ToNumber(ip);
  return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

/** Whether `text` is a dotted-quad IPv4 address. */
export function isIpv4(text: string): boolean {
  return parseIpv4(text) >= 0;
}

/** IPv4 as an unsigned 32-bit number, for arithmetic on ranges and masks; throws RangeError on anything else. */
export function ipv4ToNumber(ip: string): number {
  const n = parseIpv4(ip);
  if (n < 0) throw new RangeError(`Not an IPv4 address: ${JSON.stringify(ip)}`);
  return n;
}

/** Dotted-quad from an unsigned 32-bit number. */
export function numberToIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The netmask of a prefix length: 24 → 255.255.255.0. */
export function prefixToNetmask(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw new RangeError(`Not a prefix length: ${prefix}`);
  }
  return numberToIpv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

/** The prefix length of a netmask, or null when its ones are not contiguous. */
export function netmaskToPrefix(netmask: string): number | null {
  const m = ipv4ToNumber(netmask);
  const prefix = m === 0 ? 0 : Math.clz32(~m >>> 0);
  return prefixToNetmask(prefix) === numberToIpv4(m) ? prefix : null;
}

/**
 * One IPv4 subnet: its network address and mask.
 *
 * @example
 * ```ts
 * import { Subnet } from "./ipv4.ts";
 * const net = Subnet.of("10.0.0.7", "255.255.255.0");
 * net.network; // "10.0.0.0"
 * net.broadcast; // "10.0.0.255"
 * net.contains("10.0.0.200"); // true
 * ```
 */
export class Subnet {
  readonly #net: number;
  readonly #mask: number;

  private constructor(net: number, mask: number) {
    this.#net = net;
    this.#mask = mask;
  }

  /** The subnet an address with this netmask belongs to. */
  static of(address: string, netmask: string): Subnet {
    const mask = ipv4ToNumber(netmask);
    return new Subnet((ipv4ToNumber(address) & mask) >>> 0, mask);
  }

  /** A subnet written as `10.0.0.0/24`; throws RangeError on anything else. */
  static parse(cidr: string): Subnet {
    const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr.trim());
    if (!m) throw new RangeError(`Not a subnet like "10.0.0.0/24": ${JSON.stringify(cidr)}`);
    return Subnet.of(m[1]!, prefixToNetmask(Number(m[2])));
  }

  /** The network address. */
  get network(): string {
    return numberToIpv4(this.#net);
  }

  /** The netmask. */
  get netmask(): string {
    return numberToIpv4(this.#mask);
  }

  /** The prefix length. */
  get prefix(): number {
    return this.#mask === 0 ? 0 : Math.clz32(~this.#mask >>> 0);
  }

  /** The broadcast address. */
  get broadcast(): string {
    return numberToIpv4((this.#net | (~this.#mask >>> 0)) >>> 0);
  }

  /** First and last host address (network and broadcast excluded where there are hosts). */
  get hosts(): [string, string] {
    const last = (this.#net | (~this.#mask >>> 0)) >>> 0;
    if (last - this.#net < 2) return [numberToIpv4(this.#net), numberToIpv4(last)];
    return [numberToIpv4(this.#net + 1), numberToIpv4(last - 1)];
  }

  /** Whether `address` lies inside the subnet. */
  contains(address: string): boolean {
    return ((ipv4ToNumber(address) & this.#mask) >>> 0) === this.#net;
  }

  /** `10.0.0.0/24`. */
  toString(): string {
    return `${this.network}/${this.prefix}`;
  }
}
