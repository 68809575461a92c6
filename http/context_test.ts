import assert from "node:assert/strict";
import { responseOf, textResponse } from "./context.ts";

Deno.test("responseOf: the status, body and every header given, repeated names kept", async () => {
  const response = responseOf(new TextEncoder().encode("body"), 206, [
    ["Content-Type", "text/plain"],
    ["Set-Cookie", "a=1"],
    ["Set-Cookie", "b=2"],
    ["Cache-Control", "no-store"],
  ]);
  assert.deepEqual(response.status, 206);
  assert.deepEqual(await response.text(), "body");
  assert.deepEqual(response.headers.get("content-type"), "text/plain");
  assert.deepEqual(response.headers.getSetCookie(), ["a=1", "b=2"]);
  assert.deepEqual(response.headers.get("cache-control"), "no-store");
  assert.deepEqual([...response.headers.keys()], [
    "cache-control",
    "content-type",
    "set-cookie",
    "set-cookie",
  ]);
});

Deno.test("textResponse: UTF-8 length, type and no-store; the same text answered twice is equal", async () => {
  for (let i = 0; i < 2; i++) {
    const response = textResponse("menü\n", 403);
    assert.deepEqual(response.status, 403);
    assert.deepEqual(response.headers.get("content-length"), "6");
    assert.deepEqual(response.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.deepEqual(response.headers.get("cache-control"), "no-store");
    assert.deepEqual(await response.text(), "menü\n");
  }
});
