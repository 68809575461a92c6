/**
 * .github/workflows/release.yml, checked where it cannot run (no GitHub here): it parses as
 * YAML, has the jobs of a release in order, builds every target through tools/build.ts, smoke-tests
 * each on a runner of its architecture, checks the tag against deno.json, and every script, task
 * and file its steps name exists. Each `run:` is valid bash.
 */
import assert from "node:assert/strict";
import { parseDocument } from "yaml";
import { repoRoot, TARGETS } from "../tools/build.ts";

const ROOT = repoRoot();
const PATH = ".github/workflows/release.yml";

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Job {
  needs?: string | string[];
  "runs-on": string;
  steps: Step[];
  strategy?: { matrix: { include: Record<string, string>[] } };
  permissions?: Record<string, string>;
}

const text = await Deno.readTextFile(`${ROOT}/${PATH}`);
const parsed = parseDocument(text, { strict: true, uniqueKeys: true, prettyErrors: true });
const workflow = parsed.toJS() as { on: { push: { tags: string[] } }; jobs: Record<string, Job> };
const runs = Object.values(workflow.jobs ?? {}).flatMap((j) => j.steps).flatMap((s) =>
  s.run ? [s.run] : []
);

Deno.test("the release workflow parses as YAML without warnings", () => {
  assert.deepEqual(parsed.errors.map((e) => e.message), []);
  assert.deepEqual(parsed.warnings.map((e) => e.message), []);
});

Deno.test("the release workflow runs check → build → smoke → release on a tag v*", async (t) => {
  const jobs = workflow.jobs;
  await t.step("on: push of tags v*", () => assert.deepEqual(workflow.on.push.tags, ["v*"]));
  await t.step("the jobs, each needing the one before", () => {
    assert.deepEqual(Object.keys(jobs), ["check", "build", "smoke", "release"]);
    assert.equal(jobs.build!.needs, "check");
    assert.equal(jobs.smoke!.needs, "build");
    assert.equal(jobs.release!.needs, "smoke");
  });
  await t.step("check runs deno task ok after tests/setup.sh", () => {
    const script = jobs.check!.steps.map((s) => s.run ?? "").join("\n");
    assert.match(script, /bash tests\/setup\.sh\s+deno task ok/);
  });
  await t.step("the tag is checked against deno.json before anything is built", () => {
    for (const job of ["check", "build"]) {
      const steps = jobs[job]!.steps;
      const tag = steps.findIndex((s) => s.run?.includes("tools/build.ts version --tag"));
      assert.ok(tag >= 0, job);
      assert.ok(steps.slice(0, tag).every((s) => !/deno task (ok|compile)/.test(s.run ?? "")));
    }
  });
  await t.step("every target is compiled through deno task compile and packaged", () => {
    const build = jobs.build!.steps.map((s) => s.run ?? "").join("\n");
    for (const target of Object.keys(TARGETS)) assert.ok(build.includes(target), target);
    assert.match(build, /deno task compile --target "\$target"/);
    assert.match(build, /tools\/package\.ts --binary "build\/\$target\/astralboot" --target/);
  });
  await t.step("each target is smoke-tested on a runner of its architecture", () => {
    const include = jobs.smoke!.strategy!.matrix.include;
    assert.deepEqual(include.map((m) => m.target).sort(), Object.keys(TARGETS).sort());
    for (const m of include) {
      assert.equal(m.arch, TARGETS[m.target!]);
      assert.equal(m.runner!.endsWith("-arm"), m.target!.startsWith("aarch64"), m.runner);
    }
    const smoke = jobs.smoke!.steps.map((s) => s.run ?? "").join("\n");
    for (
      const part of ["tools/smoke.sh", "apt-get install", "systemd-analyze verify", "docker build"]
    ) {
      assert.ok(smoke.includes(part), part);
    }
  });
  await t.step("only the release job may write, and it publishes SHA256SUMS", () => {
    for (const [name, job] of Object.entries(jobs)) {
      assert.equal(job.permissions?.contents === "write", name === "release", name);
    }
    assert.match(jobs.release!.steps.map((s) => s.run ?? "").join("\n"), /dist\/SHA256SUMS/);
  });
});

Deno.test("everything the workflow's steps name exists", async (t) => {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)).tasks;
  const files = new Set(
    runs.flatMap((r) => r.match(/\b(?:tools|tests|contrib)\/[\w./-]+\w/g) ?? []),
  );
  assert.ok(files.size >= 4, [...files].join(" "));
  for (const file of files) {
    await t.step(file, async () => {
      await Deno.stat(`${ROOT}/${file}`);
    });
  }
  for (
    const task of new Set(
      runs.flatMap((r) => [...r.matchAll(/deno task (\w+)/g)].map((m) => m[1]!)),
    )
  ) {
    await t.step(`deno task ${task}`, () => assert.ok(task in tasks));
  }
  await t.step("actions are pinned to a major version", () => {
    const uses = Object.values(workflow.jobs).flatMap((j) => j.steps).flatMap((s) => s.uses ?? []);
    assert.ok(uses.length > 0);
    for (const u of uses) assert.match(u, /^actions\/[\w-]+@v\d+$/);
  });
});

Deno.test("every run: of the workflow is valid bash", async (t) => {
  for (const [i, script] of runs.entries()) {
    await t.step(`run ${i + 1}: ${script.split("\n")[0]}`, async () => {
      // GitHub replaces ${{ … }} before bash sees the script.
      const plain = script.replaceAll(/\$\{\{[^}]*\}\}/g, "X");
      const child = new Deno.Command("bash", { args: ["-n"], stdin: "piped", stderr: "piped" })
        .spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(plain));
      await w.close();
      const out = await child.output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
    });
  }
});
