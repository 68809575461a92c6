/**
 * The connection watchdog of the HTTP server: every interval it lists the listener's
 * connections from the kernel, pairs them with the requests in flight that the server's
 * handler reports, and shuts down those {@linkcode connectionsToCut} names (see `server.ts`).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { HttpCutReason } from "../observe/watch.ts";
import { type TcpConnection, TcpConnectionTable } from "../net/tcp_connections.ts";
import { canonicalAddress } from "../net/ipv6.ts";
import { type ConnectionLimits, connectionsToCut } from "./connection_rule.ts";

/** Options for {@linkcode ConnectionWatchdog}. */
export interface WatchdogOptions extends ConnectionLimits {
  /** The listener's port and address (the connections are those on it). */
  port: number;
  address: string;
  /** How often to look; default 1000 ms. */
  intervalMs?: number;
  logger: Logger;
  /** Called once for each connection shut down. */
  onCut?: (reason: HttpCutReason) => void;
  /** Called after each look with the number of connections open. */
  onConnections?: (open: number) => void;
  /** Warnings (about the caps, or a table it cannot read) come at most this often; default 30 s. */
  warnEveryMs?: number;
  /** The kernel's list; default the listener's connections in `/proc/net/tcp[6]`. */
  list?: () => TcpConnection[];
  /** Shuts sockets down by inode, returns those it did; default through `/proc/self/fd`. */
  shutdown?: (inodes: number[]) => Set<number>;
  /** Milliseconds now; default `performance.now()`. */
  now?: () => number;
}

/**
 * Requests in flight on one remote address and port (a connection, as the handler knows it),
 * and when the last one ended. Kept by port, a chain per port for the addresses on it: the
 * handler finds its entry on every request without building a string key.
 */
interface Flight {
  address: string;
  count: number;
  /** A request ended since the last look: that look sets `lastDone` (no clock per request). */
  ended: boolean;
  lastDone: number;
  /** The number of the last look that found its connection. */
  seenAt: number;
  next: Flight | undefined;
}

/** A connection the watchdog has seen. */
interface Seen {
  firstSeen: number;
  /** The last look that found bytes queued for the client. */
  lastSending: number;
  /** Shut down already: left alone until the kernel's list drops it. */
  cut: boolean;
}

/** Watches one listener's connections; {@linkcode begin} wraps each request. */
export class ConnectionWatchdog {
  readonly #o: WatchdogOptions;
  readonly #now: () => number;
  readonly #flights = new Map<number, Flight>();
  #looks = 0;
  readonly #seen = new Map<number, Seen>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #pendingWarn = { max_connections: 0, max_per_client: 0, clients: new Map<string, number>() };
  #lastWarn = -Infinity;
  /** The kernel's table, opened at the first look (the FFI permission is checked there). */
  #table: TcpConnectionTable | undefined;
  /** Set without the FFI permission: that will not change while the process runs. */
  #off = false;
  #lastTableWarn = -Infinity;

  constructor(options: WatchdogOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
  }

  /** Starts looking every interval. */
  start(): void {
    this.#timer ??= setInterval(() => this.tick(), this.#o.intervalMs ?? 1000);
  }

