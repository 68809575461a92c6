import assert from "node:assert/strict";
import { mustParseMac } from "../net/mac.ts";
import { callbackToken, isCallbackToken } from "./callback_tokens.ts";

const SECRET = new Uint8Array(32).fill(7);
const A = mustParseMac("52:54:00:00:00:0a");
const B = mustParseMac("52:54:00:00:00:0b");

Deno.test("a callback token holds for one machine's one install under one secret", async (t) => {
  const token = callbackToken(SECRET, A, 3);
  await t.step("32 hex digits, the same each time", () => {
    assert.match(token, /^[0-9a-f]{32}$/);
    assert.equal(callbackToken(SECRET, A, 3), token);
  });
  const cases: [string, Uint8Array, typeof A, number, string, boolean][] = [
    ["its own", SECRET, A, 3, token, true],
    ["another install of the machine", SECRET, A, 4, token, false],
    ["an earlier install", SECRET, A, 2, token, false],
    ["another machine", SECRET, B, 3, token, false],
    ["another server's secret", new Uint8Array(32).fill(8), A, 3, token, false],
    ["a cut token", SECRET, A, 3, token.slice(0, 31), false],
    ["upper case", SECRET, A, 3, token.toUpperCase(), token === token.toUpperCase()],
    ["empty", SECRET, A, 3, "", false],
  ];
  for (const [name, secret, mac, gen, tok, ok] of cases) {
    await t.step(`${name}: ${ok ? "valid" : "refused"}`, () => {
      assert.equal(isCallbackToken(secret, mac, gen, tok), ok);
    });
  }
});
