/**
 * The seeded mutator of the fuzz tests: a small PRNG (a failing mutation replays from its seed)
 * and byte mutations of real captures, aimed where a codec's framing lives. Used by
 * `protocols/dhcp/packet_hostile_test.ts` and the fuzz runs of `tests/fuzz.ts`.
 *
 * @module
 */

/** A random number in [0, 1); the mutator's only source of randomness. */
export type Rnd = () => number;

/** mulberry32: small seeded PRNG so a failing mutation can be replayed. */
export function prng(seed: number): Rnd {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a codec's mutations aim at. */
export interface MutationProfile {
  /** Most mutations (80 %) land at or after this offset: where the framing lives. */
  focus: number;
  /** Bytes a mutation likes to plant: framing codes and lengths that stress the decoder. */
  interesting: readonly number[];
  /** The codec's own mutation, one in six; may replace the buffer. */
  special: (b: Uint8Array, at: number, pick: (n: number) => number) => Uint8Array;
}

const DHCP_INTERESTING = [
  0,
  1,
  2,
  3,
  4,
  12,
  52,
  53,
  55,
  57,
  60,
  61,
  77,
  82,
  93,
  94,
  97,
  175,
  254,
  255,
];

/**
 * DHCP: options after the header; overload (option 52) pointing into `sname`/`file`; whole
 * options of any length put first, where they join a later one of the same code (RFC 3396).
 */
export const DHCP_MUTATION: MutationProfile = {
  focus: 236,
  interesting: DHCP_INTERESTING,
  special: (b, _at, pick) => {
    if (b.length < 240) return b;
    if (pick(2) === 0) {
      // Overload: point option 52 at the header fields.
      if (b.length > 243) b.set([52, 1, 1 + pick(3)], 240);
      for (let k = 0; k < 8; k++) b[44 + pick(192)] = pick(256);
      return b;
    }
    const length = pick(2) === 0 ? pick(256) : 192 + pick(64);
    const option = Uint8Array.from({ length: 2 + length }, () => pick(256));
    option[0] = DHCP_INTERESTING[2 + pick(DHCP_INTERESTING.length - 3)]!;
    option[1] = length;
    const next = new Uint8Array(b.length + option.length);
    next.set(b.subarray(0, 240));
    next.set(option, 240);
    next.set(b.subarray(240), 240 + option.length);
    return next;
  },
};

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Fields a TFTP request or OACK is made of, NUL included: spliced in whole. */
const TFTP_TOKENS: readonly Uint8Array[] = [
  "blksize",
  "tsize",
  "timeout",
  "windowsize",
  "octet",
  "netascii",
  "mail",
  "BLKSIZE",
  "0",
  "1",
  "7",
  "8",
  "255",
  "256",
  "1468",
  "65464",
  "65465",
  "65535",
  "65536",
  "99999999999999999999",
  "-1",
  "1e3",
  " 512",
  "constructor",
  "__proto__",
  "../../etc/passwd",
  "",
].map((s) => utf8(s + "\0"));

/** TFTP: everything after the opcode; whole option names and values spliced in. */
export const TFTP_MUTATION: MutationProfile = {
  focus: 2,
  interesting: [0, 1, 2, 3, 4, 5, 6, 7, 0x2e, 0x2f, 0x30, 0x39, 0x7f, 0x80, 0xc0, 0xff],
  special: (b, at, pick) => {
    const token = TFTP_TOKENS[pick(TFTP_TOKENS.length)]!;
    // Half overwrite a field in place, half insert a new one.
    const keep = pick(2) === 0 ? Math.min(b.length, at + token.length) : at;
    const next = new Uint8Array(at + token.length + (b.length - keep));
    next.set(b.subarray(0, at));
    next.set(token, at);
    next.set(b.subarray(keep), at + token.length);
    return next;
  },
};

/** DNS: label lengths, pointers and their targets, counts, the types with typed data. */
const DNS_INTERESTING = [0, 1, 2, 4, 5, 6, 12, 16, 28, 41, 63, 64, 0x80, 0xc0, 0xc0 | 0x3f, 0xff];

/**
 * DNS: everything after the ID and flags (the counts, then the names); a compression pointer
 * planted anywhere (mostly backwards, sometimes at or after itself), or a label of 63 or 64
 * bytes spliced in.
 */
export const DNS_MUTATION: MutationProfile = {
  focus: 12,
  interesting: DNS_INTERESTING,
  special: (b, at, pick) => {
    if (pick(2) === 0) {
      const target = pick(4) === 0 ? at + pick(8) : pick(Math.max(1, at));
      const next = new Uint8Array(Math.max(b.length, at + 2));
      next.set(b);
      next[at] = 0xc0 | ((target >> 8) & 0x3f);
      next[at + 1] = target & 0xff;
      return next;
    }
    const length = 63 + pick(2);
    const label = Uint8Array.from({ length: 1 + length }, (_, i) => i === 0 ? length : 0x61);
    const next = new Uint8Array(b.length + label.length);
    next.set(b.subarray(0, at));
    next.set(label, at);
    next.set(b.subarray(at), at + label.length);
    return next;
  },
};

/**
 * One to six mutations of a copy of `src`: a random or an interesting byte, truncation,
 * inserted random bytes, a bit flip, or the profile's own.
 */
export function mutate(src: Uint8Array, rnd: Rnd, profile: MutationProfile): Uint8Array {
  const pick = (n: number) => Math.floor(rnd() * n);
  let b: Uint8Array = src.slice();
  const rounds = 1 + pick(6);
  for (let i = 0; i < rounds; i++) {
    const at = Math.min(
      b.length,
      rnd() < 0.8 ? profile.focus + pick(Math.max(1, b.length - profile.focus)) : pick(b.length),
    );
    switch (pick(6)) {
      case 0:
        b[at] = pick(256);
        break;
      case 1:
        b[at] = profile.interesting[pick(profile.interesting.length)]!;
        break;
      case 2:
        b = b.slice(0, at);
        break;
      case 3: {
        const ins = Uint8Array.from({ length: 1 + pick(8) }, () => pick(256));
        const next = new Uint8Array(b.length + ins.length);
        next.set(b.subarray(0, at));
        next.set(ins, at);
        next.set(b.subarray(at), at + ins.length);
        b = next;
        break;
      }
      case 4:
        if (at < b.length) b[at] = b[at]! ^ (1 << pick(8));
        break;
      default:
        b = profile.special(b, at, pick);
    }
  }
  return b;
}

/** Lower-case hex of `b`, for replaying a failure. */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The bytes of a {@linkcode hex} string (whitespace ignored). */
export function unhex(s: string): Uint8Array {
  return Uint8Array.from(s.replace(/\s+/g, "").match(/../g) ?? [], (h) => parseInt(h, 16));
}
