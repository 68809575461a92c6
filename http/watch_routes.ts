/**
 * The watching side of the HTTP server (Hono), mounted beside the boot routes:
 *
 * | route | who | answers |
 * |---|---|---|
 * | `GET /metrics` | anyone | Prometheus text format 0.0.4: counts, no machine's data (observe/watch.ts for the names) |
 * | `GET /api/events?since=N&limit=L&mac=M` | admin | boot events after sequence number N, as JSON |
 * | `GET /api/events/stream?since=N` | admin | the same live, as Server-Sent Events (`id:` = seq; a reconnect's `Last-Event-ID` resumes) |
 * | `GET /api/leases` | admin | the lease table as JSON (empty without one: proxy mode, DHCP off) |
 * | `GET /api/overview` | admin | headline numbers and one row per machine (registry, leases and current stage merged) |
 * | `GET /ui` | anyone | the dashboard page (templates/ui), with its script and style under `/ui/`; it asks for the admin token and sends it with every request |
 *
 * Everything a client sent (host names in leases, installer reports) reaches the page as
 * JSON and is put into the page as text, never as markup; the page's Content-Security-Policy
 * allows only same-origin scripts, styles and connections.
 *
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { EventLog, MachineStage, WatchEvent } from "../observe/events.ts";
import { PROMETHEUS_CONTENT_TYPE } from "../observe/metrics.ts";
import type { BootWatch, Headline, LeaseLike } from "../observe/watch.ts";
import { parseMac } from "../net/mac.ts";
import type { Inventory } from "../state/inventory.ts";
import { type Env, tell } from "./context.ts";
import { adminOnly } from "./auth.ts";
import { UI_FILES } from "../templates/ui/embedded.ts";

/** A machine as the registry lists it (state/machines.ts `Machine` fits). */
export interface WatchMachine {
  mac: string;
  hostname?: string | null;
  ip?: string | null;
  os?: string | null;
  class?: string | null;
  /** Install state: new, chosen, installing, installed. */
  state?: string | null;
  last_seen?: number | null;
  /** What it reported about itself (state/inventory.ts), cleaned. */
  inventory?: Inventory | null;
}

/** One row of the dashboard's machine table. */
export interface MachineRow {
  /** Null for an address whose MAC is unknown (a TFTP client of before a restart). */
  mac: string | null;
  ip: string | null;
  hostname: string | null;
  os: string | null;
  class: string | null;
  /** Install state from the registry, or null when the registry does not know it. */
  state: string | null;
  /** State of its lease (bound, offered, expired …), or null. */
  lease: string | null;
  /** The current boot stage and its detail, or null before the first event of this run. */
  stage: string | null;
  detail: string | null;
  /** Newest of the registry's last_seen and the current stage's time (ms), or null. */
  last_seen: number | null;
  /** What it reported (UUID, serial, vendor …), or null when the registry does not know it. */
  inventory: Inventory | null;
}

/** The body of `GET /api/overview`. */
export interface Overview {
  version: string;
  headline: Headline;
  machines: MachineRow[];
}

/** Options for {@linkcode watchRoutes}. */
export interface WatchAppOptions {
  watch: BootWatch;
  /** The admin token: every route but `/metrics` and the page itself needs it. */
  adminToken: string;
  /** The machine registry's list (config and wire); default none. */
  machines?: () => readonly WatchMachine[];
  /** Seconds between SSE keep-alive comments; default 15. */
  keepAliveSeconds?: number;
  /** Most open event streams at once; default 32. */
  maxStreams?: number;
}

const LEASE_RANK: Record<string, number> = { bound: 0, offered: 1, reserved: 2 };

/** The lease that says most about a machine: bound, then offered, then the newest. */
function bestLease(a: LeaseLike | undefined, b: LeaseLike): LeaseLike {
  if (!a) return b;
  const ra = LEASE_RANK[a.state] ?? 3, rb = LEASE_RANK[b.state] ?? 3;
  if (ra !== rb) return ra < rb ? a : b;
  return (b.expires ?? 0) > (a.expires ?? 0) ? b : a;
}

