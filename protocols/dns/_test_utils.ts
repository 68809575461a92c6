/**
 * The captured golden messages of `testdata/` (see its README), for the codec tests, the
 * policy tests and the fuzz runs; queries built by hand; clients and sockets on loopback.
 *
 * @module
 */
import { DnsClass, type DnsMessage } from "./message.ts";
import {
  type DnsServer,
  type DnsServerOptions,
  type DnsUdpSocket,
  startDnsServer,
} from "./server.ts";
import { frame, FrameReader } from "./tcp.ts";
import { optRecord } from "./wire.ts";

const TESTDATA = new URL("./testdata/", import.meta.url);

/** Every captured message by file name without `.bin` (`a_query`, `a_answer` …). */
export function dnsCaptures(): Map<string, Uint8Array> {
  return new Map(
    [...Deno.readDirSync(TESTDATA)]
      .filter((e) => e.name.endsWith(".bin"))
      .map((e) => e.name)
      .sort()
      .map((name) => [name.slice(0, -4), Deno.readFileSync(new URL(name, TESTDATA))]),
  );
}

/** The captured queries only, by name. */
export function dnsQueries(): Map<string, Uint8Array> {
  return new Map([...dnsCaptures()].filter(([name]) => name.endsWith("_query")));
}

/** A query message for `name`/`type`, RD set, with dig's OPT when `edns`. */
export function queryFor(
  name: string,
  type: number,
  o: { id?: number; edns?: boolean } = {},
): DnsMessage {
  return {
    id: o.id ?? 0x1234,
    opcode: 0,
    rcode: 0,
    flags: { qr: false, aa: false, tc: false, rd: true, ra: false, ad: false, cd: false },
    questions: [{ name, type, class: DnsClass.IN }],
    answers: [],
    authority: [],
    additional: o.edns ? [optRecord()] : [],
  };
}

/** A {@linkcode DnsUdpSocket} over `Deno.listenDatagram`, for servers on loopback in tests. */
export function loopbackUdp(address: string, port: number): DnsUdpSocket {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: address, port });
  let closed = false;
  return {
    port: (conn.addr as Deno.NetAddr).port,
    async receive() {
      try {
        const [data, from] = await conn.receive();
        const a = from as Deno.NetAddr;
        return { data, from: { address: a.hostname, port: a.port } };
      } catch (e) {
        if (closed) return null;
        throw e;
      }
    },
    async send(data, address, port) {
      await conn.send(data, { transport: "udp", hostname: address, port });
    },
    close() {
      if (!closed) {
        closed = true;
        conn.close();
      }
      return Promise.resolve();
    },
  };
}

/**
 * A DNS server on 127.0.0.1 and a free port: the UDP port is free when it is opened, its TCP
 * twin may be another process's, so it tries again with another port.
 */
export async function startLoopbackDns(
  o: Omit<DnsServerOptions, "interface" | "address" | "port" | "openUdp">,
): Promise<DnsServer> {
  const start = () =>
    startDnsServer({ ...o, interface: "lo", address: "127.0.0.1", port: 0, openUdp: loopbackUdp });
  for (let i = 0; i < 20; i++) {
    const server = await start().catch(() => null);
    if (server) return server;
  }
  return await start();
}

/** Sends one datagram from a fresh loopback socket; the first answer, or null after `ms`. */
export async function askUdp(
  port: number,
  bytes: Uint8Array,
  ms = 2000,
  address = "127.0.0.1",
): Promise<Uint8Array | null> {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const timer = setTimeout(() => conn.close(), ms);
  try {
    await conn.send(bytes, { transport: "udp", hostname: address, port });
    const [data] = await conn.receive();
    return data;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/** Sends `messages` in one write over one TCP connection; the answers as they come. */
export async function askTcp(
  port: number,
  messages: Uint8Array[],
  ms = 2000,
): Promise<Uint8Array[]> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), ms);
  const out: Uint8Array[] = [];
  try {
    const all = messages.flatMap((m) => [...frame(m)]);
    await conn.write(Uint8Array.from(all));
    const reader = new FrameReader(conn);
    while (out.length < messages.length) {
      const m = await reader.next();
      if (!m) break;
      out.push(m);
    }
  } catch {
    /* closed by the timer or the server */
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed already */ }
  }
  return out;
}
