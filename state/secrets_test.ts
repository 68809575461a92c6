import assert from "node:assert/strict";
import { openDatabaseFile } from "./db.ts";
import { serverSecret } from "./secrets.ts";

Deno.test("the server secret is made once and kept across reopens and handles", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const a = openDatabaseFile(`${dir}/leases.db`);
    const first = serverSecret(a);
    assert.equal(first.length, 32);
    assert.ok(first.some((b) => b !== 0));
    const b = openDatabaseFile(`${dir}/leases.db`);
    assert.deepEqual(serverSecret(b), first);
    a.close();
    b.close();
    const c = openDatabaseFile(`${dir}/leases.db`);
    assert.deepEqual(serverSecret(c), first);
    c.close();
    const other = openDatabaseFile(`${dir}/other.db`);
    assert.notDeepEqual(serverSecret(other), first);
    other.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
