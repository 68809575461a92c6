/**
 * The HTTP side of booting (Hono): iPXE entry script and menu, per-OS start scripts,
 * install configs rendered from templates, and tree files (kernels, initrds, loaders)
 * streamed with Range and ETag support.
 *
 * | route | answers |
 * |---|---|
 * | `GET /boot.ipxe?mac=M` | the configured or sticky OS (chain to its start script), else the menu; without `mac`: a script that asks again with it |
 * | `GET /menu.ipxe?mac=M`, `GET /choose` | the OS menu, even for a machine with a sticky choice |
 * | `GET /choose/:os/:mac` | makes `os` the sticky choice of `mac`, then its start script |
 * | `GET /choose/:os/:class/:mac` | the same with a class of the OS (`[classes.<class>]`) |
 * | `GET /boot/:os/:mac` | the start script: `boot/<os>/template/start.vto`, else built from os.toml |
 * | `GET /image/:os/*` | `boot/<os>/images/*` |
 * | `GET /action/:os/:name`, `GET /config/:os/:name` | `boot/<os>/template/<name>.vto` rendered for the asking machine |
 * | `GET /tftp/*` | first-stage loaders, for UEFI HTTP boot |
 * | `/api/*` | the machine API (boot/api.ts), when `api` is given |
 *
 * With `installers` (boot/installers.ts), `/config` and `/action` render through it (class
 * templates, shipped defaults, install state), and an installed machine's `/boot.ipxe` boots
 * its local disk.
 *
 * There is deliberately no route for arbitrary tree paths: templates (preseeds with
 * password hashes, keys) are meant to be rendered per machine, never served raw.
 *
 * MACs are accepted as `52:54:00:12:34:56`, `52-54-00-12-34-56` or bare hex.
 *
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { ContentError, type ContentStore, normalizeTreePath } from "../content/store.ts";
import { normalizeMac } from "../app/config.ts";
import { serveTreeFile, statusForContentError } from "./files.ts";
import type { MachineStore } from "../state/machines.ts";
import { buildMenu, decideEntry, macForUrl } from "../boot/menu.ts";
import { scriptHistory } from "./api_routes.ts";
import { InstallerError, type Installers } from "../boot/installers.ts";
import { OS_NAME, type OsCatalog, type OsEntry } from "../boot/catalog.ts";
import {
  TEMPLATE_NAME,
  TemplateNotFoundError,
  type TemplateRenderer,
  TemplateRenderError,
} from "../boot/templates.ts";
import { type Logger, silentLogger } from "../log.ts";

/** A `[[machine]]` entry as the HTTP side uses it (the config's entries fit). */
export interface HttpMachineConfig {
  mac: string;
  hostname?: string;
  ip?: string;
  os?: string;
  class?: string;
  vars?: Record<string, unknown>;
}

/** The settings the HTTP side needs, as plain values. */
export interface HttpBootConfig {
  /** This server's address on the boot network (`server` in templates). */
  serverIp: string;
  /** Base URL clients reach this server at, no trailing slash (`http` in templates). */
  baseUrl: string;
  /** `[boot] default`: the OS the menu boots after the timeout. */
  defaultOs?: string;
  /** `[boot] menu_timeout` in seconds; default 10. */
  menuTimeout?: number;
  /** `[[machine]]` entries. */
  machines?: readonly HttpMachineConfig[];
  /** What templates see as `config` (domain, dns, router …). */
  templateConfig?: Record<string, unknown>;
}

/** Options for {@linkcode createHttpApp}. */
export interface HttpAppOptions {
  store: ContentStore;
  catalog: OsCatalog;
  templates: TemplateRenderer;
  machines: MachineStore;
  config: HttpBootConfig;
  logger?: Logger;
  /** The MAC behind a client address, for requests without one (installers fetching a
   * preseed); default: the machine that last fetched a script from that address. */
  macForIp?: (ip: string) => string | null;
  /** Install configs, local-disk boot and script history (boot/installers.ts). */
  installers?: Installers;
  /** The machine API (boot/api.ts `createApiApp`), mounted at `/api`. */
  api?: Hono<Env>;
}

/** What `serveHttp` passes as Hono's env: Deno's connection info. */
type Env = { Bindings: { remoteAddr?: { hostname?: string } } };