  /** Stops looking. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#table?.close();
    this.#table = undefined;
  }

  /** A request from `remote` starts; call the returned function once it has been answered. */
  begin(remote: { hostname: string; port: number }): () => void {
    const f = this.#flight(canonicalAddress(remote.hostname), remote.port, true)!;
    f.count++;
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      f.count--;
      f.ended = true;
    };
  }

  /** The entry of a remote address and port, made when `create` (else undefined if none). */
  #flight(address: string, port: number, create: boolean): Flight | undefined {
    const head = this.#flights.get(port);
    for (let f: Flight | undefined = head; f; f = f.next) if (f.address === address) return f;
    if (!create) return undefined;
    const f = { address, count: 0, ended: false, lastDone: -Infinity, seenAt: -1, next: head };
    this.#flights.set(port, f);
    return f;
  }

  /** Drops the entries with nothing in flight whose connection the last look did not find. */
  #prune(): void {
    for (const [port, head] of this.#flights) {
      let keep: Flight | undefined;
      for (let f: Flight | undefined = head, next; f; f = next) {
        next = f.next;
        if (f.count > 0 || f.seenAt === this.#looks) {
          f.next = keep;
          keep = f;
        }
      }
      if (keep) this.#flights.set(port, keep);
      else this.#flights.delete(port);
    }
  }

  /** One look: list, decide, shut down, report. Never throws. */
  tick(): void {
    if (this.#off) return;
    const now = this.#now();
    let conns: TcpConnection[];
    try {
      conns = this.#o.list ? this.#o.list() : this.#tableNow().list();
    } catch (e) {
      // Without FFI it will never work; anything else (no descriptor left to open the table
      // with, say) may pass, and the next look tries again.
      const never = e instanceof Deno.errors.NotCapable ||
        e instanceof Deno.errors.PermissionDenied;
      if (never || now - this.#lastTableWarn >= (this.#o.warnEveryMs ?? 30_000)) {
        this.#lastTableWarn = now;
        this.#o.logger.warn(
          "http",
          never ? "connection watchdog off: cannot list connections" : "cannot list connections",
          { error: e },
        );
      }
      if (never) {
        this.#off = true;
        this.stop();
      }
      return;
    }
    const look = ++this.#looks;
    for (const head of this.#flights.values()) {
      for (let f: Flight | undefined = head; f; f = f.next) {
        if (f.ended) [f.lastDone, f.ended] = [now, false];
      }
    }
    const live = new Set<number>();
    const views = [];
    const clients = new Map<number, string>();
    for (const c of conns) {
      live.add(c.inode);
      let seen = this.#seen.get(c.inode);
      if (!seen) {
        this.#seen.set(c.inode, seen = { firstSeen: now, lastSending: -Infinity, cut: false });
      }
      const flight = this.#flight(c.remote.address, c.remote.port, false);
      if (flight) flight.seenAt = look;
      if (seen.cut) continue;
      // Deno calls a response done once its last bytes are handed over, and a body given
      // whole is handed over at once: until the client has taken it, the kernel queues it.
      const sending = c.sendQueue > 0;
      if (sending) seen.lastSending = now;
      clients.set(c.inode, c.remote.address);
      views.push({
        id: c.inode,
        client: c.remote.address,
        busy: (flight?.count ?? 0) > 0 || sending,
        idleSince: Math.max(seen.firstSeen, seen.lastSending, flight?.lastDone ?? -Infinity),
      });
    }
    for (const inode of this.#seen.keys()) if (!live.has(inode)) this.#seen.delete(inode);
    this.#prune();
    const cuts = connectionsToCut(views, now, this.#o);
    let done = new Set<number>();
    if (cuts.length > 0) {
      try {
        const inodes = cuts.map((c) => c.id);
        done = this.#o.shutdown ? this.#o.shutdown(inodes) : this.#tableNow().shutdown(inodes);
      } catch (e) {
        this.#o.logger.warn("http", "cannot shut connections down", { error: e });
      }
    }
    let idle = 0;
    for (const cut of cuts) {
      if (!done.has(cut.id)) continue;
      this.#seen.get(cut.id)!.cut = true;
      this.#o.onCut?.(cut.reason);
      if (cut.reason === "idle") {
        idle++;
        continue;
      }
      const w = this.#pendingWarn;
      w[cut.reason]++;
      const client = clients.get(cut.id)!;
      w.clients.set(client, (w.clients.get(client) ?? 0) + 1);
    }
    this.#o.onConnections?.(views.length - done.size);
    if (idle > 0) this.#o.logger.debug("http", "idle connections shut down", { count: idle });
    this.#warn(now);
  }

  #tableNow(): TcpConnectionTable {
    return this.#table ??= new TcpConnectionTable(this.#o.port, this.#o.address);
  }

  /** One warning for the cap cuts since the last one, at most every `warnEveryMs`. */
  #warn(now: number): void {
    const w = this.#pendingWarn;
    if (w.max_connections + w.max_per_client === 0) return;
    if (now - this.#lastWarn < (this.#o.warnEveryMs ?? 30_000)) return;
    const top = [...w.clients].sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([client, n]) => `${client} (${n})`);
    this.#o.logger.warn("http", "connections over the limits shut down", {
      max_connections: w.max_connections,
      max_per_client: w.max_per_client,
      limits: `${this.#o.maxConnections} in all, ${this.#o.maxPerClient} per client`,
      clients: top.join(", "),
    });
    this.#lastWarn = now;
    this.#pendingWarn = { max_connections: 0, max_per_client: 0, clients: new Map() };
  }
}
