/**
 * The DHCP server loop: receive on the configured interface, decode, ask the policy, encode,
 * send. A malformed packet is logged at debug and dropped; a failing handler is logged and the
 * loop goes on. Nothing here decides what to answer: that is `boot/dhcp_policy.ts`.
 *
 * Sockets (all bound to the one interface, see `socket.ts`):
 * - port 67, always: requests from clients and relays;
 * - port 4011 in `proxy` and `auto` mode: iPXE's ProxyDHCPREQUEST and PXE boot-server requests;
 * - port 68 in `auto` mode during the start-up probe only (see {@linkcode startDhcpServer}).
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Logger } from "../../log.ts";
import { MalformedPacketError } from "../../net/bytes.ts";
import { DhcpOption, DhcpOptions, MessageType } from "./options.ts";
import { decodeDhcp, type DhcpPacket, encodeDhcp } from "./packet.ts";
import { type Datagram, interfaceInfo, InterfaceUdpSocket } from "../../net/udp_socket.ts";
import {
  type BootfileOptions,
  type DhcpOutcome,
  type DhcpPolicyOptions,
  encodeReply,
  handleDhcp,
  handlePxeRequest,
  isForeignServerReply,
  selectsOtherServer,
} from "../../boot/dhcp_responder.ts";
import { LeaseStore, normalizeMac, poolExclusions } from "../../state/leases.ts";

/** A known machine (`[[machine]]`): a reservation when it has an ip, a host name when named. */
export interface DhcpMachine {
  mac: string;
  ip?: string;
  hostname?: string;
}

/** Everything the DHCP server needs; main.ts maps config.toml onto this. */
export interface DhcpServerOptions {
  /** The only interface DHCP ever answers on. */
  interface: string;
  /** "server" | "proxy" | "auto" (probe, then server unless another server answers) | "off". */
  mode: "server" | "proxy" | "auto" | "off";
  /** Our address (option 54, next-server); default the interface's first IPv4 address. */
  serverIp?: string;
  /** Default the interface's netmask. */
  netmask?: string;
  /** Dynamic pool, inclusive; required unless mode is "proxy" or "off". */
  range?: [string, string];
  /** Lease length in seconds. */
  leaseSeconds: number;
  router?: string;
  dns?: string[];
  domain?: string;
  boot: BootfileOptions;
  machines?: DhcpMachine[];
  /** The shared SQLite handle (boot/db.ts); required unless mode is "proxy" or "off". */
  db?: DatabaseSync;
  logger: Logger;
  /** Called for every DHCPACK sent (leases and INFORM answers), e.g. to record the machine. */
  onAck?: (mac: string, ip: string) => void;
  /**
   * Auto mode: how long to listen for other servers before serving addresses. Default 6 s:
   * dnsmasq pings an address for ~3 s before it offers it.
   */
  probeSeconds?: number;
}

/** A running DHCP server. */
export interface DhcpServer {
  /** What it does right now ("auto" resolves to "proxy" while probing and after a conflict). */
  readonly mode: "server" | "proxy" | "off";
  /** The lease store (undefined in proxy/off mode). */
  readonly leases?: LeaseStore;
  /** Stops every loop and closes the sockets. */
  close(): Promise<void>;
}

const _SUB = "dhcp";

/** The lease store for a server configuration: pool minus network/broadcast/server/router. */
export function createLeaseStore(
  db: DatabaseSync,
  o: {
    range: [string, string];
    serverIp: string;
    netmask: string;
    router?: string;
    machines?: DhcpMachine[];
  },
): LeaseStore {
  return new LeaseStore(db, {
    range: o.range,
    exclude: poolExclusions(o.serverIp, o.netmask, o.router),
    reservations: (o.machines ?? []).flatMap((m) =>
      m.ip ? [{ mac: m.mac, ip: m.ip, hostname: m.hostname }] : []
    ),
  });
}

/**
 * Starts the DHCP server on one interface. Throws (before answering anything) when the
 * interface is missing, has no IPv4 address, or port 67 cannot be bound.
 *
 * `auto` mode decides like this: for `probeSeconds` after start it answers as a ProxyDHCP
 * server (boot info only, harmless beside any other server) while it listens on port 68 and
 * sends one DISCOVER of its own (chaddr = the interface MAC, option 60 "astralboot-probe").
 * If any OFFER/ACK with an address from another server id arrives, it stays proxy; otherwise it
 * starts handing out addresses. Later, a client REQUEST that names another server id (seen on
 * port 67) switches it to proxy for good. Port 68 is closed after the probe so that unicast
 * replies to a DHCP client on this host are never taken away from it.
 */
