import assert from "node:assert/strict";
import { Hono } from "hono";
import type { Env } from "./context.ts";
import { adminOnly } from "./auth.ts";

const TOKEN = "s3cret-token-0123456789abcdef";

function app() {
  const a = new Hono<Env>();
  a.use(adminOnly(TOKEN));
  a.all("/x", (c) => c.text("ok"));
  return a;
}

Deno.test("adminOnly: the token, in a request no other site made", async (t) => {
  const cases: [string, Record<string, string>, number][] = [
    ["no header", {}, 401],
    ["another token", { Authorization: "Bearer s3cret-token-0123456789abcdeX" }, 401],
    ["a prefix of it", { Authorization: "Bearer s3cret" }, 401],
    ["Basic instead of Bearer", { Authorization: `Basic ${TOKEN}` }, 401],
    ["the token", { Authorization: `Bearer ${TOKEN}` }, 200],
    ["the token, scheme in lower case", { Authorization: `bearer ${TOKEN}` }, 200],
    ["the token from this origin", {
      Authorization: `Bearer ${TOKEN}`,
      Origin: "http://10.0.0.1",
    }, 200],
    ["the token, same-origin fetch", {
      Authorization: `Bearer ${TOKEN}`,
      "Sec-Fetch-Site": "same-origin",
    }, 200],
    ["the token, typed by a person", {
      Authorization: `Bearer ${TOKEN}`,
      "Sec-Fetch-Site": "none",
    }, 200],
    ["the token from another origin", {
      Authorization: `Bearer ${TOKEN}`,
      Origin: "http://evil.example",
    }, 403],
    ["the token from another port", {
      Authorization: `Bearer ${TOKEN}`,
      Origin: "http://10.0.0.1:8080",
    }, 403],
    ["the token, cross-site fetch", {
      Authorization: `Bearer ${TOKEN}`,
      "Sec-Fetch-Site": "cross-site",
    }, 403],
    ["the token, same-site fetch", {
      Authorization: `Bearer ${TOKEN}`,
      "Sec-Fetch-Site": "same-site",
    }, 403],
  ];
  for (const [name, headers, status] of cases) {
    await t.step(`${name} → ${status}`, async () => {
      for (const method of ["GET", "POST"]) {
        const res = await app().request("http://10.0.0.1/x", { method, headers });
        assert.equal(res.status, status, method);
        assert.equal(res.headers.get("Cache-Control"), status === 200 ? null : "no-store");
        if (status === 401) {
          assert.match(res.headers.get("WWW-Authenticate")!, /^Bearer realm=/);
        }
        await res.body?.cancel();
      }
    });
  }
});
