/**
 * Fuzzing of the DHCP and TFTP decoders and server loops with seeded mutations of real
 * captures (`tests/fuzz_mutator.ts`):
 *
 * - **dhcp-policy**: every mutated datagram through `decodeDhcp`, then, as the server loop does,
 *   through the handler of `boot/dhcp_responder.ts` (a real `LeaseStore` over SQLite in memory)
 *   in server and proxy mode on ports 67 and 4011; every reply must encode (`encodeReply`) and
 *   decode again. Afterwards clean requests from new machines still get OFFER, ACK,
 *   ProxyDHCPOFFER and ProxyDHCPACK.
 * - **tftp-server**: `startTftpServer` over the in-memory network of the TFTP tests; clients
 *   send mutated requests, and mutated ACK/ERROR/DATA/requests to their running transfers
 *   (and to others'); afterwards every transfer ends (`active` back to 0, every socket closed,
 *   every opened file released, one event per transfer) and a clean request gets its file.
 * - **dns-policy**: every mutated query through `decodeDns` and, as the server loop does,
 *   through the policy of `boot/dns_responder.ts` (the zones over a real `LeaseStore` in
 *   memory, a forwarder that answers, fails or is busy) for clients inside and outside the
 *   subnet, over UDP and TCP; every answer must encode, fit the client's size limit and decode
 *   with the query's ID; what does not decode gets a FORMERR or nothing. Afterwards clean
 *   queries still get their names.
 * - **dns-server**: `startDnsServer` with that policy on loopback (127.0.0.1, an ephemeral
 *   port): mutated datagrams, mutated TCP frames and raw garbage streams; afterwards it still
 *   answers over UDP and TCP, logged no error, and stops cleanly.
 * - **dhcp-netns**: raw mutated datagrams (`tests/fuzz_flood.ts`) at `startDhcpService` (the
 *   real socket loop) inside network namespaces, proxy then server mode; the server takes them
 *   all, logs no error, still answers clean PXE requests, udhcpc still gets a lease, and it
 *   stops cleanly.
 *
 * Nothing may throw but the codec's `MalformedPacketError` out of a decoder; no error-level log
 * line, no unhandled rejection. A failure names the part, the seed and the packet's bytes.
 *
 *   deno task fuzz [--packets N] [--seed S] [--netns N] [--rate R]
 *
 * `--packets` (default 1 000 000) is split evenly between the three in-process parts (the
 * dns-server part gets at most 50 000 on top); `--netns`
 * (default 10 000, 0 to skip; needs root) is sent at the namespace server on top, `--rate`
 * datagrams per second (default 2000). The seed defaults to the clock; it is printed.
 *
 * @module
 */
import type { Level, Logger } from "../log.ts";
import { MalformedPacketError } from "../net/bytes.ts";
import { isIpv4, Subnet } from "../net/ipv4.ts";
import { type Mac, mustParseMac } from "../net/mac.ts";
import { openDatabase } from "../state/db.ts";
import { LeaseStore, poolExclusions } from "../state/leases.ts";
import { createDhcpHandler, type DhcpEvent } from "../boot/dhcp_responder.ts";
import { encodeOptions } from "../protocols/dhcp/option_table.ts";
import { DhcpOption, MessageType } from "../protocols/dhcp/options.ts";
import { decodeDhcp, type DhcpPacket, encodeDhcp } from "../protocols/dhcp/packet.ts";
import type { DhcpRequestContext } from "../protocols/dhcp/server.ts";
import {
  encodeReply,
  isForeignServerReply,
  PXE_PORT,
  selectsOtherServer,
  SERVER_PORT,
} from "../protocols/dhcp/wire.ts";
import {
  decodeTftp,
  encodeData,
  encodeError,
  encodeTftp,
  Opcode,
  type RequestPacket,
} from "../protocols/tftp/packet.ts";
import { startTftpServer, type TftpClient, type TftpOpen } from "../protocols/tftp/server.ts";
import {
  CAPTURED_FRAMES,
  CLIENT,
  content,
  fetchFile,
  memFiles,
  MemNet,
  type MemSocket,
  SERVER,
} from "../protocols/tftp/_test_utils.ts";
import {
  bridgeLab,
  hookScript,
  jsonLines,
  type LineFollower,
  readEnv,
  spawnDeno,
  startRunner,
} from "./dhcp_harness.ts";
import {
  DHCP_MUTATION,
  DNS_MUTATION,
  hex,
  mutate,
  prng,
  TFTP_MUTATION,
  unhex,
} from "./fuzz_mutator.ts";
import {
  answerDns,
  createDnsHandler,
  type DnsForward,
  type DnsPolicyOptions,
} from "../boot/dns_responder.ts";
import { frame } from "../protocols/dns/tcp.ts";
import { dnsLink, SUBNET as DNS_SUBNET } from "../boot/_dns_test_utils.ts";
import { decodeDns, type DnsMessage, DnsType, encodeDns } from "../protocols/dns/message.ts";
import {
  ednsOf,
  fitAnswer,
  formatError,
  relayed,
  responseTo,
  udpLimit,
} from "../protocols/dns/wire.ts";
import {
  askTcp,
  askUdp,
  dnsQueries,
  queryFor,
  startLoopbackDns,
} from "../protocols/dns/_test_utils.ts";
import type { Netns } from "./netns.ts";

/** What one part did, for the report. */
export interface FuzzReport {
  part: string;
  /** Mutated datagrams fed in. */
  packets: number;
  ms: number;
  /** What became of them (decoded, rejected, replies by kind …). */
  counts: Record<string, number>;
}

/** A broken rule, with what it takes to replay it. */
export class FuzzFailure extends Error {
  constructor(part: string, seed: number, what: string, bytes?: Uint8Array, cause?: unknown) {
    super(
      `${part} (seed ${seed}): ${what}${bytes ? `\n  packet: ${hex(bytes)}` : ""}`,
      { cause },
    );
    this.name = "FuzzFailure";
  }
}

const bump = (counts: Record<string, number>, key: string, n = 1) => {
  counts[key] = (counts[key] ?? 0) + n;
};

