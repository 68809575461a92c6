/**
 * TFTP packet codec: RFC 1350 frames plus the option extension of RFC 2347 (OACK).
 *
 * Pure functions, no I/O: {@linkcode decodeTftp} turns a datagram into a typed packet or throws
 * {@linkcode MalformedPacketError} naming the offset; {@linkcode encodeTftp} does the reverse.
 * Option names are lower-cased on decode (RFC 2347: case-insensitive) and kept in the order the
 * client sent them, values are kept raw; {@link ./options.ts} interprets them.
 *
 * @module
 */
import { ByteReader, ByteWriter, MalformedPacketError } from "../../net/bytes.ts";

/** Packet types (RFC 1350 §5, OACK from RFC 2347). */
export const Opcode = {
  RRQ: 1,
  WRQ: 2,
  DATA: 3,
  ACK: 4,
  ERROR: 5,
  OACK: 6,
} as const;

/** Error codes (RFC 1350 appendix; 8 from RFC 2347). */
export const ErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;

/** Transfer modes of RFC 1350 §5 ("mail" is obsolete but still decodes). */
export type TftpMode = "netascii" | "octet" | "mail";

/** Largest data payload in one block (RFC 2348: blksize 8–65464). */
export const MAX_BLKSIZE = 65464;
/** Blocksize without the blksize option (RFC 1350). */
export const DEFAULT_BLKSIZE = 512;
/** More options than this in one request is hostile, not a real client (they send ≤ 5). */
export const MAX_OPTIONS = 32;

/**
 * Read or write request (RFC 1350 §5, options RFC 2347 §2).
 *
 * ```
 *  2 bytes    string   1 byte  string  1 byte  string  1 byte  string  1 byte
 * +--------+----------+------+-------+------+--------+------+--------+------+-- ...
 * | 01/02  | filename |  0   | mode  |  0   |  opt1  |  0   | value1 |  0   |
 * +--------+----------+------+-------+------+--------+------+--------+------+-- ...
 * ```
 */
export interface RequestPacket {
  op: typeof Opcode.RRQ | typeof Opcode.WRQ;
  filename: string;
  mode: TftpMode;
  /** Lower-cased option names to raw values, in request order. */
  options: Map<string, string>;
}

/**
 * Data block (RFC 1350 §5); `data` shorter than the blksize marks the last block.
 *
 * ```
 *  2 bytes   2 bytes    n bytes
 * +--------+---------+----------+
 * |   03   | block # |   data   |
 * +--------+---------+----------+
 * ```
 */
export interface DataPacket {
  op: typeof Opcode.DATA;
  block: number;
  data: Uint8Array;
}

/**
 * Acknowledgment (RFC 1350 §5); block 0 acknowledges an OACK (RFC 2347).
 *
 * ```
 *  2 bytes   2 bytes
 * +--------+---------+
 * |   04   | block # |
 * +--------+---------+
 * ```
 */
export interface AckPacket {
  op: typeof Opcode.ACK;
  block: number;
}

/**
 * Error (RFC 1350 §5); ends the transfer and is never acknowledged.
 *
 * ```
 *  2 bytes   2 bytes     string   1 byte
 * +--------+-----------+---------+------+
 * |   05   | ErrorCode | ErrMsg  |  0   |
 * +--------+-----------+---------+------+
 * ```
 */
export interface ErrorPacket {
  op: typeof Opcode.ERROR;
  code: number;
  message: string;
}

/**
 * Option acknowledgment (RFC 2347 §3): the options the server accepted, with its values.
 *
 * ```
 *  2 bytes   string  1 byte  string  1 byte
 * +--------+-------+------+--------+------+-- ...
 * |   06   | opt1  |  0   | value1 |  0   |
 * +--------+-------+------+--------+------+-- ...
 * ```
 */
export interface OackPacket {
  op: typeof Opcode.OACK;
  options: Map<string, string>;
}

