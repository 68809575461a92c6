/**
 * DNS messages (RFC 1035 §4.1): the header, questions and resource records, decoded from and
 * encoded to bytes by hand.
 *
 * The record types the server answers with or must understand have typed data: A, AAAA, NS,
 * CNAME, PTR, SOA, and OPT (EDNS, RFC 6891, whose data stays raw). Every other type keeps its
 * data as bytes, so any message decodes. A record whose data does not fit its type (an A of
 * 5 bytes, a PTR name running past its data) is malformed, as is any read past the end; bytes
 * after the counted sections are ignored. Names are compressed on encode (`name.ts`).
 *
 * @module
 */
import { ByteReader, ByteWriter, MalformedPacketError } from "../../net/bytes.ts";
import { ipv4ToBytes, ipv4ToString } from "../../net/ipv4.ts";
import { readName, writeName } from "./name.ts";

/** Record and query types (RFC 1035 §3.2.2–3, RFC 3596, RFC 6891, RFC 1995). */
export const DnsType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  OPT: 41,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
} as const;

const TYPE_NAMES = new Map<number, string>(Object.entries(DnsType).map(([k, v]) => [v, k]));

/** A type as people write it: `A`, `PTR`, else `TYPE<n>` (RFC 3597 §5). */
export function typeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `TYPE${type}`;
}

/** Classes (RFC 1035 §3.2.4–5). */
export const DnsClass = { IN: 1, CH: 3, ANY: 255 } as const;

/** Response codes (RFC 1035 §4.1.1; BADVERS from RFC 6891 needs the OPT's extended bits). */
export const Rcode = {
  NoError: 0,
  FormErr: 1,
  ServFail: 2,
  NXDomain: 3,
  NotImp: 4,
  Refused: 5,
  BadVers: 16,
} as const;

/** Opcodes (RFC 1035 §4.1.1): only QUERY is served. */
export const Opcode = { Query: 0 } as const;

/** The header's one-bit flags. */
export interface DnsFlags {
  /** A response. */
  qr: boolean;
  /** Authoritative answer. */
  aa: boolean;
  /** Truncated: the whole answer needs TCP. */
  tc: boolean;
  /** Recursion desired (copied into the response). */
  rd: boolean;
  /** Recursion available. */
  ra: boolean;
  /** Authentic data (RFC 4035). */
  ad: boolean;
  /** Checking disabled (RFC 4035). */
  cd: boolean;
}

/** One question: a name, a type, a class. */
export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

/** The start of authority of a zone (RFC 1035 §3.3.13). */
export interface SoaData {
  kind: "soa";
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/** A record's data, typed where the server needs it, raw otherwise. */
export type RecordData =
  | { kind: "a"; address: string }
  | { kind: "aaaa"; address: Uint8Array }
  | { kind: "name"; name: string }
  | SoaData
  | { kind: "raw"; bytes: Uint8Array };

/** One resource record. For OPT, `class` is the UDP size and `ttl` holds the EDNS bits. */
export interface DnsRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: RecordData;
}

/** A whole message. */
export interface DnsMessage {
  id: number;
  opcode: number;
  /** The low four bits; OPT carries the rest. */
  rcode: number;
  flags: DnsFlags;
  questions: DnsQuestion[];
  answers: DnsRecord[];
  authority: DnsRecord[];
  additional: DnsRecord[];
}

/** What the first 12 bytes and the first question say; enough to answer a message or match it. */
export interface DnsHead {
  id: number;
  opcode: number;
  rcode: number;
  flags: DnsFlags;
  question?: DnsQuestion;
}

const NAME_TYPES: ReadonlySet<number> = new Set([DnsType.NS, DnsType.CNAME, DnsType.PTR]);

function readFlags(bits: number): DnsFlags {
  return {
    qr: (bits & 0x8000) !== 0,
    aa: (bits & 0x0400) !== 0,
    tc: (bits & 0x0200) !== 0,
    rd: (bits & 0x0100) !== 0,
    ra: (bits & 0x0080) !== 0,
    ad: (bits & 0x0020) !== 0,
    cd: (bits & 0x0010) !== 0,
  };
}

function flagBits(m: Pick<DnsMessage, "flags" | "opcode" | "rcode">): number {
  const f = m.flags;
  return (f.qr ? 0x8000 : 0) | ((m.opcode & 0xf) << 11) | (f.aa ? 0x0400 : 0) |
    (f.tc ? 0x0200 : 0) | (f.rd ? 0x0100 : 0) | (f.ra ? 0x0080 : 0) | (f.ad ? 0x0020 : 0) |
    (f.cd ? 0x0010 : 0) | (m.rcode & 0xf);
}

function readQuestion(r: ByteReader): DnsQuestion {
  const { name, end } = readName(r.bytes, r.offset);
  r.skip(end - r.offset, "question name");
  return { name, type: r.u16("question type"), class: r.u16("question class") };
}

