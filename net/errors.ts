/**
 * Errors of the network layer that callers act on.
 *
 * @module
 */
import { LINUX } from "./libc.ts";

const { EMSGSIZE } = LINUX;

/** A listening socket could not be opened: the address or port is taken, or not ours. */
export class BindError extends Error {
  constructor(
    /** What it tried to bind: `udp 0.0.0.0:67 on eth1`, `tcp 10.0.0.1:80`. */
    readonly what: string,
    /** The reason as the system said it. */
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`cannot listen on ${what}: ${reason}`, options);
    this.name = "BindError";
  }
}

/**
 * A send the kernel refused (not a full queue: that is a count of 0, not an error). `errno`
 * tells whether the datagram or its destination was refused: EMSGSIZE is about the one
 * datagram; the others (ENETUNREACH, EHOSTUNREACH, EACCES, EPERM, EINVAL …) about where it goes.
 */
export class SendError extends Error {
  constructor(message: string, readonly errno: number) {
    super(message);
    this.name = "SendError";
  }

  /** Whether only this datagram was refused (too long), not its destination. */
  get datagramOnly(): boolean {
    return this.errno === EMSGSIZE;
  }
}
