/**
 * The lab harness: one QEMU VM PXE-boots from a boot server, both inside a throwaway network
 * namespace, and the serial console tells whether the fixture's marker was reached.
 *
 * Layout inside namespace `abl-<random>`: bridge `br0` (STP off, forward delay 0) holding the
 * server address, tap `tap0` on the bridge for QEMU, IPv6 on the bridge only (the namespace
 * keeps it off elsewhere). The server, tcpdump and QEMU all run in there; nothing touches the
 * host's interfaces. Everything is removed on success, failure, timeout and SIGINT/SIGTERM.
 *
 * @module
 */

import { Netns, run } from "./netns.ts";
import { errorMessage, type Logger } from "../log.ts";
import { FIXTURE_OS, MARKER } from "./fixture.ts";
import {
  astralbootServer,
  type LabContext,
  type LabDhcp,
  type LabServer,
  type RunningServer,
  spawnAll,
} from "./servers.ts";
import { SerialScreen } from "./screen.ts";
import { type DhcpPeer, startDhcpPeer } from "./dhcp_peer.ts";
import {
  type Packet,
  parseTsharkFields,
  type Stage,
  stagesFromPackets,
  TSHARK_FIELDS,
} from "./stages.ts";
import { type Firmware, firmwareSpec, type Nic } from "./firmware.ts";

export type { Firmware, Nic } from "./firmware.ts";

/** Options for {@linkcode runLab}. */
export interface LabOptions {
  firmware: Firmware;
  nic: Nic;
  /** "proxy": a dnsmasq peer hands out addresses, the server boot information only; default "server". */
  dhcp?: LabDhcp;
  /**
   * The server hands x86-64 UEFI the Secure Boot chain; default what the firmware needs
   * (`lab/firmware.ts`). On for plain UEFI it shows that the chain boots with Secure Boot off.
   */
  secureBoot?: boolean;
  /** The fixture tree the server serves. */
  tree: string;
  /** The boot server; default Astral Boot ({@linkcode astralbootServer}). */
  server?: LabServer;
  /** With the default server: the argv that starts Astral Boot, before `serve -c … -l …`. */
  serverCommand?: string[];
  /** Give up after this long from VM start; default 150 s. */
  timeoutMs?: number;
  logger: Logger;
  /** Called with every serial console line (escape sequences removed). */
  onSerialLine?: (line: string) => void;
  /** What /init prints; default the fixture's {@linkcode MARKER}. */
  marker?: string;
  /** Kernel and initrd file names, to tell the HTTP fetches apart; default the fixture's. */
  images?: { kernel: string; initrd: string };
  /**
   * BIOS: copy the text screen to serial with sga (default true). Without it the serial
   * console shows only the kernel, but iPXE's menu is not slowed by drawing through sga
   * (~8 s more from menu to kernel under TCG).
   */
  sga?: boolean;
  /** Copy the packet capture (pcap) here before the namespace's folder goes. */
  captureFile?: string;
  /** Namespace name prefix; default "abl". */
  prefix?: string;
  /** The VM's MAC; default a random one. Two runs with one MAC are one machine to a server. */
  mac?: string;
  /** VM memory in MiB; default the firmware's (512 for x86; the Debian installer wants 1024). */
  memoryMb?: number;
  /** More QEMU arguments, e.g. a disk (`-drive file=…,format=raw,if=ide`). */
  qemuExtra?: string[];
  /**
   * The NIC's place in the firmware's boot order (QEMU `bootindex`). UEFI with a bootable disk
   * needs it: with no order given OVMF may boot the disk first; with the NIC at 0 and the disk
   * at 1, the disk is what OVMF tries when the network boot returns.
   */
  nicBootIndex?: number;
  /** A server output line matching this also counts as the marker (what the server saw). */
  serverMarker?: RegExp;
}

