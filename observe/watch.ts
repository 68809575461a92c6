/**
 * A boot you can watch: every log record of the program passes through
 * {@linkcode observeLogger} on its way to the real logger, and {@linkcode BootWatch} turns the
 * records it knows into Prometheus metrics (`metrics.ts`) and boot events (`events.ts`). The
 * protocol code stays free of metrics code: it logs one structured line per exchange, and
 * this is the one place that reads them.
 *
 * Records it understands (see the loggers in protocols/ and boot/):
 *
 * | subsystem | message | becomes |
 * |---|---|---|
 * | dhcp | `DHCPOFFER <ip> to <mac>`, `DHCPACK …`, `DHCPNAK to <mac>`, `ProxyDHCPOFFER …` | replies by type and client; stage dhcp-offer, dhcp-ack … |
 * | dhcp | `DHCPRELEASE`, `DHCPDECLINE`, `ignored` | client messages, ignored requests |
 * | tftp | `transfer done`, `transfer failed`, `request refused` | transfers, bytes, retransmits, durations; stage tftp-done / tftp-failed |
 * | http | `request` | requests by route class and status, bytes; stages script, kernel, initrd … |
 * | install | `config served`, `installer progress`, `install finished…`, `installed: …`, `reinstall requested` | stages config, progress, installed, local-boot, reinstall |
 * | ipfs | `file cached`, `file download failed`, `gateway failed`, `gateway does not have block` | files, blocks, gateway failures (rejected blocks apart) |
 * | any | warn and error records | messages by subsystem and level |
 *
 * TFTP and HTTP records name a client address, not a MAC: the MAC is the one the last DHCPACK
 * for that address named, else what `macForIp` says (the lease table, the machines table).
 *
 * @module
 */
import type { Fields, Level, Logger } from "../log.ts";
import { normalizeMac } from "../app/config.ts";
import { type BootEventInput, type BootStage, EventLog, RecentMap } from "./events.ts";
import { type Counter, type Gauge, type Histogram, MetricsRegistry } from "./metrics.ts";

/** One log record as the observer sees it. */
export interface LogRecord {
  /** Milliseconds since the epoch. */
  time: number;
  level: Level;
  subsystem: string;
  message: string;
  fields: Fields;
}

/** Receives every record; what it throws is logged at debug and otherwise ignored. */
export type LogObserver = (record: LogRecord) => void;

/** A Logger that forwards to `inner` and then hands each record (any level) to `observer`. */
export function observeLogger(inner: Logger, observer: LogObserver): Logger {
  const wrap = (level: Level) => (subsystem: string, message: string, fields: Fields = {}) => {
    inner[level](subsystem, message, fields);
    try {
      observer({ time: Date.now(), level, subsystem, message, fields });
    } catch (e) {
      // Watching must never break serving: the record reached the log, that is what counts.
      inner.debug("watch", "observer failed", { subsystem, message, error: e });
    }
  };
  return { debug: wrap("debug"), info: wrap("info"), warn: wrap("warn"), error: wrap("error") };
}

/** The part of a lease the metrics read (boot/leases.ts `Lease` fits). */
export interface LeaseLike {
  ip: string;
  mac: string;
  state: string;
  hostname?: string;
  expires?: number;
}

/** Lease states, all exported on every scrape so that a query finds zeros, not gaps. */
const _LEASE_STATES = ["offered", "bound", "released", "declined", "expired", "reserved"];

