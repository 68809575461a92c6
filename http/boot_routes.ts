/**
 * The iPXE side: entry script, menu, sticky choice and start scripts (`boot/scripts.ts`
 * decides what each answers).
 *
 * | route | who | answers |
 * |---|---|---|
 * | `GET /boot.ipxe?mac=M&uuid=…` | machine M, for itself | the local disk of an installed machine, else the start script of its OS, else the menu; records what it reports (`uuid`, `serial`, `manufacturer`, `product`, `buildarch`, `platform`) |
 * | `GET /boot.ipxe` | anyone | a script that asks again with the MAC and those settings |
 * | `GET /menu.ipxe?mac=M` | machine M, for itself | the OS menu, even for a machine whose OS is decided |
 * | `GET /menu.ipxe`, `GET /choose` | anyone | the OS menu of no machine in particular |
 * | `GET /choose/:os/:mac`, `GET /choose/:os/:class/:mac` | the machine, for itself | makes the choice sticky (never on an installed machine: 409), then the start script |
 * | `GET /boot/:os/:mac` | the machine, for itself | the start script of an OS |
 *
 * "For itself": from the address the MAC holds (`boot/identity.ts`); from anywhere else, 403.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { inventoryFromUrl } from "../boot/inventory.ts";
import type { BootScripts, Script } from "../boot/scripts.ts";
import { type Mac, parseMac } from "../net/mac.ts";
import { clientOf, type Env, macParam, osParam, queryMac, tell, textResponse } from "./context.ts";

function answer(c: Context<Env>, script: Script): Response {
  tell(c, "script", script.machine?.mac ?? null, script.step);
  return textResponse(script.text);
}

/** The path and query start that {@linkcode plainBootEntry} looks at. */
const ENTRY = "/boot.ipxe?";

/**
 * The MAC of a `GET /boot.ipxe?mac=M…`, the script every booting machine asks for first, when
 * `http/app.ts` may answer it without the router (`BootScripts.entry`, as the route does, at
 * less of the cost). Undefined for everything else, which the route answers: HEAD, another path,
 * no `mac`, a `mac` the router would read otherwise (see {@linkcode plainFirst}), a `mac` that is
 * not one (the route's 400), a URL whose first `?` is not this path's (an odd Host header) or
 * that has a fragment. `path` is the path and query as sent, the end of `request.url`.
 */
export function plainBootEntry(request: Request, path: string): Mac | undefined {
  if (request.method !== "GET" || !path.startsWith(ENTRY) || path.includes("#")) return undefined;
  // The router finds the query at the URL's first "?" after the scheme, Host included.
  const url = request.url;
  if (url.indexOf("?", 8) !== url.length - path.length + ENTRY.length - 1) return undefined;
  const raw = plainFirst(path.slice(ENTRY.length), "mac");
  if (!raw || /[%+]/.test(raw)) return undefined;
  return parseMac(raw) ?? undefined;
}

/**
 * The raw first value of `key` in a query (`a=1&key=v`) when the router would read that same
 * value; undefined when the key is absent, or when a key before it holds `%` or `+`: the router
 * then decodes every key, and an encoded one (`m%61c`) may be the `mac` it answers for.
 */
function plainFirst(query: string, key: string): string | undefined {
  for (const part of query.split("&")) {
    const eq = part.indexOf("=");
    const name = eq < 0 ? part : part.slice(0, eq);
    if (name === key) return eq < 0 ? "" : part.slice(eq + 1);
    if (/[%+]/.test(name)) return undefined;
  }
  return undefined;
}

/** The routes of the module doc. */
export function bootRoutes(scripts: BootScripts): Hono<Env> {
  const app = new Hono<Env>();
  const ip = (c: Context<Env>) => clientOf(c);

  app.get("/boot.ipxe", async (c) => {
    tell(c, "script");
    const mac = queryMac(c);
    if (!mac) return answer(c, await scripts.chain(ip(c)));
    return answer(c, await scripts.entry(mac, ip(c), inventoryFromUrl(c.req.url)));
  });

  const menu = async (c: Context<Env>) => {
    tell(c, "script");
    return answer(c, await scripts.menu(queryMac(c), ip(c)));
  };
  app.get("/menu.ipxe", menu);
  app.get("/choose", menu);

  const choose = async (c: Context<Env>, cls: string | null) => {
    tell(c, "script");
    const os = osParam(c.req.param("os")!);
    const mac = macParam(c.req.param("mac")!);
    // HEAD must not change anything; iPXE only ever sends GET here.
    const script = c.req.method === "HEAD"
      ? await scripts.start(os, mac, ip(c))
      : await scripts.choose(os, cls, mac, ip(c));
    return answer(c, script);
  };
  app.get("/choose/:os/:mac", (c) => choose(c, null));
  app.get("/choose/:os/:class/:mac", (c) => choose(c, osParam(c.req.param("class"))));

  app.get("/boot/:os/:mac", async (c) => {
    tell(c, "script");
    const os = osParam(c.req.param("os"));
    return answer(c, await scripts.start(os, macParam(c.req.param("mac")), ip(c)));
  });

  return app;
}
