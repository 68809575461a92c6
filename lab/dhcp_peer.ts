/**
 * The other DHCP server of `--dhcp proxy`: dnsmasq handing out addresses and nothing about
 * booting, as a site's router would, on the lab link beside the boot server (which then runs
 * in proxy mode). It lives in a namespace of its own, a second host on the link: its veth is a
 * port of the lab bridge.
 *
 * With `nextServer` its answers name the boot server as next-server (siaddr), and still no
 * bootfile: Debian's signed GRUB ignores ProxyDHCP and reads from the next-server of the
 * address server's ACK (docs/FIRMWARE.md), so Secure Boot beside another DHCP server needs it.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { Netns, suffix } from "./netns.ts";
import { dnsmasqDhcp, type RunningServer, spawnAll } from "./servers.ts";

/** Where the peer sits on the lab link and what it hands out. */
export interface DhcpPeerOptions {
  /** The lab namespace and its bridge. */
  lab: Netns;
  bridge: string;
  /** The peer's own address (CIDR), e.g. 10.77.0.2/24. */
  cidr: string;
  /** First and last address it hands out, and their netmask. */
  range: [string, string];
  netmask: string;
  /** The boot server's address, named as next-server in every answer; default dnsmasq's own. */
  nextServer?: string;
  /** A private folder for its lease and pid files. */
  workDir: string;
  /** Namespace name prefix. */
  prefix: string;
  logger: Logger;
}

/** The running peer; `dispose` stops dnsmasq and removes its namespace. */
export interface DhcpPeer extends RunningServer {
  readonly namespace: string;
  dispose(): Promise<void>;
}

/** Starts the peer and waits until it listens on port 67. */
export async function startDhcpPeer(o: DhcpPeerOptions): Promise<DhcpPeer> {
  const ns = await Netns.create(o.prefix);
  let server: RunningServer | undefined;
  const dispose = async () => {
    await server?.stop();
    await ns.dispose();
  };
  try {
    const s = suffix();
    const outside = `vp${s}`, inside = `vq${s}`;
    await o.lab.exec([
      "ip",
      "link",
      "add",
      outside,
      "type",
      "veth",
      "peer",
      "name",
      inside,
      "netns",
      ns.name,
    ]);
    await o.lab.exec(["ip", "link", "set", outside, "master", o.bridge, "up"]);
    await ns.exec(["ip", "link", "set", inside, "name", "eth0"]);
    await ns.exec(["ip", "addr", "add", o.cidr, "dev", "eth0"]);
    await ns.exec(["ip", "link", "set", "eth0", "up"]);
    server = spawnAll(ns, [{
      tag: "dnsmasq-peer",
      argv: [
        ...dnsmasqDhcp({ ...o, iface: "eth0", files: `${o.workDir}/peer` }),
        // Without its ~3 s ping before each new address (docs/FIRMWARE.md), a boot's time
        // measures the boot server, not the peer.
        "--no-ping",
        // No file name, no server name: next-server (siaddr) alone.
        ...(o.nextServer ? [`--dhcp-boot=,,${o.nextServer}`] : []),
      ],
    }]);
    const deadline = Date.now() + 15_000;
    while (!/:67\s/.test((await ns.exec(["ss", "-Hlun"], { check: false })).stdout)) {
      if (Date.now() > deadline) throw new Error(`dnsmasq peer did not listen: ${server.lines}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    o.logger.debug("lab", "DHCP peer ready", { ns: ns.name, range: o.range.join("-") });
    const running = server;
    return {
      namespace: ns.name,
      lines: running.lines,
      exited: running.exited,
      stop: () => running.stop(),
      dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}
