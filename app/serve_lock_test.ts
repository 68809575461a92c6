import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "./config_reader.ts";
import { lockDatabase } from "./serve_lock.ts";

Deno.test("one serve per database: a second is refused, naming the first", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "astral-lock-" });
  try {
    const db = join(dir, "data", "leases.db");
    const first = lockDatabase(db);
    await t.step("a second lock of the same database is refused with the holder's pid", () => {
      assert.throws(
        () => lockDatabase(db),
        (e) => e instanceof ConfigError && e.message.includes(`(pid ${Deno.pid})`),
      );
    });
    await t.step("another database is another lock", () => {
      lockDatabase(join(dir, "other.db")).release();
    });
    await t.step("released, it can be taken again", () => {
      first.release();
      first.release();
      lockDatabase(db).release();
    });
    await t.step("held by another process: refused", async () => {
      const holder = new Deno.Command("flock", {
        args: ["-x", `${db}.serve-lock`, "sleep", "5"],
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        let refused = false;
        for (let i = 0; i < 100 && !refused; i++) {
          try {
            lockDatabase(db).release();
            await new Promise((r) => setTimeout(r, 20));
          } catch (e) {
            refused = e instanceof ConfigError;
          }
        }
        assert.ok(refused, "the other process's lock was never seen");
      } finally {
        holder.kill();
        await holder.status;
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
