/**
 * Builds the program, the one way `deno task compile`, `deno task bundle`, the release workflow
 * and CI all use; the permission flags the program runs with live here and nowhere else.
 *
 *   deno task compile [--target TRIPLE] [--output FILE]   one executable (default ./astralboot)
 *   deno task bundle [--output FILE]                      one JS file (default dist/astralboot.js)
 *   deno run -A tools/build.ts version [--tag vX.Y.Z]     the version; exit 1 if the tag differs
 *   deno run -A tools/build.ts flags                      the run-time flags, one a line
 *
 * The arguments are parsed here and placed before the entry point: `deno compile` takes
 * everything after `main.ts` as the program's own argv and bakes it into the executable, so
 * `deno task compile --target …` appended to a plain `deno compile … main.ts` task would ship a
 * program that always sees `--target …` on its command line.
 *
 * @module
 */

/**
 * Deno flags the program runs with: compiled in by `compile`, written into the bundle's
 * launcher, used by `deno task start`. `serve` revokes `run` at its start (app/main.ts): only
 * `astralboot lab` spawns processes; `env` stays for the environment overrides of the config.
 */
export const RUN_FLAGS: readonly string[] = [
  "--unstable-net",
  "--no-prompt",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-sys",
  "--allow-ffi",
  "--allow-env",
  "--allow-run",
  // V8's young generation at most 2 × 4 MiB instead of 2 × 16 MiB (less peak memory, the same
  // CPU), and an old generation collected once it doubled instead of when V8 picks: less peak
  // memory than the default, a quarter less CPU under DHCP load than collecting at +20 %
  // (docs/OPERATING.md, "Memory").
  "--v8-flags=--max-semi-space-size=4,--heap-growing-percent=100",
];

/** Targets the release builds, each with its Debian architecture. */
export const TARGETS: Readonly<Record<string, string>> = {
  "x86_64-unknown-linux-gnu": "amd64",
  "aarch64-unknown-linux-gnu": "arm64",
};

/** The program's entry point, relative to the repository. */
export const ENTRY = "main.ts";

/** What `tools/build.ts` was asked to do. */
export type BuildRequest =
  | { command: "compile"; target?: string; output: string }
  | { command: "bundle"; output: string }
  | { command: "version"; tag?: string }
  | { command: "flags" };

/** A bad command line of `tools/build.ts`; the message names the argument. */
export class BuildUsageError extends Error {
  override name = "BuildUsageError";
}

/** Parses the arguments of `tools/build.ts`. Throws {@linkcode BuildUsageError}. */
export function parseBuildArgs(argv: readonly string[]): BuildRequest {
  const [command, ...rest] = argv;
  const options: Record<string, string> = {};
  const allowed: Record<string, readonly string[]> = {
    compile: ["--target", "--output"],
    bundle: ["--output"],
    version: ["--tag"],
    flags: [],
  };
  if (!command || !(command in allowed)) {
    throw new BuildUsageError(
      `expected compile, bundle, version or flags, got ${JSON.stringify(command ?? "")}`,
    );
  }
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i]!;
    const eq = arg.indexOf("=");
    let flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (flag === "-o") flag = "--output";
    if (!allowed[command]!.includes(flag)) {
      throw new BuildUsageError(`${command}: unknown argument ${JSON.stringify(arg)}`);
    }
    const value = eq > 0 ? arg.slice(eq + 1) : rest[++i];
    if (value === undefined || value === "") throw new BuildUsageError(`${flag} needs a value`);
    options[flag] = value;
  }
  switch (command) {
    case "compile": {
      const target = options["--target"];
      if (target !== undefined && !(target in TARGETS)) {
        throw new BuildUsageError(
          `--target must be one of ${Object.keys(TARGETS).join(", ")}, got ${target}`,
        );
      }
      return { command, target, output: options["--output"] ?? "astralboot" };
    }
    case "bundle":
      return { command, output: options["--output"] ?? "dist/astralboot.js" };
    case "version":
      return { command, tag: options["--tag"] };
    default:
      return { command: "flags" };
  }
}

/** The `deno` arguments that compile the program: every option before the entry point. */
export function compileArgs(request: { target?: string; output: string }): string[] {
  return [
    "compile",
    ...RUN_FLAGS,
    ...(request.target ? ["--target", request.target] : []),
    "--output",
    request.output,
    ENTRY,
  ];
}

/** The `deno` arguments that bundle the program into one JS file for `deno run`. */
export function bundleArgs(request: { output: string }): string[] {
  return ["bundle", "--quiet", "--platform=deno", "--output", request.output, ENTRY];
}

/** The version in deno.json of the repository at `root`. */
export async function readVersion(root: string): Promise<string> {
  const json = JSON.parse(await Deno.readTextFile(`${root}/deno.json`)) as { version?: unknown };
  if (typeof json.version !== "string") throw new Error(`${root}/deno.json has no version`);
  return json.version;
}

/** Why a release tag does not fit the version, or null when it is `v<version>`. */
export function tagMismatch(tag: string, version: string): string | null {
  const name = tag.replace(/^refs\/tags\//, "");
  return name === `v${version}`
    ? null
    : `tag ${name} does not match the version in deno.json (${version}): tag v${version}, or change deno.json`;
}

/** The repository this file belongs to. */
export function repoRoot(): string {
  return decodeURIComponent(new URL("..", import.meta.url).pathname).replace(/\/$/, "");
}

async function deno(args: string[], cwd: string): Promise<number> {
  const status = await new Deno.Command(Deno.execPath(), { args, cwd }).spawn().status;
  return status.code;
}

/** Runs `tools/build.ts ARGS`; resolves to the exit code. */
export async function build(argv: readonly string[]): Promise<number> {
  let request: BuildRequest;
  try {
    request = parseBuildArgs(argv);
  } catch (e) {
    if (!(e instanceof BuildUsageError)) throw e;
    console.error(`tools/build.ts: ${e.message}`);
    return 2;
  }
  const root = repoRoot();
  switch (request.command) {
    case "flags":
      console.log(RUN_FLAGS.join("\n"));
      return 0;
    case "version": {
      const version = await readVersion(root);
      const wrong = request.tag === undefined ? null : tagMismatch(request.tag, version);
      if (wrong) {
        console.error(`tools/build.ts: ${wrong}`);
        return 1;
      }
      console.log(version);
      return 0;
    }
    case "compile":
      return await deno(compileArgs({ ...request, output: absolute(request.output) }), root);
    case "bundle": {
      const output = absolute(request.output);
      await Deno.mkdir(output.slice(0, output.lastIndexOf("/")) || "/", { recursive: true });
      return await deno(bundleArgs({ output }), root);
    }
  }
}

/** Paths on the command line are the caller's: `deno task` runs in the repository and names
 * the folder it was started from in INIT_CWD. */
function absolute(path: string): string {
  if (path.startsWith("/")) return path;
  return `${Deno.env.get("INIT_CWD") ?? Deno.cwd()}/${path}`;
}

if (import.meta.main) Deno.exit(await build(Deno.args));
