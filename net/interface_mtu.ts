/**
 * The MTU of a network interface. `Deno.networkInterfaces()` has no MTU; the kernel shows it in
 * `/sys/class/net/<name>/mtu`, read through libc (Deno grants `/sys` only with `--allow-all`,
 * the FFI permission the interface sockets need already reaches it).
 *
 * @module
 */
import { readKernelFile } from "./libc.ts";

/** The interface's MTU in bytes, or null when it cannot be read (no such interface, no FFI). */
export function interfaceMtu(name: string): number | null {
  // An interface name is at most 15 bytes and never holds a path separator.
  if (name.length === 0 || name.length > 15 || name.includes("/") || name.startsWith(".")) {
    return null;
  }
  let text: string | null;
  try {
    text = readKernelFile(`/sys/class/net/${name}/mtu`, 32);
  } catch {
    return null; // no --allow-ffi: the caller assumes Ethernet
  }
  const mtu = Number(text?.trim());
  return Number.isInteger(mtu) && mtu >= 68 ? mtu : null;
}
