/**
 * Block verification: a block is trusted only when its bytes hash to the multihash in its CID.
 *
 * Only what a UnixFS tree needs is accepted: codecs dag-pb and raw, hashes sha2-256,
 * sha2-512 and identity (whose "digest" is the block itself, so it is never fetched).
 * Anything else, or a block over {@linkcode MAX_BLOCK_SIZE}, is refused before it is used.
 *
 * @module
 */

import { CID } from "multiformats";

/** Largest block accepted from a gateway (the Trustless Gateway spec's 2 MiB bitswap limit). */
export const MAX_BLOCK_SIZE = 2 * 1024 * 1024;

/** Multicodec codes of the IPLD codecs a UnixFS tree uses. */
export const CODEC = {
  /** Raw bytes: a file leaf or a whole small file (CIDv1 raw-leaves). */
  raw: 0x55,
  /** dag-pb: directories, HAMT shards, file roots and interior nodes. */
  dagPb: 0x70,
} as const;

/** Multihash function codes accepted here. */
export const HASH = {
  identity: 0x00,
  sha2_256: 0x12,
  sha2_512: 0x13,
} as const;

/** A CID the program will not use: unknown codec, unknown hash or malformed text. */
export class UnsupportedCidError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnsupportedCidError";
  }
}

/** A block whose bytes do not match its CID, or that is too large. */
export class BlockVerificationError extends Error {
  constructor(message: string, readonly cid: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BlockVerificationError";
  }
}

/** Parses a CID string (v0 `Qm…` or v1 multibase) and checks it is one we can verify. */
export function parseCid(text: string): CID {
  let cid: CID;
  try {
    cid = CID.parse(text.trim());
  } catch (cause) {
    throw new UnsupportedCidError(`Cannot parse CID "${text}"`, { cause });
  }
  checkCidSupported(cid);
  return cid;
}

/** Throws {@linkcode UnsupportedCidError} unless the CID's codec and hash are supported. */
export function checkCidSupported(cid: CID): void {
  if (cid.code !== CODEC.raw && cid.code !== CODEC.dagPb) {
    throw new UnsupportedCidError(
      `Cannot use CID ${cid}: codec 0x${cid.code.toString(16)} (only dag-pb and raw)`,
    );
  }
  const hash = cid.multihash.code;
  if (hash !== HASH.identity && hash !== HASH.sha2_256 && hash !== HASH.sha2_512) {
    throw new UnsupportedCidError(
      `Cannot use CID ${cid}: multihash 0x${hash.toString(16)} (only sha2-256, sha2-512, identity)`,
    );
  }
  const expected = digestLength(hash);
  if (expected !== undefined && cid.multihash.digest.length !== expected) {
    throw new UnsupportedCidError(
      `Cannot use CID ${cid}: digest is ${cid.multihash.digest.length} bytes, expected ${expected}`,
    );
  }
  if (hash === HASH.identity && cid.multihash.digest.length > MAX_BLOCK_SIZE) {
    throw new UnsupportedCidError(`Cannot use CID ${cid}: identity block over the size limit`);
  }
}

/** The block an identity CID carries inline, or null for a hashed CID. */
export function identityBlock(cid: CID): Uint8Array | null {
  return cid.multihash.code === HASH.identity ? cid.multihash.digest : null;
}

/**
 * Resolves when `bytes` is the block `cid` names; throws {@linkcode BlockVerificationError}
 * (bad hash, too large) or {@linkcode UnsupportedCidError} otherwise.
 */
export async function verifyBlock(cid: CID, bytes: Uint8Array): Promise<void> {
  checkCidSupported(cid);
  if (bytes.length > MAX_BLOCK_SIZE) {
    throw new BlockVerificationError(
      `Block ${cid} is ${bytes.length} bytes, over the ${MAX_BLOCK_SIZE}-byte limit`,
      cid.toString(),
    );
  }
  const hash = cid.multihash.code;
  const expected = cid.multihash.digest;
  const actual = hash === HASH.identity ? bytes : new Uint8Array(
    await crypto.subtle.digest(
      hash === HASH.sha2_256 ? "SHA-256" : "SHA-512",
      bytes as Uint8Array<ArrayBuffer>,
    ),
  );
  if (!equal(actual, expected)) {
    throw new BlockVerificationError(
      `Block ${cid} failed verification: its ${bytes.length} bytes hash to something else`,
      cid.toString(),
    );
  }
}

function digestLength(hash: number): number | undefined {
  if (hash === HASH.sha2_256) return 32;
  if (hash === HASH.sha2_512) return 64;
  return undefined;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
