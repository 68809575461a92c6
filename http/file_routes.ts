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
import {
  type ContentEntry,
  type ContentStore,
  normalizeTreePath,
  type WholeFile,
} from "../content/store.ts";
import { OS_NAME } from "../boot/catalog.ts";
import { imageStage } from "../observe/events.ts";
import type { HttpRoute } from "../observe/watch.ts";
import { type Env, osParam, type RequestStep, responseOf, restPath, tell } from "./context.ts";
import { fileHeaders, serveTreeFile } from "./files.ts";

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
    tell(c, "image", null, imageStep(os, file, res.headers.get("Content-Length") ?? "0"));
    return res;
  });

  app.get("/tftp/*", async (c) => {
    tell(c, "loader");
    const file = restPath(c, 1);
    const res = await treeFile(c, `tftp/${file}`);
    tell(c, "loader", null, loaderStep(file, res.headers.get("Content-Length") ?? "0"));
    return res;
  });

  return app;
}

/** The boot step a file of an OS's images is, with its size. */
function imageStep(os: string, file: string, bytes: number | string): RequestStep {
  return { stage: imageStage(file), detail: `${os}/${file} (${bytes} bytes)` };
}

/** The boot step a first-stage loader over HTTP is, with its size. */
function loaderStep(file: string, bytes: number | string): RequestStep {
  return { stage: "loader", detail: `tftp/${file} over HTTP (${bytes} bytes)` };
}

/** What the fast lane answered, and what the access log is told of it. */
export interface FastAnswer {
  response: Response;
  route: HttpRoute;
  step: RequestStep;
  bytes: number;
}

/** Request headers after which the answer is not simply the whole file. */
const VALIDATORS = ["range", "if-range", "if-none-match", "if-modified-since"];

/**
 * The routes' most common answer without the router: a plain `GET` of a small tree file that
 * memory holds (`ContentStore.peek`), answered at once with the headers the routes give it
 * (kept per file). Everything else is undefined, and the routes answer it: HEAD, a query or fragment,
 * percent-encoding or any path not already in its plain form, Range and the validators, a file
 * not in memory yet (the route's answer loads it for the next request). The same answer as the
 * routes', at a fraction of the cost (a 1 KiB loader: 4–5× the requests per second, measured).
 */
export function fastTreeFile(
  store: ContentStore,
): (request: Request, path: string) => FastAnswer | undefined {
  const peek = store.peek?.bind(store);
  if (!peek) return () => undefined;
  // Kept by the stat of one path (Content-Type is the path's): a new stat, new headers.
  // Content-Length: Deno sets it for a body of bytes.
  const headersOf = new WeakMap<ContentEntry, [string, string][]>();
  const headers = (path: string, whole: WholeFile) => {
    let h = headersOf.get(whole.entry);
    if (!h) headersOf.set(whole.entry, h = fileHeaders(path, whole.entry));
    return h;
  };
  return (request, path) => {
    if (request.method !== "GET" || /[?#%]/.test(path)) return undefined;
    let route: HttpRoute, treePath: string, file: string, os = "";
    if (path.startsWith("/tftp/")) {
      route = "loader";
      file = path.slice(6);
      treePath = `tftp/${file}`;
    } else if (path.startsWith("/image/")) {
      route = "image";
      const slash = path.indexOf("/", 7);
      if (slash < 0) return undefined;
      os = path.slice(7, slash);
      if (!OS_NAME.test(os)) return undefined;
      file = path.slice(slash + 1);
      treePath = `boot/${os}/images/${file}`;
    } else {
      return undefined;
    }
    if (normalizeTreePath(file) !== file) return undefined;
    const asked = request.headers;
    for (const name of VALIDATORS) if (asked.has(name)) return undefined;
    const whole = peek(treePath);
    if (!whole) return undefined;
    const bytes = whole.entry.size;
    const step = route === "loader" ? loaderStep(file, bytes) : imageStep(os, file, bytes);
    const response = responseOf(whole.bytes, 200, headers(treePath, whole));
    return { response, route, step, bytes };
  };
}