const _TEXT = { "Content-Type": "text/plain; charset=utf-8" };

/** The client's address as Deno reports it, or "-" (app.request in tests). */
function _client(c: Context<Env>): string {
  return c.env?.remoteAddr?.hostname ?? "-";
}

/** Logs one line per request once the handler has answered (bytes: the Content-Length). */
export function accessLog(logger: Logger): MiddlewareHandler<Env> {
  return async function accessLog(c, next) {
    const t0 = performance.now();
    await next();
    const url = new URL(c.req.url);
    logger.info("http", "request", {
      method: c.req.method,
      path: url.pathname + url.search,
      status: c.res.status,
      bytes: c.req.method === "HEAD" ? 0 : Number(c.res.headers.get("Content-Length") ?? 0),
      ms: Math.round((performance.now() - t0) * 10) / 10,
      client: _client(c),
    });
  };
}

function _mac(text: string): string {
  const mac = normalizeMac(text);
  if (mac === null) throw new HTTPException(400, { message: `not a MAC address: ${text}` });
  return mac;
}

function _osName(name: string): string {
  if (!OS_NAME.test(name)) throw new HTTPException(400, { message: `not an OS name: ${name}` });
  return name;
}

/** The rest of the raw URL path after `skip` segments, percent-decoded and made safe. */
function _rest(c: Context, skip: number): string {
  const raw = new URL(c.req.url).pathname.split("/").slice(1 + skip);
  let decoded: string;
  try {
    decoded = raw.map(decodeURIComponent).join("/");
  } catch {
    throw new HTTPException(400, { message: "bad percent-encoding in path" });
  }
  const path = normalizeTreePath(decoded);
  if (path === null) throw new HTTPException(400, { message: "unsafe or empty path" });
  return path;
}

/** A URL path segment by segment: tree names may hold spaces or `#`. */
function _urlPath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

const _encoder = new TextEncoder();

/** A text answer with its length set, so the access log can tell the bytes. */
function _script(
  c: Context,
  body: string,
  status: 200 | 400 | 403 | 404 | 416 | 500 | 503 = 200,
): Response {
  const bytes = _encoder.encode(body);
  // Scripts are per machine and per moment (a sticky choice changes them): never cache.
  return c.body(bytes, status, {
    ..._TEXT,
    "Content-Length": String(bytes.length),
    "Cache-Control": "no-store",
  });
}

