/**
 * Defaults of the IPFS store that the config reads without loading the store: the store brings
 * the IPLD, CAR and UnixFS packages, a few MiB of memory that a server of a local tree (`-l DIR`)
 * does without (`app/serve.ts` imports the store only for a `ref`).
 *
 * @module
 */

/** Slowest average rate a large download is given time for by default: 64 KiB/s. */
export const DOWNLOAD_MIN_RATE = 64 * 1024;
