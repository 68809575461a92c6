/**
 * Netascii encoding for `mode netascii` reads (RFC 1350 §5, after RFC 764).
 *
 * A Unix file's LF becomes CR LF and a bare CR becomes CR NUL. The mapping is per byte with
 * no look-ahead (what tftp-hpa does when reading), so chunks convert independently and the
 * encoded size is only known after reading the whole file: tsize is not offered for netascii.
 *
 * @module
 */

/** Converts one chunk of a local file to netascii. */
export function toNetascii(chunk: Uint8Array): Uint8Array {
  let extra = 0;
  for (const b of chunk) if (b === 0x0a || b === 0x0d) extra++;
  if (extra === 0) return chunk;
  const out = new Uint8Array(chunk.length + extra);
  let j = 0;
  for (const b of chunk) {
    if (b === 0x0a) {
      out[j++] = 0x0d;
      out[j++] = 0x0a;
    } else if (b === 0x0d) {
      out[j++] = 0x0d;
      out[j++] = 0x00;
    } else {
      out[j++] = b;
    }
  }
  return out;
}

/** A stream transform applying {@linkcode toNetascii} to every chunk. */
export function netasciiStream(): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(toNetascii(chunk));
    },
  });
}