/** Builds the Hono app; see the module doc for the routes. */
export function createHttpApp(options: HttpAppOptions): Hono<Env> {
  const { store, catalog, templates, machines, config } = options;
  const logger = options.logger ?? silentLogger;
  const base = config.baseUrl.replace(/\/+$/, "");
  const configured = new Map<string, HttpMachineConfig>();
  for (const m of config.machines ?? []) {
    const mac = normalizeMac(m.mac);
    if (mac) configured.set(mac, m);
  }
  const macForIp = options.macForIp ?? ((ip: string) => machines.findByIp(ip)?.mac ?? null);

  /** The template variables every script shares; see templates.ts for strictness. */
  function machineData(mac: string, ip: string): Record<string, unknown> {
    const conf = configured.get(mac);
    const rec = machines.get(mac);
    const hostname = conf?.hostname ?? rec?.hostname ?? `node-${mac.replaceAll(":", "")}`;
    return {
      server: config.serverIp,
      http: base,
      mac,
      mac_url: macForUrl(mac),
      ip,
      hostname,
      config: config.templateConfig ?? {},
      machine: {
        mac,
        hostname,
        ip: conf?.ip ?? ip,
        os: conf?.os ?? rec?.os ?? null,
        class: conf?.class ?? rec?.class ?? null,
        vars: conf?.vars ?? {},
      },
    };
  }

  /** Remembers where `mac` asks from, for installers that later ask without a MAC. */
  function seen(c: Context<Env>, mac: string): void {
    const ip = _client(c);
    machines.seen(mac, ip === "-" ? undefined : ip);
  }

  async function osEntry(name: string): Promise<OsEntry> {
    const entry = await catalog.get(_osName(name));
    if (!entry) throw new HTTPException(404, { message: `no OS ${name} in the tree` });
    return entry;
  }

  async function startScript(c: Context<Env>, entry: OsEntry, mac: string): Promise<Response> {
    seen(c, mac);
    const data = machineData(mac, _client(c));
    const imageUrl = (p: string) => `${base}/image/${entry.name}/${_urlPath(p)}`;
    const osInfo: Record<string, unknown> = {
      name: entry.name,
      title: entry.title,
      kernel: entry.kernel,
      initrd: entry.initrd,
      initrd_names: entry.initrd.map((p) => p.slice(p.lastIndexOf("/") + 1)),
      initrd_urls: entry.initrd.map(imageUrl),
      classes: entry.classes,
      vars: entry.vars ?? {},
    };
    // Without a kernel only the OS's own start.vto can boot it; the default then fails
    // with a clear "os_info.kernel_url is not defined".
    if (entry.kernel !== null) osInfo.kernel_url = imageUrl(entry.kernel);
    const cmdData = { ...data, os: entry.name, os_info: osInfo };
    osInfo.cmdline = entry.cmdline
      ? await templates.renderString(`${entry.source}#cmdline`, entry.cmdline, cmdData)
      : "";
    return _script(c, await templates.render("start", cmdData, entry.name));
  }

  async function menu(c: Context<Env>, mac: string | null): Promise<Response> {
    const entries = await catalog.entries();
    const model = buildMenu({
      entries,
      problems: catalog.problems,
      defaultOs: config.defaultOs,
      timeoutSeconds: config.menuTimeout ?? 10,
      mac,
      hasBootTree: (await store.stat("boot"))?.kind === "dir",
    });
    const data = mac ? machineData(mac, _client(c)) : {
      server: config.serverIp,
      http: base,
      mac: "",
      ip: _client(c),
      config: config.templateConfig ?? {},
    };
    return _script(c, await templates.render("menu", { ...data, menu: model }));
  }

  function queryMac(c: Context): string | null {
    const q = c.req.query("mac");
    return q ? _mac(q) : null;
  }

  /** A config rendered by the installers: class templates, defaults, install state. */
  async function installerConfig(
    c: Context<Env>,
    installers: Installers,
    os: string,
    name: string,
  ) {
    if (!TEMPLATE_NAME.test(name)) {
      throw new HTTPException(400, { message: `not a template name: ${name}` });
    }
    const ip = _client(c);
    try {
      const out = await installers.render({
        os: _osName(os),
        name,
        mac: queryMac(c),
        ip: ip === "-" ? undefined : ip,
      });
      return c.body(out.body, 200, {
        "Content-Type": out.contentType,
        "Cache-Control": "no-store",
      });
    } catch (err) {
      if (err instanceof InstallerError) {
        throw new HTTPException(err.status, { message: err.message });
      }
      throw err;
    }
  }

  async function rendered(c: Context<Env>, osName: string, name: string): Promise<Response> {
    if (options.installers) return await installerConfig(c, options.installers, osName, name);
    const entry = await osEntry(osName);
    if (!TEMPLATE_NAME.test(name)) {
      throw new HTTPException(400, { message: `not a template name: ${name}` });
    }
    if ((await store.stat(`boot/${entry.name}/template/${name}.vto`))?.kind !== "file") {
      throw new HTTPException(404, { message: `no template ${name} for ${entry.name}` });
    }
    const ip = _client(c);
    const mac = queryMac(c) ?? macForIp(ip);
    if (mac === null) {
      throw new HTTPException(404, {
        message: `no machine known at ${ip}: boot it through /boot.ipxe first or add ?mac=`,
      });
    }
    const data = { ...machineData(mac, ip), os: entry.name };
    return _script(c, await templates.render(name, data, entry.name));
  }

  async function treeFile(c: Context<Env>, path: string): Promise<Response> {
    const res = await serveTreeFile(c.req.raw, store, path);
    if (!res) throw new HTTPException(404, { message: `${path} not found` });
    return res;
  }

  const app = new Hono<Env>();
  app.use(accessLog(logger));
  if (options.installers) app.use(scriptHistory(options.installers.registry));
  if (options.api) app.route("/api", options.api);

  app.get("/boot.ipxe", async (c) => {
    const mac = queryMac(c);
    if (mac === null) {
      return _script(c, await templates.render("chain", { http: base, server: config.serverIp }));
    }
    seen(c, mac);
    const local = await options.installers?.localBoot(mac, _client(c));
    if (local) return _script(c, local);
    const known = new Set((await catalog.entries()).map((e) => e.name));
    const decision = decideEntry({
      configuredOs: configured.get(mac)?.os,
      chosenOs: machines.getChoice(mac)?.os,
      known,
    });
    if (decision.kind === "menu") {
      if (decision.note) logger.warn("http", "showing the menu", { mac, why: decision.note });
      return await menu(c, mac);
    }
    const data = { ...machineData(mac, _client(c)), os: decision.os, reason: decision.reason };
    return _script(c, await templates.render("sticky", data));
  });

  app.get("/menu.ipxe", (c) => menu(c, queryMac(c)));
  app.get("/choose", (c) => menu(c, queryMac(c)));

  async function choose(c: Context<Env>, cls: string | null): Promise<Response> {
    const entry = await osEntry(c.req.param("os")!);
    if (cls !== null && !entry.classes.some((k) => k.name === cls)) {
      throw new HTTPException(404, { message: `no class ${cls} for ${entry.name}` });
    }
    const mac = _mac(c.req.param("mac")!);
    // HEAD must not change anything; iPXE only ever sends GET here.
    if (c.req.method !== "HEAD") {
      if (options.installers) options.installers.choose(mac, entry.name, cls, _client(c));
      else machines.setChoice(mac, entry.name, cls);
      logger.info("http", "sticky choice", { mac, os: entry.name, class: cls ?? "" });
    }
    return await startScript(c, entry, mac);
  }

  app.get("/choose/:os/:mac", (c) => choose(c, null));
  app.get("/choose/:os/:class/:mac", (c) => choose(c, c.req.param("class")));

  app.get("/boot/:os/:mac", async (c) => {
    const entry = await osEntry(c.req.param("os"));
    return await startScript(c, entry, _mac(c.req.param("mac")));
  });

  app.get("/image/:os/*", (c) => {
    const os = _osName(c.req.param("os"));
    return treeFile(c, `boot/${os}/images/${_rest(c, 2)}`);
  });

  app.get("/tftp/*", (c) => treeFile(c, `tftp/${_rest(c, 1)}`));

  app.get("/action/:os/:name", (c) => rendered(c, c.req.param("os"), c.req.param("name")));
  app.get("/config/:os/:name", (c) => rendered(c, c.req.param("os"), c.req.param("name")));

  app.notFound((c) => _script(c, "not found\n", 404));

  app.onError((err, c) => {
    let status: 400 | 403 | 404 | 416 | 500 | 503 = 500;
    let message = err.message;
    if (err instanceof HTTPException) {
      status = err.status as typeof status;
    } else if (err instanceof ContentError) {
      status = statusForContentError(err);
    } else if (err instanceof TemplateNotFoundError) {
      status = 404;
    } else if (err instanceof RangeError) {
      // The file changed size between stat and read.
      status = 416;
    } else if (err instanceof TemplateRenderError) {
      logger.error("http", "template error", { path: c.req.path, error: err.message });
      message = `template error: ${err.message}`;
    } else {
      logger.error("http", "request failed", { path: c.req.path, error: err });
      message = "internal error";
    }
    if (status < 500) logger.debug("http", "refused", { path: c.req.path, status, why: message });
    return _script(c, `${message}\n`, status);
  });

  return app;
}

/** Options for {@linkcode serveHttp}. */
export interface ServeHttpOptions {
  app: Hono<Env>;
  /** Address to listen on ("0.0.0.0" for all). */
  address: string;
  /** Port; 0 picks a free one (tests). */
  port: number;
  logger?: Logger;
  /** Aborting stops the server. */
  signal?: AbortSignal;
}

/** Serves the app with Deno.serve; the returned server has `.addr`, `.shutdown()`, `.finished`. */
export function serveHttp(options: ServeHttpOptions): Deno.HttpServer<Deno.NetAddr> {
  const logger = options.logger ?? silentLogger;
  return Deno.serve({
    hostname: options.address,
    port: options.port,
    signal: options.signal,
    onListen: (addr) =>
      logger.info("http", "listening", { address: addr.hostname, port: addr.port }),
    onError: (err) => {
      logger.error("http", "unhandled error", { error: err });
      return new Response("internal error\n", { status: 500, headers: _TEXT });
    },
  }, (req, info) => options.app.fetch(req, info));
}