/** Any TFTP packet. */
export type TftpPacket = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

/** The request's option section cannot be accepted (duplicate, missing value): error 8. */
export class TftpOptionError extends MalformedPacketError {
  constructor(message: string, offset: number) {
    super(message, offset);
    this.name = "TftpOptionError";
  }
}

/** Smallest valid datagram per opcode: header plus the shortest legal fields. */
const MIN_LENGTH: Record<number, number> = {
  [Opcode.RRQ]: 2 + 2 + 5, // "x\0" + "mail\0"
  [Opcode.WRQ]: 2 + 2 + 5,
  [Opcode.DATA]: 4,
  [Opcode.ACK]: 4,
  [Opcode.ERROR]: 4, // code; the message may be missing (see decodeTftp)
  [Opcode.OACK]: 2 + 4, // one option "a\0" "1\0"
};

const utf8 = new TextDecoder("utf-8", { fatal: true });
const lenient = new TextDecoder("utf-8");
const encoder = new TextEncoder();

/** Reads a NUL-terminated string; `what` names the field in errors. */
function cstring(r: ByteReader, what: string): string {
  const start = r.offset;
  const rest = r.bytes.subarray(start);
  const nul = rest.indexOf(0);
  if (nul < 0) throw new MalformedPacketError(`${what} is not NUL-terminated`, start);
  const raw = r.bytesOf(nul, what);
  r.skip(1, `${what} terminator`);
  try {
    return utf8.decode(raw);
  } catch {
    throw new MalformedPacketError(`${what} is not valid UTF-8`, start);
  }
}

/** Like {@linkcode _cstring}, failing with {@linkcode TftpOptionError}. */
function optionString(r: ByteReader, what: string): string {
  try {
    return cstring(r, what);
  } catch (e) {
    if (e instanceof MalformedPacketError) {
      throw new TftpOptionError(e.message.replace(/ \(at byte \d+\)$/, ""), e.offset);
    }
    throw e;
  }
}

/** Reads option/value pairs up to the end of the packet (RFC 2347 §2). */
function readOptions(r: ByteReader): Map<string, string> {
  const options = new Map<string, string>();
  while (r.remaining > 0) {
    // tftp-hpa skips empty option names, so NUL padding after the last pair is accepted.
    if (r.bytes.subarray(r.offset).every((b) => b === 0)) break;
    const at = r.offset;
    if (options.size >= MAX_OPTIONS) {
      throw new TftpOptionError(`more than ${MAX_OPTIONS} options`, at);
    }
    const name = optionString(r, "option name").toLowerCase();
    if (name === "") throw new TftpOptionError("option name is empty", at);
    if (r.remaining === 0) throw new TftpOptionError(`option ${name} has no value`, r.offset);
    const value = optionString(r, `option ${name} value`);
    if (options.has(name)) throw new TftpOptionError(`option ${name} appears twice`, at);
    options.set(name, value);
  }
  return options;
}

