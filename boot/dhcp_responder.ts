/**
 * The DHCP decisions: which bootfile a client gets and what the server answers to each message.
 *
 * Pure apart from the lease store it is given: a request goes in, a reply (with where to send
 * it) comes out. No sockets here; `protocols/dhcp/server.ts` runs the loop.
 *
 * Bootfiles by client (option 93, RFC 4578; LAB-NOTES for what firmware really sends):
 *
 * | client                                        | bootfile                             |
 * |-----------------------------------------------|--------------------------------------|
 * | already iPXE (77 "iPXE" or 175 present)       | `http://SERVER[:PORT]/boot.ipxe`     |
 * | arch 0, x86 BIOS (or no 93: udhcpc, BOOTP)    | `undionly.kpxe`                      |
 * | arch 6, IA32 UEFI                             | `i386/ipxe.efi` (Debian ships none)  |
 * | arch 7 / 9, x86-64 UEFI                       | `snponly.efi` (`efi_loader`)         |
 * | arch 11, ARM64 UEFI                           | `arm64/ipxe.efi` (`arm64_loader`)    |
 * | vendor class "HTTPClient" (arch 15/16/19/20)  | `http://SERVER[:PORT]/tftp/<loader>` |
 *
 * iPXE always wins over the architecture: handing a first-stage loader to iPXE makes it load
 * itself again, forever (LAB-NOTES: 11 DISCOVERs and 6 downloads in 90 s).
 *
 * @module
 */
import { ipv4ToNumber, numberToIpv4 } from "../net/bytes.ts";
import { DhcpOption, DhcpOptions, MessageType } from "../protocols/dhcp/options.ts";
import {
  type DhcpPacket,
  encodeDhcp,
  macOf,
  maxMessageSize,
  replyTo,
} from "../protocols/dhcp/packet.ts";
import {
  ClientArch,
  encodePxeVendorOptions,
  parsePxeVendorClass,
  PxeDiscoveryControl,
} from "../protocols/dhcp/pxe.ts";
import type { LeaseStore } from "../state/leases.ts";

/** Where the first-stage loaders and the iPXE script live. */
export interface BootfileOptions {
  /** Base URL of our HTTP server without trailing slash, e.g. "http://10.0.0.1:8080". */
  httpUrl: string;
  /** x86 BIOS loader (TFTP path). Default "undionly.kpxe". */
  biosLoader?: string;
  /** IA32 UEFI loader. Default "i386/ipxe.efi". */
  ia32Loader?: string;
  /** x86-64 UEFI loader (config `efi_loader`). Default "snponly.efi". */
  efiLoader?: string;
  /** ARM64 UEFI loader (config `arm64_loader`). Default "arm64/ipxe.efi". */
  arm64Loader?: string;
  /** Path of the iPXE script on the HTTP server. Default "/boot.ipxe". */
  ipxeScript?: string;
  /** HTTP path prefix under which the TFTP tree is served. Default "/tftp". */
  httpTftpPrefix?: string;
}

/** What a client should load, and how it identified itself. */
export interface BootChoice {
  /** TFTP path or absolute http:// URL; goes into `file` and option 67. */
  bootfile: string;
  /** Client architecture used for the choice (option 93, else from option 60, else 0). */
  arch: number;
  /** "iPXE", "PXEClient", "HTTPClient" or "other" (udhcpc and friends). */
  client: "iPXE" | "PXEClient" | "HTTPClient" | "other";
}

/** Everything the policy needs to answer; a plain object the server builds from the config. */
export interface DhcpPolicyOptions {
  /** "server" hands out addresses; "proxy" only boot info to PXE/HTTP-boot clients. */
  mode: "server" | "proxy";
  serverIp: string;
  netmask: string;
  router?: string;
  dns?: string[];
  domain?: string;
  /** Lease length in seconds. */
  leaseSeconds: number;
  boot: BootfileOptions;
  /** Required in server mode. */
  leases?: LeaseStore;
  /** Host names of known machines by MAC (from `[[machine]]`), sent as option 12. */
  hostnames?: ReadonlyMap<string, string>;
}

/** A reply and its destination (RFC 2131 §4.1). */
export interface DhcpReply {
  packet: DhcpPacket;
  address: string;
  port: number;
  /** Largest datagram the client accepts (option 57, at least 576). */
  maxSize: number;
}

