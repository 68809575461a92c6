/**
 * Boot events as they happen: a bounded ring buffer (the last `capacity` events, each with a
 * sequence number so that a client can ask for what it missed), the current stage of every
 * machine, and subscribers for live streaming (Server-Sent Events in `http/watch_routes.ts`).
 *
 * Everything is in memory and starts empty with the process: the lasting record of a machine
 * is its history (`state/history.ts`, written by `history.ts` from these events); this is
 * what a person watches.
 *
 * @module
 */
import type { Mac } from "../net/mac.ts";

/** Where a machine is in its boot, in roughly the order a PXE boot passes them. */
export type BootStage =
  | "dhcp-offer"
  | "dhcp-ack"
  | "dhcp-nak"
  | "proxy-offer"
  | "proxy-ack"
  | "dhcp-release"
  | "dhcp-decline"
  | "tftp-done"
  | "tftp-failed"
  | "loader"
  | "menu"
  | "script"
  | "chosen"
  | "kernel"
  | "initrd"
  | "image"
  | "config"
  | "progress"
  | "installed"
  | "reinstall"
  | "local-boot"
  | "http-error";

/** What a producer reports; the log adds `seq` and `time`. */
export interface BootEventInput {
  /** The machine, or null when only the address is known. */
  mac: Mac | null;
  ip: string | null;
  stage: BootStage;
  /** One human line: the file, the bootfile, the OS … */
  detail: string;
  /** Milliseconds since the epoch; default now. */
  time?: number;
}

/** One event as stored and served. */
export interface WatchEvent {
  /** 1, 2, 3 … in the order of arrival; never reused while the process runs. */
  seq: number;
  time: number;
  mac: Mac | null;
  ip: string | null;
  stage: BootStage;
  detail: string;
}

/** The newest event of one machine (or of one address whose MAC is unknown). */
export type MachineStage = WatchEvent;

/** A subscriber: called with each new event, and once with null when the log closes. */
export type EventListener = (event: WatchEvent | null) => void;

/** Options for {@linkcode EventLog}. */
export interface EventLogOptions {
  /** Events kept; default 1000. */
  capacity?: number;
  /** Machines whose stage is kept at least (least recently active go first); default 4096. */
  machineLimit?: number;
  /** Clock in ms; tests pass their own. */
  now?: () => number;
}

/** Result of {@linkcode EventLog.since}. */
export interface EventPage {
  events: WatchEvent[];
  /** Sequence number of the last event returned, else of the newest one: the next `since`. */
  last: number;
  /** True when events after `since` were already overwritten. */
  truncated: boolean;
}

/**
 * A Map that keeps at least the `limit` most recently set keys, in two generations: new keys go
 * to the young Map, and when it holds `limit` it becomes the old one and the old one is dropped
 * whole. Evicting one key per insert instead walks past every deleted slot at the front of V8's
 * Map (~10 µs per insert with 4096 keys, measured); copying the newest half out of one Map of
 * twice the limit, as this class did before, made a set cost twice what it costs now (0.09
 * against 0.046 µs with 4096 keys, 50 000 MACs each set twice, measured).
 */
export class RecentMap<K, V> {
  #young = new Map<K, V>();
  #old = new Map<K, V>();

  constructor(readonly limit: number) {}

  /** The value of `key`, without making it more recent. */
  get(key: K): V | undefined {
    const value = this.#young.get(key);
    return value !== undefined || this.#young.has(key) ? value : this.#old.get(key);
  }

