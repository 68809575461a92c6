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
 * `52-54-00-…` or bare hex.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import type { Logger } from "../log.ts";
import type { Machine, MachineRegistry } from "../state/machines.ts";
import type { BootHistory } from "../state/history.ts";
import { clientOf, type Env, macParam, tell } from "./context.ts";

/** Options for {@linkcode apiRoutes}. */
export interface ApiOptions {
  registry: MachineRegistry;
  history: BootHistory;
  logger: Logger;
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
  const { registry, history, logger } = options;
  const app = new Hono<Env>();

  /** The machine the path names; 400 for a bad MAC, 404 for an unknown one. */
  function machineOf(c: Context<Env>): Machine | Response {
    tell(c, "api");
    const mac = macParam(c.req.param("mac") ?? "");
    const machine = registry.get(mac);
    if (!machine) return c.json({ error: `unknown machine ${c.req.param("mac")}` }, 404);
    return machine;
  }

  app.get("/machines", (c) => {
    tell(c, "api");
    return c.json(registry.list());
  });

  app.get("/machines/:mac", (c) => {
    const m = machineOf(c);
    if (m instanceof Response) return m;
    return c.json({ ...m, history: history.lines(m.mac) });
  });

  const installed = (c: Context<Env>) => {
    const m = machineOf(c);
    if (m instanceof Response) return m;
    const after = registry.installed(m.mac, clientOf(c) ?? undefined);
    logger.info("install", "install finished: next boot from local disk", {
      mac: m.mac,
      hostname: after.hostname,
      os: after.os ?? "",
      client: clientOf(c) ?? "-",
    });
    tell(c, "api", m.mac, { stage: "installed", detail: "install finished" });
    return c.json(after);
  };
  app.post("/machines/:mac/installed", installed);
  app.get("/machines/:mac/installed", installed);

  app.post("/machines/:mac/reinstall", (c) => {
    const m = machineOf(c);
    if (m instanceof Response) return m;
    const after = registry.reinstall(m.mac)!;
    logger.info("install", "reinstall requested", { mac: m.mac, os: after.os ?? "" });
    tell(c, "api", m.mac, { stage: "reinstall", detail: "reinstall requested" });
    return c.json(after);
  });

  const progress = (c: Context<Env>) => {
    const m = machineOf(c);
    if (m instanceof Response) return m;
    const report = progressReport(c);
    logger.info("install", "installer progress", {
      mac: m.mac,
      report,
      client: clientOf(c) ?? "-",
    });
    tell(c, "api", m.mac, { stage: "progress", detail: report || "progress" });
    return c.json({ ok: true });
  };
  app.post("/machines/:mac/progress", progress);
  app.get("/machines/:mac/progress", progress);

  return app;
}
