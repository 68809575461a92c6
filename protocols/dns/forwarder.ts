/**
 * Asks upstream resolvers what the server does not know itself, the way a forwarder must
 * (RFC 5452): each query goes out with a new random ID from a new socket (a fresh source
 * port), and only an answer from the upstream's address and port, with that ID and the same
 * question, is taken. Over UDP each upstream gets `timeoutMs` before the next one is asked;
 * a truncated UDP answer is fetched again over TCP, and a client that asked over TCP is
 * forwarded over TCP. The answer goes back with the client's own ID and without AA.
 *
 * The number of queries waiting for an upstream is bounded, overall and per client address,
 * so a flood of queries for slow names cannot hold the server's sockets and memory.
 *
 * @module
 */
import type { Logger } from "../../log.ts";
import { silentLogger } from "../../log.ts";
import { isIpv4 } from "../../net/ipv4.ts";
import { decodeDnsHead, type DnsQuestion } from "./message.ts";
import { nameKey } from "./name.ts";
import { closeQuietly, frame, FrameReader } from "./tcp.ts";
import { randomId, relayed, withId } from "./wire.ts";

/** One upstream resolver. */
export interface Upstream {
  address: string;
  port: number;
}

/** `10.0.0.53` or `10.0.0.53:5353` as an {@linkcode Upstream}; null for anything else. */
export function parseUpstream(text: string): Upstream | null {
  const m = /^([\d.]+)(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m || !isIpv4(m[1]!)) return null;
  const port = m[2] === undefined ? 53 : Number(m[2]);
  return port >= 1 && port <= 65535 ? { address: m[1]!, port } : null;
}

/** `address` or `address:port` (port 53 left out). */
export function formatUpstream(u: Upstream): string {
  return u.port === 53 ? u.address : `${u.address}:${u.port}`;
}

/** Options of {@linkcode DnsForwarder}. */
export interface ForwarderOptions {
  /** Asked in order; the next one when one does not answer. */
  upstreams: readonly Upstream[];
  /** How long one upstream has over UDP; default 1500 ms. */
  timeoutMs?: number;
  /** How long one upstream has over TCP, connecting included; default 4000 ms. */
  tcpTimeoutMs?: number;
  /** Queries waiting for an upstream at once; default 256. */
  maxOutstanding?: number;
  /** Of those, from one client address; default 32. */
  maxPerClient?: number;
  /** The local address of the sockets that ask; default 0.0.0.0 (the route decides). */
  bindAddress?: string;
  logger?: Logger;
}

/** How a forwarded query ended. */
export type ForwardResult =
  | { kind: "answer"; bytes: Uint8Array; upstream: Upstream; transport: "udp" | "tcp" }
  | { kind: "failed"; reason: string }
  | { kind: "busy"; reason: string };

const SUB = "dns";

/** Whether `bytes` is the answer to our query `id` about `q`. */
function answers(bytes: Uint8Array, id: number, q: DnsQuestion): boolean {
  try {
    const head = decodeDnsHead(bytes);
    return head.id === id && head.flags.qr && head.question !== undefined &&
      head.question.type === q.type && head.question.class === q.class &&
      nameKey(head.question.name) === nameKey(q.name);
  } catch {
    return false;
  }
}

