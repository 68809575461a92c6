import assert from "node:assert/strict";

Deno.test("after dropServePermissions a process granted --allow-run can start none", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ab-privileges-" });
  try {
    const script = `${dir}/probe.ts`;
    await Deno.writeTextFile(
      script,
      `import { dropServePermissions } from ${
        JSON.stringify(import.meta.resolve("./privileges.ts"))
      };
const tryRun = () => {
  try {
    new Deno.Command("true").outputSync();
    return "ran";
  } catch (e) {
    return (e as Error).name;
  }
};
const before = tryRun();
dropServePermissions();
console.log(JSON.stringify({ before, after: tryRun() }));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-run", "--allow-read", "--no-prompt", script],
    }).output();
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    await t.step("before: it may", () => assert.equal(result.before, "ran"));
    await t.step("after: refused", () => assert.equal(result.after, "NotCapable"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