  /** Sets `key` as the most recent one. */
  set(key: K, value: V): void {
    // A key is in one generation at most; deleting it first puts it at the young one's end.
    if (!this.#young.delete(key)) this.#old.delete(key);
    this.#young.set(key, value);
    if (this.#young.size >= this.limit) {
      this.#old = this.#young;
      this.#young = new Map();
    }
  }

  /** Forgets `key`; true when it was there. */
  delete(key: K): boolean {
    return this.#young.delete(key) || this.#old.delete(key);
  }

  /** Values, most recent first, at most `limit`. */
  newest(): V[] {
    const young = [...this.#young.values()].reverse();
    if (young.length >= this.limit) return young.slice(0, this.limit);
    const old = [...this.#old.values()];
    const fromOld = old.slice(Math.max(0, old.length - (this.limit - young.length))).reverse();
    return young.concat(fromOld);
  }
}

/** How many distinct detail lines {@linkcode EventLog} keeps one copy of. */
const DETAILS_KEPT = 1024;

/** The ring buffer of boot events with per-machine stages and live subscribers. */
export class EventLog {
  readonly capacity: number;
  readonly #ring: (WatchEvent | undefined)[];
  readonly #now: () => number;
  readonly #current: RecentMap<string, MachineStage>;
  /**
   * One copy of each detail line lately seen. The stages of thousands of machines say a handful
   * of things ("undionly.kpxe (bios, arch 0)"), each built anew per request as a chain of joined
   * pieces: kept once each, the DHCP bench's 8 000 stages hold 3.0 → 1.55 MiB
   * (`tests/bench/dhcp_memory.ts`).
   */
  readonly #details = new Map<string, string>();
  readonly #listeners = new Set<EventListener>();
  readonly #observers: ((event: WatchEvent) => void)[] = [];
  #seq = 0;
  #closed = false;

  constructor(options: EventLogOptions = {}) {
    this.capacity = Math.max(1, options.capacity ?? 1000);
    this.#ring = new Array(this.capacity);
    this.#current = new RecentMap(Math.max(1, options.machineLimit ?? 4096));
    this.#now = options.now ?? Date.now;
  }

  /** Sequence number of the newest event; 0 before the first. */
  get last(): number {
    return this.#seq;
  }

  /** How many subscribers are listening now. */
  get subscribers(): number {
    return this.#listeners.size;
  }

  /** Whether {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The copy of `detail` kept already, else `detail`, kept from now on (a bounded set). */
  #detail(detail: string): string {
    const kept = this.#details.get(detail);
    if (kept !== undefined) return kept;
    if (this.#details.size >= DETAILS_KEPT) this.#details.clear();
    this.#details.set(detail, detail);
    return detail;
  }

  /** Stores an event, updates its machine's stage and tells every subscriber. */
  push(input: BootEventInput): WatchEvent {
    const event: WatchEvent = {
      seq: ++this.#seq,
      time: input.time ?? this.#now(),
      mac: input.mac,
      ip: input.ip,
      stage: input.stage,
      detail: this.#detail(input.detail),
    };
    this.#ring[event.seq % this.capacity] = event;
    const key = event.mac ?? event.ip;
    if (key !== null) {
      this.#current.set(key, event);
      // A machine first seen by address alone is the same machine once its MAC shows up.
      if (event.mac !== null && event.ip !== null) {
        const byIp = this.#current.get(event.ip);
        if (byIp && byIp.mac === null) this.#current.delete(event.ip);
      }
    }
    for (const observe of this.#observers) observe(event);
    // A copy, so that a listener may unsubscribe while called; none to copy most of the time.
    if (this.#listeners.size === 0) return event;
    for (const listen of [...this.#listeners]) {
      try {
        listen(event);
      } catch {
        // One broken subscriber (a stream that went away) must not stop the others.
        this.#listeners.delete(listen);
      }
    }
    return event;
  }

  /**
   * Events with a sequence number above `since`, oldest first, at most `limit`. A `since`
   * beyond the newest (a client that watched a previous run) counts as 0.
   */
  since(since = 0, limit = this.capacity): EventPage {
    const last = this.#seq;
    // A number from before a restart: the client's history is gone, start it over.
    if (!(since >= 0 && since <= last)) since = 0;
    limit = Math.max(1, limit);
    const first = Math.max(since + 1, last - this.capacity + 1, 1);
    const events: WatchEvent[] = [];
    for (let seq = first; seq <= last && events.length < limit; seq++) {
      events.push(this.#ring[seq % this.capacity]!);
    }
    return { events, last: events.at(-1)?.seq ?? last, truncated: first > since + 1 };
  }

  /** The current stage of one machine, by MAC (or by address for an unknown MAC). */
  current(key: string): MachineStage | null {
    return this.#current.get(key) ?? null;
  }

  /** Every machine's current stage, most recently active first. */
  stages(): MachineStage[] {
    return this.#current.newest();
  }

  /**
   * Calls `observer` for every event for as long as the log lives (the history writer): not a
   * stream, so it counts in no stream limit and outlasts {@linkcode close}. It must not throw.
   */
  observe(observer: (event: WatchEvent) => void): void {
    this.#observers.push(observer);
  }

  /** Calls `listener` for every new event until the returned function is called. */
  subscribe(listener: EventListener): () => void {
    if (this.#closed) {
      listener(null);
      return () => {};
    }
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Ends every subscription (each listener gets null once); the server is stopping. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const listen of [...this.#listeners]) {
      try {
        listen(null);
      } catch { /* going away anyway */ }
    }
    this.#listeners.clear();
  }
}

/** What kind of image a file under `boot/<os>/images/` is, by its name. */
export function imageStage(file: string): "kernel" | "initrd" | "image" {
  const name = file.slice(file.lastIndexOf("/") + 1).toLowerCase();
  if (/initrd|initramfs|\.cpio/.test(name)) return "initrd";
  if (/^(vmlinu[xz]|bzimage|linux|kernel)/.test(name)) return "kernel";
  return "image";
}