/** Resolves null after `ms`, or with `p`'s value, whichever is first; `late` gets a late value. */
function within<T>(p: Promise<T>, ms: number, late: (v: T) => void): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout>;
  let expired = false;
  return Promise.race([
    p.then((v) => {
      if (expired) late(v);
      return v;
    }),
    new Promise<null>((r) =>
      timer = setTimeout(() => {
        expired = true;
        r(null);
      }, ms)
    ),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Runs one exchange on `conn`: closed after `ms` (that ends a pending read, which has no
 * timeout of its own) and in any case afterwards; null when it fails or times out.
 */
async function exchange<T>(
  conn: { close(): void },
  ms: number,
  use: () => Promise<T | null>,
): Promise<T | null> {
  const timer = setTimeout(() => closeQuietly(conn), ms);
  try {
    return await use();
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/** Forwards queries to upstream resolvers; see the module doc. */
export class DnsForwarder {
  #upstreams: readonly Upstream[];
  #timeout: number;
  #tcpTimeout: number;
  #max: number;
  #maxPerClient: number;
  #perClient = new Map<string, number>();
  #outstanding = 0;
  #log: Logger;
  #bind: string;

  constructor(o: ForwarderOptions) {
    this.#bind = o.bindAddress ?? "0.0.0.0";
    this.#upstreams = o.upstreams;
    this.#timeout = o.timeoutMs ?? 1500;
    this.#tcpTimeout = o.tcpTimeoutMs ?? 4000;
    this.#max = o.maxOutstanding ?? 256;
    this.#maxPerClient = o.maxPerClient ?? 32;
    this.#log = o.logger ?? silentLogger;
  }

  /** Asked in order; the next one when one does not answer. */
  get upstreams(): readonly Upstream[] {
    return this.#upstreams;
  }

  /**
   * Asks `upstreams` from now on (a reload); queries on their way keep theirs. The same
   * forwarder goes on, so that the queries still waiting count against the bounds.
   */
  setUpstreams(upstreams: readonly Upstream[]): void {
    this.#upstreams = upstreams;
  }

  /** Queries waiting for an upstream now. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /**
   * Forwards one query (`bytes` as the client sent it, `question` its first question) and
   * resolves to the answer with the client's ID, or why there is none.
   */
  async forward(
    bytes: Uint8Array,
    question: DnsQuestion,
    o: { client: string; tcp: boolean },
  ): Promise<ForwardResult> {
    if (this.upstreams.length === 0) return { kind: "failed", reason: "no upstream" };
    const mine = this.#perClient.get(o.client) ?? 0;
    if (this.#outstanding >= this.#max) {
      return { kind: "busy", reason: `${this.#max} queries wait for upstreams` };
    }
    if (mine >= this.#maxPerClient) {
      return { kind: "busy", reason: `${mine} queries of this client wait for upstreams` };
    }
    this.#outstanding++;
    this.#perClient.set(o.client, mine + 1);
    try {
      return await this.#ask(bytes, question, o.tcp);
    } finally {
      this.#outstanding--;
      const left = (this.#perClient.get(o.client) ?? 1) - 1;
      if (left > 0) this.#perClient.set(o.client, left);
      else this.#perClient.delete(o.client);
    }
  }

  async #ask(bytes: Uint8Array, q: DnsQuestion, tcp: boolean): Promise<ForwardResult> {
    const clientId = (bytes[0]! << 8) | bytes[1]!;
    const failures: string[] = [];
    for (const up of this.upstreams) {
      const id = randomId();
      const query = withId(bytes, id);
      let answer: Uint8Array | null = null;
      let transport: "udp" | "tcp" = tcp ? "tcp" : "udp";
      if (!tcp) {
        answer = await this.#udp(query, up, id, q);
        // TC: the whole answer needs TCP; the cut one is still an answer if TCP fails.
        if (answer && (answer[2]! & 0x02) !== 0) {
          const whole = await this.#tcp(query, up, id, q);
          if (whole) {
            answer = whole;
            transport = "tcp";
          }
        }
      } else {
        answer = await this.#tcp(query, up, id, q);
      }
      if (answer) {
        return { kind: "answer", bytes: relayed(answer, clientId), upstream: up, transport };
      }
      failures.push(`${formatUpstream(up)} (${transport}) did not answer`);
      this.#log.debug(SUB, "upstream did not answer", { upstream: formatUpstream(up), transport });
    }
    return { kind: "failed", reason: failures.join(", ") };
  }

  /** One UDP exchange with a fresh socket; null on timeout or error. */
  async #udp(query: Uint8Array, up: Upstream, id: number, q: DnsQuestion) {
    let conn: Deno.DatagramConn;
    try {
      conn = Deno.listenDatagram({ transport: "udp", hostname: this.#bind, port: 0 });
    } catch (e) {
      this.#log.warn(SUB, "no socket for an upstream query", { error: e });
      return null;
    }
    return await exchange(conn, this.#timeout, async () => {
      await conn.send(query, { transport: "udp", hostname: up.address, port: up.port });
      for (;;) {
        const [data, from] = await conn.receive();
        const addr = from as Deno.NetAddr;
        if (addr.hostname === up.address && addr.port === up.port && answers(data, id, q)) {
          return data;
        }
      }
    });
  }

  /** One TCP exchange on a new connection; null on timeout or error. */
  async #tcp(query: Uint8Array, up: Upstream, id: number, q: DnsQuestion) {
    const deadline = Date.now() + this.#tcpTimeout;
    const conn = await within(
      Deno.connect({ hostname: up.address, port: up.port }).catch(() => null),
      this.#tcpTimeout,
      (late) => late?.close(),
    );
    if (!conn) return null;
    return await exchange(conn, Math.max(0, deadline - Date.now()), async () => {
      const framed = frame(query);
      for (let sent = 0; sent < framed.length;) sent += await conn.write(framed.subarray(sent));
      const reader = new FrameReader(conn);
      for (;;) {
        const m = await reader.next();
        if (m === null || answers(m, id, q)) return m;
      }
    });
  }
}
