/**
 * Answers IPv6 router solicitations with an advertisement that says "no router here".
 *
 * iPXE configures IPv6 beside IPv4 on every boot: it sends router solicitations and, on a
 * network without IPv6 routers, waits ~16 s for an answer before it fetches its script
 * (measured in the lab; its `ipv6conf` finishes on the first advertisement it receives, and
 * with neither M nor O set it starts no DHCPv6 — iPXE `src/net/ndp.c`,
 * `ipv6conf_rx_router_advertisement`). The advertisement sent here has router lifetime 0, so
 * no host takes us as a default router, and no prefix, so no host gets an address: it ends
 * the wait and changes nothing else on the network.
 *
 * Where a real IPv6 router advertises on the link, it stays silent: iPXE keeps the first
 * advertisement it gets, and ours must not win over the router's.
 *
 * A thin loop: receive, validate and answer ({@linkcode answerSolicitation}, pure), rate
 * limit ({@linkcode RaRateLimit}), send. Bad packets are logged at debug and dropped.
 *
 * @module
 */
import { errorMessage, type Logger } from "../../log.ts";
import { silentLogger } from "../../log.ts";
import { macFromBytes } from "../../net/mac.ts";
import {
  decodeRouterAdvertisement,
  decodeRouterSolicitation,
  encodeRouterAdvertisement,
  ICMPV6_TYPE,
  NDP_OPTION,
  nonRouterAdvertisement,
  sourceLinkLayerAddress,
} from "./packet.ts";
import {
  ALL_NODES,
  ALL_ROUTERS,
  ipv6ToString,
  isLinkLocal,
  isUnspecified,
  sameAddress,
} from "../../net/ipv6.ts";
import { Icmpv6Socket, ipv6Link, linkAddresses } from "../../net/icmpv6_socket.ts";

/** A received neighbour discovery message as the socket reports it. */
export interface NdpMessage {
  data: Uint8Array;
  source: Uint8Array;
  hopLimit: number | null;
}

/** What to do with a solicitation: send `advertisement` to `to`, or drop it and why. */
export type SolicitationAnswer =
  | { advertisement: Uint8Array; to: Uint8Array; solicitorMac: string | null }
  | { drop: string };

/**
 * Validates a router solicitation (RFC 4861 §6.1.1) and builds our answer: unicast to the
 * solicitor, or to all nodes when it has no address yet (§6.2.6).
 */
export function answerSolicitation(
  rs: NdpMessage,
  own: { mac: Uint8Array | null; addresses: readonly Uint8Array[] },
): SolicitationAnswer {
  // A hop limit below 255 means the packet crossed a router: it is not from this link.
  if (rs.hopLimit !== 255) return { drop: `hop limit ${rs.hopLimit ?? "unknown"}, not 255` };
  let options;
  try {
    options = decodeRouterSolicitation(rs.data).options;
  } catch (e) {
    return { drop: errorMessage(e) };
  }
  if (own.addresses.some((a) => sameAddress(a, rs.source))) {
    return { drop: "sent by this host" };
  }
  const lla = sourceLinkLayerAddress(options);
  const unspecified = isUnspecified(rs.source);
  if (unspecified && lla) {
    return { drop: "source :: with a source link-layer address option" };
  }
  return {
    advertisement: encodeRouterAdvertisement(nonRouterAdvertisement(own.mac)),
    to: unspecified ? ALL_NODES : rs.source,
    solicitorMac: lla ? macFromBytes(lla) : null,
  };
}

/**
 * Whether `m` is a valid advertisement (RFC 4861 §6.1.2) from a real IPv6 router on the link:
 * one that offers a default route, addresses or DHCPv6. Advertisements like ours (nothing to
 * offer, e.g. a second Astral Boot) do not count.
 */
export function isRealRouterAdvertisement(m: NdpMessage, own: readonly Uint8Array[]): boolean {
  if (m.hopLimit !== 255 || !isLinkLocal(m.source)) return false;
  if (own.some((a) => sameAddress(a, m.source))) return false;
  try {
    const ra = decodeRouterAdvertisement(m.data);
    return ra.routerLifetime > 0 || ra.managed || ra.other ||
      ra.options.some((o) => o.type === NDP_OPTION.PREFIX_INFORMATION);
  } catch {
    return false;
  }
}

/** Options for {@linkcode RaRateLimit}. */
export interface RaRateLimitOptions {
  /** At most one answer per solicitor within this many ms; default 1000. */
  perSolicitorMs?: number;
  /** At most this many answers in any second; default 20. */
  perSecond?: number;
}

/** Bounds the answers: per solicitor, and overall, so a flood of solicitations stays cheap. */
export class RaRateLimit {
  readonly perSolicitorMs: number;
  readonly perSecond: number;
  #last = new Map<string, number>();
  #recent: number[] = [];

  constructor(options: RaRateLimitOptions = {}) {
    this.perSolicitorMs = options.perSolicitorMs ?? 1000;
    this.perSecond = options.perSecond ?? 20;
  }

  /** How many solicitors it remembers (bounded: expired ones are swept past 4096). */
  get tracked(): number {
    return this.#last.size;
  }

