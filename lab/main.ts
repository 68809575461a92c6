/**
 * `astralboot lab`: builds (or loads) the fixture tree, PXE-boots a VM from this server inside
 * a throwaway network namespace, prints the serial console and the stage timings.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { buildFixture } from "./fixture.ts";
import { runLab } from "./lab.ts";
import {
  FIRMWARE,
  type Firmware,
  FIRMWARE_NAMES,
  firmwareSpec,
  isFirmware,
  type Nic,
} from "./firmware.ts";
import { astralbootServer, dnsmasqServer, type LabDhcp, type LabServer } from "./servers.ts";
import { formatStages } from "./stages.ts";
import { formatSummary, type SummaryRow } from "./summary.ts";

const FIRMWARE_HELP = FIRMWARE_NAMES.map((name) =>
  `      ${name.padEnd(12)} ${FIRMWARE[name].summary}`
).join("\n");

/** Usage of `astralboot lab`. */
export const LAB_HELP = `Usage: astralboot lab [options]

PXE-boots a QEMU VM from Astral Boot inside a throwaway network namespace (needs root,
qemu-system-x86, ovmf, ipxe, tcpdump, tshark; dnsmasq for --dhcp proxy; qemu-system-arm,
qemu-efi-aarch64 and debian-installer-12-netboot-arm64 for arm64) and prints the serial
console and stage timings. The boot tree is built from Debian packages (apt-get download).

Options:
  --firmware NAME            VM firmware (default bios):
${FIRMWARE_HELP}
  --nic virtio|e1000         network card (default virtio; e1000: bios and uefi only)
  --dhcp server|proxy        who hands out addresses: Astral Boot (default), or a dnsmasq
                             peer on the link while Astral Boot runs in proxy mode
  --all                      the matrix, one boot after the other, then a summary table:
                             every firmware × every card it boots from × server and proxy;
                             --firmware, --nic or --dhcp pin that part of it
  --timeout S                give up after S seconds per boot (default 150)
  --server astralboot|dnsmasq  boot server (default astralboot; dnsmasq is the peer stand-in)
  --pcap FILE                keep the packet capture of the (last) boot in FILE
  --quiet                    do not print the serial console
  --no-sga                   BIOS: no iPXE text on serial, and no ~8 s of menu drawing through it
`;

/** One boot of the lab. */
export interface LabRun {
  firmware: Firmware;
  nic: Nic;
  dhcp: LabDhcp;
}

/** What `astralboot lab` was asked to do. */
export interface LabArgs {
  runs: LabRun[];
  timeoutMs: number;
  server: "astralboot" | "dnsmasq";
  pcap?: string;
  quiet: boolean;
  /** BIOS: copy the text screen to serial (sga). */
  sga: boolean;
  help: boolean;
}

/** A bad `astralboot lab` command line; the message names the flag. */
export class LabUsageError extends Error {
  override name = "LabUsageError";
}

const NICS: Record<string, Nic> = {
  "virtio": "virtio-net-pci",
  "virtio-net-pci": "virtio-net-pci",
  "e1000": "e1000",
};

/** Parses the flags after `astralboot lab`. Throws {@linkcode LabUsageError}. */
export function parseLabArgs(args: string[]): LabArgs {
  let firmware: Firmware | undefined;
  let nic: Nic | undefined;
  let dhcp: LabDhcp | undefined;
  let all = false;
  const out: LabArgs = {
    runs: [],
    timeoutMs: 150_000,
    server: "astralboot",
    quiet: false,
    sga: true,
    help: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      const v = eq > 0 ? arg.slice(eq + 1) : args[++i];
      if (v === undefined || v === "") throw new LabUsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--firmware": {
        const v = value();
        if (!isFirmware(v)) {
          throw new LabUsageError(
            `--firmware must be ${FIRMWARE_NAMES.join(", ")}; got ${JSON.stringify(v)}`,
          );
        }
        firmware = v;
        break;
      }
      case "--dhcp": {
        const v = value();
        if (v !== "server" && v !== "proxy") {
          throw new LabUsageError(`--dhcp must be server or proxy, got ${JSON.stringify(v)}`);
        }
        dhcp = v;
        break;
      }
      case "--nic": {
        const v = value();
        const n = NICS[v];
        if (!n) throw new LabUsageError(`--nic must be virtio or e1000, got ${JSON.stringify(v)}`);
        nic = n;
        break;
      }
      case "--timeout": {
        const v = value();
        const s = Number(v);
        if (!Number.isFinite(s) || s <= 0 || s > 3600) {
          throw new LabUsageError(`--timeout must be seconds between 1 and 3600, got ${v}`);
        }
        out.timeoutMs = s * 1000;
        break;
      }
      case "--server": {
        const v = value();
        if (v !== "astralboot" && v !== "dnsmasq") {
          throw new LabUsageError(`--server must be astralboot or dnsmasq, got ${v}`);
        }
        out.server = v;
        break;
      }
      case "--pcap":
        out.pcap = value();
        break;
      case "--all":
        all = true;
        break;
      case "--quiet":
        out.quiet = true;
        break;
      case "--no-sga":
        out.sga = false;
        break;
      case "-h":
      case "--help":
        out.help = true;
        break;
      default:
        throw new LabUsageError(`unknown option ${JSON.stringify(arg)}; see astralboot lab --help`);
    }
  }
  if (dhcp === "proxy" && out.server === "dnsmasq") {
    throw new LabUsageError("--dhcp proxy needs --server astralboot (dnsmasq is the peer then)");
  }
  out.runs = all ? matrix(firmware, nic, dhcp, out.server) : [one(firmware ?? "bios", nic, dhcp)];
  return out;
}

