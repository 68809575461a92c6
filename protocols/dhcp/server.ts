/**
 * The DHCP server loop: receive on the configured interface, decode, ask the injected
 * handler, encode within the client's size limit, send. It knows the wire rules (ports,
 * telling other servers apart), never what to answer: that is the handler's business
 * (`boot/dhcp_responder.ts`). A malformed packet is logged at debug and dropped; a failing
 * handler is logged and the loop goes on.
 *
 * Sockets (all bound to the one interface, see `net/udp_socket.ts`):
 * - port 67, always: requests from clients and relays;
 * - port 4011 in `proxy` and `auto` mode: iPXE's ProxyDHCPREQUEST and PXE boot-server requests;
 * - port 68 in `auto` mode during the start-up probe only (see {@linkcode startDhcpServer}).
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { MalformedPacketError } from "../../net/bytes.ts";
import { SendQueue } from "../../net/send_queue.ts";
import {
  type Datagram,
  type InterfaceSocketOptions,
  InterfaceUdpSocket,
  type Peer,
} from "../../net/udp_socket.ts";
import { DhcpOption, DhcpOptions, MessageType, messageTypeName } from "./options.ts";
import { decodeDhcp, type DhcpPacket, encodeDhcp } from "./packet.ts";
import {
  type DhcpReply,
  encodeReply,
  isForeignServerReply,
  PXE_PORT,
  selectsOtherServer,
  SERVER_PORT,
} from "./wire.ts";

/** What a handler knows about a request besides its bytes. */
export interface DhcpRequestContext {
  /** Where it came from (a relay's address for relayed requests). */
  from: Peer;
  /** 67, or 4011 for ProxyDHCP/PXE boot-server requests. */
  port: number;
  /** "server" hands out addresses; "proxy" only boot information (auto mode decides). */
  mode: "server" | "proxy";
}

/**
 * Decides the answer to one request; null for none. Pure apart from its own state. A promise
 * is an answer that must wait (an ACK until its lease is on disk): the loop goes on with the
 * next requests and sends it when it resolves.
 */
export type DhcpHandler = (
  req: DhcpPacket,
  ctx: DhcpRequestContext,
) => DhcpReply | null | Promise<DhcpReply | null>;

/** Options of {@linkcode startDhcpServer}. */
export interface DhcpServerOptions {
  /** The only interface DHCP ever answers on. */
  interface: string;
  /** "server" | "proxy" | "auto" (probe, then server unless another server answers). */
  mode: "server" | "proxy" | "auto";
  /** Our address (option 54): replies from any other server id mean another server. */
  serverIp: string;
  handler: DhcpHandler;
  logger: Logger;
  /**
   * Auto mode: how long to listen for other servers before serving addresses. Default 6 s:
   * dnsmasq pings an address for ~3 s before it offers it.
   */
  probeSeconds?: number;
}

/** A running DHCP server. */
export interface DhcpServer {
  /** What it does right now ("auto" resolves to "proxy" while probing and after a conflict). */
  readonly mode: "server" | "proxy";
  /** Stops every loop and closes the sockets. */
  close(): Promise<void>;
}

const SUB = "dhcp";
/**
 * Port 67's receive buffer asked for (the kernel's default is ~208 KiB, ~150 requests): a storm
 * of DISCOVERs (a rack powered on at once) waits in it while a commit or a collection holds the
 * server, instead of being dropped and sent again seconds later. Measured on a veth at 5 000
 * DORA/s, this machine's capacity, in 6 s runs: ~2.4 % of the DISCOVERs dropped with the
 * default, none with this (past capacity both drop).
 */
const RECEIVE_BUFFER = 1 << 20;
/**
 * Requests read in one `recvmmsg` and answered in one turn, their replies sent together: a
 * system call for many datagrams each way instead of one each (see `net/send_queue.ts`).
 */
const BURST = 16;
/**
 * Longest request read whole: a datagram that fills a 9 000-byte jumbo frame, with room to spare
 * (a request rarely passes 600 bytes). Each socket keeps BURST buffers this size; a longer
 * datagram is cut by the kernel and dropped as malformed.
 */
const DATAGRAM_SIZE = 9216;

