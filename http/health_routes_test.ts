import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { LocalStore } from "../content/local.ts";
import { BootWatch } from "../observe/watch.ts";
import type { Check } from "./health_routes.ts";
import { testApp } from "./_test_utils.ts";

const TREE = fileURLToPath(new URL("../boot/testdata/tree", import.meta.url));

Deno.test("/healthz and /readyz: anyone may ask; probes stay out of the access log", async () => {
  const watch = new BootWatch({ version: "0" });
  let checks: Record<string, Check> = { dhcp: { ok: false, detail: "starting" } };
  const { get, logger } = testApp({
    store: new LocalStore(TREE),
    watch,
    health: { version: "1.2.3", readiness: () => Promise.resolve(checks) },
  });
  const healthz = await get("/healthz");
  assert.equal(healthz.status, 200);
  assert.deepEqual(await healthz.json(), { status: "ok", version: "1.2.3" });
  const starting = await get("/readyz");
  assert.equal(starting.status, 503);
  assert.deepEqual(await starting.json(), { ready: false, checks });
  checks = { dhcp: { ok: true, detail: "server mode on br0" } };
  const ready = await get("/readyz");
  assert.equal(ready.status, 200);
  assert.equal(ready.headers.get("Cache-Control"), "no-store");
  assert.deepEqual(await ready.json(), { ready: true, checks });
  assert.equal(logger.lines.filter((l) => l.subsystem === "http").length, 0);
  assert.doesNotMatch(watch.metrics.render(), /route="health/);
  // Any other request is logged and counted.
  await (await get("/boot.ipxe")).arrayBuffer();
  assert.equal(logger.lines.filter((l) => l.subsystem === "http").length, 1);
});
