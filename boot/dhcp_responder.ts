/**
 * What the server answers to each DHCP message: addresses from the lease store, network
 * options, and the boot fields of {@linkcode chooseBootfile}.
 *
 * Pure apart from the lease store it is given: a request goes in, a reply (with where to send
 * it, by the wire rules of `protocols/dhcp/wire.ts`) and a typed {@linkcode DhcpEvent} come
 * out. No sockets here; `protocols/dhcp/server.ts` runs the loop and calls the handler that
 * {@linkcode createDhcpHandler} makes.
 *
 * @module
 */
import { type LineWriter, type Logger, preparedLine } from "../log.ts";
import { hexBytes } from "../net/bytes.ts";
import { ipv4ToBytes, type Subnet } from "../net/ipv4.ts";
import type { Mac } from "../net/mac.ts";
import { clientArchOf, type ClientKind, clientKind } from "../protocols/dhcp/client.ts";
import { DhcpOption, DhcpOptions, MessageType } from "../protocols/dhcp/options.ts";
import { type DhcpPacket, macOf, replyTo } from "../protocols/dhcp/packet.ts";
import { encodePxeVendorOptions, PxeDiscoveryControl } from "../protocols/dhcp/pxe.ts";
import type { DhcpHandler } from "../protocols/dhcp/server.ts";
import { type DhcpReply, finishReply, PXE_PORT } from "../protocols/dhcp/wire.ts";
import { failureKind } from "../state/lease_table.ts";
import type { LeaseStore, OfferRefusal } from "../state/leases.ts";
import type { InventoryReport } from "../state/inventory.ts";
import { type BootChoice, type BootfileOptions, chooseBootfile } from "./bootfile.ts";
import { addConfigured, type ConfiguredOptions, mergeOptions } from "./dhcp_options.ts";
import { inventoryFromDhcp } from "./inventory.ts";

/**
 * A network the server hands out addresses in: the interface's own, or one behind a DHCP
 * relay (`[[dhcp.subnet]]`), with its pool and what its clients are told.
 */
export interface DhcpScope {
  /** Its network: the pool's, the broadcast address, and which relays it serves. */
  subnet: Subnet;
  router?: string;
  dns?: readonly string[];
  domain?: string;
  /** Lease length in seconds. */
  leaseSeconds: number;
  /** Required in server mode. */
  leases?: LeaseStore;
  /** Options from config.toml (`[dhcp.options]` and the subnet's), as {@linkcode addConfigured} sends them. */
  options?: ConfiguredOptions;
}

/**
 * Everything the policy needs to answer; a plain object the app builds from the config. Its
 * own scope fields are the interface's network.
 */
export interface DhcpPolicyOptions extends DhcpScope {
  /** "server" hands out addresses; "proxy" only boot info to PXE/HTTP-boot clients. */
  mode: "server" | "proxy";
  /** Our address: option 54, and where every client boots from (next-server, URLs). */
  serverIp: string;
  boot: BootfileOptions;
  /** Networks behind relays: a request relayed from one of them is served from it. */
  subnets?: readonly DhcpScope[];
  /** Host names of known machines (from `[[machine]]`), sent as option 12. */
  hostnames?: ReadonlyMap<Mac, string>;
  /** Answer only the machines of `known` (`[dhcp] known_only`). */
  knownOnly?: boolean;
  /** The machines `[[machine]]` names. */
  known?: ReadonlySet<Mac>;
  /** A machine's own options (`[[machine]] options`), over its network's. */
  machineOptions?: ReadonlyMap<Mac, ConfiguredOptions>;
}

/** The replies a server sends, by kind. */
export type DhcpReplyKind = "offer" | "ack" | "nak" | "proxy-offer" | "proxy-ack";

/** A reply sent (or about to be): what it gave and to whom. */
export interface DhcpReplyEvent {
  kind: "reply";
  reply: DhcpReplyKind;
  mac: Mac;
  /** The address given (offer, ack), or the client's own (INFORM); null otherwise. */
  ip: string | null;
  client: ClientKind;
  arch: number;
  bootfile: string | null;
  /** What the request said of its sender (options 93, 97, 60, 77), cleaned; shown only. */
  inventory?: InventoryReport;
  /** Why a NAK was sent. */
  reason?: string;
}

/** A client gave its address back (release) or found it in use (decline). */
export interface DhcpClientEvent {
  kind: "release" | "decline";
  mac: Mac;
  ip: string;
  /** Whether the lease store took it (only the holder can release or decline). */
  ok: boolean;
}

