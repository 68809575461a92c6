/**
 * A machine acts only for itself: a request that names a MAC (its boot script, its menu
 * choice, its installer config) is honoured only from the address that MAC holds. Anyone on the
 * boot link can put any MAC in a URL; only the machine itself sends from its own address.
 *
 * The address a MAC holds is its active lease (we are its DHCP server), its `[[machine]] ip`
 * reservation, or, for a client on the link whose address another DHCP server gave (proxy
 * mode), whatever the kernel's neighbour table says answers for that address.
 *
 * @module
 */
import type { Mac } from "../net/mac.ts";
import { BootRequestError } from "./errors.ts";

/** Where the addresses of machines are known from; injected so tests need no kernel table. */
export interface AddressBook {
  /** The address of `mac`'s active lease, or null. */
  leaseOf(mac: Mac): string | null;
  /** The MAC holding an active lease on `ip`, or null. */
  leaseAt(ip: string): Mac | null;
  /** `[[machine]] ip` of `mac`, or null. */
  reservationOf(mac: Mac): string | null;
  /** The MAC whose `[[machine]] ip` is `ip`, or null. */
  reservedAt(ip: string): Mac | null;
  /** The MAC the kernel's neighbour table holds for `ip` (a client on the link), or null. */
  neighbourAt(ip: string): Mac | null;
}

/** Checks requests against an {@linkcode AddressBook}. */
export class MachineIdentity {
  /**
   * `trustAll` skips the check: only for tests whose requests reach the app through a relay
   * (QEMU's user network), where every client has the relay's address.
   */
  constructor(readonly book: AddressBook, readonly options: { trustAll?: boolean } = {}) {}

  /**
   * Whether `mac` may act from `clientIp`: when the address is `mac`'s by {@linkcode machineAt}
   * (an active lease of the address first, so that a reservation of an address another client
   * still holds is no proof: `state/leases.ts` `reserved-in-use`); the reason when it may not.
   */
  check(mac: Mac, clientIp: string | null): { ok: true } | { ok: false; why: string } {
    if (this.options.trustAll) return { ok: true };
    if (clientIp === null) return { ok: false, why: `no client address to check ${mac} against` };
    const holder = this.machineAt(clientIp);
    if (holder === mac) return { ok: true };
    const lease = this.book.leaseOf(mac);
    const reserved = this.book.reservationOf(mac);
    const known = [
      lease ? `its lease is ${lease}` : null,
      reserved ? `its reserved address is ${reserved}` : null,
      holder ? `${clientIp} belongs to ${holder}` : null,
    ].filter((x) => x !== null);
    return {
      ok: false,
      why: `${mac} does not ask from ${clientIp}` +
        (known.length ? ` (${known.join("; ")})` : " (no lease, reservation or neighbour entry)") +
        ": a machine acts only for itself",
    };
  }

  /** Throws a 403 `BootRequestError` unless `mac` may act from `clientIp`. */
  require(mac: Mac, clientIp: string | null): void {
    const r = this.check(mac, clientIp);
    if (!r.ok) throw new BootRequestError(r.why, 403);
  }

  /** The machine asking from `clientIp`: its lease, reservation or neighbour entry; else null. */
  machineAt(clientIp: string | null): Mac | null {
    if (clientIp === null) return null;
    return this.book.leaseAt(clientIp) ?? this.book.reservedAt(clientIp) ??
      this.book.neighbourAt(clientIp);
  }
}