  /** Whether an answer to `solicitor` may go out at `now` (ms); counts it if so. */
  allow(solicitor: string, now: number): boolean {
    while (this.#recent.length > 0 && now - this.#recent[0]! >= 1000) this.#recent.shift();
    if (this.#recent.length >= this.perSecond) return false;
    const last = this.#last.get(solicitor);
    if (last !== undefined && now - last < this.perSolicitorMs) return false;
    if (this.#last.size >= 4096) {
      // Spoofed sources must not grow the map without bound: forget the expired ones.
      for (const [k, t] of this.#last) if (now - t >= this.perSolicitorMs) this.#last.delete(k);
    }
    this.#last.set(solicitor, now);
    this.#recent.push(now);
    return true;
  }
}

/** Options for {@linkcode startRaResponder}. */
export interface RaResponderOptions {
  /** The interface to answer on (the DHCP interface); nothing is sent anywhere else. */
  interface: string;
  logger?: Logger;
  rateLimit?: RaRateLimitOptions;
  /**
   * After a real router advertised on the link, stay silent this long (ms; default 1 hour,
   * routers advertise at least every 30 minutes, RFC 4861 §6.2.1): iPXE takes the first
   * advertisement it gets, and ours would cut it off from that router's IPv6.
   */
  routerQuietMs?: number;
}

/** A running responder. */
export interface RaResponder {
  /** False when the interface has no IPv6 or no ICMPv6 socket could be opened. */
  readonly answering: boolean;
  close(): Promise<void>;
}

const IDLE: RaResponder = { answering: false, close: () => Promise.resolve() };

const WAIT_HINT = "no router advertisements; iPXE will wait ~15 s for one";

/**
 * Starts answering router solicitations on one interface. When the interface has no IPv6 or
 * the socket cannot be opened it says so in one info line and does nothing (`answering` is
 * false): the server runs on without.
 */
export function startRaResponder(options: RaResponderOptions): Promise<RaResponder> {
  const log = options.logger ?? silentLogger;
  const name = options.interface;
  const found = ipv6Link(name);
  if ("unavailable" in found) {
    log.info("ndp", `IPv6 is off on ${name}: ${WAIT_HINT}`, {
      interface: name,
      reason: found.unavailable,
    });
    return Promise.resolve(IDLE);
  }
  const { link } = found;
  let socket: Icmpv6Socket;
  try {
    socket = Icmpv6Socket.open({
      link,
      types: [ICMPV6_TYPE.ROUTER_SOLICITATION, ICMPV6_TYPE.ROUTER_ADVERTISEMENT],
      groups: [ALL_ROUTERS],
      logger: log,
    });
  } catch (e) {
    log.info("ndp", `cannot open an ICMPv6 socket on ${name}: ${WAIT_HINT}`, {
      interface: name,
      error: e,
    });
    return Promise.resolve(IDLE);
  }
  const first = linkAddresses(name).linkLocal;
  log.info("ndp", `answering IPv6 router solicitations on ${name} (as a non-router)`, {
    interface: name,
    // The kernel adds it once the link has carrier; until then sends fail and clients retry.
    address: first ? ipv6ToString(first) : "none yet",
  });
  const limit = new RaRateLimit(options.rateLimit);
  const quietMs = options.routerQuietMs ?? 3600_000;
  const seen = new Set<string>();
  let sendFailed = false;
  let routerSeenAt = -Infinity;

  const loop = (async () => {
    for (;;) {
      const m = await socket.receive();
      if (!m) return;
      const from = ipv6ToString(m.source);
      const now = linkAddresses(name);
      const own = now.linkLocal ? [now.linkLocal] : [];
      if (m.data[0] === ICMPV6_TYPE.ROUTER_ADVERTISEMENT) {
        if (!isRealRouterAdvertisement(m, own)) continue;
        if (Date.now() - routerSeenAt >= quietMs) {
          log.info("ndp", `an IPv6 router advertises on ${name}: leaving solicitations to it`, {
            interface: name,
            router: from,
          });
        }
        routerSeenAt = Date.now();
        continue;
      }
      if (Date.now() - routerSeenAt < quietMs) {
        log.debug("ndp", "router solicitation left to the router on the link", { from });
        continue;
      }
      const answer = answerSolicitation(m, { mac: now.mac, addresses: own });
      if ("drop" in answer) {
        log.debug("ndp", "dropped router solicitation", { from, reason: answer.drop });
        continue;
      }
      if (!limit.allow(from, Date.now())) {
        log.debug("ndp", "router solicitation rate-limited", { from });
        continue;
      }
      const to = ipv6ToString(answer.to);
      try {
        socket.send(answer.advertisement, answer.to);
      } catch (e) {
        // Usually no usable link-local address yet (no carrier, or still in duplicate address
        // detection); clients retry.
        const fields = { to, error: e };
        if (sendFailed) log.debug("ndp", "cannot send router advertisement", fields);
        else log.warn("ndp", "cannot send router advertisement", fields);
        sendFailed = true;
        continue;
      }
      const mac = answer.solicitorMac;
      log.debug("ndp", "router advertisement sent", { to, mac, interface: name });
      const key = mac ?? from;
      if (!seen.has(key)) {
        if (seen.size >= 4096) seen.clear();
        seen.add(key);
        log.info("ndp", "answered router solicitation: no IPv6 router here", {
          mac,
          to,
          interface: name,
        });
      }
    }
  })().catch((e) => {
    log.warn("ndp", "router advertisement responder stopped", { interface: name, error: e });
  });

  return Promise.resolve({
    answering: true,
    async close() {
      await socket.close();
      await loop;
    },
  });
}
