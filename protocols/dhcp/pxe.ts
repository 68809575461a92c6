/**
 * PXE and iPXE option payloads: client architecture (93), network device interface (94), UUID
 * (97) from RFC 4578, PXE vendor sub-options in option 43 (PXE 2.1 §2.4) and iPXE's
 * encapsulated option 175 (ipxe include/ipxe/dhcp.h, include/ipxe/features.h).
 *
 * @module
 */

import { MalformedPacketError } from "../../net/bytes.ts";
import { ipv4ToBytes, ipv4ToString } from "../../net/ipv4.ts";
import { concatBytes, decodeSubOptions, encodeSubOptions } from "./options.ts";

/** Client system architecture types for option 93 (RFC 4578 §2.1, IANA "Processor Architecture Types"). */
export const ClientArch = {
  /** Legacy BIOS PXE (also what iPXE's BIOS build sends). */
  X86Bios: 0,
  NecPc98: 1,
  EfiItanium: 2,
  DecAlpha: 3,
  ArcX86: 4,
  IntelLeanClient: 5,
  EfiIa32: 6,
  /** RFC 4578 calls it "EFI BC"; every x86-64 UEFI firmware sends it (OVMF, iPXE EFI). */
  EfiX64: 7,
  EfiXscale: 8,
  /** RFC 4578 errata 4583 swapped 7 and 9; some firmware still sends 9 for x86-64. */
  EfiX64Alt: 9,
  EfiArm32: 10,
  EfiArm64: 11,
  /** UEFI HTTP boot (RFC 4578 registry additions). */
  EfiX86Http: 15,
  EfiX64Http: 16,
  EfiArm32Http: 18,
  EfiArm64Http: 19,
  PcBiosHttp: 20,
  EfiRiscV32: 25,
  EfiRiscV64: 27,
} as const;

const ARCH_NAMES = new Map<number, string>(
  Object.entries(ClientArch).map(([name, code]) => [code, name]),
);

/** Name of an architecture type ("EfiX64"), or `Arch<n>`. */
export function clientArchName(arch: number): string {
  return ARCH_NAMES.get(arch) ?? `Arch${arch}`;
}

/** Option 93 payload from a list of architecture types. */
export function encodeClientArch(archs: readonly number[]): Uint8Array {
  const out = new Uint8Array(archs.length * 2);
  archs.forEach((a, i) => {
    if (!Number.isInteger(a) || a < 0 || a > 0xffff) {
      throw new RangeError(`Client architecture must be a u16, got ${a}`);
    }
    out[i * 2] = a >>> 8;
    out[i * 2 + 1] = a & 255;
  });
  return out;
}

/** Option 94 (RFC 4578 §2.2): interface type (1 = UNDI) and its version. */
export interface ClientNdi {
  /** 1 = UNDI. */
  type: number;
  /** Interface version, major part (2 for BIOS PXE 2.1, 3 for UEFI). */
  major: number;
  /** Interface version, minor part. */
  minor: number;
}

/** Decodes option 94; throws MalformedPacketError unless it is 3 bytes. */
export function decodeClientNdi(bytes: Uint8Array, base = 0): ClientNdi {
  if (bytes.length !== 3) {
    throw new MalformedPacketError(`Cannot parse DHCP option 94: length ${bytes.length}`, base);
  }
  return { type: bytes[0]!, major: bytes[1]!, minor: bytes[2]! };
}

/** Encodes option 94. */
export function encodeClientNdi(ndi: ClientNdi): Uint8Array {
  return Uint8Array.of(ndi.type, ndi.major, ndi.minor);
}

/** Option 97 payload (RFC 4578 §2.3): type 0 followed by the 16 UUID bytes. */
export function encodeClientUuid(uuid: Uint8Array): Uint8Array {
  if (uuid.length !== 16) throw new RangeError(`A UUID is 16 bytes, got ${uuid.length}`);
  return concatBytes([Uint8Array.of(0), uuid]);
}

/** UUID text as firmware prints it (SMBIOS 2.6+ order: first three fields little-endian). */
export function uuidToString(uuid: Uint8Array): string {
  const h = (i: number) => uuid[i]!.toString(16).padStart(2, "0");
  const le = (idx: number[]) => idx.map(h).join("");
  return [
    le([3, 2, 1, 0]),
    le([5, 4]),
    le([7, 6]),
    le([8, 9]),
    le([10, 11, 12, 13, 14, 15]),
  ].join("-");
}

/** PXE vendor sub-option codes inside option 43 (PXE 2.1 spec, table 2-1). */
export const PxeVendorOption = {
  MtftpIp: 1,
  MtftpClientPort: 2,
  MtftpServerPort: 3,
  MtftpTimeout: 4,
  MtftpDelay: 5,
  /** Bit field: 1 no broadcast discovery, 2 no multicast, 4 only listed servers, 8 use bootfile. */
  DiscoveryControl: 6,
  DiscoveryMulticastAddr: 7,
  BootServers: 8,
  BootMenu: 9,
  MenuPrompt: 10,
  MulticastAddrsAlloc: 11,
  CredentialTypes: 12,
  BootItem: 71,
} as const;

