/**
 * The machine API (Hono), mounted by the HTTP app under `/api`:
 *
 * | route | who | does |
 * |---|---|---|
 * | `GET /machines` | admin | every machine (config and wire), without the values of its vars |
 * | `GET /machines/:mac` | admin | one machine with its boot history |
 * | `POST /machines/:mac/reinstall` | admin | install again on the next boot |
 * | `POST /machines/:mac/installed/:token`, `GET …` | the installer, with its install's token | the last step: boot from disk from now on |
 * | `POST /machines/:mac/progress/:token?step=…`, `GET …` | the installer, with its token | a step, kept in the history |
 * | `POST /machines/:mac/installed`, `…/progress`, `GET …` | admin | the same without a token |
 * | `HEAD` of `installed` and `progress` | as their GET | whether the callback would be taken; nothing changes |
 *
 * `installed` and `progress` answer GET too because some installers can only fetch (d-i's
 * busybox wget in a preseed late_command). The token (`boot/callback_tokens.ts`) is rendered
 * into the installer's config, which only the machine itself can fetch; it is valid for the
 * current install only, and the callback itself retires it. `reinstall` is POST only and an
 * admin's: nothing on the boot network can make an installed machine install again.
 *
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import type { Logger } from "../log.ts";
import type { Machine, MachineRegistry } from "../state/machines.ts";
import type { BootHistory } from "../state/history.ts";
import { isCallbackToken } from "../boot/callback_tokens.ts";
import { adminOnly, crossOrigin, hasToken } from "./auth.ts";
import { clientOf, type Env, macParam, tell } from "./context.ts";

/** Options for {@linkcode apiRoutes}. */
export interface ApiOptions {
  registry: MachineRegistry;
  history: BootHistory;
  logger: Logger;
  /** The admin token. */
  adminToken: string;
  /** The key of the callback tokens. */
  secret: Uint8Array;
}

/**
 * A machine as the API shows it: the names of its vars, never their values (password hashes,
 * keys), and nothing of its callback tokens.
 */
export function publicMachine(m: Machine): Record<string, unknown> {
  const { vars, install_gen: _gen, ...rest } = m;
  return { ...rest, var_names: Object.keys(vars).sort() };
}

// Longest history line kept from a progress report; the rest is cut.
const MAX_REPORT = 300;

/** Query parameters of a progress report as one printable line. */
function progressReport(c: Context<Env>): string {
  const params = new URL(c.req.url).searchParams;
  const parts: string[] = [];
  for (const [k, v] of params) {
    // deno-lint-ignore no-control-regex
    parts.push(`${k}=${v}`.replace(/[\x00-\x1f\x7f]/g, "?"));
  }
  return parts.join(" ").slice(0, MAX_REPORT);
}

/** The `/api` routes of the module doc. */
export function apiRoutes(options: ApiOptions): Hono<Env> {
  const { registry, history, logger, secret } = options;
  const app = new Hono<Env>();
  const admin = adminOnly(options.adminToken);
  const api: MiddlewareHandler<Env> = async (c, next) => {
    tell(c, "api");
    await next();
  };
  app.use(api);

  /** The machine the path names; 400 for a bad MAC, 404 for an unknown one. */
  function machineOf(c: Context<Env>): Machine | Response {
    const mac = macParam(c.req.param("mac") ?? "");
    // As the database has it now: a callback's token may have been retired a moment ago.
    const machine = registry.fresh(mac);
    if (!machine) return c.json({ error: `unknown machine ${c.req.param("mac")}` }, 404);
    return machine;
  }

  /** The machine of an installer's callback: with its install's token, or the admin's. */
  function callbackMachine(c: Context<Env>): Machine | Response {
    const m = machineOf(c);
    if (m instanceof Response) return m;
    const token = c.req.param("token");
    if (token === undefined) {
      if (!crossOrigin(c) && hasToken(c, options.adminToken)) return m;
      return c.json({ error: "needs the install token of the callback URL in its config" }, 403);
    }
    if (!isCallbackToken(secret, m.mac, m.install_gen, token)) {
      return c.json({
        error: `not the token of ${m.mac}'s current install (an earlier one, or already used)`,
      }, 403);
    }
    return m;
  }

  app.get("/machines", admin, (c) => c.json(registry.list().map(publicMachine)));

  app.get("/machines/:mac", admin, (c) => {
    const m = machineOf(c);
    if (m instanceof Response) return m;
    return c.json({ ...publicMachine(m), history: history.lines(m.mac) });
  });

  const installed = (c: Context<Env>) => {
    const m = callbackMachine(c);
    if (m instanceof Response) return m;
    // HEAD (handed to the GET route) says whether the callback would be taken; it takes nothing.
    if (c.req.method === "HEAD") return c.body(null, 200);
    const after = registry.installed(m.mac, clientOf(c) ?? undefined);
    logger.info("install", "install finished: next boot from local disk", {
      mac: m.mac,
      hostname: after.hostname,
      os: after.os ?? "",
      client: clientOf(c) ?? "-",
    });
    tell(c, "api", m.mac, { stage: "installed", detail: "install finished" });
    return c.json(publicMachine(after));
  };
  for (const path of ["/machines/:mac/installed/:token", "/machines/:mac/installed"]) {
    app.post(path, installed);
    app.get(path, installed);
  }

  app.post("/machines/:mac/reinstall", admin, (c) => {
    const m = machineOf(c);
    if (m instanceof Response) return m;
    const after = registry.reinstall(m.mac)!;
    logger.info("install", "reinstall requested", { mac: m.mac, os: after.os ?? "" });
    tell(c, "api", m.mac, { stage: "reinstall", detail: "reinstall requested" });
    return c.json(publicMachine(after));
  });

  const progress = (c: Context<Env>) => {
    const m = callbackMachine(c);
    if (m instanceof Response) return m;
    if (c.req.method === "HEAD") return c.body(null, 200);
    const report = progressReport(c);
    logger.info("install", "installer progress", {
      mac: m.mac,
      report,
      client: clientOf(c) ?? "-",
    });
    tell(c, "api", m.mac, { stage: "progress", detail: report || "progress" });
    return c.json({ ok: true });
  };
  for (const path of ["/machines/:mac/progress/:token", "/machines/:mac/progress"]) {
    app.post(path, progress);
    app.get(path, progress);
  }

  return app;
}
