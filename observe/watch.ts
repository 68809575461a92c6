/**
 * A boot you can watch: the typed events of DHCP, DNS, TFTP, HTTP and IPFS become Prometheus
 * metrics (`metrics.ts`) and boot events (`events.ts`, the live feed). Each part of the
 * program reports through a hook it was given (`onEvent`, `onTransfer`); `app/serve.ts`
 * connects the hooks to a {@linkcode BootWatch}. Nothing here reads log text.
 *
 * TFTP and HTTP events name a client address, not a MAC: the MAC is the one the last
 * DHCPACK (or boot script request) for that address named, else what `macForIp` says (the
 * lease table, the machine registry). Its answer, a MAC or none, is kept for
 * {@linkcode LOOKUP_KEPT_MS}: a client fetching file after file (or a stranger asking many
 * times) costs one look-up a second, not a database read per request.
 *
 * @module
 */
import type { Level, Logger } from "../log.ts";
import type { Mac } from "../net/mac.ts";
import { canonicalAddress } from "../net/ipv6.ts";
import { type ProcessMetrics, registerProcessMetrics } from "./process_metrics.ts";
import type { DhcpEvent, DhcpRefusal, DhcpReplyKind } from "../boot/dhcp_responder.ts";
import { DNS_RESULTS, type DnsQueryEvent } from "../boot/dns_responder.ts";
import type { DnsDropEvent } from "../protocols/dns/server.ts";
import type { IpfsEvent } from "../ipfs/events.ts";
import type { TftpTransferEvent } from "../protocols/tftp/server.ts";
import { type BootEventInput, type BootStage, EventLog, RecentMap } from "./events.ts";
import { type Counter, type Gauge, type Histogram, MetricsRegistry } from "./metrics.ts";

/** Route classes of the HTTP side: labels with few values. */
export type HttpRoute = "script" | "image" | "loader" | "config" | "api" | "watch" | "other";

/** One answered HTTP request, as the access middleware of `http/` reports it. */
export interface HttpEvent {
  method: string;
  /** Path and query as asked. */
  path: string;
  route: HttpRoute;
  status: number;
  /** Body bytes (Content-Length; 0 for HEAD). */
  bytes: number;
  ms: number;
  /** The client's address, or null when unknown (in-process requests). */
  client: string | null;
  /** The machine the request was for, when the route named one. */
  mac: Mac | null;
  /** The boot step the route says this request was, or null for none. */
  step: { stage: BootStage; detail: string } | null;
}

/** Why the HTTP server shut a connection down: idle too long, or over one of its caps. */
export type HttpCutReason = "idle" | "max_connections" | "max_per_client";

const CUT_REASONS: readonly HttpCutReason[] = ["idle", "max_connections", "max_per_client"];

/** The part of a lease the metrics read (state/leases.ts `Lease` fits). */
export interface LeaseLike {
  /** The subnet of its pool, where there are several. */
  subnet?: string;
  ip: string;
  mac: string;
  state: string;
  hostname?: string;
  expires?: number;
}

/** How much of one subnet's pool is held (state/lease_pools.ts `PoolUsage` fits). */
export interface PoolUse {
  /** `10.0.0.0/24`. */
  subnet: string;
  held: number;
  size: number;
}

/** Every reason a DHCP request is refused, exported from the start so that a query finds zeros. */
const DHCP_REFUSALS: readonly DhcpRefusal[] = [
  "pool-exhausted",
  "rate-limited",
  "reserved-in-use",
  "known-only",
  "not-offered",
  "no-subnet",
];

/** What the DNS server loop drops before the policy sees it (`DnsDropEvent` reasons). */
const DNS_DROPS: readonly DnsDropEvent["reason"][] = ["malformed", "response"];

/** Lease states, all exported on every scrape so that a query finds zeros, not gaps. */
const LEASE_STATES = ["offered", "bound", "released", "declined", "expired", "reserved"];

/** How long an answer of `macForIp` stands for its address. */
export const LOOKUP_KEPT_MS = 1000;