/** What a lab run found. */
export interface LabResult {
  ok: boolean;
  /** The namespace it ran in (removed by now). */
  namespace: string;
  /** Stages reached, ms after VM start, from the packet capture and the serial console. */
  stages: Stage[];
  /** The whole serial console, escape sequences removed. */
  serial: string;
  /** The server's output lines. */
  serverLog: string[];
  /** With `dhcp: "proxy"`: the output lines of the dnsmasq peer. */
  peerLog?: string[];
  /** Why it failed, one line; absent when ok. */
  error?: string;
  /** TFTP packets in the capture (either way): 0 proves a boot without TFTP. */
  tftpPackets: number;
}

const BRIDGE = "br0";
const TAP = "tap0";
const SERVER_IP = "10.77.0.1";
const PREFIX_LEN = 24;
const NETMASK = "255.255.255.0";
const RANGE: [string, string] = ["10.77.0.100", "10.77.0.150"];
// The peer of `--dhcp proxy`: its own address and a range apart from the server's.
const PEER_CIDR = "10.77.0.2/24";
const PEER_RANGE: [string, string] = ["10.77.0.160", "10.77.0.199"];

/** The QEMU command line for one lab VM. */
export function qemuArgs(
  options: {
    firmware: Firmware;
    nic: Nic;
    mac: string;
    name?: string;
    varsFile?: string;
    sga?: boolean;
    memoryMb?: number;
    nicBootIndex?: number;
  },
): string[] {
  const spec = firmwareSpec(options.firmware);
  const device = [options.nic, "netdev=n0", `mac=${options.mac}`];
  const args = [
    spec.qemu ?? "qemu-system-x86_64",
    "-accel",
    "tcg",
    "-m",
    String(options.memoryMb ?? spec.memoryMb ?? 512),
    "-display",
    "none",
    "-monitor",
    "none",
    "-serial",
    "stdio",
    "-no-reboot",
    "-boot",
    "n",
    "-netdev",
    `tap,id=n0,ifname=${TAP},script=no,downscript=no`,
  ];
  // The namespace name as the VM name, so `pgrep -f` finds a VM that outlived its lab.
  if (options.name) args.push("-name", options.name);
  if (!spec.nics.includes(options.nic)) {
    throw new Error(`qemuArgs: ${options.firmware} boots from ${spec.nics.join(" or ")} only`);
  }
  if (spec.machine) args.push("-machine", spec.machine);
  if (spec.cpu) args.push("-cpu", spec.cpu);
  if (!spec.nicRom(options.nic)) device.push("romfile=");
  if (options.nicBootIndex !== undefined) device.push(`bootindex=${options.nicBootIndex}`);
  args.push("-device", device.join(","));
  if (spec.pflash) {
    if (!options.varsFile) throw new Error("qemuArgs: UEFI needs a writable copy of its vars");
    args.push(
      "-drive",
      `if=pflash,format=raw,readonly=on,file=${spec.pflash.code}`,
      "-drive",
      `if=pflash,format=raw,file=${options.varsFile}`,
    );
  } else if (options.sga ?? true) {
    // sga copies the BIOS text screen (iPXE's) to the serial port.
    args.push("-device", "sga");
  }
  args.push(...(spec.qemuExtra ?? []));
  return args;
}

/** TFTP packets among `packets`: requests to port 69 and whatever tshark decoded as TFTP. */
export function countTftp(packets: readonly Packet[]): number {
  return packets.filter((p) => p.tftp !== undefined || p.udp?.dst === 69).length;
}

function randomMac(): string {
  const b = crypto.getRandomValues(new Uint8Array(3));
  return ["52", "54", "00", ...Array.from(b, (x) => x.toString(16).padStart(2, "0"))].join(":");
}

