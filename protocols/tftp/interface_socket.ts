/**
 * TFTP sockets bound to one interface: {@linkcode TftpListen} over `InterfaceUdpSocket`
 * (`SO_BINDTODEVICE`, with `IP_PKTINFO` checked again), for the listening socket and every
 * transfer's. Bound by address alone, the server would answer a request for its address that
 * arrives on any other interface of the host (Linux accepts it there), on a network it must not
 * serve.
 *
 * Needs `--allow-ffi` and `--allow-sys`.
 *
 * @module
 */
import { errorMessage, type Logger, silentLogger } from "../../log.ts";
import { BindError } from "../../net/errors.ts";
import { interfaceInfo, InterfaceUdpSocket } from "../../net/udp_socket.ts";
import type { TftpListen, TftpSocket } from "./server.ts";

/**
 * Receive buffer of the listening socket: a request with its options must fit in 512 bytes
 * (RFC 2347); the rest is room for clients that overstep it.
 */
const REQUEST_SIZE = 2048;
/**
 * Receive buffer of a transfer socket, which only hears ACKs (4 bytes) and ERRORs (at most
 * 516): 1 KiB, so 256 transfers hold 256 KiB of buffers, not 16 MiB.
 */
const TRANSFER_SIZE = 1024;
/** Waits of 1 ms for a full send queue to drain before a send counts as failed. */
const SEND_TRIES = 20;

/**
 * A {@linkcode TftpListen} whose sockets only hear and send through `interfaceName`; port 0
 * (a transfer's TID) gets the small transfer buffer. Throws when the interface is missing or
 * has no IPv4; the sockets it opens throw `BindError`.
 */
export function listenInterface(interfaceName: string, logger: Logger = silentLogger): TftpListen {
  const info = interfaceInfo(interfaceName);
  return (hostname, port) => {
    let sock: InterfaceUdpSocket;
    try {
      sock = InterfaceUdpSocket.open({
        interface: interfaceName,
        info,
        address: hostname,
        port,
        receiveSize: port === 0 ? TRANSFER_SIZE : REQUEST_SIZE,
        reuseAddress: false,
        service: "another TFTP server",
        logger,
      });
    } catch (e) {
      if (e instanceof BindError) throw e;
      throw new BindError(`udp ${hostname}:${port} on ${interfaceName}`, errorMessage(e), {
        cause: e,
      });
    }
    return adapt(sock, logger);
  };
}

function adapt(sock: InterfaceUdpSocket, logger: Logger): TftpSocket {
  return {
    port: sock.port,
    async receive(_buffer, options) {
      for (;;) {
        const d = await sock.receive(options);
        if (!d) throw new Error("socket closed");
        if (!d.truncated) return { data: d.data, from: d.from };
        logger.debug("tftp", "oversized datagram dropped", {
          from: `${d.from.address}:${d.from.port}`,
          port: sock.port,
        });
      }
    },
    async send(data, to) {
      for (let i = 0; !sock.trySend(data, to.address, to.port); i++) {
        // A window of large blocks can outrun the interface queue; Deno's own sockets wait
        // for room too.
        if (i >= SEND_TRIES) throw new Error(`send to ${to.address}:${to.port}: queue full`);
        await new Promise((r) => setTimeout(r, 1));
      }
    },
    async sendMany(packets, to) {
      let sent = sock.trySendMany(packets, to.address, to.port);
      for (let i = 0; sent < packets.length; i++) {
        if (i >= SEND_TRIES) throw new Error(`send to ${to.address}:${to.port}: queue full`);
        await new Promise((r) => setTimeout(r, 1));
        // Waits only while nothing goes: a queue that drains a little is making progress.
        const more = sock.trySendMany(packets.slice(sent), to.address, to.port);
        if (more > 0) i = -1;
        sent += more;
      }
    },
    close() {
      sock.close();
    },
  };
}
