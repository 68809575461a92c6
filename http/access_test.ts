import assert from "node:assert/strict";
import { withoutSecrets } from "./access.ts";
import { pathOf, textResponse } from "./context.ts";

Deno.test("pathOf and withoutSecrets give the path as it may be logged", async (t) => {
  const cases: [string, string][] = [
    ["http://10.0.0.1:8080/boot.ipxe?mac=52:54:00:00:00:01", "/boot.ipxe?mac=52:54:00:00:00:01"],
    ["http://host/", "/"],
    ["http://host", "/"],
    ["http://[fe80::1]:80/image/debian/linux", "/image/debian/linux"],
    ["http://h/api/machines/aa/installed/s3cret?x=1", "/api/machines/aa/installed/(token)?x=1"],
    ["http://h/api/machines/aa/progress/s3cret", "/api/machines/aa/progress/(token)"],
    ["http://h/api/machines/aa", "/api/machines/aa"],
  ];
  for (const [url, logged] of cases) {
    await t.step(url, () => assert.equal(withoutSecrets(pathOf(url)), logged));
  }
});

Deno.test("textResponse: each answer carries its text whole, however often the text is answered", async () => {
  const menu = "#!ipxe\nmenu Astral Boot\nitem debian Debian ✓\n".repeat(20);
  // The same text many times (kept encoded), each body read to the end before the next.
  for (let i = 0; i < 3; i++) {
    const r = textResponse(menu);
    assert.equal(r.headers.get("Content-Length"), String(new TextEncoder().encode(menu).length));
    assert.equal(await r.text(), menu);
  }
  // Read as a stream, chunk by chunk (a body that took the kept bytes could detach them).
  for (let i = 0; i < 3; i++) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of textResponse(menu).body!) chunks.push(chunk);
    assert.equal(new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))), menu);
  }
  // Two answers of one text at once: reading one leaves the other whole.
  const [a, b] = [textResponse(menu, 403), textResponse(menu)];
  const bytes = new Uint8Array(await a.arrayBuffer());
  bytes.fill(0);
  assert.equal(a.status, 403);
  assert.equal(await b.text(), menu);
  // More texts than are kept, and one too long to keep: every answer still right.
  for (let i = 0; i < 600; i++) assert.equal(await textResponse(`text ${i}`).text(), `text ${i}`);
  const long = "x".repeat(40_000);
  assert.equal(await textResponse(long).text(), long);
  assert.equal(await textResponse(long).text(), long);
  assert.equal(await textResponse(menu).text(), menu);
  // Through Deno.serve (loopback), which hands bodies to the runtime: each answer whole.
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => textResponse(menu),
  );
  try {
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`http://127.0.0.1:${server.addr.port}/`);
      assert.equal(await r.text(), menu);
    }
  } finally {
    await server.shutdown();
  }
});