/** Options for {@linkcode BootWatch}. */
export interface BootWatchOptions {
  /** The program's version, for `astralboot_build_info`. */
  version: string;
  /** The MAC behind a client address when no DHCPACK of this process named it. */
  macForIp?: (ip: string) => string | null;
  /** The lease table, read on every scrape; may be set later (DHCP starts last). */
  leases?: () => readonly LeaseLike[];
  /** Default a new log of 1000 events. */
  events?: EventLog;
  /** Default a new registry. */
  metrics?: MetricsRegistry;
  /** Addresses whose MAC is remembered from DHCPACKs and URLs; default 4096. */
  addressLimit?: number;
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

const _DHCP_REPLIES: Record<string, { type: string; stage: BootStage }> = {
  DHCPOFFER: { type: "offer", stage: "dhcp-offer" },
  DHCPACK: { type: "ack", stage: "dhcp-ack" },
  DHCPNAK: { type: "nak", stage: "dhcp-nak" },
  ProxyDHCPOFFER: { type: "proxy_offer", stage: "proxy-offer" },
  ProxyDHCPACK: { type: "proxy_ack", stage: "proxy-ack" },
};

const _DHCP_CLIENT_MESSAGES: Record<string, { type: string; stage: BootStage }> = {
  DHCPRELEASE: { type: "release", stage: "dhcp-release" },
  DHCPDECLINE: { type: "decline", stage: "dhcp-decline" },
};

const _INSTALL_STAGES: Record<string, BootStage> = {
  "config served": "config",
  "installer progress": "progress",
  "install finished: next boot from local disk": "installed",
  "installed: booting the local disk": "local-boot",
  "reinstall requested": "reinstall",
};

/** Stages logged by a request's handler itself (boot/installers.ts, boot/api.ts). */
const _HANDLER_STAGES = new Set<BootStage>(Object.values(_INSTALL_STAGES));

/** The client kind label of a DHCP record (`client` field of boot/dhcp_policy.ts). */
export function dhcpClientLabel(client: unknown): "ipxe" | "pxe" | "http" | "other" {
  if (client === "iPXE") return "ipxe";
  if (client === "PXEClient") return "pxe";
  if (client === "HTTPClient") return "http";
  return "other";
}

/** The route class of an HTTP path, a label with few values (see boot/http.ts routes). */
export function httpRouteClass(path: string): string {
  const p = path.split("?")[0]!;
  if (p === "/metrics" || p === "/ui" || p.startsWith("/ui/")) return "watch";
  if (/^\/api\/(events|leases|overview)(\/|$)/.test(p)) return "watch";
  if (p.startsWith("/api/")) return "api";
  if (p === "/boot.ipxe" || p === "/menu.ipxe" || p === "/choose" || /^\/(choose|boot)\//.test(p)) {
    return "script";
  }
  if (p.startsWith("/image/")) return "image";
  if (p.startsWith("/tftp/")) return "loader";
  if (p.startsWith("/config/") || p.startsWith("/action/")) return "config";
  return "other";
}

/** What kind of image a file under `boot/<os>/images/` is, by its name. */
export function imageStage(file: string): "kernel" | "initrd" | "image" {
  const name = file.slice(file.lastIndexOf("/") + 1).toLowerCase();
  if (/initrd|initramfs|\.cpio/.test(name)) return "initrd";
  if (/^(vmlinu[xz]|bzimage|linux|kernel)/.test(name)) return "kernel";
  return "image";
}

/** The address of a client label: `10.0.0.5:2070` (TFTP) or `10.0.0.5` (HTTP); null for "-". */
export function clientAddress(client: unknown): string | null {
  if (typeof client !== "string" || client === "" || client === "-") return null;
  let a = client;
  const v4port = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(a);
  if (v4port) a = v4port[1]!;
  else if (/^\[.*\]:\d+$/.test(a)) a = a.slice(1, a.lastIndexOf("]"));
  return a.startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

const _CANONICAL_MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** A MAC field in canonical form (the DHCP server logs it so already), or null. */
function _mac(v: unknown): string | null {
  if (typeof v !== "string") return null;
  return _CANONICAL_MAC.test(v) ? v : normalizeMac(v);
}

function _num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0;
}

function _str(v: unknown): string {
  return typeof v === "string" ? v : v === undefined || v === null ? "" : String(v);
}

function _decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The MAC an HTTP path names: `?mac=`, or the last segment of /boot/… and /choose/…. */
function _macOfPath(path: string): string | null {
  const [p, q] = path.split("?", 2) as [string, string | undefined];
  const fromQuery = q ? new URLSearchParams(q).get("mac") : null;
  if (fromQuery) return normalizeMac(fromQuery);
  const m = /^\/(?:choose|boot)\/[^/]+(?:\/[^/]+)?\/([^/]+)$/.exec(p);
  return m ? normalizeMac(_decode(m[1]!)) : null;
}

/** An HTTP request record as a boot stage, or null for what is no boot step. */
function _httpEvent(f: Fields): Omit<BootEventInput, "mac" | "ip"> | null {
  const method = _str(f.method);
  const path = _str(f.path);
  const status = _num(f.status);
  const route = httpRouteClass(path);
  if (method === "HEAD" || route === "watch" || route === "api" || route === "other") return null;
  const p = path.split("?")[0]!;
  if (status >= 400) return { stage: "http-error", detail: `${method} ${p} → ${status}` };
  if (status < 200 || status >= 300) return null;
  const parts = p.split("/").slice(1).map(_decode);
  switch (route) {
    case "script":
      if (p === "/menu.ipxe" || p === "/choose") return { stage: "menu", detail: "menu" };
      if (p === "/boot.ipxe") {
        return {
          stage: "script",
          detail: _macOfPath(path) ? "boot.ipxe" : "boot.ipxe (chain: asks again with its MAC)",
        };
      }
      if (parts[0] === "choose") {
        return { stage: "chosen", detail: parts.slice(1, -1).join("/") };
      }
      return { stage: "script", detail: `start ${parts[1]}` };
    case "image": {
      const file = parts.slice(2).join("/");
      return { stage: imageStage(file), detail: `${parts[1]}/${file} (${_num(f.bytes)} bytes)` };
    }
    case "loader":
      return { stage: "loader", detail: `${parts.join("/")} over HTTP (${_num(f.bytes)} bytes)` };
    default:
      // /config and /action: the installers' "config served" record says it with the MAC.
      return null;
  }
}

/** A record as a boot event (MAC not yet resolved from the address), or null. */
export function eventOfRecord(r: LogRecord): BootEventInput | null {
  const f = r.fields;
  const mac = _mac(f.mac);
  if (r.subsystem === "dhcp") {
    const word = r.message.split(" ", 1)[0]!;
    const kind = _DHCP_REPLIES[word] ?? _DHCP_CLIENT_MESSAGES[word];
    if (!kind || !mac) return null;
    const ip = _str(f.ip || f.inform) || null;
    let detail: string;
    if (word === "DHCPNAK") detail = _str(f.reason);
    else if (kind.stage === "dhcp-release" || kind.stage === "dhcp-decline") detail = ip ?? "";
    else {
      const boot = f.bootfile ? `${f.bootfile} ` : "";
      detail = `${boot}(${_str(f.client) || "client"}, arch ${_str(f.arch)})`;
    }
    return { mac, ip, stage: kind.stage, detail, time: r.time };
  }
  if (r.subsystem === "tftp") {
    const ip = clientAddress(f.client);
    if (r.message === "transfer done") {
      const detail = `${_str(f.file)}: ${_num(f.bytes)} bytes in ${_num(f.ms)} ms ` +
        `(blksize ${_num(f.blksize)}, window ${_num(f.windowsize)}, ` +
        `${_num(f.retransmits)} retransmits)`;
      return { mac: null, ip, stage: "tftp-done", detail, time: r.time };
    }
    if (r.message === "transfer failed" || r.message === "request refused") {
      const detail = `${_str(f.file)}: ${_str(f.reason)}`;
      return { mac: null, ip, stage: "tftp-failed", detail, time: r.time };
    }
    return null;
  }
  if (r.subsystem === "http" && r.message === "request") {
    const e = _httpEvent(f);
    if (!e) return null;
    return { ...e, mac: _macOfPath(_str(f.path)), ip: clientAddress(f.client), time: r.time };
  }
  if (r.subsystem === "install") {
    const stage = _INSTALL_STAGES[r.message];
    if (!stage || !mac) return null;
    let detail = r.message;
    if (stage === "config") {
      detail = `${_str(f.os)}${f.class ? `/${f.class}` : ""} ${_str(f.config)}`;
    } else if (stage === "progress") detail = _str(f.report) || "progress";
    return { mac, ip: clientAddress(f.client), stage, detail, time: r.time };
  }
  return null;
}

/** Turns log records into metrics and boot events; see the module doc. */
export class BootWatch {
  readonly metrics: MetricsRegistry;
  readonly events: EventLog;
  readonly version: string;
  /** The lease table, read on each scrape; set it once the DHCP server runs. */
  leases: (() => readonly LeaseLike[]) | undefined;
  /** Fallback for addresses no DHCPACK of this run named. */
  macForIp: ((ip: string) => string | null) | undefined;
  readonly #macByIp: RecentMap<string, string>;
  readonly #m: ReturnType<typeof _register>;

