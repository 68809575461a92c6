/**
 * What the DNS server answers to each query: the local zones ({@linkcode DnsZone}) with
 * authority, everything else forwarded upstream for clients of the served subnet, REFUSED for
 * anyone else (not an open resolver), SERVFAIL when no upstream answers.
 *
 * No sockets here: the forwarder comes in as a function (`protocols/dns/forwarder.ts`), the
 * server loop (`protocols/dns/server.ts`) calls the handler {@linkcode createDnsHandler}
 * makes. Each query comes out as one typed {@linkcode DnsQueryEvent}.
 *
 * @module
 */
import { errorMessage, type Logger } from "../log.ts";
import type { Subnet } from "../net/ipv4.ts";
import { formatUpstream, type ForwardResult } from "../protocols/dns/forwarder.ts";
import {
  DnsClass,
  type DnsMessage,
  type DnsQuestion,
  DnsType,
  Opcode,
  Rcode,
  typeName,
} from "../protocols/dns/message.ts";
import type { DnsHandler, DnsReply, DnsRequest } from "../protocols/dns/server.ts";
import { type Edns, ednsOf, responseTo } from "../protocols/dns/wire.ts";
import type { DnsZone } from "./dns_zone.ts";

/** Asks the upstreams; `protocols/dns/forwarder.ts` `DnsForwarder.forward` is one. */
export type DnsForward = (
  bytes: Uint8Array,
  question: DnsQuestion,
  o: { client: string; tcp: boolean },
) => Promise<ForwardResult>;

/** Everything the policy needs to answer. */
export interface DnsPolicyOptions {
  zone: DnsZone;
  /** Who may have names forwarded: the served subnet. */
  subnet: Subnet;
  /** Networks behind relays that DHCP serves too (`[[dhcp.subnet]]`): their clients may as well. */
  relayed?: readonly Subnet[];
  /** Absent: nothing is forwarded (no upstream), other names are REFUSED. */
  forward?: DnsForward;
}

/** How a query ended, one value per label of `astralboot_dns_queries_total`. */
export type DnsResult =
  | "answer"
  | "nodata"
  | "nxdomain"
  | "forwarded"
  | "servfail"
  | "busy"
  | "refused"
  | "notimp"
  | "formerr"
  | "badvers";

/** Every result, for metrics that start at zero. */
export const DNS_RESULTS: readonly DnsResult[] = [
  "answer",
  "nodata",
  "nxdomain",
  "forwarded",
  "servfail",
  "busy",
  "refused",
  "notimp",
  "formerr",
  "badvers",
];

/** What happened with one query. */
export interface DnsQueryEvent {
  result: DnsResult;
  /** The name asked, as asked ("" without a question). */
  name: string;
  /** Its type, as people write it (`A`, `PTR`, `TYPE65`). */
  type: string;
  client: string;
  transport: "udp" | "tcp";
  /** The upstream that answered a forwarded query. */
  upstream?: string;
  /** Why it was refused, failed or busy. */
  reason?: string;
}

/** What one query comes to: its event and maybe an answer. */
export interface DnsOutcome {
  event: DnsQueryEvent;
  reply: DnsReply | null;
}

/** The response to `q` with `rcode` (and BADVERS's upper bits in the OPT). */
function refuse(q: DnsMessage, rcode: number, edns: Edns | null, ra: boolean): DnsMessage {
  const r = responseTo(q, rcode, edns);
  r.flags.ra = ra;
  return r;
}

/** Decides the answer to one query; see the module doc. */
export async function answerDns(req: DnsRequest, o: DnsPolicyOptions): Promise<DnsOutcome> {
  const q = req.message;
  const question = q.questions[0];
  const client = req.from.address;
  const event = (result: DnsResult, more: Partial<DnsQueryEvent> = {}): DnsQueryEvent => ({
    result,
    name: question?.name ?? "",
    type: question ? typeName(question.type) : "",
    client,
    transport: req.transport,
    ...more,
  });
  let edns: Edns | null;
  try {
    edns = ednsOf(q);
  } catch (e) {
    const reason = errorMessage(e);
    return { event: event("formerr", { reason }), reply: responseTo(q, Rcode.FormErr, null) };
  }
  const recursion = o.forward !== undefined &&
    (o.subnet.contains(client) || (o.relayed ?? []).some((s) => s.contains(client)));
  const fail = (result: DnsResult, rcode: number, reason: string): DnsOutcome => ({
    event: event(result, { reason }),
    reply: refuse(q, rcode, edns, recursion),
  });
  if (q.opcode !== Opcode.Query) return fail("notimp", Rcode.NotImp, `opcode ${q.opcode}`);
  if (!question || q.questions.length !== 1) {
    return fail("formerr", Rcode.FormErr, `${q.questions.length} questions`);
  }
  if (edns && edns.version > 0) {
    return fail("badvers", Rcode.BadVers, `EDNS version ${edns.version}`);
  }
  if (question.class !== DnsClass.IN && question.class !== DnsClass.ANY) {
    return fail("refused", Rcode.Refused, `class ${question.class}`);
  }
  if (question.type === DnsType.AXFR || question.type === DnsType.IXFR) {
    return fail("refused", Rcode.Refused, "zone transfers are not served");
  }
  const local = o.zone.lookup(question.name, question.type);
  if (local) {
    const r = responseTo(q, local.kind === "nxdomain" ? Rcode.NXDomain : Rcode.NoError, edns);
    r.flags.aa = true;
    r.flags.ra = recursion;
    if (local.kind === "answer") r.answers = local.answers;
    else r.authority = local.authority;
    return { event: event(local.kind), reply: r };
  }
  if (!o.forward) return fail("refused", Rcode.Refused, "no upstream to forward to");
  if (!recursion) return fail("refused", Rcode.Refused, "outside the served subnet");
  const got = await o.forward(req.bytes, question, { client, tcp: req.transport === "tcp" });
  if (got.kind === "answer") {
    const upstream = formatUpstream(got.upstream);
    return { event: event("forwarded", { upstream }), reply: got.bytes };
  }
  return fail(got.kind === "busy" ? "busy" : "servfail", Rcode.ServFail, got.reason);
}

/** Options of {@linkcode createDnsHandler}. */
export interface DnsHandlerOptions {
  policy: DnsPolicyOptions;
  onEvent?: (e: DnsQueryEvent) => void;
  logger: Logger;
}

/** The handler for `protocols/dns/server.ts`: answers, logs at debug, emits the event. */
export function createDnsHandler(o: DnsHandlerOptions): DnsHandler {
  return async (req) => {
    const { event, reply } = await answerDns(req, o.policy);
    o.logger.debug("dns", `${event.type} ${event.name}: ${event.result}`, {
      client: event.client,
      transport: event.transport,
      ...(event.upstream ? { upstream: event.upstream } : {}),
      ...(event.reason ? { reason: event.reason } : {}),
    });
    o.onEvent?.(event);
    return reply;
  };
}