export function startDhcpServer(o: DhcpServerOptions): DhcpServer {
  const log = o.logger;
  if (o.mode === "off") {
    log.info(_SUB, "DHCP is off", { interface: o.interface });
    return { mode: "off", close: () => Promise.resolve() };
  }
  const info = interfaceInfo(o.interface);
  const serverIp = o.serverIp ?? info.address;
  const netmask = o.netmask ?? info.netmask;
  let leases: LeaseStore | undefined;
  if (o.mode !== "proxy") {
    if (!o.range || !o.db) throw new Error(`DHCP mode "${o.mode}" needs a range and a database`);
    leases = createLeaseStore(o.db, { ...o, range: o.range, serverIp, netmask });
  }
  const hostnames = new Map(
    (o.machines ?? []).flatMap((m) => m.hostname ? [[normalizeMac(m.mac), m.hostname]] : []),
  );
  const policy = (mode: "server" | "proxy"): DhcpPolicyOptions => ({
    mode,
    serverIp,
    netmask,
    router: o.router,
    dns: o.dns,
    domain: o.domain,
    leaseSeconds: o.leaseSeconds,
    boot: o.boot,
    leases,
    hostnames,
  });

  const main = InterfaceUdpSocket.open({ interface: o.interface, port: 67, logger: log });
  const sockets = [main];
  let pxe: InterfaceUdpSocket | undefined;
  if (o.mode !== "server") {
    try {
      pxe = InterfaceUdpSocket.open({ interface: o.interface, port: 4011, logger: log });
      sockets.push(pxe);
    } catch (e) {
      log.warn(_SUB, "no PXE port 4011; ProxyDHCPREQUESTs go unanswered", { error: e });
    }
  }

  let mode: "server" | "proxy" = o.mode === "server" ? "server" : "proxy";
  const toProxy = (why: string, fields: Record<string, unknown>) => {
    if (mode === "proxy") return;
    mode = "proxy";
    log.warn(_SUB, `another DHCP server is active: proxy mode from now on (${why})`, fields);
  };

  const probeXids = new Set<number>();
  let closing = false;
  let probeClose: (() => Promise<void>) | undefined;
  const loops: Promise<void>[] = [];
  loops.push(_serve(main, log, (req) => {
    if (probeXids.has(req.xid)) return null;
    if (o.mode === "auto" && selectsOtherServer(req, serverIp)) {
      toProxy("a client chose it", { server: req.options.ip(DhcpOption.ServerId) });
    }
    const out = handleDhcp(req, policy(mode));
    const { mac, ip } = out?.fields ?? {};
    if (out?.reply && out.event === "DHCPACK" && typeof ip === "string" && o.onAck) {
      try {
        o.onAck(String(mac), ip);
      } catch (e) {
        log.warn(_SUB, "onAck failed", { mac, error: e });
      }
    }
    return out;
  }));
  if (pxe) loops.push(_serve(pxe, log, (req, d) => handlePxeRequest(req, policy("proxy"), d.from)));

  log.info(_SUB, "DHCP listening", {
    interface: o.interface,
    address: serverIp,
    mode: o.mode,
    range: o.range?.join("-"),
  });

  if (o.mode === "auto") {
    const probe = _probe(o, info.mac, serverIp, probeXids, log);
    loops.push(probe.then((foreign) => {
      if (foreign) {
        log.warn(_SUB, "another DHCP server answered our probe: proxy mode from now on", foreign);
      } else if (!closing) {
        mode = "server";
        log.info(_SUB, "no other DHCP server answered: serving addresses", { range: o.range });
      }
    }));
    probeClose = probe.close;
  }

  return {
    get mode() {
      return mode;
    },
    leases,
    async close() {
      closing = true;
      await probeClose?.();
      await Promise.all(sockets.map((s) => s.close()));
      await Promise.all(loops);
    },
  };
}