/** Options for {@linkcode BootWatch}. */
export interface BootWatchOptions {
  /** The program's version, for `astralboot_build_info`. */
  version: string;
  /** The MAC behind a client address when no event of this process named it. */
  macForIp?: (ip: string) => string | null;
  /** The lease table, read on every scrape; may be set later (DHCP starts last). */
  leases?: () => readonly LeaseLike[];
  /** How many addresses of each subnet's pool are held, and its size; read on every scrape. */
  pool?: () => readonly PoolUse[];
  /** Default a new log of 1000 events. */
  events?: EventLog;
  /** Default a new registry. */
  metrics?: MetricsRegistry;
  /** Addresses whose MAC is remembered; default 4096. */
  addressLimit?: number;
  /** Clock in ms for the kept answers of `macForIp`; default `performance.now`. */
  now?: () => number;
}

/** The headline numbers of the dashboard. */
export interface Headline {
  leases_bound: number | null;
  dhcp_replies: number;
  tftp_transfers: number;
  tftp_bytes: number;
  http_requests: number;
  http_bytes: number;
  bytes_served: number;
  events: number;
  uptime_seconds: number;
}

const REPLY_STAGES: Record<DhcpReplyKind, BootStage> = {
  "offer": "dhcp-offer",
  "ack": "dhcp-ack",
  "nak": "dhcp-nak",
  "proxy-offer": "proxy-offer",
  "proxy-ack": "proxy-ack",
};

/** Routes whose failures are a failed boot step (the others are people and scrapers). */
const BOOT_ROUTES = new Set<HttpRoute>(["script", "image", "loader", "config"]);

/** A Logger that logs through `inner` and counts warnings and errors by subsystem. */
export function countingLogger(
  inner: Logger,
  count: (level: Level, subsystem: string) => void,
): Logger {
  const wrap = (level: Level) => (subsystem: string, message: string, fields = {}) => {
    inner[level](subsystem, message, fields);
    if (level === "warn" || level === "error") count(level, subsystem);
  };
  const logger: Logger = {
    debug: inner.debug,
    info: inner.info,
    warn: wrap("warn"),
    error: wrap("error"),
  };
  const prepare = inner.prepare?.bind(inner);
  if (prepare) {
    logger.prepare = (level, subsystem, message, keys) => {
      const write = prepare(level, subsystem, message, keys);
      if (level !== "warn" && level !== "error") return write;
      return (values, other) => {
        write(values, other);
        count(level, subsystem);
      };
    };
  }
  return logger;
}

/** Turns typed events into metrics and boot events; see the module doc. */
export class BootWatch {
  readonly metrics: MetricsRegistry;
  readonly events: EventLog;
  readonly version: string;
  /** The lease table, read on each scrape; set it once the DHCP server runs. */
  leases: (() => readonly LeaseLike[]) | undefined;
  /** Each pool's use, read on each scrape; set it with `leases`. */
  pool: (() => readonly PoolUse[]) | undefined;
  /** Fallback for addresses no event of this run named. */
  macForIp: ((ip: string) => string | null) | undefined;
  readonly #macByIp: RecentMap<string, Mac>;
  /** What `macForIp` answered for an address, and when. */
  readonly #looked: RecentMap<string, { mac: Mac | null; at: number }>;
  readonly #now: () => number;
  readonly #m: ReturnType<typeof register>;
  readonly #process: ProcessMetrics;
  #cacheMeasured = false;