/** The one boot of a command line without --all: the firmware's defaults where not given. */
function one(firmware: Firmware, nic: Nic | undefined, dhcp: LabDhcp | undefined): LabRun {
  const spec = firmwareSpec(firmware);
  if (nic !== undefined && !spec.nics.includes(nic)) {
    throw new LabUsageError(`--firmware ${firmware} boots from ${spec.nics.join(" or ")} only`);
  }
  if (dhcp !== undefined && !spec.dhcp.includes(dhcp)) {
    throw new LabUsageError(`--firmware ${firmware} boots with --dhcp ${spec.dhcp.join(" or ")}`);
  }
  return { firmware, nic: nic ?? spec.nics[0]!, dhcp: dhcp ?? spec.dhcp[0]! };
}

/** The rows of --all: what is not pinned by a flag takes every value the firmware supports. */
function matrix(
  firmware: Firmware | undefined,
  nic: Nic | undefined,
  dhcp: LabDhcp | undefined,
  server: LabArgs["server"],
): LabRun[] {
  const runs: LabRun[] = [];
  for (const f of firmware ? [firmware] : FIRMWARE_NAMES) {
    const spec = firmwareSpec(f);
    // The dnsmasq stand-in hands out addresses itself: no proxy rows beside it.
    const modes = spec.dhcp.filter((m) =>
      (dhcp === undefined || m === dhcp) && (server === "astralboot" || m === "server")
    );
    for (const n of spec.nics.filter((n) => nic === undefined || n === nic)) {
      for (const m of modes) runs.push({ firmware: f, nic: n, dhcp: m });
    }
  }
  if (runs.length === 0) {
    throw new LabUsageError("--all: no firmware boots with that --firmware, --nic and --dhcp");
  }
  return runs;
}

/** Tools and Debian packages the runs cannot do without, each named with its package. */
async function missingTools(args: LabArgs): Promise<string[]> {
  const tools: [string, string][] = [
    ["tcpdump", "tcpdump"],
    ["tshark", "tshark"],
    ["ip", "iproute2"],
    ["apt-get", "apt"],
    ["dpkg-query", "dpkg"],
  ];
  if (args.server === "dnsmasq") tools.push(["dnsmasq", "dnsmasq"], ["python3", "python3"]);
  if (args.runs.some((r) => r.dhcp === "proxy")) tools.push(["dnsmasq", "dnsmasq"]);
  const missing: string[] = [];
  for (const [tool, pkg] of tools) {
    const found = await new Deno.Command("sh", {
      args: ["-c", 'command -v "$1"', "sh", tool],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!found.success) missing.push(`${tool} (package ${pkg})`);
  }
  if (missing.length > 0) return missing;
  const packages = new Set(args.runs.flatMap((r) => firmwareSpec(r.firmware).packages));
  for (const pkg of packages) {
    const status = await new Deno.Command("dpkg-query", {
      args: ["-W", "-f", "${Status}", pkg],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(status.stdout);
    if (!text.endsWith("install ok installed")) missing.push(`package ${pkg}`);
  }
  return missing;
}

const encoder = new TextEncoder();

/** Runs `astralboot lab ARGS`; resolves to the exit code (0 every boot reached the marker). */
export async function labCommand(
  args: string[],
  logger: Logger,
  write: (text: string) => void = (t) => Deno.stdout.writeSync(encoder.encode(t)),
): Promise<number> {
  let parsed: LabArgs;
  try {
    parsed = parseLabArgs(args);
  } catch (err) {
    if (!(err instanceof LabUsageError)) throw err;
    write(`astralboot lab: ${err.message}\n`);
    return 2;
  }
  if (parsed.help) {
    write(LAB_HELP);
    return 0;
  }
  if (Deno.uid() !== 0) {
    write("astralboot lab: needs root (it creates a network namespace, a bridge and a tap)\n");
    return 2;
  }
  const missing = await missingTools(parsed);
  if (missing.length > 0) {
    write(`astralboot lab: missing ${missing.join(", ")}\n`);
    return 2;
  }
  const fixture = await buildFixture({ logger });
  logger.info("lab", "fixture tree", { tree: fixture.tree, built: fixture.built });
  const server: LabServer = parsed.server === "dnsmasq" ? dnsmasqServer() : astralbootServer();
  const results: SummaryRow[] = [];
  for (const run of parsed.runs) {
    const dhcp = run.dhcp === "proxy" ? " (proxy beside a dnsmasq peer)" : "";
    write(`\n== ${run.firmware} + ${run.nic} from ${server.name}${dhcp} ==\n`);
    const started = Date.now();
    const result = await runLab({
      ...run,
      tree: fixture.tree,
      server,
      timeoutMs: parsed.timeoutMs,
      logger,
      captureFile: parsed.pcap,
      sga: parsed.sga,
      onSerialLine: parsed.quiet ? undefined : (line) => write(`  | ${line}\n`),
    });
    results.push({ run, result, runMs: Date.now() - started });
    const tftp = `TFTP packets: ${result.tftpPackets}`;
    write(
      `\n${result.ok ? "OK" : `FAILED: ${result.error}`}\n${
        formatStages(result.stages)
      }\n${tftp}\n`,
    );
    if (!result.ok) {
      const tail = (lines: string[]) => lines.slice(-30).map((l) => `  | ${l}\n`).join("");
      if (parsed.quiet) write(`last serial lines:\n${tail(result.serial.split("\n"))}`);
      write(`${server.name} log (last lines):\n${tail(result.serverLog)}`);
      if (result.peerLog) write(`dnsmasq peer log (last lines):\n${tail(result.peerLog)}`);
    }
    if (result.error === "interrupted") break;
  }
  if (results.length > 1) write(`\nsummary:\n${formatSummary(results)}\n`);
  return results.every((r) => r.result.ok) && results.length === parsed.runs.length ? 0 : 1;
}
