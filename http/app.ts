/**
 * The HTTP app (Hono): every route of the boot network in one place, one access log, one
 * error mapping. The routes live beside it by concern:
 *
 * | file | routes |
 * |---|---|
 * | `boot_routes.ts` | `/boot.ipxe`, `/menu.ipxe`, `/choose/…`, `/boot/:os/:mac` |
 * | `file_routes.ts` | `/image/:os/*`, `/tftp/*` |
 * | `config_routes.ts` | `/config/:os/:name`, `/action/:os/:name` |
 * | `api_routes.ts` | `/api/machines…` |
 * | `watch_routes.ts` | `/metrics`, `/api/events…`, `/api/leases`, `/api/overview`, `/ui` |
 * | `health_routes.ts` | `/healthz`, `/readyz` |
 *
 * @module
 */
import { Hono } from "hono";
import type { Logger } from "../log.ts";
import type { ContentStore } from "../content/store.ts";
import type { BootScripts, Script } from "../boot/scripts.ts";
import { inventoryFromUrl } from "../boot/inventory.ts";
import type { Installers } from "../boot/installers.ts";
import type { MachineRegistry } from "../state/machines.ts";
import type { BootHistory } from "../state/history.ts";
import type { BootWatch, HttpEvent } from "../observe/watch.ts";
import { accessLog, elapsed, requestRecorder } from "./access.ts";
import { type HealthOptions, healthRoutes } from "./health_routes.ts";
import { apiRoutes } from "./api_routes.ts";
import { bootRoutes, plainBootEntry } from "./boot_routes.ts";
import { configRoutes } from "./config_routes.ts";
import { clientOfEnv, type Env, pathOf, textResponse } from "./context.ts";
import { onError, textError } from "./errors.ts";
import { fastTreeFile, fileRoutes } from "./file_routes.ts";
import { watchRoutes } from "./watch_routes.ts";

/** What the routes serve from. */
export interface HttpAppOptions {
  store: ContentStore;
  scripts: BootScripts;
  installers: Installers;
  registry: MachineRegistry;
  history: BootHistory;
  /** Metrics, events and the dashboard; without it there are no watch routes. */
  watch?: BootWatch;
  /** Told of every answered request; default `watch.http`. */
  onRequest?: (event: HttpEvent) => void;
  /** The admin token (`http/auth.ts`). */
  adminToken: string;
  /** The key of the callback tokens. */
  secret: Uint8Array;
  /** `/healthz` and `/readyz`; without it there are none. */
  health?: HealthOptions;
  logger: Logger;
}

/** Builds the app; see the module doc for the routes. */
export function createHttpApp(options: HttpAppOptions): Hono<Env> {
  const { logger, watch, registry } = options;
  const app = new Hono<Env>();
  // Before the access log: probes are not requests anyone wants to read about.
  if (options.health) app.route("/", healthRoutes(options.health));
  const record = requestRecorder(logger, options.onRequest ?? ((e) => watch?.http(e)));
  app.use(accessLog(record));
  app.route("/", bootRoutes(options.scripts));
  app.route("/", fileRoutes(options.store));
  const { adminToken, secret } = options;
  app.route("/", configRoutes(options.installers, adminToken, logger));
  app.route("/api", apiRoutes({ registry, history: options.history, logger, adminToken, secret }));
  if (watch) app.route("/", watchRoutes({ watch, adminToken, machines: () => registry.list() }));
  app.notFound(() => textResponse("not found\n", 404));
  app.onError(onError(logger));
  // Small tree files skip the router (file_routes.ts); `fetch` is what Deno.serve and
  // `app.request` both call, so tests go through the same lane the server does. So does a
  // machine's first script (boot_routes.ts `plainBootEntry`), answered and logged as the route
  // answers and logs it.
  const fast = fastTreeFile(options.store);
  const routed = app.fetch;
  app.fetch = (request, env, ctx) => {
    const t0 = performance.now();
    const path = pathOf(request.url);
    const answer = fast(request, path);
    if (answer) {
      record({
        method: "GET",
        path,
        route: answer.route,
        status: 200,
        bytes: answer.bytes,
        ms: elapsed(t0),
        client: clientOfEnv(env as Env["Bindings"] | undefined),
        mac: null,
        step: answer.step,
      });
      return answer.response;
    }
    const mac = plainBootEntry(request, path);
    if (!mac) return routed(request, env, ctx);
    const client = clientOfEnv(env as Env["Bindings"] | undefined);
    const done = (response: Response, s: Script | null) => {
      record({
        method: "GET",
        path,
        route: "script",
        status: response.status,
        bytes: Number(response.headers.get("Content-Length")),
        ms: elapsed(t0),
        client,
        mac: s?.machine?.mac ?? null,
        step: s?.step ?? null,
      });
      return response;
    };
    let script: Promise<Script>;
    try {
      script = options.scripts.entry(mac, client, inventoryFromUrl(request.url));
    } catch (e) {
      script = Promise.reject(e); // answered as the route's errors are
    }
    return script.then(
      (s) => done(textResponse(s.text), s),
      (e) => done(textError(logger, "/boot.ipxe", e), null),
    );
  };
  return app;
}