/**
 * Why a request a server could have answered was refused on purpose; `no-subnet`: a relay
 * forwarded it from a network no `[[dhcp.subnet]]` covers.
 */
export type DhcpRefusal =
  | "pool-exhausted"
  | "rate-limited"
  | "reserved-in-use"
  | "known-only"
  | "not-offered"
  | "no-subnet";

/** A request left unanswered, and why. */
export interface DhcpIgnoredEvent {
  kind: "ignored";
  mac: Mac | null;
  why: string;
  /** Set when the server refused a client it could otherwise serve. */
  refusal?: DhcpRefusal;
}

/** What happened with one request; metrics, the live feed and the registry subscribe. */
export type DhcpEvent = DhcpReplyEvent | DhcpClientEvent | DhcpIgnoredEvent;

/** What one request comes to: its event, and maybe a reply. */
export interface DhcpOutcome {
  event: DhcpEvent;
  reply?: DhcpReply;
  /**
   * Set on an ACK that binds a lease: the reply may leave (and the event be told) only once
   * this resolves, when the lease is on disk; when it rejects, nothing is sent.
   */
  saved?: Promise<void>;
  /**
   * Set with `saved`: whether the client still holds the lease once it is saved. A RELEASE, a
   * DECLINE or the client's own request elsewhere answered while the ACK waited for its commit
   * ended the lease (another client may be offered the address next): that ACK must not leave.
   */
  held?: () => boolean;
}

const ZERO = "0.0.0.0";

/**
 * A client's host name (option 12) as it may be stored and shown: letters, digits and
 * hyphens (RFC 1123), at most 63; undefined when nothing usable is left. It reaches a
 * terminal (`astralboot leases`) and templates.
 */
export function cleanHostname(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const clean = text.replace(/[^A-Za-z0-9-]/g, "").replace(/^-+|-+$/g, "").slice(0, 63);
  return clean === "" ? undefined : clean;
}

