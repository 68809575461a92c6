/**
 * The packets a transfer's peer sent, and the one retransmission deadline of the transfer.
 *
 * @module
 */
import type { TftpPacket } from "./packet.ts";

/** Queued packets per transfer beyond which a flooding peer's packets are dropped. */
const INBOX_LIMIT = 256;

/**
 * Packets from the peer plus one retransmission deadline. Moving the deadline is a field
 * write: a per-packet setTimeout/clearTimeout pair doubled the ACK round trip in a ping-pong
 * measurement here, so one timer stays armed and re-arms itself when the deadline moved.
 */
export class Inbox {
  #queue: TftpPacket[] = [];
  #waiter: ((p: TftpPacket | null) => void) | null = null;
  #deadline = Infinity;
  #expired = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  /** The socket reader, parked until the transfer waits (see {@linkcode wanted}). */
  #reader: (() => void) | null = null;
  #closed = false;

  /** False when the queue is full and the packet was dropped. */
  push(p: TftpPacket): boolean {
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w(p);
      return true;
    }
    if (this.#queue.length >= INBOX_LIMIT) return false;
    this.#queue.push(p);
    return true;
  }

  /** Sets the deadline `ms` from now; {@linkcode take} yields null once it passes. */
  arm(ms: number): void {
    // Closed (the transfer was aborted during a send): no new wait.
    if (this.#closed) return;
    const now = performance.now();
    this.#deadline = now + ms;
    this.#expired = false;
    if (this.#timer !== undefined && this.#timerAt <= this.#deadline) return;
    clearTimeout(this.#timer);
    this.#schedule(ms, now);
  }

  #schedule(ms: number, now: number): void {
    this.#timerAt = now + ms;
    this.#timer = setTimeout(this.#fire, ms);
  }

  #fire = () => {
    this.#timer = undefined;
    const now = performance.now();
    const left = this.#deadline - now;
    if (left === Infinity) return;
    if (left > 1) return this.#schedule(left, now);
    this.#deadline = Infinity;
    this.#expired = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.(null);
  };

  /** The next packet, or null once the deadline passed or the inbox is {@linkcode close}d. */
  take(): Promise<TftpPacket | null> {
    const p = this.#queue.shift();
    if (p) return Promise.resolve(p);
    if (this.#expired || this.#closed) {
      this.#expired = false;
      return Promise.resolve(null);
    }
    const waiting = new Promise<TftpPacket | null>((resolve) => this.#waiter = resolve);
    this.#releaseReader();
    return waiting;
  }

  /**
   * Resolves once {@linkcode take} waits with nothing queued, or on close: the socket is read
   * then, right after the transfer sent what it had to send, so that a reader that spins for
   * the answer never holds up the sends that answer is for.
   */
  wanted(): Promise<void> {
    if (this.#waiter || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#reader = resolve);
  }

  #releaseReader(): void {
    const r = this.#reader;
    this.#reader = null;
    r?.();
  }

  /** Stops the timer, ends a pending wait and releases the reader. */
  close(): void {
    this.#closed = true;
    this.#releaseReader();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#deadline = Infinity;
    this.#expired = true;
    const w = this.#waiter;
    this.#waiter = null;
    w?.(null);
  }
}