async function bridge(ns: Netns): Promise<void> {
  const steps = [
    ["ip", "link", "add", BRIDGE, "type", "bridge", "stp_state", "0", "forward_delay", "0"],
    // IPv6 on the bridge alone, so the server can answer iPXE's router solicitations; no DAD,
    // so its link-local address is usable the moment the bridge is up.
    [
      "sysctl",
      "-qw",
      `net.ipv6.conf.${BRIDGE}.accept_dad=0`,
      `net.ipv6.conf.${BRIDGE}.disable_ipv6=0`,
    ],
    ["ip", "addr", "add", `${SERVER_IP}/${PREFIX_LEN}`, "dev", BRIDGE],
    ["ip", "tuntap", "add", "dev", TAP, "mode", "tap"],
    ["ip", "link", "set", TAP, "master", BRIDGE],
    ["ip", "link", "set", TAP, "up"],
    ["ip", "link", "set", BRIDGE, "up"],
  ];
  for (const cmd of steps) await ns.exec(cmd);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Waits until UDP 67 and the HTTP port listen inside the namespace, or the server exits. */
async function waitListening(
  ns: Netns,
  server: RunningServer,
  httpPort: number,
  signal: AbortSignal,
): Promise<void> {
  let exited = false;
  const ended = () => exited = true;
  server.exited.then(ended, ended);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && !signal.aborted && !exited) {
    const udp = await ns.exec(["ss", "-Hlun"], { check: false });
    const tcp = await ns.exec(["ss", "-Hltn"], { check: false });
    if (/:67\s/.test(udp.stdout) && new RegExp(`:${httpPort}\\s`).test(tcp.stdout)) {
      return;
    }
    await sleep(250, signal);
  }
  if (signal.aborted) throw signal.reason;
  throw new Error(
    exited
      ? "boot server exited before it listened on DHCP and HTTP"
      : `boot server did not listen on udp/67 and tcp/${httpPort} within 60 s`,
  );
}

/** Starts tcpdump on the bridge; resolves once it is capturing. */
async function startCapture(ns: Netns, file: string): Promise<RunningServer> {
  // -Z root: tcpdump drops to its own user otherwise and cannot write our private folder.
  // --immediate-mode: without it the last packets are lost when it stops (docs/FIRMWARE.md).
  const cap = spawnAll(ns, [{
    tag: "tcpdump",
    argv: ["tcpdump", "-i", BRIDGE, "-Z", "root", "-U", "--immediate-mode", "-s", "0", "-w", file],
  }]);
  const deadline = Date.now() + 15_000;
  while (!cap.lines.some((l) => l.includes("listening on"))) {
    if (Date.now() > deadline) {
      await cap.stop();
      throw new Error(`tcpdump did not start: ${cap.lines.join(" | ")}`);
    }
    await sleep(50);
  }
  return cap;
}