/** Adds next-server, option 66/67, `file`, and the PXE/HTTP-boot identification. */
function addBoot(reply: DhcpPacket, req: DhcpPacket, o: DhcpPolicyOptions, choice: BootChoice) {
  reply.siaddr = o.serverIp;
  // Many PXE ROMs read only the BOOTP file field; options 66/67 are for everyone else. The
  // field holds 127 bytes: a longer URL (only iPXE and HTTP boot get URLs) goes in 67 alone.
  reply.file = choice.bootfile.length <= 127 ? choice.bootfile : "";
  reply.options.set(DhcpOption.TftpServerName, textBytes(o.serverIp));
  reply.options.set(DhcpOption.BootfileName, textBytes(choice.bootfile));
  if (choice.client === "http") {
    // UEFI HTTP boot ignores an offer that does not say HTTPClient (UEFI 2.x §24.7).
    reply.options.set(DhcpOption.VendorClassId, textBytes("HTTPClient"));
  } else if (choice.client === "pxe" || choice.client === "ipxe") {
    // Identifying as a PXE server lets iPXE take this offer as its ProxyDHCP answer too and
    // skip the ~3 s ProxyDHCP wait (ipxe net/udp/dhcp.c dhcp_has_pxeopts: siaddr + 67).
    reply.options.set(DhcpOption.VendorClassId, textBytes("PXEClient"));
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

/**
 * The options every reply of a scope carries alike, encoded once: a scope is not changed
 * while it answers (a reload builds new ones), and option values are never changed in place
 * (`DhcpOptions`), so every reply may share them. Text and addresses encoded per packet were a
 * tenth of a DORA's CPU, measured.
 */
interface ScopeBytes {
  /** `[code, value]` of the network options, in the order they were always sent. */
  network: [number, Uint8Array][];
  /** Options 51, 58, 59. */
  times: [number, Uint8Array][];
}

const scopeBytes = new WeakMap<DhcpScope, ScopeBytes>();

function bytesOf(scope: DhcpScope): ScopeBytes {
  let b = scopeBytes.get(scope);
  if (!b) {
    const o = new DhcpOptions();
    o.setIp(DhcpOption.SubnetMask, scope.subnet.netmask);
    if (scope.router) o.setIp(DhcpOption.Router, scope.router);
    if (scope.dns?.length) o.setIps(DhcpOption.DNS, [...scope.dns]);
    if (scope.domain) o.setString(DhcpOption.DomainName, scope.domain);
    o.setIp(DhcpOption.BroadcastAddr, scope.subnet.broadcast);
    const t = new DhcpOptions();
    const seconds = scope.leaseSeconds;
    t.setU32(DhcpOption.LeaseTime, seconds);
    // RFC 2131 §4.4.5 defaults: T1 = 0.5, T2 = 0.875 of the lease.
    t.setU32(DhcpOption.RenewalTime, Math.floor(seconds * 0.5));
    t.setU32(DhcpOption.RebindingTime, Math.floor(seconds * 0.875));
    scopeBytes.set(scope, b = { network: [...o.entries()], times: [...t.entries()] });
  }
  return b;
}

/** Values that repeat in every reply (the server's address, boot file names), encoded once. */
function remembered(encode: (value: string) => Uint8Array): (value: string) => Uint8Array {
  const known = new Map<string, Uint8Array>();
  return (value) => {
    let bytes = known.get(value);
    if (!bytes) {
      // A handful per site; the bound only guards against a surprise.
      if (known.size >= 1024) known.clear();
      known.set(value, bytes = encode(value));
    }
    return bytes;
  };
}

const textBytes = remembered((text) => new TextEncoder().encode(text));
const ipBytes = remembered(ipv4ToBytes);

function addNetwork(reply: DhcpPacket, o: DhcpPolicyOptions, scope: DhcpScope, mac: Mac): void {
  for (const [code, value] of bytesOf(scope).network) reply.options.set(code, value);
  const hostname = o.hostnames?.get(mac) ?? scope.leases?.reservation(mac)?.hostname;
  if (hostname) reply.options.setString(DhcpOption.Hostname, hostname);
}

/** The configured options of the network, then of the machine, over what the server set. */
function addOptions(
  reply: DhcpPacket,
  req: DhcpPacket,
  o: DhcpPolicyOptions,
  scope: DhcpScope,
  mac: Mac,
): void {
  const mine = o.machineOptions?.get(mac);
  if (!scope.options && !mine) return;
  const configured = mine ? mergeOptions(scope.options, mine) : scope.options!;
  addConfigured(reply.options, req.options.paramRequestList(), configured, clientKind(req));
}

function addLeaseTimes(reply: DhcpPacket, scope: DhcpScope): void {
  for (const [code, value] of bytesOf(scope).times) reply.options.set(code, value);
}

function replyEvent(
  req: DhcpPacket,
  mac: Mac,
  reply: DhcpReplyKind,
  ip: string | null,
  choice: BootChoice | undefined,
): DhcpReplyEvent {
  return {
    kind: "reply",
    reply,
    mac,
    ip,
    client: choice?.client ?? clientKind(req),
    arch: choice?.arch ?? clientArchOf(req),
    bootfile: choice?.bootfile ?? null,
    inventory: inventoryFromDhcp(req),
  };
}

/** Builds a NAK for `req` (RFC 2131 table 3: no yiaddr, no lease options). */
function nak(req: DhcpPacket, mac: Mac, o: DhcpPolicyOptions, reason: string): DhcpOutcome {
  const reply = replyTo(req, MessageType.Nak);
  reply.ciaddr = ZERO;
  reply.options.set(DhcpOption.ServerId, ipBytes(o.serverIp));
  reply.options.setString(DhcpOption.Message, reason);
  return {
    event: { ...replyEvent(req, mac, "nak", null, undefined), reason },
    reply: finishReply(req, reply),
  };
}

/** An OFFER or ACK that gives `ip`: lease times, network options and boot fields. */
function leaseReply(
  req: DhcpPacket,
  mac: Mac,
  o: DhcpPolicyOptions,
  scope: DhcpScope,
  type: typeof MessageType.Offer | typeof MessageType.Ack,
  ip: string,
  choice: BootChoice | undefined,
): DhcpOutcome {
  const reply = replyTo(req, type);
  reply.yiaddr = ip;
  reply.options.set(DhcpOption.ServerId, ipBytes(o.serverIp));
  addLeaseTimes(reply, scope);
  addNetwork(reply, o, scope, mac);
  if (choice) addBoot(reply, req, o, choice);
  addOptions(reply, req, o, scope, mac);
  const kind = type === MessageType.Offer ? "offer" : "ack";
  return { event: replyEvent(req, mac, kind, ip, choice), reply: finishReply(req, reply) };
}

const OFFER_REFUSED: Record<OfferRefusal, string> = {
  "rate-limited": "too many new clients at once",
  "pool-exhausted": "address pool exhausted (the rest is kept for [[machine]] entries)",
  "reserved-in-use": "its reserved address is still leased to another client, which is " +
    "refused at its next renewal",
};

function ignored(mac: Mac | null, why: string, refusal?: DhcpRefusal): DhcpOutcome {
  return { event: { kind: "ignored", mac, why, ...(refusal ? { refusal } : {}) } };
}

/**
 * Answers one request arriving on port 67. Side effects go to the lease store only.
 * Returns `ignored` outcomes (no reply) for messages that are not ours to answer.
 */
export function handleDhcp(req: DhcpPacket, o: DhcpPolicyOptions): DhcpOutcome {
  const mac = macOf(req);
  if (req.op !== 1) return ignored(mac, "not a BOOTREQUEST");
  const type = req.options.messageType();
  if (type === undefined) return ignored(mac, "BOOTP (no option 53) is not served");
  if (mac === null) return ignored(mac, "not Ethernet");
  if (o.knownOnly && !o.known?.has(mac)) {
    return ignored(mac, "not a [[machine]] (known_only)", "known-only");
  }
  return o.mode === "proxy" ? proxy(req, mac, type, o) : server(req, mac, type, o);
}

/**
 * The network a request is from: the relay's (giaddr), else that of the address the client
 * has (ciaddr: a relayed client renews by unicast, without a relay), else the interface's.
 * Undefined for a relay no subnet covers.
 */
function scopeOf(req: DhcpPacket, o: DhcpPolicyOptions): DhcpScope | undefined {
  const from = req.giaddr !== ZERO ? req.giaddr : req.ciaddr !== ZERO ? req.ciaddr : undefined;
  if (from === undefined || o.subnet.contains(from)) return o;
  const scope = o.subnets?.find((s) => s.subnet.contains(from));
  // A client on our link with an address of elsewhere is the interface's (and gets a NAK).
  return scope ?? (req.giaddr === ZERO ? o : undefined);
}

function server(req: DhcpPacket, mac: Mac, type: number, o: DhcpPolicyOptions): DhcpOutcome {
  const scope = scopeOf(req, o);
  if (!scope) {
    // Addresses of any pool we have would be of the wrong network behind that relay.
    return ignored(mac, `relay ${req.giaddr}: no [[dhcp.subnet]] contains it`, "no-subnet");
  }
  const leases = scope.leases;
  if (!leases) throw new Error("DHCP server mode needs a lease store");
  const id = req.options.clientId();
  const clientId = id ? hexBytes(id) : undefined;
  const choice = chooseBootfile(req, o.boot);
  switch (type) {
    case MessageType.Discover: {
      const got = leases.offer(mac, {
        clientId,
        requestedIp: req.options.ip(DhcpOption.RequestedIP),
      });
      if ("refused" in got) return ignored(mac, OFFER_REFUSED[got.refused], got.refused);
      return leaseReply(req, mac, o, scope, MessageType.Offer, got.ip, choice);
    }
    case MessageType.Request: {
      const serverId = req.options.ip(DhcpOption.ServerId);
      const requested = req.options.ip(DhcpOption.RequestedIP);
      if (serverId !== undefined && serverId !== o.serverIp) {
        // SELECTING another server's offer: ours is no longer needed (RFC 2131 §4.3.2).
        const held = leases.current(mac);
        if (held?.state === "offered") leases.release(mac, held.ip);
        return ignored(mac, `client chose server ${serverId}`);
      }
      // SELECTING and INIT-REBOOT name the address in option 50; RENEWING and REBINDING in ciaddr.
      const ip = requested ?? (req.ciaddr !== ZERO ? req.ciaddr : undefined);
      if (ip === undefined) return nak(req, mac, o, "no address requested");
      if (!scope.subnet.contains(ip)) return nak(req, mac, o, "wrong network");
      const hostname = cleanHostname(req.options.string(DhcpOption.Hostname));
      const res = leases.commit(mac, ip, scope.leaseSeconds, { clientId, hostname });
      if (!res.ok && res.reason === "not-offered" && serverId === undefined) {
        // RFC 2131 §4.3.2: no record of this client: a server MUST remain silent.
        return ignored(mac, `REQUEST for ${ip}, which it was never given`, "not-offered");
      }
      if (!res.ok) return nak(req, mac, o, `address ${ip} ${res.reason}`);
      // RFC 2131 §3.1 (4): the server commits the binding to persistent storage, then ACKs.
      return {
        ...leaseReply(req, mac, o, scope, MessageType.Ack, ip, choice),
        saved: leases.saved(ip),
        held: () => leases.stillBound(mac, ip),
      };
    }
    case MessageType.Inform: {
      // RFC 2131 §3.4: configuration only, no yiaddr and no lease times; sent to ciaddr.
      const reply = replyTo(req, MessageType.Ack);
      reply.options.set(DhcpOption.ServerId, ipBytes(o.serverIp));
      addNetwork(reply, o, scope, mac);
      if (choice) addBoot(reply, req, o, choice);
      addOptions(reply, req, o, scope, mac);
      return {
        event: replyEvent(req, mac, "ack", req.ciaddr, choice),
        reply: finishReply(req, reply),
      };
    }
    case MessageType.Release: {
      const ok = leases.release(mac, req.ciaddr);
      return { event: { kind: "release", mac, ip: req.ciaddr, ok } };
    }
    case MessageType.Decline: {
      const ip = req.options.ip(DhcpOption.RequestedIP) ?? ZERO;
      const ok = leases.decline(mac, ip);
      return { event: { kind: "decline", mac, ip, ok } };
    }
    default:
      return ignored(mac, `message type ${type} is not for a server`);
  }
}

/**
 * ProxyDHCP (PXE 2.1 §2.2.3): another server hands out addresses; we answer PXE and HTTP-boot
 * clients with boot information only, no yiaddr and no lease options.
 */
function proxy(req: DhcpPacket, mac: Mac, type: number, o: DhcpPolicyOptions): DhcpOutcome {
  if (clientKind(req) === "other") return ignored(mac, "not a PXE client (proxy)");
  if (type !== MessageType.Discover) return ignored(mac, "proxy answers DISCOVER on port 67 only");
  return proxyAnswer(req, mac, o, MessageType.Offer);
}

/**
 * The boot-info-only answer of a ProxyDHCP server: an OFFER on port 67, or the ACK to a
 * REQUEST on port 4011 (sent back to where it came from, `to`).
 */
function proxyAnswer(
  req: DhcpPacket,
  mac: Mac,
  o: DhcpPolicyOptions,
  type: typeof MessageType.Offer | typeof MessageType.Ack,
  to?: { address: string; port: number },
): DhcpOutcome {
  const choice = chooseBootfile(req, o.boot);
  if (!choice) return ignored(mac, `no loader for architecture ${clientArchOf(req)}`);
  const reply = replyTo(req, type);
  reply.options.set(DhcpOption.ServerId, ipBytes(o.serverIp));
  addBoot(reply, req, o, choice);
  const kind = type === MessageType.Offer ? "proxy-offer" : "proxy-ack";
  return { event: replyEvent(req, mac, kind, null, choice), reply: finishReply(req, reply, to) };
}

/** Answers a REQUEST to port 4011 (PXE boot server / iPXE ProxyDHCPREQUEST). */
export function handlePxeRequest(
  req: DhcpPacket,
  o: DhcpPolicyOptions,
  from: { address: string; port: number },
): DhcpOutcome {
  const mac = macOf(req);
  if (req.op !== 1 || req.options.messageType() !== MessageType.Request || mac === null) {
    return ignored(mac, "port 4011 takes DHCPREQUEST only");
  }
  if (clientKind(req) === "other") return ignored(mac, "not a PXE client (4011)");
  return proxyAnswer(req, mac, o, MessageType.Ack, from);
}

const REPLY_NAMES: Record<DhcpReplyKind, string> = {
  "offer": "DHCPOFFER",
  "ack": "DHCPACK",
  "nak": "DHCPNAK",
  "proxy-offer": "ProxyDHCPOFFER",
  "proxy-ack": "ProxyDHCPACK",
};

/** The fields of a reply's log line: the event's but its inventory, then where it went. */
const REPLY_KEYS = ["kind", "reply", "mac", "ip", "client", "arch", "bootfile", "dest"];
/** A NAK's: the same, with why. */
const NAK_KEYS = ["kind", "reply", "mac", "ip", "client", "arch", "bootfile", "reason", "dest"];

/** The prepared lines of replies (one a reply: fields named once, not spread per line). */
interface ReplyLines {
  reply: LineWriter;
  nak: LineWriter;
}

function replyLines(logger: Logger): ReplyLines {
  // The message is the reply's own ("DHCPACK 10.0.0.5 to 52:54:…"), given with each line.
  return {
    reply: preparedLine(logger, "info", "dhcp", "reply", REPLY_KEYS),
    nak: preparedLine(logger, "info", "dhcp", "reply", NAK_KEYS),
  };
}

/** One log line per outcome: replies and client messages at info, ignored requests at debug. */
function logOutcome(
  logger: Logger,
  lines: ReplyLines,
  out: DhcpOutcome,
  warn: (e: DhcpIgnoredEvent) => void,
): void {
  const e = out.event;
  if (e.kind === "ignored") {
    if (
      e.refusal === "pool-exhausted" || e.refusal === "rate-limited" ||
      e.refusal === "reserved-in-use"
    ) warn(e);
    return logger.debug("dhcp", "ignored", { mac: e.mac, why: e.why });
  }
  if (e.kind !== "reply") return logger.info("dhcp", `DHCP${e.kind.toUpperCase()}`, { ...e });
  const dest = out.reply ? `${out.reply.address}:${out.reply.port}` : "";
  const message = `${REPLY_NAMES[e.reply]}${e.ip ? ` ${e.ip}` : ""} to ${e.mac}`;
  if (e.reason === undefined) {
    lines.reply([e.kind, e.reply, e.mac, e.ip, e.client, e.arch, e.bootfile, dest], message);
  } else {
    const values = [e.kind, e.reply, e.mac, e.ip, e.client, e.arch, e.bootfile, e.reason, dest];
    lines.nak(values, message);
  }
}

/** Options of {@linkcode createDhcpHandler}. */
export interface DhcpHandlerOptions {
  /** Everything but the mode, which the server loop decides per request. */
  policy: Omit<DhcpPolicyOptions, "mode">;
  /** Called with the event of every request, answered or not. */
  onEvent?: (event: DhcpEvent) => void;
  logger: Logger;
}

/** The handler the DHCP server loop calls: the policy plus events and log lines. */
export function createDhcpHandler(options: DhcpHandlerOptions): DhcpHandler {
  const { policy, onEvent, logger } = options;
  // Under a flood of strangers one warning a minute says it; more would fill the log.
  const warnOnce = () => {
    let warnedAt = -Infinity;
    return (message: string, fields: Record<string, unknown>) => {
      const now = Date.now();
      if (now - warnedAt < 60_000) return;
      warnedAt = now;
      logger.warn("dhcp", message, fields);
    };
  };
  const refused = warnOnce();
  const waiting = warnOnce();
  const warn = (e: DhcpIgnoredEvent) =>
    e.refusal === "reserved-in-use"
      ? waiting(`a [[machine]] waits for its address: ${e.why}`, { mac: e.mac })
      : refused(`new clients refused: ${e.why}`, { mac: e.mac, refusal: e.refusal });
  // One warning a minute for each kind of failure: a frequent one hides no other.
  const unsavedBy = new Map<string, ReturnType<typeof warnOnce>>();
  const unsaved = (e: Error) => {
    const kind = failureKind(e);
    let warn = unsavedBy.get(kind);
    if (!warn) unsavedBy.set(kind, warn = warnOnce());
    return warn;
  };
  const lines = replyLines(logger);
  const finish = (out: DhcpOutcome) => {
    logOutcome(logger, lines, out, warn);
    try {
      onEvent?.(out.event);
    } catch (e) {
      // Watching and bookkeeping never cost a machine its answer.
      logger.warn("dhcp", "event hook failed", { error: e });
    }
    return out.reply ?? null;
  };
  // One policy object per mode, made once: the interface's network is the policy itself, and
  // what is encoded once per network (`bytesOf`) is kept by that object.
  const asServer: DhcpPolicyOptions = { ...policy, mode: "server" };
  const asProxy: DhcpPolicyOptions = { ...policy, mode: "proxy" };
  return (req, ctx) => {
    const out = ctx.port === PXE_PORT
      ? handlePxeRequest(req, asProxy, ctx.from)
      : handleDhcp(req, ctx.mode === "proxy" ? asProxy : asServer);
    if (!out.saved) return finish(out);
    // The ACK leaves once its lease is on disk; other requests are answered meanwhile.
    return out.saved.then(() => {
      if (out.held?.() !== false) return finish(out);
      const ip = out.event.kind === "reply" ? out.event.ip : null;
      const why = `lease of ${ip} no longer bound to this client once saved (released, ` +
        `declined or moved meanwhile): no ACK`;
      return finish({ event: { kind: "ignored", mac: out.event.mac, why } });
    }, (e: Error) => {
      const why = `lease not saved, no ACK: ${e.message}`;
      unsaved(e)(`ACKs withheld: ${why}`, { mac: out.event.mac, error: e });
      return finish({ event: { kind: "ignored", mac: out.event.mac, why } });
    });
  };
}
