/**
 * Installer configs rendered for the asking machine (`boot/installers.ts`): class
 * templates, shipped defaults, install state.
 *
 * | route | who | answers |
 * |---|---|---|
 * | `GET /config/:os/:name`, `GET /action/:os/:name` | a machine, for itself | `boot/<os>/template/<name>.vto` (or a default) for the asking machine: `?mac=` from that machine's own address (else 403), without it the machine whose address asks |
 * | the same with the admin token | admin | any machine's, as a preview: no state changes |
 * | `HEAD` of either | as its GET | the GET's headers; nothing recorded (the machine is not marked installing) |
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Logger } from "../log.ts";
import type { Installers } from "../boot/installers.ts";
import { TEMPLATE_NAME } from "../boot/templates.ts";
import { clientOf, type Env, osParam, queryMac, tell, textResponse } from "./context.ts";
import { crossOrigin, hasToken } from "./auth.ts";

/** The routes of the module doc. */
export function configRoutes(
  installers: Installers,
  adminToken: string,
  logger: Logger,
): Hono<Env> {
  const app = new Hono<Env>();

  async function rendered(c: Context<Env>): Promise<Response> {
    tell(c, "config");
    const os = osParam(c.req.param("os")!);
    const name = c.req.param("name")!;
    if (!TEMPLATE_NAME.test(name)) {
      throw new HTTPException(400, { message: `not a template name: ${name}` });
    }
    // An admin may look at any machine's config; that changes nothing about the machine.
    const preview = !crossOrigin(c) && hasToken(c, adminToken);
    // HEAD (which Hono hands to this GET route) must not mark the machine installing.
    const readOnly = c.req.method === "HEAD";
    const out = await installers.render({
      os,
      name,
      mac: queryMac(c),
      ip: clientOf(c) ?? undefined,
      preview,
      readOnly,
    });
    if (preview || readOnly) return textResponse(out.body, 200, out.contentType);
    logger.info("install", "config served", {
      mac: out.machine.mac,
      os: out.os,
      class: out.class,
      config: out.name,
      template: out.template,
    });
    tell(c, "config", out.machine.mac, { stage: "config", detail: out.what });
    return textResponse(out.body, 200, out.contentType);
  }

  app.get("/action/:os/:name", rendered);
  app.get("/config/:os/:name", rendered);
  return app;
}