/** The data of a record of `type`, which must use all of its `length` bytes. */
function readData(r: ByteReader, type: number, length: number): RecordData {
  const start = r.offset;
  r.need(length, "record data");
  const stop = start + length;
  const nameIn = (from: number) => {
    const got = readName(r.bytes, from);
    if (got.end > stop) throw new MalformedPacketError("name runs past its record", from);
    return got;
  };
  let data: RecordData;
  let end = stop;
  if (type === DnsType.A) {
    if (length !== 4) throw new MalformedPacketError(`A record of ${length} bytes`, start);
    data = { kind: "a", address: ipv4ToString(r.bytes.subarray(start, stop)) };
  } else if (type === DnsType.AAAA) {
    if (length !== 16) throw new MalformedPacketError(`AAAA record of ${length} bytes`, start);
    data = { kind: "aaaa", address: r.bytes.slice(start, stop) };
  } else if (NAME_TYPES.has(type)) {
    const got = nameIn(start);
    data = { kind: "name", name: got.name };
    end = got.end;
  } else if (type === DnsType.SOA) {
    const m = nameIn(start);
    const n = nameIn(m.end);
    if (n.end + 20 > stop) throw new MalformedPacketError("SOA numbers cut short", n.end);
    const v = new DataView(r.bytes.buffer, r.bytes.byteOffset + n.end, 20);
    data = {
      kind: "soa",
      mname: m.name,
      rname: n.name,
      serial: v.getUint32(0),
      refresh: v.getUint32(4),
      retry: v.getUint32(8),
      expire: v.getUint32(12),
      minimum: v.getUint32(16),
    };
    end = n.end + 20;
  } else {
    data = { kind: "raw", bytes: r.bytes.slice(start, stop) };
  }
  if (end !== stop) {
    throw new MalformedPacketError(`${stop - end} bytes left over in a type ${type} record`, end);
  }
  r.skip(length);
  return data;
}

function readRecord(r: ByteReader): DnsRecord {
  const { name, end } = readName(r.bytes, r.offset);
  r.skip(end - r.offset, "record name");
  const type = r.u16("record type");
  const klass = r.u16("record class");
  const ttl = r.u32("record ttl");
  const length = r.u16("record data length");
  return { name, type, class: klass, ttl, data: readData(r, type, length) };
}

function readHeader(r: ByteReader): { head: DnsHead; counts: number[] } {
  const id = r.u16("id");
  const bits = r.u16("flags");
  const counts = [r.u16("qdcount"), r.u16("ancount"), r.u16("nscount"), r.u16("arcount")];
  return {
    head: { id, opcode: (bits >> 11) & 0xf, rcode: bits & 0xf, flags: readFlags(bits) },
    counts,
  };
}

/** The header and the first question only (none when the message has none). */
export function decodeDnsHead(bytes: Uint8Array): DnsHead {
  const r = new ByteReader(bytes);
  const { head, counts } = readHeader(r);
  if (counts[0]! > 0) head.question = readQuestion(r);
  return head;
}

/** Decodes a whole message; throws `MalformedPacketError` on anything that does not parse. */
export function decodeDns(bytes: Uint8Array): DnsMessage {
  const r = new ByteReader(bytes);
  const { head, counts } = readHeader(r);
  const [qd, an, ns, ar] = counts as [number, number, number, number];
  const questions: DnsQuestion[] = [];
  for (let i = 0; i < qd; i++) questions.push(readQuestion(r));
  const section = (n: number) => {
    const out: DnsRecord[] = [];
    for (let i = 0; i < n; i++) out.push(readRecord(r));
    return out;
  };
  const answers = section(an);
  const authority = section(ns);
  const additional = section(ar);
  return {
    id: head.id,
    opcode: head.opcode,
    rcode: head.rcode,
    flags: head.flags,
    questions,
    answers,
    authority,
    additional,
  };
}

function writeData(w: ByteWriter, d: RecordData, table: Map<string, number>): void {
  switch (d.kind) {
    case "a":
      w.bytes(ipv4ToBytes(d.address));
      return;
    case "aaaa":
      if (d.address.length !== 16) throw new RangeError("an AAAA address has 16 bytes");
      w.bytes(d.address);
      return;
    case "name":
      writeName(w, d.name, table);
      return;
    case "soa":
      writeName(w, d.mname, table);
      writeName(w, d.rname, table);
      w.u32(d.serial).u32(d.refresh).u32(d.retry).u32(d.expire).u32(d.minimum);
      return;
    case "raw":
      w.bytes(d.bytes);
  }
}

function writeRecord(w: ByteWriter, rr: DnsRecord, table: Map<string, number>): void {
  writeName(w, rr.name, table);
  w.u16(rr.type).u16(rr.class).u32(rr.ttl);
  const lengthAt = w.length;
  w.u16(0);
  const start = w.length;
  writeData(w, rr.data, table);
  const length = w.length - start;
  if (length > 0xffff) throw new RangeError(`record data of ${length} bytes`);
  w.setU16(lengthAt, length);
}

/** Encodes a message, names compressed. */
export function encodeDns(m: DnsMessage): Uint8Array {
  const w = new ByteWriter(512);
  w.u16(m.id).u16(flagBits(m));
  for (const n of [m.questions, m.answers, m.authority, m.additional]) {
    if (n.length > 0xffff) throw new RangeError(`${n.length} entries in one section`);
    w.u16(n.length);
  }
  const table = new Map<string, number>();
  for (const q of m.questions) {
    writeName(w, q.name, table);
    w.u16(q.type).u16(q.class);
  }
  for (const rr of [...m.answers, ...m.authority, ...m.additional]) writeRecord(w, rr, table);
  return w.finish();
}
