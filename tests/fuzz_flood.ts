/**
 * Sends seeded mutations of the DHCP captures at a server, from inside a test namespace:
 *
 *   ip netns exec NS deno run <flags> tests/fuzz_flood.ts '<json FloodOptions>'
 *
 * From port 68 of the interface, at a steady rate: to 255.255.255.255:67, to the server's
 * port 67 and (when listed) its port 4011. Prints one JSON line at the end: datagrams sent,
 * sends that failed, replies received, milliseconds.
 *
 * @module
 */
import { InterfaceUdpSocket } from "../net/udp_socket.ts";
import { dhcpSeeds } from "./fuzz.ts";
import { DHCP_MUTATION, mutate, prng } from "./fuzz_mutator.ts";

/** What to send, and where. */
export interface FloodOptions {
  interface: string;
  server: string;
  /** 67, and 4011 when the server listens there (proxy and auto mode). */
  ports: number[];
  seed: number;
  packets: number;
  /** Datagrams per second. */
  rate: number;
}

const o = JSON.parse(Deno.args[0] ?? "{}") as FloodOptions;
const seeds = dhcpSeeds(o.server);
const rnd = prng(o.seed);
// Destinations come from their own stream, so that the packets are those of the same seed
// in the in-process run.
const where = prng(o.seed ^ 0x5a5a5a5a);
const sock = InterfaceUdpSocket.open({ interface: o.interface, port: 68 });
let replies = 0;
const receiving = (async () => {
  while (await sock.receive()) replies++;
})();

let sent = 0, failed = 0;
const started = performance.now();
while (sent < o.packets) {
  const due = Math.min(o.packets, Math.floor(((performance.now() - started) / 1000) * o.rate) + 1);
  for (; sent < due; sent++) {
    const bytes = mutate(seeds[sent % seeds.length]!, rnd, DHCP_MUTATION);
    const r = where();
    const [address, port] = r < 0.4
      ? ["255.255.255.255", 67]
      : r < 0.7 || !o.ports.includes(4011)
      ? [o.server, 67]
      : [o.server, 4011];
    try {
      sock.send(bytes, address, port);
    } catch {
      failed++;
    }
  }
  await new Promise((r) => setTimeout(r, 5));
}
const ms = Math.round(performance.now() - started);
// Replies to the last packets are still on their way.
await new Promise((r) => setTimeout(r, 500));
await sock.close();
await receiving;
Deno.stdout.writeSync(
  new TextEncoder().encode(JSON.stringify({ sent, failed, replies, ms }) + "\n"),
);
