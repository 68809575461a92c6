/**
 * A readable dump of a DHCP packet, one option per line, named and decoded (PXE, iPXE and relay
 * sub-options too): the golden files in `testdata/` are made of it, and it is what a person
 * compares with tshark's decode.
 *
 * @module
 */
import { DhcpOption, type DhcpOptions, messageTypeName, optionName } from "./options.ts";
import { type DhcpPacket, isBroadcast } from "./packet.ts";
import {
  clientArchName,
  decodeClientNdi,
  decodePxeVendorOptions,
  describeIpxeSubOption,
  ipxeOptionName,
  uuidToString,
} from "./pxe.ts";

/** Readable multi-line dump, one option per line; the golden test files are made of it. */
export function describeDhcp(p: DhcpPacket): string {
  const lines = [
    `op: ${p.op === 1 ? "BOOTREQUEST" : "BOOTREPLY"} (${p.op})`,
    `htype: ${p.htype}  hlen: ${p.hlen}  hops: ${p.hops}`,
    `xid: 0x${p.xid.toString(16).padStart(8, "0")}`,
    `secs: ${p.secs}  flags: 0x${p.flags.toString(16).padStart(4, "0")}${
      isBroadcast(p) ? " (broadcast)" : ""
    }`,
    `ciaddr: ${p.ciaddr}  yiaddr: ${p.yiaddr}`,
    `siaddr: ${p.siaddr}  giaddr: ${p.giaddr}`,
    `chaddr: ${Array.from(p.chaddr, (x) => x.toString(16).padStart(2, "0")).join(":")}`,
    `sname: ${JSON.stringify(p.sname)}`,
    `file: ${JSON.stringify(p.file)}`,
    `options:`,
  ];
  for (const [code, value] of p.options.entries()) {
    lines.push(`  ${code} ${optionName(code)}: ${describeOption(p.options, code, value)}`);
    if (code === DhcpOption.IpxeEncap) {
      for (const [sub, v] of p.options.ipxeEncap()) {
        lines.push(`    175.${sub} ${ipxeOptionName(sub)}: ${describeIpxeSubOption(sub, v)}`);
      }
    }
  }
  return lines.join("\n") + "\n";
}

/** One option's value in words, falling back to hex. */
export function describeOption(options: DhcpOptions, code: number, value: Uint8Array): string {
  const hex = hexOf(value);
  switch (code) {
    case DhcpOption.MessageType: {
      const t = options.messageType();
      return t === undefined ? hex : `${messageTypeName(t)} (${t})`;
    }
    case DhcpOption.SubnetMask:
    case DhcpOption.BroadcastAddr:
    case DhcpOption.RequestedIP:
    case DhcpOption.ServerId:
    case DhcpOption.Router:
    case DhcpOption.DNS: {
      const ips = options.ips(code);
      return ips.length ? ips.join(", ") : hex;
    }
    case DhcpOption.LeaseTime:
    case DhcpOption.RenewalTime:
    case DhcpOption.RebindingTime:
      return String(options.u32(code) ?? hex);
    case DhcpOption.MaxMessageSize:
      return String(options.u16(code) ?? hex);
    case DhcpOption.Hostname:
    case DhcpOption.DomainName:
    case DhcpOption.Message:
    case DhcpOption.VendorClassId:
    case DhcpOption.TftpServerName:
    case DhcpOption.BootfileName:
      return printable(value) ? JSON.stringify(options.string(code)) : hex;
    case DhcpOption.ParamRequestList:
      return options.paramRequestList().join(" ");
    case DhcpOption.UserClass:
      return options.userClasses().map((c) => JSON.stringify(c)).join(", ") || hex;
    case DhcpOption.ClientArch: {
      const a = options.clientArch();
      return a.length ? a.map((x) => `${x} (${clientArchName(x)})`).join(", ") : hex;
    }
    case DhcpOption.ClientNdi: {
      if (value.length !== 3) return hex;
      const n = decodeClientNdi(value);
      return `${n.type === 1 ? "UNDI" : `type ${n.type}`} ${n.major}.${n.minor}`;
    }
    case DhcpOption.ClientUuid: {
      const u = options.uuid();
      return u ? `type 0, ${uuidToString(u)}` : hex;
    }
    case DhcpOption.VendorSpecific: {
      try {
        const pxe = decodePxeVendorOptions(value);
        return `${hex} (PXE ${JSON.stringify(pxe, jsonMaps)})`;
      } catch {
        return hex;
      }
    }
    case DhcpOption.IpxeEncap:
      return `${options.ipxeEncap().size} sub-options`;
    default:
      return hex;
  }
}

function jsonMaps(_key: string, v: unknown): unknown {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, b]) => [k, hexOf(b)]));
  return v;
}

function printable(b: Uint8Array): boolean {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  for (let i = 0; i < end; i++) if (b[i]! < 0x20 || b[i]! > 0x7e) return false;
  return true;
}

function hexOf(b: Uint8Array): string {
  return b.length ? Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ") : "(empty)";
}
