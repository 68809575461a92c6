/**
 * A writer for the cpio "newc" format, the one the Linux kernel unpacks as an initramfs.
 *
 * Pure: entries in, bytes out. Device nodes and ownership come from the entry, not from the
 * file system, so the lab builds a bootable initramfs without root or `mknod`.
 *
 * @module
 */

/** One member of the archive; paths are relative (`bin/busybox`), parents listed first. */
export type CpioEntry =
  | { kind: "file"; path: string; mode?: number; data: Uint8Array }
  | { kind: "dir"; path: string; mode?: number }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "char"; path: string; mode?: number; major: number; minor: number };

// File type bits of st_mode (inode(7)).
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const TRAILER = "TRAILER!!!";

const encoder = new TextEncoder();

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new RangeError(`Cannot encode cpio field: ${n} is not a 32-bit unsigned integer`);
  }
  return n.toString(16).padStart(8, "0");
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

interface Member {
  name: Uint8Array;
  mode: number;
  data: Uint8Array;
  rdevMajor: number;
  rdevMinor: number;
  nlink: number;
}

function member(entry: CpioEntry): Member {
  if (entry.path.length === 0 || entry.path.startsWith("/") || entry.path.includes("\0")) {
    throw new RangeError(`Cannot encode cpio entry: bad path ${JSON.stringify(entry.path)}`);
  }
  const name = encoder.encode(entry.path + "\0");
  const base = { name, rdevMajor: 0, rdevMinor: 0, nlink: 1, data: new Uint8Array(0) };
  switch (entry.kind) {
    case "file":
      return { ...base, mode: S_IFREG | (entry.mode ?? 0o644), data: entry.data };
    case "dir":
      return { ...base, mode: S_IFDIR | (entry.mode ?? 0o755), nlink: 2 };
    case "symlink":
      return { ...base, mode: S_IFLNK | 0o777, data: encoder.encode(entry.target) };
    case "char":
      return {
        ...base,
        mode: S_IFCHR | (entry.mode ?? 0o600),
        rdevMajor: entry.major,
        rdevMinor: entry.minor,
      };
  }
}

function header(m: Member, ino: number): Uint8Array {
  // newc: magic then 13 fields of 8 hex digits; uid/gid 0, mtime 0 keeps builds reproducible.
  const fields = [
    ino,
    m.mode,
    0,
    0,
    m.nlink,
    0,
    m.data.length,
    0,
    0,
    m.rdevMajor,
    m.rdevMinor,
    m.name.length,
    0,
  ];
  return encoder.encode("070701" + fields.map(hex8).join(""));
}

/** Encodes entries (in order) plus the trailer into one newc archive. */
export function encodeCpio(entries: readonly CpioEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let offset = 0;
  const push = (bytes: Uint8Array) => {
    parts.push(bytes);
    offset += bytes.length;
  };
  const pad = () => {
    const n = pad4(offset);
    if (n > 0) push(new Uint8Array(n));
  };
  const write = (m: Member, ino: number) => {
    push(header(m, ino));
    push(m.name);
    pad();
    if (m.data.length > 0) push(m.data);
    pad();
  };
  entries.forEach((entry, i) => write(member(entry), i + 1));
  write({
    name: encoder.encode(TRAILER + "\0"),
    mode: 0,
    data: new Uint8Array(0),
    rdevMajor: 0,
    rdevMinor: 0,
    nlink: 1,
  }, 0);
  const out = new Uint8Array(offset);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Gzips bytes (the kernel accepts a gzip-compressed initramfs). */
export async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
