import assert from "node:assert/strict";
import { withoutSecrets } from "./access.ts";
import { pathOf } from "./context.ts";

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