/** Merges registry, lease table and current stages into one row per machine, newest first. */
export function machineRows(
  machines: readonly WatchMachine[],
  leases: readonly LeaseLike[],
  stages: readonly MachineStage[],
): MachineRow[] {
  const rows = new Map<string, MachineRow>();
  const row = (mac: string | null, ip: string | null): MachineRow => {
    const key = mac ?? `ip:${ip}`;
    let r = rows.get(key);
    if (!r) {
      r = {
        mac,
        ip,
        hostname: null,
        os: null,
        class: null,
        state: null,
        lease: null,
        stage: null,
        detail: null,
        last_seen: null,
        inventory: null,
      };
      rows.set(key, r);
    }
    return r;
  };
  for (const m of machines) {
    const r = row(parseMac(m.mac) ?? m.mac, m.ip ?? null);
    r.hostname = m.hostname ?? null;
    r.os = m.os ?? null;
    r.class = m.class ?? null;
    r.state = m.state ?? null;
    r.last_seen = m.last_seen ?? null;
    r.inventory = m.inventory ?? null;
  }
  const best = new Map<string, LeaseLike>();
  for (const l of leases) best.set(l.mac, bestLease(best.get(l.mac), l));
  for (const [mac, l] of best) {
    const r = row(mac, l.ip);
    r.lease = l.state;
    // The address it holds now beats the one it last asked from.
    if (l.state === "bound" || l.state === "offered" || r.ip === null) r.ip = l.ip;
    r.hostname ??= l.hostname ?? null;
  }
  for (const s of stages) {
    const r = row(s.mac, s.ip);
    r.stage = s.stage;
    r.detail = s.detail;
    if (s.ip) r.ip = s.ip;
    r.last_seen = Math.max(r.last_seen ?? 0, s.time);
  }
  return [...rows.values()].sort((a, b) =>
    (b.last_seen ?? 0) - (a.last_seen ?? 0) ||
    String(a.mac ?? a.ip).localeCompare(b.mac ?? b.ip ?? "")
  );
}

/** One event in SSE framing: the seq as `id`, so that a reconnect resumes after it. */
export function sseMessage(event: WatchEvent): string {
  return `id: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`;
}

// Chunks a slow reader may fall behind before its stream is closed; EventSource reconnects
// with Last-Event-ID and gets the missed events from the ring buffer.
const MAX_BACKLOG = 1000;

const encoder = new TextEncoder();

/** A live stream of `log`'s events after `since` (null: only new ones). */
function eventStream(
  log: EventLog,
  since: number | null,
  keepAliveMs: number,
): ReadableStream<Uint8Array> {
  let stop = () => {};
  return new ReadableStream<Uint8Array>({
    start(controller) {
      let open = true;
      const end = () => {
        if (!open) return;
        open = false;
        stop();
        try {
          controller.close();
        } catch { /* cancelled already */ }
      };
      const send = (text: string) => {
        if (!open) return;
        if ((controller.desiredSize ?? 0) < -MAX_BACKLOG) return end();
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          end();
        }
      };
      // `retry` makes browsers come back after 3 s when the server restarts.
      send(`retry: 3000\n: astralboot boot events\n\n`);
      if (since !== null) { for (const e of log.since(since).events) send(sseMessage(e)); }
      const timer = setInterval(() => send(": keep-alive\n\n"), keepAliveMs);
      const unsubscribe = log.subscribe((e) => e === null ? end() : send(sseMessage(e)));
      stop = () => {
        clearInterval(timer);
        unsubscribe();
      };
      // The log may have closed before `stop` existed.
      if (!open) stop();
    },
    // Deno.serve cancels the body when the client goes (request.signal is no use here: it
    // also aborts once a response is complete).
    cancel() {
      stop();
    },
  });
}

/** A whole number from a query parameter or header: null when absent, a 400 when malformed. */
function int(
  c: Context,
  text: string | undefined,
  what: string,
  max = Number.MAX_SAFE_INTEGER,
): number | null | Response {
  if (text === undefined || text === "") return null;
  if (!/^\d{1,16}$/.test(text) || Number(text) > max) {
    return c.json({ error: `${what} must be a whole number from 0 to ${max}, got ${text}` }, 400);
  }
  return Number(text);
}

