/**
 * The kernel's IPv4 neighbour table (`/proc/net/arp`): which MAC answers for an address on a
 * directly attached link. A client that just opened a TCP connection to us is in it, because
 * the kernel had to resolve its address to answer.
 *
 * @module
 */
import { readKernelFile } from "./libc.ts";
import { type Mac, parseMac } from "./mac.ts";

/** One complete entry of the table. */
export interface Neighbour {
  ip: string;
  mac: Mac;
  device: string;
}

// ATF_COM: the entry is complete (the MAC is known), from include/uapi/linux/if_arp.h.
const COMPLETE = 0x2;

/** Parses `/proc/net/arp`: complete entries only (no incomplete or all-zero MACs). */
export function parseArpTable(text: string): Neighbour[] {
  const out: Neighbour[] = [];
  for (const line of text.split("\n").slice(1)) {
    const [ip, , flags, hw, , device] = line.trim().split(/\s+/);
    if (!ip || !hw || !device) continue;
    if ((parseInt(flags ?? "0", 16) & COMPLETE) === 0) continue;
    const mac = parseMac(hw);
    if (mac && mac !== "00:00:00:00:00:00") out.push({ ip, mac, device });
  }
  return out;
}

/** The MAC the neighbour table holds for `ip` (on `device` when given), or null. */
export function neighbourMac(ip: string, device?: string): Mac | null {
  const text = readKernelFile("/proc/net/arp", 1 << 20);
  if (text === null) return null;
  const found = parseArpTable(text).find((n) =>
    n.ip === ip && (device === undefined || n.device === device)
  );
  return found?.mac ?? null;
}
