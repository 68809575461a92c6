/**
 * The DNS server loop: UDP and TCP on one address, decode, ask the injected handler, send the
 * answer back within the client's size limit. It knows the wire rules (framing, truncation,
 * FORMERR for a query that does not decode, never answering a response), not what to answer:
 * that is the handler's business (`boot/dns_responder.ts`).
 *
 * UDP goes through a socket bound to the address on the one interface (`net/udp_socket.ts`);
 * TCP through a listener on the same address and port (RFC 7766: every DNS server speaks
 * both). Queries on one TCP connection are answered as they complete, several at once; idle
 * connections are closed, and the number of connections is bounded overall and per client.
 * A bad packet is logged at debug and dropped (or answered FORMERR); it never stops a loop.
 *
 * @module
 */
import { errorMessage, type Logger } from "../../log.ts";
import { MalformedPacketError } from "../../net/bytes.ts";
import { BindError } from "../../net/errors.ts";
import { InterfaceUdpSocket, type Peer } from "../../net/udp_socket.ts";
import { decodeDns, type DnsMessage, encodeDns, Rcode } from "./message.ts";
import { closeQuietly, frame, FrameReader, MAX_FRAME } from "./tcp.ts";
import { ednsOf, fitAnswer, formatError, responseTo, udpLimit } from "./wire.ts";

/** One query as the handler sees it. */
export interface DnsRequest {
  message: DnsMessage;
  /** The bytes as received: a forwarder relays them. */
  bytes: Uint8Array;
  from: Peer;
  transport: "udp" | "tcp";
}

/** An answer: a message to encode, or bytes ready to send (a relayed upstream answer). */
export type DnsReply = DnsMessage | Uint8Array;

/** Decides the answer to one query; null sends none. */
export type DnsHandler = (req: DnsRequest) => Promise<DnsReply | null> | DnsReply | null;

/** A message the loop dropped or answered itself, before any handler saw it. */
export interface DnsDropEvent {
  /** malformed: did not decode (answered FORMERR when it had a header); response: not a query. */
  reason: "malformed" | "response";
  from: Peer;
  transport: "udp" | "tcp";
}

/** The UDP socket the loop needs; `InterfaceUdpSocket` is one. */
export interface DnsUdpSocket {
  readonly port: number;
  /** The next datagram; null once closed. */
  receive(): Promise<{ data: Uint8Array; from: Peer } | null>;
  send(data: Uint8Array, address: string, port: number): void | Promise<void>;
  close(): Promise<void>;
}

/** Options of {@linkcode startDnsServer}. */
export interface DnsServerOptions {
  /** The only interface DNS is served on. */
  interface: string;
  /** The address to listen on (the interface's, never 0.0.0.0). */
  address: string;
  port: number;
  handler: DnsHandler;
  logger: Logger;
  /** Every message dropped or answered by the loop itself. */
  onDrop?: (e: DnsDropEvent) => void;
  /** Opens the UDP socket; default bound to `address` on `interface`. Tests on loopback pass their own. */
  openUdp?: (address: string, port: number) => DnsUdpSocket;
  /** TCP connections at once; default 128. */
  maxConnections?: number;
  /** TCP connections of one client address; default 8. */
  maxConnectionsPerClient?: number;
  /** A TCP connection with no query for this long is closed; default 10 s (RFC 7766 §6.2.3). */
  idleMs?: number;
  /** Queries of one TCP connection answered at once; default 16. */
  pipeline?: number;
  /**
   * Whether a TCP client may connect: the TCP listener, unlike the UDP socket, cannot be held
   * to the interface (the kernel takes a connection to this address on any interface), so the
   * caller names its clients; default anyone.
   */
  tcpClient?: (address: string) => boolean;
}

/** A running DNS server. */
export interface DnsServer {
  /** The port both listen on. */
  readonly port: number;
  close(): Promise<void>;
}

const SUB = "dns";

/**
 * Starts UDP and TCP on `address:port`. Rejects with a `BindError` when either cannot be had,
 * or an Error naming a missing interface.
 */
// deno-lint-ignore require-await
export async function startDnsServer(o: DnsServerOptions): Promise<DnsServer> {
  const open = o.openUdp ??
    ((address, port) =>
      InterfaceUdpSocket.open({ interface: o.interface, address, port, logger: o.logger }));
  const udp = open(o.address, o.port);
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ transport: "tcp", hostname: o.address, port: udp.port });
  } catch (e) {
    void udp.close();
    throw new BindError(`tcp ${o.address}:${udp.port}`, errorMessage(e), { cause: e });
  }
  const tcp = new TcpSide(listener, o);
  const loops = [udpLoop(udp, o), tcp.run()];
  o.logger.info(SUB, "DNS listening", {
    interface: o.interface,
    address: o.address,
    port: udp.port,
  });
  return {
    port: udp.port,
    async close() {
      await udp.close();
      await tcp.close();
      await Promise.all(loops);
    },
  };
}