  constructor(options: BootWatchOptions) {
    this.version = options.version;
    this.metrics = options.metrics ?? new MetricsRegistry();
    this.events = options.events ?? new EventLog();
    this.leases = options.leases;
    this.pool = options.pool;
    this.macForIp = options.macForIp;
    this.#macByIp = new RecentMap(options.addressLimit ?? 4096);
    this.#looked = new RecentMap(options.addressLimit ?? 4096);
    this.#now = options.now ?? (() => performance.now());
    this.#m = register(this.metrics);
    this.#m.buildInfo.set({ version: this.version, deno: Deno.version.deno }, 1);
    this.#process = registerProcessMetrics(this.metrics);
    for (const reason of DHCP_REFUSALS) this.#m.dhcpRefused.inc({ reason }, 0);
    for (const result of [...DNS_RESULTS, ...DNS_DROPS]) this.#m.dnsQueries.inc({ result }, 0);
    // Every reason from the start, so that a query finds zeros, not gaps.
    for (const reason of CUT_REASONS) this.#m.httpCuts.inc({ reason }, 0);
    this.#m.httpConnections.set({}, 0);
    this.metrics.onCollect(() => this.#collect());
  }

  /** A Logger that logs through `inner` and counts its warnings and errors here. */
  logger(inner: Logger): Logger {
    return countingLogger(inner, (level, subsystem) => {
      this.#m.logMessages.inc({ subsystem, level });
    });
  }

  /** A DHCP request's outcome. */
  dhcp(e: DhcpEvent): void {
    const m = this.#m;
    if (e.kind === "ignored") {
      if (e.refusal) m.dhcpRefused.inc({ reason: e.refusal });
      else m.dhcpIgnored.inc();
      return;
    }
    if (e.kind !== "reply") {
      m.dhcpClientMessages.inc({ type: e.kind });
      this.#push({ mac: e.mac, ip: e.ip, stage: `dhcp-${e.kind}`, detail: e.ip });
      return;
    }
    m.dhcpReplies.inc({ type: e.reply.replace("-", "_"), client: e.client });
    if (e.reply === "ack" && e.ip) this.#macByIp.set(e.ip, e.mac);
    const detail = e.reply === "nak"
      ? e.reason ?? ""
      : `${e.bootfile ? `${e.bootfile} ` : ""}(${e.client}, arch ${e.arch})`;
    this.#push({ mac: e.mac, ip: e.ip, stage: REPLY_STAGES[e.reply], detail });
  }

  /** How a DNS query ended. Counted only: queries are too many for the live feed. */
  dns(e: DnsQueryEvent): void {
    this.#m.dnsQueries.inc({ result: e.result });
  }

  /** A DNS message the server loop dropped (or answered FORMERR) before the policy saw it. */
  dnsDropped(e: DnsDropEvent): void {
    this.#m.dnsQueries.inc({ result: e.reason });
  }

  /** How a TFTP request ended. */
  tftp(e: TftpTransferEvent): void {
    const m = this.#m;
    m.tftpTransfers.inc({ result: e.result });
    if (e.result !== "refused") {
      m.tftpBytes.inc({}, e.bytes);
      m.tftpRetransmits.inc({}, e.retransmits);
    }
    if (e.result === "done") m.tftpDuration.observe({}, e.ms / 1000);
    // A flood of requests over a limit is counted, not fed live: it would push the boot events
    // out of the feed, and naming each sender's machine costs a lookup.
    if (e.limit) return;
    const ip = canonicalAddress(e.client.address);
    const detail = e.result === "done"
      ? `${e.file}: ${e.bytes} bytes in ${e.ms} ms (blksize ${e.blksize}, window ` +
        `${e.windowsize}, ${e.retransmits} retransmits)`
      : `${e.file}: ${e.reason ?? e.result}`;
    const stage = e.result === "done" ? "tftp-done" : "tftp-failed";
    this.#push({ mac: this.#resolve(ip), ip, stage, detail });
  }

  /** A boot script answered outside HTTP: GRUB's configs over TFTP. */
  script(mac: Mac | null, ip: string | null, step: { stage: BootStage; detail: string }): void {
    if (mac && ip) this.#macByIp.set(ip, mac);
    this.#push({ mac, ip, stage: step.stage, detail: step.detail });
  }

  /** An answered HTTP request. */
  http(e: HttpEvent): void {
    const m = this.#m;
    m.httpRequests.inc({ route: e.route, status: e.status });
    m.httpBytes.inc({ route: e.route }, e.bytes);
    const ip = e.client === null ? null : canonicalAddress(e.client);
    // Only a boot script names the asking machine; a person may ask /api/events?mac=….
    if (e.route === "script" && e.mac && ip) this.#macByIp.set(ip, e.mac);
    if (e.method === "HEAD") return;
    let step = e.step;
    if (step === null && e.status >= 400 && BOOT_ROUTES.has(e.route)) {
      step = { stage: "http-error", detail: `${e.method} ${e.path.split("?")[0]} → ${e.status}` };
    }
    if (step === null) return;
    const mac = e.mac ?? (ip ? this.#resolve(ip) : null);
    // Installer requests name the machine but not always where it asks from.
    const at = ip ?? (mac ? this.events.current(mac)?.ip ?? null : null);
    this.#push({ mac, ip: at, stage: step.stage, detail: step.detail });
  }

  /** An HTTP connection the server shut down. */
  httpCut(reason: HttpCutReason): void {
    this.#m.httpCuts.inc({ reason });
  }

  /** How many connections the HTTP server holds, as its watchdog last counted. */
  httpConnections(open: number): void {
    this.#m.httpConnections.set({}, open);
  }

  /** An IPFS file or gateway event. */
  ipfs(e: IpfsEvent): void {
    const m = this.#m;
    if (e.kind === "file-cached") {
      m.ipfsFiles.inc({ result: "cached" });
      m.ipfsBytes.inc({}, e.bytes);
      m.ipfsBlocks.inc({}, e.blocks);
      // The size is known once a gc has measured it; files cached since add to it.
      if (this.#cacheMeasured) m.ipfsCacheBytes.inc({}, e.bytes);
    } else if (e.kind === "file-failed") {
      m.ipfsFiles.inc({ result: "failed" });
    } else if (e.kind === "cache-gc") {
      this.#cacheMeasured = true;
      m.ipfsCacheEvicted.inc({}, e.freedBytes);
      m.ipfsCacheBytes.set({}, e.sizeBytes);
      m.ipfsCacheMax.set({}, e.maxBytes);
    } else {
      m.ipfsGatewayFailures.inc({ kind: e.reason.replace("-", "_") });
    }
  }

  #push(input: BootEventInput): void {
    this.#m.events.inc({ stage: input.stage });
    this.events.push(input);
  }

  #resolve(ip: string): Mac | null {
    const known = this.#macByIp.get(ip);
    if (known) return known;
    if (!this.macForIp) return null;
    const now = this.#now();
    const looked = this.#looked.get(ip);
    // Compared both ways: a clock that stepped back does not keep an answer longer.
    if (looked && now - looked.at < LOOKUP_KEPT_MS && now >= looked.at) return looked.mac;
    let mac: Mac | null = null;
    try {
      mac = (this.macForIp(ip) as Mac | null | undefined) ?? null;
    } catch {
      // Not kept: the next request asks again.
      return null;
    }
    this.#looked.set(ip, { mac, at: now });
    return mac;
  }

  /** Bound leases now, or null when there is no lease table (proxy mode, DHCP off). */
  leasesBound(): number | null {
    const list = this.leases?.();
    return list ? list.filter((l) => l.state === "bound").length : null;
  }

  #collect(): void {
    const m = this.#m;
    m.sseClients.set({}, this.events.subscribers);
    m.eventsKept.set({}, Math.min(this.events.last, this.events.capacity));
    m.droppedSeries.set({}, this.metrics.dropped);
    const pool = this.pool?.();
    m.poolSize.reset();
    m.poolHeld.reset();
    for (const p of pool ?? []) {
      m.poolSize.set({ subnet: p.subnet }, p.size);
      m.poolHeld.set({ subnet: p.subnet }, p.held);
    }
    const list = this.leases?.();
    m.leases.reset();
    if (list) {
      for (const state of LEASE_STATES) {
        m.leases.set({ state }, list.filter((l) => l.state === state).length);
      }
    }
  }