  constructor(options: BootWatchOptions) {
    this.version = options.version;
    this.metrics = options.metrics ?? new MetricsRegistry();
    this.events = options.events ?? new EventLog();
    this.leases = options.leases;
    this.macForIp = options.macForIp;
    this.#macByIp = new RecentMap(options.addressLimit ?? 4096);
    this.#m = _register(this.metrics);
    this.#m.buildInfo.set({ version: this.version, deno: Deno.version.deno }, 1);
    this.#m.startTime.set({}, Math.round(performance.timeOrigin) / 1000);
    this.metrics.onCollect(() => this.#collect());
  }

  /** A Logger that logs through `inner` and feeds this watch. */
  logger(inner: Logger): Logger {
    return observeLogger(inner, this.observe);
  }

  /** The observer: updates metrics, then records the boot event the record stands for. */
  readonly observe = (r: LogRecord): void => {
    const m = this.#m;
    if (r.level === "warn" || r.level === "error") {
      m.logMessages.inc({ subsystem: r.subsystem, level: r.level });
    }
    const f = r.fields;
    switch (r.subsystem) {
      case "dhcp":
        this.#dhcp(r);
        break;
      case "tftp":
        if (r.message === "transfer done") {
          m.tftpTransfers.inc({ result: "done" });
          m.tftpBytes.inc({}, _num(f.bytes));
          m.tftpRetransmits.inc({}, _num(f.retransmits));
          m.tftpDuration.observe({}, _num(f.ms) / 1000);
        } else if (r.message === "transfer failed") {
          m.tftpTransfers.inc({ result: "failed" });
          m.tftpBytes.inc({}, _num(f.bytes));
          m.tftpRetransmits.inc({}, _num(f.retransmits));
        } else if (r.message === "request refused") {
          m.tftpTransfers.inc({ result: "refused" });
        }
        break;
      case "http":
        if (r.message === "request") {
          const route = httpRouteClass(_str(f.path));
          m.httpRequests.inc({ route, status: _num(f.status) });
          m.httpBytes.inc({ route }, _num(f.bytes));
          // Only a boot script names the asking machine; a person may ask /api/events?mac=….
          const mac = route === "script" ? _macOfPath(_str(f.path)) : null;
          const ip = clientAddress(f.client);
          if (mac && ip) this.#learn(ip, mac);
        }
        break;
      case "ipfs":
        this.#ipfs(r);
        break;
    }
    const input = eventOfRecord(r);
    if (!input) return;
    if (input.mac === null && input.ip !== null) input.mac = this.#resolve(input.ip);
    // Installer records name the machine but not always where it asks from.
    if (input.ip === null && input.mac !== null) {
      input.ip = this.events.current(input.mac)?.ip ?? null;
    }
    if (r.subsystem === "http" && input.mac !== null && this.#toldByHandler(input.mac, r)) return;
    m.events.inc({ stage: input.stage });
    this.events.push(input);
  };

  #dhcp(r: LogRecord): void {
    const word = r.message.split(" ", 1)[0]!;
    const reply = _DHCP_REPLIES[word];
    if (reply) {
      this.#m.dhcpReplies.inc({ type: reply.type, client: dhcpClientLabel(r.fields.client) });
      const mac = _mac(r.fields.mac);
      if (word === "DHCPACK" && mac && typeof r.fields.ip === "string") {
        this.#learn(r.fields.ip, mac);
      }
    } else if (_DHCP_CLIENT_MESSAGES[word]) {
      this.#m.dhcpClientMessages.inc({ type: _DHCP_CLIENT_MESSAGES[word]!.type });
    } else if (r.message === "ignored") {
      this.#m.dhcpIgnored.inc();
    }
  }

  #ipfs(r: LogRecord): void {
    const m = this.#m;
    const f = r.fields;
    if (r.message === "file cached") {
      m.ipfsFiles.inc({ result: "cached" });
      m.ipfsBytes.inc({}, _num(f.bytes));
      m.ipfsBlocks.inc({}, _num(f.blocks));
    } else if (r.message === "file download failed, nothing cached") {
      m.ipfsFiles.inc({ result: "failed" });
    } else if (r.message === "gateway failed") {
      // A block that does not hash to its CID is the gateway lying, not the network failing.
      const rejected = /failed verification|over the .*limit/.test(_str(f.error));
      m.ipfsGatewayFailures.inc({ kind: rejected ? "rejected" : "error" });
    } else if (r.message === "gateway does not have block") {
      m.ipfsGatewayFailures.inc({ kind: "not_found" });
    }
  }

