import assert from "node:assert/strict";
import { MalformedPacketError } from "../../net/bytes.ts";
import {
  decodeTftp,
  encodeData,
  encodeError,
  encodeTftp,
  ErrorCode,
  MAX_OPTIONS,
  Opcode,
  TftpOptionError,
  type TftpPacket,
} from "./packet.ts";
import { CAPTURED_FRAMES } from "./_test_utils.ts";

const hex = (s: string) =>
  Uint8Array.from(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
const ascii = (s: string) => new TextEncoder().encode(s);
const cat = (...parts: (Uint8Array | number[])[]) =>
  Uint8Array.from(parts.flatMap((p) => Array.from(p)));
const opts = (...pairs: [string, string][]) => new Map(pairs);

/** Hand-written frames, RFC 1350 / 2347 layouts. */
const HAND_WRITTEN: { name: string; bytes: Uint8Array; packet: TftpPacket }[] = [
  {
    name: "DATA block 258 with 3 bytes",
    bytes: cat([0, 3, 1, 2], ascii("abc")),
    packet: { op: Opcode.DATA, block: 258, data: ascii("abc") },
  },
  {
    name: "empty DATA block (file size a multiple of blksize)",
    bytes: cat([0, 3, 0xff, 0xff]),
    packet: { op: Opcode.DATA, block: 65535, data: new Uint8Array(0) },
  },
  {
    name: "ERROR 1 file not found",
    bytes: cat([0, 5, 0, 1], ascii("not found"), [0]),
    packet: { op: Opcode.ERROR, code: ErrorCode.FILE_NOT_FOUND, message: "not found" },
  },
  {
    name: "ERROR with empty message",
    bytes: cat([0, 5, 0, 8, 0]),
    packet: { op: Opcode.ERROR, code: ErrorCode.OPTION_REFUSED, message: "" },
  },
  {
    name: "OACK blksize 1468 windowsize 4 (our answer to atftp, captured)",
    bytes: hex("0006 626c6b73697a65 00 31343638 00 77696e646f7773697a65 00 34 00"),
    packet: { op: Opcode.OACK, options: opts(["blksize", "1468"], ["windowsize", "4"]) },
  },
];

Deno.test("decodeTftp decodes captured client frames and re-encodes them byte for byte", async (t) => {
  for (const c of CAPTURED_FRAMES) {
    await t.step(c.name, () => {
      const bytes = hex(c.bytes);
      assert.deepEqual(decodeTftp(bytes), c.packet);
      assert.deepEqual(encodeTftp(c.packet), bytes);
    });
  }
});

Deno.test("decodeTftp and encodeTftp agree on hand-written frames", async (t) => {
  for (const c of HAND_WRITTEN) {
    await t.step(c.name, () => {
      assert.deepEqual(decodeTftp(c.bytes), c.packet);
      assert.deepEqual(encodeTftp(c.packet), c.bytes);
      assert.deepEqual(decodeTftp(encodeTftp(decodeTftp(c.bytes))), c.packet);
    });
  }
});

Deno.test("decodeTftp is lenient where real implementations are", async (t) => {
  const cases: { name: string; bytes: Uint8Array; packet: TftpPacket }[] = [
    {
      name: "option names and mode are case-insensitive (RFC 2347)",
      bytes: cat([0, 1], ascii("f\0OcTeT\0BLKSIZE\x001024\0WindowSize\x008\0")),
      packet: {
        op: Opcode.RRQ,
        filename: "f",
        mode: "octet",
        options: opts(["blksize", "1024"], ["windowsize", "8"]),
      },
    },
    {
      name: "NUL padding after the last option is skipped (as tftp-hpa does)",
      bytes: cat([0, 1], ascii("f\0octet\0tsize\x000\0"), [0, 0, 0, 0]),
      packet: { op: Opcode.RRQ, filename: "f", mode: "octet", options: opts(["tsize", "0"]) },
    },
    {
      name: "ACK with trailing bytes keeps the block number (tftp-hpa ignores them too)",
      bytes: cat([0, 4, 0, 7, 0, 0]),
      packet: { op: Opcode.ACK, block: 7 },
    },
    {
      name: "option values are kept raw for negotiation to judge",
      bytes: cat([0, 1], ascii("f\0octet\0blksize\0-1\0timeout\0\0")),
      packet: {
        op: Opcode.RRQ,
        filename: "f",
        mode: "octet",
        options: opts(["blksize", "-1"], ["timeout", ""]),
      },
    },
    {
      name: "an ERROR without its NUL, or its message, or in another encoding, is an ERROR",
      bytes: cat([0, 5, 0, 1, 0x41]),
      packet: { op: Opcode.ERROR, code: 1, message: "A" },
    },
    {
      name: "an ERROR of its code alone",
      bytes: cat([0, 5, 0, 3]),
      packet: { op: Opcode.ERROR, code: 3, message: "" },
    },
    {
      name: "an ERROR in Latin-1",
      bytes: cat([0, 5, 0, 0, 0x66, 0xe9, 0]),
      packet: { op: Opcode.ERROR, code: 0, message: "f\ufffd" },
    },
    {
      name: "UTF-8 filename",
      bytes: cat([0, 1], ascii("bo\u00eete\0octet\0")),
      packet: { op: Opcode.RRQ, filename: "bo\u00eete", mode: "octet", options: opts() },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => assert.deepEqual(decodeTftp(c.bytes), c.packet));
  }
});

Deno.test("decodeTftp rejects hostile input with an offset", async (t) => {
  const manyOptions = cat(
    [0, 1],
    ascii("f\0octet\0"),
    ...Array.from({ length: MAX_OPTIONS + 1 }, (_, i) => ascii(`x${i}\x001\0`)),
  );
  const cases: { name: string; bytes: Uint8Array; error: RegExp; option?: boolean }[] = [
    { name: "empty datagram", bytes: new Uint8Array(0), error: /opcode needs 2 bytes/ },
    { name: "one byte", bytes: cat([0]), error: /opcode needs 2 bytes/ },
    { name: "opcode 0", bytes: cat([0, 0, 0, 1]), error: /unknown opcode 0/ },
    { name: "opcode 7", bytes: cat([0, 7, 0, 1]), error: /unknown opcode 7/ },
    { name: "opcode 0xffff", bytes: cat([0xff, 0xff, 0, 1]), error: /unknown opcode 65535/ },
    { name: "RRQ too short", bytes: cat([0, 1], ascii("f\0")), error: /needs 9 bytes/ },
    {
      name: "filename without NUL",
      bytes: cat([0, 1], ascii("filename-octet")),
      error: /filename is not NUL-terminated/,
    },
    {
      name: "mode without NUL",
      bytes: cat([0, 1], ascii("file\0octet")),
      error: /mode is not NUL-terminated/,
    },
    { name: "empty filename", bytes: cat([0, 1], ascii("\0octet\0")), error: /filename is empty/ },
    {
      name: "mode garbage",
      bytes: cat([0, 1], ascii("f\0binary\0")),
      error: /unknown mode "binary"/,
    },
    {
      name: "mode with control bytes",
      bytes: cat([0, 1], ascii("f\0oc\x01et\0")),
      error: /unknown mode/,
    },
    {
      name: "invalid UTF-8 in filename",
      bytes: cat([0, 1], [0xff, 0xfe, 0], ascii("octet\0")),
      error: /filename is not valid UTF-8/,
    },
    {
      name: "option without value",
      bytes: cat([0, 1], ascii("f\0octet\0blksize\0")),
      error: /option blksize has no value/,
      option: true,
    },
    {
      name: "option value without NUL",
      bytes: cat([0, 1], ascii("f\0octet\0blksize\x001468")),
      error: /option blksize value is not NUL-terminated/,
      option: true,
    },
    {
      name: "option name without NUL",
      bytes: cat([0, 1], ascii("f\0octet\0blksize")),
      error: /option name is not NUL-terminated/,
      option: true,
    },
    {
      name: "empty option name followed by data",
      bytes: cat([0, 1], ascii("f\0octet\0\x001468\0")),
      error: /option name is empty/,
      option: true,
    },
    {
      name: "duplicate option",
      bytes: cat([0, 1], ascii("f\0octet\0blksize\x00512\0tsize\x000\0blksize\x001468\0")),
      error: /option blksize appears twice/,
      option: true,
    },
    {
      name: "duplicate option differing in case",
      bytes: cat([0, 1], ascii("f\0octet\0tsize\x000\0TSIZE\x000\0")),
      error: /option tsize appears twice/,
      option: true,
    },
    {
      name: "huge option count",
      bytes: manyOptions,
      error: new RegExp(`more than ${MAX_OPTIONS} options`),
      option: true,
    },
    { name: "ACK too short", bytes: cat([0, 4, 0]), error: /needs 4 bytes, got 3/ },
    { name: "DATA too short", bytes: cat([0, 3, 1]), error: /needs 4 bytes, got 3/ },
    {
      name: "DATA larger than 65464 bytes",
      bytes: cat([0, 3, 0, 1], new Uint8Array(65465)),
      error: /data of 65465 bytes exceeds 65464/,
    },
    { name: "ERROR too short", bytes: cat([0, 5, 0]), error: /needs 4 bytes/ },
    { name: "OACK without options", bytes: cat([0, 6, 0, 0, 0, 0]), error: /OACK carries no/ },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.throws(() => decodeTftp(c.bytes), (e: unknown) => {
        assert.ok(e instanceof MalformedPacketError, String(e));
        assert.match(e.message, c.error);
        assert.equal(typeof e.offset, "number");
        assert.ok(e.offset >= 0 && e.offset <= c.bytes.length, `offset ${e.offset}`);
        assert.equal(e instanceof TftpOptionError, c.option ?? false);
        return true;
      });
    });
  }
});

