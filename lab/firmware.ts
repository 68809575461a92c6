/**
 * The firmware a lab VM can boot with, in one table: how QEMU is started for each, which
 * network cards it can boot from, and what the boot server must offer it. A new firmware
 * (UEFI HTTP boot, ARM64 …) is one more row here; `qemuArgs`, `--firmware` and `--all` read
 * the table.
 *
 * @module
 */

/** The emulated network card. */
export type Nic = "virtio-net-pci" | "e1000";

/** One way a lab VM boots. */
export interface FirmwareSpec {
  /** One line for `astralboot lab --help`. */
  summary: string;
  /** QEMU's `-machine`; default QEMU's own (i440fx). */
  machine?: string;
  /** UEFI: the read-only code and the vars template (copied per run, OVMF writes it). */
  pflash?: { code: string; vars: string };
  /** More QEMU arguments this firmware needs. */
  qemuExtra?: readonly string[];
  /** Cards it boots from, the first being the default. */
  nics: readonly Nic[];
  /** Whether the NIC keeps its iPXE option ROM (else `romfile=`: the firmware's own PXE). */
  nicRom: (nic: Nic) => boolean;
  /** The boot server hands x86-64 UEFI clients the Secure Boot chain (`[boot] secure_boot`). */
  secureBoot?: boolean;
}

/** Every firmware of the lab; `--firmware` takes these names. */
export const FIRMWARE = {
  bios: {
    summary: "SeaBIOS with QEMU's iPXE NIC ROM",
    nics: ["virtio-net-pci", "e1000"],
    // SeaBIOS boots the NIC's iPXE ROM.
    nicRom: () => true,
  },
  uefi: {
    summary: "OVMF: its own PXE client (virtio), the NIC's iPXE EFI ROM (e1000)",
    pflash: { code: "/usr/share/OVMF/OVMF_CODE.fd", vars: "/usr/share/OVMF/OVMF_VARS.fd" },
    nics: ["virtio-net-pci", "e1000"],
    // OVMF drives virtio-net itself, so its ROM goes and the real PXE → TFTP chain runs; it
    // has no e1000 driver, so the ROM's EFI SNP driver (iPXE as a plain network driver) stays.
    nicRom: (nic) => nic === "e1000",
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
    secureBoot: true,
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