  /**
   * Whether the handler of this request already logged a more telling step for the machine
   * (an installed machine's /boot.ipxe logs "installed: booting the local disk"): the access
   * log line comes after the handler's own, and "script" would hide it.
   */
  #toldByHandler(mac: string, r: LogRecord): boolean {
    const current = this.events.current(mac);
    if (!current || !_HANDLER_STAGES.has(current.stage)) return false;
    // Clocks: Date.now() in ms for the records, the request's own duration rounded to 0.1 ms.
    return current.time >= r.time - _num(r.fields.ms) - 5;
  }

  #learn(ip: string, mac: string): void {
    this.#macByIp.set(ip, mac);
  }

  #resolve(ip: string): string | null {
    const known = this.#macByIp.get(ip);
    if (known) return known;
    try {
      const mac = this.macForIp?.(ip);
      return _mac(mac);
    } catch {
      return null;
    }
  }

  /** Bound leases now, or null when there is no lease table (proxy mode, DHCP off). */
  leasesBound(): number | null {
    const list = this.leases?.();
    return list ? list.filter((l) => l.state === "bound").length : null;
  }

  #collect(): void {
    const m = this.#m;
    m.uptime.set({}, Math.round(performance.now()) / 1000);
    const mem = Deno.memoryUsage();
    m.rss.set({}, mem.rss);
    m.heap.set({}, mem.heapUsed);
    m.sseClients.set({}, this.events.subscribers);
    m.eventsKept.set({}, Math.min(this.events.last, this.events.capacity));
    m.droppedSeries.set({}, this.metrics.dropped);
    const list = this.leases?.();
    m.leases.reset();
    if (list) {
      for (const state of _LEASE_STATES) {
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
  close(): void {
    this.events.close();
  }
}

/** TFTP transfer durations in seconds: a first-stage loader takes ~0.1–2 s, a kernel more. */
const _TFTP_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

function _register(r: MetricsRegistry) {
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
    startTime: gauge("process_start_time_seconds", "Start of the process, seconds since 1970."),
    uptime: gauge("uptime_seconds", "Seconds since the process started."),
    rss: gauge("process_resident_memory_bytes", "Resident set size of the process."),
    heap: gauge("process_heap_used_bytes", "JavaScript heap in use."),
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
    leases: gauge("dhcp_leases", "Lease table rows by state, read at scrape time.", ["state"]),
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
      _TFTP_BUCKETS,
    ),
    httpRequests: counter(
      "http_requests_total",
      "HTTP requests by route class (script, image, loader, config, api, watch, other) and status.",
      ["route", "status"],
    ),
    httpBytes: counter("http_response_bytes_total", "HTTP body bytes sent, by route class.", [
      "route",
    ]),
    ipfsFiles: counter(
      "ipfs_files_total",
      "Files downloaded from IPFS into the cache, by result.",
      [
        "result",
      ],
    ),
    ipfsBytes: counter("ipfs_cached_bytes_total", "Bytes of files downloaded into the cache."),
    ipfsBlocks: counter("ipfs_blocks_verified_total", "Blocks fetched and hash-verified."),
    ipfsGatewayFailures: counter(
      "ipfs_gateway_failures_total",
      "Gateway requests that failed: error, not_found, or rejected (a block failed verification).",
      ["kind"],
    ),
    events: counter("boot_events_total", "Boot events by stage.", ["stage"]),
    eventsKept: gauge("boot_events_kept", "Boot events held for /api/events."),
    sseClients: gauge("event_stream_clients", "Open /api/events/stream connections."),
    droppedSeries: gauge(
      "metrics_dropped_series",
      "Label combinations refused because a metric had too many already.",
    ),
  };
}
