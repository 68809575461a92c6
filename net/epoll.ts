/**
 * Readiness of many descriptors from one `epoll_wait(2)` on one worker thread.
 *
 * A `nonblocking` FFI call runs on Deno's pool of blocking threads, which has 32 of them: with a
 * poll(2) per socket, 32 idle sockets (a TFTP server runs up to 256 transfers, each on its own
 * socket) would occupy the whole pool, and every other socket, and every file read, would wait
 * behind them. Here all sockets share one epoll set and one waiting thread.
 *
 * Each wake-up from that thread costs a hop between threads (tens of µs under Deno, against a
 * few µs for the datagram itself), so a descriptor is armed only while its reader sleeps
 * (`EPOLLONESHOT`, armed again before each sleep): data read while the reader is awake, by a
 * read that found it at once or by a short spin ({@linkcode Readiness.until}), wakes no one.
 *
 * Linux, LP64 only. Needs `--allow-ffi`.
 *
 * @module
 */
import { errno, libc, strerror } from "./libc.ts";

const EPOLLIN = 0x001;
/** One event per arming: a reader that is awake takes what arrives without a wake-up. */
const EPOLLONESHOT = 0x40000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLL_CLOEXEC = 0o2000000;
/** How long one epoll_wait lasts, so that the loop ends soon after the last descriptor left. */
const WAIT_MS = 200;
const MAX_EVENTS = 64;
/** `struct epoll_event` is packed on x86-64 (12 bytes), naturally aligned elsewhere (16). */
const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;
/** Wake-ups in a row that find nothing to read before a descriptor counts as broken. */
const FRUITLESS_LIMIT = 50;
/**
 * Reads in a row that found data at once (a backlog), after which the reader waits once anyway
 * (data being there, epoll reports it at once). A read that finds data returns through a
 * microtask: while a socket has a backlog, its loop would never let the event loop turn, and
 * timers (the lease commit an ACK waits for, the log's flush) and other sockets (HTTP, TFTP)
 * would wait until it is empty. A read that finds nothing, or only a spin's catch (a TFTP
 * transfer's next ACK), starts the count again: no backlog there, and no wait forced on it.
 */
export const YIELD_EVERY = 64;

function epollEvent(events: number, id: number): Uint8Array<ArrayBuffer> {
  const ev = new Uint8Array(EVENT_SIZE);
  const v = new DataView(ev.buffer);
  v.setUint32(0, events >>> 0, true);
  v.setBigUint64(DATA_OFFSET, BigInt(id), true);
  return ev;
}

/** The one epoll set of this process and the loop that waits on it. */
class EpollSet {
  #fd = -1;
  #nextId = 1;
  readonly #watches = new Map<number, Readiness>();
  #running = false;
  readonly #events = new Uint8Array(EVENT_SIZE * MAX_EVENTS);

