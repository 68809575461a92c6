/**
 * Tree files over HTTP: kernels, initrds and images of an OS, and the first-stage loaders
 * for UEFI HTTP boot, with Range, ETag and HEAD (`files.ts`).
 *
 * | route | who | answers |
 * |---|---|---|
 * | `GET /image/:os/*` | anyone | `boot/<os>/images/*` |
 * | `GET /tftp/*` | anyone | `tftp/*`: first-stage loaders |
 *
 * There is deliberately no route for arbitrary tree paths: templates (preseeds with password
 * hashes, keys) are meant to be rendered per machine, never served raw.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentStore } from "../content/store.ts";
import { imageStage } from "../observe/events.ts";
import { type Env, osParam, restPath, tell } from "./context.ts";
import { serveTreeFile } from "./files.ts";

/** The routes of the module doc. */
export function fileRoutes(store: ContentStore): Hono<Env> {
  const app = new Hono<Env>();

  async function treeFile(c: Context<Env>, path: string): Promise<Response> {
    const res = await serveTreeFile(c.req.raw, store, path);
    if (!res) throw new HTTPException(404, { message: `${path} not found` });
    return res;
  }

  app.get("/image/:os/*", async (c) => {
    tell(c, "image");
    const os = osParam(c.req.param("os"));
    const file = restPath(c, 2);
    const res = await treeFile(c, `boot/${os}/images/${file}`);
    const bytes = res.headers.get("Content-Length") ?? "0";
    tell(c, "image", null, { stage: imageStage(file), detail: `${os}/${file} (${bytes} bytes)` });
    return res;
  });

  app.get("/tftp/*", async (c) => {
    tell(c, "loader");
    const file = restPath(c, 1);
    const res = await treeFile(c, `tftp/${file}`);
    const bytes = res.headers.get("Content-Length") ?? "0";
    tell(c, "loader", null, { stage: "loader", detail: `tftp/${file} over HTTP (${bytes} bytes)` });
    return res;
  });

  return app;
}
