/**
 * The rules of DNS on the wire that are not the message format: EDNS (RFC 6891) and the size
 * of a UDP answer, truncation, the skeleton of a response, error answers to messages that do
 * not decode, and query IDs.
 *
 * @module
 */
import { MalformedPacketError } from "../../net/bytes.ts";
import {
  decodeDns,
  decodeDnsHead,
  type DnsMessage,
  type DnsRecord,
  DnsType,
  encodeDns,
  Rcode,
} from "./message.ts";

/** The UDP answer size every client takes (RFC 1035 §4.2.1). */
export const MIN_UDP = 512;
/**
 * The largest UDP answer sent, whatever the client offers: larger ones are truncated and the
 * client asks again over TCP, so no answer is ever fragmented (DNS Flag Day 2020).
 */
export const MAX_UDP = 1232;

/** What a message's OPT record says (RFC 6891 §6.1.3). */
export interface Edns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
}

/**
 * The EDNS of a message: null without OPT; throws `MalformedPacketError` for two OPTs or one
 * not owned by the root (RFC 6891 §6.1.1: FORMERR).
 */
export function ednsOf(m: DnsMessage): Edns | null {
  const opts = m.additional.filter((r) => r.type === DnsType.OPT);
  if (opts.length === 0) return null;
  if (opts.length > 1) throw new MalformedPacketError("more than one OPT record", 0);
  const opt = opts[0]!;
  if (opt.name !== "") throw new MalformedPacketError("OPT record not owned by the root", 0);
  return {
    udpSize: opt.class,
    version: (opt.ttl >>> 16) & 0xff,
    dnssecOk: (opt.ttl & 0x8000) !== 0,
  };
}

/** The largest UDP answer this query may get. */
export function udpLimit(edns: Edns | null): number {
  return edns ? Math.min(MAX_UDP, Math.max(MIN_UDP, edns.udpSize)) : MIN_UDP;
}

/** Our OPT record: the size we take, and the upper bits of an extended rcode. */
export function optRecord(rcode = 0): DnsRecord {
  return {
    name: "",
    type: DnsType.OPT,
    class: MAX_UDP,
    ttl: ((rcode >> 4) & 0xff) << 24,
    data: { kind: "raw", bytes: new Uint8Array(0) },
  };
}

/**
 * The empty response to a query with `rcode`: its ID, opcode, RD and CD, its question, and an
 * OPT when it had one (RFC 6891 §7: a responder that understands EDNS answers with OPT).
 */
export function responseTo(query: DnsMessage, rcode: number, edns: Edns | null): DnsMessage {
  return {
    id: query.id,
    opcode: query.opcode,
    rcode: rcode & 0xf,
    flags: {
      qr: true,
      aa: false,
      tc: false,
      rd: query.flags.rd,
      ra: false,
      ad: false,
      cd: query.flags.cd,
    },
    questions: query.questions.slice(0, 1),
    answers: [],
    authority: [],
    additional: edns ? [optRecord(rcode)] : [],
  };
}

/**
 * An answer cut down to fit `limit` bytes: when it is longer, its header with TC set and its
 * question only, so the client asks again over TCP (RFC 1035 §4.2.1, RFC 7766 §5).
 */
export function fitAnswer(bytes: Uint8Array, limit: number): Uint8Array {
  if (bytes.length <= limit) return bytes;
  const head = decodeDnsHead(bytes);
  return encodeDns({
    id: head.id,
    opcode: head.opcode,
    rcode: head.rcode,
    flags: { ...head.flags, tc: true },
    questions: head.question ? [head.question] : [],
    answers: [],
    authority: [],
    // RFC 6891 §7: an answer to a query with EDNS carries its OPT, truncated or not.
    additional: optOf(bytes),
  });
}

/** The OPT record of an answer, if it has one and decodes (an upstream's may not: then none). */
function optOf(bytes: Uint8Array): DnsRecord[] {
  try {
    return decodeDns(bytes).additional.filter((r) => r.type === DnsType.OPT);
  } catch (e) {
    if (e instanceof MalformedPacketError) return [];
    throw e;
  }
}

/**
 * The FORMERR answer to a message that does not decode (RFC 1035 §4.1.1): its header with no
 * sections. None when it has no whole header, or is a response itself (answering responses
 * lets two servers bounce errors at each other forever).
 */
export function formatError(bytes: Uint8Array): Uint8Array | null {
  if (bytes.length < 12 || (bytes[2]! & 0x80) !== 0) return null;
  const out = new Uint8Array(12);
  out.set(bytes.subarray(0, 2));
  // QR, the opcode and RD as asked; AA, TC, RA, Z, AD, CD clear.
  out[2] = 0x80 | (bytes[2]! & 0x79);
  out[3] = Rcode.FormErr;
  return out;
}

/** A copy of a message with another ID. */
export function withId(bytes: Uint8Array, id: number): Uint8Array {
  const out = bytes.slice();
  out[0] = id >> 8;
  out[1] = id & 0xff;
  return out;
}

/**
 * An upstream's answer as a forwarder relays it: the client's ID, and AA clear, since the
 * server that answers the client is no authority for the name (RFC 1035 §4.1.1).
 */
export function relayed(bytes: Uint8Array, id: number): Uint8Array {
  const out = withId(bytes, id);
  if (out.length > 2) out[2] = out[2]! & ~0x04;
  return out;
}

/** A random query ID: an off-path attacker must guess it (RFC 5452 §9.2). */
export function randomId(): number {
  return crypto.getRandomValues(new Uint16Array(1))[0]!;
}