Deno.test("encodeTftp refuses what cannot be framed", async (t) => {
  const cases: { name: string; packet: TftpPacket }[] = [
    { name: "block number above 65535", packet: { op: Opcode.ACK, block: 65536 } },
    { name: "negative block", packet: { op: Opcode.DATA, block: -1, data: new Uint8Array(0) } },
    {
      name: "NUL in filename",
      packet: { op: Opcode.RRQ, filename: "a\0b", mode: "octet", options: opts() },
    },
    {
      name: "empty filename",
      packet: { op: Opcode.RRQ, filename: "", mode: "octet", options: opts() },
    },
    { name: "empty OACK", packet: { op: Opcode.OACK, options: opts() } },
    { name: "empty option name", packet: { op: Opcode.OACK, options: opts(["", "1"]) } },
    { name: "error code 70000", packet: { op: Opcode.ERROR, code: 70000, message: "x" } },
    {
      name: "oversized data",
      packet: { op: Opcode.DATA, block: 1, data: new Uint8Array(65465) },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => assert.throws(() => encodeTftp(c.packet), RangeError));
  }
});

Deno.test("encodeData and encodeError build the same bytes as encodeTftp", () => {
  const data = ascii("payload");
  assert.deepEqual(encodeData(513, data), encodeTftp({ op: Opcode.DATA, block: 513, data }));
  assert.deepEqual(
    encodeError(ErrorCode.UNKNOWN_TID, "unknown transfer ID"),
    cat([0, 5, 0, 5], ascii("unknown transfer ID"), [0]),
  );
});