async function readCapture(file: string, httpPort: number): Promise<string> {
  const args = ["-r", file, "-n", "-d", `tcp.port==${httpPort},http`, "-T", "fields"];
  for (const f of TSHARK_FIELDS) args.push("-e", f);
  args.push("-E", "separator=\t", "-E", "occurrence=a", "-E", "aggregator=,");
  const out = await new Deno.Command("tshark", { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(out.stdout);
}

// A lab namespace holds running processes within seconds of its creation, and a run never
// lasts this long (--timeout is at most an hour): older and empty means a killed run left it.
const STALE_NS_MS = 10 * 60_000;
const STALE_DIR_MS = 2 * 3600_000;

/**
 * Removes what killed runs (SIGKILL, a crash before the clean-up) left: `<prefix>-xxxxx`
 * namespaces with no process that are older than 10 minutes, and lab scratch folders older
 * than 2 hours. Never touches a namespace that still has a process.
 */
export async function sweepStale(prefix: string, logger: Logger, now = Date.now()): Promise<void> {
  const list = await run(["ip", "netns", "list"], { check: false });
  const pattern = new RegExp(`^${prefix.replace(/[^\w-]/g, "")}-[a-z0-9]{5}$`);
  for (const name of list.stdout.split("\n").map((l) => l.split(" ")[0] ?? "")) {
    if (!pattern.test(name)) continue;
    const age = await Deno.stat(`/run/netns/${name}`).then((s) => now - (s.mtime?.getTime() ?? now))
      .catch(() => 0);
    if (age < STALE_NS_MS) continue;
    const pids = await run(["ip", "netns", "pids", name], { check: false });
    if (pids.code !== 0 || pids.stdout.trim() !== "") continue;
    logger.warn("lab", "removing a namespace a killed lab run left behind", { ns: name });
    await run(["ip", "netns", "del", name], { check: false });
  }
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  for await (const entry of Deno.readDir(tmp)) {
    if (!entry.isDirectory || !entry.name.startsWith("abl-lab-")) continue;
    const st = await Deno.stat(`${tmp}/${entry.name}`).catch(() => null);
    if (!st?.mtime || now - st.mtime.getTime() < STALE_DIR_MS) continue;
    logger.warn("lab", "removing a scratch folder a killed lab run left behind", {
      dir: `${tmp}/${entry.name}`,
    });
    await Deno.remove(`${tmp}/${entry.name}`, { recursive: true }).catch(() => {});
  }
}

/** Boots one VM from `options.server` inside a fresh namespace and reports what happened. */
export async function runLab(options: LabOptions): Promise<LabResult> {
  const logger = options.logger;
  const marker = options.marker ?? MARKER;
  const timeoutMs = options.timeoutMs ?? 150_000;
  const images = options.images ?? { kernel: "vmlinuz", initrd: "initrd.gz" };
  const labServer = options.server ?? astralbootServer({ command: options.serverCommand });
  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error("interrupted by signal"));
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);

  const serialLines: string[] = [];
  let serverLog: string[] = [];
  let ns: Netns | undefined;
  let workDir: string | undefined;
  let server: RunningServer | undefined;
  let capture: RunningServer | undefined;
  let peer: DhcpPeer | undefined;
  let qemu: Deno.ChildProcess | undefined;
  let serialDone: Promise<void> = Promise.resolve();
  let qemuErr: Promise<string> = Promise.resolve("");
  // Ends the timers of the wait below, so none outlives the run.
  const settled = new AbortController();
  const wake = AbortSignal.any([abort.signal, settled.signal]);
  let startedAt = 0;
  let markerAt: number | undefined;
  let error: string | undefined;
  let stages: Stage[] = [];
  let tftpPackets = 0;
  const pcap = () => `${workDir}/lab.pcap`;

  try {
    await sweepStale(options.prefix ?? "abl", logger);
    workDir = await Deno.makeTempDir({ prefix: "abl-lab-" });
    ns = await Netns.create(options.prefix ?? "abl");
    const dhcp = options.dhcp ?? "server";
    const spec = firmwareSpec(options.firmware);
    const secureBoot = options.secureBoot ?? spec.secureBoot ?? false;
    logger.info("lab", "namespace ready", {
      ns: ns.name,
      workDir,
      firmware: options.firmware,
      nic: options.nic,
      dhcp,
    });
    await bridge(ns);
    if (dhcp === "proxy") {
      peer = await startDhcpPeer({
        lab: ns,
        bridge: BRIDGE,
        cidr: PEER_CIDR,
        range: PEER_RANGE,
        netmask: NETMASK,
        // GRUB reads from the address server's next-server only (lab/dhcp_peer.ts).
        nextServer: secureBoot || spec.grub ? SERVER_IP : undefined,
        workDir,
        prefix: options.prefix ?? "abl",
        logger,
      });
    }
    const ctx: LabContext = {
      ns,
      iface: BRIDGE,
      serverIp: SERVER_IP,
      prefixLen: PREFIX_LEN,
      netmask: NETMASK,
      range: RANGE,
      tree: options.tree,
      workDir,
      logger,
      secureBoot,
      dhcp,
      os: spec.os ?? FIXTURE_OS,
    };
    server = await labServer.start(ctx);
    serverLog = server.lines;
    await waitListening(ns, server, labServer.httpPort, abort.signal);
    capture = await startCapture(ns, pcap());

    let varsFile: string | undefined;
    const pflash = spec.pflash;
    if (pflash) {
      varsFile = `${workDir}/vars.fd`;
      await Deno.copyFile(pflash.vars, varsFile);
    }
    const argv = qemuArgs({
      ...options,
      name: ns.name,
      mac: options.mac ?? randomMac(),
      varsFile,
    });
    argv.push(...(options.qemuExtra ?? []));
    logger.debug("lab", "starting VM", { argv: argv.join(" ") });
    startedAt = Date.now();
    qemu = ns.spawn(["setsid", ...argv], { stdout: "piped", stderr: "piped" });
    qemuErr = new Response(qemu.stderr).text();
    // Awaited only in some endings: until then a failed read must not end the process (with the
    // namespace, QEMU and the server left running).
    qemuErr.catch(() => "");

    let sawMarker: () => void = () => {};
    const markerSeen = new Promise<void>((resolve) => sawMarker = resolve);
    // The console as a person would have seen it, not the escape-stripped stream.
    let echo = options.onSerialLine;
    const screen = new SerialScreen((line) => {
      serialLines.push(line);
      try {
        echo?.(line);
      } catch (e) {
        // Its reader went away (`astralboot lab | head`): the boot goes on, unechoed.
        echo = undefined;
        logger.debug("lab", "serial echo failed; not echoing any more", { error: e });
      }
      if (markerAt === undefined && line.includes(marker)) {
        markerAt = Date.now();
        sawMarker();
      }
    });
    serialDone = (async () => {
      for await (const text of qemu!.stdout.pipeThrough(new TextDecoderStream())) {
        screen.write(text);
        // A row drawn by cursor moves is a line only once it leaves the screen; the marker
        // counts as soon as it shows.
        if (markerAt === undefined && screen.shows(marker)) {
          markerAt = Date.now();
          sawMarker();
        }
      }
      screen.end();
    })();
    // Handled now (an ending may never await it): the cause stays in the log.
    serialDone.catch((e) => logger.warn("lab", "reading the serial console failed", { error: e }));

    if (options.serverMarker) {
      const re = options.serverMarker, lines = server.lines;
      (async () => {
        while (markerAt === undefined && !wake.aborted) {
          if (lines.some((l) => re.test(l))) {
            markerAt = Date.now();
            sawMarker();
          }
          await sleep(250, wake);
        }
      })();
    }

    const timedOut = sleep(timeoutMs, wake).then(() => "timeout" as const);
    const outcome = await Promise.race([
      markerSeen.then(() => "marker" as const),
      qemu.status.then(() => "exited" as const),
      server.exited.then(() => "server-exited" as const),
      timedOut,
    ]);
    if (outcome === "marker") {
      // /init powers off right after the marker; give QEMU a moment to leave by itself.
      await Promise.race([qemu.status, sleep(10_000, wake)]);
    } else if (abort.signal.aborted) {
      error = "interrupted";
    } else if (outcome === "timeout") {
      error = `no ${marker} on serial within ${timeoutMs / 1000} s`;
    } else if (outcome === "server-exited") {
      error = "boot server exited during the boot";
    } else {
      await serialDone;
      // Power-off can race the read of the last line; the status then arrives first.
      if (markerAt === undefined) {
        const status = await qemu.status;
        error = `QEMU exited (code ${status.code}) before ${marker}: ${(await qemuErr).trim()}`;
      }
    }
  } catch (err) {
    error = abort.signal.aborted ? "interrupted" : errorMessage(err);
  } finally {
    settled.abort();
    if (qemu) {
      try {
        qemu.kill("SIGKILL");
      } catch { /* exited */ }
      await qemu.status;
      await serialDone.catch(() => {});
      await qemuErr.catch(() => "");
    }
    if (server) await server.stop();
    if (peer) await peer.dispose();
    if (capture) {
      await capture.stop();
      try {
        const packets = parseTsharkFields(await readCapture(pcap(), labServer.httpPort));
        stages = stagesFromPackets(packets, { startedAt, ...images, markerAt });
        tftpPackets = countTftp(packets);
        if (options.captureFile) await Deno.copyFile(pcap(), options.captureFile);
      } catch (err) {
        logger.warn("lab", "cannot read the packet capture", { error: err });
      }
    }
    if (workDir) await Deno.remove(workDir, { recursive: true }).catch(() => {});
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    if (ns) await ns.dispose();
  }
  if (markerAt !== undefined) error = undefined;
  const result: LabResult = {
    ok: markerAt !== undefined,
    namespace: ns?.name ?? "",
    stages,
    serial: serialLines.join("\n"),
    serverLog,
    ...(peer ? { peerLog: peer.lines } : {}),
    tftpPackets,
  };
  if (!result.ok) result.error = error ?? "marker not seen";
  return result;
}
