/**
 * Boot servers the lab can run inside its namespace: Astral Boot itself (the product test)
 * and dnsmasq + a static HTTP server (the stand-in used to prove the harness and to measure
 * a peer). Each is started on the lab bridge and stopped by the harness.
 *
 * @module
 */

import { parse as parseToml } from "smol-toml";
import type { Netns } from "./netns.ts";
import type { Logger } from "../log.ts";

/** Who hands out addresses on the lab link: the boot server, or a peer beside it (proxy). */
export type LabDhcp = "server" | "proxy";

/** Everything a server needs to know about the lab network and tree. */
export interface LabContext {
  ns: Netns;
  /** The bridge the VM's tap hangs off; the only interface a server may serve on. */
  iface: string;
  serverIp: string;
  prefixLen: number;
  netmask: string;
  /** First and last address a DHCP server may hand out. */
  range: [string, string];
  /** The fixture tree (`-l DIR`). */
  tree: string;
  /** A private scratch folder, removed after the run. */
  workDir: string;
  logger: Logger;
  /** Hand x86-64 UEFI the Secure Boot chain (shim → GRUB), as the firmware needs it. */
  secureBoot: boolean;
  /** "proxy": a peer hands out addresses; the server gives boot information only. */
  dhcp: LabDhcp;
  /** The fixture OS this VM boots (its kernel fits the VM's architecture). */
  os: string;
}

/** A server that is running; `lines` fills with its stdout/stderr as they arrive. */
export interface RunningServer {
  readonly lines: string[];
  /** Resolves with the exit code when every process of it has exited on its own. */
  readonly exited: Promise<number>;
  stop(): Promise<void>;
}

/** A boot server the harness can start inside the lab namespace. */
export interface LabServer {
  readonly name: string;
  /** The TCP port its HTTP stage listens on (the harness waits for it and decodes it). */
  readonly httpPort: number;
  start(ctx: LabContext): Promise<RunningServer>;
}

/** Calls `onLine` for every line of a byte stream (the last one even without a newline). */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    const parts = rest.split("\n");
    rest = parts.pop() ?? "";
    parts.forEach((p) => onLine(p));
  }
  if (rest) onLine(rest);
}