const UI_HEADERS = {
  "Cache-Control": "no-cache",
  "X-Content-Type-Options": "nosniff",
  "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; " +
    "frame-ancestors 'none'",
};

/** Builds the watch sub-app; mount it at `/` of the HTTP app. */
export function watchRoutes(options: WatchAppOptions): Hono<Env> {
  const { watch } = options;
  const log = watch.events;
  const keepAliveMs = (options.keepAliveSeconds ?? 15) * 1000;
  const maxStreams = options.maxStreams ?? 32;
  const app = new Hono<Env>();
  // The route class is told first, so that refused requests are counted as watch requests.
  const watched: MiddlewareHandler<Env> = async (c, next) => {
    tell(c, "watch");
    await next();
  };
  const admin = adminOnly(options.adminToken);

  app.get("/metrics", (c) => {
    tell(c, "watch");
    const body = encoder.encode(watch.metrics.render());
    return c.body(body, 200, {
      "Content-Type": PROMETHEUS_CONTENT_TYPE,
      "Content-Length": String(body.length),
      "Cache-Control": "no-store",
    });
  });

  app.get("/api/events", watched, admin, (c) => {
    tell(c, "watch");
    const since = int(c, c.req.query("since"), "since");
    if (since instanceof Response) return since;
    const limit = int(c, c.req.query("limit"), "limit", log.capacity);
    if (limit instanceof Response) return limit;
    const macText = c.req.query("mac");
    const mac = macText ? parseMac(macText) : null;
    if (macText && !mac) return c.json({ error: `not a MAC address: ${macText}` }, 400);
    const most = Math.max(1, limit ?? log.capacity);
    const page = log.since(since ?? 0, mac ? log.capacity : most);
    if (mac) {
      const mine = page.events.filter((e) => e.mac === mac);
      page.events = mine.slice(0, most);
      // Cut short: the next page starts after the last one returned, not after the newest.
      if (mine.length > most) page.last = page.events.at(-1)!.seq;
    }
    return c.json(page, 200, { "Cache-Control": "no-store" });
  });

  app.get("/api/events/stream", watched, admin, (c) => {
    tell(c, "watch");
    if (log.closed) return c.json({ error: "server is stopping" }, 503);
    if (log.subscribers >= maxStreams) {
      return c.json({ error: `too many event streams (${maxStreams}); close one` }, 503);
    }
    // A reconnecting EventSource sends the last id it saw; it wins over the first URL's since.
    const since = int(c, c.req.header("Last-Event-ID"), "Last-Event-ID") ??
      int(c, c.req.query("since"), "since");
    if (since instanceof Response) return since;
    return new Response(eventStream(log, since, keepAliveMs), {
      headers: {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-store",
        // A reverse proxy (nginx) must pass events on as they come.
        "X-Accel-Buffering": "no",
      },
    });
  });

  app.get("/api/leases", watched, admin, (c) => {
    tell(c, "watch");
    return c.json(watch.leases?.() ?? [], 200, { "Cache-Control": "no-store" });
  });

  app.get("/api/overview", watched, admin, (c) => {
    tell(c, "watch");
    const body: Overview = {
      version: watch.version,
      headline: watch.headline(),
      machines: machineRows(options.machines?.() ?? [], watch.leases?.() ?? [], log.stages()),
    };
    return c.json(body, 200, { "Cache-Control": "no-store" });
  });

  const files = new Map(
    Object.entries(UI_FILES).map(([name, f]) => [name, { ...f, bytes: encoder.encode(f.body) }]),
  );
  // Content-Length so that the access log (and the bytes metric) see the size.
  const file = (c: Context<Env>, name: keyof typeof UI_FILES) => {
    tell(c, "watch");
    const f = files.get(name)!;
    return c.body(f.bytes, 200, {
      ...UI_HEADERS,
      "Content-Type": f.type,
      "Content-Length": String(f.bytes.length),
    });
  };
  app.get("/ui", (c) => file(c, "dashboard.html"));
  app.get("/ui/", (c) => file(c, "dashboard.html"));
  app.get("/ui/dashboard.js", (c) => file(c, "dashboard.js"));
  app.get("/ui/dashboard.css", (c) => file(c, "dashboard.css"));

  return app;
}
