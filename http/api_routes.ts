/**
 * The machine API (Hono), mounted by the HTTP app under `/api`:
 *
 * | route | does |
 * |---|---|
 * | `GET /machines` | every machine (config and wire) as JSON |
 * | `GET /machines/:mac` | one machine with its boot history |
 * | `POST /machines/:mac/installed`, `GET …` | the installer's last step: boot from disk from now on |
 * | `POST /machines/:mac/reinstall` | install again on the next boot |
 * | `POST /machines/:mac/progress?step=…`, `GET …` | an installer reports a step (kept in the history) |
 *
 * `installed` and `progress` answer GET too because some installers can only fetch (d-i's
 * busybox wget in a preseed late_command). `reinstall` is POST only, so that no crawler or
 * prefetching browser reinstalls a machine. MACs as in the other routes: `52:54:00:…`,
 * `52-54-00-…` or bare hex. There is no authentication: like DHCP and TFTP, this API is for
 * the boot network only.
 *
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { type Machine, MachineError, type MachineRegistry } from "../state/machine_registry.ts";
import { type Logger, silentLogger } from "../log.ts";

/** Options for {@linkcode createApiApp}. */
export interface ApiOptions {
  registry: MachineRegistry;
  logger?: Logger;
}

/** What Deno.serve passes as Hono's env (as in http.ts). */
type Env = { Bindings: { remoteAddr?: { hostname?: string } } };

// Longest history line kept from a progress report; the rest is cut.
const _MAX_REPORT = 300;

function _client(c: Context<Env>): string | undefined {
  return c.env?.remoteAddr?.hostname;
}

/** Query parameters of a progress report as one printable line. */
function _report(c: Context<Env>): string {
  const params = new URL(c.req.url).searchParams;
  const parts: string[] = [];
  for (const [k, v] of params) {
    // deno-lint-ignore no-control-regex
    parts.push(`${k}=${v}`.replace(/[\x00-\x1f\x7f]/g, "?"));
  }
  return parts.join(" ").slice(0, _MAX_REPORT);
}

// Script routes whose MAC is in the path: /choose/<os>[/<class>]/<mac>, /boot/<os>/<mac>.
const _SCRIPT_PATH = /^\/(?:choose|boot)\/[^/]+(?:\/[^/]+)?\/([^/]+)$/;

/**
 * Middleware for the HTTP app that writes every iPXE script served to a machine into its
 * history: the route and the script's first comment line (each default template starts
 * with one saying what it does).
 */
export function scriptHistory(registry: MachineRegistry): MiddlewareHandler<Env> {
  return async function scriptHistory(c, next) {
    await next();
    if (c.req.method !== "GET" || c.res.status !== 200) return;
    const url = new URL(c.req.url);
    const script = url.pathname.endsWith(".ipxe") || _SCRIPT_PATH.test(url.pathname);
    const mac = url.searchParams.get("mac") ?? _SCRIPT_PATH.exec(url.pathname)?.[1];
    if (!script || !mac) return;
    const text = await c.res.clone().text();
    const what = /^# (.*)$/m.exec(text)?.[1] ?? "script";
    try {
      registry.record(mac, "script", `${url.pathname}: ${what}`.slice(0, _MAX_REPORT), _client(c));
    } catch (err) {
      // The route itself refuses bad MACs; a history line is never worth a failed boot.
      if (!(err instanceof MachineError)) throw err;
    }
  };
}

/** Builds the `/api` sub-app; see the module doc for the routes. */
export function createApiApp(options: ApiOptions): Hono<Env> {
  const { registry } = options;
  const logger = options.logger ?? silentLogger;
  const app = new Hono<Env>();

  /** Runs `act` for a known machine; 400 for a bad MAC, 404 for an unknown one. */
  function withMachine(
    c: Context<Env>,
    act: (m: Machine) => Response | Machine,
  ): Response {
    let machine: Machine | null;
    try {
      machine = registry.get(c.req.param("mac") ?? "");
    } catch (err) {
      if (err instanceof MachineError) return c.json({ error: err.message }, 400);
      throw err;
    }
    if (!machine) {
      return c.json({ error: `unknown machine ${c.req.param("mac")}` }, 404);
    }
    const out = act(machine);
    return out instanceof Response ? out : c.json(out);
  }

  app.get("/machines", (c) => c.json(registry.list()));

  app.get(
    "/machines/:mac",
    (c) => withMachine(c, (m) => c.json({ ...m, history: registry.history(m.mac) })),
  );

  const installed = (c: Context<Env>) =>
    withMachine(c, (m) => {
      const after = registry.installed(m.mac, _client(c));
      logger.info("install", "install finished: next boot from local disk", {
        mac: m.mac,
        hostname: after.hostname,
        os: after.os ?? "",
        client: _client(c) ?? "-",
      });
      return after;
    });
  app.post("/machines/:mac/installed", installed);
  app.get("/machines/:mac/installed", installed);

  app.post("/machines/:mac/reinstall", (c) =>
    withMachine(c, (m) => {
      const after = registry.reinstall(m.mac)!;
      logger.info("install", "reinstall requested", { mac: m.mac, os: after.os ?? "" });
      return after;
    }));

  const progress = (c: Context<Env>) =>
    withMachine(c, (m) => {
      const report = _report(c);
      registry.record(m.mac, "progress", report || "progress", _client(c));
      logger.info("install", "installer progress", {
        mac: m.mac,
        report,
        client: _client(c) ?? "-",
      });
      return c.json({ ok: true });
    });
  app.post("/machines/:mac/progress", progress);
  app.get("/machines/:mac/progress", progress);

  return app;
}