/** Starts commands inside the namespace with their output collected; stops them together. */
export function spawnAll(ns: Netns, commands: { tag: string; argv: string[] }[]): RunningServer {
  const lines: string[] = [];
  const children = commands.map(({ tag, argv }) => {
    // setsid: a Ctrl-C on the terminal reaches the lab alone, which then stops these in order.
    const child = ns.spawn(["setsid", ...argv], { stdout: "piped", stderr: "piped" });
    const prefix = commands.length > 1 ? `${tag}: ` : "";
    const pumped = Promise.all([
      readLines(child.stdout, (l) => lines.push(prefix + l)),
      readLines(child.stderr, (l) => lines.push(prefix + l)),
    ]);
    return { child, pumped };
  });
  const exited = Promise.all(children.map(async ({ child, pumped }) => {
    const status = await child.status;
    await pumped;
    return status.code;
  })).then((codes) => codes.find((c) => c !== 0) ?? 0);
  // The first one to exit ends the server: a half-running stand-in is no server.
  const anyExit = Promise.race(children.map(({ child }) => child.status));
  return {
    lines,
    exited: anyExit.then(() => exited),
    async stop() {
      for (const { child } of children) {
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
      }
      const timer = setTimeout(() => {
        for (const { child } of children) {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        }
      }, 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The iPXE script a stand-in serves: what the os.toml of the OS asks for. */
export function standInScript(osToml: string, os: string, base: string): string {
  const meta = parseToml(osToml) as Record<string, unknown>;
  const kernel = String(meta.kernel ?? "vmlinuz");
  const initrd = meta.initrd === undefined ? undefined : String(meta.initrd);
  const cmdline = String(meta.cmdline ?? "");
  // iPXE EFI (the 2019 Debian build) needs initrd=<name> on the command line (docs/FIRMWARE.md).
  const args = [initrd ? `initrd=${initrd}` : "", cmdline].filter(Boolean).join(" ");
  return [
    "#!ipxe",
    `kernel ${base}/image/${os}/${kernel} ${args}`.trimEnd(),
    ...(initrd ? [`initrd ${base}/image/${os}/${initrd}`] : []),
    "boot",
    "",
  ].join("\n");
}

/** The grub.cfg a stand-in serves: what the os.toml of the OS asks for, over TFTP. */
export function standInGrubConfig(osToml: string, os: string, serverIp: string): string {
  const meta = parseToml(osToml) as Record<string, unknown>;
  const kernel = String(meta.kernel ?? "vmlinuz");
  const initrd = meta.initrd === undefined ? undefined : String(meta.initrd);
  const cmdline = String(meta.cmdline ?? "");
  const at = (file: string) => `(tftp,${serverIp})/image/${os}/${file}`;
  return [
    `linux ${at(kernel)} ${cmdline}`.trimEnd(),
    ...(initrd ? [`initrd ${at(initrd)}`] : []),
    "boot",
    "",
  ].join("\n");
}

/**
 * dnsmasq as a DHCP server in the foreground on one interface, logging each exchange, without
 * DNS, its lease and pid files at `files`.leases and `files`.pid (dnsmasq drops root otherwise
 * and cannot write a private folder: it runs as root).
 */
export function dnsmasqDhcp(o: {
  iface: string;
  range: [string, string];
  netmask: string;
  files: string;
}): string[] {
  return [
    "dnsmasq",
    "--keep-in-foreground",
    "--log-facility=-",
    "--conf-file=/dev/null",
    "--port=0",
    `--interface=${o.iface}`,
    "--bind-interfaces",
    "--user=root",
    `--pid-file=${o.files}.pid`,
    `--dhcp-leasefile=${o.files}.leases`,
    `--dhcp-range=${o.range[0]},${o.range[1]},${o.netmask},1h`,
    "--log-dhcp",
  ];
}

/**
 * dnsmasq (DHCP + TFTP) with python's http.server for the iPXE stage: the stand-in used
 * while developing the harness and as a peer to compare Astral Boot with. With Secure Boot
 * (`ctx.secureBoot`) it hands x86-64 UEFI shim, and ARM64 UEFI always gets shim; GRUB then
 * reads a grub.cfg over TFTP.
 */
export function dnsmasqServer(options: { os?: string; httpPort?: number } = {}): LabServer {
  const httpPort = options.httpPort ?? 8080;
  return {
    name: "dnsmasq",
    httpPort,
    async start(ctx) {
      const os = options.os ?? ctx.os;
      const www = `${ctx.workDir}/www`;
      await Deno.mkdir(`${www}/image`, { recursive: true });
      await Deno.symlink(`${ctx.tree}/boot/${os}/images`, `${www}/image/${os}`);
      const osToml = await Deno.readTextFile(`${ctx.tree}/boot/${os}/os.toml`);
      const base = `http://${ctx.serverIp}:${httpPort}`;
      await Deno.writeTextFile(`${www}/boot.ipxe`, standInScript(osToml, os, base));
      // Shim fetches grub{x64,aa64}.efi from the TFTP root and GRUB its grub.cfg from its
      // prefix, so the stand-in gets a root of its own, pointing into the tree.
      const tftpRoot = `${ctx.workDir}/tftp-root`;
      await Deno.mkdir(`${tftpRoot}/image`, { recursive: true });
      await Deno.symlink(`${ctx.tree}/tftp`, `${tftpRoot}/tftp`);
      await Deno.symlink(`${ctx.tree}/boot/${os}/images`, `${tftpRoot}/image/${os}`);
      for (const file of ["shimx64.efi", "grubx64.efi", "shimaa64.efi", "grubaa64.efi"]) {
        await Deno.symlink(`${ctx.tree}/tftp/${file}`, `${tftpRoot}/${file}`);
      }
      for (const prefix of ["grub", "debian-installer/arm64/grub"]) {
        await Deno.mkdir(`${tftpRoot}/${prefix}`, { recursive: true });
        await Deno.writeTextFile(
          `${tftpRoot}/${prefix}/grub.cfg`,
          standInGrubConfig(osToml, os, ctx.serverIp),
        );
        await Deno.chmod(`${tftpRoot}/${prefix}/grub.cfg`, 0o644);
      }
      const dnsmasq = [
        ...dnsmasqDhcp({ ...ctx, files: `${ctx.workDir}/dnsmasq` }),
        "--enable-tftp",
        `--tftp-root=${tftpRoot}`,
        // iPXE announces itself with user class "iPXE" (77) and option 175.
        "--dhcp-userclass=set:ipxe,iPXE",
        "--dhcp-match=set:ipxe,175",
        "--dhcp-match=set:efi64,option:client-arch,7",
        "--dhcp-match=set:efi64,option:client-arch,9",
        "--dhcp-match=set:arm64,option:client-arch,11",
        `--dhcp-boot=tag:ipxe,${base}/boot.ipxe`,
        "--dhcp-boot=tag:!ipxe,tag:arm64,shimaa64.efi",
        `--dhcp-boot=tag:!ipxe,tag:efi64,${ctx.secureBoot ? "shimx64.efi" : "tftp/snponly.efi"}`,
        "--dhcp-boot=tag:!ipxe,tag:!efi64,tag:!arm64,tftp/undionly.kpxe",
      ];
      const http = [
        "python3",
        "-m",
        "http.server",
        String(httpPort),
        "--bind",
        ctx.serverIp,
        "--directory",
        www,
      ];
      return spawnAll(ctx.ns, [{ tag: "dnsmasq", argv: dnsmasq }, { tag: "http", argv: http }]);
    },
  };
}

/** Options for {@linkcode astralbootServer}. */
export interface AstralbootServerOptions {
  /**
   * argv that starts Astral Boot, before `serve -c … -l …`. Default: this executable when it is
   * the compiled astralboot, else `deno run` of the checkout's main.ts with the permissions the
   * server needs (no --allow-run).
   */
  command?: string[];
  /** A bundle of the program (`deno task bundle`) to run instead of main.ts, with the same
   * limited permissions; ignored with `command`. */
  bundle?: string;
  /** HTTP port; default 80. */
  httpPort?: number;
  /** The OS the menu boots unattended; default the lab's (`LabContext.os`). */
  os?: string;
  /** Log level given to the server; default "info" (one line per exchange). */
  logLevel?: "debug" | "info";
}

/** Where the server may read and write; without it, anywhere (as the compiled binary). */
export interface ServerPaths {
  /** The boot tree, the config and whatever else it must read. */
  read: string[];
  /** Its data dir (leases.db, cache). */
  write: string[];
}

/** Host files the server reads besides the tree: the iPXE package's loaders (ipxe.efi is a
 * symlink into /boot). */
export const HOST_READ_PATHS: readonly string[] = ["/usr/lib/ipxe", "/boot"];

/**
 * The argv that runs Astral Boot from here: the compiled binary, or `deno run main.ts` with the
 * permissions the server needs. With `paths`, reads and writes are limited to them, which
 * also proves that nothing is read from the source tree at run time (templates are embedded).
 * With `bundle`, that JS file (`deno task bundle`) runs instead of main.ts, on its own.
 */
export function astralbootCommand(paths?: ServerPaths, bundle?: string): string[] {
  const exe = Deno.execPath();
  const name = exe.slice(exe.lastIndexOf("/") + 1);
  if (name !== "deno") return [exe];
  const main = new URL("../main.ts", import.meta.url);
  const config = new URL("../deno.json", import.meta.url);
  return [
    exe,
    "run",
    "--unstable-net",
    ...(bundle
      ? ["--no-config", "--no-lock"]
      : [`--config=${decodeURIComponent(config.pathname)}`]),
    "--allow-net",
    paths ? `--allow-read=${[...paths.read, ...HOST_READ_PATHS].join(",")}` : "--allow-read",
    paths ? `--allow-write=${paths.write.join(",")}` : "--allow-write",
    "--allow-sys",
    "--allow-ffi",
    bundle ?? decodeURIComponent(main.pathname),
  ];
}

/**
 * The config.toml the lab gives Astral Boot: serve on the bridge (addresses, or boot
 * information only beside the peer), boot the fixture at once, Secure Boot's chain when the
 * firmware has Secure Boot (`ctx.secureBoot`).
 */
export function labConfig(
  ctx:
    & Pick<LabContext, "iface" | "range" | "workDir">
    & Partial<Pick<LabContext, "secureBoot" | "dhcp">>,
  options: { httpPort: number; os: string; logLevel: string },
): string {
  return [
    `interface = ${JSON.stringify(ctx.iface)}`,
    `data_dir = ${JSON.stringify(`${ctx.workDir}/data`)}`,
    `log_level = ${JSON.stringify(options.logLevel)}`,
    "",
    "[dhcp]",
    `mode = ${JSON.stringify(ctx.dhcp ?? "server")}`,
    `range = [${JSON.stringify(ctx.range[0])}, ${JSON.stringify(ctx.range[1])}]`,
    "",
    "[http]",
    `port = ${options.httpPort}`,
    "",
    "[boot]",
    `default = ${JSON.stringify(options.os)}`,
    // 0 would make iPXE wait for a key; 1 s is the shortest unattended menu.
    "menu_timeout = 1",
    `secure_boot = ${ctx.secureBoot ?? false}`,
    "",
  ].join("\n");
}

/** Astral Boot itself, `serve -c <lab config> -l <tree>`, JSON log lines on stdout. */
export function astralbootServer(options: AstralbootServerOptions = {}): LabServer {
  const httpPort = options.httpPort ?? 80;
  return {
    name: "astralboot",
    httpPort,
    async start(ctx) {
      const os = options.os ?? ctx.os;
      await Deno.mkdir(`${ctx.workDir}/data`, { recursive: true });
      const config = `${ctx.workDir}/config.toml`;
      await Deno.writeTextFile(
        config,
        labConfig(ctx, { httpPort, os, logLevel: options.logLevel ?? "info" }),
      );
      const argv = [
        ...(options.command ??
          astralbootCommand(
            {
              read: [ctx.tree, ctx.workDir, ...options.bundle ? [options.bundle] : []],
              write: [ctx.workDir],
            },
            options.bundle,
          )),
        "serve",
        "-c",
        config,
        "-l",
        ctx.tree,
        "--log-format",
        "json",
      ];
      ctx.logger.debug("lab", "starting astralboot", { argv: argv.join(" ") });
      return spawnAll(ctx.ns, [{ tag: "astralboot", argv }]);
    },
  };
}
