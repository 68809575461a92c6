import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  BuildUsageError,
  bundleArgs,
  compileArgs,
  parseBuildArgs,
  readVersion,
  repoRoot,
  RUN_FLAGS,
  tagMismatch,
  TARGETS,
} from "./build.ts";

const ROOT = repoRoot();

Deno.test("the build puts every option before the entry point", async (t) => {
  const table: { argv: string[]; want: ReturnType<typeof parseBuildArgs> }[] = [
    { argv: ["compile"], want: { command: "compile", target: undefined, output: "astralboot" } },
    {
      argv: ["compile", "--target", "aarch64-unknown-linux-gnu"],
      want: { command: "compile", target: "aarch64-unknown-linux-gnu", output: "astralboot" },
    },
    {
      argv: ["compile", "--target=x86_64-unknown-linux-gnu", "-o", "out/ab"],
      want: { command: "compile", target: "x86_64-unknown-linux-gnu", output: "out/ab" },
    },
    { argv: ["bundle"], want: { command: "bundle", output: "dist/astralboot.js" } },
    { argv: ["version", "--tag", "v1.2.3"], want: { command: "version", tag: "v1.2.3" } },
    { argv: ["flags"], want: { command: "flags" } },
  ];
  for (const row of table) {
    await t.step(row.argv.join(" "), () => assert.deepEqual(parseBuildArgs(row.argv), row.want));
  }
  for (
    const bad of [[], ["run"], ["compile", "--target", "mips"], ["compile", "--allow-all"], [
      "bundle",
      "--target",
      "x",
    ], ["compile", "--output"]]
  ) {
    await t.step(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseBuildArgs(bad), BuildUsageError);
    });
  }
  await t.step("compile: flags and --target before main.ts, which comes last", () => {
    const args = compileArgs({ target: "aarch64-unknown-linux-gnu", output: "/o/ab" });
    assert.equal(args.at(-1), "main.ts");
    assert.deepEqual(args.slice(0, 1 + RUN_FLAGS.length), ["compile", ...RUN_FLAGS]);
    assert.ok(args.indexOf("--target") < args.indexOf("main.ts"));
  });
  await t.step("bundle: for deno, main.ts last", () => {
    const args = bundleArgs({ output: "/o/ab.js" });
    assert.ok(args.includes("--platform=deno"));
    assert.equal(args.at(-1), "main.ts");
  });
});

Deno.test("deno.json's tasks build through tools/build.ts; start runs with its flags", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks;
  assert.equal(tasks.compile, "deno run -A tools/build.ts compile");
  assert.equal(tasks.bundle, "deno run -A tools/build.ts bundle");
  assert.equal(tasks.start, `deno run ${RUN_FLAGS.join(" ")} main.ts`);
});

Deno.test("a release tag must be v<version of deno.json>", async (t) => {
  const version = await readVersion(ROOT);
  for (
    const [tag, ok] of [
      [`v${version}`, true],
      [`refs/tags/v${version}`, true],
      [version, false],
      ["v0.0.0-wrong", false],
    ] as const
  ) {
    await t.step(`${tag}: ${ok ? "fits" : "refused"}`, () => {
      assert.equal(tagMismatch(tag, version) === null, ok);
    });
  }
  await t.step("tools/build.ts version --tag exits 1 on a wrong tag, naming both", async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}/tools/build.ts`, "version", "--tag", "v0.0.0-wrong"],
    }).output();
    assert.equal(out.code, 1);
    assert.match(new TextDecoder().decode(out.stderr), new RegExp(`v0.0.0-wrong.*${version}`));
  });
});

/**
 * The JSON metadata `deno compile` writes after its magic (a u64 length, then the object), and
 * what follows it: the npm snapshot, then the embedded files.
 */
function compileMetadata(binary: Buffer): { meta: Record<string, unknown>; after: Buffer } {
  const magic = Buffer.from("d3n0l4nd");
  for (let at = binary.indexOf(magic); at >= 0; at = binary.indexOf(magic, at + 1)) {
    const start = at + magic.length + 8;
    if (start >= binary.length || binary[start] !== 0x7b) continue; // "{"
    const end = start + Number(binary.readBigUInt64LE(at + magic.length));
    const meta = JSON.parse(binary.subarray(start, end).toString("utf8"));
    return { meta, after: binary.subarray(end) };
  }
  throw new Error("no deno compile metadata in the file");
}

Deno.test({
  name: "deno task compile --target aarch64 (stand-in runtime): flags, npm, templates; no argv",
  sanitizeResources: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "ab-compile-" });
    try {
      const output = `${dir}/astralboot`;
      // DENORT_BIN: the runtime deno compile would download is this deno, so the result is an
      // x86-64 executable labelled aarch64. It proves the build but must never be run.
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["task", "compile", "--target", "aarch64-unknown-linux-gnu", "--output", output],
        cwd: ROOT,
        env: { DENORT_BIN: Deno.execPath(), NO_COLOR: "1" },
      }).output();
      const report = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, report);
      const { meta, after } = compileMetadata(Buffer.from(await Deno.readFile(output)));
      // The npm snapshot comes first after the metadata: a few kilobytes of names.
      const snapshot = after.subarray(0, 1 << 20);

      await t.step("nothing after main.ts: the program's argv is empty", () => {
        assert.deepEqual(meta.argv, []);
        assert.equal(meta.entrypoint_key, "main.ts");
      });
      await t.step("the permissions are RUN_FLAGS, no prompt", () => {
        const perms = meta.permissions as Record<string, unknown>;
        for (const kind of ["net", "read", "write", "sys", "ffi", "env", "run"]) {
          const want = RUN_FLAGS.includes(`--allow-${kind}`) ? [] : null;
          assert.deepEqual(perms[`allow_${kind}`], want, kind);
        }
        assert.equal(perms.prompt, false);
        const unstable = meta.unstable_config as { features: string[] };
        assert.ok(unstable.features.includes("net"), JSON.stringify(unstable));
      });
      await t.step("the npm packages of deno.json are in its snapshot and its files", async () => {
        const imports = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).imports;
        const names = Object.values(imports as Record<string, string>)
          .map((s) => s.replace(/^npm:/, "").replace(/@[^@/]*$/, ""));
        assert.ok(names.length >= 5);
        for (const name of names) {
          assert.ok(snapshot.includes(`${name}@`), `${name} in the npm snapshot`);
          assert.ok(report.includes(name.split("/").at(-1)!), `${name} in the embedded files`);
        }
      });
      await t.step("the text imports (templates, dashboard) are embedded", async () => {
        for (const file of ["templates/start.vto", "templates/ui/dashboard.html"]) {
          const text = await Deno.readTextFile(`${ROOT}/${file}`);
          assert.ok(after.includes(text), file);
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("every release target has a Debian architecture", () => {
  assert.deepEqual(Object.values(TARGETS).sort(), ["amd64", "arm64"]);
});
