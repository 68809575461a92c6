/**
 * The firmware a lab VM can boot with, in one table: how QEMU is started for each, which
 * network cards it can boot from, and what the boot server must offer it. A new firmware is
 * one more row here; `qemuArgs`, `--firmware` and `--all` read the table.
 *
 * @module
 */
import type { LabDhcp } from "./servers.ts";

/** The emulated network card. */
export type Nic = "virtio-net-pci" | "e1000";

/** One way a lab VM boots. */
export interface FirmwareSpec {
  /** One line for `astralboot lab --help`. */
  summary: string;
  /** The QEMU program; default `qemu-system-x86_64`. */
  qemu?: string;
  /** QEMU's `-machine`; default QEMU's own (i440fx). */
  machine?: string;
  /** QEMU's `-cpu`; default QEMU's own. */
  cpu?: string;
  /** VM memory in MiB; default 512. */
  memoryMb?: number;
  /** UEFI: the read-only code and the vars template (copied per run, the firmware writes it). */
  pflash?: { code: string; vars: string };
  /** More QEMU arguments this firmware needs. */
  qemuExtra?: readonly string[];
  /** Cards it boots from, the first being the default. */
  nics: readonly Nic[];
  /** Whether the NIC keeps its iPXE option ROM (else `romfile=`: the firmware's own PXE). */
  nicRom: (nic: Nic) => boolean;
  /** Who may hand out addresses beside the boot server (`--dhcp`), the first the default. */
  dhcp: readonly LabDhcp[];
  /** The boot server hands x86-64 UEFI clients the Secure Boot chain (`[boot] secure_boot`). */
  secureBoot?: boolean;
  /**
   * The chain reaches GRUB, which ignores ProxyDHCP: beside a peer, the peer must name the
   * boot server as next-server (docs/FIRMWARE.md).
   */
  grub?: boolean;
  /** The fixture OS the server boots for it (the kernel's architecture); default `tiny`. */
  os?: string;
  /** Debian packages the host needs for it: QEMU, the firmware, the boot files. */
  packages: readonly string[];
}

/** Every firmware of the lab; `--firmware` takes these names. */
export const FIRMWARE = {
  bios: {
    summary: "SeaBIOS with QEMU's iPXE NIC ROM",
    nics: ["virtio-net-pci", "e1000"],
    // SeaBIOS boots the NIC's iPXE ROM.
    nicRom: () => true,
    dhcp: ["server", "proxy"],
    packages: ["qemu-system-x86", "ipxe"],
  },
  uefi: {
    summary: "OVMF: its own PXE client (virtio), the NIC's iPXE EFI ROM (e1000)",
    pflash: { code: "/usr/share/OVMF/OVMF_CODE.fd", vars: "/usr/share/OVMF/OVMF_VARS.fd" },
    nics: ["virtio-net-pci", "e1000"],
    // OVMF drives virtio-net itself, so its ROM goes and the real PXE → TFTP chain runs; it
    // has no e1000 driver, so the ROM's EFI SNP driver (iPXE as a plain network driver) stays.
    nicRom: (nic) => nic === "e1000",
    dhcp: ["server", "proxy"],
    packages: ["qemu-system-x86", "ovmf", "ipxe"],
  },
  "uefi-secure": {
    summary: "OVMF with Microsoft's keys, Secure Boot on: shim → GRUB → signed kernel",
    // The 4M builds with Secure Boot need SMM, and SMM needs q35 and a secure flash.
    machine: "q35,smm=on",
    pflash: {
      code: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
      vars: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
    },
    qemuExtra: ["-global", "driver=cfi.pflash01,property=secure,value=on"],
    // iPXE's EFI ROM is not signed by Microsoft: Secure Boot refuses it, so OVMF's own PXE.
    nics: ["virtio-net-pci"],
    nicRom: () => false,
    dhcp: ["server", "proxy"],
    secureBoot: true,
    grub: true,
    packages: ["qemu-system-x86", "ovmf"],
  },
  "uefi-http": {
    summary: "OVMF's UEFI HTTP boot (its PXE turned off): iPXE over HTTP, no TFTP at all",
    pflash: { code: "/usr/share/OVMF/OVMF_CODE.fd", vars: "/usr/share/OVMF/OVMF_VARS.fd" },
    // OVMF tries PXEv4, PXEv6, then HTTPv4 (docs/FIRMWARE.md); these fw_cfg knobs (read by
    // its PxeBcDxe since edk2 2020) leave HTTP boot the only network boot it offers.
    qemuExtra: [
      "-fw_cfg",
      "name=opt/org.tianocore/IPv4PXESupport,string=n",
      "-fw_cfg",
      "name=opt/org.tianocore/IPv6PXESupport,string=n",
    ],
    // The ROM's iPXE would boot instead of OVMF's HTTP client.
    nics: ["virtio-net-pci"],
    nicRom: () => false,
    dhcp: ["server", "proxy"],
    packages: ["qemu-system-x86", "ovmf", "ipxe"],
  },
  arm64: {
    summary: "AAVMF on an emulated ARM64 (virt): its own PXE → shim → GRUB → arm64 kernel",
    qemu: "qemu-system-aarch64",
    machine: "virt",
    // pauth-impdef: the same CPU, with a pointer-authentication hash TCG computes quickly
    // (QEMU's default QARMA costs seconds of boot under emulation).
    cpu: "max,pauth-impdef=on",
    memoryMb: 1024,
    pflash: { code: "/usr/share/AAVMF/AAVMF_CODE.fd", vars: "/usr/share/AAVMF/AAVMF_VARS.fd" },
    // AAVMF drives virtio-net itself; QEMU's iPXE ROMs are x86 code.
    nics: ["virtio-net-pci"],
    nicRom: () => false,
    dhcp: ["server", "proxy"],
    grub: true,
    os: "tiny-arm64",
    packages: ["qemu-system-arm", "qemu-efi-aarch64", "debian-installer-12-netboot-arm64"],
  },
} as const satisfies Record<string, FirmwareSpec>;

/** A firmware name of {@linkcode FIRMWARE}. */
export type Firmware = keyof typeof FIRMWARE;

/** The names of {@linkcode FIRMWARE}, in table order. */
export const FIRMWARE_NAMES = Object.keys(FIRMWARE) as Firmware[];

/** The table row of a firmware. */
export function firmwareSpec(name: Firmware): FirmwareSpec {
  return FIRMWARE[name];
}

/** Whether `name` is a firmware of the table. */
export function isFirmware(name: string): name is Firmware {
  return Object.hasOwn(FIRMWARE, name);
}
