/**
 * Datagrams queued during one turn of the event loop and sent together at its end (a
 * microtask): each run of datagrams to one destination leaves in one `sendmmsg` instead of one
 * `sendto` apiece. A DHCP server answers a burst of requests read at once, and the ACKs of one
 * lease sync, in one call per destination (a relay, or the broadcast address) each.
 *
 * Measured on this project's 2-core test VMs over loopback: ~6.4 µs a datagram sent alone,
 * ~2.5 µs each in a `sendmmsg` of 16.
 *
 * A burst is paced: at most {@linkcode PACE_BURST} datagrams (or a quarter of the queue, when
 * that is more) leave for one destination in one turn; the rest, and whatever else that
 * destination gets meanwhile, wait {@linkcode PACE_INTERVAL_MS} and go the same way. The ACKs of
 * one lease sync all go to the one relay that forwarded their requests, and a receive buffer of
 * Linux's default size (212 992 bytes) holds ~100 of them: with perfdhcp as the relay at 9 000 to
 * 11 000 exchanges a second, unpaced bursts lost 0.3–3 % of the replies in its buffer, paced ones
 * 0–0.4 % (one `tests/bench/dhcp.ts` run, each trial's drops counted). The growing part keeps a
 * backlog from outgrowing what the timer lets out: a fixed 32 a millisecond fell behind an
 * overload and never caught up (measured).
 *
 * @module
 */
import { SendError } from "./errors.ts";
import { MAX_BATCH } from "./send_batch.ts";
import type { InterfaceUdpSocket } from "./udp_socket.ts";

/** What the queue does with a datagram it could not send (never thrown: the sender moved on). */
export type SendFailure = (
  failure: { address: string; port: number; count: number; error: Error },
) => void;

interface Queued {
  data: Uint8Array;
  address: string;
  port: number;
}

/** Datagrams sent to one destination in one turn, unless a quarter of the queue is more. */
export const PACE_BURST = 32;
/** How long the datagrams beyond a destination's burst wait. */
export const PACE_INTERVAL_MS = 1;

/** Bytes of the staging buffer to begin with: 16 replies of a full Ethernet frame. */
const STAGING_SIZE = 16 * 1500;

/** A send queue of one socket, flushed at the end of the current turn. */
export class SendQueue {
  #queued: Queued[] = [];
  #scheduled = false;
  /** Datagrams beyond their destination's burst, in order, waiting for {@linkcode #timer}. */
  #held: Queued[] = [];
  /** Destinations (`address:port`) whose datagrams wait until the timer fires. */
  #paced = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Where a run is copied before it is sent: its address is asked of the FFI once per buffer
   * (`send_batch.ts`), ~0.7 µs, where each datagram's own buffer would cost that apiece.
   */
  #staging = new Uint8Array(new ArrayBuffer(STAGING_SIZE));

  constructor(readonly socket: InterfaceUdpSocket, readonly onFailure: SendFailure) {}