/** Packets per second of a report. */
export function rate(r: FuzzReport): number {
  return Math.round(r.packets / Math.max(r.ms / 1000, 1e-3));
}

/**
 * A logger that counts lines by level, warnings and errors by message, and keeps the first
 * error and warning lines whole.
 */
export function countingLogger(): Logger & {
  levels: Record<Level, number>;
  messages: Record<string, number>;
  kept: { level: Level; message: string; fields: Record<string, unknown> }[];
} {
  const levels: Record<Level, number> = { debug: 0, info: 0, warn: 0, error: 0 };
  const messages: Record<string, number> = {};
  const kept: { level: Level; message: string; fields: Record<string, unknown> }[] = [];
  const at = (level: Level) => (_sub: string, message: string, fields = {}) => {
    levels[level]++;
    if (level === "error" || level === "warn") {
      // Numbers vary per line; what is left says what happened.
      const reason = "reason" in fields ? ` (${String(fields.reason).replace(/\d+/g, "N")})` : "";
      bump(messages, `${level}: ${message}${reason}`);
      if (kept.length < 20) kept.push({ level, message, fields });
    }
  };
  return {
    levels,
    messages,
    kept,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
}

/**
 * Error lines, and warnings not in `expected` (by {@linkcode countingLogger}'s key): a
 * warning can hide a caught exception ("transfer failed (<its message>)").
 */
function unexpectedLines(
  logger: ReturnType<typeof countingLogger>,
  expected: readonly string[] = [],
): string[] {
  return Object.keys(logger.messages).filter((k) => !expected.includes(k));
}

/**
 * Records unhandled rejections and uncaught errors (instead of letting them end the process)
 * until disposed; `check()` throws on the first one.
 */
export function watchUnhandled(part: string, seed: number): Disposable & { check(): void } {
  const seen: unknown[] = [];
  const onRejection = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    seen.push(e.reason);
  };
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    seen.push(e.error);
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  return {
    check() {
      if (seen.length > 0) {
        throw new FuzzFailure(part, seed, `unhandled: ${seen[0]}`, undefined, seen[0]);
      }
    },
    [Symbol.dispose]() {
      globalThis.removeEventListener("unhandledrejection", onRejection);
      globalThis.removeEventListener("error", onError);
    },
  };
}

/**
 * A macrotask turn without the clamping of `setTimeout(0)` (~2 ms here): timers and I/O of
 * the code under test run in between. Dispose to close its channel.
 */