  add(fd: number, name: string): Readiness {
    const c = libc();
    if (this.#fd < 0) {
      this.#fd = c.epoll_create1(EPOLL_CLOEXEC);
      if (this.#fd < 0) throw new Error(`epoll_create1: ${strerror(errno())}`);
    }
    // Ids are never reused, so an event still in flight for a removed descriptor (whose number
    // the kernel may hand out again) finds no one.
    const id = this.#nextId++;
    const armed = epollEvent(EPOLLIN | EPOLLONESHOT, id);
    if (c.epoll_ctl(this.#fd, EPOLL_CTL_ADD, fd, armed) < 0) {
      throw new Error(`epoll_ctl ADD for ${name}: ${strerror(errno())}`);
    }
    const epfd = this.#fd;
    const r = new Readiness(name, {
      arm: () => c.epoll_ctl(epfd, EPOLL_CTL_MOD, fd, armed) === 0,
      unregister: () => {
        this.#watches.delete(id);
        c.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, armed);
      },
    });
    this.#watches.set(id, r);
    if (!this.#running) this.#loop();
    return r;
  }

  async #loop(): Promise<void> {
    this.#running = true;
    try {
      while (this.#watches.size > 0) {
        const n = await libc().epoll_wait(this.#fd, this.#events, MAX_EVENTS, WAIT_MS);
        const v = new DataView(this.#events.buffer);
        for (let i = 0; i < n; i++) {
          const off = i * EVENT_SIZE;
          const id = Number(v.getBigUint64(off + DATA_OFFSET, true));
          this.#watches.get(id)?.fired();
        }
      }
    } finally {
      this.#running = false;
    }
  }
}

let shared: EpollSet | undefined;

/**
 * Watches `fd` (a nonblocking socket) for incoming data in the shared epoll set; `name` is for
 * errors. Call {@linkcode Readiness.remove} before closing the descriptor.
 */
export function watchReadable(fd: number, name: string): Readiness {
  shared ??= new EpollSet();
  return shared.add(fd, name);
}

/** What a {@linkcode Readiness} asks of the epoll set for its descriptor. */
interface Registration {
  /** Re-arms the one-shot event; false when epoll_ctl failed. */
  arm(): boolean;
  /** Leaves the set. */
  unregister(): void;
}

/** One descriptor in the shared epoll set. */
export class Readiness {
  #waiter: (() => void) | null = null;
  #removed = false;
  /** Whether the kernel will report the next arrival (it disarms itself when it reports one). */
  #armed = true;
  /** Reads in a row that found data at once (a backlog being read). */
  #streak = 0;

  constructor(readonly name: string, readonly registration: Registration) {}

  /** Called by the loop: the descriptor reported (data or an error) and is now disarmed. */
  fired(): void {
    this.#armed = false;
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = null;
    w?.();
  }

  /**
   * Calls `read` until it yields; null once `closed()` or removed. Between fruitless tries it
   * spins on `read` for up to `spinUs` microseconds (blocking the event loop: only for a peer
   * expected to answer sooner than a wake-up would take), then arms the descriptor and sleeps
   * until it reports. `read` must take one datagram per call and yield null when nothing is
   * queued, or take several and tell {@linkcode took} how many more than one. One caller at a
   * time per descriptor.
   * Throws when the descriptor keeps waking up yet `read` yields nothing: a broken socket.
   */
  async until<T>(read: () => T | null, closed: () => boolean, spinUs = 0): Promise<T | null> {
    let fruitless = 0;
    while (!closed() && !this.#removed) {
      // After YIELD_EVERY reads in a row that found data at once, one wait: epoll reports the
      // queued data at once.
      if (this.#streak < YIELD_EVERY) {
        let got = read();
        if (got) {
          this.#streak++;
          return got;
        }
        // Nothing queued: no backlog, nothing to take turns with (a spin's catch included).
        this.#streak = 0;
        if (spinUs > 0) {
          const end = performance.now() + spinUs / 1000;
          while (!got && performance.now() < end) got = read();
          spinUs = 0;
          if (got) return got;
        }
      } else {
        this.#streak = 0;
      }
      if (!this.#armed) {
        // A datagram that came after the fruitless read is reported at once: MOD checks.
        if (!this.registration.arm()) throw new Error(`${this.name}: cannot wait for data`);
        this.#armed = true;
      }
      // JavaScript runs on one thread: no event can be handled between the fruitless read and
      // this assignment, so an event after the read always finds the waiter.
      await new Promise<void>((resolve) => this.#waiter = resolve);
      if (++fruitless > FRUITLESS_LIMIT) throw new Error(`${this.name} keeps failing`);
    }
    return null;
  }

  /**
   * Counts `more` datagrams taken by the last read beyond the one `until` counts: the wait
   * forced after {@linkcode YIELD_EVERY} of them comes as soon, however many a read takes.
   */
  took(more: number): void {
    if (more > 0) this.#streak += more;
  }

  /** Leaves the epoll set and ends a pending wait; the descriptor may be closed afterwards. */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    this.registration.unregister();
    this.#wake();
  }
}