/**
 * Starts the DHCP server on one interface. Rejects (before answering anything) with a
 * `BindError` when port 67 cannot be bound, or an Error naming a missing interface.
 *
 * `auto` mode decides like this: for `probeSeconds` after start it answers as a ProxyDHCP
 * server (boot info only, harmless beside any other server) while it listens on port 68 and
 * sends one DISCOVER of its own (chaddr = the interface MAC, option 60 "astralboot-probe").
 * If any OFFER/ACK with an address from another server id arrives, it stays proxy; otherwise it
 * starts handing out addresses. Later, a client REQUEST that names another server id (seen on
 * port 67) switches it to proxy for good. Port 68 is closed after the probe so that unicast
 * replies to a DHCP client on this host are never taken away from it.
 */
// deno-lint-ignore require-await
export async function startDhcpServer(o: DhcpServerOptions): Promise<DhcpServer> {
  const log = o.logger;
  const main = InterfaceUdpSocket.open({
    interface: o.interface,
    port: SERVER_PORT,
    receiveBuffer: RECEIVE_BUFFER,
    receiveSize: DATAGRAM_SIZE,
    logger: log,
  });
  const sockets = [main];
  if (o.mode !== "server") {
    try {
      sockets.push(
        InterfaceUdpSocket.open({
          interface: o.interface,
          port: PXE_PORT,
          receiveSize: DATAGRAM_SIZE,
          logger: log,
        }),
      );
    } catch (e) {
      log.warn(SUB, "no PXE port 4011; ProxyDHCPREQUESTs go unanswered", { error: e });
    }
  }

  let mode: "server" | "proxy" = o.mode === "server" ? "server" : "proxy";
  // Auto mode: a client that chose another server while the probe listens shows that server.
  let chosenElsewhere: Record<string, unknown> | null = null;
  const toProxy = (why: string, fields: Record<string, unknown>) => {
    chosenElsewhere ??= fields;
    if (mode === "proxy") return;
    mode = "proxy";
    log.warn(SUB, `another DHCP server is active: proxy mode from now on (${why})`, fields);
  };

  const probeXids = new Set<number>();
  let closing = false;
  const loops = sockets.map((sock) =>
    serveSocket(sock, log, (req, d) => {
      if (probeXids.has(req.xid)) return null;
      if (sock.port === SERVER_PORT && o.mode === "auto" && selectsOtherServer(req, o.serverIp)) {
        toProxy("a client chose it", { server: req.options.ip(DhcpOption.ServerId) });
      }
      return o.handler(req, { from: d.from, port: sock.port, mode });
    })
  );

  log.info(SUB, "DHCP listening", {
    interface: o.interface,
    address: o.serverIp,
    mode: o.mode,
    // What the kernel granted: without CAP_NET_ADMIN, net.core.rmem_max caps it.
    receive_buffer: main.receiveBuffer / 2,
  });

  let probeClose: (() => Promise<void>) | undefined;
  if (o.mode === "auto") {
    const probe = probeForServers(o, main.info.mac, probeXids);
    loops.push(probe.then((found) => {
      mode = modeAfterProbe(found, log, { closing, chosenElsewhere });
    }));
    probeClose = probe.close;
  }

  return {
    get mode() {
      return mode;
    },
    async close() {
      closing = true;
      await probeClose?.();
      await Promise.all(sockets.map((s) => s.close()));
      await Promise.all(loops);
    },
  };
}

/** Receive → decode → handle → encode → send, until the socket closes. */
async function serveSocket(
  sock: InterfaceUdpSocket,
  log: Logger,
  handle: (req: DhcpPacket, d: Datagram) => ReturnType<DhcpHandler>,
): Promise<void> {
  const replies = new SendQueue(
    sock,
    ({ address, port, count, error }) =>
      log.error(SUB, "reply not sent", { dest: `${address}:${port}`, count, error }),
  );
  for (;;) {
    let burst: Datagram[] | null;
    try {
      burst = await sock.receiveMany(BURST);
    } catch (e) {
      log.error(SUB, "receive failed", { port: sock.port, error: e });
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!burst) return;
    for (const d of burst) serveDatagram(d, replies, log, handle);
  }
}