/** Decodes a query and asks the handler; the answer's bytes, or null for none. */
async function answer(
  o: DnsServerOptions,
  bytes: Uint8Array,
  from: Peer,
  transport: "udp" | "tcp",
): Promise<Uint8Array | null> {
  let message: DnsMessage;
  let limit = MAX_FRAME;
  try {
    message = decodeDns(bytes);
    if (transport === "udp") limit = udpLimit(ednsOf(message));
  } catch (e) {
    if (!(e instanceof MalformedPacketError)) throw e;
    o.logger.debug(SUB, "malformed message", {
      from: `${from.address}:${from.port}`,
      transport,
      bytes: bytes.length,
      error: e,
    });
    o.onDrop?.({ reason: "malformed", from, transport });
    return formatError(bytes);
  }
  if (message.flags.qr) {
    o.onDrop?.({ reason: "response", from, transport });
    return null;
  }
  let reply: DnsReply | null;
  try {
    reply = await o.handler({ message, bytes, from, transport });
  } catch (e) {
    o.logger.error(SUB, "handler failed", { from: from.address, id: message.id, error: e });
    reply = responseTo(message, Rcode.ServFail, null);
  }
  if (reply === null) return null;
  const wire = reply instanceof Uint8Array ? reply : encodeDns(reply);
  return fitAnswer(wire, limit);
}

/** Receive → answer → send, each datagram on its own, until the socket closes. */
async function udpLoop(sock: DnsUdpSocket, o: DnsServerOptions): Promise<void> {
  for (;;) {
    let d: { data: Uint8Array; from: Peer } | null;
    try {
      d = await sock.receive();
    } catch (e) {
      o.logger.error(SUB, "receive failed", { error: e });
      await new Promise((r) => setTimeout(r, 1000));
      continue;
    }
    if (!d) return;
    const { data, from } = d;
    // Not awaited: a forwarded query waits for its upstream, the next one must not.
    answer(o, data, from, "udp").then(async (reply) => {
      if (reply) await sock.send(reply, from.address, from.port);
    }).catch((e) => {
      o.logger.debug(SUB, "answer not sent", { to: `${from.address}:${from.port}`, error: e });
    });
  }
}

/** The TCP listener and its connections. */
class TcpSide {
  #conns = new Set<Deno.TcpConn>();
  #perClient = new Map<string, number>();
  #running = new Set<Promise<void>>();
  #closed = false;

  constructor(readonly listener: Deno.TcpListener, readonly o: DnsServerOptions) {}

  async run(): Promise<void> {
    const max = this.o.maxConnections ?? 128;
    const maxPer = this.o.maxConnectionsPerClient ?? 8;
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.listener.accept();
      } catch (e) {
        if (this.#closed) return;
        this.o.logger.error(SUB, "accept failed", { error: e });
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      const client = conn.remoteAddr.hostname;
      if (this.o.tcpClient && !this.o.tcpClient(client)) {
        this.o.logger.debug(SUB, "TCP connection from outside the served networks, closed", {
          client,
        });
        conn.close();
        continue;
      }
      const mine = this.#perClient.get(client) ?? 0;
      if (this.#conns.size >= max || mine >= maxPer) {
        this.o.logger.debug(SUB, "too many TCP connections, closed", { client, mine });
        conn.close();
        continue;
      }
      this.#conns.add(conn);
      this.#perClient.set(client, mine + 1);
      const done = this.#serve(conn).catch((e) => {
        this.o.logger.debug(SUB, "TCP connection ended", { client, error: e });
      }).finally(() => {
        this.#conns.delete(conn);
        const left = (this.#perClient.get(client) ?? 1) - 1;
        if (left > 0) this.#perClient.set(client, left);
        else this.#perClient.delete(client);
        this.#running.delete(done);
        closeQuietly(conn);
      });
      this.#running.add(done);
    }
  }

  /** Reads queries until the client closes, goes idle, or sends a broken frame. */
  async #serve(conn: Deno.TcpConn): Promise<void> {
    const from = { address: conn.remoteAddr.hostname, port: conn.remoteAddr.port };
    const idleMs = this.o.idleMs ?? 10_000;
    const pipeline = this.o.pipeline ?? 16;
    const reader = new FrameReader(conn);
    const inFlight = new Set<Promise<void>>();
    // Answers of one connection are written one after the other, never interleaved.
    let writing = Promise.resolve();
    let closed = false;
    const shut = () => {
      closed = true;
      closeQuietly(conn);
    };
    // Queries already read but not yet answered are dropped once it is shut.
    while (!closed) {
      // shut, not conn.close(): if the connection was closed meanwhile (close(), a stalled
      // write) and this timer is due before the read has failed, close() would throw from the
      // timer and end the process.
      const timer = setTimeout(shut, idleMs);
      let bytes: Uint8Array | null;
      try {
        bytes = await reader.next();
      } finally {
        clearTimeout(timer);
      }
      if (bytes === null) break;
      const job: Promise<void> = answer(this.o, bytes, from, "tcp").then((reply) => {
        if (!reply) return;
        const framed = frame(reply);
        writing = writing.then(async () => {
          // A client that stops reading must not keep the connection (and its slot) for ever.
          const timer = setTimeout(shut, idleMs);
          try {
            for (let sent = 0; sent < framed.length;) {
              sent += await conn.write(framed.subarray(sent));
            }
          } finally {
            clearTimeout(timer);
          }
        });
        return writing;
      }).catch((e) => {
        // The client went away mid-answer: that connection is done, the server is not.
        this.o.logger.debug(SUB, "TCP answer not sent", { client: from.address, error: e });
        shut();
      }).finally(() => inFlight.delete(job));
      inFlight.add(job);
      if (inFlight.size >= pipeline) await Promise.race(inFlight);
    }
    await Promise.allSettled(inFlight);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.listener.close();
    for (const c of this.#conns) closeQuietly(c);
    await Promise.allSettled(this.#running);
  }
}
