/**
 * The wire rules of a DHCP server, whatever it decides to answer (RFC 2131): where a reply
 * goes (§4.1), the order of its options, fitting it into the client's maximum message size
 * (option 57), and telling another server's answers apart from ours.
 *
 * @module
 */
import { DhcpOption, DhcpOptions, MessageType } from "./options.ts";
import { type DhcpPacket, encodeDhcp, maxMessageSize } from "./packet.ts";

/** UDP port of DHCP clients. */
export const CLIENT_PORT = 68;
/** UDP port of DHCP servers and relays. */
export const SERVER_PORT = 67;
/** UDP port of PXE boot servers and ProxyDHCP requests (PXE 2.1 §2.2.4). */
export const PXE_PORT = 4011;
const BROADCAST = "255.255.255.255";
const ZERO = "0.0.0.0";

/** A reply and its destination. */
export interface DhcpReply {
  packet: DhcpPacket;
  address: string;
  port: number;
  /** Largest datagram the client accepts (option 57, at least 576). */
  maxSize: number;
}

/**
 * RFC 2131 §4.1 destination: to the relay (port 67) when giaddr is set; a NAK is broadcast;
 * to ciaddr when the client has an address; otherwise broadcast. Unicast to yiaddr without
 * ARP is never tried: broadcast always reaches a client that has no address yet.
 */
export function replyDestination(
  req: DhcpPacket,
  type: number,
): { address: string; port: number } {
  if (req.giaddr !== ZERO) return { address: req.giaddr, port: SERVER_PORT };
  if (type !== MessageType.Nak && req.ciaddr !== ZERO) {
    return { address: req.ciaddr, port: CLIENT_PORT };
  }
  return { address: BROADCAST, port: CLIENT_PORT };
}

/**
 * Orders reply options: 53 first, then what the client listed in option 55 in its order,
 * then everything else we send, with relay agent info (82) last (RFC 3046 §2.1).
 */
export function orderOptions(options: DhcpOptions, requested: readonly number[]): DhcpOptions {
  const out = new DhcpOptions();
  const put = (code: number) => {
    const v = options.get(code);
    if (v !== undefined && !out.has(code)) out.set(code, v);
  };
  put(DhcpOption.MessageType);
  for (const code of requested) if (code !== DhcpOption.RelayAgentInfo) put(code);
  for (const code of options.codes()) if (code !== DhcpOption.RelayAgentInfo) put(code);
  put(DhcpOption.RelayAgentInfo);
  return out;
}

/**
 * A finished reply to `req`: options in order, destination by §4.1 (or `to`), the client's
 * size limit. A NAK through a relay asks it to broadcast on its side (§4.3.2).
 */
export function finishReply(
  req: DhcpPacket,
  reply: DhcpPacket,
  to?: { address: string; port: number },
): DhcpReply {
  const type = reply.options.messageType() ?? 0;
  reply.options = orderOptions(reply.options, req.options.paramRequestList());
  if (type === MessageType.Nak && req.giaddr !== ZERO) reply.flags |= 0x8000;
  return { packet: reply, ...(to ?? replyDestination(req, type)), maxSize: maxMessageSize(req) };
}

/** Options never dropped to make a reply fit: without them it is not a valid answer. */
const ESSENTIAL = new Set<number>([
  DhcpOption.MessageType,
  DhcpOption.ServerId,
  DhcpOption.LeaseTime,
  DhcpOption.RelayAgentInfo,
]);

/**
 * Encodes a reply within the client's maximum message size (option 57). When it does not fit,
 * options are dropped from the end of the order {@linkcode orderOptions} made: first what the
 * client did not ask for, then what it asked for last; never 53, 54, 51 or 82.
 */
export function encodeReply(reply: DhcpReply): Uint8Array {
  try {
    return encodeDhcp(reply.packet, { maxSize: reply.maxSize });
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
  }
  // Too big: options are dropped from a copy, the reply itself stays as the policy made it.
  const packet = { ...reply.packet, options: reply.packet.options.clone() };
  for (;;) {
    try {
      return encodeDhcp(packet, { maxSize: reply.maxSize });
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      const victim = packet.options.codes().findLast((c) => !ESSENTIAL.has(c));
      if (victim === undefined) throw e;
      packet.options.delete(victim);
    }
  }
}

/** True when `p` is another server's OFFER or ACK with an address (what `auto` mode listens for). */
export function isForeignServerReply(p: DhcpPacket, ourIp: string): boolean {
  const t = p.options.messageType();
  if (p.op !== 2 || (t !== MessageType.Offer && t !== MessageType.Ack)) return false;
  if (p.yiaddr === ZERO) return false; // a ProxyDHCP answer gives no addresses: no conflict
  return (p.options.ip(DhcpOption.ServerId) ?? ZERO) !== ourIp;
}

/** True when a client's REQUEST selects another server's offer: proof of another server. */
export function selectsOtherServer(p: DhcpPacket, ourIp: string): boolean {
  if (p.op !== 1 || p.options.messageType() !== MessageType.Request) return false;
  const id = p.options.ip(DhcpOption.ServerId);
  return id !== undefined && id !== ourIp;
}