  /** Queues `data` for `address:port`; it leaves before the event loop turns again. */
  push(data: Uint8Array, address: string, port: number): void {
    this.#queued.push({ data, address, port });
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.flush());
  }

  /**
   * Sends what is queued, in order, each run to one destination in one `sendmmsg`; what is beyond
   * a destination's burst waits for the timer (the module's pacing). A refused destination (an
   * unreachable unicast) or a full send queue is reported once for the rest of its run, and the
   * other runs go on.
   */
  flush(): void {
    this.#scheduled = false;
    let queued = this.#queued;
    if (queued.length === 0) return;
    this.#queued = [];
    if (this.socket.closed) return;
    if (queued.length > PACE_BURST || this.#paced.size > 0) queued = this.#pace(queued);
    for (let start = 0; start < queued.length;) {
      const end = runEnd(queued, start);
      try {
        this.#sendRun(queued, start, end);
      } catch {
        // Nothing known throws here (the sends report their errors, and reports are guarded);
        // an error out of a microtask would end the process, so the other runs go on.
      }
      start = end;
    }
  }

  /**
   * The datagrams of `queued` that may leave now: at most a burst to each destination, none to
   * one that is waiting; the others are held for the timer. The burst grows with the queue (a
   * quarter of it), so that a backlog drains however slowly the timer comes back.
   */
  #pace(queued: Queued[]): Queued[] {
    const burst = Math.max(PACE_BURST, Math.ceil(queued.length / 4));
    const counts = new Map<string, number>();
    const now: Queued[] = [];
    // A run to one destination is counted at once: one key per run, not per datagram.
    for (let start = 0; start < queued.length;) {
      const end = runEnd(queued, start);
      const key = `${queued[start]!.address}:${queued[start]!.port}`;
      const sent = this.#paced.has(key) ? burst : counts.get(key) ?? 0;
      const take = Math.min(end - start, burst - sent);
      counts.set(key, sent + take);
      for (let i = start; i < start + take; i++) now.push(queued[i]!);
      if (start + take < end) {
        this.#paced.add(key);
        for (let i = start + take; i < end; i++) this.#held.push(queued[i]!);
      }
      start = end;
    }
    if (this.#held.length > 0 && this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#release(), PACE_INTERVAL_MS);
    }
    return now;
  }

  /** The timer fired: the held datagrams go first, paced again. */
  #release(): void {
    this.#timer = undefined;
    this.#paced.clear();
    this.#queued = this.#held.concat(this.#queued);
    this.#held = [];
    this.flush();
  }

  /** Copies the datagrams `start` to `end` into the staging buffer: views of it, in order. */
  #stage(queued: Queued[], start: number, end: number): Uint8Array[] {
    let size = 0;
    for (let i = start; i < end; i++) size += queued[i]!.data.length;
    if (size > this.#staging.length) {
      this.#staging = new Uint8Array(new ArrayBuffer(Math.max(size, this.#staging.length * 2)));
    }
    const views: Uint8Array[] = [];
    let at = 0;
    for (let i = start; i < end; i++) {
      const data = queued[i]!.data;
      this.#staging.set(data, at);
      views.push(this.#staging.subarray(at, at + data.length));
      at += data.length;
    }
    return views;
  }

  /**
   * Sends the run `start` to `end` of `queued` (one destination), staged one `sendmmsg`'s worth
   * ({@linkcode MAX_BATCH}) at a time, so the staging buffer never outgrows what one call takes.
   * A datagram the kernel refuses for itself (too long) is reported and the rest go on; a
   * refusal of the destination (unreachable, not permitted) or a full send queue is reported
   * once for the rest of the run, which is not tried datagram by datagram: a run can be
   * thousands long.
   */
  #sendRun(queued: Queued[], start: number, end: number): void {
    const { address, port } = queued[start]!;
    for (let at = start; at < end;) {
      const packets = this.#stage(queued, at, Math.min(end, at + MAX_BATCH));
      for (let i = 0; i < packets.length;) {
        let n: number;
        try {
          n = this.socket.trySendMany(i === 0 ? packets : packets.slice(i), address, port);
        } catch (e) {
          // sendmmsg stops at a refused datagram and reports it only when it is the first.
          const one = e instanceof SendError && e.datagramOnly;
          this.#report(address, port, one ? 1 : end - at - i, e as Error);
          if (!one) return;
          i++;
          continue;
        }
        if (n === 0) {
          const full = new Error(`sendmmsg ${address}:${port}: send queue full`);
          this.#report(address, port, end - at - i, full);
          return;
        }
        i += n;
      }
      at += packets.length;
    }
  }

  /** Tells `onFailure`; a report that throws changes nothing for the datagrams still to go. */
  #report(address: string, port: number, count: number, error: Error): void {
    try {
      this.onFailure({ address, port, count, error });
    } catch {
      // Nothing to do: the failure was the report's, and the send goes on.
    }
  }
}

/** The end of the run of datagrams to one destination that begins at `start`. */
function runEnd(queued: readonly Queued[], start: number): number {
  const { address, port } = queued[start]!;
  let end = start + 1;
  while (end < queued.length && queued[end]!.address === address && queued[end]!.port === port) {
    end++;
  }
  return end;
}