/** What happened with one request: an event for the log and maybe a reply. */
export interface DhcpOutcome {
  /** "DHCPOFFER", "DHCPACK", "DHCPNAK", "DHCPRELEASE", "DHCPDECLINE", "ignored" … */
  event: string;
  fields: Record<string, unknown>;
  reply?: DhcpReply;
}

const _CLIENT_PORT = 68;
const _SERVER_PORT = 67;
const _BROADCAST = "255.255.255.255";
const _ZERO = "0.0.0.0";

/** True when the client is iPXE already: user class "iPXE" (option 77) or option 175. */
export function isIpxe(p: DhcpPacket): boolean {
  return p.options.has(DhcpOption.IpxeEncap) || p.options.userClasses().includes("iPXE");
}

/** True for PXE firmware and iPXE (option 60 starts with "PXEClient"). */
export function isPxeClient(p: DhcpPacket): boolean {
  return p.options.vendorClass()?.startsWith("PXEClient") ?? false;
}

/** True for UEFI HTTP boot (option 60 starts with "HTTPClient"). */
export function isHttpClient(p: DhcpPacket): boolean {
  return p.options.vendorClass()?.startsWith("HTTPClient") ?? false;
}

/** The client's architecture: option 93, else the "Arch:" field of option 60, else 0 (BIOS). */
export function clientArchOf(p: DhcpPacket): number {
  const listed = p.options.clientArch()[0];
  if (listed !== undefined) return listed;
  const vc = p.options.vendorClass();
  const fromVendor = parsePxeVendorClass(vc?.replace(/^HTTPClient/, "PXEClient"))?.arch;
  return fromVendor ?? ClientArch.X86Bios;
}

/** The HTTP-boot architectures mapped to the PXE architecture whose loader they take. */
const _HTTP_TO_PXE: ReadonlyMap<number, number> = new Map([
  [ClientArch.EfiX86Http, ClientArch.EfiIa32],
  [ClientArch.EfiX64Http, ClientArch.EfiX64],
  [ClientArch.EfiArm64Http, ClientArch.EfiArm64],
  [ClientArch.PcBiosHttp, ClientArch.X86Bios],
]);

function _loaderFor(arch: number, b: BootfileOptions): string | undefined {
  switch (_HTTP_TO_PXE.get(arch) ?? arch) {
    case ClientArch.X86Bios:
      return b.biosLoader ?? "undionly.kpxe";
    case ClientArch.EfiIa32:
      return b.ia32Loader ?? "i386/ipxe.efi";
    case ClientArch.EfiX64:
    case ClientArch.EfiX64Alt:
      return b.efiLoader ?? "snponly.efi";
    case ClientArch.EfiArm64:
      return b.arm64Loader ?? "arm64/ipxe.efi";
    default:
      return undefined;
  }
}

/** Picks the bootfile for a request; undefined for architectures we have no loader for. */
export function chooseBootfile(p: DhcpPacket, boot: BootfileOptions): BootChoice | undefined {
  const arch = clientArchOf(p);
  if (isIpxe(p)) {
    return { bootfile: boot.httpUrl + (boot.ipxeScript ?? "/boot.ipxe"), arch, client: "iPXE" };
  }
  const loader = _loaderFor(arch, boot);
  if (loader === undefined) return undefined;
  if (isHttpClient(p)) {
    const prefix = boot.httpTftpPrefix ?? "/tftp";
    return { bootfile: `${boot.httpUrl}${prefix}/${loader}`, arch, client: "HTTPClient" };
  }
  return { bootfile: loader, arch, client: isPxeClient(p) ? "PXEClient" : "other" };
}

/** The base URL of an HTTP server on `ip:port` ("http://10.0.0.1" for port 80). */
export function httpBaseUrl(ip: string, port: number): string {
  return port === 80 ? `http://${ip}` : `http://${ip}:${port}`;
}

/** Subnet broadcast address from an address and its mask. */
export function broadcastOf(ip: string, netmask: string): string {
  return numberToIpv4((ipv4ToNumber(ip) | (~ipv4ToNumber(netmask) >>> 0)) >>> 0);
}

