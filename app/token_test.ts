import assert from "node:assert/strict";
import { newToken, readToken, tokenFileExposed } from "./token.ts";

Deno.test("the admin token file: made once (0600), read after, refused when too short", async (t) => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/sub/api-token`;
    let made = "";
    await t.step("missing and create: made, owner-only", () => {
      made = readToken(path, true);
      assert.match(made, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
      assert.equal(Deno.readTextFileSync(path), made + "\n");
    });
    await t.step("present: read, whitespace trimmed, never replaced", () => {
      assert.equal(readToken(path, true), made);
      Deno.writeTextFileSync(path, "  my-own-token-of-enough-length \n");
      assert.equal(readToken(path, true), "my-own-token-of-enough-length");
    });
    await t.step("too short: an error naming the file", () => {
      Deno.writeTextFileSync(path, "short");
      assert.throws(() => readToken(path, true), /api-token: a token must be at least 16/);
    });
    await t.step("missing and not create: NotFound", () => {
      assert.throws(() => readToken(`${dir}/none`, false), Deno.errors.NotFound);
    });
    await t.step("a file others may read is said to be exposed; 0600 is not", () => {
      Deno.chmodSync(path, 0o600);
      assert.equal(tokenFileExposed(path), null);
      Deno.chmodSync(path, 0o644);
      assert.match(
        tokenFileExposed(path) ?? "",
        /api-token has mode 644: whoever can read it is an admin/,
      );
      Deno.chmodSync(path, 0o600);
    });
    await t.step("new tokens differ", () => {
      assert.notEqual(newToken(), newToken());
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
