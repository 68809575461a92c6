/**
 * The DNS service as `serve` runs it: the names of `boot/dns_names.ts` over the config and
 * the lease table, the zones of `boot/dns_zone.ts`, the forwarder of
 * `protocols/dns/forwarder.ts`, the policy of `boot/dns_responder.ts` and the server loop of
 * `protocols/dns/server.ts`, put together.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { BindError } from "../net/errors.ts";
import { Subnet } from "../net/ipv4.ts";
import { neighbourMac } from "../net/neighbours.ts";
import { canonicalAddress } from "../net/ipv6.ts";
import { DnsForwarder, parseUpstream } from "../protocols/dns/forwarder.ts";
import { type DnsDropEvent, startDnsServer } from "../protocols/dns/server.ts";
import { HostNames, type NamedMachine, type NameLeases } from "../boot/dns_names.ts";
import { createDnsHandler, type DnsQueryEvent } from "../boot/dns_responder.ts";
import { DnsZone } from "../boot/dns_zone.ts";

/** Everything the DNS service needs; `serve` maps config.toml onto this. */
export interface DnsServiceOptions {
  /** The only interface DNS is served on. */
  interface: string;
  /** Our address: DNS listens there and nowhere else. */
  serverIp: string;
  netmask: string;
  port: number;
  /** The zone of the machines' names. */
  domain: string;
  /** Seconds answers may be cached. */
  ttl: number;
  /** `address` or `address:port`, asked in order; none: other names are refused. */
  upstream: readonly string[];
  machines: readonly NamedMachine[];
  /** Networks behind relays that DHCP serves: their clients may have names forwarded too. */
  relayed?: readonly Subnet[];
  /** The lease table, when this server hands out addresses. */
  leases?: NameLeases;
  logger: Logger;
  onEvent?: (e: DnsQueryEvent) => void;
  onDrop?: (e: DnsDropEvent) => void;
}

/** A running DNS service. */
export interface DnsService {
  readonly port: number;
  /** Answers from now on as `o` says (a reload): names, upstreams, TTL; same sockets. */
  update(o: DnsServiceOptions): void;
  close(): Promise<void>;
}

/**
 * Starts DNS on the interface's address; rejects with a `BindError` that says how to run
 * without DNS when the port is taken.
 */
export async function startDnsService(o: DnsServiceOptions): Promise<DnsService> {
  const subnet = Subnet.of(o.serverIp, o.netmask);
  // One forwarder for the life of the service: a reload changes its upstreams, and the queries
  // still waiting keep counting against its bounds (a new one would start them at nothing).
  const forwarder = new DnsForwarder({ upstreams: upstreamsOf(o), logger: o.logger });
  let handler = handlerFor(o, subnet, forwarder);
  let relayed = o.relayed ?? [];
  try {
    const server = await startDnsServer({
      interface: o.interface,
      address: o.serverIp,
      port: o.port,
      // Through `handler`, so that a reload changes the answers, not the sockets.
      handler: (req) => handler(req),
      logger: o.logger,
      onDrop: o.onDrop,
      // As UDP (held to the interface): a client on the link (the kernel's neighbour table has
      // it there), or of the relayed networks DHCP serves (read anew after a reload).
      tcpClient: (address) => {
        const ip = canonicalAddress(address);
        return subnet.contains(ip) || relayed.some((s) => s.contains(ip)) ||
          neighbourMac(ip, o.interface) !== null;
      },
    });
    o.logger.info(
      "dns",
      o.upstream.length
        ? `DNS for ${o.domain}, forwarding the rest for ${subnet}`
        : `DNS for ${o.domain}; no upstream: other names are refused`,
      { upstream: o.upstream.join(", ") },
    );
    return {
      port: server.port,
      update: (next) => {
        forwarder.setUpstreams(upstreamsOf(next));
        handler = handlerFor(
          { ...next, serverIp: o.serverIp, netmask: o.netmask },
          subnet,
          forwarder,
        );
        relayed = next.relayed ?? [];
      },
      close: () => server.close(),
    };
  } catch (e) {
    if (!(e instanceof BindError)) throw e;
    throw new BindError(e.what, `${e.reason}; [dns] enabled = false runs without DNS`, {
      cause: e,
    });
  }
}

function upstreamsOf(o: DnsServiceOptions) {
  return o.upstream.flatMap((u) => parseUpstream(u) ?? []);
}

/** The query handler of `o`: names, zones and policy, forwarding through `forwarder`. */
function handlerFor(o: DnsServiceOptions, subnet: Subnet, forwarder: DnsForwarder) {
  const names = new HostNames(o.serverIp, o.machines, o.leases);
  const zone = new DnsZone({ domain: o.domain, subnet, names, ttl: o.ttl });
  return createDnsHandler({
    policy: {
      zone,
      subnet,
      relayed: o.relayed,
      // No upstream: other names are refused, not failed.
      forward: forwarder.upstreams.length ? (b, q, c) => forwarder.forward(b, q, c) : undefined,
    },
    onEvent: o.onEvent,
    logger: o.logger,
  });
}