/** Decodes one datagram; throws {@linkcode MalformedPacketError} (offset inside) on bad input. */
export function decodeTftp(bytes: Uint8Array): TftpPacket {
  const r = new ByteReader(bytes);
  const op = r.u16("opcode");
  const min = MIN_LENGTH[op];
  if (min === undefined) throw new MalformedPacketError(`unknown opcode ${op}`, 0);
  if (bytes.length < min) {
    throw new MalformedPacketError(`opcode ${op} needs ${min} bytes, got ${bytes.length}`, 0);
  }
  switch (op) {
    case Opcode.RRQ:
    case Opcode.WRQ: {
      const filename = cstring(r, "filename");
      if (filename === "") throw new MalformedPacketError("filename is empty", 2);
      const modeAt = r.offset;
      const mode = cstring(r, "mode").toLowerCase();
      if (mode !== "octet" && mode !== "netascii" && mode !== "mail") {
        throw new MalformedPacketError(`unknown mode ${JSON.stringify(mode)}`, modeAt);
      }
      return { op, filename, mode, options: readOptions(r) };
    }
    case Opcode.DATA: {
      const block = r.u16("block number");
      if (r.remaining > MAX_BLKSIZE) {
        throw new MalformedPacketError(`data of ${r.remaining} bytes exceeds ${MAX_BLKSIZE}`, 4);
      }
      return { op, block, data: r.rest() };
    }
    case Opcode.ACK:
      // Trailing bytes after the block number are ignored, as tftp-hpa does.
      return { op, block: r.u16("block number") };
    case Opcode.ERROR: {
      // Whatever its text: an ERROR ends the transfer, so a client that leaves out the NUL or
      // sends bytes that are not UTF-8 must not be retransmitted to until we give up.
      const code = r.u16("error code");
      const rest = r.rest();
      const nul = rest.indexOf(0);
      return { op, code, message: lenient.decode(nul < 0 ? rest : rest.subarray(0, nul)) };
    }
    default: {
      const options = readOptions(r);
      if (options.size === 0) throw new MalformedPacketError("OACK carries no option", 2);
      return { op: Opcode.OACK, options };
    }
  }
}

function putString(w: ByteWriter, s: string, what: string): void {
  const b = encoder.encode(s);
  if (b.includes(0)) throw new RangeError(`Cannot encode TFTP ${what}: it contains NUL`);
  w.bytes(b).u8(0);
}

function putOptions(w: ByteWriter, options: Map<string, string>): void {
  for (const [name, value] of options) {
    if (name === "") throw new RangeError("Cannot encode TFTP option: empty name");
    putString(w, name, "option name");
    putString(w, value, `option ${name} value`);
  }
}

/** Encodes a packet; throws RangeError for values that cannot be framed. */
export function encodeTftp(packet: TftpPacket): Uint8Array {
  const w = new ByteWriter(64);
  w.u16(packet.op);
  switch (packet.op) {
    case Opcode.RRQ:
    case Opcode.WRQ:
      if (packet.filename === "") throw new RangeError("Cannot encode TFTP request: empty name");
      putString(w, packet.filename, "filename");
      putString(w, packet.mode, "mode");
      putOptions(w, packet.options);
      return w.finish();
    case Opcode.DATA:
      return encodeData(packet.block, packet.data);
    case Opcode.ACK:
      checkBlock(packet.block);
      return w.u16(packet.block).finish();
    case Opcode.ERROR:
      if (!Number.isInteger(packet.code) || packet.code < 0 || packet.code > 0xffff) {
        throw new RangeError(`Cannot encode TFTP error code ${packet.code}`);
      }
      w.u16(packet.code);
      putString(w, packet.message, "error message");
      return w.finish();
    case Opcode.OACK:
      if (packet.options.size === 0) throw new RangeError("Cannot encode an empty TFTP OACK");
      putOptions(w, packet.options);
      return w.finish();
  }
}

function checkBlock(block: number): void {
  if (!Number.isInteger(block) || block < 0 || block > 0xffff) {
    throw new RangeError(`Cannot encode TFTP block number ${block}`);
  }
}

/** Encodes a DATA packet in one allocation; the server's hot path. */
export function encodeData(block: number, data: Uint8Array): Uint8Array {
  checkBlock(block);
  if (data.length > MAX_BLKSIZE) {
    throw new RangeError(`Cannot encode TFTP data of ${data.length} bytes`);
  }
  const out = new Uint8Array(4 + data.length);
  out[1] = Opcode.DATA;
  out[2] = block >> 8;
  out[3] = block & 0xff;
  out.set(data, 4);
  return out;
}

/** Encodes an ERROR packet; a shorthand the server uses for every refusal. */
export function encodeError(code: number, message: string): Uint8Array {
  return encodeTftp({ op: Opcode.ERROR, code, message });
}