/** Whether two addresses share the subnet of `netmask`. */
export function sameSubnet(a: string, b: string, netmask: string): boolean {
  const m = ipv4ToNumber(netmask);
  return ((ipv4ToNumber(a) & m) >>> 0) === ((ipv4ToNumber(b) & m) >>> 0);
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
  if (req.giaddr !== _ZERO) return { address: req.giaddr, port: _SERVER_PORT };
  if (type !== MessageType.Nak && req.ciaddr !== _ZERO) {
    return { address: req.ciaddr, port: _CLIENT_PORT };
  }
  return { address: _BROADCAST, port: _CLIENT_PORT };
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

function _hex(b: Uint8Array | undefined): string | undefined {
  return b ? Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("") : undefined;
}

/** Adds next-server, option 66/67, `file`, and the PXE/HTTP-boot identification. */
function _addBoot(reply: DhcpPacket, req: DhcpPacket, o: DhcpPolicyOptions, choice: BootChoice) {
  reply.siaddr = o.serverIp;
  // Many PXE ROMs read only the BOOTP file field; options 66/67 are for everyone else.
  reply.file = choice.bootfile;
  reply.options.setString(DhcpOption.TftpServerName, o.serverIp);
  reply.options.setString(DhcpOption.BootfileName, choice.bootfile);
  if (isHttpClient(req)) {
    // UEFI HTTP boot ignores an offer that does not say HTTPClient (UEFI 2.x §24.7).
    reply.options.setString(DhcpOption.VendorClassId, "HTTPClient");
  } else if (isPxeClient(req)) {
    // Identifying as a PXE server lets iPXE take this offer as its ProxyDHCP answer too and
    // skip the ~3 s ProxyDHCP wait (ipxe net/udp/dhcp.c dhcp_has_pxeopts: siaddr + 67).
    reply.options.setString(DhcpOption.VendorClassId, "PXEClient");
    // PXE 2.1 §2.4: skip boot-server discovery, download the bootfile named here.
    reply.options.set(
      DhcpOption.VendorSpecific,
      encodePxeVendorOptions({ discoveryControl: PxeDiscoveryControl.UseBootfile }),
    );
  }
  // PXE 2.1 §2.2.5: the server echoes the client's UUID.
  const uuid = req.options.get(DhcpOption.ClientUuid);
  if (uuid) reply.options.set(DhcpOption.ClientUuid, uuid);
}

function _addNetwork(reply: DhcpPacket, o: DhcpPolicyOptions, mac: string): void {
  reply.options.setIp(DhcpOption.SubnetMask, o.netmask);
  if (o.router) reply.options.setIp(DhcpOption.Router, o.router);
  if (o.dns?.length) reply.options.setIps(DhcpOption.DNS, o.dns);
  if (o.domain) reply.options.setString(DhcpOption.DomainName, o.domain);
  reply.options.setIp(DhcpOption.BroadcastAddr, broadcastOf(o.serverIp, o.netmask));
  const hostname = o.hostnames?.get(mac) ?? o.leases?.reservation(mac)?.hostname;
  if (hostname) reply.options.setString(DhcpOption.Hostname, hostname);
}

function _addLeaseTimes(reply: DhcpPacket, seconds: number): void {
  reply.options.setU32(DhcpOption.LeaseTime, seconds);
  // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease.
  reply.options.setU32(DhcpOption.RenewalTime, Math.floor(seconds * 0.5));
  reply.options.setU32(DhcpOption.RebindingTime, Math.floor(seconds * 0.875));
}

function _finish(req: DhcpPacket, reply: DhcpPacket, type: number, to?: DhcpReply["address"]) {
  reply.options = orderOptions(reply.options, req.options.paramRequestList());
  const dest = to === undefined ? replyDestination(req, type) : { address: to, port: _CLIENT_PORT };
  // A relay must broadcast a NAK on its side (RFC 2131 §4.3.2).
  if (type === MessageType.Nak && req.giaddr !== _ZERO) reply.flags |= 0x8000;
  return { packet: reply, ...dest, maxSize: maxMessageSize(req) };
}

function _fields(req: DhcpPacket, choice: BootChoice | undefined, extra = {}) {
  return {
    mac: macOf(req),
    ...extra,
    arch: choice?.arch ?? clientArchOf(req),
    client: choice?.client,
    bootfile: choice?.bootfile,
  };
}

/** Options never dropped to make a reply fit: without them it is not a valid answer. */
const _ESSENTIAL = new Set<number>([
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
  const packet = { ...reply.packet, options: reply.packet.options.clone() };
  for (;;) {
    try {
      return encodeDhcp(packet, { maxSize: reply.maxSize });
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      const victim = packet.options.codes().findLast((c) => !_ESSENTIAL.has(c));
      if (victim === undefined) throw e;
      packet.options.delete(victim);
    }
  }
}

/** Builds a NAK for `req` (RFC 2131 table 3: no yiaddr, no lease options). */
function _nak(req: DhcpPacket, o: DhcpPolicyOptions, reason: string): DhcpOutcome {
  const reply = replyTo(req, MessageType.Nak);
  reply.ciaddr = _ZERO;
  reply.options.setIp(DhcpOption.ServerId, o.serverIp);
  reply.options.setString(DhcpOption.Message, reason);
  return {
    event: "DHCPNAK",
    fields: { mac: macOf(req), reason },
    reply: _finish(req, reply, MessageType.Nak),
  };
}

/** An OFFER or ACK that gives `ip`: lease times, network options and boot fields. */
function _leaseReply(
  req: DhcpPacket,
  o: DhcpPolicyOptions,
  type: typeof MessageType.Offer | typeof MessageType.Ack,
  ip: string,
  choice: BootChoice | undefined,
): DhcpOutcome {
  const reply = replyTo(req, type);
  reply.yiaddr = ip;
  reply.options.setIp(DhcpOption.ServerId, o.serverIp);
  _addLeaseTimes(reply, o.leaseSeconds);
  _addNetwork(reply, o, macOf(req));
  if (choice) _addBoot(reply, req, o, choice);
  return {
    event: type === MessageType.Offer ? "DHCPOFFER" : "DHCPACK",
    fields: _fields(req, choice, { ip }),
    reply: _finish(req, reply, type),
  };
}

function _ignored(req: DhcpPacket, why: string): DhcpOutcome {
  return { event: "ignored", fields: { mac: macOf(req), why } };
}

/**
 * Answers one request arriving on port 67. Side effects go to the lease store only.
 * Returns `ignored` outcomes (no reply) for messages that are not ours to answer.
 */
export function handleDhcp(req: DhcpPacket, o: DhcpPolicyOptions): DhcpOutcome {
  if (req.op !== 1) return _ignored(req, "not a BOOTREQUEST");
  const type = req.options.messageType();
  if (type === undefined) return _ignored(req, "BOOTP (no option 53) is not served");
  if (req.hlen !== 6 || req.htype !== 1) return _ignored(req, "not Ethernet");
  return o.mode === "proxy" ? _proxy(req, type, o) : _server(req, type, o);
}

function _server(req: DhcpPacket, type: number, o: DhcpPolicyOptions): DhcpOutcome {
  const leases = o.leases;
  if (!leases) throw new Error("DHCP server mode needs a lease store");
  if (req.giaddr !== _ZERO && !sameSubnet(req.giaddr, o.serverIp, o.netmask)) {
    // One pool only: a relay from another subnet would get addresses of the wrong network.
    return _ignored(req, `relay ${req.giaddr} is outside our subnet`);
  }
  const mac = macOf(req);
  const clientId = _hex(req.options.clientId());
  const choice = chooseBootfile(req, o.boot);
  switch (type) {
    case MessageType.Discover: {
      const ip = leases.offer(mac, {
        clientId,
        requestedIp: req.options.ip(DhcpOption.RequestedIP),
      });
      if (ip === null) return _ignored(req, "address pool exhausted");
      return _leaseReply(req, o, MessageType.Offer, ip, choice);
    }
    case MessageType.Request: {
      const serverId = req.options.ip(DhcpOption.ServerId);
      const requested = req.options.ip(DhcpOption.RequestedIP);
      if (serverId !== undefined && serverId !== o.serverIp) {
        // SELECTING another server's offer: ours is no longer needed (RFC 2131 §4.3.2).
        const held = leases.current(mac);
        if (held?.state === "offered") leases.release(mac, held.ip);
        return _ignored(req, `client chose server ${serverId}`);
      }
      // SELECTING and INIT-REBOOT name the address in option 50; RENEWING and REBINDING in ciaddr.
      const ip = requested ?? (req.ciaddr !== _ZERO ? req.ciaddr : undefined);
      if (ip === undefined) return _nak(req, o, "no address requested");
      if (!sameSubnet(ip, o.serverIp, o.netmask)) return _nak(req, o, "wrong network");
      const hostname = req.options.string(DhcpOption.Hostname);
      const res = leases.commit(mac, ip, o.leaseSeconds, { clientId, hostname });
      if (!res.ok) return _nak(req, o, `address ${ip} ${res.reason}`);
      return _leaseReply(req, o, MessageType.Ack, ip, choice);
    }
    case MessageType.Inform: {
      // RFC 2131 §3.4: configuration only, no yiaddr and no lease times; sent to ciaddr.
      const reply = replyTo(req, MessageType.Ack);
      reply.options.setIp(DhcpOption.ServerId, o.serverIp);
      _addNetwork(reply, o, mac);
      if (choice) _addBoot(reply, req, o, choice);
      return {
        event: "DHCPACK",
        fields: _fields(req, choice, { inform: req.ciaddr }),
        reply: _finish(req, reply, MessageType.Ack),
      };
    }
    case MessageType.Release: {
      const ok = leases.release(mac, req.ciaddr);
      return { event: "DHCPRELEASE", fields: { mac, ip: req.ciaddr, released: ok } };
    }
    case MessageType.Decline: {
      const ip = req.options.ip(DhcpOption.RequestedIP) ?? _ZERO;
      const ok = leases.decline(mac, ip);
      return { event: "DHCPDECLINE", fields: { mac, ip, quarantined: ok } };
    }
    default:
      return _ignored(req, `message type ${type} is not for a server`);
  }
}

/**
 * ProxyDHCP (PXE 2.1 §2.2.3): another server hands out addresses; we answer PXE and HTTP-boot
 * clients with boot information only, no yiaddr and no lease options.
 */
function _proxy(req: DhcpPacket, type: number, o: DhcpPolicyOptions): DhcpOutcome {
  if (!isPxeClient(req) && !isHttpClient(req)) return _ignored(req, "not a PXE client (proxy)");
  if (type !== MessageType.Discover) {
    return _ignored(req, "proxy answers DISCOVER on port 67 only");
  }
  return proxyAnswer(req, o, MessageType.Offer);
}

/**
 * The boot-info-only answer of a ProxyDHCP server: an OFFER on port 67, or the ACK to a
 * REQUEST on port 4011 (sent back to where it came from, `to`).
 */
export function proxyAnswer(
  req: DhcpPacket,
  o: DhcpPolicyOptions,
  type: typeof MessageType.Offer | typeof MessageType.Ack,
  to?: { address: string; port: number },
): DhcpOutcome {
  const choice = chooseBootfile(req, o.boot);
  if (!choice) return _ignored(req, `no loader for architecture ${clientArchOf(req)}`);
  const reply = replyTo(req, type);
  reply.options.setIp(DhcpOption.ServerId, o.serverIp);
  _addBoot(reply, req, o, choice);
  const finished = _finish(req, reply, type);
  const event = type === MessageType.Offer ? "ProxyDHCPOFFER" : "ProxyDHCPACK";
  return {
    event,
    fields: _fields(req, choice),
    reply: to ? { ...finished, address: to.address, port: to.port } : finished,
  };
}

/** Answers a REQUEST to port 4011 (PXE boot server / iPXE ProxyDHCPREQUEST). */
export function handlePxeRequest(
  req: DhcpPacket,
  o: DhcpPolicyOptions,
  from: { address: string; port: number },
): DhcpOutcome {
  if (req.op !== 1 || req.options.messageType() !== MessageType.Request) {
    return _ignored(req, "port 4011 takes DHCPREQUEST only");
  }
  if (!isPxeClient(req) && !isHttpClient(req)) return _ignored(req, "not a PXE client (4011)");
  return proxyAnswer(req, o, MessageType.Ack, from);
}

/** True when `p` is another server's OFFER or ACK (what `auto` mode listens for). */
export function isForeignServerReply(p: DhcpPacket, ourIp: string): boolean {
  const t = p.options.messageType();
  if (p.op !== 2 || (t !== MessageType.Offer && t !== MessageType.Ack)) return false;
  if (p.yiaddr === _ZERO) return false; // a ProxyDHCP answer gives no addresses: no conflict
  return (p.options.ip(DhcpOption.ServerId) ?? _ZERO) !== ourIp;
}

/** True when a client's REQUEST selects another server's offer: proof of another server. */
export function selectsOtherServer(p: DhcpPacket, ourIp: string): boolean {
  if (p.op !== 1 || p.options.messageType() !== MessageType.Request) return false;
  const id = p.options.ip(DhcpOption.ServerId);
  return id !== undefined && id !== ourIp;
}