/** Receive → decode → handle → encode → send, until the socket closes. */
async function _serve(
  sock: InterfaceUdpSocket,
  log: Logger,
  handle: (req: DhcpPacket, d: Datagram) => DhcpOutcome | null,
): Promise<void> {
  for (;;) {
    let d: Datagram | null;
    try {
      d = await sock.receive();
    } catch (e) {
      log.error(_SUB, "receive failed", { port: sock.port, error: e });
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!d) return;
    let req: DhcpPacket;
    try {
      req = decodeDhcp(d.data);
    } catch (e) {
      if (!(e instanceof MalformedPacketError)) throw e;
      log.debug(_SUB, "malformed packet dropped", {
        from: `${d.from.address}:${d.from.port}`,
        bytes: d.data.length,
        error: e,
      });
      continue;
    }
    try {
      const out = handle(req, d);
      if (!out) continue;
      if (!out.reply) {
        const level = out.event === "ignored" ? "debug" : "info";
        log[level](_SUB, out.event, { ...out.fields, port: sock.port });
        continue;
      }
      const bytes = encodeReply(out.reply);
      sock.send(bytes, out.reply.address, out.reply.port);
      const ip = out.fields.ip ?? "";
      log.info(_SUB, `${out.event}${ip ? ` ${ip}` : ""} to ${out.fields.mac}`, {
        ...out.fields,
        dest: `${out.reply.address}:${out.reply.port}`,
      });
    } catch (e) {
      log.error(_SUB, "handler failed", {
        from: `${d.from.address}:${d.from.port}`,
        xid: req.xid,
        error: e,
      });
    }
  }
}

/**
 * Auto mode: listen on port 68 and send our own DISCOVER; resolves with the first other
 * server that offers an address, or null after `probeSeconds`.
 */
function _probe(
  o: DhcpServerOptions,
  mac: string,
  serverIp: string,
  xids: Set<number>,
  log: Logger,
): Promise<Record<string, unknown> | null> & { close: () => Promise<void> } {
  let sock: InterfaceUdpSocket | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = async (): Promise<Record<string, unknown> | null> => {
    try {
      sock = InterfaceUdpSocket.open({ interface: o.interface, port: 68, logger: o.logger });
    } catch (e) {
      // Without the probe we cannot know we are alone: stay on the safe side.
      log.warn(_SUB, "cannot listen on port 68 for other servers; staying proxy", { error: e });
      return { reason: "probe impossible" };
    }
    const s = sock;
    const xid = (Math.random() * 0xffffffff) >>> 0;
    xids.add(xid);
    const send = () => {
      try {
        s.send(_probeDiscover(xid, mac), "255.255.255.255", 67);
      } catch (e) {
        log.warn(_SUB, "probe DISCOVER not sent", { error: e });
      }
    };
    send();
    const window = (o.probeSeconds ?? 6) * 1000;
    // Three DISCOVERs over the window, in case one is lost.
    const resends = [setTimeout(send, window / 3), setTimeout(send, (2 * window) / 3)];
    timer = setTimeout(() => s.close(), window);
    try {
      for (;;) {
        const d = await s.receive();
        if (!d) return null;
        let p: DhcpPacket;
        try {
          p = decodeDhcp(d.data);
        } catch {
          continue;
        }
        if (isForeignServerReply(p, serverIp)) {
          return {
            server: p.options.ip(DhcpOption.ServerId) ?? d.from.address,
            offered: p.yiaddr,
          };
        }
      }
    } finally {
      resends.forEach(clearTimeout);
      clearTimeout(timer);
      await s.close();
    }
  };
  const promise = run();
  return Object.assign(promise, {
    close: async () => {
      clearTimeout(timer);
      await sock?.close();
      await promise.catch(() => null);
    },
  });
}

function _probeDiscover(xid: number, mac: string): Uint8Array {
  const chaddr = Uint8Array.from(mac.split(":").map((h) => parseInt(h, 16)));
  const options = new DhcpOptions()
    .setMessageType(MessageType.Discover)
    .setString(DhcpOption.VendorClassId, "astralboot-probe")
    .set(DhcpOption.ParamRequestList, Uint8Array.of(1, 3, 54));
  return encodeDhcp({
    op: 1,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid,
    secs: 0,
    // Broadcast flag: the answer must reach us although we take no address.
    flags: 0x8000,
    ciaddr: "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: "0.0.0.0",
    chaddr,
    sname: "",
    file: "",
    options,
  });
}