  /** The dashboard's headline numbers. */
  headline(): Headline {
    const m = this.#m;
    const tftpBytes = m.tftpBytes.total();
    const httpBytes = m.httpBytes.total();
    return {
      leases_bound: this.leasesBound(),
      dhcp_replies: m.dhcpReplies.total(),
      tftp_transfers: m.tftpTransfers.get({ result: "done" }),
      tftp_bytes: tftpBytes,
      http_requests: m.httpRequests.total(),
      http_bytes: httpBytes,
      bytes_served: tftpBytes + httpBytes,
      events: this.events.last,
      uptime_seconds: Math.round(performance.now() / 1000),
    };
  }

  /** Ends every live event stream: call before the HTTP server shuts down. */
  /** Starts sampling the event loop's lag for `astralboot_event_loop_lag_seconds`. */
  sampleEventLoop(): void {
    this.#process.sampleEventLoop();
  }

  close(): void {
    this.events.close();
    this.#process.close();
  }
}

/** TFTP transfer durations in seconds: a first-stage loader takes ~0.1–2 s, a kernel more. */
const TFTP_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

function register(r: MetricsRegistry) {
  const counter = (name: string, help: string, labels: string[] = []): Counter =>
    r.counter(`astralboot_${name}`, help, labels);
  const gauge = (name: string, help: string, labels: string[] = []): Gauge =>
    r.gauge(`astralboot_${name}`, help, labels);
  const hist = (name: string, help: string, buckets: number[]): Histogram =>
    r.histogram(`astralboot_${name}`, help, buckets);
  return {
    buildInfo: gauge("build_info", "Always 1; the labels say which build runs.", [
      "version",
      "deno",
    ]),
    logMessages: counter("log_messages_total", "Warnings and errors logged, by subsystem.", [
      "subsystem",
      "level",
    ]),
    dhcpReplies: counter(
      "dhcp_replies_total",
      "DHCP replies sent, by message type and client kind (ipxe, pxe, http, other).",
      ["type", "client"],
    ),
    dhcpClientMessages: counter(
      "dhcp_client_messages_total",
      "DHCPRELEASE and DHCPDECLINE messages handled.",
      ["type"],
    ),
    dhcpIgnored: counter(
      "dhcp_ignored_total",
      "DHCP requests left unanswered (for another server, not a PXE client in proxy mode …).",
    ),
    dhcpRefused: counter(
      "dhcp_refused_total",
      "DHCP requests refused on purpose: pool-exhausted (the rest is kept for known machines), " +
        "rate-limited (too many new clients), reserved-in-use (a machine's reserved address still " +
        "leased to another client), known-only, not-offered (REQUEST without an OFFER), " +
        "no-subnet (relayed from a network no [[dhcp.subnet]] covers).",
      ["reason"],
    ),
    leases: gauge("dhcp_leases", "Lease table rows by state, read at scrape time.", ["state"]),
    poolSize: gauge("dhcp_pool_addresses", "Addresses in the DHCP range, by subnet.", [
      "subnet",
    ]),
    poolHeld: gauge(
      "dhcp_pool_held_addresses",
      "Addresses of the range held by a lease, an offer or a quarantine, by subnet, read at scrape time.",
      ["subnet"],
    ),
    dnsQueries: counter(
      "dns_queries_total",
      "DNS queries by result: answer, nodata, nxdomain (local names), forwarded, servfail (no " +
        "upstream answered), busy (too many waiting), refused, notimp, formerr, badvers; " +
        "malformed and response (dropped by the loop).",
      ["result"],
    ),
    tftpTransfers: counter(
      "tftp_transfers_total",
      "TFTP read requests by result: done, failed (after it started) or refused.",
      ["result"],
    ),
    tftpBytes: counter("tftp_bytes_total", "File bytes sent over TFTP."),
    tftpRetransmits: counter("tftp_retransmits_total", "TFTP packets sent again after a timeout."),
    tftpDuration: hist(
      "tftp_transfer_duration_seconds",
      "Duration of completed TFTP transfers.",
      TFTP_BUCKETS,
    ),
    httpRequests: counter(
      "http_requests_total",
      "HTTP requests by route class (script, image, loader, config, api, watch, other) and status.",
      ["route", "status"],
    ),
    httpBytes: counter("http_response_bytes_total", "HTTP body bytes sent, by route class.", [
      "route",
    ]),
    httpCuts: counter(
      "http_connections_cut_total",
      "HTTP connections shut down: idle too long, or over max_connections or max_per_client.",
      ["reason"],
    ),
    httpConnections: gauge(
      "http_connections",
      "Open HTTP connections, as the connection watchdog last counted (every second).",
    ),
    ipfsFiles: counter(
      "ipfs_files_total",
      "Files downloaded from IPFS into the cache, by result.",
      ["result"],
    ),
    ipfsBytes: counter("ipfs_cached_bytes_total", "Bytes of files downloaded into the cache."),
    ipfsBlocks: counter("ipfs_blocks_verified_total", "Blocks fetched and hash-verified."),
    ipfsGatewayFailures: counter(
      "ipfs_gateway_failures_total",
      "Gateway requests that failed: error, not_found, or rejected (a block failed verification).",
      ["kind"],
    ),
    ipfsCacheEvicted: counter(
      "ipfs_cache_evicted_bytes_total",
      "Bytes the cache gc removed: entries no kept ref reaches, and least recently used files over cache_max.",
    ),
    ipfsCacheBytes: gauge(
      "ipfs_cache_bytes",
      "Bytes in the IPFS cache: as the last gc measured, plus files cached since.",
    ),
    ipfsCacheMax: gauge("ipfs_cache_max_bytes", "The cache's limit (cache_max); 0: none."),
    events: counter("boot_events_total", "Boot events by stage.", ["stage"]),
    eventsKept: gauge("boot_events_kept", "Boot events held for /api/events."),
    sseClients: gauge("event_stream_clients", "Open /api/events/stream connections."),
    droppedSeries: gauge(
      "metrics_dropped_series",
      "Label combinations refused because a metric had too many already.",
    ),
  };
}