function macrotasks(): Disposable & { turn(): Promise<void> } {
  const channel = new MessageChannel();
  let waiting: (() => void) | null = null;
  channel.port1.onmessage = () => {
    const w = waiting;
    waiting = null;
    w?.();
  };
  return {
    turn: () =>
      new Promise<void>((r) => {
        waiting = r;
        channel.port2.postMessage(0);
      }),
    [Symbol.dispose]: () => channel.port1.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// DHCP: decoder, policy handler, reply encoding

const DHCP_TESTDATA = new URL("../protocols/dhcp/testdata/", import.meta.url);

/** The real captures (client requests and dnsmasq replies), by file name. */
export function dhcpCaptures(): Map<string, Uint8Array> {
  return new Map(
    [...Deno.readDirSync(DHCP_TESTDATA)]
      .filter((e) => e.name.endsWith(".bin"))
      .map((e) => e.name)
      .sort()
      .map((name) => [name.slice(0, -4), Deno.readFileSync(new URL(name, DHCP_TESTDATA))]),
  );
}

const DHCP_SERVER = "10.77.0.1";
const DHCP_NET = Subnet.of(DHCP_SERVER, "255.255.0.0");

/** The four ways the server loop calls the handler. */
const CONTEXTS: Omit<DhcpRequestContext, "from">[] = [
  { port: SERVER_PORT, mode: "server" },
  { port: SERVER_PORT, mode: "proxy" },
  { port: PXE_PORT, mode: "proxy" },
  // Auto mode keeps port 4011 open after it has decided to serve addresses.
  { port: PXE_PORT, mode: "server" },
];

/** Where a request seems to come from: its relay, its own address, or nowhere yet. */
function sourceOf(p: DhcpPacket, port: number): DhcpRequestContext["from"] {
  if (p.giaddr !== "0.0.0.0") return { address: p.giaddr, port: SERVER_PORT };
  if (p.ciaddr !== "0.0.0.0") return { address: p.ciaddr, port: port === PXE_PORT ? 4011 : 68 };
  return { address: "0.0.0.0", port: 68 };
}

/** A DHCP handler as `app/dhcp.ts` builds it, over a fresh in-memory lease store. */
export function fuzzDhcpHandler(captures: Map<string, Uint8Array>) {
  const seedMac = (name: string) => {
    const p = decodeDhcp(captures.get(name)!);
    return Array.from(p.chaddr, (x) => x.toString(16).padStart(2, "0")).join(":");
  };
  const reserved = mustParseMac(seedMac("udhcpc_discover"));
  const logger = countingLogger();
  let last: DhcpEvent | undefined;
  const counts: Record<string, number> = {};
  const leases = new LeaseStore(openDatabase(":memory:"), {
    // A /16 pool: mutated MACs must not starve the clean requests at the end (DHCP starvation
    // by MAC flooding is a property of the protocol, not what this run looks for).
    range: ["10.77.1.0", "10.77.255.254"],
    exclude: poolExclusions(DHCP_SERVER, DHCP_NET, "10.77.0.254"),
    reservations: [{ mac: reserved, ip: "10.77.0.20", hostname: "reserved" }],
  });
  // Configured options on every reply (a forced search list longer than 255 bytes is split, or
  // gives way in 576 bytes), and a network behind a relay, as `[[dhcp.subnet]]` makes them.
  const options = {
    values: encodeOptions({
      ntp: ["10.77.0.123"],
      domain_search: Array.from({ length: 24 }, (_, i) => `r${i}.site${i}.fuzz.test`),
      classless_routes: [["0.0.0.0/0", "10.77.0.254"]],
    }),
    force: new Set([119]),
  };
  const relayed = Subnet.parse("10.78.0.0/16");
  const relayedLeases = new LeaseStore(openDatabase(":memory:"), {
    range: ["10.78.1.0", "10.78.255.254"],
    subnet: relayed,
    exclude: poolExclusions(DHCP_SERVER, relayed, "10.78.0.1"),
  });
  const handler = createDhcpHandler({
    policy: {
      serverIp: DHCP_SERVER,
      subnet: DHCP_NET,
      router: "10.77.0.254",
      dns: ["10.77.0.53"],
      domain: "fuzz.test",
      leaseSeconds: 3600,
      boot: { httpUrl: `http://${DHCP_SERVER}:8080` },
      leases,
      options,
      subnets: [{
        subnet: relayed,
        router: "10.78.0.1",
        leaseSeconds: 600,
        leases: relayedLeases,
        options,
      }],
      hostnames: new Map<Mac, string>([[mustParseMac(seedMac("ovmf_discover")), "ovmf-host"]]),
    },
    onEvent: (e) => {
      bump(counts, e.kind === "reply" ? e.reply : e.kind);
      last = e;
    },
    logger,
  });
  /**
   * The handler's answer now: an ACK waiting for its lease to be saved is settled by writing
   * both lease tables at once (microtasks only, no timer turn per packet).
   */
  const answer = async (req: DhcpPacket, ctx: DhcpRequestContext) => {
    const reply = handler(req, ctx);
    if (!(reply instanceof Promise)) return reply;
    leases.flush();
    relayedLeases.flush();
    return await reply;
  };
  return { handler, answer, logger, counts, leases, last: () => last };
}

/**
 * Feeds one datagram to a handler the way the server loop does, in every context; throws
 * what must not happen (any error but MalformedPacketError from the decoder, a handler error,
 * an unencodable or undecodable reply). Returns the replies' bytes.
 */
export async function feedDhcp(
  h: ReturnType<typeof fuzzDhcpHandler>,
  bytes: Uint8Array,
  contexts = CONTEXTS,
): Promise<Uint8Array[] | null> {
  let req: DhcpPacket;
  try {
    req = decodeDhcp(bytes);
  } catch (e) {
    if (e instanceof MalformedPacketError) return null;
    throw new Error(`decodeDhcp threw ${e}`, { cause: e });
  }
  selectsOtherServer(req, DHCP_SERVER);
  isForeignServerReply(req, DHCP_SERVER);
  const out: Uint8Array[] = [];
  for (const c of contexts) {
    const ctx = { ...c, from: sourceOf(req, c.port) };
    let reply;
    try {
      reply = await h.answer(req, ctx);
    } catch (e) {
      throw new Error(`handler (${ctx.mode}, port ${ctx.port}) threw ${e}`, { cause: e });
    }
    if (!reply) continue;
    let wire: Uint8Array;
    try {
      wire = encodeReply(reply);
    } catch (e) {
      throw new Error(`reply (${ctx.mode}, port ${ctx.port}) cannot be encoded: ${e}`, {
        cause: e,
      });
    }
    const back = decodeDhcp(wire);
    if (wire.length + 28 > reply.maxSize) throw new Error(`reply exceeds ${reply.maxSize} bytes`);
    if (back.op !== 2 || back.xid !== req.xid) throw new Error("reply is not a BOOTREPLY to it");
    if (!isIpv4(reply.address) || !(reply.port > 0 && reply.port < 65536)) {
      throw new Error(`reply goes to ${reply.address}:${reply.port}`);
    }
    out.push(wire);
  }
  return out;
}

/** Clean requests from machines never seen: what the server must still answer; problems. */
async function cleanDhcpChecks(
  h: ReturnType<typeof fuzzDhcpHandler>,
  captures: Map<string, Uint8Array>,
): Promise<string[]> {
  const problems: string[] = [];
  const fresh = (name: string, last: number) => {
    const p = decodeDhcp(captures.get(name)!);
    p.chaddr = Uint8Array.of(0x02, 0xf0, 0x22, 0, 0, last);
    return p;
  };
  const ask = async (p: DhcpPacket, ctx: Omit<DhcpRequestContext, "from">, want: string) => {
    const reply = await h.answer(p, { ...ctx, from: sourceOf(p, ctx.port) });
    const e = h.last();
    const got = e?.kind === "reply" ? e.reply : `${e?.kind} (${e && "why" in e ? e.why : ""})`;
    if (!reply || got !== want) problems.push(`${want} expected, got ${got}`);
    else encodeReply(reply);
    return reply?.packet;
  };
  const discover = fresh("ovmf_discover", 1);
  const offer = await ask(discover, CONTEXTS[0]!, "offer");
  if (offer) {
    const request = fresh("ovmf_request", 1);
    request.options.setIp(DhcpOption.ServerId, DHCP_SERVER);
    request.options.setIp(DhcpOption.RequestedIP, offer.yiaddr);
    request.options.setMessageType(MessageType.Request);
    await ask(request, CONTEXTS[0]!, "ack");
  }
  await ask(fresh("ipxe_bios_discover", 2), CONTEXTS[1]!, "proxy-offer");
  await ask(fresh("ipxe_efi_request", 3), CONTEXTS[2]!, "proxy-ack");
  return problems;
}

/**
 * The seeds: every capture, plus the captured REQUESTs selecting `server` (option 54 and an
 * address of its /16 pool) instead of dnsmasq, so that mutations reach the ACK and NAK paths.
 */
export function dhcpSeeds(server: string): Uint8Array[] {
  const captures = dhcpCaptures();
  const net = server.split(".").slice(0, 2).join(".");
  const ours = [...captures].filter(([name]) => name.endsWith("_request")).map(([, bytes], i) => {
    const p = decodeDhcp(bytes);
    p.options.setIp(DhcpOption.ServerId, server);
    p.options.setIp(DhcpOption.RequestedIP, `${net}.1.${10 + i}`);
    return encodeDhcp(p);
  });
  return [...captures.values(), ...ours];
}

/** The dhcp-policy part; see the module comment. */
export async function fuzzDhcpPolicy(o: { packets: number; seed: number }): Promise<FuzzReport> {
  const part = "dhcp-policy";
  using unhandled = watchUnhandled(part, o.seed);
  const captures = dhcpCaptures();
  const h = fuzzDhcpHandler(captures);
  // A REQUEST for an address never offered to its client is refused (RFC 2131 §4.3.2): the
  // REQUEST seeds ask for what the server offered their clients, so the ACK path is reached.
  const seeds = dhcpSeeds(DHCP_SERVER).map((bytes) => {
    const p = decodeDhcp(bytes);
    if (p.options.ip(DhcpOption.ServerId) !== DHCP_SERVER) return bytes;
    const mac = Array.from(p.chaddr.subarray(0, 6), (x) => x.toString(16).padStart(2, "0"));
    const offer = h.leases.offer(mustParseMac(mac.join(":")));
    if (!("ip" in offer)) return bytes;
    p.options.setIp(DhcpOption.RequestedIP, offer.ip);
    return encodeDhcp(p);
  });
  const rnd = prng(o.seed);
  const counts: Record<string, number> = {};
  const started = performance.now();
  for (let i = 0; i < o.packets; i++) {
    const bytes = mutate(seeds[i % seeds.length]!, rnd, DHCP_MUTATION);
    let replies;
    try {
      replies = await feedDhcp(h, bytes);
    } catch (e) {
      throw new FuzzFailure(part, o.seed, `packet ${i}: ${(e as Error).message}`, bytes, e);
    }
    if (replies === null) bump(counts, "rejected");
    else {
      bump(counts, "decoded");
      bump(counts, "replies encoded", replies.length);
    }
    if (unexpectedLines(h.logger).length > 0) {
      throw new FuzzFailure(part, o.seed, `logged: ${JSON.stringify(h.logger.kept)}`, bytes);
    }
  }
  const ms = performance.now() - started;
  const problems = await cleanDhcpChecks(h, captures);
  if (problems.length > 0) {
    throw new FuzzFailure(part, o.seed, `clean requests afterwards: ${problems.join("; ")}`);
  }
  unhandled.check();
  bump(counts, "leases in store", h.leases.list().length);
  return { part, packets: o.packets, ms, counts: { ...counts, ...h.counts, ...h.logger.messages } };
}

// ---------------------------------------------------------------------------------------------
// TFTP: the server and its transfers over the in-memory network

const TFTP_FILES: Record<string, Uint8Array> = {
  "small.txt": content(700, 2),
  "b3000.bin": content(3000, 3),
  "empty": new Uint8Array(0),
  // 512 * 40: ends on a block boundary, so its last DATA is empty.
  "even.bin": content(512 * 40, 4),
};

/** Client requests as real clients send them: the captures, and the same for every file. */
function tftpRequestSeeds(): Uint8Array[] {
  const captured = CAPTURED_FRAMES
    .filter((f) => f.packet.op === Opcode.RRQ || f.packet.op === Opcode.WRQ)
    .map((f) => unhex(f.bytes));
  const more = Object.keys(TFTP_FILES).flatMap((filename) =>
    CAPTURED_FRAMES.flatMap((f) =>
      f.packet.op === Opcode.RRQ ? [encodeTftp({ ...f.packet, filename } as RequestPacket)] : []
    )
  );
  return [...captured, ...more];
}

/** Packets a transfer's peer sends besides its ACK: errors, stray DATA, an OACK. */
const TFTP_PEER_SEEDS: Uint8Array[] = [
  ...CAPTURED_FRAMES.filter((f) => f.packet.op === Opcode.ACK).map((f) => unhex(f.bytes)),
  encodeError(0, "client gave up"),
  encodeError(8, "option refused"),
  encodeData(1, content(512, 9)),
  encodeData(2, new Uint8Array(3)),
  encodeTftp({ op: Opcode.OACK, options: new Map([["blksize", "1468"]]) }),
];

/** What a flood of clients that come and go may rightly make the server warn about. */
const TFTP_WARNINGS = [
  "warn: transfer failed (no ACK after N retransmissions)",
  "warn: too many transfers, request refused",
  "warn: request refused (too many transfers from your address)",
];

/** One fuzzing client: its socket, the transfer it talks to, and the answer it owes. */
interface Peer {
  sock: MemSocket;
  tid: number | null;
  /** The correct next packet to its transfer (an ACK), once it got something. */
  ack: Uint8Array | null;
  request: Uint8Array | null;
}

/** The tftp-server part; see the module comment. */
export async function fuzzTftpServer(o: { packets: number; seed: number }): Promise<FuzzReport> {
  const part = "tftp-server";
  using unhandled = watchUnhandled(part, o.seed);
  const rnd = prng(o.seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const net = new MemNet();
  const logger = countingLogger();
  const files = memFiles(TFTP_FILES, 1000);
  let transfersStarted = 0;
  const listen = (hostname: string, port: number) => {
    if (hostname === SERVER && port === 0) transfersStarted++;
    return net.listen(hostname, port);
  };
  // Some opens are slow, as from IPFS: a transfer can be superseded or closed meanwhile.
  const open: TftpOpen = async (name, client) => {
    if (pick(4) === 0) await new Promise((r) => setTimeout(r, pick(3)));
    return files.open(name, client);
  };
  const counts: Record<string, number> = {};
  const server = await startTftpServer({
    address: SERVER,
    port: 69,
    open,
    logger,
    listen,
    // Short timers and few retries: a transfer its client stopped talking to ends in ~30 ms.
    rto: { initialMs: 4, minMs: 2, maxMs: 16 },
    maxRetries: 2,
    maxTransfers: 48,
    // Refused at port 69 for the limits (per client, overall): no transfer socket was opened.
    onTransfer: (e) =>
      bump(
        counts,
        e.limit ? "refused for a limit" : `transfer ${e.result}`,
      ),
  });
  const requests = tftpRequestSeeds();
  // 64 clients on 12 addresses: five or six each, just over the default per-client limit (4),
  // so most requests are served and the limit is met too.
  const peers: Peer[] = Array.from({ length: 64 }, (_, i) => ({
    sock: net.listen(`10.9.1.${i % 12 + 1}`, 0) as MemSocket,
    tid: null,
    ack: null,
    request: null,
  }));
  const stranger = net.listen("10.9.0.3", 0) as MemSocket;
  const main: TftpClient = { address: SERVER, port: 69 };
  let mutated = 0, clean = 0;
  const send = async (from: MemSocket, bytes: Uint8Array, to: TftpClient) => {
    // Every datagram also goes through the decoder here, to hold it to its contract directly.
    try {
      decodeTftp(bytes);
      bump(counts, "decodable");
    } catch (e) {
      if (!(e instanceof MalformedPacketError)) {
        throw new FuzzFailure(part, o.seed, `decodeTftp threw ${e}`, bytes, e);
      }
      bump(counts, "malformed");
    }
    await from.send(bytes, to);
  };
  const learn = (p: Peer) => {
    for (const d of p.sock.drain()) {
      if (d.from.port === 69) continue; // an error to a refused request: nothing to answer
      let packet;
      try {
        packet = decodeTftp(d.data);
      } catch (e) {
        throw new FuzzFailure(part, o.seed, `the server sent an undecodable packet`, d.data, e);
      }
      if (packet.op === Opcode.ERROR) {
        if (d.from.port === p.tid) p.tid = null;
        continue;
      }
      p.tid = d.from.port;
      if (packet.op === Opcode.DATA) p.ack = encodeTftp({ op: Opcode.ACK, block: packet.block });
      if (packet.op === Opcode.OACK) p.ack = encodeTftp({ op: Opcode.ACK, block: 0 });
    }
  };
  using loop = macrotasks();
  const started = performance.now();
  let lastCheck = 0;
  while (mutated < o.packets) {
    for (const p of peers) {
      if (mutated >= o.packets) break;
      learn(p);
      const r = rnd();
      if (p.tid === null || r < 0.1) {
        // A new request (or a request that supersedes the running transfer).
        const seed = requests[pick(requests.length)]!;
        const bytes = pick(8) === 0 ? seed : mutate(seed, rnd, TFTP_MUTATION);
        if (bytes === seed) clean++;
        else mutated++;
        p.request = bytes;
        p.tid = null;
        bump(counts, "to port 69");
        await send(p.sock, bytes, main);
      } else if (r < 0.45 && p.ack) {
        // The right ACK keeps the transfer going into later blocks and windows.
        clean++;
        await send(p.sock, p.ack, { address: SERVER, port: p.tid });
      } else {
        const to = { address: SERVER, port: p.tid };
        const base = pick(3) === 0
          ? TFTP_PEER_SEEDS[pick(TFTP_PEER_SEEDS.length)]!
          : pick(6) === 0 && p.request
          ? p.request
          : p.ack ?? TFTP_PEER_SEEDS[0]!;
        mutated++;
        // Mostly from the peer itself; now and then from a stranger (unknown TID).
        const from = pick(10) === 0 ? stranger : p.sock;
        bump(counts, from === stranger ? "to a transfer, from a stranger" : "to its transfer");
        await send(from, mutate(base, rnd, TFTP_MUTATION), to);
      }
    }
    // Let transfers and their timers run; replies arrive before the next round.
    await loop.turn();
    if (mutated - lastCheck >= 1000) {
      lastCheck = mutated;
      const unexpected = unexpectedLines(logger, TFTP_WARNINGS);
      if (unexpected.length > 0) {
        throw new FuzzFailure(part, o.seed, `logged: ${unexpected.join("; ")}`);
      }
      unhandled.check();
    }
  }
  const ms = performance.now() - started;
  stranger.close();
  for (const p of peers) p.sock.close();

  // Every transfer must end on its own once its client is gone.
  const deadline = Date.now() + 10_000;
  while (server.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const problems: string[] = [];
  if (server.active !== 0) problems.push(`${server.active} transfers still active after 10 s`);
  const open_sockets = [...net.sockets.keys()].filter((k) => k !== `${SERVER}:69`);
  if (open_sockets.length > 0) problems.push(`sockets left open: ${open_sockets.join(", ")}`);
  // A stream that was opened must be released (read to its end or cancelled).
  const opened = files.stats.opens.filter((n) => Object.hasOwn(TFTP_FILES, n)).length;
  await new Promise((r) => setTimeout(r, 20));
  if (files.stats.released !== opened) {
    problems.push(`${opened} files opened, ${files.stats.released} released`);
  }
  const ended = Object.entries(counts)
    .filter(([k]) => k.startsWith("transfer "))
    .reduce((n, [, v]) => n + v, 0);
  if (ended !== transfersStarted) {
    problems.push(`${transfersStarted} transfers started, ${ended} events`);
  }
  // A clean request afterwards gets its file, byte for byte.
  const c = net.listen(CLIENT, 0) as MemSocket;
  try {
    const curl = CAPTURED_FRAMES.find((f) => f.name.startsWith("curl"))!.packet as RequestPacket;
    const got = await fetchFile(c, curl, { idleMs: 100 });
    const want = TFTP_FILES["b3000.bin"]!;
    if (got.data.length !== want.length || !got.data.every((b, i) => b === want[i])) {
      problems.push("the clean request afterwards got other bytes");
    }
  } catch (e) {
    problems.push(`the clean request afterwards failed: ${e}`);
  } finally {
    c.close();
  }
  await server.close();
  const unexpected = unexpectedLines(logger, TFTP_WARNINGS);
  if (unexpected.length > 0) problems.push(`logged: ${unexpected.join("; ")}`);
  if (problems.length > 0) throw new FuzzFailure(part, o.seed, problems.join("; "));
  unhandled.check();
  return {
    part,
    packets: mutated,
    ms,
    counts: {
      ...counts,
      "clean packets": clean,
      "transfers started": transfersStarted,
      "files opened": opened,
      ...logger.messages,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// DNS: decoder, policy handler, answer encoding

/** The four ways the server loop calls the policy: inside and outside the subnet, UDP and TCP. */
const DNS_CONTEXTS: { from: string; transport: "udp" | "tcp" }[] = [
  { from: "10.76.0.123", transport: "udp" },
  { from: "10.76.0.123", transport: "tcp" },
  { from: "192.0.2.7", transport: "udp" },
  { from: "192.0.2.7", transport: "tcp" },
];

/** The seeds: dig's captured queries, and a few more that reach the other paths. */
export function dnsSeeds(): Uint8Array[] {
  const more: DnsMessage[] = [
    queryFor("101.0.76.10.in-addr.arpa", DnsType.PTR, { edns: true }),
    queryFor("laptop.erf", DnsType.ANY, { edns: true }),
    queryFor("erf", DnsType.SOA),
    queryFor("0.76.10.in-addr.arpa", DnsType.NS),
    queryFor("erf", DnsType.AXFR),
    queryFor("www.example.com", DnsType.AAAA, { edns: true }),
  ];
  return [...dnsQueries().values(), ...more.map(encodeDns)];
}

/** The DNS policy as `app/dns.ts` builds it, over the test link, with a forwarder that varies. */
export function fuzzDnsPolicy() {
  const link = dnsLink();
  const counts: Record<string, number> = {};
  let n = 0;
  // Mostly an upstream answer; now and then none, or too many waiting.
  const forward: DnsForward = (bytes) => {
    const k = n++ % 10;
    if (k === 7) return Promise.resolve({ kind: "failed", reason: "no answer" });
    if (k === 9) return Promise.resolve({ kind: "busy", reason: "busy" });
    const q = decodeDns(bytes);
    const answer = encodeDns({ ...responseTo(q, 0, null), id: 0x4321 });
    return Promise.resolve({
      kind: "answer",
      bytes: relayed(answer, q.id),
      upstream: { address: "10.99.0.53", port: 53 },
      transport: "udp",
    });
  };
  const policy: DnsPolicyOptions = { zone: link.zone, subnet: DNS_SUBNET, forward };
  return { policy, counts };
}

/**
 * Feeds one datagram to the policy the way the server loop does, in every context; throws
 * what must not happen. Returns the answers' bytes (null when it did not decode).
 */
export async function feedDns(
  h: ReturnType<typeof fuzzDnsPolicy>,
  bytes: Uint8Array,
): Promise<Uint8Array[] | null> {
  let query: DnsMessage;
  try {
    query = decodeDns(bytes);
  } catch (e) {
    if (!(e instanceof MalformedPacketError)) throw new Error(`decodeDns threw ${e}`, { cause: e });
    const formerr = formatError(bytes);
    if (formerr && (formerr[0] !== bytes[0] || formerr[1] !== bytes[1])) {
      throw new Error("FORMERR with another ID");
    }
    return null;
  }
  if (query.flags.qr) return [];
  const out: Uint8Array[] = [];
  for (const c of DNS_CONTEXTS) {
    let limit = 65535;
    if (c.transport === "udp") {
      try {
        limit = udpLimit(ednsOf(query));
      } catch (e) {
        if (!(e instanceof MalformedPacketError)) throw e;
        // The loop answers this FORMERR itself, as for any message that does not decode.
        continue;
      }
    }
    const req = {
      message: query,
      bytes,
      from: { address: c.from, port: 5353 },
      transport: c.transport,
    };
    let outcome;
    try {
      outcome = await answerDns(req, h.policy);
    } catch (e) {
      throw new Error(`policy (${c.from}, ${c.transport}) threw ${e}`, { cause: e });
    }
    bump(h.counts, outcome.event.result);
    if (!outcome.reply) continue;
    let wire: Uint8Array;
    try {
      const full = outcome.reply instanceof Uint8Array ? outcome.reply : encodeDns(outcome.reply);
      wire = fitAnswer(full, limit);
    } catch (e) {
      throw new Error(`answer (${c.from}, ${c.transport}) cannot be encoded: ${e}`, { cause: e });
    }
    if (wire.length > limit) throw new Error(`answer of ${wire.length} bytes over ${limit}`);
    const back = decodeDns(wire);
    if (!back.flags.qr || back.id !== query.id) throw new Error("answer is not a response to it");
    out.push(wire);
  }
  return out;
}

/** Clean queries afterwards: the names must still resolve; problems. */
async function cleanDnsChecks(h: ReturnType<typeof fuzzDnsPolicy>): Promise<string[]> {
  const problems: string[] = [];
  const want: [string, number, string][] = [
    ["web-1.erf", DnsType.A, "10.76.0.50"],
    ["laptop.erf", DnsType.A, "10.76.0.101"],
    ["50.0.76.10.in-addr.arpa", DnsType.PTR, "web-1.erf"],
  ];
  for (const [name, type, data] of want) {
    const [wire] = (await feedDns(h, encodeDns(queryFor(name, type)))) ?? [];
    const d = wire ? decodeDns(wire).answers[0]?.data : undefined;
    const got = d?.kind === "a" ? d.address : d?.kind === "name" ? d.name : undefined;
    if (got !== data) problems.push(`${name}: ${got} instead of ${data}`);
  }
  return problems;
}

/** The dns-policy part; see the module comment. */
export async function fuzzDnsPolicyRun(o: { packets: number; seed: number }): Promise<FuzzReport> {
  const part = "dns-policy";
  using unhandled = watchUnhandled(part, o.seed);
  const h = fuzzDnsPolicy();
  const seeds = dnsSeeds();
  const rnd = prng(o.seed);
  const counts: Record<string, number> = {};
  const started = performance.now();
  for (let i = 0; i < o.packets; i++) {
    const bytes = mutate(seeds[i % seeds.length]!, rnd, DNS_MUTATION);
    let answers;
    try {
      answers = await feedDns(h, bytes);
    } catch (e) {
      throw new FuzzFailure(part, o.seed, `packet ${i}: ${(e as Error).message}`, bytes, e);
    }
    if (answers === null) bump(counts, "rejected");
    else {
      bump(counts, "decoded");
      bump(counts, "answers encoded", answers.length);
    }
  }
  const ms = performance.now() - started;
  const problems = await cleanDnsChecks(h);
  if (problems.length > 0) {
    throw new FuzzFailure(part, o.seed, `clean queries afterwards: ${problems.join("; ")}`);
  }
  unhandled.check();
  return { part, packets: o.packets, ms, counts: { ...counts, ...h.counts } };
}

/** The dns-server part; see the module comment. */
export async function fuzzDnsServer(o: { packets: number; seed: number }): Promise<FuzzReport> {
  const part = "dns-server";
  using unhandled = watchUnhandled(part, o.seed);
  const h = fuzzDnsPolicy();
  const logger = countingLogger();
  const counts: Record<string, number> = {};
  const handler = createDnsHandler({
    policy: h.policy,
    logger,
    onEvent: (e) => bump(counts, e.result),
  });
  const server = await startLoopbackDns({
    handler,
    logger,
    onDrop: (e) => bump(counts, `dropped ${e.reason}`),
  });
  const seeds = dnsSeeds();
  const rnd = prng(o.seed);
  const started = performance.now();
  const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = { transport: "udp" as const, hostname: "127.0.0.1", port: server.port };
  const replies = (async () => {
    for (;;) {
      try {
        await udp.receive();
        bump(counts, "udp answers");
      } catch {
        return;
      }
    }
  })();
  const tcpShare = Math.floor(o.packets / 10);
  try {
    for (let i = 0; i < o.packets - tcpShare; i++) {
      await udp.send(mutate(seeds[i % seeds.length]!, rnd, DNS_MUTATION), to);
      // Let the server keep up now and then: this is about content, not load.
      if (i % 64 === 63) await new Promise((r) => setTimeout(r, 1));
    }
    // TCP: well-framed mutated queries on a few connections, and streams of garbage.
    for (let c = 0; c < 10; c++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      try {
        const frames = Array.from(
          { length: Math.ceil(tcpShare / 10) },
          (_, i) => frame(mutate(seeds[(c + i) % seeds.length]!, rnd, DNS_MUTATION)),
        );
        const garbage = c % 3 === 0
          ? [Uint8Array.from({ length: 64 }, () => Math.floor(rnd() * 256))]
          : [];
        for (const f of [...frames, ...garbage]) await conn.write(f);
        bump(counts, "tcp frames", frames.length);
      } catch {
        /* the server closed a broken stream */
      } finally {
        conn.close();
      }
    }
    await new Promise((r) => setTimeout(r, 200));
    const ms = performance.now() - started;
    const problems: string[] = [];
    const clean = encodeDns(queryFor("web-1.erf", DnsType.A, { id: 99 }));
    const a = await askUdp(server.port, clean);
    if (!a || decodeDns(a).answers[0]?.data.kind !== "a") problems.push("no clean UDP answer");
    const [b] = await askTcp(server.port, [clean]);
    if (!b || decodeDns(b).answers.length !== 1) problems.push("no clean TCP answer");
    if (logger.levels.error > 0) problems.push(`logged: ${JSON.stringify(logger.kept)}`);
    if (problems.length > 0) throw new FuzzFailure(part, o.seed, problems.join("; "));
    unhandled.check();
    return { part, packets: o.packets, ms, counts };
  } finally {
    udp.close();
    await replies;
    await server.close();
  }
}

// ---------------------------------------------------------------------------------------------
// DHCP: the real socket loop in network namespaces

const NS_SERVER = "10.79.0.1";
const NS_FLOOD = "10.79.0.2";

/** The runner's log lines at and above `level`, parsed. */
function logLines(f: LineFollower, level: Level): Record<string, unknown>[] {
  return jsonLines(f).filter((l) => l.level === level);
}

/** Replies of the udp tool's `send` mode, decoded, by message type. */
async function askOnce(ns: Netns, dest: string, port: number, request: Uint8Array) {
  const f = spawnDeno(ns, "tests/dhcp_udp_tool.ts", [
    "send",
    "eth0",
    "68",
    dest,
    String(port),
    `hex:${hex(request)}`,
    "1500",
  ]);
  await f.finished(30_000);
  return jsonLines(f).flatMap((l) => {
    try {
      return [decodeDhcp(unhex(String(l.hex))).options.messageType()];
    } catch {
      return [];
    }
  });
}

/**
 * The dhcp-netns part: `startDhcpService` (tests/dhcp_runner.ts) on a bridge in its own
 * namespace, in proxy mode (ports 67 and 4011) and then in server mode (port 67), each
 * flooded with half the packets from a second namespace at `rate` per second; afterwards the
 * proxy answers clean PXE requests on both ports and udhcpc, from a third namespace, gets a
 * lease from the server.
 */
export async function fuzzDhcpNetns(
  o: { packets: number; seed: number; rate: number },
): Promise<FuzzReport[]> {
  const part = "dhcp-netns";
  await using lab = await bridgeLab("abz", `${NS_SERVER}/16`, 2);
  const [flood, client] = lab.clients as [Netns, Netns];
  await flood.exec(["ip", "addr", "add", `${NS_FLOOD}/16`, "dev", "eth0"]);
  const dir = await Deno.makeTempDir({ prefix: "abz-fuzz-" });
  const reports: FuzzReport[] = [];
  const captures = dhcpCaptures();
  try {
    for (const mode of ["proxy", "server"] as const) {
      const packets = mode === "proxy" ? Math.floor(o.packets / 2) : Math.ceil(o.packets / 2);
      const server = await startRunner(lab.server, {
        interface: "br0",
        mode,
        serverIp: NS_SERVER,
        netmask: "255.255.0.0",
        range: ["10.79.1.0", "10.79.255.254"],
        leaseSeconds: 600,
        boot: { httpUrl: `http://${NS_SERVER}:8080` },
        dataDir: `${dir}/${mode}`,
      });
      const problems: string[] = [];
      const counts: Record<string, number> = {};
      let ms = 0;
      try {
        const sender = spawnDeno(flood, "tests/fuzz_flood.ts", [JSON.stringify({
          interface: "eth0",
          server: NS_SERVER,
          ports: mode === "proxy" ? [67, 4011] : [67],
          seed: o.seed,
          packets,
          rate: o.rate,
        })]);
        const status = await sender.finished(packets / o.rate * 1000 + 60_000);
        const result = jsonLines(sender).at(-1) ?? {};
        if (status.code !== 0 || typeof result.sent !== "number") {
          throw new FuzzFailure(`${part} ${mode}`, o.seed, `flood failed:\n${sender.output}`);
        }
        ms = Number(result.ms);
        counts.sent = Number(result.sent);
        counts["send errors"] = Number(result.failed);
        counts["replies seen by the flood"] = Number(result.replies);
        // The server logs one line per datagram it took: dropped, ignored or answered.
        const taken = () =>
          jsonLines(server).filter((l) =>
            l.subsystem === "dhcp" && l.msg !== "DHCP listening" && l.msg !== "reply queued"
          ).length;
        const deadline = Date.now() + 10_000;
        for (let last = -1; taken() !== last && Date.now() < deadline;) {
          last = taken();
          await new Promise((r) => setTimeout(r, 300));
        }
        counts["datagrams the server took"] = taken();
        const sent = jsonLines(server).filter((l) => l.msg === "reply queued");
        counts["replies sent"] = sent.length;
        // ciaddr and giaddr of a mutated request point anywhere; the socket bound to the
        // interface keeps such replies on the link (no route: Linux assumes on-link).
        counts["replies sent off the subnet"] = sent.filter((l) =>
          !String(l.dest).startsWith("10.79.") && !String(l.dest).startsWith("255.255.255.255")
        ).length;
        counts["malformed dropped"] = jsonLines(server)
          .filter((l) =>
            l.msg === "malformed packet dropped"
          ).length;
        if (mode === "proxy") {
          const offer = await askOnce(
            flood,
            "255.255.255.255",
            SERVER_PORT,
            captures.get("ipxe_bios_discover")!,
          );
          if (!offer.includes(MessageType.Offer)) problems.push(`no ProxyDHCPOFFER (${offer})`);
          const ack = await askOnce(flood, NS_SERVER, PXE_PORT, captures.get("ipxe_efi_request")!);
          if (!ack.includes(MessageType.Ack)) problems.push(`no ProxyDHCPACK on 4011 (${ack})`);
        } else {
          const hook = await hookScript(dir, "udhcpc");
          const r = await client.exec(
            ["udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "2", "-i", "eth0", "-s", hook],
            { check: false, timeoutMs: 30_000 },
          );
          const ip = r.code === 0 ? (await readEnv(`${dir}/udhcpc.bound.env`)).ip : undefined;
          if (!ip?.startsWith("10.79.")) problems.push(`udhcpc got no lease: ${r.stderr}`);
        }
        for (const level of ["error", "warn"] as const) {
          const lines = logLines(server, level);
          counts[`${level} lines`] = lines.length;
          // A warning is fine (another server seen, say); an error is a bug.
          if (level === "error" && lines.length > 0) {
            problems.push(`error logged: ${JSON.stringify(lines.slice(0, 3))}`);
          }
        }
      } finally {
        // A server loop that died would make close() reject: the runner would not exit 0.
        const status = await server.stop();
        if (status.code !== 0 || !server.lines.some((l) => l.includes('"stopped"'))) {
          problems.push(`the server did not stop cleanly (exit ${status.code})`);
        }
      }
      if (problems.length > 0) {
        throw new FuzzFailure(
          `${part} ${mode}`,
          o.seed,
          `${problems.join("; ")}\n${server.output.slice(-4000)}`,
        );
      }
      reports.push({ part: `${part} ${mode}`, packets, ms, counts });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return reports;
}

// ---------------------------------------------------------------------------------------------

/** One line per report: packets, time, rate, and what became of them. */
export function formatReport(r: FuzzReport): string {
  const counts = Object.entries(r.counts).map(([k, v]) => `${k} ${v}`).join(", ");
  return `${r.part}: ${r.packets} packets in ${(r.ms / 1000).toFixed(1)} s (${
    rate(r)
  }/s); ${counts}`;
}

if (import.meta.main) {
  const arg = (name: string, fallback: number) => {
    const i = Deno.args.indexOf(`--${name}`);
    if (i < 0) return fallback;
    const v = Number(Deno.args[i + 1]);
    if (!Number.isSafeInteger(v) || v < 0) {
      console.error(`--${name} takes a whole number`);
      Deno.exit(2);
    }
    return v;
  };
  const packets = arg("packets", 1_000_000);
  const seed = arg("seed", Date.now() % 2 ** 31);
  const netns = arg("netns", 10_000);
  const rateArg = arg("rate", 2000);
  console.log(
    `fuzz: ${packets} packets in process, ${netns} at the namespace server, seed ${seed}`,
  );
  const started = performance.now();
  try {
    const reports: FuzzReport[] = [];
    const dhcp = await fuzzDhcpPolicy({ packets: packets - 2 * Math.floor(packets / 3), seed });
    console.log(formatReport(dhcp));
    reports.push(dhcp);
    const tftp = await fuzzTftpServer({ packets: Math.floor(packets / 3), seed });
    console.log(formatReport(tftp));
    reports.push(tftp);
    const dns = await fuzzDnsPolicyRun({ packets: Math.floor(packets / 3), seed });
    console.log(formatReport(dns));
    reports.push(dns);
    const dnsServer = await fuzzDnsServer({ packets: Math.min(50_000, packets), seed });
    console.log(formatReport(dnsServer));
    reports.push(dnsServer);
    if (netns > 0) {
      for (const r of await fuzzDhcpNetns({ packets: netns, seed, rate: rateArg })) {
        console.log(formatReport(r));
        reports.push(r);
      }
    }
    const total = reports.reduce((n, r) => n + r.packets, 0);
    const s = (performance.now() - started) / 1000;
    console.log(`fuzz: ${total} packets, no failure, ${s.toFixed(1)} s in all (seed ${seed})`);
  } catch (e) {
    console.error(e instanceof FuzzFailure ? e.message : e);
    console.error(`replay: deno task fuzz --packets ${packets} --seed ${seed} --netns ${netns}`);
    Deno.exit(1);
  }
}
