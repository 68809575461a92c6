/**
 * What a TFTP read answers besides the tree's `tftp/` files: GRUB's grub.cfg rendered for the
 * machine that asks, its menu choices, and OS images (the names are in `grub.ts`).
 *
 * A TFTP request names no machine, but it comes from an address, and the machine is the one
 * holding that address (lease, reservation, neighbour table: `identity.ts`). So a machine gets
 * its own config and makes its own choice, and nobody else's: the same rule as the MAC in an
 * iPXE script's URL, with nothing to forge in the name.
 *
 * @module
 */
import { BootRequestError } from "./errors.ts";
import { tftpName } from "./grub.ts";
import type { MachineIdentity } from "./identity.ts";
import type { BootScripts, Script } from "./scripts.ts";

/** What a TFTP read answers: a rendered config, or a path of the tree. */
export type TftpAnswer = { kind: "script"; script: Script } | { kind: "file"; path: string };

/** Options for {@linkcode TftpBoot}. */
export interface TftpBootOptions {
  /** The GRUB flavour of the boot scripts (`GRUB_SCRIPTS`). */
  grub: BootScripts;
  identity: MachineIdentity;
}

/** Answers TFTP names for the machine at the asking address; see the module doc. */
export class TftpBoot {
  #o: TftpBootOptions;

  constructor(options: TftpBootOptions) {
    this.#o = options;
  }

  /**
   * What a read of `filename` from `clientIp` answers; null when the name is refused (it
   * leaves the tree). Throws `BootRequestError` (no such OS or class, no machine at the
   * address for a choice, an installed machine's choice) and template errors.
   */
  async answer(filename: string, clientIp: string): Promise<TftpAnswer | null> {
    const name = tftpName(filename);
    if (name === null || name.kind === "file") return name;
    const { grub, identity } = this.#o;
    const mac = identity.machineAt(clientIp);
    if (name.kind === "grub-entry") {
      // Nobody known at the address: the menu of no machine in particular (its choices
      // then fail with the reason, as iPXE's do).
      const script = mac ? await grub.entry(mac, clientIp) : await grub.menu(null, clientIp);
      return { kind: "script", script };
    }
    if (mac === null) {
      throw new BootRequestError(
        `no machine known at ${clientIp}: no lease, reservation or neighbour entry`,
        404,
      );
    }
    return { kind: "script", script: await grub.choose(name.os, name.cls, mac, clientIp) };
  }
}
