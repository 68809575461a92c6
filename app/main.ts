/**
 * The command line: parses flags, loads config.toml, runs the command asked for.
 *
 * @module
 */
import denoJson from "../deno.json" with { type: "json" };
import { HELP, parseArgs, UsageError } from "./cli.ts";
import type { CliArgs } from "./cli.ts";
import { ConfigError, formatConfig, loadConfig } from "./config.ts";
import type { Config } from "./config.ts";
import { createLogger, errorMessage, flushLog } from "../log.ts";
import type { Logger } from "../log.ts";
import { openIpfsStore, runServe } from "./serve.ts";
import { leasesCommand, machineCommand } from "./admin.ts";
import { readToken } from "./token.ts";
import { dropServePermissions } from "./privileges.ts";
import { DatabaseError } from "../state/db.ts";
import { BindError } from "../net/errors.ts";
import { labCommand } from "../lab/main.ts";

/** The program's version, from deno.json (embedded at compile time). */
export const VERSION: string = denoJson.version;

const enc = new TextEncoder();
function err(line: string): void {
  // What the logger gathered comes first: a fatal line follows the lines that led to it.
  flushLog();
  Deno.stderr.writeSync(enc.encode(line + "\n"));
}
function out(text: string): void {
  flushLog();
  Deno.stdout.writeSync(enc.encode(text));
}

/** Finds the config file: -c, else ./config.toml, else /etc/astralboot/config.toml, else none. */
function configPath(args: CliArgs): string | undefined {
  if (args.config) return args.config;
  for (const p of ["config.toml", "/etc/astralboot/config.toml"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* not there, or not readable under our permissions */ }
  }
  return undefined;
}

/** The environment for `ASTRALBOOT_*` overrides; none when the process may not read it. */
function environment(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch {
    return {};
  }
}

function readConfigFile(args: CliArgs, requireInterface: boolean): Config {
  const path = configPath(args);
  let source = "";
  if (path) {
    try {
      source = Deno.readTextFileSync(path);
    } catch (e) {
      throw new ConfigError(`cannot read config ${path}: ${errorMessage(e)}`, { cause: e });
    }
  }
  const config = loadConfig(source, {
    file: path ?? "(no config file)",
    interface: args.interface,
    requireInterface,
    env: environment(),
  });
  if (args.dataDir) {
    if (config.db_file === `${config.data_dir}/leases.db`) {
      config.db_file = `${args.dataDir}/leases.db`;
    }
    config.data_dir = args.dataDir;
  }
  if (args.logLevel) config.log_level = args.logLevel;
  return config;
}

/** Runs the command line; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`astralboot: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (args.command === "help") {
    out(HELP);
    return 0;
  }
  if (args.command === "version") {
    out(`astralboot ${VERSION}\n`);
    return 0;
  }
  let logger: Logger = createLogger({ level: args.logLevel ?? "info", format: args.logFormat });
  try {
    switch (args.command) {
      case "lab":
        return await labCommand(args.rest, logger);
      case "config": {
        out(formatConfig(readConfigFile(args, false)));
        return 0;
      }
      case "leases":
        return leasesCommand(readConfigFile(args, false), out);
      case "machine":
        return await machineCommand(readConfigFile(args, false), args.rest, out);
      case "token": {
        const config = readConfigFile(args, false);
        const token = readToken(config.api.token_file, false);
        out(`${token}\n`);
        err(`dashboard: ${config.http.public_url}/ui#token=${token}`);
        return 0;
      }
      case "fetch":
      case "export": {
        const config = readConfigFile(args, false);
        logger = createLogger({ level: config.log_level, format: args.logFormat });
        const store = await openIpfsStore(config, logger);
        try {
          // Loaded here: every other command does without the IPFS packages.
          const { exportTree, prefetch, progressPrinter } = await import("../ipfs/commands.ts");
          if (args.command === "fetch") await prefetch(store, { onProgress: progressPrinter() });
          else await exportTree(store, args.rest[0]!);
        } finally {
          await store.close();
        }
        return 0;
      }
      case "serve": {
        dropServePermissions();
        const config = readConfigFile(args, true);
        logger = createLogger({ level: config.log_level, format: args.logFormat });
        return await runServe(config, {
          local: args.local,
          logger,
          version: VERSION,
          reload: () => readConfigFile(args, true),
        });
      }
    }
  } catch (e) {
    if (e instanceof ConfigError || e instanceof UsageError) {
      err(`astralboot: ${e.message}`);
      return 2;
    }
    // What a person must fix outside the program: one line, no stack.
    if (e instanceof DatabaseError || e instanceof BindError) {
      err(`astralboot: ${e.message}`);
      return 1;
    }
    if (e instanceof Deno.errors.NotFound && args.command === "token") {
      err(`astralboot: no admin token yet: it is made when the server first starts`);
      return 1;
    }
    logger.error("main", errorMessage(e), { error: e });
    return 1;
  }
  return 0;
}
