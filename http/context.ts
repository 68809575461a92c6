/**
 * What every route shares: Hono's env (Deno's connection info, and what a route tells the
 * access log about its request), reading MACs, names and tree paths from a request, and the
 * text answer of a script.
 *
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { type Mac, parseMac } from "../net/mac.ts";
import { canonicalAddress } from "../net/ipv6.ts";
import { normalizeTreePath } from "../content/store.ts";
import { OS_NAME } from "../boot/catalog.ts";
import type { BootStage } from "../observe/events.ts";
import type { HttpRoute } from "../observe/watch.ts";

/** The path and query of a request's URL as the client sent it, without parsing the URL. */
export function pathOf(url: string): string {
  // "http://host[:port]/path?query": the path starts at the first "/" after "http://" and one
  // character more, where Hono's router finds it too (a Host header of "/" makes "http:////a").
  const at = url.indexOf("/", url.indexOf(":") + 4);
  return at < 0 ? "/" : url.slice(at);
}

/** The boot step a request was, as its route says. */
export interface RequestStep {
  stage: BootStage;
  detail: string;
}

/** Hono's env: Deno's connection info in, what the route learnt out (for the access log). */
export type Env = {
  Bindings: { remoteAddr?: { hostname?: string } };
  Variables: { route: HttpRoute; mac: Mac | null; step: RequestStep | null };
};

/** The client's address as Deno reports it, or null (app.request in tests). */
export function clientOf(c: Context<Env>): string | null {
  return clientOfEnv(c.env);
}

/** {@linkcode clientOf} from the env Deno.serve's handler passes on, before there is a Context. */
export function clientOfEnv(env: Env["Bindings"] | undefined): string | null {
  const address = env?.remoteAddr?.hostname;
  // An IPv4 client of a dual-stack socket (`::ffff:a.b.c.d`): the address its lease names.
  return address === undefined ? null : canonicalAddress(address);
}

/** Tells the access log which route class, machine and boot step this request was. */
export function tell(
  c: Context<Env>,
  route: HttpRoute,
  mac: Mac | null = null,
  step: RequestStep | null = null,
): void {
  c.set("route", route);
  c.set("mac", mac);
  c.set("step", step);
}

/** A MAC from a URL (`52:54:00:…`, `52-54-00-…` or bare hex); 400 when it is not one. */
export function macParam(text: string): Mac {
  const mac = parseMac(text);
  if (mac === null) throw new HTTPException(400, { message: `not a MAC address: ${text}` });
  return mac;
}

/** `?mac=` when present. */
export function queryMac(c: Context<Env>): Mac | null {
  const q = c.req.query("mac");
  return q ? macParam(q) : null;
}

/** An OS folder name from a URL; 400 when it cannot be one. */
export function osParam(name: string): string {
  if (!OS_NAME.test(name)) throw new HTTPException(400, { message: `not an OS name: ${name}` });
  return name;
}

/** The rest of the raw URL path after `skip` segments, percent-decoded and made safe. */
export function restPath(c: Context, skip: number): string {
  // The path as the router found it in the URL (`new URL` reads an odd Host header, which
  // Deno.serve puts in the URL as sent, as part of the path or a query).
  const asked = pathOf(c.req.url);
  const end = asked.search(/[?#]/);
  const raw = (end < 0 ? asked : asked.slice(0, end)).split("/").slice(1 + skip);
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

const TEXT = "text/plain; charset=utf-8";
const encoder = new TextEncoder();

/** Texts kept encoded, and the longest kept: at most 4 MiB in all. */
const ENCODED_KEPT = 256;
const ENCODED_MAX = 16 * 1024;

/**
 * The last texts answered, encoded: a machine asking again gets the menu text it got last
 * (`boot/scripts.ts`), the same string, whose bytes are then not made again (5–8 % of a kept
 * menu's answer, measured). Emptied when full. The bytes are shared: `new Response` copies them.
 */
const encoded = new Map<string, Uint8Array<ArrayBuffer>>();

/**
 * A text answer with its length set, so the access log can tell the bytes. Scripts are per
 * machine and per moment (a sticky choice changes them): never cached by HTTP clients.
 */
export function textResponse(
  body: string,
  status: 200 | 400 | 401 | 403 | 404 | 409 | 416 | 500 | 503 = 200,
  contentType = TEXT,
): Response {
  let bytes = encoded.get(body);
  if (!bytes) {
    bytes = encoder.encode(body);
    if (body.length <= ENCODED_MAX) {
      if (encoded.size >= ENCODED_KEPT) encoded.clear();
      encoded.set(body, bytes);
    }
  }
  // A Response of its own rather than Hono's `c.body`, which merges headers nobody set here
  // (a tenth of a rendered script's cost, measured).
  return responseOf(bytes, status, [
    ["Content-Type", contentType],
    ["Content-Length", String(bytes.length)],
    ["Cache-Control", "no-store"],
  ]);
}

/**
 * `new Response(body, { status, headers })`, with the headers added one by one to the made
 * response: Deno's constructor converts a list or record of headers through WebIDL at several
 * times the cost (three headers, measured alone: 5–14 against 1.2–2.4 µs a response). The same
 * response: a body of bytes brings no header of its own (a string would bring a Content-Type).
 */
export function responseOf(
  body: Uint8Array<ArrayBuffer> | null,
  status: number,
  headers: readonly (readonly [string, string])[],
): Response {
  const response = new Response(body, { status });
  const set = response.headers;
  for (const [name, value] of headers) set.append(name, value);
  return response;
}
