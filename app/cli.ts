/**
 * Command-line parsing: pure, so every flag and every mistake is testable without running.
 *
 * @module
 */

/** Subcommands; `serve` is the default. */
import type { LogFormat } from "../log.ts";

export type Command =
  | "serve"
  | "config"
  | "leases"
  | "fetch"
  | "export"
  | "lab"
  | "machine"
  | "token"
  | "help"
  | "version";

/** What the command line asked for. */
export interface CliArgs {
  command: Command;
  /** -c / --config */
  config?: string;
  /** -l / --local: serve this folder instead of IPFS */
  local?: string;
  /** -i / --interface: overrides `interface` from the config */
  interface?: string;
  /** -d / --data-dir: overrides `data_dir` */
  dataDir?: string;
  /** --log-level */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** --log-format */
  logFormat?: LogFormat;
  /** Positional words after the command (export DIR, machine reinstall MAC, lab flags…). */
  rest: string[];
}

/** A command-line mistake; main prints it in one line and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The text of `--help`. */
export const HELP =
  `astralboot — network boot server: DHCP, TFTP, HTTP; boot files from IPFS or a folder

Usage:
  astralboot [serve] [-c config.toml] [-l DIR]   run the servers
  astralboot config                              print the implied config
  astralboot leases                              list leases and machines
  astralboot fetch                               prefetch the whole tree into the cache
  astralboot export DIR                          write the tree to DIR (then: -l DIR)
  astralboot machine list|show MAC|reinstall MAC
                                                 machines, what they report, install state
  astralboot token                               the admin token and the dashboard's address
  astralboot lab [--firmware bios|uefi|uefi-secure|uefi-http|arm64]
                 [--nic virtio|e1000] [--dhcp server|proxy] [--all] [--timeout S]
                                                 namespace + VM that PXE-boots from this server
                                                 (astralboot lab --help: every flag)
  astralboot --version | --help

Options:
  -c, --config FILE     config file (default: ./config.toml, then /etc/astralboot/config.toml)
  -l, --local DIR       serve the boot tree from DIR instead of the IPFS ref
  -i, --interface NAME  the interface to serve (overrides the config)
  -d, --data-dir DIR    leases and cache folder (overrides the config)
      --log-level L     debug, info, warn, error
      --log-format F    json, text or journal (default: journal under systemd, text on a
                        terminal, else json)
`;

const COMMANDS: readonly Command[] = [
  "serve",
  "config",
  "leases",
  "fetch",
  "export",
  "lab",
  "machine",
  "token",
];

/** Parses argv (without the program name). Throws {@linkcode UsageError}. */
export function parseArgs(argv: string[]): CliArgs {
  const out: CliArgs = { command: "serve", rest: [] };
  let commandSeen = false;
  const passThrough = () => out.command === "lab" || out.command === "machine";
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (name: string): string => {
      const eq = arg.indexOf("=");
      if (arg.startsWith("--") && eq > 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined || (v.startsWith("-") && v !== "-")) {
        throw new UsageError(`${name} needs a value`);
      }
      return v;
    };
    const flag = arg.startsWith("--") && arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg;
    switch (flag) {
      case "-h":
      case "--help":
        // `astralboot lab --help` lists the lab's own flags (lab/main.ts).
        if (out.command === "lab") {
          out.rest.push(arg);
          continue;
        }
        return { ...out, command: "help" };
      case "-V":
      case "--version":
        return { ...out, command: "version" };
      case "-c":
      case "--config":
        out.config = value(flag);
        continue;
      case "-l":
      case "--local":
        out.local = value(flag);
        continue;
      case "-i":
      case "--interface":
        out.interface = value(flag);
        continue;
      case "-d":
      case "--data-dir":
        out.dataDir = value(flag);
        continue;
      case "--log-level": {
        const v = value(flag);
        if (!["debug", "info", "warn", "error"].includes(v)) {
          throw new UsageError(
            `--log-level must be debug, info, warn or error, got ${JSON.stringify(v)}`,
          );
        }
        out.logLevel = v as CliArgs["logLevel"];
        continue;
      }
      case "--log-format": {
        const v = value(flag);
        if (v !== "json" && v !== "text" && v !== "journal") {
          throw new UsageError(
            `--log-format must be json, text or journal, got ${JSON.stringify(v)}`,
          );
        }
        out.logFormat = v;
        continue;
      }
    }
    if (arg.startsWith("-") && arg !== "-") {
      if (passThrough()) {
        out.rest.push(arg);
        continue;
      }
      throw new UsageError(`unknown option ${arg} (see astralboot --help)`);
    }
    if (!commandSeen) {
      if (!COMMANDS.includes(arg as Command)) {
        throw new UsageError(
          `unknown command ${JSON.stringify(arg)}; commands: ${COMMANDS.join(", ")}`,
        );
      }
      out.command = arg as Command;
      commandSeen = true;
      continue;
    }
    out.rest.push(arg);
  }
  if (out.command === "export" && out.rest.length !== 1) {
    throw new UsageError("export needs one folder: astralboot export DIR");
  }
  if (
    ["serve", "config", "leases", "fetch", "token"].includes(out.command) && out.rest.length > 0
  ) {
    throw new UsageError(`unexpected argument ${JSON.stringify(out.rest[0])} for ${out.command}`);
  }
  return out;
}