/** PXE_DISCOVERY_CONTROL bits (PXE 2.1 §2.4). */
export const PxeDiscoveryControl = {
  DisableBroadcast: 1,
  DisableMulticast: 2,
  OnlyBootServers: 4,
  /** Skip boot-server discovery and download the bootfile from this reply: what proxyDHCP wants. */
  UseBootfile: 8,
} as const;

/** Typed PXE vendor options (option 43 from a PXE server). */
export interface PxeVendorOptions {
  /** 43.6, bits of {@linkcode PxeDiscoveryControl}. */
  discoveryControl?: number;
  /** 43.7, multicast address for boot-server discovery. */
  discoveryMulticastAddr?: string;
  /** 43.8, boot servers per server type. */
  bootServers?: { type: number; ips: string[] }[];
  /** 43.9, menu entries (server type + text). */
  bootMenu?: { type: number; description: string }[];
  /** 43.10, seconds to wait (255 = forever) and the prompt. */
  menuPrompt?: { timeout: number; prompt: string };
  /** 43.71, the chosen boot server type and layer. */
  bootItem?: { type: number; layer: number };
  /** Sub-options not covered above, raw. */
  other?: Map<number, Uint8Array>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes option 43 for PXE clients, terminated by End as the PXE spec asks. */
export function encodePxeVendorOptions(o: PxeVendorOptions): Uint8Array {
  const subs = new Map<number, Uint8Array>();
  if (o.discoveryControl !== undefined) {
    subs.set(PxeVendorOption.DiscoveryControl, Uint8Array.of(o.discoveryControl));
  }
  if (o.discoveryMulticastAddr !== undefined) {
    subs.set(PxeVendorOption.DiscoveryMulticastAddr, ipv4ToBytes(o.discoveryMulticastAddr));
  }
  if (o.bootServers) {
    subs.set(
      PxeVendorOption.BootServers,
      concatBytes(o.bootServers.flatMap((s) => [
        Uint8Array.of(s.type >>> 8, s.type & 255, s.ips.length),
        ...s.ips.map(ipv4ToBytes),
      ])),
    );
  }
  if (o.bootMenu) {
    subs.set(
      PxeVendorOption.BootMenu,
      concatBytes(o.bootMenu.flatMap((m) => {
        const d = encoder.encode(m.description);
        return [Uint8Array.of(m.type >>> 8, m.type & 255, d.length), d];
      })),
    );
  }
  if (o.menuPrompt) {
    subs.set(
      PxeVendorOption.MenuPrompt,
      concatBytes([Uint8Array.of(o.menuPrompt.timeout), encoder.encode(o.menuPrompt.prompt)]),
    );
  }
  if (o.bootItem) {
    const { type, layer } = o.bootItem;
    subs.set(
      PxeVendorOption.BootItem,
      Uint8Array.of(type >>> 8, type & 255, layer >>> 8, layer & 255),
    );
  }
  for (const [code, v] of o.other ?? []) subs.set(code, v);
  return encodeSubOptions(subs, true);
}

/** Decodes option 43 as PXE vendor options; throws MalformedPacketError on bad framing. */
export function decodePxeVendorOptions(bytes: Uint8Array, base = 0): PxeVendorOptions {
  const subs = decodeSubOptions(bytes, base);
  const out: PxeVendorOptions = {};
  const other = new Map<number, Uint8Array>();
  const bad = (code: number, what: string) =>
    new MalformedPacketError(`Cannot parse PXE sub-option 43.${code}: ${what}`, base);
  for (const [code, v] of subs) {
    switch (code) {
      case PxeVendorOption.DiscoveryControl:
        if (v.length !== 1) throw bad(code, `length ${v.length}`);
        out.discoveryControl = v[0]!;
        break;
      case PxeVendorOption.DiscoveryMulticastAddr:
        if (v.length !== 4) throw bad(code, `length ${v.length}`);
        out.discoveryMulticastAddr = ipv4ToString(v);
        break;
      case PxeVendorOption.BootServers: {
        const list: { type: number; ips: string[] }[] = [];
        for (let i = 0; i < v.length;) {
          if (i + 3 > v.length) throw bad(code, "truncated server entry");
          const type = (v[i]! << 8) | v[i + 1]!, n = v[i + 2]!;
          if (i + 3 + n * 4 > v.length) throw bad(code, `${n} addresses do not fit`);
          const ips: string[] = [];
          for (let k = 0; k < n; k++) {
            ips.push(ipv4ToString(v.subarray(i + 3 + k * 4, i + 7 + k * 4)));
          }
          list.push({ type, ips });
          i += 3 + n * 4;
        }
        out.bootServers = list;
        break;
      }
      case PxeVendorOption.BootMenu: {
        const list: { type: number; description: string }[] = [];
        for (let i = 0; i < v.length;) {
          if (i + 3 > v.length) throw bad(code, "truncated menu entry");
          const type = (v[i]! << 8) | v[i + 1]!, n = v[i + 2]!;
          if (i + 3 + n > v.length) throw bad(code, `description of ${n} bytes does not fit`);
          list.push({ type, description: decoder.decode(v.subarray(i + 3, i + 3 + n)) });
          i += 3 + n;
        }
        out.bootMenu = list;
        break;
      }
      case PxeVendorOption.MenuPrompt:
        if (v.length < 1) throw bad(code, "length 0");
        out.menuPrompt = { timeout: v[0]!, prompt: decoder.decode(v.subarray(1)) };
        break;
      case PxeVendorOption.BootItem:
        if (v.length !== 4) throw bad(code, `length ${v.length}`);
        out.bootItem = { type: (v[0]! << 8) | v[1]!, layer: (v[2]! << 8) | v[3]! };
        break;
      default:
        other.set(code, v);
    }
  }
  if (other.size > 0) out.other = other;
  return out;
}

/** iPXE sub-option codes inside option 175 (ipxe include/ipxe/dhcp.h and features.h). */
export const IpxeOption = {
  Priority: 1,
  KeepSan: 8,
  SkipSanBoot: 9,
  /** 0x10–0x4f are feature flags: present (value = version, usually 1) when built in. */
  FeaturePxeExt: 16,
  FeatureIscsi: 17,
  FeatureAoe: 18,
  FeatureHttp: 19,
  FeatureHttps: 20,
  FeatureTftp: 21,
  FeatureFtp: 22,
  FeatureDns: 23,
  FeatureBzImage: 24,
  FeatureMultiboot: 25,
  FeatureSlam: 26,
  FeatureSrp: 27,
  FeatureNbi: 32,
  FeaturePxe: 33,
  FeatureElf: 34,
  FeatureComboot: 35,
  FeatureEfi: 36,
  FeatureFcoe: 37,
  FeatureVlan: 38,
  FeatureMenu: 39,
  FeatureSdi: 40,
  FeatureNfs: 41,
  Scriptlet: 81,
  SyslogsServer: 85,
  Trust: 90,
  Cert: 91,
  Key: 92,
  CrossCert: 93,
  NoPxeDhcp: 176,
  /** Bus type (1 = PCI) then vendor and device id. */
  BusId: 177,
  BiosDrive: 189,
  Username: 190,
  Password: 191,
  ReverseUsername: 192,
  ReversePassword: 193,
  /** Three bytes: major, minor, patch. */
  Version: 235,
} as const;

const IPXE_NAMES = new Map<number, string>(
  Object.entries(IpxeOption).map(([name, code]) => [code, name]),
);

/** Name of an iPXE sub-option ("FeatureHttp"), or `Sub<n>`. */
export function ipxeOptionName(code: number): string {
  return IPXE_NAMES.get(code) ?? `Sub${code}`;
}

/** The iPXE features a client advertises in option 175, by name without the "Feature" prefix. */
export function ipxeFeatures(encap: ReadonlyMap<number, Uint8Array>): string[] {
  const out: string[] = [];
  for (const code of encap.keys()) {
    if (code >= 0x10 && code <= 0x4f) out.push(ipxeOptionName(code).replace(/^Feature/, ""));
  }
  return out;
}

/** One iPXE sub-option in words (version, PCI bus id), with its bytes in hex. */
export function describeIpxeSubOption(code: number, v: Uint8Array): string {
  const hex = Array.from(v, (x) => x.toString(16).padStart(2, "0")).join(" ") || "(empty)";
  if (code === IpxeOption.Version && v.length === 3) return `${v[0]}.${v[1]}.${v[2]} (${hex})`;
  if (code === IpxeOption.BusId && v.length === 5 && v[0] === 1) {
    const id = (i: number) => ((v[i]! << 8) | v[i + 1]!).toString(16).padStart(4, "0");
    return `PCI ${id(1)}:${id(3)} (${hex})`;
  }
  return hex;
}

/** iPXE version from 175.235 as "major.minor.patch". */
export function ipxeVersion(encap: ReadonlyMap<number, Uint8Array>): string | undefined {
  const v = encap.get(IpxeOption.Version);
  return v?.length === 3 ? `${v[0]}.${v[1]}.${v[2]}` : undefined;
}

/** Parsed PXE vendor class (option 60 "PXEClient:Arch:00007:UNDI:003000"). */
export interface PxeVendorClass {
  /** From "Arch:NNNNN". */
  arch?: number;
  /** From "UNDI:MMMmmm", major part. */
  undiMajor?: number;
  /** From "UNDI:MMMmmm", minor part. */
  undiMinor?: number;
}

/** Parses "PXEClient:Arch:…:UNDI:…"; undefined unless it starts with "PXEClient". */
export function parsePxeVendorClass(vc: string | undefined): PxeVendorClass | undefined {
  if (vc === undefined || !vc.startsWith("PXEClient")) return undefined;
  const out: PxeVendorClass = {};
  const arch = /:Arch:(\d{5})/.exec(vc);
  if (arch) out.arch = Number(arch[1]);
  const undi = /:UNDI:(\d{3})(\d{3})/.exec(vc);
  if (undi) {
    out.undiMajor = Number(undi[1]);
    out.undiMinor = Number(undi[2]);
  }
  return out;
}