/** Decodes and answers one request; its reply joins `replies` (sent at the end of the turn). */
function serveDatagram(
  d: Datagram,
  replies: SendQueue,
  log: Logger,
  handle: (req: DhcpPacket, d: Datagram) => ReturnType<DhcpHandler>,
): void {
  let req: DhcpPacket;
  try {
    if (d.truncated) {
      // The decoder takes options without an End: a cut request could decode as another one.
      throw new MalformedPacketError(`longer than ${DATAGRAM_SIZE} bytes`, DATAGRAM_SIZE);
    }
    req = decodeDhcp(d.data);
  } catch (e) {
    // The decoder throws nothing else (fuzzed); were it to, the packet is dropped, loudly,
    // and the rest of the burst is still answered.
    const level = e instanceof MalformedPacketError ? "debug" : "error";
    log[level](SUB, "malformed packet dropped", {
      from: `${d.from.address}:${d.from.port}`,
      bytes: d.data.length,
      error: e,
    });
    return;
  }
  const failed = (e: unknown) =>
    log.error(SUB, "handler failed", {
      from: `${d.from.address}:${d.from.port}`,
      xid: req.xid,
      error: e,
    });
  try {
    const reply = handle(req, d);
    if (reply instanceof Promise) {
      // Not awaited: the requests behind this one are answered while it waits.
      reply.then((r) => {
        if (r && !replies.socket.closed) queueReply(replies, r, log);
      }).catch(failed);
    } else if (reply) queueReply(replies, reply, log);
  } catch (e) {
    failed(e);
  }
}

function queueReply(replies: SendQueue, reply: DhcpReply, log: Logger): void {
  const bytes = encodeReply(reply);
  replies.push(bytes, reply.address, reply.port);
  log.debug(SUB, "reply queued", {
    type: messageTypeName(reply.packet.options.messageType() ?? 0),
    bytes: bytes.length,
    dest: `${reply.address}:${reply.port}`,
  });
}

/** What the probe uses of its socket. */
export type ProbeSocket = Pick<InterfaceUdpSocket, "send" | "receive" | "close">;

/** What the probe found: another server's offer, nothing, or why it could not be made. */
export type ProbeResult = { server: string; offered: string } | { reason: string } | null;

/**
 * Auto mode's decision when the probe ends, logged: addresses are handed out only when no
 * server answered the probe, no client chose another server meanwhile (`chosenElsewhere`) and
 * the server is not closing. A probe that could not be made has said why: proxy, the safe side.
 */
export function modeAfterProbe(
  found: ProbeResult,
  log: Logger,
  o: { closing: boolean; chosenElsewhere: Record<string, unknown> | null },
): "server" | "proxy" {
  if (found && "reason" in found) return "proxy";
  if (found) {
    log.warn(SUB, "another DHCP server answered our probe: proxy mode from now on", found);
    return "proxy";
  }
  if (o.chosenElsewhere) {
    log.warn(
      SUB,
      "another DHCP server is active: proxy mode from now on (a client chose it during the probe)",
      o.chosenElsewhere,
    );
    return "proxy";
  }
  if (o.closing) return "proxy";
  log.info(SUB, "no other DHCP server answered: serving addresses");
  return "server";
}

/**
 * Auto mode: listen on port 68 and send our own DISCOVER; resolves with the first other
 * server that offers an address, null after `probeSeconds`, or `{ reason }` when the probe could
 * not be made (then the server stays proxy). Never rejects.
 */
export function probeForServers(
  o: DhcpServerOptions,
  mac: string,
  xids: Set<number>,
  open: (options: InterfaceSocketOptions) => ProbeSocket = InterfaceUdpSocket.open,
): Promise<ProbeResult> & { close: () => Promise<void> } {
  const log = o.logger;
  let sock: ProbeSocket | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = async (): Promise<ProbeResult> => {
    try {
      sock = open({ interface: o.interface, port: 68, logger: log });
    } catch (e) {
      // Without the probe we cannot know we are alone: stay on the safe side.
      log.warn(SUB, "cannot listen on port 68 for other servers; staying proxy", { error: e });
      return { reason: "probe impossible" };
    }
    const s = sock;
    const xid = (Math.random() * 0xffffffff) >>> 0;
    xids.add(xid);
    const send = () => {
      try {
        s.send(probeDiscover(xid, mac), "255.255.255.255", SERVER_PORT);
      } catch (e) {
        log.warn(SUB, "probe DISCOVER not sent", { error: e });
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
        if (isForeignServerReply(p, o.serverIp)) {
          return {
            server: p.options.ip(DhcpOption.ServerId) ?? d.from.address,
            offered: p.yiaddr,
          };
        }
      }
    } catch (e) {
      // Nobody waits for the probe but close(): a rejection here would end the process.
      log.warn(SUB, "the probe for other servers failed; staying proxy", { error: e });
      return { reason: "probe failed" };
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

function probeDiscover(xid: number, mac: string): Uint8Array {
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
