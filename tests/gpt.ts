/**
 * A GPT disk image with one partition, written byte by byte (UEFI 2.10 §5.3): the protective
 * MBR, the primary header and entry array, the partition's bytes, the backup array and
 * header. Pure and reproducible (fixed GUIDs): the lab's "installed" UEFI disk is an EFI
 * system partition laid into it (tests/lab_installer.ts).
 *
 * @module
 */

/** Sector size of the image. */
export const SECTOR = 512;

/** The EFI system partition's type GUID. */
export const ESP_TYPE = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

/** Where the partition starts (LBA 2048, 1 MiB: the alignment partitioning tools use). */
export const FIRST_LBA = 2048;

const ENTRIES = 128;
const ENTRY_SIZE = 128;
const ENTRY_SECTORS = (ENTRIES * ENTRY_SIZE) / SECTOR;
const HEADER_SIZE = 92;

const CRC_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** CRC-32 (IEEE 802.3, as zlib's), the checksum of GPT headers and entry arrays. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A GUID in its on-disk form: the first three fields little-endian, the rest as written. */
export function guidBytes(guid: string): Uint8Array {
  const hex = guid.replaceAll("-", "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new RangeError(`not a GUID: ${guid}`);
  const b = Uint8Array.from(hex.match(/../g)!, (h) => parseInt(h, 16));
  return Uint8Array.from([b[3]!, b[2]!, b[1]!, b[0]!, b[5]!, b[4]!, b[7]!, b[6]!, ...b.slice(8)]);
}

/** Options of {@linkcode gptDisk}. */
export interface GptOptions {
  /** The partition's type GUID; default the EFI system partition's. */
  type?: string;
  /** Its name (UTF-16, at most 36 characters). */
  name?: string;
  /** The disk's and the partition's GUIDs; fixed defaults keep the image reproducible. */
  diskGuid?: string;
  partGuid?: string;
}

/** The whole disk: one partition holding `partition` (a whole number of sectors). */
export function gptDisk(partition: Uint8Array, options: GptOptions = {}): Uint8Array {
  if (partition.length === 0 || partition.length % SECTOR !== 0) {
    throw new RangeError(`partition of ${partition.length} bytes is not whole sectors`);
  }
  const partSectors = partition.length / SECTOR;
  // Room after the partition for the backup array and header, and 1 MiB alignment.
  const total = FIRST_LBA + partSectors + FIRST_LBA;
  const lastUsable = total - 1 - ENTRY_SECTORS - 1;
  const disk = new Uint8Array(total * SECTOR);
  const view = new DataView(disk.buffer);

  // Protective MBR: one partition of type 0xEE over the whole disk (or as much as fits).
  const mbr = 446;
  disk.set([0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff], mbr);
  view.setUint32(mbr + 8, 1, true);
  view.setUint32(mbr + 12, Math.min(total - 1, 0xffffffff), true);
  disk[510] = 0x55;
  disk[511] = 0xaa;

  const entries = new Uint8Array(ENTRIES * ENTRY_SIZE);
  const ev = new DataView(entries.buffer);
  entries.set(guidBytes(options.type ?? ESP_TYPE), 0);
  entries.set(guidBytes(options.partGuid ?? "a57ab007-0000-4000-8000-000000000002"), 16);
  ev.setBigUint64(32, BigInt(FIRST_LBA), true);
  ev.setBigUint64(40, BigInt(FIRST_LBA + partSectors - 1), true);
  const name = options.name ?? "EFI system partition";
  if (name.length > 36) throw new RangeError(`partition name longer than 36: ${name}`);
  for (let i = 0; i < name.length; i++) ev.setUint16(56 + 2 * i, name.charCodeAt(i), true);
  const entriesCrc = crc32(entries);

  const header = (myLba: number, altLba: number, entriesLba: number): Uint8Array => {
    const h = new Uint8Array(SECTOR);
    const hv = new DataView(h.buffer);
    h.set(new TextEncoder().encode("EFI PART"), 0);
    hv.setUint32(8, 0x00010000, true);
    hv.setUint32(12, HEADER_SIZE, true);
    hv.setBigUint64(24, BigInt(myLba), true);
    hv.setBigUint64(32, BigInt(altLba), true);
    hv.setBigUint64(40, BigInt(2 + ENTRY_SECTORS), true);
    hv.setBigUint64(48, BigInt(lastUsable), true);
    h.set(guidBytes(options.diskGuid ?? "a57ab007-0000-4000-8000-000000000001"), 56);
    hv.setBigUint64(72, BigInt(entriesLba), true);
    hv.setUint32(80, ENTRIES, true);
    hv.setUint32(84, ENTRY_SIZE, true);
    hv.setUint32(88, entriesCrc, true);
    // The header's CRC covers its 92 bytes with the CRC field itself zero.
    hv.setUint32(16, crc32(h.subarray(0, HEADER_SIZE)), true);
    return h;
  };
  const backupEntries = total - 1 - ENTRY_SECTORS;
  disk.set(header(1, total - 1, 2), SECTOR);
  disk.set(entries, 2 * SECTOR);
  disk.set(partition, FIRST_LBA * SECTOR);
  disk.set(entries, backupEntries * SECTOR);
  disk.set(header(total - 1, 1, backupEntries), (total - 1) * SECTOR);
  return disk;
}
