/**
 * A quick DNS load loop, run inside a client namespace by tests/dns_test.ts: `concurrency`
 * workers, each with its own UDP socket, ask `server:port` for the names in turn (A, RD set,
 * random IDs) until `count` queries have been answered or timed out (1 s each). Prints one
 * JSON line: sent, answered, by rcode, timeouts, ms, queries per second.
 *
 *   deno run --unstable-net -A tests/dns_query_loop.ts '{"server":"10.74.0.1","names":["web-1.erf"],"count":2000,"concurrency":8}'
 *
 * @module
 */
import { decodeDnsHead, DnsType, encodeDns } from "../protocols/dns/message.ts";
import { queryFor } from "../protocols/dns/_test_utils.ts";
import { randomId } from "../protocols/dns/wire.ts";

interface LoopOptions {
  server: string;
  port?: number;
  names: string[];
  count: number;
  concurrency: number;
}

/** One worker: asks until the shared budget is spent. */
async function worker(o: LoopOptions, take: () => number | null, tally: Map<string, number>) {
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  const to = { transport: "udp" as const, hostname: o.server, port: o.port ?? 53 };
  try {
    for (let i = take(); i !== null; i = take()) {
      const id = randomId();
      await conn.send(encodeDns(queryFor(o.names[i % o.names.length]!, DnsType.A, { id })), to);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const got = await Promise.race([
        (async () => {
          for (;;) {
            const [data] = await conn.receive();
            const head = decodeDnsHead(data);
            if (head.id === id) return head.rcode;
          }
        })(),
        new Promise<null>((r) => timer = setTimeout(() => r(null), 1000)),
      ]);
      clearTimeout(timer);
      const key = got === null ? "timeout" : `rcode ${got}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
      // A timed-out receive is still pending on the socket: start afresh.
      if (got === null) break;
    }
  } finally {
    conn.close();
  }
}

if (import.meta.main) {
  const o = JSON.parse(Deno.args[0]!) as LoopOptions;
  let next = 0;
  const take = () => next < o.count ? next++ : null;
  const tally = new Map<string, number>();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: o.concurrency }, () => worker(o, take, tally).catch(() => {})),
  );
  const ms = performance.now() - started;
  const answered = [...tally].filter(([k]) => k.startsWith("rcode")).reduce((n, [, v]) => n + v, 0);
  console.log(JSON.stringify({
    sent: next,
    answered,
    ...Object.fromEntries(tally),
    ms: Math.round(ms),
    qps: Math.round(answered / (ms / 1000)),
  }));
}
